"""`conformance.compare`: elementwise agreement, agreement groups, expectation checks, tolerances.

Results here are hand-made `Result` records (`status`, `loss`, `grad`, `message`), so no framework runs.
Expected verdicts and tolerances are literals worked out by hand from the rule in docs/comparison.md
`|a - b| <= atol + rtol * max(|a|, |b|)` and its table of default tolerances, never read from `compare`.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import replace

import numpy as np
import pytest

from conformance import agreement, cases, compare
from conformance.cases import Expectation
from conformance.compare import DEFAULT_TOLERANCE, check_expectation, difference, groups
from conformance.records import Documented, Result

TOL = {"rtol": 0.0, "atol": 1.0}


def ok(loss, grad=None) -> Result:
    return Result(key="", api="api", status="ok", loss=np.asarray(loss, dtype=np.float64), grad=grad)


def failed(status: str, message: str) -> Result:
    return Result(key="", api="api", status=status, message=message)


def found_groups(case, results: dict) -> list[list[str]]:
    """The groups `compare.compare` finds, as lists."""
    return [list(group) for group in compare.compare(case, results)[1].groups]


def make_case(**spec: object):
    spec.setdefault("id", "c")
    spec.setdefault("logits", [[0.05, 0.95, 0.0], [0.1, 0.8, 0.1]])
    spec.setdefault("labels", [1, 2])
    return cases.load_text(json.dumps({"cases": [spec]}), "x.yaml")[0]


# ---------------------------------------------------------------- difference

SPECIAL_VALUES = [0.0, 1.0, -1.0, 1.0 + 1e-9, 1e-12, 1e300, math.inf, -math.inf, math.nan]


@pytest.mark.parametrize("a, b", list(itertools.product(SPECIAL_VALUES, repeat=2)))
def test_difference_is_symmetric_on_special_values(a, b):
    """Protects 'the order of frameworks never changes a verdict', NaN and infinities included."""
    for rtol, atol in ((1e-7, 1e-9), (0.0, 0.0), (0.5, 0.0)):
        forward = difference([a], [b], rtol, atol)
        backward = difference([b], [a], rtol, atol)
        assert forward.agree == backward.agree
        assert forward.max_abs == backward.max_abs or (math.isnan(forward.max_abs) and math.isnan(backward.max_abs))


def test_difference_is_symmetric_on_random_arrays():
    """Protects symmetry where the relative scale is max(|a|, |b|): pairs straddling the tolerance edge."""
    rng = np.random.default_rng(0)
    for _ in range(300):
        a = rng.standard_normal(4) * 10.0 ** rng.integers(-3, 4)
        b = a * (1 + rng.choice([-1, 1], 4) * 10.0 ** rng.uniform(-8, -4, 4))
        rtol = 10.0 ** rng.uniform(-7, -4)
        assert difference(a, b, rtol, 0.0).agree == difference(b, a, rtol, 0.0).agree


def test_nan_agrees_with_nan_and_infinities_by_sign():
    """Protects the special-value rules: NaN == NaN, inf == inf of the same sign, inf != -inf,
    NaN != any number, inf != any finite number (however loose the tolerance)."""
    assert difference([math.nan], [math.nan], 0.0, 0.0).agree
    assert difference([math.inf], [math.inf], 0.0, 0.0).agree
    assert difference([-math.inf], [-math.inf], 0.0, 0.0).agree
    assert not difference([math.inf], [-math.inf], 1.0, 1e300).agree
    assert not difference([math.nan], [1.0], 1.0, 1e300).agree
    assert not difference([math.nan], [math.inf], 1.0, 1e300).agree
    assert not difference([math.inf], [1e300], 1.0, 1e300).agree
    assert difference([math.nan, 1.0, math.inf], [math.nan, 1.0, math.inf], 0.0, 0.0).max_abs == 0.0


def test_difference_rejects_different_sizes_with_a_reason():
    """Protects size mismatches (e.g. per-sample vs reduced loss): they disagree and say why."""
    found = difference([1.0, 2.0], [1.0, 2.0, 3.0], 1.0, 1.0)
    assert not found.agree
    assert found.reason and "2" in found.reason and "3" in found.reason
    assert not difference([3.0], [1.0, 2.0], 1.0, 1.0).agree


def test_difference_ignores_shape_when_values_match():
    """Protects '(N,) vs (N, 1)' (paddle's label-shaped `none` output): equal values agree."""
    found = difference(np.array([0.5, 1.5]), np.array([[0.5], [1.5]]), 0.0, 0.0)
    assert found.agree and found.reason is None
    assert difference(np.array(2.0), np.array([2.0]), 0.0, 0.0).agree


def test_difference_uses_atol_plus_rtol_times_the_larger_magnitude():
    """Protects the agreement rule |a - b| <= atol + rtol * max(|a|, |b|) and the reported maxima."""
    assert difference([100.0], [101.0], 0.01, 0.0).agree
    assert not difference([100.0], [101.1], 0.01, 0.0).agree
    assert difference([0.0], [0.5], 0.0, 0.5).agree
    assert not difference([0.0], [0.5], 0.0, 0.49).agree
    found = difference([1.0, 10.0], [1.5, 10.0], 0.0, 1.0)
    assert found.max_abs == pytest.approx(0.5)
    assert found.max_rel == pytest.approx(0.5 / 1.5)


def test_difference_scales_rtol_by_the_values_and_adds_atol_as_is():
    """Protects the roles of rtol and atol (swapped, the rule reads rtol + atol * scale): at rtol 1e-7 and
    atol 1e-3, 1000 and 1000.5 may differ by 1e-3 + 1e-7 * 1000.5 = 0.00110005 and do not agree (swapped:
    1.0005, they would); 0 and 5e-4 may differ by 1e-3 and agree (swapped: 1.0005e-7, they would not).
    Checked on the finite path, on the path taken when a NaN is present, and in the all-pairs table."""
    rtol, atol = 1e-7, 1e-3
    assert not difference([1000.0], [1000.5], rtol, atol).agree
    assert difference([0.0], [5e-4], rtol, atol).agree
    assert not difference([1000.0, math.nan], [1000.5, math.nan], rtol, atol).agree
    assert difference([0.0, math.nan], [5e-4, math.nan], rtol, atol).agree
    tol = {"rtol": rtol, "atol": atol}
    assert groups({"torch": ok(1000.0), "paddle": ok(1000.5)}, ["torch", "paddle"], tol) == [["torch"], ["paddle"]]
    assert groups({"torch": ok(0.0), "paddle": ok(5e-4)}, ["torch", "paddle"], tol) == [["torch", "paddle"]]


def test_empty_arrays_agree():
    """Protects empty batches (both frameworks return an empty loss)."""
    assert difference([], [], 0.0, 0.0).agree


# ---------------------------------------------------------------- groups


def test_groups_split_a_non_transitive_chain_into_mutually_agreeing_groups():
    """Protects greedy grouping: a~b and b~c but a!~c gives two groups, each internally agreeing."""
    results = {"torch": ok(0.0), "paddle": ok(0.9), "tensorflow": ok(1.8)}
    found = groups(results, list(results), TOL)
    assert found == [["torch", "paddle"], ["tensorflow"]]
    for group in found:
        for x, y in itertools.combinations(group, 2):
            assert difference(results[x].loss, results[y].loss, **TOL).agree


def test_a_result_joins_a_group_only_if_it_agrees_with_every_member_not_just_the_first():
    """Protects 'every member of a group agrees with every other member': at atol 1, torch 0.0 agrees with
    paddle 0.9 and with tensorflow -0.9, but paddle and tensorflow are 1.8 apart. tensorflow, checked after
    paddle joined torch's group, agrees with that group's first member and not with its later one, so it
    starts its own group (a check against the first member only, or against any member, would let it in)."""
    results = {"torch": ok(0.0), "paddle": ok(0.9), "tensorflow": ok(-0.9)}
    assert groups(results, list(results), TOL) == [["torch", "paddle"], ["tensorflow"]]


def test_groups_hold_only_ok_results():
    """Protects that unsupported / error / crashed results are never grouped (nor counted as divergence)."""
    results = {
        "torch": ok(1.0),
        "torch:nll": failed("unsupported", "no soft labels"),
        "paddle": failed("error", "NotFound: kernel"),
        "tensorflow": failed("crashed", "died"),
        "reference": ok(1.0),
    }
    assert groups(results, list(results), TOL) == [["torch", "reference"]]


def test_groups_are_deterministic_whatever_the_result_order():
    """Protects a stable report: frameworks in registry order, each default variant before its others,
    independently of the order the results arrived in."""
    results = {
        "tensorflow:nn": ok(5.0),
        "reference": ok(0.0),
        "paddle": ok(5.0),
        "torch:functional": ok(0.0),
        "tensorflow": ok(0.0),
        "torch": ok(5.0),
    }
    expected = [["torch", "paddle", "tensorflow:nn"], ["torch:functional", "tensorflow", "reference"]]
    for keys in itertools.permutations(results):
        shuffled = {k: results[k] for k in keys}
        assert groups(shuffled, list(keys), TOL) == expected


def test_groups_compare_gradients_too():
    """Protects result agreement = loss and gradient agreement (where both have a gradient)."""
    results = {"torch": ok(1.0, grad=[0.0, 1.0]), "paddle": ok(1.0, grad=[0.0, 5.0]), "tensorflow": ok(1.0)}
    assert groups(results, list(results), TOL) == [["torch", "tensorflow"], ["paddle"]]


# ---------------------------------------------------------------- check_expectation


def test_expectation_met():
    """Protects the 'met' verdict when the groups found are the groups expected."""
    results = {"torch": ok(1.0), "paddle": ok(1.0), "tensorflow": ok(2.5)}
    expect = Expectation(groups=[["torch", "paddle"], ["tensorflow"]])
    assert check_expectation(expect, results, TOL) == ("met", None)


def test_expectation_violated_with_a_readable_message():
    """Protects the violation message: it names the expected and the found groups."""
    results = {"torch": ok(1.0), "paddle": ok(1.0), "tensorflow": ok(2.5)}
    verdict, message = check_expectation(Expectation(groups=[["torch", "paddle", "tensorflow"]]), results, TOL)
    assert verdict == "violated"
    assert message == "expected groups [[torch, paddle, tensorflow]], found [[torch, paddle], [tensorflow]]"


def test_expectation_without_groups_or_status_is_none():
    """Protects cases with no (or an empty) expectation: verdict 'none'."""
    results = {"torch": ok(1.0)}
    assert check_expectation(None, results, TOL) == ("none", None)
    assert check_expectation(Expectation(), results, TOL) == ("none", None)


def test_expectation_skips_keys_that_are_not_present():
    """Protects 'only keys named and present are checked': a key named but not run is skipped."""
    results = {"torch": ok(1.0), "paddle": ok(1.0)}
    expect = Expectation(groups=[["torch", "paddle", "tensorflow:nn"]], status={"tensorflow": "error"})
    assert check_expectation(expect, results, TOL) == ("met", None)


def test_a_new_variant_breaks_no_expectation():
    """Protects adding variants: a result key the expectation does not name changes nothing, even when
    it disagrees with everything."""
    results = {"torch": ok(1.0), "paddle": ok(1.0), "paddle:new_variant": ok(7.0), "torch:new": failed("error", "boom")}
    assert check_expectation(Expectation(groups=[["torch", "paddle"]]), results, TOL) == ("met", None)


def test_a_named_key_that_errored_when_ok_was_expected_is_a_violation():
    """Protects against silently passing when a grouped key stopped running: it is reported with its message."""
    results = {"torch": ok(1.0), "paddle": failed("error", "NotFound: kernel cross_entropy\nsecond line")}
    verdict, message = check_expectation(Expectation(groups=[["torch", "paddle"]]), results, TOL)
    assert verdict == "violated"
    assert "paddle is error, expected ok (NotFound: kernel cross_entropy)" in message
    assert "second line" not in message


def test_status_expectation():
    """Protects `status:` expectations: met when the status matches, violated (with the message) when not,
    and a key expected to fail is not also required to be ok by `groups`."""
    results = {"torch": ok(1.0), "torch:nll": failed("unsupported", "NLLLoss takes class indices"), "paddle": ok(1.0)}
    met = Expectation(groups=[["torch", "paddle", "torch:nll"]], status={"torch:nll": "unsupported"})
    assert check_expectation(met, results, TOL) == ("met", None)
    verdict, message = check_expectation(Expectation(status={"torch:nll": "ok"}), results, TOL)
    assert verdict == "violated"
    assert message == "torch:nll is unsupported, expected ok (NLLLoss takes class indices)"
    verdict, message = check_expectation(Expectation(status={"paddle": "error"}), results, TOL)
    assert verdict == "violated" and message == "paddle is ok, expected error"


def test_expectation_reports_every_problem():
    """Protects one verdict listing all problems (status and groups), joined readably."""
    results = {"torch": ok(1.0), "paddle": ok(3.0), "tensorflow": failed("crashed", "worker died")}
    expect = Expectation(groups=[["torch", "paddle", "tensorflow"]])
    verdict, message = check_expectation(expect, results, TOL)
    assert verdict == "violated"
    assert message == ("tensorflow is crashed, expected ok (worker died); expected groups [[torch, paddle]], found [[torch], [paddle]]")


# ---------------------------------------------------------------- tolerances


# docs/comparison.md's table: float64 rtol 1e-7 atol 1e-8; float32 rtol 1e-5 atol 1e-6; float16 rtol 1e-2 atol 1e-3;
# bfloat16 rtol 4e-2 atol 1e-2.
DOCUMENTED_TOLERANCE = {
    "float64": {"rtol": 1e-7, "atol": 1e-8},
    "float32": {"rtol": 1e-5, "atol": 1e-6},
    "float16": {"rtol": 1e-2, "atol": 1e-3},
    "bfloat16": {"rtol": 4e-2, "atol": 1e-2},
}


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
def test_default_tolerance_is_the_documented_one_for_the_dtype(dtype):
    """Protects per-dtype defaults: a case without `tolerance:` gets its dtype's documented entry (docs/comparison.md
    literals, not the constant under test), and `compare` judges with it: a gap of half the documented rtol
    agrees, a gap of twice the rtol (plus atol) does not."""
    case = make_case(dtype=dtype)
    tol = DOCUMENTED_TOLERANCE[dtype]
    assert DEFAULT_TOLERANCE[dtype] == tol
    assert compare.tolerance(case) == tol
    base = 1000.0
    near = {"torch": ok(base), "paddle": ok(base * (1 + tol["rtol"] / 2))}
    far = {"torch": ok(base), "paddle": ok(base * (1 + tol["rtol"] * 2) + tol["atol"])}
    assert found_groups(case, near) == [["torch", "paddle"]]
    assert found_groups(case, far) == [["torch"], ["paddle"]]
    assert compare.compare(case, near)[1].tolerance == tol


def test_float32_values_apart_by_5e_5_relative_disagree_and_by_5e_6_agree():
    """Protects the float32 default's size, through a case and its groups: 1000 and 1000.05 are 0.05 apart,
    more than 1e-6 + 1e-5 * 1000.05 = 0.0100015 (they would agree at a ten times looser rtol 1e-4: 0.100006);
    1000 and 1000.005 are 0.005 apart, within 0.0100015 (they would disagree at a ten times tighter rtol
    1e-6: 0.001001). Worked by hand from the rule in docs/comparison.md and its float32 row."""
    case = make_case(dtype="float32")
    assert found_groups(case, {"torch": ok(1000.0), "paddle": ok(1000.05)}) == [["torch"], ["paddle"]]
    assert found_groups(case, {"torch": ok(1000.0), "paddle": ok(1000.005)}) == [["torch", "paddle"]]


def test_default_tolerances_tighten_with_precision():
    """Protects the ordering of the defaults: more precise dtypes never get looser tolerances."""
    order = ["float64", "float32", "float16", "bfloat16"]
    for tighter, looser in itertools.pairwise(order):
        assert DEFAULT_TOLERANCE[tighter]["rtol"] < DEFAULT_TOLERANCE[looser]["rtol"]
        assert DEFAULT_TOLERANCE[tighter]["atol"] < DEFAULT_TOLERANCE[looser]["atol"]


def test_case_tolerance_overrides_only_what_it_names():
    """Protects `tolerance:` in a case: it overrides the named field and keeps the dtype default for the other."""
    case = make_case(dtype="float32", tolerance={"rtol": 0.1})
    assert compare.tolerance(case) == {"rtol": 0.1, "atol": 1e-6}  # atol: docs/comparison.md's float32 default
    results = {"torch": ok(1.0), "paddle": ok(1.05)}
    assert found_groups(case, results) == [["torch", "paddle"]]
    strict = make_case(dtype="float32", tolerance={"rtol": 0, "atol": 0})
    assert compare.tolerance(strict) == {"rtol": 0.0, "atol": 0.0}
    assert found_groups(strict, {"torch": ok(1.0), "paddle": ok(1.0 + 1e-12)}) == [["torch"], ["paddle"]]


def test_compare_record_lists_pairs_and_the_expectation_verdict():
    """Protects the comparison record: one pair per two ok results, in canonical order, and the verdict."""
    case = make_case(expect={"groups": [["torch", "paddle"], ["tensorflow"]]})
    results = {"tensorflow": ok(2.0), "paddle": ok(1.0), "torch": ok(1.0), "torch:nll": failed("unsupported", "x")}
    _, comparison = compare.compare(case, results)
    assert [(p.a, p.b, p.agree) for p in comparison.pairs] == [
        ("torch", "paddle", True),
        ("torch", "tensorflow", False),
        ("paddle", "tensorflow", False),
    ]
    assert comparison.expectation == "met" and comparison.expectation_message is None


# ---------------------------------------------------------------- Pairwise (all pairs at once)


def test_pairwise_gives_exactly_what_agreement_gives_for_every_pair():
    """Protects the broadcast fast path: for finite same-size values, values of other sizes, NaN and
    inf, missing gradients and failed results, every pair's numbers equal `agreement`'s bit for bit."""
    rng = np.random.default_rng(7)
    base = rng.normal(size=(2, 3))
    results = {
        "a": ok(base.sum(), base),
        "b": ok(base.sum() + 1e-9, base * (1 + 1e-7)),
        "c": ok(base.sum() * 2, base + 0.5),
        "d": ok(np.nan, base),
        "e": ok(base.sum(), np.where(base > 0, np.inf, base)),
        "f": ok([1.0, 2.0], None),
        "g": ok(0.0, np.zeros((2, 3))),
        "h": failed("error", "boom"),
        "i": ok(base.sum(), base[:1]),
    }
    for tol in (TOL, DEFAULT_TOLERANCE["float32"], {"rtol": 0.0, "atol": 0.0}):
        pairwise = compare.Pairwise(results, tol)
        live = [k for k, r in results.items() if r.ok]
        for a, b in itertools.permutations(live, 2):
            assert pairwise(a, b) == compare.agreement(results[a], results[b], tol, a=a, b=b), (a, b, tol)


# ---------------------------------------------------------------- tolerance at size (allowance)


def random_case(shape, **spec):
    return make_case(logits=None, labels="random", random={"shape": shape, "seed": 0}, **spec)


@pytest.mark.parametrize(
    "shape, dtype, classes, positions",
    [([128, 32000], "float32", 32000, 128), ([4, 1000, 8, 8], "float32", 1000, 256), ([256, 50000], "float64", 50000, 256)],
)
def test_allowance_widens_rtol_with_the_reduction_lengths(shape, dtype, classes, positions, monkeypatch):
    """docs/comparison.md: rtol = max(the dtype's rtol, 4 * eps * sqrt(C + P)), eps the unit roundoff of the dtype summed
    in (2^-23 for float32, 2^-52 for float64); atol stays the dtype's."""
    monkeypatch.setattr(cases, "MAX_ELEMENTS", 20_000_000)
    case = random_case(shape, dtype=dtype)
    assert compare.reduction_lengths(case) == (classes, positions)
    eps = {"float32": 2.0**-23, "float64": 2.0**-52}[dtype]
    base = {"float32": (1e-5, 1e-6), "float64": (1e-7, 1e-8)}[dtype]
    wide = compare.allowance(case)
    assert wide == {"rtol": max(base[0], 4 * eps * math.sqrt(classes + positions)), "atol": base[1]}


def test_allowance_of_small_cases_and_of_a_case_that_sets_its_tolerance_is_the_tolerance():
    assert compare.allowance(make_case()) == {"rtol": 1e-5, "atol": 1e-6}  # 4 * 2^-23 * sqrt(3 + 2) = 1.1e-6 < 1e-5
    assert compare.allowance(random_case([64, 32000], tolerance={"rtol": 1e-6})) == {"rtol": 1e-6, "atol": 1e-6}


def test_allowance_of_float64_smoothing_budgets_float32_constants():
    """Smoothed targets from float32 constants: 2^-23 of the largest element, on top of rtol 1e-7."""
    assert compare.allowance(make_case(dtype="float64", label_smoothing=0.73)) == {"rtol": 1e-7, "atol": 1e-8, "norm": 2.0**-23}
    assert "norm" not in compare.allowance(make_case(dtype="float64"))
    assert "norm" not in compare.allowance(make_case(label_smoothing=0.73))


def test_norm_term_bounds_by_the_largest_element():
    """|a-b| <= atol + rtol*max(|a|,|b|) + norm*max over all elements: 1.6e-8 on an element of 0.01 passes
    with norm 2^-23 when the largest element is 0.3 (0.3 * 1.19e-7 = 3.6e-8), not without it."""
    a, b = [0.3, 0.01], [0.3, 0.01 + 1.6e-8]
    assert not difference(a, b, 1e-7, 1e-8).agree
    assert difference(a, b, 1e-7, 1e-8, norm=2.0**-23).agree
    assert not difference(a, [0.3, 0.01 + 5e-8], 1e-7, 1e-8, norm=2.0**-23).agree


def test_difference_of_large_arrays_in_pieces_equals_the_whole():
    """Arrays above agreement.CHUNK are compared piece by piece: the same numbers as in one piece."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=agreement.CHUNK * 2 + 17).astype(np.float32)
    y = (x * (1 + rng.normal(scale=1e-6, size=x.size))).astype(np.float32)
    y[5] = np.nan
    whole = agreement.finite_gaps(x.astype(np.float64), y.astype(np.float64), 1e-5, 1e-6)
    found = difference(x, y, 1e-5, 1e-6)
    assert not found.agree and found.max_abs == math.inf
    finite = np.isfinite(y)
    found = difference(x[finite], y[finite], 1e-5, 1e-6, norm=1e-9)
    whole = agreement.finite_gaps(x[finite].astype(np.float64), y[finite].astype(np.float64), 1e-5, 1e-6, norm=1e-9)
    assert (found.max_abs, found.max_rel, found.agree) == (float(whole[0]), float(whole[1]), bool(whole[2]))


def keyed(**results: Result) -> dict[str, Result]:
    return {key: replace(r, key=key) for key, r in results.items()}


def documented(result: Result, loss, grad, **knobs) -> Result:
    return replace(result, documented=Documented(knobs or {"denominator": "positions"}, np.asarray(loss, dtype=np.float64), grad))


def test_rounding_at_size_joins_a_group_with_a_note_and_a_semantic_difference_stays_apart(monkeypatch):
    """On a [64, 32000] float32 case (allowance 4 * 2^-23 * sqrt(32064) = 8.5e-5): a result 4e-5 off its
    documented float64 value (the same as everyone's) joins the others and carries a note; one 4e-5 off
    the others because its documented value is 4e-5 off theirs (another semantics) stays apart."""
    case = random_case([64, 32000])
    truth = np.linspace(0.1, 1.0, 6)
    exact = documented(ok(1.0, truth), 1.0, truth)
    rounded = documented(ok(1.0, truth * (1 + 4e-5)), 1.0, truth)
    semantic = documented(ok(1.0, truth * (1 + 4e-5)), 1.0, truth * (1 + 4e-5), denominator="target_weight")
    checked, comparison = compare.compare(case, keyed(torch=rounded, paddle=exact, reference=exact))
    assert [list(g) for g in comparison.groups] == [["torch", "paddle", "reference"]]
    note = checked["torch"].numerical
    needed = (4e-5 - 1e-6) / (1 + 4e-5)  # (|a-b| - atol) / max(|a|,|b|) at the largest element, 1.0
    assert note["rtol_needed"]["grad"] == pytest.approx(needed, rel=1e-6)
    assert note["text"].startswith("torch's gradient is 3.9e-05 off the float64 value here")
    assert checked["torch"].documented.agrees is True and checked["paddle"].numerical is None
    assert [p.allowance for p in comparison.pairs] == [True, True, False]
    assert comparison.allowance == {"rtol": pytest.approx(4 * 2.0**-23 * math.sqrt(32064)), "atol": 1e-6}
    _, comparison = compare.compare(case, keyed(torch=semantic, paddle=exact, reference=exact))
    assert [list(g) for g in comparison.groups] == [["torch"], ["paddle", "reference"]]


def test_a_result_off_its_documented_value_beyond_the_allowance_is_off_doc():
    case = random_case([64, 32000])
    truth = np.linspace(0.1, 1.0, 6)
    checked, comparison = compare.compare(
        case, {"torch": documented(ok(1.0, truth * 1.001), 1.0, truth), "reference": documented(ok(1.0, truth), 1.0, truth)}
    )
    assert checked["torch"].documented.agrees is False and checked["torch"].numerical is None
    assert [list(g) for g in comparison.groups] == [["torch"], ["reference"]]
