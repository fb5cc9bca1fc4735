"""Why two frameworks diverge, derived from the knob model, and the recipe that makes them agree.

For each pair of default variants that land in different groups, the explanation lists the knobs on
which their documented semantics differ, each with its effect (the model's loss with only that knob
switched), and the recipe: the second framework's native code that reproduces the first, which the
second framework's worker ran. Nothing here is written per case: it all follows from the knobs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from conformance import adapters, losses, reference, registry, residual, user
from conformance.cases import Case
from conformance.compare import difference
from conformance.records import CHANGE, CaseRecord, Comparison, Explanation, KnobDifference, Result, ShownRecipe


def explain(case: Case, results: Mapping[str, Result], comparison: Comparison, model: Model | None = None) -> tuple[Explanation, ...]:
    """An explanation for each pair of native default variants that land in different groups, and for
    each pair (native default variant, user's function) that does (`fitted`). `model`: the case's, if
    the recipe requests already evaluated some of its knob points."""
    if len(comparison.groups) < 2:
        return ()
    group_of = {key: i for i, group in enumerate(comparison.groups) for key in group}
    present = [k for k in registry.native() if k in group_of]
    model = model or Model(case)
    tol = comparison.allowance or comparison.tolerance  # recipes and fits run natively too: rounding at size is allowed them
    out = []
    for i, a in enumerate(present):
        for b in present[i + 1 :]:
            if group_of[a] != group_of[b]:
                out.append(_pair(model, a, b, results, tol))
    for b in sorted(k for k in user.keys() if k in group_of):
        for a in present:
            if group_of[a] != group_of[b]:
                out.append(fitted(model, a, b, results, tol))
    return tuple(out)


# ---------------------------------------------------------------- a user's function: the knobs that fit it


def fitted(model: Model, a: str, b: str, results: Mapping[str, Result], tol: dict[str, float]) -> Explanation:
    """Why the user's function `b` differs from the default variant `a`: the knob settings of the model
    that reproduce b's loss and gradient on this case (a fit: a's documented point, then every
    single-knob switch from it and from b's own framework's documented point, then pairs of switches
    from a's), and the knobs on which the fit differs from a's documented ones, in the words of the
    other explanations. Where nothing fits, that first, then what the numbers show of the residual
    (`residual.characterise`), and the closest setting only where it explains most of the difference."""
    knobs_a = _knobs(results[a])
    if knobs_a is None:
        return Explanation(a, b, (), f"{b} vs {a}: {a} documents no formula for this case, so there is nothing to fit {b} to.")
    target = results[b]
    own = results.get(adapters.framework_of(b))
    knobs_own = _knobs(own) if own is not None else None
    starts = [knobs_a] + ([knobs_own] if knobs_own is not None and knobs_own != knobs_a else [])
    best: tuple[float, reference.Knobs] | None = None
    found = None
    for knobs in _candidates(model, starts):
        try:
            outcome = model(knobs)
        except Exception:  # a combination the family cannot evaluate is no candidate
            continue
        loss = difference(outcome.loss, target.loss, **tol)
        grad = difference(outcome.grad, target.grad, **tol) if target.grad is not None else None
        if loss.agree and (grad is None or grad.agree):
            found = knobs
            break
        distance = loss.max_abs if np.isfinite(loss.max_abs) else float("inf")
        if best is None or distance < best[0]:
            best = (distance, knobs)
    chosen = found if found is not None else (best[1] if best is not None else knobs_a)
    moving = [k for k in knob_differences(model.case, knobs_a, chosen, model) if k.effect is None or k.effect > 0]
    fit: dict[str, Any] = {"knobs": {k.knob: k.b for k in moving}, "exact": found is not None}
    if found is not None:
        fit["equivalent"] = _equivalent(model, found, moving, knobs_a, target, tol)
        return Explanation(a, b, tuple(moving), _fit_text(model, a, b, knobs_a, chosen, moving, fit, results), fit=fit)
    fit["distance"] = best[0] if best is not None else None
    share = _share(model, knobs_a, chosen, target) if moving else None
    if share is not None:
        fit["share"] = share
    documented = results[a].documented
    off_doc = documented is not None and documented.agrees is False
    found_residual = residual.characterise(
        model.case,
        target.loss,
        target.grad,
        model(knobs_a),
        knobs_a,
        (b, a, f"{a}'s documented" if off_doc else f"{a}'s"),
        tol,
        _describe("denominator", knobs_a.denominator) if "denominator" in model(knobs_a).read else None,
        () if chosen == knobs_a else (chosen,),
    )
    if found_residual.facts:
        fit["residual"] = found_residual.facts
    fit["closest_named"] = _closest_shown(fit, found_residual)
    text = _unfitted_text(model, a, b, knobs_a, chosen, moving, fit, found_residual)
    return Explanation(a, b, tuple(moving) if fit["closest_named"] else (), text, fit=fit)


MOST = 0.5
"""A closest knob setting is named only where it takes away more than this share of the difference."""


def _closest_shown(fit: dict[str, Any], found: residual.Residual) -> bool:
    """Whether the closest setting is a reason: it explains most of the difference, and the residual's
    sentences do not already account for every value."""
    return bool(fit["knobs"]) and fit.get("share") is not None and fit["share"] > MOST and not found.complete


def _share(model: Model, knobs_a: reference.Knobs, chosen: reference.Knobs, target: Result) -> float | None:
    """How much of the difference between b's loss and a's documented one the closest setting takes away:
    1 - |b - closest| / |b - a's documented| (Euclidean, over the loss's values); None where not finite."""
    t = np.asarray(target.loss, dtype=np.float64).reshape(-1)
    there, here = (np.asarray(model(k).loss, dtype=np.float64).reshape(-1) for k in (knobs_a, chosen))
    if not (t.size == there.size == here.size) or not t.size:
        return None
    with np.errstate(all="ignore"):
        before, after = float(np.linalg.norm(t - there)), float(np.linalg.norm(t - here))
    if not (np.isfinite(before) and np.isfinite(after)) or before == 0:
        return None
    return max(0.0, 1.0 - after / before)


def _equivalent(
    model: Model, found: reference.Knobs, moving: list[KnobDifference], knobs_a: reference.Knobs, target: Result, tol: dict[str, float]
) -> dict[str, list[Any]]:
    """For each knob of the fit, the other values that fit this case just as well (without ignored
    positions, dividing by the non-ignored positions is dividing by all of them): the fit names them
    all, since the case cannot tell them apart."""
    out: dict[str, list[Any]] = {}
    for k in moving:
        for value in _alternatives(k.knob, k.b):
            if value == getattr(knobs_a, k.knob):
                continue
            try:
                outcome = model(found.switched(k.knob, value))
            except Exception:  # a combination the family cannot evaluate fits nothing
                continue
            grad_ok = target.grad is None or difference(outcome.grad, target.grad, **tol).agree
            if grad_ok and difference(outcome.loss, target.loss, **tol).agree:
                out.setdefault(k.knob, []).append(value)
    return out


def _candidates(model: Model, starts: list[reference.Knobs]) -> Iterable[reference.Knobs]:
    """Knob points, fewest changes from the first start first: the starts, single switches, then pairs
    of switches (of the knobs the case reads) from the first."""
    seen: set[reference.Knobs] = set()

    def new(knobs: reference.Knobs) -> bool:
        if knobs in seen:
            return False
        seen.add(knobs)
        return True

    yield from (k for k in starts if new(k))
    names = reference.knob_names()
    for start in starts:
        for name in names:
            for value in _alternatives(name, getattr(start, name)):
                if new(knobs := start.switched(name, value)):
                    yield knobs
    try:
        read = sorted(model(starts[0]).read)
    except Exception:
        return
    for i, first in enumerate(read):
        for second in read[i + 1 :]:
            for v1 in _alternatives(first, getattr(starts[0], first)):
                for v2 in _alternatives(second, getattr(starts[0], second)):
                    if new(knobs := starts[0].switched(first, v1).switched(second, v2)):
                        yield knobs


def _fit_text(
    model: Model,
    a: str,
    b: str,
    knobs_a: reference.Knobs,
    chosen: reference.Knobs,
    moving: list[KnobDifference],
    fit: dict[str, Any],
    results: Mapping[str, Result],
) -> str:
    """A fit that reproduces b: the knobs it sets otherwise than a's documented ones; at a's own documented
    point, a itself is off it only where a's documented check disagrees, else the two differ by rounding."""
    settings = ", ".join(f"{k.knob} = {k.b!r}" for k in moving)
    if not moving:
        documented = results[a].documented
        if documented is not None and documented.agrees is False:
            return f"{b} vs {a}: {b} follows {a}'s documented semantics here; {a} itself differs from them (see its off-doc flag)."
        return (
            f"{b} vs {a}: {b} follows {a}'s documented semantics here, as {a} does; the difference between the two is numerical "
            "(rounding), not a semantic choice."
        )
    same = "".join(
        f"; {k.knob} = " + ", ".join(repr(v) for v in values) + " give the same on this case"
        for k in moving
        if (values := fit["equivalent"].get(k.knob))
    )
    return (
        f"{b} vs {a}: "
        + "; ".join(_knob_parts(model, a, b, knobs_a, chosen, moving))
        + f" (fit: {settings} reproduces {b}'s loss and gradient{same})."
    )


def _unfitted_text(
    model: Model,
    a: str,
    b: str,
    knobs_a: reference.Knobs,
    chosen: reference.Knobs,
    moving: list[KnobDifference],
    fit: dict[str, Any],
    found: residual.Residual,
) -> str:
    """No knob setting reproduces b: said first; then what the numbers show; the closest setting only where
    it explains most of the difference, with its share; where the numbers tell nothing, that."""
    parts = [f"{b} vs {a}: no knob setting reproduces {b}"]
    parts += list(found.sentences)
    if fit["closest_named"]:
        settings = ", ".join(f"{k.knob} = {k.b!r}" for k in moving)
        knob_words = "; ".join(_knob_parts(model, a, b, knobs_a, chosen, moving))
        left = f"{fit['distance']:.3g} left in the loss"
        parts.append(f"closest: {settings} explains {fit['share']:.0%} of the difference ({left}; there {knob_words})")
    if len(parts) == 1:
        parts.append(
            "the numbers do not tell what it does otherwise: no constant factor, constant offset, shift of the labels or "
            "subset of positions accounts for the difference"
        )
    return "; ".join(parts) + "."


def _knob_parts(model: Model, a: str, b: str, knobs_a: reference.Knobs, chosen: reference.Knobs, moving: list[KnobDifference]) -> list[str]:
    mine, theirs = model(chosen), model(knobs_a)
    parts = []
    for k in moving:
        if k.knob == "denominator" and mine.denominator is not None and theirs.denominator is not None:
            parts.append(
                f"{b} {_phrase(k.knob, k.b)} = {mine.denominator:g}; {a} divides by {_describe(k.knob, k.a)} = {theirs.denominator:g}"
            )
        else:
            parts.append(f"{b} {_phrase(k.knob, k.b)}; {a} {_phrase(k.knob, k.a)}")
    return parts


class Model:
    """The reference model of one case, each knob point evaluated once (the pairs of a case share most)."""

    def __init__(self, case: Case) -> None:
        self.case = case
        self.outcomes: dict[reference.Knobs, reference.Outcome] = {}

    def __call__(self, knobs: reference.Knobs) -> reference.Outcome:
        if knobs not in self.outcomes:
            self.outcomes[knobs] = reference.evaluate(self.case, knobs)
        return self.outcomes[knobs]


def _pair(model: Model, a: str, b: str, results: Mapping[str, Result], tol: dict[str, float]) -> Explanation:
    knobs_a = _knobs(results[a])
    knobs_b = _knobs(results[b])
    recipe = _recipe(a, b, results, tol)
    reverse = _recipe(b, a, results, tol)  # a's native code reproducing b
    if knobs_a is None or knobs_b is None:
        missing = a if knobs_a is None else b
        text = f"{b} vs {a}: no documented formula for this combination in {missing}."
        return Explanation(a, b, (), text, recipe, None if recipe else f"no recipe: {missing} documents no formula here", reverse=reverse)
    base = model(knobs_a)
    other = model(knobs_b)
    differences = knob_differences(model.case, knobs_a, knobs_b, model)
    moving = [k for k in differences if k.effect is None or k.effect > 0]
    why = None
    if recipe is None:
        why = (
            "no recipe: both document the same semantics, so there is nothing to reproduce"
            if knobs_a == knobs_b
            else f"no recipe: {b} has no native recipe for {a}'s semantics on this case ({_recipe_scope(model.case)})"
        )
    return Explanation(a, b, tuple(moving), _text(a, b, moving, base, other, results), recipe, why, reverse=reverse)


def _recipe_scope(case: Case) -> str:
    """What the case's loss family's recipes cover, in its words (`RECIPES`), or that it has none."""
    family = case.family
    if family.RECIPES is not None:
        return family.RECIPES
    if family.recipe_source is not None or family.native_recipe is not None:
        return f"{case.loss}'s recipes do not cover this case"
    return f"{case.loss} has no recipes"


def knob_differences(case: Case, knobs_a: reference.Knobs, knobs_b: reference.Knobs, model: Model | None = None) -> list[KnobDifference]:
    """Each knob on which a and b differ, with its effect: the largest change of a's loss when only
    that knob takes b's value (None where not finite)."""
    model = model or Model(case)
    base = model(knobs_a)
    out = []
    for knob in reference.knob_names():
        if getattr(knobs_a, knob) != getattr(knobs_b, knob):
            effect = _effect(base.loss, model(knobs_a.switched(knob, getattr(knobs_b, knob))).loss) if knob in base.read else 0.0
            out.append(KnobDifference(knob, getattr(knobs_a, knob), getattr(knobs_b, knob), effect))
    return out


def requests(case: Case, results: Mapping[str, Result], found: Iterable[Iterable[str]], model: Model) -> dict[str, dict[str, str]]:
    """The recipes the explanations will show, as the code each framework's worker is to run: for each
    pair of native default variants that the comparison put in different groups (`found`: the same
    grouping, so every explained pair gets its recipe) and that document different knobs, b reproducing
    a and a reproducing b (the report shows the one that ports from the reader's source), each with its
    smallest change (`adapters.recipes`). `model` is the case's, which the explanation reuses."""
    group_of = {key: i for i, group in enumerate(found) for key in group}
    present = [k for k in registry.native() if k in group_of]
    targets: dict[str, dict[str, reference.Knobs]] = {}
    for i, a in enumerate(present):
        for b in present[i + 1 :]:
            knobs_a, knobs_b = _knobs(results[a]), _knobs(results[b])
            if group_of[a] != group_of[b] and knobs_a is not None and knobs_b is not None and knobs_a != knobs_b:
                targets.setdefault(b, {})[a] = knobs_a
                targets.setdefault(a, {})[b] = knobs_b
    return {framework: adapters.recipes(framework, case, asked, model) for framework, asked in targets.items()}


def signature(record: CaseRecord | None) -> set[tuple[str, str, str]]:
    """What kind of divergence a case shows: (a, b, knob) for each knob that moves a diverging pair,
    (a, b, "unexplained") for a pair no knob explains."""
    out: set[tuple[str, str, str]] = set()
    for entry in record.explanation if record is not None else ():
        moving = [k.knob for k in entry.knobs if k.effect is None or k.effect > 0]
        out.update((entry.a, entry.b, knob) for knob in moving or ["unexplained"])
    return out


def _knobs(result: Result) -> reference.Knobs | None:
    return reference.Knobs.of(result.documented.knobs) if result.documented is not None else None


def _effect(base: np.ndarray, switched: np.ndarray) -> float | None:
    """The largest change in the loss from switching one knob (None where it is not finite)."""
    a, b = np.asarray(base, dtype=np.float64).reshape(-1), np.asarray(switched, dtype=np.float64).reshape(-1)
    if a.size != b.size:
        return None
    with np.errstate(invalid="ignore"):
        gap = np.abs(a - b)
    both_nan = np.isnan(a) & np.isnan(b)
    gap = np.where(both_nan, 0.0, gap)
    return float(gap.max()) if gap.size and np.all(np.isfinite(gap)) else (0.0 if not gap.size else None)


def _text(
    a: str, b: str, moving: list[KnobDifference], base: reference.Outcome, other: reference.Outcome, results: Mapping[str, Result]
) -> str:
    if not moving:
        off = [k for k in (a, b) if (results[k].documented is not None and results[k].documented.agrees is False)]  # type: ignore[union-attr]
        if off:
            who = " and ".join(off) + (" differ from their" if len(off) > 1 else " differs from its")
            return (
                f"{b} vs {a}: same documented semantics; {who} own documented formula here "
                "(an implementation or numerical effect, not a semantic choice)."
            )
        return f"{b} vs {a}: same documented semantics; the difference is numerical (precision), not a semantic choice."
    parts = []
    for k in moving:
        if k.knob == "denominator" and base.denominator is not None and other.denominator is not None:
            parts.append(
                f"the mean's denominator is {_describe(k.knob, k.b)} = {other.denominator:g} in {b}, "
                f"{_describe(k.knob, k.a)} = {base.denominator:g} in {a}"
            )
        else:
            parts.append(f"{b} {_phrase(k.knob, k.b)}, {a} {_phrase(k.knob, k.a)}")
    return f"{b} vs {a}: " + "; ".join(parts) + "."


def _describe(knob: str, value: Any) -> str:
    return _phrase(knob, value).removeprefix("divides the mean by ").removeprefix("divides by ")


def _phrase(knob: str, value: Any) -> str:
    known = losses.phrases().get(knob, {})
    if value in known:
        return known[value]
    return f"has {knob} = {value}"


def _recipe(a: str, b: str, results: Mapping[str, Result], tol: dict[str, float]) -> ShownRecipe | None:
    """b's native code reproducing a, as b's worker ran it, and whether it does reproduce a's loss."""
    recipe = results[b].recipes.get(a)
    if recipe is None:
        return None
    target = results[a.removesuffix(CHANGE)]
    change = _recipe(a + CHANGE, b, results, tol) if a + CHANGE in results[b].recipes else None  # the smallest change, shown first
    if recipe.loss is None:
        return ShownRecipe(recipe.code, None, target.loss, False, recipe.message, change)
    if difference(recipe.loss, target.loss, **tol).agree:
        return ShownRecipe(recipe.code, recipe.loss, target.loss, True, change=change)
    return ShownRecipe(
        recipe.code, recipe.loss, target.loss, False, _off_its_formula(a.removesuffix(CHANGE), target, recipe.loss, tol), change
    )


def _off_its_formula(name: str, target: Result, value: Any, tol: dict[str, float]) -> str | None:
    """Why a recipe misses where its target is off its own documented formula and the recipe is on it:
    a recipe is written from the documented knobs, so it gives what the documentation says."""
    documented = target.documented
    if documented is None or documented.agrees is not False or not difference(value, documented.loss, **tol).agree:
        return None
    return (
        f"this gives {name}'s documented formula; {name} itself is off it on this case (see its off-doc flag), "
        "and a recipe written from the documented semantics cannot give that value"
    )


def attribute(case: Case, knobs: reference.Knobs, old_loss: Any, tol: dict[str, float]) -> list[str]:
    """Which knob of the documented point, set otherwise, makes the model give a baseline's old value:
    how a moved value says what moved. One line per knob, with the numbers where the knob has one (a
    denominator); alternatives that are equal on this case are not repeated."""
    model = Model(case)
    now = model(knobs)
    found = []
    for name in reference.knob_names():
        current = getattr(knobs, name)
        for value in _alternatives(name, current):
            try:
                outcome = model(knobs.switched(name, value))
            except (ValueError, TypeError):
                continue
            if not difference(outcome.loss, old_loss, **tol).agree:
                continue
            if name == "denominator" and outcome.denominator is not None and now.denominator is not None:
                found.append(
                    f"denominator: the baseline's mean divided by {_describe(name, value)} = {outcome.denominator:g}; "
                    f"this run's by {_describe(name, current)} = {now.denominator:g}"
                )
            else:
                found.append(f"{name} was {value!r} (now {current!r}): {_phrase(name, value)}")
            break
    return found


def _alternatives(name: str, current: Any) -> list[Any]:
    return [v for v in losses.alternatives().get(name, []) if v != current]
