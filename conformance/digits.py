"""Numbers at the precision of their dtype: what a float32 value really says, in the fewest digits.

Results travel and are stored as float64; a float32 loss printed as a float64 shows 17 digits of which
only ~9 mean anything, and a baseline written that way is three times larger than it needs to be. The
shortest text that reads back as the same value of the dtype is both exact and readable.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from conformance import compact


def number(value: Any, dtype: str | None) -> str:
    """A loss or gradient (a number or nested lists of numbers) written with the shortest digits that
    read back as the same value of `dtype` (float64 where None): results are stored as float64, and a
    float32 loss printed as a float64 shows 17 digits of which only ~9 mean anything. A large value
    (its compact form, or an array of more than `compact.COMPACT_ABOVE` elements) is summarised."""
    if compact.is_compact(value):
        return compact.text(value)
    if compact.large(value):
        return compact.text(compact.form(value, dtype))
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(number(v, dtype) for v in value) + "]"
    if isinstance(value, str) or value is None:
        return str(value)
    x = float(value)
    if dtype == "bfloat16" and np.isfinite(x):
        return _shortest_bfloat16(x)
    kind = {"float16": np.float16, "float32": np.float32, "bfloat16": np.float32}.get(dtype or "", np.float64)
    return str(kind(x))


def _shortest_bfloat16(x: float) -> str:
    """NumPy has no bfloat16: the fewest significant digits that round to the same bfloat16 value."""
    target = _bfloat16(x)
    for digits in range(1, 10):
        text = f"{x:.{digits}g}"
        if _bfloat16(float(text)) == target:
            return text
    return str(np.float32(x))


def _bfloat16(x: float) -> int:
    """`x` rounded to bfloat16 (the upper half of a float32, to nearest, ties to even), as its bits."""
    bits = int(np.array(x, dtype=np.float32).view(np.uint32))
    return (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16


def shortest(value: Any, dtype: str | None) -> Any:
    """A loss or gradient as nested lists of floats, each the shortest decimal that reads back as the
    same value of `dtype` (so rounding it to the dtype again gives the value itself). A compact value
    (`conformance.compact`) is kept as it is."""
    if value is None or compact.is_compact(value):
        return value
    if isinstance(value, (list, tuple)) or isinstance(value, np.ndarray) and value.ndim:
        return [shortest(v, dtype) for v in value]
    x = float(value)
    return float(number(x, dtype)) if np.isfinite(x) else x
