"""`against:` (`conformance.against`): a port must join the group of the key it ports wherever that key
ran; apart or erroring violates the case with the pair's one-line explanation, unless the case's own
expectation names the port; unsupported violates nothing. Records are built here by hand."""

from conformance import against, user
from conformance.cases import Expectation
from conformance.records import Comparison, Explanation, Pair, Result
from conformance.user_spec import Spec

PORT = Spec("torch:port", "m", "f", against="torch")


def result(key, status="ok", message=None):
    return Result(key, "api", status, message, loss=1.0)


def comparison(groups, expectation="none", message=None):
    pair = Pair("torch", "torch:port", False, 0.5, 0.25, 0.125, 0.1)
    return Comparison(groups, (pair,), {"rtol": 1e-6, "atol": 1e-7}, expectation, message)


RESULTS = {"torch": result("torch"), "torch:port": result("torch:port")}
APART = (("torch",), ("torch:port",))
EXPLAINED = (Explanation("torch", "torch:port", (), "torch:port vs torch: it divides by N*C.\nsecond line"),)


def test_apart_violates_with_the_explanations_first_line():
    with user.activated((PORT,)):
        checked = against.check(None, RESULTS, comparison(APART), EXPLAINED)
        joined = against.check(None, RESULTS, comparison((("torch", "torch:port"),)), EXPLAINED)
    assert checked.expectation == "violated"
    assert checked.expectation_message == "torch:port (against: torch) is apart from torch: torch:port vs torch: it divides by N*C."
    assert joined.expectation == "none"


def test_the_pairs_numbers_without_an_explanation_and_an_earlier_violation_kept():
    with user.activated((PORT,)):
        checked = against.check(None, RESULTS, comparison(APART, "violated", "expected groups [[a]]"), ())
    assert checked.expectation_message == (
        "expected groups [[a]]; torch:port (against: torch) is apart from torch: loss differs by 0.5 abs, 0.25 rel, gradient 0.125 abs"
    )


def test_errors_violate_unsupported_does_not_and_a_named_port_is_left_to_its_expectation():
    failing = {**RESULTS, "torch:port": result("torch:port", "error", "NameError: x\n  more")}
    unsupported = {**RESULTS, "torch:port": result("torch:port", "unsupported", "does not declare weight")}
    torch_failed = {**RESULTS, "torch": result("torch", "error", "raised")}
    with user.activated((PORT,)):
        assert (
            against.check(None, failing, comparison(APART), ()).expectation_message == "torch:port (against: torch) is error: NameError: x"
        )
        assert against.check(None, unsupported, comparison(APART), ()).expectation == "none"
        assert against.check(None, torch_failed, comparison(APART), ()).expectation == "none"  # torch did not run it
        named = Expectation(groups=[["torch"], ["torch:port"]])
        assert against.check(named, RESULTS, comparison(APART, "met"), EXPLAINED).expectation == "met"
    assert against.check(None, RESULTS, comparison(APART), EXPLAINED).expectation == "none"  # no port active
