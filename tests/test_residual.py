"""What an explanation says of a user's function that no knob setting reproduces (`conformance.residual`,
through `explain.fitted`).

No framework runs here: each test writes, in float64 NumPy, what a real third-party loss computes on the
case (from its source in the pinned version, named in each test), hands those values to the explanation as
the user's result, and checks the sentence's content against numbers derived here from the case's shape
and labels (C from the logits' shape, the non-ignored positions from the labels), never from the output.
The old text of each of these cases was false: it said the user's function "follows torch's documented
semantics; torch itself differs from them" of a torch that agrees with its documented formula, or named a
closest knob unrelated to the cause.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conformance import cases, explain, residual
from conformance.records import Documented, Result
from conformance.reference import Knobs

TOL = {"rtol": 1e-5, "atol": 1e-6}  # float32's default: the values below are float64, far inside it


def case_of(text: str) -> cases.Case:
    (case,) = cases.load_text("cases:\n  - id: c\n    dtype: float64\n" + text, "c.yaml")
    return case


def softmax(x: np.ndarray) -> np.ndarray:
    """Along axis 1, as torch's cross-entropy has the classes."""
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)  # type: ignore[no-any-return]


def onehot(labels: np.ndarray, classes: int) -> tuple[np.ndarray, np.ndarray]:
    """The one-hot targets (classes on axis 1, 0 at ignored positions) and the mask of non-ignored ones."""
    valid = (labels >= 0) & (labels < classes)
    hot = (np.arange(classes).reshape((1, classes) + (1,) * (labels.ndim - 1)) == np.expand_dims(labels, 1)).astype(float)
    return hot * np.expand_dims(valid, 1), valid


def per_position(x: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """-log p[y] at each position (0 where ignored) and d/dx of its sum."""
    hot, valid = onehot(labels, x.shape[1])
    p = softmax(x)
    loss = np.where(valid, -(np.log(p) * hot).sum(axis=1), 0.0)
    return loss, (p * np.expand_dims(valid, 1) - hot)


def torch_point(case: cases.Case) -> Knobs:
    """torch's documented point for class indices: class weight per class, mean over the target weights."""
    return Knobs()


def explained(case: cases.Case, loss: np.ndarray, grad: np.ndarray, a_agrees: bool = True) -> tuple[str, dict]:
    """`explain.fitted` of a user's result `torch:port` (loss, grad) against torch, whose own values are
    its documented formula's (`a_agrees`: its documented check's verdict)."""
    model = explain.Model(case)
    documented = model(torch_point(case))
    torch = Result(
        "torch",
        "torch.nn.CrossEntropyLoss",
        "ok",
        loss=documented.loss,
        grad=documented.grad,
        documented=Documented(torch_point(case).as_dict(), documented.loss, documented.grad, agrees=a_agrees),
    )
    port = Result("torch:port", "port (your function)", "ok", loss=np.asarray(loss), grad=np.asarray(grad))
    entry = explain.fitted(model, "torch", "torch:port", {"torch": torch, "torch:port": port}, TOL)
    assert entry.fit is not None
    return entry.text, entry.fit


def first_clause(text: str) -> str:
    return text.split(": ", 1)[1].split(";")[0]


# ---------------------------------------------------------------- a constant factor and the count it equals


def test_kornia_softmax_focal_mean_is_torchs_divided_by_C():
    """kornia 0.9.0 `losses.focal_loss(pred, target, alpha=None, gamma=0, reduction='mean')`: its (N, C)
    map holds -log p[y] on the target class and 0 elsewhere, and 'mean' divides its sum by every element
    of the map, N*C: torch's mean cross-entropy divided by C. N=4 and C=3 so that no other count is 3."""
    x = np.random.default_rng(0).standard_normal((4, 3))
    labels = np.array([0, 2, 1, 1])
    case = case_of(f"    logits: {x.tolist()}\n    labels: {labels.tolist()}\n")
    n, c = x.shape
    loss, grad = per_position(x, labels)
    text, fit = explained(case, loss.sum() / (n * c), grad / (n * c))
    assert first_clause(text) == "no knob setting reproduces torch:port"
    assert f"are torch's divided by {c} = C (the number of classes)" in text
    assert f"its mean divides by {n * c} = N*C (every element of the predictions), where torch's divides by" in text
    assert f"= {n:g}." in text  # torch divides by the number of (unweighted) positions
    assert "itself differs" not in text and "closest" not in text
    assert fit["residual"]["factor"] == pytest.approx(1 / c) and fit["residual"]["denominator"] == pytest.approx(n * c)


def test_kornia_weighted_focal_mean_divides_by_N_times_C_not_by_the_target_weights():
    """With `weight`, kornia multiplies the slice of class c by weight[c] and 'mean' still divides by N*C
    ("'mean' is not normalised by the weights"): the factor to torch's is no count, its denominator is."""
    x = np.random.default_rng(1).standard_normal((4, 3))
    labels, weight = np.array([0, 2, 1, 1]), np.array([1.0, 2.0, 3.0])
    case = case_of(f"    logits: {x.tolist()}\n    labels: {labels.tolist()}\n    weight: {weight.tolist()}\n")
    n, c = x.shape
    loss, grad = per_position(x, labels)
    w = weight[labels]
    text, fit = explained(case, (w * loss).sum() / (n * c), grad * w[:, None] / (n * c))
    target_weights = w.sum()  # torch's mean: sum w[y] * -log p[y] / sum w[y] = 1 + 3 + 2 + 2 = 8
    assert f"are torch's divided by {n * c / target_weights:g}" in text
    assert f"its mean divides by {n * c} = N*C (every element of the predictions), where torch's divides by" in text
    assert f"the sum of target weights = {target_weights:g}." in text


def test_fixed_cross_entropy_with_num_items_divides_the_sum_by_that_count():
    """transformers 5.23.0 `loss_utils.fixed_cross_entropy(source, target, num_items_in_batch, ignore_index)`
    sums torch's cross-entropy and divides by `num_items_in_batch` when given (its `reduction` keyword is
    swallowed by **kwargs); given the number of non-ignored tokens, on a case asking for 'sum' its value is
    torch's sum divided by that count: 5 here, which is neither N, C nor N*C."""
    x = np.random.default_rng(2).standard_normal((7, 4))
    labels = np.array([0, 3, -100, 1, -100, 2, 2])
    case = case_of(f"    logits: {x.tolist()}\n    labels: {labels.tolist()}\n    ignore_index: -100\n    reduction: sum\n")
    items = int((labels != -100).sum())
    loss, grad = per_position(x, labels)
    text, fit = explained(case, loss.sum() / items, grad / items)
    assert first_clause(text) == "no knob setting reproduces torch:port"
    assert f"are torch's divided by {items} = the number of non-ignored positions" in text
    assert fit["residual"]["factor_counts"] == ["the number of non-ignored positions"]


def test_fixed_cross_entropy_asked_for_no_reduction_gives_the_sum_over_the_items():
    """`fixed_cross_entropy`'s **kwargs swallow `reduction`: asked for 'none', it still returns torch's sum
    over the non-ignored positions divided by `num_items_in_batch` (their number, 5, here)."""
    x = np.random.default_rng(2).standard_normal((7, 4))
    labels = np.array([0, 3, -100, 1, -100, 2, 2])
    case = case_of(f"    logits: {x.tolist()}\n    labels: {labels.tolist()}\n    ignore_index: -100\n    reduction: none\n")
    items = int((labels != -100).sum())
    loss, grad = per_position(x, labels)
    text, fit = explained(case, loss.sum() / items, grad / items)
    assert f"torch:port returns one number where torch returns values of shape [{len(labels)}]" in text
    assert f"it is the sum of torch's values divided by {items} = the number of non-ignored positions" in text
    assert "(the case's reduction is not applied); its gradient differs too" in text


def test_a_factor_that_equals_no_count_is_said_so():
    x = np.random.default_rng(3).standard_normal((4, 3))
    labels = np.array([0, 2, 1, 1])
    case = case_of(f"    logits: {x.tolist()}\n    labels: {labels.tolist()}\n    reduction: sum\n")
    loss, grad = per_position(x, labels)
    text, _ = explained(case, 0.37 * loss.sum(), 0.37 * grad)
    assert f"are torch's divided by {1 / 0.37:.6g}, which equals no count of this case" in text


# ---------------------------------------------------------------- shifted labels


@pytest.mark.parametrize(
    "shape, axis_words",
    [((6, 4), "along the batch axis (N)"), ((2, 4, 5), "along axis d1 (the predictions' axis 2)")],
)
def test_causal_lm_loss_is_said_to_shift_the_labels(shape, axis_words):
    """transformers 5.23.0 `ForCausalLMLoss(logits, labels, vocab_size)`: labels padded with -100 on the
    last axis and shifted by one (`labels[..., 1:]`), so position t is scored against the label of t+1 and
    the last position is ignored; then torch's mean over the non-ignored positions. The classes are moved
    last, as a language model has them, so the shift runs along the labels' last axis."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal(shape)
    labels = rng.integers(0, shape[1], size=(shape[0],) + shape[2:])
    case = case_of(f"    logits: {x.tolist()}\n    labels: {labels.tolist()}\n")
    shifted = np.concatenate([labels[..., 1:], np.full(labels.shape[:-1] + (1,), -100)], axis=-1)
    loss, grad = per_position(x, shifted)
    count = (shifted != -100).sum()
    text, fit = explained(case, loss.sum() / count, grad / count)
    assert first_clause(text) == "no knob setting reproduces torch:port"
    assert f"scores each position against the label one position later {axis_words}, the last position left without a label" in text
    assert "shifted so reproduce its loss and gradient" in text
    assert "closest" not in text and "itself differs" not in text
    assert fit["residual"]["shift"] == {"axis": labels.ndim - 1, "by": 1, "ignored": -100}


# ---------------------------------------------------------------- a case parameter that does not reach the function


def test_a_function_smoothing_by_its_own_default_is_said_to_compute_as_if_the_parameter_were_that():
    """timm-style `LabelSmoothingCrossEntropy(smoothing=0.1)` built once and called on every case: the case's
    label_smoothing never reaches it. Per position (1 - 0.1) * -log p[y] + 0.1 * mean_c(-log p_c), the mean
    over N; the explanation finds the 0.1 from the numbers."""
    x = np.random.default_rng(10).standard_normal((5, 4))
    labels = np.array([0, 3, 1, 2, 2])
    case = case_of(f"    logits: {x.tolist()}\n    labels: {labels.tolist()}\n")
    n, c = x.shape
    hot, _ = onehot(labels, c)
    p = softmax(x)
    q = 0.9 * hot + 0.1 / c
    loss = (-(q * np.log(p)).sum(axis=1)).mean()
    text, fit = explained(case, loss, (p - q) / n)
    assert first_clause(text) == "no knob setting reproduces torch:port"
    assert "torch:port computes as if label_smoothing were 0.1 (the case sets 0.0)" in text
    assert fit["residual"]["parameter"]["value"] == pytest.approx(0.1, rel=1e-6)


# ---------------------------------------------------------------- an offset, positions, another shape


def test_a_constant_offset_per_position_and_on_a_mean_with_the_same_gradient():
    x = np.random.default_rng(5).standard_normal((5, 3))
    labels = np.array([0, 1, 2, 1, 0])
    loss, grad = per_position(x, labels)
    none = case_of(f"    logits: {x.tolist()}\n    labels: {labels.tolist()}\n    reduction: none\n")
    text, fit = explained(none, loss + 0.25, grad)
    assert "torch:port's loss is torch's plus a constant 0.25 (the same at every position)" in text
    mean = case_of(f"    logits: {x.tolist()}\n    labels: {labels.tolist()}\n")
    text, fit = explained(mean, loss.mean() + np.log(3), grad / len(labels))
    assert f"plus a constant {np.log(3):.6g} (its gradient agrees)" in text


def test_the_positions_of_one_class_only():
    """A port that halves the loss of class 0 only (a background weight): exactly the positions labelled
    0 differ, which the sentence says with their number."""
    x = np.random.default_rng(6).standard_normal((8, 3))
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1])
    case = case_of(f"    logits: {x.tolist()}\n    labels: {labels.tolist()}\n    reduction: none\n")
    loss, grad = per_position(x, labels)
    half = np.where(labels == 0, 0.5, 1.0)
    text, fit = explained(case, loss * half, grad * half[:, None])
    zeros = int((labels == 0).sum())
    assert f"torch:port's loss differs at {zeros} of {len(labels)} positions only" in text
    assert "exactly the positions labelled class 0" in text
    assert fit["residual"]["differs"]["class"] == 0


def test_a_map_where_torch_has_one_value_per_position():
    """kornia's focal_loss with reduction='none' returns its (N, C, d1) map, the target slice only non-zero."""
    x = np.random.default_rng(7).standard_normal((2, 4, 3))
    labels = np.array([[0, 3, 1], [2, 2, 1]])
    case = case_of(f"    logits: {x.tolist()}\n    labels: {labels.tolist()}\n    reduction: none\n")
    hot, _ = onehot(labels, 4)
    loss, grad = per_position(x, labels)
    text, fit = explained(case, hot * loss[:, None, :], grad)
    assert "torch:port returns values of shape [2, 4, 3] where torch returns values of shape [2, 3]" in text
    assert "summed over its axis 1 (the class axis) they are torch's values; its gradient agrees" in text


def test_where_the_numbers_do_not_tell_it_says_so():
    rng = np.random.default_rng(8)
    x = rng.standard_normal((5, 3))
    labels = np.array([0, 1, 2, 1, 0])
    case = case_of(f"    logits: {x.tolist()}\n    labels: {labels.tolist()}\n    reduction: none\n")
    loss, grad = per_position(x, labels)
    text, _ = explained(case, loss + rng.uniform(0.1, 1.0, size=5), grad + rng.uniform(0.1, 1.0, size=grad.shape))
    assert text == (
        "torch:port vs torch: no knob setting reproduces torch:port; the numbers do not tell what it does otherwise: no constant "
        "factor, constant offset, shift of the labels or subset of positions accounts for the difference."
    )


# ---------------------------------------------------------------- the closest setting and its share


def test_the_closest_setting_is_named_with_its_share_only_where_it_explains_most():
    """A weighted mean divided by N (the slip of examples/my_loss.py) plus 0.01: the knob that divides by
    the positions takes away all but the 0.01, a share computed here from the two means."""
    x = np.random.default_rng(9).standard_normal((4, 3))
    labels, weight = np.array([0, 2, 1, 1]), np.array([1.0, 2.0, 3.0])
    case = case_of(f"    logits: {x.tolist()}\n    labels: {labels.tolist()}\n    weight: {weight.tolist()}\n")
    loss, grad = per_position(x, labels)
    w = weight[labels]
    value = (w * loss).sum() / len(labels) + 0.01
    text, fit = explained(case, value, grad * w[:, None] / len(labels))
    share = 1 - 0.01 / abs(value - (w * loss).sum() / w.sum())
    assert first_clause(text) == "no knob setting reproduces torch:port"
    assert re.search(rf"closest: denominator = '\w+' explains {share:.0%} of the difference \(0.01 left in the loss", text)
    assert fit["share"] == pytest.approx(share, rel=1e-6)
    # the same slip plus a large offset: the knob explains little of it and is not named
    text, fit = explained(case, value + 5.0, grad * w[:, None] / len(labels))
    assert fit["share"] < explain.MOST and "closest" not in text


# ---------------------------------------------------------------- the counts


def test_counts_name_each_count_of_the_case():
    case = case_of(
        "    random: {shape: [2, 4, 5]}\n    labels: [[0, 1, -1, 3, 1], [3, 2, 1, -1, 2]]\n    ignore_index: -1\n    weight: [1, 2, 3, 4]\n"
    )
    found = dict(residual.counts(case))
    assert found["N (the batch size)"] == 2 and found["C (the number of classes)"] == 4 and found["N*C"] == 8
    assert found["N*d1*... (the number of positions)"] == 10 and found["every element of the predictions"] == 40
    assert found["the number of non-ignored positions"] == 8
    assert found["the sum of target weights w[y]"] == 1 + 2 + 4 + 2 + 4 + 3 + 2 + 3
    assert [name for name, _ in residual.equal_counts(case, 8.00001)] == ["N*C", "the number of non-ignored positions"]


# ---------------------------------------------------------------- whatever a user's function returns


@given(
    loss=st.one_of(
        st.floats(allow_nan=True, allow_infinity=True),
        st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), min_size=0, max_size=8),
    ),
    grad=st.one_of(st.none(), st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), min_size=0, max_size=16)),
    reduction=st.sampled_from(["mean", "sum", "none"]),
    ignored=st.booleans(),
)
@settings(max_examples=200, deadline=None, derandomize=True)
def test_any_values_give_sentences_not_an_exception(loss, grad, reduction, ignored):
    """A user's function may return anything (NaN, infinities, empty or misshapen arrays): the explanation
    is still written, never lost to an exception, and still says first that nothing fits (or what does)."""
    labels = [0, -100 if ignored else 1, 2, 1]
    logits = "[[0, 1, 2], [1, 0, 2], [2, 1, 0], [0, 0, 1]]"
    case = case_of(f"    logits: {logits}\n    labels: {labels}\n    ignore_index: -100\n    reduction: {reduction}\n")
    if grad is not None and len(grad) == 12:
        grad = np.reshape(grad, (4, 3))
    text, _ = explained(case, np.asarray(loss, dtype=np.float64), None if grad is None else np.asarray(grad, dtype=np.float64))
    assert text.startswith("torch:port vs torch: ")
