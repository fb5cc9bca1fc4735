"""The KL divergence family's float64 model, case validation and explanations (no framework runs here).

Expected numbers come from independent sources: plain float64 loops written from each API's documented
formula (torch / paddle `KLDivLoss`: t (log t - input) elementwise; Keras `KLDivergence`: y_true and
y_pred clipped to [1e-7, 1], y_true log(y_true / y_pred) summed over the last axis; optax
`kl_divergence`: t (where(t == 0, 0, log t) - log_predictions) summed over the axis), central finite
differences of those loops for gradients, and the numbers printed in tf.keras's KLDivergence docstring
(TensorFlow 2.2 to 2.6: 0.458, 0.366, 0.916, [0.916, -3.08e-06]).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from conformance import cases, explain, reference
from conformance.cases import Case
from conformance.errors import CaseError
from conformance.losses import kl_divergence as kl
from conformance.reference import Knobs

KERAS_EPS = 1e-7


def load(**spec: object) -> Case:
    base = {"id": "t", "loss": "kl_divergence", "dtype": "float64"}
    return cases.load_text(json.dumps({"cases": [{**base, **spec}]}), "kl.yaml")[0]


def torch_point(case: Case) -> Knobs:
    return kl.documented(case, mean="elements", batchmean="batch", zero_target="xlogy", unreduced="elements")


def keras_point(case: Case) -> Knobs:
    return kl.documented(case, mean="positions", batchmean="positions", clip_predictions=True, zero_target="clipped", unreduced="positions")


# ---------------------------------------------------------------- independent loops, from the docs


def log_softmax_row(row: list[float]) -> list[float]:
    top = max(row)
    total = sum(math.exp(v - top) for v in row)
    return [v - top - math.log(total) for v in row]


def rows(x: np.ndarray) -> list[tuple[int, tuple[int, ...]]]:
    """(n, trailing index) of every position of an (N, C, d1, ...) array."""
    return [(n, rest) for n in range(x.shape[0]) for rest in np.ndindex(*x.shape[2:])]


def torch_loop(x: np.ndarray, t: np.ndarray, reduction: str, from_logits: bool = True) -> np.ndarray:
    """torch docs: l = t (log t - input), input = log_softmax(x, 1) (or log p), 0 log 0 = 0 (xlogy)."""
    out = np.zeros(x.shape)
    for n, rest in rows(x):
        row = [x[(n, c, *rest)] for c in range(x.shape[1])]
        lp = log_softmax_row(row) if from_logits else [math.log(v) if v > 0 else -math.inf for v in row]
        for c in range(x.shape[1]):
            target = t[(n, c, *rest)]
            out[(n, c, *rest)] = target * (math.log(target) - lp[c]) if target > 0 else (math.nan if lp[c] == -math.inf else 0.0)
    return {"none": out, "sum": out.sum(), "mean": out.sum() / out.size, "batchmean": out.sum() / x.shape[0]}[reduction]


def keras_loop(x: np.ndarray, t: np.ndarray, reduction: str, from_logits: bool = True, sw: list[float] | None = None) -> np.ndarray:
    """Keras docs: y_true, y_pred clipped to [eps, 1]; sum over classes of y_true log(y_true / y_pred);
    sample_weight scales a sample; sum_over_batch_size (its mean and our batchmean) / positions."""
    per = np.zeros((x.shape[0], *x.shape[2:]))
    for n, rest in rows(x):
        row = [x[(n, c, *rest)] for c in range(x.shape[1])]
        p = [math.exp(v) for v in log_softmax_row(row)] if from_logits else row
        total = 0.0
        for c in range(x.shape[1]):
            yt = min(max(t[(n, c, *rest)], KERAS_EPS), 1.0)
            yp = min(max(p[c], KERAS_EPS), 1.0)
            total += yt * math.log(yt / yp)
        per[(n, *rest)] = total * (1.0 if sw is None else sw[n])
    return {"none": per, "sum": per.sum(), "mean": per.sum() / per.size, "batchmean": per.sum() / per.size}[reduction]


def finite_difference(f, x: np.ndarray, h: float = 1e-6) -> np.ndarray:  # type: ignore[no-untyped-def]
    grad = np.zeros(x.shape)
    for index in np.ndindex(*x.shape):
        up, down = x.copy(), x.copy()
        up[index] += h
        down[index] -= h
        grad[index] = (np.sum(f(up)) - np.sum(f(down))) / (2 * h)
    return grad


LOGITS = [[0.5, -1.0, 2.0, 0.0], [1.0, 1.0, 1.0, 3.0], [0.1, 0.2, -0.3, -2.0]]
SOFT = [[0.2, 0.3, 0.5, 0.0], [0.0, 0.6, 0.3, 0.1], [0.25, 0.25, 0.25, 0.25]]
KDIM = np.random.default_rng(7).standard_normal((2, 3, 2)).tolist()
KDIM_T = [[[0.2, 0.0], [0.3, 0.6], [0.5, 0.4]], [[0.1, 0.7], [0.1, 0.2], [0.8, 0.1]]]


# ---------------------------------------------------------------- the model at documented points


@pytest.mark.parametrize("reduction", ["none", "mean", "sum", "batchmean"])
@pytest.mark.parametrize("logits, soft", [(LOGITS, SOFT), (KDIM, KDIM_T)], ids=["2d", "kdim"])
def test_torch_point_is_the_torch_formula(reduction: str, logits: list, soft: list) -> None:
    case = load(logits=logits, soft_labels=soft, reduction=reduction)
    out = reference.evaluate(case, torch_point(case))
    x, t = np.array(logits), np.array(soft)
    np.testing.assert_allclose(out.loss, torch_loop(x, t, reduction), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(out.grad, finite_difference(lambda v: torch_loop(v, t, reduction), x), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("reduction", ["none", "mean", "sum", "batchmean"])
@pytest.mark.parametrize("logits, soft", [(LOGITS, SOFT), (KDIM, KDIM_T)], ids=["2d", "kdim"])
def test_keras_point_is_the_keras_formula(reduction: str, logits: list, soft: list) -> None:
    """Zero targets count as eps; the K-dim batchmean divides by the positions (Keras's default)."""
    case = load(logits=logits, soft_labels=soft, reduction=reduction, sample_weight=[0.5, 2.0, 1.0][: len(logits)])
    sw = [0.5, 2.0, 1.0][: len(logits)]
    out = reference.evaluate(case, keras_point(case))
    x, t = np.array(logits), np.array(soft)
    np.testing.assert_allclose(out.loss, keras_loop(x, t, reduction, sw=sw), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(out.grad, finite_difference(lambda v: keras_loop(v, t, reduction, sw=sw), x), rtol=1e-6, atol=1e-8)


def test_keras_clip_caps_saturated_logits_and_stops_their_gradient() -> None:
    """Logit 30 vs -30 with the target on the unlikely class: the exact KL is 60, Keras log(1 / 1e-7)."""
    case = load(logits=[[30.0, -30.0, 0.0]], soft_labels=[[0.0, 1.0, 0.0]], reduction="sum")
    exact = reference.evaluate(case, torch_point(case))
    clipped = reference.evaluate(case, keras_point(case))
    x, t = np.array(case.predictions), np.array(case.soft_labels)
    assert float(exact.loss) == pytest.approx(torch_loop(x, t, "sum"), rel=1e-12)
    assert float(exact.loss) == pytest.approx(60.0, rel=1e-9)
    assert float(clipped.loss) == pytest.approx(keras_loop(x, t, "sum"), rel=1e-12)
    assert float(clipped.loss) == pytest.approx(math.log(1e7), rel=1e-6)
    assert np.abs(clipped.grad).max() < 1e-12


def test_keras_documented_example() -> None:
    """tf.keras.losses.KLDivergence docstring (TF 2.2-2.6), printed to 3 digits: matched to one unit of the last."""
    spec = {"probs": [[0.6, 0.4], [0.4, 0.6]], "soft_labels": [[0, 1], [0, 0]]}
    printed = {"mean": 0.458, "sum": 0.916}
    for reduction, value in printed.items():
        case = load(**spec, reduction=reduction)
        assert float(reference.evaluate(case, keras_point(case)).loss) == pytest.approx(value, abs=1e-3)
    case = load(**spec, reduction="none")
    np.testing.assert_allclose(reference.evaluate(case, keras_point(case)).loss, [0.916, -3.08e-06], rtol=2e-3)
    case = load(**spec, sample_weight=[0.8, 0.2])
    assert float(reference.evaluate(case, keras_point(case)).loss) == pytest.approx(0.366, abs=1e-3)


def test_zero_targets_against_a_zero_probability() -> None:
    """p = 0 where t = 0: xlogy gives 0 * -inf = NaN (torch, optax), paddle's kernel 0 (gradient 0 in the
    model), the log-target forms NaN; a positive target on p = 0 is +inf with a -inf gradient."""
    case = load(probs=[[0.0, 0.5, 0.5]], soft_labels=[[0.0, 0.5, 0.5]], reduction="sum")
    x, t = np.array(case.predictions), np.array(case.soft_labels)
    xlogy = reference.evaluate(case, torch_point(case))
    assert math.isnan(float(xlogy.loss)) and math.isnan(torch_loop(x, t, "sum", from_logits=False))
    assert math.isnan(xlogy.grad[0, 0])
    masked = reference.evaluate(case, Knobs.of(zero_target="masked", unreduced="elements"))
    assert float(masked.loss) == pytest.approx(0.0, abs=1e-15) and masked.grad[0, 0] == 0.0
    np.testing.assert_allclose(masked.grad[0, 1:], [-1.0, -1.0])  # -t / p
    assert math.isnan(float(reference.evaluate(case, Knobs.of(zero_target="log_target")).loss))
    positive = load(probs=[[0.0, 1.0]], soft_labels=[[0.5, 0.5]], reduction="sum")
    out = reference.evaluate(positive, Knobs.of(zero_target="masked"))
    assert float(out.loss) == math.inf and out.grad[0, 0] == -math.inf


def test_paddle_logit_floor() -> None:
    """paddle's CPU log_softmax clips shifted logits at -64: [100, 0, -100] gives log p = [0, -64, -64]."""
    case = load(logits=[[100.0, 0.0, -100.0]], soft_labels=[[0.0, 0.5, 0.5]], reduction="sum")
    out = reference.evaluate(case, Knobs.of(zero_target="masked", logit_floor=64.0))
    assert float(out.loss) == pytest.approx(2 * 0.5 * (math.log(0.5) + 64.0), rel=1e-9)
    assert float(reference.evaluate(case, Knobs.of(zero_target="masked")).loss) == pytest.approx(
        0.5 * (math.log(0.5) + 100.0) + 0.5 * (math.log(0.5) + 200.0), rel=1e-9
    )


def test_textbook_is_the_kl_per_distribution() -> None:
    case = load(logits=KDIM, soft_labels=KDIM_T, reduction="mean")
    x, t = np.array(KDIM), np.array(KDIM_T)
    per_position = torch_loop(x, t, "none").sum(axis=1)
    assert float(reference.evaluate(case, reference.textbook(case)).loss) == pytest.approx(per_position.mean(), rel=1e-12)
    batch = load(logits=KDIM, soft_labels=KDIM_T, reduction="batchmean")
    assert float(reference.evaluate(batch, reference.textbook(batch)).loss) == pytest.approx(per_position.sum() / 2, rel=1e-12)


# ---------------------------------------------------------------- case validation


@pytest.mark.parametrize(
    "spec, key, words",
    [
        ({"labels": [0, 1]}, "labels", "give soft_labels"),
        ({"soft_labels": [[0.5, 0.5], [0.5, 0.5]], "weight": [1, 2]}, "weight", "no KL divergence API takes class weights"),
        ({"soft_labels": [[0.5, 0.5], [0.5, 0.5]], "label_smoothing": 0.1}, "label_smoothing", "no label_smoothing"),
        ({"soft_labels": [[0.5, 0.5], [0.5, 0.5]], "reduction": "sum_over_batch_size"}, "reduction", "none, mean, sum, batchmean"),
        ({"soft_labels": [[0.5, 0.5], [1.5, 0.5]]}, "soft_labels", "must lie in [0, 1]"),
        ({"soft_labels": [[0.5, 0.5]]}, "soft_labels", "expected the predictions' [2, 2]"),
    ],
)
def test_bad_cases_name_the_key(spec: dict, key: str, words: str) -> None:
    text = json.dumps({"cases": [{"id": "bad", "loss": "kl_divergence", "logits": [[0.0, 1.0], [1.0, 0.0]], **spec}]})
    with pytest.raises(CaseError) as info:
        cases.load_text(text, "kl.yaml")
    assert info.value.key == key and words in str(info.value)


def test_batchmean_is_kl_divergences_own() -> None:
    text = "cases:\n  - id: ce\n    logits: [[0.0, 1.0]]\n    labels: [1]\n    reduction: batchmean\n"
    with pytest.raises(CaseError) as info:
        cases.load_text(text, "ce.yaml")
    assert info.value.key == "reduction" and info.value.line == 5 and "kl_divergence" in str(info.value)


def test_variants_per_framework() -> None:
    assert {v.key for v in kl.variants("torch")} == {"torch", "torch:functional", "torch:log_target"}
    assert {v.key for v in kl.variants("jax")} == {"jax", "jax:log_target", "jax:keras"}
    assert kl.variants("numpy") == []


# ---------------------------------------------------------------- explanations


def test_explanation_names_the_denominator_and_the_clip() -> None:
    """torch's mean / 12 elements against Keras's / 3 positions; with no zero target and no tiny
    probability, Keras's clips have no effect; zero targets move the loss through the targets' clip
    (eps log(eps / p) per zero), saturated logits through the predictions' clip."""
    case = load(logits=LOGITS[:2], soft_labels=[[0.2, 0.3, 0.4, 0.1], [0.1, 0.6, 0.2, 0.1]], reduction="mean")
    effects = {d.knob: d.effect for d in explain.knob_differences(case, keras_point(case), torch_point(case))}
    assert effects["denominator"] == pytest.approx(abs(torch_loop(np.array(LOGITS[:2]), case.soft_labels, "mean") * 3), rel=1e-9)
    assert effects["clip_predictions"] == 0.0
    zeros = load(logits=LOGITS, soft_labels=SOFT, reduction="mean")
    effects = {d.knob: d.effect for d in explain.knob_differences(zeros, keras_point(zeros), torch_point(zeros))}
    assert effects["zero_target"] and effects["zero_target"] > 1e-7 and effects["clip_predictions"] == 0.0
    saturated = load(logits=[[30.0, -30.0, 0.0]], soft_labels=[[0.2, 0.6, 0.2]], reduction="mean")
    effects = {d.knob: d.effect for d in explain.knob_differences(saturated, keras_point(saturated), torch_point(saturated))}
    assert effects["clip_predictions"] and effects["clip_predictions"] > 1.0
    assert reference.evaluate(zeros, torch_point(zeros)).denominator == 12
    assert reference.evaluate(zeros, keras_point(zeros)).denominator == 3
    assert explain._phrase("denominator", "elements").startswith("divides the mean by the number of elements")
    assert "clips predictions" in explain._phrase("clip_predictions", True)


def test_strategy_generates_cases_the_loader_accepts() -> None:
    from hypothesis import HealthCheck, given, settings

    @settings(max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(kl.strategy())
    def check(spec: dict) -> None:
        (case,) = cases.load_text(json.dumps({"cases": [spec]}), "fuzz.yaml")
        assert case.loss == "kl_divergence"
        out = reference.evaluate(case, reference.textbook(case))
        assert out.grad.shape == case.predictions.shape

    check()


def test_another_familys_denominator_is_no_kl_point() -> None:
    """Explanations and baseline attribution try every family's denominators: softmax's are refused here
    (a ValueError, which they skip), so a KL value is never described as 'the sum of target weights'."""
    case = load(logits=LOGITS, soft_labels=SOFT, reduction="mean")
    with pytest.raises(ValueError, match="no meaning for kl_divergence"):
        reference.evaluate(case, Knobs.of(denominator="target_weight"))
    assert reference.evaluate(load(logits=LOGITS, soft_labels=SOFT, reduction="sum"), Knobs()).denominator is None


def test_a_clipped_zero_target_alone_is_kerass_value_away_from_the_prediction_clip() -> None:
    """zero_target='clipped' without clip_predictions (the knob an explanation switches alone) counts a zero
    target as 1e-7: Keras's value wherever no prediction is below 1e-7."""
    case = load(logits=LOGITS, soft_labels=SOFT, reduction="sum")
    out = reference.evaluate(case, Knobs.of(zero_target="clipped"))
    assert float(out.loss) == pytest.approx(keras_loop(np.array(LOGITS), np.array(SOFT), "sum"), rel=1e-12)
    assert float(out.loss) != pytest.approx(torch_loop(np.array(LOGITS), np.array(SOFT), "sum"), rel=1e-9)


def test_targets_of_another_shape_are_kept_under_check_shapes_false():
    """PaddleAPITest calls kl_div with labels that do not fit the input: with `check_shapes: false` such a
    case loads (every framework is expected to raise), without it the loader refuses it, naming soft_labels."""
    case = load(logits={"shape": [5, 20]}, soft_labels={"shape": [5, 19]}, check_shapes=False)
    assert case.soft_labels.shape == (5, 19) and not case.check_shapes
    assert case.expect is not None and case.expect.status == {"*": "error"}
    with pytest.raises(CaseError) as info:
        load(logits={"shape": [5, 20]}, soft_labels={"shape": [5, 19]})
    assert info.value.key == "soft_labels"
    with pytest.raises(CaseError, match="every shape of this case fits"):
        load(logits={"shape": [5, 20]}, soft_labels={"shape": [5, 20]}, check_shapes=False)
