"""`conformance.digits`: the fewest digits that read back as the same value of the dtype.

The round-trip texts of float16/32/64 are tested through the console (`tests/test_console.py`); here the
parts found untested by mutation testing (docs/mutation.md): bfloat16, which NumPy lacks and the module
rounds itself, arrays, and nested values. Expected values are worked out by hand from bfloat16's format:
8 significant bits, so between 1 and 2 its values are 1 + k/128, and a value halfway between two of them
rounds to the one whose last bit is 0 (k even: IEEE round to nearest, ties to even).
"""

from __future__ import annotations

import numpy as np
import pytest

from conformance import digits


@pytest.mark.parametrize(
    "value, text",
    [
        # 1 + 1/256: halfway between 1 (k=0, even) and 1 + 1/128 (k=1): rounds to 1, written "1"
        (1.00390625, "1"),
        # 1 + 3/256: halfway between 1 + 1/128 (k=1) and 1 + 2/128 (k=2, even): rounds to 1.015625; the texts
        # of 1 to 3 digits ("1", "1", "1.01") fall nearer other values, "1.012" rounds to it
        (1.01171875, "1.012"),
        # 1 + 5/256: halfway between k=2 (even) and k=3: rounds down to 1.015625; "1.02" is past the half
        # (rounds up to k=3), "1.0195" is below it
        (1.01953125, "1.0195"),
        # exactly a bfloat16 value (1 + 1/128 = 1.0078125): "1.01" is within half a step (1/256) of it
        (1.0078125, "1.01"),
        # one significant digit suffices: Python's %g writes it as "1e+01"
        (10.0, "1e+01"),
    ],
)
def test_bfloat16_values_get_the_fewest_digits_that_round_to_the_same_bfloat16(value, text):
    assert digits.number(value, "bfloat16") == text


def test_a_non_finite_bfloat16_value_is_written_as_numpy_writes_it():
    assert [digits.number(x, "bfloat16") for x in (float("inf"), float("-inf"), float("nan"))] == ["inf", "-inf", "nan"]


def test_an_array_is_written_element_by_element_at_its_dtypes_digits():
    """float32 0.1 is 0.100000001490116...: its shortest float32 text is "0.1" (float64 would print 17 digits)."""
    assert digits.number(np.array([0.1, 0.5], dtype=np.float32), "float32") == "[0.1, 0.5]"
    assert digits.number([[np.float32(0.1)], [np.float32(-2)]], "float32") == "[[0.1], [-2.0]]"


def test_nested_values_keep_the_dtype_at_every_level():
    """`shortest` of a float32 0.1 held as a float64 (as results travel) is 0.1 at any depth."""
    held = float(np.float32(0.1))
    assert held != 0.1
    assert digits.shortest([[held, 0.5]], "float32") == [[0.1, 0.5]]
    assert digits.shortest(np.array([held]), "float32") == [0.1]
    assert digits.shortest(held, None) == held  # float64: already its own shortest


def test_shortest_leaves_none_and_non_finite_values_as_they_are():
    assert digits.shortest(None, "float32") is None
    assert np.isnan(digits.shortest(float("nan"), "float32"))
    assert digits.shortest([float("inf"), -1.0], "float32") == [float("inf"), -1.0]
