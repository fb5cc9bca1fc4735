"""Large values in a compact form: what results.json and baselines keep of an array of more than
`COMPACT_ABOVE` elements, instead of every element.

Comparison always uses every element (the arrays are in memory); only what is written is compact:
shape, dtype, statistics of the finite elements, `SAMPLES` elements at evenly spaced positions and the
`EXTREMES` largest in magnitude (with their positions), `CHECKSUMS` sums with fixed pseudo-random
signs, a digest of the exact values at their dtype, and in results.json the `LARGEST` differences from
the oracle's value (the float64 reference result) and where they are.

Replaying a compact baseline value against a new array (`replay`) detects: any change at all (the
digest); a change beyond tolerance at a sampled or extreme position, or of the minimum or maximum; and a
change whose plain, absolute or signed sum (a checksum) moves more than tolerance allows in total
(n * atol + rtol * (sum|old| + sum|new|)), e.g. any systematic change (a denominator scales every element).
It cannot tell whether a change of a few elements, inside the old range and small in total, is beyond
tolerance: such a value is counted as moved within tolerance, and flagged (`exact` false) so that a
baseline of the full value (`--max-elements`, a smaller case) can settle it.
"""

from __future__ import annotations

import functools
import hashlib
import math
from typing import Any

import numpy as np

from conformance.agreement import difference

COMPACT_ABOVE = 4096
SAMPLES = 16
EXTREMES = 4
CHECKSUMS = 4
LARGEST = 8
BLOCK = 1024  # elements per row when a large array is summed as a matrix
CHUNK = 1 << 20  # elements converted to float64 at a time
FORM = "compact"
_STORAGE = {"float16": np.float16, "float32": np.float32, "bfloat16": np.float32, "float64": np.float64}


def is_compact(value: Any) -> bool:
    return isinstance(value, dict) and value.get("form") == FORM


def large(value: Any) -> bool:
    """Whether `value` is an array that results.json and baselines keep in the compact form."""
    return isinstance(value, np.ndarray) and value.size > COMPACT_ABOVE


def form(value: np.ndarray, dtype: str | None, against: tuple[str, Any] | None = None) -> dict[str, Any]:
    """The compact form of an array; `against`: (key, array) whose largest differences from it to show.
    Computed piece by piece (`CHUNK` elements in float64 at a time), so it holds no copy of the array."""
    x = _flat(value)
    out: dict[str, Any] = {"form": FORM, "shape": list(np.shape(value)), "dtype": dtype, "size": int(x.size)}
    out["stats"] = _stats(x)
    samples = _sample_positions(x.size)
    out["samples"] = {"index": _where(samples, value), "value": _values(x, samples)}
    extremes = _top(x.size, lambda part: _magnitude(_piece(x, part)), EXTREMES)
    out["extremes"] = {"index": _where(extremes, value), "value": _values(x, extremes)}
    out["checksums"] = checksums(x)
    out["digest"] = digest(x, dtype)
    other = None if against is None else _flat(against[1])
    if against is not None and other is not None and other.size == x.size:
        top = _top(x.size, lambda part: _gap(_piece(x, part), _piece(other, part)), LARGEST)
        out["largest_differences"] = {
            "against": against[0],
            "index": _where(top, value),
            "value": _values(x, top),
            "other": _values(other, top),
            "abs": _gap(x[top].astype(np.float64), other[top].astype(np.float64)).tolist(),
        }
    return out


def digest(x: np.ndarray, dtype: str | None) -> str:
    """SHA-256 of the values at their dtype (-0 as 0, every NaN alike): equal exactly when the values are."""
    storage = _STORAGE.get(dtype or "float64", np.float64)
    flat = _flat(x)
    found = hashlib.sha256()
    for part in _parts(flat.size):
        stored = np.asarray(flat[part], dtype=storage)
        stored = stored + stored.dtype.type(0)  # -0 + 0 = +0
        if np.isnan(stored).any():
            stored = np.where(np.isnan(stored), np.nan, stored).astype(storage)
        found.update(np.ascontiguousarray(stored).data)
    return found.hexdigest()[:32]


def checksums(x: np.ndarray) -> list[float]:
    """Signed sums sum(s_i x_i) with fixed pseudo-random signs s (non-finite elements count 0): a change of
    many elements that leaves the plain sum alone (values moved between positions) still moves them. The
    signs of element (row r, column j) of x seen as rows of BLOCK are a[r] * b[j, k], so all CHECKSUMS
    sums are matrix products."""
    flat = _flat(x)
    rows = flat.size // BLOCK
    a, b = _signs(rows)
    total = np.zeros(CHECKSUMS)
    step = max(CHUNK // BLOCK, 1)
    for first in range(0, rows, step):
        block = _finite(flat[first * BLOCK : min(first + step, rows) * BLOCK]).reshape(-1, BLOCK)
        total += ((block @ b) * a[first : first + block.shape[0]]).sum(axis=0)
    tail = _finite(flat[rows * BLOCK :])
    return [float(v) for v in total + tail @ b[: tail.size]]


def replay(old: dict[str, Any], new: Any, tol: dict[str, float]) -> tuple[float, float, bool, bool]:
    """A compact baseline value against a new array: (largest absolute and relative change seen at the
    checked positions and statistics, whether within tolerance as far as the form can tell, exact)."""
    x = _flat(new)
    if x.size != old["size"]:
        return float("inf"), float("inf"), False, False
    exact = digest(x, old.get("dtype")) == old["digest"]
    if exact:
        return 0.0, 0.0, True, True
    positions = [_position(i, old["shape"]) for part in ("samples", "extremes") for i in old[part]["index"]]
    before = old["samples"]["value"] + old["extremes"]["value"]
    found = difference(before, _values(x, np.asarray(positions, dtype=np.int64)), **tol)
    stats = _stats(x)
    edges = difference([old["stats"]["min"], old["stats"]["max"]], [stats["min"], stats["max"]], **tol)
    counts_same = all(old["stats"][k] == stats[k] for k in ("nan", "posinf", "neginf"))
    bound = x.size * (tol["atol"] + tol.get("norm", 0.0) * max(abs(stats["min"]), abs(stats["max"])))
    bound += tol["rtol"] * (old["stats"]["abs_sum"] + stats["abs_sum"]) + 1e-12 * (old["stats"]["abs_sum"] + stats["abs_sum"])
    sums = [old["stats"]["sum"], old["stats"]["abs_sum"], *old["checksums"]]
    now = [stats["sum"], stats["abs_sum"], *checksums(x)]
    within_sums = all(abs(a - b) <= bound for a, b in zip(sums, now, strict=True))
    agree = found.agree and edges.agree and counts_same and within_sums
    return max(found.max_abs, edges.max_abs), max(found.max_rel, edges.max_rel), agree, False


def text(value: Any) -> str:
    """One line for people: shape, dtype and the statistics (terminal, failure tables)."""
    s = value["stats"]
    shape = "x".join(str(d) for d in value["shape"])
    stats = f"min {s['min']:.6g}, max {s['max']:.6g}, mean {s['mean']:.6g}"
    return f"[{shape} {value.get('dtype') or 'float64'}: {stats}, sha {value['digest'][:8]}]"


def _stats(x: np.ndarray) -> dict[str, Any]:
    """min, max, mean, std of the finite elements, their sum and absolute sum (float64, piece by piece, so
    the same array always gives the same numbers), and the counts of NaN and infinities."""
    total = absolute = squares = 0.0
    low, high = np.inf, -np.inf
    counted = nan = posinf = neginf = 0
    for part in _parts(x.size):
        piece = _piece(x, part)
        finite = np.isfinite(piece)
        if not finite.all():
            nan += int(np.isnan(piece).sum())
            posinf += int(np.isposinf(piece).sum())
            neginf += int(np.isneginf(piece).sum())
            piece = piece[finite]
        if piece.size:
            total += float(piece.sum())
            absolute += float(np.abs(piece).sum())
            squares += float(piece @ piece)
            low, high = min(low, float(piece.min())), max(high, float(piece.max()))
            counted += piece.size
    mean = total / counted if counted else float("nan")
    return {
        "min": low if counted else float("nan"),
        "max": high if counted else float("nan"),
        "mean": mean,
        "std": math.sqrt(max(squares / counted - mean * mean, 0.0)) if counted else float("nan"),
        "sum": total,
        "abs_sum": absolute,
        "nan": nan,
        "posinf": posinf,
        "neginf": neginf,
    }


def _sample_positions(size: int) -> np.ndarray:
    return np.unique(np.linspace(0, size - 1, min(SAMPLES, size)).round().astype(np.int64))


def _top(size: int, scores: Any, count: int) -> np.ndarray:
    """Positions of the `count` largest of `scores(part)` over the pieces of an array of `size`, largest
    first (ties: the lower position first)."""
    count = min(count, size)
    best_positions = np.zeros(0, dtype=np.int64)
    best_scores = np.zeros(0)
    for part in _parts(size):
        score = scores(part)
        keep = min(count, score.size)
        local = _local_top(score, keep)
        best_positions = np.concatenate([best_positions, local + part.start])
        best_scores = np.concatenate([best_scores, score[local]])
    order = np.lexsort((best_positions, -best_scores))[:count]
    return best_positions[order]


def _local_top(score: np.ndarray, keep: int) -> np.ndarray:
    """Positions of `keep` largest scores of one piece: the largest lie in the `keep` rows of BLOCK whose
    maxima are largest, so only those rows are searched."""
    rows = score.size // BLOCK
    if rows <= 4 * keep:
        return np.argpartition(-score, keep - 1)[:keep]
    maxima = score[: rows * BLOCK].reshape(rows, BLOCK).max(axis=1)
    chosen = np.argpartition(-maxima, keep - 1)[:keep]
    candidates = np.concatenate([(chosen[:, None] * BLOCK + np.arange(BLOCK)).reshape(-1), np.arange(rows * BLOCK, score.size)])
    return candidates[np.argpartition(-score[candidates], keep - 1)[:keep]]


def _magnitude(x: np.ndarray) -> np.ndarray:
    """|x| with NaN as 0 (infinities rank first)."""
    found = np.abs(x)
    return found if not np.isnan(found).any() else np.nan_to_num(found, nan=0.0, posinf=np.inf)


def _gap(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """|x - y| with NaN against NaN (and equal infinities) as 0, NaN against a number as inf."""
    with np.errstate(invalid="ignore"):
        gap = np.abs(x - y)
    if np.isnan(gap).any():
        gap = np.where((np.isnan(x) & np.isnan(y)) | (x == y), 0.0, np.where(np.isnan(gap), np.inf, gap))
    return gap


def _flat(value: Any) -> np.ndarray:
    arr = np.asarray(value)
    return arr.reshape(-1) if arr.dtype.kind == "f" else arr.astype(np.float64).reshape(-1)


def _parts(size: int) -> list[slice]:
    return [slice(i, min(i + CHUNK, size)) for i in range(0, size, CHUNK)]


def _piece(x: np.ndarray, part: slice) -> np.ndarray:
    return x[part].astype(np.float64)


def _finite(x: np.ndarray) -> np.ndarray:
    piece = x.astype(np.float64)
    return piece if np.isfinite(piece).all() else np.where(np.isfinite(piece), piece, 0.0)


def _values(x: np.ndarray, positions: np.ndarray) -> list[float]:
    return [float(v) for v in x[positions].astype(np.float64)]


def _where(flat: np.ndarray, value: Any) -> list[list[int]]:
    shape = np.shape(value)
    return np.stack(np.unravel_index(flat, shape), axis=1).tolist() if shape else [[] for _ in flat]


def _position(index: list[int], shape: list[int]) -> int:
    return int(np.ravel_multi_index(tuple(index), tuple(shape))) if shape else 0


@functools.lru_cache(maxsize=4)
def _signs(rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Row signs a (rows, CHECKSUMS) and column signs b (BLOCK, CHECKSUMS), +1/-1, fixed for a size."""
    rng = np.random.default_rng(20260)
    b = rng.integers(0, 2, (BLOCK, CHECKSUMS)) * 2.0 - 1.0
    a = np.random.default_rng(rows).integers(0, 2, (rows, CHECKSUMS)) * 2.0 - 1.0
    return a, b
