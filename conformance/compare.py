"""Agreement between results: tolerances, pairwise errors, groups, and expectation checks.

Two values agree when |a - b| <= atol + rtol * max(|a|, |b|) elementwise (symmetric, so the order of
frameworks never changes a verdict), NaN agrees with NaN and inf with an inf of the same sign. Two
results agree when their losses agree and, where both have one, their gradients agree.

Agreement is not transitive (a~b and b~c within tolerance, a!~c), so groups are formed greedily in a
fixed key order: each result joins the first group all of whose members it agrees with, otherwise it
starts a new group. Every member of a group therefore agrees with every other member.

Tolerance at size (`allowance`): a float32 sum of n terms is off its exact value by up to ~n*eps
(sequential) and typically ~sqrt(n)*eps (pairwise or blocked sums, which the frameworks' kernels use),
so the dtype's tolerance, set on small cases, splits correct values of large ones on plain rounding.
The allowance widens rtol to ACCUMULATION * eps * sqrt(C + P) for C classes and P positions (the
lengths of the sums a loss and its gradient take), and for float64 cases with label smoothing adds
FLOAT32_CONSTANTS times the largest magnitude of the two arrays (smoothed targets built from float32
constants). A result within the allowance of its own float64 documented value, but not within the
dtype's tolerance, carries a numerical note (`Result.numerical`); two results are put together on the
allowance only if both are within it of their documented values and those values agree (the same
float64 semantics), so a semantic difference stays apart at any size.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any

import numpy as np

from conformance import adapters, registry
from conformance.agreement import Difference, difference, finite_gaps, flat, largest_finite, rtol_needed
from conformance.cases import Case, Expectation
from conformance.digits import number
from conformance.records import Comparison, Pair, Result

DEFAULT_TOLERANCE: dict[str, dict[str, float]] = {
    # float64: frameworks agree to ~1e-15 on the same formula, while every semantic difference seen is
    # >= 1e-4; smoothed targets built from float32 constants get the allowance's `norm` (below).
    "float64": {"rtol": 1e-7, "atol": 1e-8},
    # float32: different summation orders and log-sum-exp kernels differ by a few ulp (~1e-7 relative).
    "float32": {"rtol": 1e-5, "atol": 1e-6},
    "float16": {"rtol": 1e-2, "atol": 1e-3},
    "bfloat16": {"rtol": 4e-2, "atol": 1e-2},
}
# Unit roundoff of the dtype the frameworks accumulate in (float16 and bfloat16 are summed in float32).
ACCUMULATION_EPS = {"float64": 2.0**-52, "float32": 2.0**-23, "float16": 2.0**-23, "bfloat16": 2.0**-23}
# rtol = ACCUMULATION * eps * sqrt(C + P). Measured (bench/accumulation.py, bench/README.md): torch's float32
# gradient needs up to 3.0 * eps * sqrt(C) (C = 50,000, logits of scale 10), paddle's up to 0.54, TensorFlow's
# none beyond atol (C up to 150,000). 4 keeps a margin; at C = 50,000 it is 1.1e-4.
ACCUMULATION = 4.0
# Smoothed targets built from float32 constants in float64 cases: each coefficient is off by up to half a
# float32 ulp (2^-24 relative), which moves a gradient element by up to that much of the largest one.
FLOAT32_CONSTANTS = 2.0**-23


def tolerance(case: Case) -> dict[str, float]:
    return {**DEFAULT_TOLERANCE[case.dtype], **case.tolerance}


def reduction_lengths(case: Case) -> tuple[int, int]:
    """(C, P): the classes a position's softmax or loss sums over, and the positions the reduction sums."""
    classes = max(case.num_classes, 1)
    return classes, case.predictions.size // classes


def allowance(case: Case) -> dict[str, float]:
    """The tolerance the case's size allows for rounding alone (module docstring): the dtype's, widened
    for float32 sums of C + P terms and, in float64 with smoothing, for float32 target constants. A
    case that sets `tolerance` gets exactly that."""
    tol = tolerance(case)
    if case.tolerance:
        return tol
    classes, positions = reduction_lengths(case)
    out = dict(tol, rtol=max(tol["rtol"], ACCUMULATION * ACCUMULATION_EPS[case.dtype] * math.sqrt(classes + positions)))
    if case.dtype == "float64" and case.label_smoothing > 0:
        out["norm"] = FLOAT32_CONSTANTS
    return out


def agreement(
    left: Any, right: Any, tol: dict[str, float], differ: Callable[[str], Difference] | None = None, a: str = "", b: str = ""
) -> Pair:
    """Loss and gradient differences of two ok results (or a result and its documented formula: anything
    with `loss` and `grad`). `differ("loss")` / `differ("grad")` gives a difference (`Pairwise` looks it
    up in its table); by default `difference` computes it."""
    differ = differ or (lambda what: difference(getattr(left, what), getattr(right, what), **tol))
    loss = differ("loss")
    reason = f"loss shapes differ: {loss.reason}" if loss.reason else None
    if left.grad is not None and right.grad is not None:
        grad = differ("grad")
        return Pair(a, b, loss.agree and grad.agree, loss.max_abs, loss.max_rel, grad.max_abs, grad.max_rel, reason)
    return Pair(a, b, loss.agree, loss.max_abs, loss.max_rel, reason=reason)


def order(keys: Any) -> list[str]:
    """Canonical key order: frameworks as registered, each default variant before its others."""
    names = list(registry.frameworks())

    def rank(key: str) -> tuple[int, int, str]:
        framework = adapters.framework_of(key)
        return (names.index(framework) if framework in names else len(names), key != framework, key)

    return sorted(keys, key=rank)


class Pairwise:
    """The agreement of each pair of one case's results, computed once: the pair table, the groups and
    the expectation check all ask for the same pairs. Where the values are finite and of one size (the
    usual case), all pairs come from one broadcast over the stacked arrays, with `difference`'s formulas (`agreement.finite_gaps`);
    the rest go through `difference` itself. A pair apart under `tol` is put together under `wide` (the
    case's `allowance`) when both results are within it of their documented float64 values and those
    values agree (`same_semantics`): rounding at size, not a semantic difference."""

    def __init__(self, results: Mapping[str, Result], tol: dict[str, float], wide: dict[str, float] | None = None) -> None:
        self.results = results
        self.tol = tol
        self.wide = wide if wide is not None and wide != tol else None
        self.found: dict[tuple[str, str], Pair] = {}
        ok = [k for k, r in results.items() if r.ok]
        self.tables = {what: _Table(results, ok, what, tol) for what in ("loss", "grad")}

    def __call__(self, a: str, b: str) -> Pair:
        if (a, b) not in self.found:
            left, right = self.results[a], self.results[b]

            def differ(what: str) -> Difference:
                return self.tables[what].difference(a, b) or difference(getattr(left, what), getattr(right, what), **self.tol)

            pair = agreement(left, right, self.tol, differ, a, b)
            if not pair.agree and self.wide is not None and same_semantics(left, right, self.tol):
                if agreement(left, right, self.wide).agree:
                    pair = replace(pair, agree=True, allowance=True)
            self.found[(a, b)] = pair
        return self.found[(a, b)]


def same_semantics(left: Result, right: Result, tol: dict[str, float]) -> bool:
    """Whether two results are each within the allowance of their documented float64 values (checked,
    `check_documented`) and those values agree under `tol`: the same semantics, apart only by rounding."""
    docs = left.documented, right.documented
    if docs[0] is None or docs[1] is None or not (docs[0].agrees and docs[1].agrees):
        return False
    if docs[0].knobs == docs[1].knobs:
        return True
    return agreement(docs[0], docs[1], tol).agree if docs[0].grad is not None and docs[1].grad is not None else False


# Above this many numbers in the broadcast of all pairs (pairs x elements), pairs are compared one by one:
# the broadcast of 21 results of 12.8 million elements would take tens of GB.
BROADCAST_LIMIT = 1 << 22


class _Table:
    """`difference` of every pair among the results whose `what` is finite and of the most common size."""

    def __init__(self, results: Mapping[str, Result], keys: list[str], what: str, tol: dict[str, float]) -> None:
        self.index = {}
        given = {k: getattr(results[k], what) for k in keys if getattr(results[k], what) is not None}
        sizes = [int(np.size(v)) for v in given.values()]
        size = max(set(sizes), key=sizes.count) if sizes else 0
        if size * sizes.count(size) ** 2 > BROADCAST_LIMIT:
            return
        arrays = {k: np.asarray(v, dtype=np.float64).reshape(-1) for k, v in given.items()}
        self.index = {k: i for i, k in enumerate(k for k, a in arrays.items() if a.size == size and size and np.isfinite(a).all())}
        if len(self.index) < 2:
            self.index = {}
            return
        stacked = np.stack([arrays[k] for k in self.index])
        self.max_abs, self.max_rel, self.agree = finite_gaps(
            stacked[:, None, :], stacked[None, :, :], tol["rtol"], tol["atol"], tol.get("norm", 0.0)
        )

    def difference(self, a: str, b: str) -> Difference | None:
        i, j = self.index.get(a), self.index.get(b)
        if i is None or j is None:
            return None
        return Difference(float(self.max_abs[i, j]), float(self.max_rel[i, j]), bool(self.agree[i, j]))


def groups(results: Mapping[str, Result], keys: Iterable[str], tol: dict[str, float], pairwise: Pairwise | None = None) -> list[list[str]]:
    """Greedy partition of the ok results among `keys` into mutually agreeing groups."""
    pairwise = pairwise or Pairwise(results, tol)
    out: list[list[str]] = []
    for key in order(k for k in keys if k in results and results[k].ok):
        for group in out:
            if all(pairwise(other, key).agree for other in group):
                group.append(key)
                break
        else:
            out.append([key])
    return out


def check_documented(result: Result, tol: dict[str, float], wide: dict[str, float] | None = None, keep: bool = False) -> Result:
    """The result with its documented formula's verdict: whether it matches the formula's value, under
    `tol` or, with a numerical note (`numerical`), under the case's allowance `wide`. The formula's
    gradient is dropped unless `keep` (the comparison still needs it)."""
    documented = result.documented
    if not result.ok or documented is None:
        return result
    found = agreement(result, documented, tol)
    note = None
    if not found.agree and wide is not None and wide != tol and agreement(result, documented, wide).agree:
        note = _note(result, documented, tol, wide)
        found = replace(found, agree=True)
    checked = replace(
        documented,
        agrees=found.agree,
        loss_max_abs=found.loss_max_abs,
        grad_max_abs=found.grad_max_abs,
        grad=documented.grad if keep else None,
    )
    return replace(result, documented=checked, numerical=note)


def _note(result: Result, documented: Any, tol: dict[str, float], wide: dict[str, float]) -> dict[str, Any]:
    """How far a result is off its documented float64 value, beyond the dtype's tolerance but within the
    allowance: per value (loss, grad) the rtol it needs with the dtype's atol (`rtol_needed`), its
    largest absolute gap (`max_abs`), and a sentence."""
    needed: dict[str, float] = {}
    gaps: dict[str, float] = {}
    parts = []
    for what, word in (("loss", "loss"), ("grad", "gradient")):
        mine, theirs = getattr(result, what), getattr(documented, what)
        if mine is None or theirs is None:
            continue
        found = difference(mine, theirs, **tol)
        if found.agree:
            continue
        needed[what], gaps[what] = rtol_needed(mine, theirs, tol["atol"]), found.max_abs
        if needed[what] <= wide["rtol"]:
            parts.append(f"{result.key}'s {word} is {needed[what]:.2g} off the float64 value here")
        else:
            share = found.max_abs / max(largest_finite(flat(mine)), largest_finite(flat(theirs)), np.finfo(float).tiny)
            parts.append(
                f"{result.key}'s {word} is up to {found.max_abs:.2g} off the float64 value here ({share:.2g} of its largest element)"
            )
    why = f"the allowance at this size is rtol {wide['rtol']:.2g}" + (
        f" and {wide['norm']:.2g} of the largest element" if wide.get("norm") else ""
    )
    return {"rtol_needed": needed, "max_abs": gaps, "allowance": wide, "text": "; ".join(parts) + f" ({why})"}


def check_expectation(
    expect: Expectation | None, results: Mapping[str, Result], tol: dict[str, float], pairwise: Pairwise | None = None
) -> tuple[str, str | None]:
    """'met', 'violated' or 'none', and what was violated. Only keys named and present are checked."""
    if expect is None or (expect.groups is None and expect.status is None and expect.values is None):
        return "none", None
    problems = []
    status = expect.statuses({key: result.status for key, result in results.items()})
    for key, wanted in status.items():
        have = results[key].status if key in results else None
        if have is not None and have != wanted:
            problems.append(f"{key} is {have}, expected {wanted}" + _because(results[key]))
    if expect.groups is not None:
        named = [k for group in expect.groups for k in group if k in results]
        for key in named:
            if not results[key].ok and status.get(key, "ok") == "ok":
                problems.append(f"{key} is {results[key].status}, expected ok" + _because(results[key]))
        live = [k for k in named if results[k].ok]
        wanted_groups = [[k for k in group if k in live] for group in expect.groups]
        wanted_set = {frozenset(g) for g in wanted_groups if g}
        found = groups(results, live, tol, pairwise)
        if {frozenset(g) for g in found} != wanted_set:
            problems.append(f"expected groups {_show(wanted_groups)}, found {_show(found)}")
    for key, printed in (expect.values or {}).items():
        result = results.get(key)
        if result is None:
            continue
        if not result.ok:
            problems.append(f"{key} is {result.status}, expected the printed value {printed}" + _because(result))
        elif not printed_match(result.loss, printed):
            problems.append(f"{key} gives {number(np.asarray(result.loss), result.dtype)}, the documentation prints {printed}")
    return ("violated", "; ".join(problems)) if problems else ("met", None)


def printed_match(value: Any, printed: Any) -> bool:
    """A value matches a printed number to one unit of its last printed digit (docs round or truncate),
    or to 4 float32 ulps where a float32 value was printed with more digits than it holds."""
    have = np.asarray(value, dtype=np.float64).reshape(-1)
    want = np.asarray(printed, dtype=np.float64).reshape(-1)
    if have.size != want.size:
        return False
    units = np.array([10.0 ** -_decimals(v) for v in np.asarray(printed, dtype=object).reshape(-1)])
    units = np.maximum(units, 4 * 2.0**-23 * np.abs(want))
    return bool(np.all(np.abs(have - want) <= units * (1 + 1e-9)))


def _decimals(number: Any) -> int:
    text = repr(float(number)).lower()
    if "e" in text:
        mantissa, exponent = text.split("e")
        digits = len(mantissa.split(".")[1]) if "." in mantissa else 0
        return max(digits - int(exponent), 0)
    return len(text.split(".")[1]) if "." in text and not text.endswith(".0") else 0


def _because(result: Result) -> str:
    message = result.message
    return f" ({message.splitlines()[0][:200]})" if message else ""


def _show(found: list[list[str]]) -> str:
    return "[" + ", ".join("[" + ", ".join(g) + "]" for g in found if g) + "]"


def compare(case: Case, results: Mapping[str, Result]) -> tuple[dict[str, Result], Comparison]:
    """The results in canonical order with their documented-formula verdicts, and their comparison:
    groups, pairwise differences, expectation verdict."""
    tol, wide = tolerance(case), allowance(case)
    checked = {key: check_documented(results[key], tol, wide, keep=True) for key in order(results)}
    ok = [k for k, r in checked.items() if r.ok]
    pairwise = Pairwise(checked, tol, wide)
    pairs = tuple(pairwise(a, b) for i, a in enumerate(ok) for b in ok[i + 1 :])
    verdict, message = check_expectation(case.expect, checked, tol, pairwise)
    found = groups(checked, checked, tol, pairwise)
    kept = {key: r if r.documented is None else replace(r, documented=replace(r.documented, grad=None)) for key, r in checked.items()}
    return kept, Comparison(tuple(tuple(g) for g in found), pairs, tol, verdict, message, wide if wide != tol else None)
