"""What a user's loss object takes and which case keys a case passes to it (`conformance.user_call`):
only the parameters it names (a `**kwargs` declares none), unset keys not passed, keys with a meaning by
default always passed at the case's value, renamed keys, classes constructed with what their `__init__`
takes, and the checks made before any case runs. Plain Python objects stand in for the libraries'."""

import dataclasses

import pytest

from conformance import cases, registry, user_call
from conformance.adapters import Unsupported
from conformance.user_spec import Spec


def one(text):
    [case] = cases.load_text(text, "t.yaml")
    return case


PLAIN = one("cases:\n  - id: c\n    logits: [[0.1, 0.9, 0.0]]\n    labels: [1]\n")
WEIGHTED = one("cases:\n  - id: c\n    logits: [[0.1, 0.9, 0.0]]\n    labels: [1]\n    weight: [1, 2, 3]\n    reduction: sum\n")
IGNORING = one("cases:\n  - id: c\n    logits: [[0.1, 0.9, 0.0]]\n    labels: [1]\n    ignore_index: -100\n    label_smoothing: 0.1\n")
FOCAL = one("cases:\n  - id: c\n    loss: sigmoid_focal\n    logits: [[0.1, 0.9]]\n    labels: [[1, 0]]\n    alpha: 0.25\n")
FOCAL_DEFAULT = one("cases:\n  - id: c\n    loss: sigmoid_focal\n    logits: [[0.1, 0.9]]\n    labels: [[1, 0]]\n")
BINARY = one("cases:\n  - id: c\n    loss: binary_cross_entropy\n    logits: [[0.1, 0.9]]\n    labels: [[1, 0]]\n    pos_weight: [2, 1]\n")
PROBS = one("cases:\n  - id: c\n    probs: [[0.1, 0.9]]\n    labels: [1]\n")


def transformers_like(source, target, num_items_in_batch=None, ignore_index=-100, **kwargs):
    """transformers' fixed_cross_entropy's signature: **kwargs swallows what it never uses."""


def kornia_like(pred, target, alpha=0.25, gamma=2.0, reduction="none", pos_weight=None, weight=None, ignore_index=-100):
    """kornia's binary_focal_loss_with_logits's signature: defaults that differ from the case's."""


class Smoother:
    """transformers' LabelSmoother's shape: a dataclass-like object built with epsilon, called with data."""

    def __init__(self, epsilon=0.1, ignore_index=-100):
        pass

    def __call__(self, model_output, labels, shift_labels=False):
        pass


class Module:
    """torch's nn.Module's shape: __call__ forwards *args, **kwargs to forward."""

    def __init__(self, alpha, gamma=2.0, reduction="none"):
        pass

    def __call__(self, *args, **kwargs):
        pass

    def forward(self, pred, target):
        pass


class KerasLike:
    """keras.losses.Loss's shape: __call__(y_true, y_pred, sample_weight=None)."""

    def __init__(self, from_logits=False, reduction="sum_over_batch_size", name=None):
        pass

    def __call__(self, y_true, y_pred, sample_weight=None):
        pass


def spec(obj, **given):
    return Spec("torch:mine", "m", obj.__name__, **given)


def passed(obj, case, **given):
    made = user_call.arguments(spec(obj, **given), user_call.describe(obj, 2), case, lambda name: f"T({name})")
    return dict(made.construct), dict(made.call)


def test_kwargs_declare_nothing_and_unset_keys_are_not_passed():
    # no ignore_index=None (transformers raises on it); reduction mean and no smoothing: nothing set
    assert passed(transformers_like, PLAIN) == ({}, {})
    assert user_call.describe(transformers_like, 2).call == {"num_items_in_batch": False, "ignore_index": False}
    with pytest.raises(Unsupported, match=r"does not declare reduction, weight \(the case sets reduction: .sum.; weight: given\)"):
        passed(transformers_like, WEIGHTED)
    with pytest.raises(Unsupported, match="does not declare label_smoothing .*0.1"):
        passed(transformers_like, IGNORING)


def test_keys_with_a_meaning_by_default_are_passed_at_the_cases_value():
    # focal: alpha null means no balancing, gamma 2 (the family's default), reduction mean: all passed,
    # so kornia's own defaults (alpha 0.25, reduction 'none') never stand in for the case's
    assert passed(kornia_like, FOCAL_DEFAULT) == ({}, {"alpha": "None", "gamma": "2.0", "reduction": "'mean'"})
    assert passed(kornia_like, FOCAL)[1]["alpha"] == "0.25"
    # binary: the family's own array reaches it as a tensor of the array the variants read (pw)
    assert passed(kornia_like, BINARY) == ({}, {"reduction": "'mean'", "pos_weight": "T(pw)"})
    assert passed(kornia_like, WEIGHTED)[1] == {"reduction": "'sum'", "weight": "T(w)"}


def test_kornia_like_has_no_smoothing():
    with pytest.raises(Unsupported, match="does not declare label_smoothing"):
        passed(kornia_like, IGNORING)


def test_renamed_and_fixed_and_derived_keys():
    renamed = {"params": (("label_smoothing", "epsilon"),)}
    assert passed(Smoother, IGNORING, **renamed) == ({"epsilon": "0.1", "ignore_index": "-100"}, {})
    assert passed(Smoother, PLAIN, **renamed) == ({"epsilon": "0.0"}, {})  # smoothing 0 means something: passed
    with pytest.raises(Unsupported, match="does not declare label_smoothing"):  # not renamed: Smoother has no such name
        passed(Smoother, IGNORING)
    fixed = {"fixed": (("gamma", 0.0), ("alpha", None))}
    assert passed(kornia_like, PLAIN, **fixed) == ({}, {"alpha": "None", "gamma": "0.0", "reduction": "'mean'"})
    with pytest.raises(Unsupported, match="fixes gamma at 0.0"):  # the case's own gamma would be overridden
        passed(kornia_like, one(FOCAL_TEXT_GAMMA), **fixed)
    derived = {"params": (("num_classes", "alpha"),)}
    assert passed(Module, PLAIN, **derived) == ({"alpha": "3", "reduction": "'mean'"}, {})


FOCAL_TEXT_GAMMA = "cases:\n  - id: c\n    loss: sigmoid_focal\n    logits: [[0.1, 0.9]]\n    labels: [[1, 0]]\n    gamma: 1.0\n"


def test_a_class_is_constructed_with_what_its_init_takes_and_called_with_the_rest():
    takes = user_call.describe(Module, 2)
    assert takes.kind == "class" and takes.construct == {"alpha": True, "gamma": False, "reduction": False}
    assert takes.call == {} and takes.data == 2  # forward(pred, target), read through __call__(*args, **kwargs)
    assert passed(Module, FOCAL) == ({"alpha": "0.25", "gamma": "2.0", "reduction": "'mean'"}, {})
    keras = user_call.describe(KerasLike, 2)
    assert keras.call == {"sample_weight": False}
    weighted = one("cases:\n  - id: c\n    probs: [[0.1, 0.9]]\n    labels: [1]\n    sample_weight: [2]\n")
    assert passed(KerasLike, weighted) == ({"from_logits": "False", "reduction": "'mean'"}, {"sample_weight": "T(sw)"})


def test_probabilities_reach_only_an_object_that_takes_from_logits():
    with pytest.raises(Unsupported, match="does not declare from_logits"):
        passed(kornia_like, PROBS)
    assert passed(KerasLike, PROBS)[0]["from_logits"] == "False"


def test_problems_before_any_case_runs_name_the_object_and_the_parameter():
    families = dict(registry.losses())
    softmax = {"softmax_cross_entropy": families["softmax_cross_entropy"]}
    focal = {"sigmoid_focal": families["sigmoid_focal"]}
    takes = user_call.describe(Module, 2)
    [problem] = user_call.problems(spec(Module), takes, softmax)
    assert "m:Module requires 'alpha' (its constructor), which not every softmax_cross_entropy case gives" in problem
    assert user_call.problems(spec(Module), takes, focal) == []  # every focal case gives alpha
    assert user_call.problems(spec(Module, fixed=(("alpha", None),)), takes, softmax) == []
    bad = spec(Smoother, params=(("label_smoothing", "eps"),), fixed=(("shift", True),))
    found = user_call.problems(bad, user_call.describe(Smoother, 2), softmax)
    assert any("takes no parameter 'eps' (params: label_smoothing: eps)" in p for p in found)
    assert any("takes no parameter 'shift' (fixed: shift)" in p for p in found)
    assert user_call.problems(spec(transformers_like), user_call.describe(3, 2), softmax) == [
        "m:transformers_like is a int, not a function or a class"
    ]

    def causal(logits, labels, vocab_size, ignore_index=-100):
        pass

    [problem] = user_call.problems(spec(causal), user_call.describe(causal, 2), softmax)
    assert "requires 'vocab_size' (its call)" in problem
    assert user_call.problems(spec(causal, params=(("num_classes", "vocab_size"),)), user_call.describe(causal, 2), softmax) == []

    def one_argument(logits):
        pass

    [problem] = user_call.problems(spec(one_argument), user_call.describe(one_argument, 2), softmax)
    assert "takes 1 data arguments positionally; the spec passes 2" in problem


def test_takes_round_trips_through_json():
    takes = user_call.describe(Smoother, 2)
    assert user_call.Takes(**takes.to_json()) == takes
    assert dataclasses.asdict(takes)["construct"] == {"epsilon": False, "ignore_index": False}
