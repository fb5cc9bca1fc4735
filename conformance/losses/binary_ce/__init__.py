"""Binary cross-entropy: every element of the predictions (any shape) is its own binary problem; 0/1
labels or soft targets in [0, 1] of the predictions' shape; element weights and `pos_weight` broadcast
against the predictions (pos_weight usually one per class, the last axis). No ignore_index.

Targets are smoothed towards 0.5 (z = y(1-eps) + eps/2: Keras natively, a target transform elsewhere).
The textbook point is the plain BCE: no clamp of the logs, mean over all elements.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np
from pydantic import BeforeValidator, Field

from conformance.losses import (
    ARRAY,
    COMMON_PARAMETERS,
    Fail,
    Generated,
    array,
    as_generated,
    deep_numbers,
    defaulted,
    elementwise,
    elementwise_inputs,
    generated,
    generated_predictions,
    generated_sources,
    given_predictions,
    nested,
    package_variants,
    random_weights,
    seed_of,
    weights_line,
)
from conformance.reference import (
    SHARED_PHRASES,
    Knobs,
    Outcome,
    batch_aligned,
    clip_bounds,
    divided,
    empty_batch,
    mean_denominator,
    rounded,
)

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy

    from conformance.cases import Case
    from conformance.contract import Variant

NAME = "binary_cross_entropy"
ORDER = 20
FIELDS: dict[str, tuple[Any, Any]] = {
    "pos_weight": (
        Annotated[list[Any] | Literal["random"] | Generated | None, BeforeValidator(as_generated)],
        Field(
            default=None,
            description=(
                "binary_cross_entropy only: weight of the positive term, broadcast (usually one per class, the last axis); "
                "random: one per class, from default_rng(seed + 3)"
            ),
        ),
    )
}
ARRAYS = {"pos_weight": "pw"}
CLASS_AXIS = None  # elementwise: nothing to move for channels-last APIs; C is the last axis
RECIPES = "recipes cover logits and probabilities, but not an empty batch or per-sample weights on a 1-D batch"
INDEX_LABELS = False  # labels are 0/1 targets of the predictions' shape
# What reaches a user's loss function (`--variant`): torch's keyword arguments, by their names.
PARAMETERS = {**COMMON_PARAMETERS, "weight": ARRAY, "pos_weight": ARRAY, "label_smoothing": defaulted(0.0)}


# ---------------------------------------------------------------- the case's arrays


def build(spec: Any, fail: Fail) -> dict[str, Any]:
    """Predictions of any shape, targets of the same shape, weight and pos_weight broadcast to it. With
    `check_shapes: false` a shape that does not fit is kept and named in `mismatched` instead of failing."""
    predictions, key = given_predictions(spec, fail, lambda shape: True)
    if key is not None and predictions.ndim < 1:
        raise fail(f"{key} must be an array (any shape) for binary_cross_entropy", key)
    mismatched: list[str] = []

    def misfit(message: str, key: str) -> None:
        if spec.check_shapes is not False:
            raise fail(message, key)
        mismatched.append(key)

    labels, soft = _targets(spec, predictions, fail, misfit)
    weight, pos_weight = _weights(spec, predictions, fail, misfit)
    built = {
        "predictions": predictions,
        "from_logits": key != "probs",
        "labels": labels,
        "soft_labels": soft,
        "weight": weight,
        "pos_weight": pos_weight,
    }
    if spec.check_shapes is False:
        built["mismatched"] = mismatched
    return built


def _targets(
    spec: Any, predictions: np.ndarray, fail: Fail, misfit: Callable[[str, str], None]
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Binary targets have the predictions' shape: 0/1 `labels` or soft `soft_labels` in [0, 1]."""
    if spec.ignore_index is not None:
        raise fail("binary_cross_entropy has no ignore_index (use a zero weight)", "ignore_index")
    seed = spec.random.seed if spec.random else 0
    key = "labels" if spec.labels is not None else "soft_labels"
    value = getattr(spec, key)
    if value == "random":
        rng = np.random.default_rng(seed + 1)
        drawn = rng.integers(0, 2, predictions.shape).astype(np.float64) if key == "labels" else rng.random(predictions.shape)
        return (drawn, None) if key == "labels" else (None, drawn)
    if isinstance(value, Generated):
        arr = generated("y" if key == "labels" else "t", key, value, fail, **({"classes": 2} if key == "labels" else {}))[0]
    else:
        arr = array(deep_numbers(value, fail, key), key, fail, key)
    if arr.shape != predictions.shape:
        misfit(f"{key} have shape {list(arr.shape)}, expected the predictions' {list(predictions.shape)}", key)
    if key == "labels" and not np.all((arr == 0) | (arr == 1)):
        raise fail("binary labels must be 0 or 1 (give soft_labels for values in between)", key)
    if not np.all((arr >= 0) & (arr <= 1)):
        raise fail("soft_labels must lie in [0, 1]", key)
    return (arr, None) if key == "labels" else (None, arr)


def _weights(
    spec: Any, predictions: np.ndarray, fail: Fail, misfit: Callable[[str, str], None]
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """`weight` and `pos_weight` broadcast against the predictions; `random`: positive and seeded, a
    weight per element, a pos_weight per class (the last axis)."""
    out: list[np.ndarray | None] = []
    for key, stream in (("weight", 2), ("pos_weight", 3)):
        raw = getattr(spec, key)
        if raw is None:
            out.append(None)
            continue
        if raw == "random":
            out.append(random_weights(spec, predictions.shape if key == "weight" else predictions.shape[-1:], stream))
            continue
        arr = generated(key, key, raw, fail)[0] if isinstance(raw, Generated) else array(deep_numbers(raw, fail, key), key, fail, key)
        if not np.all(np.isfinite(arr)):
            raise fail(f"{key} must be finite", key)
        try:
            shape = np.broadcast_shapes(arr.shape, predictions.shape)
        except ValueError:
            shape = None
        if shape != predictions.shape:
            misfit(f"{key} of shape {list(arr.shape)} does not broadcast to the predictions' {list(predictions.shape)}", key)
        out.append(arr)
    return out[0], out[1]


def generated_source(case: Case) -> dict[str, list[str]]:
    """NumPy lines regenerating the case's generated arrays (float64, before their dtype) by the names
    the variants read them by, as `build` drew them (see softmax cross-entropy's)."""
    seed, shape = seed_of(case), case.predictions.shape
    out = generated_sources(
        case, {"labels": ("y", {"classes": 2}), "soft_labels": ("t", {}), "weight": ("w", {}), "pos_weight": (ARRAYS["pos_weight"], {})}
    )
    if (x := generated_predictions(case)) is not None:
        out["x"] = x
    if case.params.get("labels") == "random":
        out["y"] = [f"y = np.random.default_rng({seed + 1}).integers(0, 2, {shape}).astype(np.float64)"]
    if case.params.get("soft_labels") == "random":
        out["t"] = [f"t = np.random.default_rng({seed + 1}).random({shape})"]
    if case.params.get("weight") == "random":
        out["w"] = weights_line("w", case, shape, 2)
    if case.params.get("pos_weight") == "random":
        out[ARRAYS["pos_weight"]] = weights_line(ARRAYS["pos_weight"], case, shape[-1:], 3)
    return out


# ---------------------------------------------------------------- the float64 model


def textbook(case: Case) -> Knobs:
    """The plain BCE: mean over all elements, no clamp."""
    return Knobs(denominator=mean_denominator(case, "positions"))


def evaluate(case: Case, knobs: Knobs) -> Outcome:
    """Binary cross-entropy, elementwise, with pos_weight, element and sample weights."""
    x = rounded(case, case.predictions)
    eps = case.label_smoothing
    z = rounded(case, case.targets, "labels" if case.labels is not None else "soft_labels") * (1.0 - eps) + 0.5 * eps
    pos = np.ones_like(x) if case.pos_weight is None else np.broadcast_to(rounded(case, case.pos_weight, "pos_weight"), x.shape)
    weight = np.ones_like(x) if case.weight is None else np.broadcast_to(rounded(case, case.weight, "weight"), x.shape)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if case.from_logits:
            scale_pos = 1.0 + (pos - 1.0) * z
            softplus = np.log1p(np.exp(-np.abs(x))) + np.maximum(-x, 0.0)
            element = (1.0 - z) * x + scale_pos * softplus
            d_element = scale_pos / (1.0 + np.exp(-x)) - pos * z
        elif knobs.probabilities == "clip":
            lo, hi = clip_bounds(case, knobs)
            p = np.clip(x, lo, hi)
            live = (x > lo) & (x < hi)
            element = -(_xlog(pos * z, p) + _xlog(1.0 - z, 1.0 - p))
            d_element = np.where(live, -pos * z / p + (1.0 - z) / (1.0 - p), 0.0)
        else:
            clamp = np.inf if knobs.log_clamp is None else knobs.log_clamp
            element = -(_xlog(pos * z, x, clamp) + _xlog(1.0 - z, 1.0 - x, clamp))
            d_element = (pos * z * (x - 1.0) + (1.0 - z) * x) / np.maximum(x * (1.0 - x), 1e-12)
    sw = None if case.sample_weight is None else rounded(case, case.sample_weight, "sample_weight")
    with np.errstate(invalid="ignore"):  # an infinite unclamped log times a zero weight is NaN, as in the frameworks
        element = element * weight
        d_element = d_element * weight
        if knobs.last_axis_mean:
            values = element.mean(axis=-1)
            d_values = d_element / max(x.shape[-1], 1)
            sample = batch_aligned(sw, values.shape)
            d_sample = sample[..., None]
        else:
            values, d_values = element, d_element
            sample = d_sample = batch_aligned(sw, x.shape)
        values = values * sample
    applied = sample
    if knobs.weights_as_sample_weights and not knobs.last_axis_mean:
        applied = sample * weight
    if case.reduction == "none":
        return Outcome(loss=np.asarray(values, dtype=np.float64), grad=np.asarray(d_values * d_sample))
    if x.size == 0:
        return Outcome(loss=empty_batch(case, knobs), grad=np.zeros(x.shape))
    denom = 1.0
    if case.reduction != "sum":
        kind = knobs.denominator
        denom = {
            "applied_weight": float(np.sum(applied)),
            "nonzero_weight": float(np.count_nonzero(applied)),
        }.get(kind, float(np.size(values)))
    loss, factor = divided(float(np.sum(values)), denom, knobs)
    return Outcome(loss=loss, grad=np.asarray(d_values * d_sample * factor), denominator=denom if case.reduction != "sum" else None)


def _xlog(coefficient: np.ndarray, p: np.ndarray, clamp: float = np.inf) -> np.ndarray:
    """coefficient * max(log p, -clamp), with 0 * log 0 = 0 (the limit, as the formula means it)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(coefficient != 0, coefficient * np.maximum(np.log(p), -clamp), 0.0)


# ---------------------------------------------------------------- recipes


def native_recipe(framework: str, case: Case, knobs: Knobs) -> str | None:
    """`framework`'s code reproducing the binary cross-entropy of `knobs` (another framework's documented
    point), in its own ops (`elementwise`), as `evaluate` computes it: from logits
    (1 - z) x + (1 + (pw - 1) z) softplus(-x); from probabilities the logs of p and 1 - p, clipped
    (Keras) or clamped at -100 (torch, paddle); element weights, then the reduction. None where the
    framework has no ops table, the batch is empty or per-sample weights meet a scalar."""
    op = elementwise.ops(framework, case)
    if op is None:
        return None
    lines = elementwise.targets(op)
    if case.pos_weight is not None:
        lines.append(f"pos = {op.tensor(ARRAYS['pos_weight'], 'pos_weight')}")
    positive = "(1 + (pos - 1) * target)" if case.pos_weight is not None else ""
    if case.from_logits:
        lines.append(f"logits = {op.tensor('x')}")
        scale = f"{positive} * " if positive else ""
        lines.append(f"element = (1 - target) * logits + {scale}({elementwise.softplus_of_negative(op, 'logits')})")
    else:
        lines.append(f"p = {op.tensor('x')}")
        clipped, log_p, log_q = elementwise.probability_logs(op, knobs, "p")
        weighted = "pos * target" if case.pos_weight is not None else "target"
        lines += clipped
        lines.append(f"element = -({elementwise.xlog(op, knobs, weighted, log_p)} + {elementwise.xlog(op, knobs, '(1 - target)', log_q)})")
    if case.weight is not None:
        lines.append(f"element = element * {op.tensor('w', 'weight')}  # element weights")
    reduction = elementwise.reduced(op, knobs, knobs.last_axis_mean, case.reduction)
    return None if reduction is None else "\n".join(lines + reduction)


def port(case: Case, own: Knobs, target: Knobs, model: Callable[[Knobs], Outcome]) -> dict[str, Any] | None:
    """The smallest change to a framework's own call: where only the denominator or Keras's last-axis
    mean moves the loss (`elementwise.port`)."""
    return elementwise.port(case, own, target, model)


# ---------------------------------------------------------------- explanations

PHRASES: dict[str, dict[Any, str]] = {
    **SHARED_PHRASES,
    "probabilities": {"none": "takes log p as given", "clip": "clips p to [eps, 1-eps]"},
    "log_clamp": {None: "does not clamp log p"},
    "last_axis_mean": {True: "averages the last axis into one value per sample", False: "keeps one value per element"},
}

ALTERNATIVES: dict[str, list[Any]] = {
    "denominator": ["positions", "applied_weight", "nonzero_weight"],
    "empty_mean": ["nan", "zero"],
    "empty_batch": ["nan", "zero", "unreduced"],
    "probabilities": ["none", "clip"],
    "log_clamp": [None, 100.0],
    "weights_as_sample_weights": [False, True],
    "last_axis_mean": [False, True],
}


# ---------------------------------------------------------------- the native calls, one module per framework


def variants(framework: str) -> list[Variant]:
    """The family's native calls in `framework` (`losses.package_variants`)."""
    return package_variants(__name__, framework)


# ---------------------------------------------------------------- the fuzzer's cases

LOGITS = [0.0, 1.0, -1.0, 2.0, 0.5, -3.0, 20.0, -120.0]
PROBS = [0.5, 0.25, 0.75, 0.1, 0.9, 0.0, 1.0]
TARGETS = [0.0, 1.0, 0.5, 0.25]
WEIGHTS = [1.0, 2.0, 0.5, 3.0, 0.0]
POS_WEIGHTS = [1.0, 2.0, 0.5, 3.0]
SAMPLE_WEIGHTS = [1.0, 0.5, 2.0, 0.0]
SMOOTHING = [0.0, 0.1, 0.2, 0.5]


def strategy() -> SearchStrategy[dict[str, Any]]:
    """Binary cross-entropy cases as they would be written in YAML: logits or probabilities of small
    shapes (N, N x C, N x C x d), 0/1 labels or soft targets, and each option from a small set.
    Simplest values first, so shrinking moves towards one sample of one logit 0, label 0, no options."""
    from hypothesis import strategies as st

    @st.composite
    def case_specs(draw: Callable[..., Any]) -> dict[str, Any]:
        n = draw(st.integers(1, 4))
        shape = [n, *draw(st.sampled_from([[], [2], [3], [2, 2]]))]
        spec: dict[str, Any] = {"id": "fuzz", "loss": NAME, **elementwise_inputs(draw, shape, LOGITS, PROBS, TARGETS)}
        spec["reduction"] = draw(st.sampled_from(["mean", "sum", "none"]))
        if draw(st.booleans()):  # element weights: one per element, or one per class (the last axis)
            spec["weight"] = draw(nested(st.sampled_from(WEIGHTS), draw(st.sampled_from([shape[-1:], shape]))))
        if draw(st.booleans()):
            spec["pos_weight"] = draw(nested(st.sampled_from(POS_WEIGHTS), shape[-1:]))
        smoothing = draw(st.sampled_from(SMOOTHING))
        if smoothing:
            spec["label_smoothing"] = smoothing
        if draw(st.booleans()):
            spec["sample_weight"] = draw(st.lists(st.sampled_from(SAMPLE_WEIGHTS), min_size=n, max_size=n))
        if draw(st.booleans()):
            spec["dtype"] = "float64"
        return spec

    return case_specs()
