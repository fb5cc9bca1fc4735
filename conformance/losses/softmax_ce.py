"""Softmax cross-entropy: predictions (N, C, d1, ..., dk) with the class axis 1, as in torch and ONNX;
class indices or per-class probabilities as targets; class weights, label smoothing, ignore_index.

Its reference evaluation has the form L = sum_{n,c} A[n,c] * (-lp[n,c]) with coefficients A that do not
depend on the predictions, so the gradient is analytic (see `_grad`), not a finite difference. The
textbook point is ONNX `SoftmaxCrossEntropyLoss` (opset 13), extended with smoothing and probability
targets the way torch documents them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from conformance.losses import Fail, array, deep_numbers, given_predictions, nested, size
from conformance.reference import SHARED_PHRASES, Denominator, Knobs, Outcome, clip_bounds, divided, empty_batch, mean_denominator, rounded

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy

    from conformance.cases import Case

NAME = "softmax_cross_entropy"
ORDER = 10
DEFAULT = True  # a case without `loss:` is softmax cross-entropy
FIELDS: dict[str, tuple[Any, Any]] = {}
INSTEAD = {"pos_weight": "softmax cross-entropy takes class `weight`"}
ARRAYS: dict[str, str] = {}
CLASS_AXIS = 1
INDEX_LABELS = True


# ---------------------------------------------------------------- the case's arrays


def build(spec: Any, fail: Fail) -> dict[str, Any]:
    """Predictions with a class axis 1, class-index or probability targets, class weights (C,)."""
    predictions, from_logits = _predictions(spec, fail)
    labels, soft = _targets(spec, predictions, fail)
    weight = _weight(spec, predictions, fail)
    return {"predictions": predictions, "from_logits": from_logits, "labels": labels, "soft_labels": soft, "weight": weight}


def _predictions(spec: Any, fail: Fail) -> tuple[np.ndarray, bool]:
    arr, key = given_predictions(spec, fail, lambda shape: len(shape) >= 2 and shape[1] >= 1)
    if key is None:
        return arr, True
    if arr.ndim < 2:
        raise fail(f"{key} must be (N, C) or (N, C, d1, ..., dk), class axis 1; got shape {list(arr.shape)}", key)
    if arr.shape[1] < 1:
        raise fail(f"{key} must have at least one class", key)
    return arr, key == "logits"


def _targets(spec: Any, predictions: np.ndarray, fail: Fail) -> tuple[np.ndarray | None, np.ndarray | None]:
    num_classes = predictions.shape[1]
    label_shape = predictions.shape[:1] + predictions.shape[2:]
    seed = spec.random.seed if spec.random else 0
    if spec.labels is not None:
        if spec.labels == "random":
            return np.random.default_rng(seed + 1).integers(0, num_classes, size=label_shape), None
        raw = deep_numbers(spec.labels, fail, "labels")
        arr = array(raw, "labels", fail, "labels")
        if arr.size and not np.all(np.isfinite(arr) & (arr == np.round(arr))):
            raise fail("labels must be integer class indices", "labels")
        arr = arr.astype(np.int64)
        if arr.shape != label_shape:
            raise fail(
                f"labels have shape {list(arr.shape)}, expected {list(label_shape)} (predictions without the class axis)",
                "labels",
            )
        bad = arr[((arr < 0) | (arr >= num_classes)) & (arr != (spec.ignore_index if spec.ignore_index is not None else arr + 1))]
        if bad.size:
            raise fail(
                f"label {int(bad.flat[0])} is outside [0, {num_classes}) and "
                + ("there is no ignore_index" if spec.ignore_index is None else f"is not the ignore_index {spec.ignore_index}"),
                "labels",
            )
        return arr, None
    if spec.soft_labels == "random":
        logits = np.random.default_rng(seed + 1).standard_normal(predictions.shape)
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return None, e / e.sum(axis=1, keepdims=True)
    arr = array(deep_numbers(spec.soft_labels, fail, "soft_labels"), "soft_labels", fail, "soft_labels")
    if arr.shape != predictions.shape:
        raise fail(f"soft_labels have shape {list(arr.shape)}, expected the predictions' {list(predictions.shape)}", "soft_labels")
    if np.any((arr < 0) | (arr > 1)) or not np.all(np.isfinite(arr)):
        raise fail("soft_labels are per-class probabilities and must lie in [0, 1]", "soft_labels")
    return None, arr


def _weight(spec: Any, predictions: np.ndarray, fail: Fail) -> np.ndarray | None:
    """Class weights: one per class (C,)."""
    if spec.weight is None:
        return None
    arr = array(deep_numbers(spec.weight, fail, "weight"), "weight", fail, "weight")
    if not np.all(np.isfinite(arr)):
        raise fail("weight must be finite", "weight")
    num_classes = predictions.shape[1]
    if arr.shape != (num_classes,):
        raise fail(f"weight has {arr.size} entries but the predictions have C={num_classes} classes", "weight")
    return arr


# ---------------------------------------------------------------- the float64 model


def textbook(case: Case) -> Knobs:
    """Class weight per class, mean / sum of target weights for class indices, / positions for
    probability targets or per-sample weights."""
    own: Denominator = "target_weight" if case.labels is not None and case.sample_weight is None else "positions"
    return Knobs(denominator=mean_denominator(case, own))


def evaluate(case: Case, knobs: Knobs) -> Outcome:
    """Softmax cross-entropy under `knobs`, with its analytic gradient."""
    x = _channels_last(rounded(case, case.predictions))
    num_classes = x.shape[-1]
    spatial = x.shape[:-1]
    flat = x.reshape(-1, num_classes)
    eps = case.label_smoothing
    weight = np.ones(num_classes) if case.weight is None else rounded(case, case.weight)

    if case.labels is not None:
        labels = case.labels.reshape(-1)
        valid = np.ones(labels.shape, bool) if case.ignore_index is None else labels != case.ignore_index
        onehot = np.zeros_like(flat)
        inside = valid & (labels >= 0) & (labels < num_classes)
        onehot[np.flatnonzero(inside), labels[inside]] = 1.0
        hard_weight = np.where(inside, weight[np.clip(labels, 0, num_classes - 1)], 0.0)
    else:
        onehot = _channels_last(rounded(case, case.targets)).reshape(-1, num_classes)
        valid = np.ones(onehot.shape[0], bool)
        hard_weight = weight[onehot.argmax(axis=1)]
    q = onehot * (1.0 - eps) + eps / num_classes
    mask = valid.astype(np.float64)
    if eps > 0 and knobs.ignore_smoothed:
        mask = np.ones_like(mask)

    if case.weight is None or knobs.weight_mode == "per_class":  # without weights nothing is weighed
        coef = q * weight
        sample = np.ones(len(q))
    elif knobs.weight_mode == "from_label":
        coef = q
        sample = q @ weight
    else:
        coef = q
        sample = hard_weight
    per_sample = _per_position(case, len(q))
    coef = coef * (sample * mask * per_sample)[:, None]

    def applied() -> np.ndarray:  # only the applied_weight / nonzero_weight denominators read these knobs
        if case.weight is not None and knobs.weights_as_sample_weights:
            return mask * per_sample * (q @ weight if knobs.weight_mode == "from_label" else hard_weight)
        return mask * per_sample

    bounds = (0.0, 1.0) if case.from_logits else clip_bounds(case, knobs)
    lp = _log_probs(flat, case.from_logits, knobs, bounds)
    with np.errstate(invalid="ignore", over="ignore"):
        per_position = np.where(coef != 0, coef * -lp, 0.0).sum(axis=1)

    if case.reduction == "none":
        scale = np.ones(len(q))
        loss = per_position.reshape(spatial)
    elif len(q) == 0:
        return Outcome(loss=empty_batch(case, knobs), grad=np.zeros(case.predictions.shape))
    else:
        denom = 1.0
        if case.reduction != "sum":
            denom = _denominator(knobs.denominator, mask, hard_weight, q @ weight, applied, case)
        loss, factor = divided(per_position.sum(), denom, knobs)
        scale = np.where(mask > 0, factor, 0.0) if np.isnan(factor) else np.full(len(q), factor)
    grad = _grad(flat, coef * scale[:, None], case.from_logits, knobs, bounds).reshape(x.shape)
    denominator = None if case.reduction in ("none", "sum") else float(denom)
    return Outcome(loss=np.asarray(loss, dtype=np.float64), grad=np.moveaxis(grad, -1, 1), denominator=denominator)


def _per_position(case: Case, positions: int) -> np.ndarray:
    """The per-sample weight of each position (a sample's weight applies to all its positions)."""
    if case.sample_weight is None:
        return np.ones(positions)
    weights = rounded(case, case.sample_weight)
    return np.repeat(weights, positions // max(len(weights), 1)) if len(weights) else np.ones(positions)


def _channels_last(values: np.ndarray) -> np.ndarray:
    return np.moveaxis(values, 1, -1)


def _denominator(
    kind: Denominator, mask: np.ndarray, hard_weight: np.ndarray, label_weight: np.ndarray, applied: Callable[[], np.ndarray], case: Case
) -> float:
    if kind == "applied_weight":
        return float(applied().sum())
    if kind == "nonzero_weight":
        return float(np.count_nonzero(applied()))
    if kind == "target_weight":
        return float((hard_weight * mask).sum() if case.labels is not None else len(mask))
    if kind == "label_weight":
        return float((label_weight * mask).sum())
    if kind == "valid_count":
        return float(mask.sum())
    return float(len(mask))


def _log_probs(flat: np.ndarray, from_logits: bool, knobs: Knobs, bounds: tuple[float, float]) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if from_logits:
            z = flat - flat.max(axis=1, keepdims=True)
            if knobs.logit_floor is not None:
                z = np.maximum(z, -knobs.logit_floor)
            return z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        p = flat
        lo, hi = bounds
        if knobs.probabilities == "none":
            return np.log(p)
        if knobs.probabilities == "renormalise":
            return np.log(p) - np.log(p.sum(axis=1, keepdims=True))
        if knobs.probabilities == "renormalise_then_clip":
            return np.log(np.clip(p / p.sum(axis=1, keepdims=True), lo, hi))
        c = np.clip(p, lo, hi)
        return np.log(c) - np.log(c.sum(axis=1, keepdims=True))


def _grad(flat: np.ndarray, coef: np.ndarray, from_logits: bool, knobs: Knobs, bounds: tuple[float, float]) -> np.ndarray:
    """d/dpred of sum A * (-lp), for each way lp is formed from the predictions."""
    total = coef.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if from_logits:
            p = np.exp(_log_probs(flat, True, knobs, bounds))
            return p * total - coef
        p = flat
        lo, hi = bounds
        s = p.sum(axis=1, keepdims=True)
        own = np.where(coef != 0, -coef / np.where(coef != 0, p, 1.0), 0.0)  # a class with no weight adds 0
        if knobs.probabilities == "none":
            return own
        if knobs.probabilities == "renormalise":
            return own + total / s
        if knobs.probabilities == "renormalise_then_clip":
            r = p / s
            live = (r > lo) & (r < hi)
            g_r = np.where(live, -coef / np.where(live, r, 1.0), 0.0)
            return (g_r - (g_r * r).sum(axis=1, keepdims=True)) / s
        c = np.clip(p, lo, hi)
        live = (p > lo) & (p < hi)
        return np.where(live, -coef / c + total / c.sum(axis=1, keepdims=True), 0.0)


# ---------------------------------------------------------------- recipes


def recipe_source(case: Case, knobs: Knobs) -> list[str] | None:
    """NumPy lines that build the target `T` (classes last) and the denominator `D` of `knobs`'
    semantics, so any framework's soft-label cross-entropy, sum(T * -log_softmax) / D, reproduces it.
    None where no such recipe exists (probabilities, paddle's ignore quirk, an empty batch)."""
    if not case.from_logits or knobs.ignore_smoothed or case.predictions.size == 0:
        return None
    c = case.num_classes
    hard = case.labels is not None
    ignore = hard and case.ignore_index is not None
    lines = []
    if hard:
        safe = f"np.where(y != {case.ignore_index}, y, 0)" if ignore else "y"
        lines.append(f"q = np.eye({c})[{safe}]  # one-hot, classes last")
    else:
        lines.append("q = np.moveaxis(t, 1, -1)  # classes last")
    lines.append("hard = q.argmax(-1)  # the class whose weight Keras-style sample weights use")
    if case.label_smoothing:
        lines.append(f"q = q * (1 - {case.label_smoothing!r}) + {case.label_smoothing!r} / {c}")
    weight = "w" if case.weight is not None else f"np.ones({c})"
    lines.append(f"mask = {'(y != ' + str(case.ignore_index) + ').astype(float)' if ignore else 'np.ones(q.shape[:-1])'}")
    per_position = {
        "per_class": f"T = q * {weight}  # each class's term weighed",
        "from_label": f"T = q * (q @ {weight})[..., None]  # weight of the (smoothed) label",
        "from_hard_label": f"T = q * {weight}[hard][..., None]  # weight of the hard label",
    }[knobs.weight_mode]
    lines.append(per_position)
    sample = "np.ones(q.shape[:-1])"
    if case.sample_weight is not None:
        sample = "np.broadcast_to(sw.reshape((-1,) + (1,) * (q.ndim - 2)), q.shape[:-1])"
    lines.append(f"s = {sample} * mask")
    lines.append("T = T * s[..., None]")
    if case.reduction in ("none", "sum"):
        return lines
    applied = "s"
    if knobs.weights_as_sample_weights:
        applied = "s * (q @ " + weight + ")" if knobs.weight_mode == "from_label" else f"s * {weight}[hard]"
    denominator = {
        "target_weight": f"(mask * {weight}[hard]).sum()" if hard and case.sample_weight is None else "mask.size",
        "label_weight": f"(mask * (q @ {weight})).sum()",
        "valid_count": "mask.sum()",
        "positions": "mask.size",
        "applied_weight": f"({applied}).sum()",
        "nonzero_weight": f"np.count_nonzero({applied})",
    }[knobs.denominator]
    if knobs.denominator == "target_weight" and not hard:
        denominator = "mask.size"
    lines.append(f"D = {denominator}")
    if knobs.empty_mean == "zero":
        lines.append("D = D if D else np.inf  # 0/0 is taken as 0")
    return lines


# ---------------------------------------------------------------- explanations

PHRASES: dict[str, dict[Any, str]] = {
    **SHARED_PHRASES,
    "weight_mode": {
        "per_class": "weighs each class's term inside the smoothed sum",
        "from_label": "weighs the loss by w.q of the smoothed (or soft) label",
        "from_hard_label": "weighs the loss by the hard label's class weight (sample_weight = weight[label])",
    },
    "denominator": {
        "target_weight": "divides the mean by the sum of target weights",
        "label_weight": "divides the mean by the sum of w.q",
        "valid_count": "divides the mean by the number of non-ignored positions",
        **SHARED_PHRASES["denominator"],
    },
    "probabilities": {
        "renormalise": "renormalises probabilities",
        "none": "takes log p as given",
        "renormalise_then_clip": "renormalises, then clips p to [eps, 1-eps]",
        "clip_then_renormalise": "clips p to [eps, 1-eps], then renormalises",
    },
    "logit_floor": {None: "computes softmax exactly"},
}

ALTERNATIVES: dict[str, list[Any]] = {
    "weight_mode": ["per_class", "from_label", "from_hard_label"],
    "denominator": ["target_weight", "label_weight", "valid_count", "positions", "applied_weight", "nonzero_weight"],
    "empty_mean": ["nan", "zero"],
    "empty_batch": ["nan", "zero", "unreduced"],
    "probabilities": ["renormalise", "none", "renormalise_then_clip", "clip_then_renormalise"],
    "logit_floor": [None, 64.0],
    "ignore_smoothed": [False, True],
    "weights_as_sample_weights": [False, True],
}


# ---------------------------------------------------------------- the fuzzer's cases

LOGITS = [0.0, 1.0, -1.0, 2.0, 0.5, -2.0, 3.0, 80.0]
WEIGHTS = [1.0, 2.0, 0.5, 3.0, 0.0]
SMOOTHING = [0.0, 0.1, 0.2, 0.5]


def strategy() -> SearchStrategy[dict[str, Any]]:
    """Softmax cross-entropy cases as they would be written in YAML; simplest values come first, so
    shrinking moves towards one sample, two classes, small logits and no options."""
    from hypothesis import strategies as st

    @st.composite
    def case_specs(draw: Callable[..., Any]) -> dict[str, Any]:
        n = draw(st.integers(1, 4))
        c = draw(st.integers(2, 4))
        spatial = draw(st.sampled_from([[], [2]]))
        grid = st.sampled_from(LOGITS)
        logits = draw(nested(grid, [n, c, *spatial]))
        spec: dict[str, Any] = {"id": "fuzz", "logits": logits, "reduction": draw(st.sampled_from(["mean", "sum", "none"]))}
        if draw(st.booleans()):
            spec["soft_labels"] = draw(nested(st.sampled_from([0.0, 1.0, 0.5, 0.25]), [n, c, *spatial]))
        else:
            labels = draw(nested(st.integers(0, c - 1), [n, *spatial]))
            ignore = draw(st.sampled_from([None, -100, 0]))
            if ignore == -100:
                labels = _replace(labels, draw(st.lists(st.booleans(), min_size=size([n, *spatial]), max_size=size([n, *spatial]))))
            if ignore is not None:
                spec["ignore_index"] = ignore
            spec["labels"] = labels
        if draw(st.booleans()):
            spec["weight"] = draw(st.lists(st.sampled_from(WEIGHTS), min_size=c, max_size=c))
        smoothing = draw(st.sampled_from(SMOOTHING))
        if smoothing:
            spec["label_smoothing"] = smoothing
        if draw(st.booleans()):
            spec["sample_weight"] = draw(st.lists(st.sampled_from([1.0, 0.5, 2.0, 0.0]), min_size=n, max_size=n))
        if draw(st.booleans()):
            spec["dtype"] = "float64"
        return spec

    return case_specs()


def _replace(labels: Any, ignored: list[bool]) -> Any:
    """`labels` with the positions flagged in `ignored` (flat order) set to the ignore_index -100."""
    flat = iter(ignored)

    def walk(value: Any) -> Any:
        return [walk(v) for v in value] if isinstance(value, list) else (-100 if next(flat) else value)

    return walk(labels)
