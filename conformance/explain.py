"""Why two frameworks diverge, derived from the knob model, and the recipe that makes them agree.

For each pair of default variants that land in different groups, the explanation lists the knobs on
which their documented semantics differ, each with its effect (the model's loss with only that knob
switched), and the recipe: the second framework's native code that reproduces the first, which the
second framework's worker ran. Nothing here is written per case: it all follows from the knobs.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import numpy as np

from conformance import reference
from conformance.cases import Case
from conformance.compare import agreement, difference, tolerance

DEFAULTS = ("torch", "paddle", "tensorflow")
PHRASES: dict[str, dict[Any, str]] = {
    "weight_mode": {
        "per_class": "weighs each class's term inside the smoothed sum",
        "from_label": "weighs the loss by w.q of the smoothed (or soft) label",
        "from_hard_label": "weighs the loss by the hard label's class weight (sample_weight = weight[label])",
    },
    "denominator": {
        "target_weight": "divides the mean by the sum of target weights",
        "label_weight": "divides the mean by the sum of w.q",
        "valid_count": "divides the mean by the number of non-ignored positions",
        "positions": "divides the mean by the number of positions",
        "applied_weight": "divides by the sum of the applied weights",
        "nonzero_weight": "divides by the number of non-zero weights",
    },
    "empty_mean": {"nan": "gives NaN for 0/0", "zero": "gives 0 for 0/0"},
    "empty_batch": {
        "nan": "gives NaN for an empty batch",
        "zero": "gives 0 for an empty batch",
        "unreduced": "returns an empty batch unreduced",
    },
    "probabilities": {
        "renormalise": "renormalises probabilities",
        "none": "takes log p as given",
        "renormalise_then_clip": "renormalises, then clips p to [eps, 1-eps]",
        "clip_then_renormalise": "clips p to [eps, 1-eps], then renormalises",
        "clip": "clips p to [eps, 1-eps]",
    },
    "logit_floor": {None: "computes softmax exactly"},
    "log_clamp": {None: "does not clamp log p"},
    "last_axis_mean": {True: "averages the last axis into one value per sample", False: "keeps one value per element"},
    "weights_as_sample_weights": {
        True: "counts class weights among the applied weights",
        False: "does not count class weights among the applied weights",
    },
}


def explain(case: Case, record: dict[str, Any]) -> list[dict[str, Any]]:
    """One entry per pair of diverging default variants (first in canonical order is `a`)."""
    results = record["results"]
    group_of = {key: i for i, group in enumerate(record["groups"]) for key in group}
    present = [k for k in DEFAULTS if k in group_of]
    model = Model(case)
    out = []
    for i, a in enumerate(present):
        for b in present[i + 1 :]:
            if group_of[a] != group_of[b]:
                out.append(_pair(model, a, b, results, record["tolerance"]))
    return out


class Model:
    """The reference model of one case, each knob point evaluated once (the pairs of a case share most)."""

    def __init__(self, case: Case) -> None:
        self.case = case
        self.outcomes: dict[reference.Knobs, reference.Outcome] = {}

    def __call__(self, knobs: reference.Knobs) -> reference.Outcome:
        if knobs not in self.outcomes:
            self.outcomes[knobs] = reference.evaluate(self.case, knobs)
        return self.outcomes[knobs]


def _pair(model: Model, a: str, b: str, results: dict[str, Any], tol: dict[str, float]) -> dict[str, Any]:
    knobs_a = _knobs(results[a])
    knobs_b = _knobs(results[b])
    entry: dict[str, Any] = {"a": a, "b": b, "knobs": [], "recipe": _recipe(a, b, results, tol)}
    if knobs_a is None or knobs_b is None:
        entry["text"] = f"{b} vs {a}: no documented formula for this combination in {a if knobs_a is None else b}."
        return entry
    base = model(knobs_a)
    other = model(knobs_b)
    entry["knobs"] = knob_differences(model.case, knobs_a, knobs_b, model)
    moving = [k for k in entry["knobs"] if k["effect"] is None or k["effect"] > 0]
    entry["knobs"] = moving or entry["knobs"]
    entry["text"] = _text(a, b, moving, base, other, results)
    return entry


def knob_differences(
    case: Case, knobs_a: reference.Knobs, knobs_b: reference.Knobs, model: Model | None = None
) -> list[dict[str, Any]]:
    """Each knob on which a and b differ, with its effect: the largest change of a's loss when only
    that knob takes b's value (None where not finite)."""
    model = model or Model(case)
    base = model(knobs_a)
    out = []
    for knob in (f.name for f in fields(reference.Knobs)):
        if getattr(knobs_a, knob) != getattr(knobs_b, knob):
            effect = _effect(base.loss, model(knobs_a.switched(knob, getattr(knobs_b, knob))).loss) if knob in base.read else 0.0
            out.append({"knob": knob, "a": getattr(knobs_a, knob), "b": getattr(knobs_b, knob), "effect": effect})
    return out


def recipe_requests(case: Case, results: dict[str, dict[str, Any]]) -> dict[str, dict[str, reference.Knobs]]:
    """The recipes an explanation will show, to be run by the workers: for each pair of default
    variants that disagree and document different knobs, b reproducing a (b -> a -> a's knobs)."""
    tol = tolerance(case)
    out: dict[str, dict[str, reference.Knobs]] = {}
    present = [k for k in DEFAULTS if results.get(k, {}).get("status") == "ok"]
    for i, a in enumerate(present):
        for b in present[i + 1 :]:
            knobs_a, knobs_b = _knobs(results[a]), _knobs(results[b])
            if knobs_a is not None and knobs_b is not None and knobs_a != knobs_b and not agreement(results[a], results[b], tol)["agree"]:
                out.setdefault(b, {})[a] = knobs_a
    return out


def signature(record: dict[str, Any]) -> set[tuple[str, str, str]]:
    """What kind of divergence a case shows: (a, b, knob) for each knob that moves a diverging pair,
    (a, b, "unexplained") for a pair no knob explains."""
    out: set[tuple[str, str, str]] = set()
    for entry in record.get("explanation", []):
        moving = [k["knob"] for k in entry["knobs"] if k["effect"] is None or k["effect"] > 0]
        out.update((entry["a"], entry["b"], knob) for knob in moving or ["unexplained"])
    return out


def _knobs(result: dict[str, Any]) -> reference.Knobs | None:
    documented = result.get("documented")
    return reference.Knobs(**documented["knobs"]) if documented and "knobs" in documented else None


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


def _text(a: str, b: str, moving: list[dict[str, Any]], base: reference.Outcome, other: reference.Outcome, results: dict[str, Any]) -> str:
    if not moving:
        off = [k for k in (a, b) if results[k].get("documented", {}).get("agrees") is False]
        if off:
            who = " and ".join(off) + (" differ from their" if len(off) > 1 else " differs from its")
            return (
                f"{b} vs {a}: same documented semantics; {who} own documented formula here "
                "(an implementation or numerical effect, not a semantic choice)."
            )
        return f"{b} vs {a}: same documented semantics; the difference is numerical (precision), not a semantic choice."
    parts = []
    for k in moving:
        if k["knob"] == "denominator" and base.denominator is not None and other.denominator is not None:
            parts.append(
                f"the mean's denominator is {_describe(k['knob'], k['b'])} = {other.denominator:g} in {b}, "
                f"{_describe(k['knob'], k['a'])} = {base.denominator:g} in {a}"
            )
        else:
            parts.append(f"{b} {_phrase(k['knob'], k['b'])}, {a} {_phrase(k['knob'], k['a'])}")
    return f"{b} vs {a}: " + "; ".join(parts) + "."


def _describe(knob: str, value: Any) -> str:
    return _phrase(knob, value).removeprefix("divides the mean by ").removeprefix("divides by ")


def _phrase(knob: str, value: Any) -> str:
    known = PHRASES.get(knob, {})
    if value in known:
        return known[value]
    return f"has {knob} = {value}"


def _recipe(a: str, b: str, results: dict[str, Any], tol: dict[str, float]) -> dict[str, Any] | None:
    """b's native code reproducing a, as b's worker ran it, and whether it does reproduce a's loss."""
    recipe = results[b].get("recipes", {}).get(a)
    if recipe is None:
        return None
    shown: dict[str, Any] = {"code": recipe.get("code"), "result": recipe.get("loss"), "target": results[a].get("loss")}
    if recipe.get("loss") is None:
        shown.update(reproduces=False, message=recipe.get("message"))
    else:
        shown["reproduces"] = difference(recipe["loss"], results[a]["loss"], **tol).agree
    return shown


def attribute(case: Case, knobs: reference.Knobs, old_loss: Any, tol: dict[str, float]) -> list[str]:
    """Which single knob, set otherwise, makes the documented model give a baseline's old value: how a
    moved value says what moved (e.g. "denominator was positions")."""
    found = []
    for f in fields(reference.Knobs):
        for value in _alternatives(f.name, getattr(knobs, f.name)):
            try:
                outcome = reference.evaluate(case, knobs.switched(f.name, value))
            except (ValueError, TypeError):
                continue
            if difference(outcome.loss, old_loss, **tol).agree:
                found.append(f"{f.name} was {value!r} (now {getattr(knobs, f.name)!r}): {_phrase(f.name, value)}")
    return found


def _alternatives(name: str, current: Any) -> list[Any]:
    options: dict[str, list[Any]] = {
        "weight_mode": ["per_class", "from_label", "from_hard_label"],
        "denominator": ["target_weight", "label_weight", "valid_count", "positions", "applied_weight", "nonzero_weight"],
        "empty_mean": ["nan", "zero"],
        "empty_batch": ["nan", "zero", "unreduced"],
        "probabilities": ["renormalise", "none", "renormalise_then_clip", "clip_then_renormalise", "clip"],
        "logit_floor": [None, 64.0],
        "log_clamp": [None, 100.0],
        "ignore_smoothed": [False, True],
        "weights_as_sample_weights": [False, True],
        "last_axis_mean": [False, True],
    }
    return [v for v in options.get(name, []) if v != current]
