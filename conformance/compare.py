"""Agreement between results: tolerances, pairwise errors, groups, and expectation checks.

Two values agree when |a - b| <= atol + rtol * max(|a|, |b|) elementwise (symmetric, so the order of
frameworks never changes a verdict), NaN agrees with NaN and inf with an inf of the same sign. Two
results agree when their losses agree and, where both have one, their gradients agree.

Agreement is not transitive (a~b and b~c within tolerance, a!~c), so groups are formed greedily in a
fixed key order: each result joins the first group all of whose members it agrees with, otherwise it
starts a new group. Every member of a group therefore agrees with every other member.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from conformance import adapters, registry
from conformance.cases import Case, Expectation

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
    left: dict[str, Any], right: dict[str, Any], tol: dict[str, float], differ: Callable[[str], Difference] | None = None
) -> dict[str, Any]:
    """Loss and gradient differences of two ok results. `differ("loss")` / `differ("grad")` gives a
    difference (`Pairwise` looks it up in its table); by default `difference` computes it."""
    differ = differ or (lambda what: difference(left[what], right[what], **tol))
    loss = differ("loss")
    out: dict[str, Any] = {"loss_max_abs": loss.max_abs, "loss_max_rel": loss.max_rel, "agree": loss.agree}
    if loss.reason:
        out["reason"] = f"loss shapes differ: {loss.reason}"
    if left.get("grad") is not None and right.get("grad") is not None:
        grad = differ("grad")
        out.update(grad_max_abs=grad.max_abs, grad_max_rel=grad.max_rel, agree=loss.agree and grad.agree)
    return out


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

    def __init__(self, results: dict[str, dict[str, Any]], tol: dict[str, float]) -> None:
        self.results = results
        self.tol = tol
        self.found: dict[tuple[str, str], dict[str, Any]] = {}
        ok = [k for k, r in results.items() if r.get("status") == "ok"]
        self.tables = {what: _Table(results, ok, what, tol) for what in ("loss", "grad")}

    def __call__(self, a: str, b: str) -> dict[str, Any]:
        if (a, b) not in self.found:
            left, right = self.results[a], self.results[b]

            def differ(what: str) -> Difference:
                return self.tables[what].difference(a, b) or difference(left[what], right[what], **self.tol)

            self.found[(a, b)] = agreement(left, right, self.tol, differ)
        return self.found[(a, b)]


class _Table:
    """`difference` of every pair among the results whose `what` is finite and of the most common size."""

    def __init__(self, results: dict[str, dict[str, Any]], keys: list[str], what: str, tol: dict[str, float]) -> None:
        arrays = {k: np.asarray(results[k][what], dtype=np.float64).reshape(-1) for k in keys if results[k].get(what) is not None}
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


def groups(
    results: dict[str, dict[str, Any]], keys: Iterable[str], tol: dict[str, float], pairwise: Pairwise | None = None
) -> list[list[str]]:
    """Greedy partition of the ok results among `keys` into mutually agreeing groups."""
    pairwise = pairwise or Pairwise(results, tol)
    out: list[list[str]] = []
    for key in order(k for k in keys if results.get(k, {}).get("status") == "ok"):
        for group in out:
            if all(pairwise(other, key)["agree"] for other in group):
                group.append(key)
                break
        else:
            out.append([key])
    return out


def check_documented(results: dict[str, dict[str, Any]], tol: dict[str, float]) -> None:
    """Mark each result that carries its documented formula's value with whether it matches it."""
    for result in results.values():
        documented = result.get("documented")
        if result.get("status") != "ok" or not documented:
            continue
        found = agreement(result, documented, tol)
        documented.update(agrees=found["agree"], loss_max_abs=found["loss_max_abs"], grad_max_abs=found.get("grad_max_abs"))


def check_expectation(
    expect: Expectation | None, results: dict[str, dict[str, Any]], tol: dict[str, float], pairwise: Pairwise | None = None
) -> tuple[str, str | None]:
    """'met', 'violated' or 'none', and what was violated. Only keys named and present are checked."""
    if expect is None or (expect.groups is None and expect.status is None and expect.values is None):
        return "none", None
    problems = []
    status = expect.status or {}
    for key, wanted in status.items():
        have = results.get(key, {}).get("status")
        if have is not None and have != wanted:
            problems.append(f"{key} is {have}, expected {wanted}" + _because(results[key]))
    if expect.groups is not None:
        named = [k for group in expect.groups for k in group if k in results]
        for key in named:
            if results[key]["status"] != "ok" and status.get(key, "ok") == "ok":
                problems.append(f"{key} is {results[key]['status']}, expected ok" + _because(results[key]))
        live = [k for k in named if results[k]["status"] == "ok"]
        wanted_groups = [[k for k in group if k in live] for group in expect.groups]
        wanted_set = {frozenset(g) for g in wanted_groups if g}
        found = groups(results, live, tol, pairwise)
        if {frozenset(g) for g in found} != wanted_set:
            problems.append(f"expected groups {_show(wanted_groups)}, found {_show(found)}")
    for key, printed in (expect.values or {}).items():
        result = results.get(key)
        if result is None:
            continue
        if result["status"] != "ok":
            problems.append(f"{key} is {result['status']}, expected the printed value {printed}" + _because(result))
        elif not printed_match(result["loss"], printed):
            problems.append(f"{key} gives {np.asarray(result['loss']).tolist()}, the documentation prints {printed}")
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


def _because(result: dict[str, Any]) -> str:
    message = result.get("message")
    return f" ({message.splitlines()[0][:200]})" if message else ""


def _show(found: list[list[str]]) -> str:
    return "[" + ", ".join("[" + ", ".join(g) + "]" for g in found if g) + "]"


def compare(case: Case, results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The comparison part of a case record: groups, pairwise differences, expectation verdict."""
    tol = tolerance(case)
    check_documented(results, tol)
    ok = order(k for k, r in results.items() if r["status"] == "ok")
    pairwise = Pairwise(results, tol)
    pairs = []
    for i, a in enumerate(ok):
        for b in ok[i + 1 :]:
            pairs.append({"a": a, "b": b, **pairwise(a, b)})
    verdict, message = check_expectation(case.expect, results, tol, pairwise)
    return {
        "groups": groups(results, results, tol, pairwise),
        "pairs": pairs,
        "tolerance": tol,
        "expectation": verdict,
        "expectation_message": message,
    }
