"""Agreement between results: tolerances, pairwise errors, groups, and expectation checks.

Two values agree when |a - b| <= atol + rtol * max(|a|, |b|) elementwise (symmetric, so the order of
frameworks never changes a verdict), NaN agrees with NaN and inf with an inf of the same sign. Two
results agree when their losses agree and, where both have one, their gradients agree.

Agreement is not transitive (a~b and b~c within tolerance, a!~c), so groups are formed greedily in a
fixed key order: each result joins the first group all of whose members it agrees with, otherwise it
starts a new group. Every member of a group therefore agrees with every other member.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from conformance import adapters, registry
from conformance.cases import Case, Expectation
from conformance.digits import number
from conformance.records import Comparison, Pair, Result

DEFAULT_TOLERANCE: dict[str, dict[str, float]] = {
    # float64: frameworks agree to ~1e-15 on the same formula; paddle builds its one-hot / label_smooth
    # in float32 constants (~1e-8 relative, ~3e-9 absolute in gradients), which rtol 1e-7 / atol 1e-8
    # absorb, while every semantic difference seen is >= 1e-4.
    "float64": {"rtol": 1e-7, "atol": 1e-8},
    # float32: different summation orders and log-sum-exp kernels differ by a few ulp (~1e-7 relative).
    "float32": {"rtol": 1e-5, "atol": 1e-6},
    "float16": {"rtol": 1e-2, "atol": 1e-3},
    "bfloat16": {"rtol": 4e-2, "atol": 1e-2},
}


@dataclass(frozen=True)
class Difference:
    """The largest absolute and relative differences between two arrays, and whether they agree."""

    max_abs: float
    max_rel: float
    agree: bool
    reason: str | None = None


def tolerance(case: Case) -> dict[str, float]:
    return {**DEFAULT_TOLERANCE[case.dtype], **case.tolerance}


def difference(a: Any, b: Any, rtol: float, atol: float) -> Difference:
    """Elementwise comparison of two arrays of any shape with the same number of elements."""
    x = np.asarray(a, dtype=np.float64).reshape(-1)
    y = np.asarray(b, dtype=np.float64).reshape(-1)
    if x.size != y.size:
        return Difference(float("inf"), float("inf"), False, f"{x.size} values vs {y.size}")
    if x.size == 0:
        return Difference(0.0, 0.0, True)
    if np.isfinite(x).all() and np.isfinite(y).all():  # the common case, in a third of the operations
        max_abs, max_rel, agree = _finite(x, y, rtol, atol)
        return Difference(float(max_abs), float(max_rel), bool(agree))
    both_nan = np.isnan(x) & np.isnan(y)
    same_inf = np.isinf(x) & np.isinf(y) & (np.sign(x) == np.sign(y))
    settled = both_nan | same_inf
    with np.errstate(invalid="ignore", over="ignore"):
        gap = np.where(settled, 0.0, np.abs(x - y))
        gap = np.where(np.isnan(gap), np.inf, gap)
        scale = np.maximum(np.abs(x), np.abs(y))
        rel = np.where(gap == 0, 0.0, np.where(np.isinf(gap), np.inf, gap / np.where(scale == 0, 1.0, scale)))
    ok = bool(np.all(gap <= atol + rtol * np.where(np.isfinite(scale), scale, 0.0)))
    return Difference(float(gap.max()), float(rel.max()), ok)


def _finite(x: np.ndarray, y: np.ndarray, rtol: float, atol: float) -> tuple[Any, Any, Any]:
    """`difference` of finite values along the last axis: the largest absolute and relative gaps and
    whether all agree (for one pair, or for every pair of a broadcast stack at once)."""
    gap = np.abs(x - y)
    scale = np.maximum(np.abs(x), np.abs(y))
    rel = gap / np.where(scale == 0, 1.0, scale)
    return gap.max(axis=-1), rel.max(axis=-1), (gap <= atol + rtol * scale).all(axis=-1)


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
    usual case), all pairs come from one broadcast over the stacked arrays, with `difference`'s formulas (`_finite`);
    the rest go through `difference` itself."""

    def __init__(self, results: Mapping[str, Result], tol: dict[str, float]) -> None:
        self.results = results
        self.tol = tol
        self.found: dict[tuple[str, str], Pair] = {}
        ok = [k for k, r in results.items() if r.ok]
        self.tables = {what: _Table(results, ok, what, tol) for what in ("loss", "grad")}

    def __call__(self, a: str, b: str) -> Pair:
        if (a, b) not in self.found:
            left, right = self.results[a], self.results[b]

            def differ(what: str) -> Difference:
                return self.tables[what].difference(a, b) or difference(getattr(left, what), getattr(right, what), **self.tol)

            self.found[(a, b)] = agreement(left, right, self.tol, differ, a, b)
        return self.found[(a, b)]


class _Table:
    """`difference` of every pair among the results whose `what` is finite and of the most common size."""

    def __init__(self, results: Mapping[str, Result], keys: list[str], what: str, tol: dict[str, float]) -> None:
        arrays = {
            k: np.asarray(getattr(results[k], what), dtype=np.float64).reshape(-1) for k in keys if getattr(results[k], what) is not None
        }
        sizes = [a.size for a in arrays.values()]
        size = max(set(sizes), key=sizes.count) if sizes else 0
        self.index = {k: i for i, k in enumerate(k for k, a in arrays.items() if a.size == size and size and np.isfinite(a).all())}
        if len(self.index) < 2:
            self.index = {}
            return
        stacked = np.stack([arrays[k] for k in self.index])
        self.max_abs, self.max_rel, self.agree = _finite(stacked[:, None, :], stacked[None, :, :], tol["rtol"], tol["atol"])

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


def check_documented(result: Result, tol: dict[str, float]) -> Result:
    """The result with its documented formula's verdict: whether it matches the formula's value."""
    documented = result.documented
    if not result.ok or documented is None:
        return result
    found = agreement(result, documented, tol)
    checked = replace(documented, agrees=found.agree, loss_max_abs=found.loss_max_abs, grad_max_abs=found.grad_max_abs, grad=None)
    return replace(result, documented=checked)


def check_expectation(
    expect: Expectation | None, results: Mapping[str, Result], tol: dict[str, float], pairwise: Pairwise | None = None
) -> tuple[str, str | None]:
    """'met', 'violated' or 'none', and what was violated. Only keys named and present are checked."""
    if expect is None or (expect.groups is None and expect.status is None and expect.values is None):
        return "none", None
    problems = []
    status = expect.status or {}
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
            problems.append(f"{key} gives {number(np.asarray(result.loss).tolist(), result.dtype)}, the documentation prints {printed}")
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
    tol = tolerance(case)
    checked = {key: check_documented(results[key], tol) for key in order(results)}
    ok = [k for k, r in checked.items() if r.ok]
    pairwise = Pairwise(checked, tol)
    pairs = tuple(pairwise(a, b) for i, a in enumerate(ok) for b in ok[i + 1 :])
    verdict, message = check_expectation(case.expect, checked, tol, pairwise)
    found = groups(checked, checked, tol, pairwise)
    return checked, Comparison(tuple(tuple(g) for g in found), pairs, tol, verdict, message)
