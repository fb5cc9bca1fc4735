"""Agreement of two arrays under a tolerance: the elementwise comparison every verdict rests on.

Two values agree when |a - b| <= atol + rtol * max(|a|, |b|) (symmetric, so the order of frameworks
never changes a verdict), NaN agrees with NaN and inf with an inf of the same sign. Comparison
(`conformance.compare`), baselines and their compact form all compare through `difference`; it sits
below them, so none of them reaches up to the other for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Difference:
    """The largest absolute and relative differences between two arrays, and whether they agree."""

    max_abs: float
    max_rel: float
    agree: bool
    reason: str | None = None


def difference(a: Any, b: Any, rtol: float, atol: float, norm: float = 0.0) -> Difference:
    """Elementwise comparison of two arrays of any shape with the same number of elements; `norm` adds
    norm * max(|a|, |b|) over all elements to the bound (rounding relative to the largest element)."""
    x, y = flat(a), flat(b)
    if x.size != y.size:
        return Difference(float("inf"), float("inf"), False, f"{x.size} values vs {y.size}")
    if x.size == 0:
        return Difference(0.0, 0.0, True)
    if x.size > CHUNK:  # in pieces, so a comparison of large arrays holds a few MB of temporaries, not GBs
        if norm:
            atol += norm * max(largest_finite(x), largest_finite(y))
        parts = [difference(x[i : i + CHUNK], y[i : i + CHUNK], rtol, atol) for i in range(0, x.size, CHUNK)]
        return Difference(max(p.max_abs for p in parts), max(p.max_rel for p in parts), all(p.agree for p in parts))
    x, y = x.astype(np.float64, copy=False), y.astype(np.float64, copy=False)
    if np.isfinite(x).all() and np.isfinite(y).all():  # the common case, in a third of the operations
        max_abs, max_rel, agree = finite_gaps(x, y, rtol, atol, norm)
        return Difference(float(max_abs), float(max_rel), bool(agree))
    both_nan = np.isnan(x) & np.isnan(y)
    same_inf = np.isinf(x) & np.isinf(y) & (np.sign(x) == np.sign(y))
    settled = both_nan | same_inf
    with np.errstate(invalid="ignore", over="ignore"):
        gap = np.where(settled, 0.0, np.abs(x - y))
        gap = np.where(np.isnan(gap), np.inf, gap)
        scale = np.maximum(np.abs(x), np.abs(y))
        rel = np.where(gap == 0, 0.0, np.where(np.isinf(gap), np.inf, gap / np.where(scale == 0, 1.0, scale)))
        finite = np.where(np.isfinite(scale), scale, 0.0)
    ok = bool(np.all(gap <= atol + rtol * finite + norm * (finite.max() if finite.size else 0.0)))
    return Difference(float(gap.max()), float(rel.max()), ok)


CHUNK = 1 << 20


def flat(value: Any) -> np.ndarray:
    """A value as a flat array: an array in its own float dtype (converted piece by piece later), else float64."""
    arr = np.asarray(value)
    return arr.reshape(-1) if arr.dtype.kind == "f" else arr.astype(np.float64).reshape(-1)


def largest_finite(x: np.ndarray) -> float:
    largest = 0.0
    for i in range(0, x.size, CHUNK):
        part = np.abs(x[i : i + CHUNK].astype(np.float64))
        part = part[np.isfinite(part)]
        largest = max(largest, float(part.max()) if part.size else 0.0)
    return largest


def finite_gaps(x: np.ndarray, y: np.ndarray, rtol: float, atol: float, norm: float = 0.0) -> tuple[Any, Any, Any]:
    """`difference` of finite values along the last axis: the largest absolute and relative gaps and
    whether all agree (for one pair, or for every pair of a broadcast stack at once)."""
    gap = np.abs(x - y)
    scale = np.maximum(np.abs(x), np.abs(y))
    rel = gap / np.where(scale == 0, 1.0, scale)
    bound = atol + rtol * scale
    if norm:
        bound = bound + norm * scale.max(axis=-1, keepdims=True)
    return gap.max(axis=-1), rel.max(axis=-1), (gap <= bound).all(axis=-1)


def rtol_needed(a: Any, b: Any, atol: float, norm: float = 0.0) -> float:
    """The smallest rtol under which `a` and `b` agree with `atol` (and `norm`): how far off a value
    is, without the elements a difference of two near-equal terms makes relatively huge."""
    x, y = flat(a), flat(b)
    if not x.size or x.size != y.size:
        return 0.0
    if norm:
        atol += norm * max(largest_finite(x), largest_finite(y))
    most = 0.0
    for i in range(0, x.size, CHUNK):
        xs, ys = x[i : i + CHUNK].astype(np.float64), y[i : i + CHUNK].astype(np.float64)
        with np.errstate(invalid="ignore"):
            scale = np.maximum(np.abs(xs), np.abs(ys))
            slack = np.abs(xs - ys) - atol
            needed = np.where(slack > 0, slack / np.where(scale == 0, np.inf, scale), 0.0)
        needed = needed[np.isfinite(xs) & np.isfinite(ys)]
        most = max(most, float(needed.max()) if needed.size else 0.0)
    return most
