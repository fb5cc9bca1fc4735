"""`conformance.compact`: the compact form of large values and its baseline replay.

Expected statistics, positions and sums are computed here with plain NumPy on the same array (loops and
`argsort`, not the module's block search or matrix products); what a replay must detect follows from the
module's stated bound: every element within atol + rtol * max(|a|, |b|) moves any sum by at most
n * atol + rtol * (sum|a| + sum|b|).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from conformance import compact

TOL = {"rtol": 1e-5, "atol": 1e-6}


@pytest.fixture(scope="module")
def grad() -> np.ndarray:
    """A float32 array of 3 x 5,000 (above the threshold, not a multiple of the 1,024-element block)."""
    return np.random.default_rng(5).standard_normal((3, 5000)).astype(np.float32)


def test_small_values_stay_whole_and_large_ones_compact():
    assert not compact.large(np.zeros(compact.COMPACT_ABOVE))
    assert compact.large(np.zeros(compact.COMPACT_ABOVE + 1))
    assert not compact.large([0.0] * 5000)  # lists (values already written) are not arrays in memory


def test_form_statistics_samples_and_extremes(grad):
    form = compact.form(grad, "float32")
    flat = grad.astype(np.float64).reshape(-1)
    assert form["form"] == "compact" and form["shape"] == [3, 5000] and form["dtype"] == "float32" and form["size"] == 15000
    stats = form["stats"]
    assert stats["min"] == flat.min() and stats["max"] == flat.max()
    assert stats["sum"] == pytest.approx(sum(flat.tolist()), rel=1e-12)
    assert stats["abs_sum"] == pytest.approx(sum(abs(v) for v in flat.tolist()), rel=1e-12)
    assert stats["mean"] == pytest.approx(flat.mean()) and stats["std"] == pytest.approx(flat.std())
    assert (stats["nan"], stats["posinf"], stats["neginf"]) == (0, 0, 0)
    for (row, col), value in zip(form["samples"]["index"], form["samples"]["value"], strict=True):
        assert grad[row, col] == value
    assert form["samples"]["index"][0] == [0, 0] and form["samples"]["index"][-1] == [2, 4999]
    largest = np.argsort(-np.abs(flat), kind="stable")[: compact.EXTREMES]
    assert [r * 5000 + c for r, c in form["extremes"]["index"]] == largest.tolist()
    json.dumps(form, allow_nan=True)  # plain JSON


def test_checksums_are_signed_sums(grad):
    """Each checksum is sum(s_i x_i) for signs +-1: the same as summing with the signs written out."""
    flat = grad.astype(np.float64).reshape(-1)
    a, b = compact._signs(flat.size // compact.BLOCK)
    rows = flat.size // compact.BLOCK
    for k, value in enumerate(compact.checksums(flat)):
        signs = np.concatenate([(a[:, k][:, None] * b[:, k][None, :]).reshape(-1), b[: flat.size - rows * compact.BLOCK, k]])
        assert set(np.unique(signs)) == {-1.0, 1.0}
        assert value == pytest.approx(float(np.sum(signs * flat)), rel=1e-9, abs=1e-9)


def test_largest_differences_point_at_the_changed_elements(grad):
    other = grad.astype(np.float64)
    other[1, 17] += 0.5
    other[2, 4000] -= 0.25
    found = compact.form(grad, "float32", ("reference", other))["largest_differences"]
    assert found["against"] == "reference"
    assert found["index"][:2] == [[1, 17], [2, 4000]]
    assert found["abs"][:2] == pytest.approx([0.5, 0.25])
    assert found["other"][0] == other[1, 17] and found["value"][0] == grad[1, 17]


def test_digest_is_exact_and_ignores_the_sign_of_zero_and_nan_payloads():
    x = np.linspace(-1, 1, 5000, dtype=np.float32)
    assert compact.digest(x, "float32") == compact.digest(x.copy(), "float32")
    y = x.copy()
    y[100] = np.nextafter(y[100], np.float32(2))
    assert compact.digest(x, "float32") != compact.digest(y, "float32")
    zeros = np.zeros(5000)
    assert compact.digest(zeros, None) == compact.digest(-zeros, None)


def test_non_finite_values_are_counted_not_summed():
    x = np.ones(5000)
    x[[3, 4]] = np.nan
    x[5] = np.inf
    x[6] = -np.inf
    stats = compact.form(x, "float64")["stats"]
    assert (stats["nan"], stats["posinf"], stats["neginf"]) == (2, 1, 1)
    assert stats["sum"] == 4996.0 and stats["max"] == 1.0


# ---------------------------------------------------------------- replay: what it detects and what it cannot


def replay(old: np.ndarray, new: np.ndarray) -> tuple[bool, bool]:
    _, _, agree, exact = compact.replay(json.loads(json.dumps(compact.form(old, "float32"))), new, TOL)
    return agree, exact


def test_replay_of_the_same_values_is_exact(grad):
    assert replay(grad, grad.copy()) == (True, True)


def test_replay_accepts_rounding_noise_within_tolerance(grad):
    noisy = grad * np.float32(1 + 2e-7)
    assert replay(grad, noisy) == (True, False)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda g: g * np.float32(1.001), id="every element scaled (a denominator)"),
        pytest.param(lambda g: g + np.float32(1e-4), id="every element shifted"),
        pytest.param(lambda g: np.random.default_rng(1).permutation(g.reshape(-1)).reshape(g.shape), id="values moved between positions"),
        pytest.param(lambda g: np.where(np.arange(g.size).reshape(g.shape) == 7, np.float32(50), g), id="one element beyond the range"),
        pytest.param(lambda g: np.where(np.arange(g.size).reshape(g.shape) == 5000, np.float32(3), g), id="one sampled element"),
    ],
)
def test_replay_detects_changes_beyond_tolerance(grad, change):
    assert replay(grad, change(grad).astype(np.float32)) == (False, False)


def test_replay_cannot_settle_one_element_moved_inside_the_range(grad):
    """The documented limit: one unsampled element moved within the old range, by less than the sums'
    bound (here 15,000 * 1e-6 + 1e-5 * (sum|old| + sum|new|), about 0.25), moves no statistic beyond it,
    so the value counts as moved within tolerance, flagged not exact. (By 0.5 the sums catch it.)"""
    changed = grad.copy()
    changed[0, 1] = grad[0, 1] + np.float32(0.1)
    assert replay(grad, np.where(changed == changed[0, 1], grad[0, 1] + np.float32(0.5), changed)) == (False, False)
    assert abs(changed[0, 1]) < np.abs(grad).max()
    assert replay(grad, changed) == (True, False)


def test_replay_of_another_size_is_a_change(grad):
    max_abs, _, agree, exact = compact.replay(compact.form(grad, "float32"), grad.reshape(-1)[:-1], TOL)
    assert (agree, exact) == (False, False) and max_abs == float("inf")


def test_text_names_shape_dtype_and_statistics(grad):
    text = compact.text(compact.form(grad, "float32"))
    assert text.startswith("[3x5000 float32: min ") and "sha " in text


def test_pieces_give_the_same_form_as_one_piece(grad, monkeypatch):
    """The form is computed CHUNK elements at a time: with pieces of 1,000 (and a NaN, an inf) positions,
    digest and counts are the same as in one piece, the sums equal to rounding."""
    values = grad.copy()
    values[0, 10], values[2, 7] = np.nan, np.inf
    other = values.astype(np.float64) + np.linspace(0, 1e-3, values.size).reshape(values.shape)
    other[0, 10] = 1.0  # a number against NaN: an infinite difference (NaN against NaN, inf against inf: none)
    whole = compact.form(values, "float32", ("reference", other))
    monkeypatch.setattr(compact, "CHUNK", 1000)
    pieces = compact.form(values, "float32", ("reference", other))
    for key in ("samples", "extremes", "digest", "largest_differences"):
        assert json.dumps(pieces[key]) == json.dumps(whole[key]), key  # as written (NaN as NaN)
    assert pieces["stats"] == pytest.approx(whole["stats"], rel=1e-12, nan_ok=True)
    assert pieces["checksums"] == pytest.approx(whole["checksums"], rel=1e-12)
    assert whole["largest_differences"]["index"][:2] == [[0, 10], [2, 4999]]
    assert whole["largest_differences"]["abs"][0] == math.inf


def test_the_largest_elements_of_a_large_array_are_found():
    """The search visits only the rows of 1,024 with the largest maxima: the same positions as a sort."""
    values = np.random.default_rng(11).standard_normal(300_000)
    values[[5, 123_456, 299_999]] = [40.0, -50.0, 45.0]
    form = compact.form(values, "float64", ("reference", np.zeros_like(values)))
    expected = np.argsort(-np.abs(values), kind="stable")
    assert [i[0] for i in form["extremes"]["index"]] == expected[: compact.EXTREMES].tolist()
    assert [i[0] for i in form["largest_differences"]["index"]] == expected[: compact.LARGEST].tolist()
    assert form["extremes"]["index"][:3] == [[123_456], [299_999], [5]]


def test_terminal_numbers_summarise_large_values(grad):
    """Failure tables and baseline lines print a large value (or its compact form) as one short line."""
    from conformance import digits

    form = compact.form(grad, "float32")
    assert digits.number(form, "float32") == digits.number(grad, "float32") == compact.text(form)
    assert digits.shortest(form, "float32") is form
