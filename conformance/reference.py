"""A float64 NumPy model of softmax cross-entropy with named semantic knobs.

Every framework variant declares the point of this knob space its documentation describes
(`Variant.knobs`); the model evaluated at that point is the variant's *documented formula*, so a
framework value that differs from it is either a false declaration or a framework bug. The textbook
point (`TEXTBOOK`) is ONNX `SoftmaxCrossEntropyLoss` (opset 13), extended with smoothing and
probability targets the way torch documents them; it is the `reference` result.

All losses here have the form  L = sum_{n,c} A[n,c] * (-lp[n,c])  with coefficients A that do not
depend on the predictions, so the gradient is analytic (see `_grad`), not a finite difference.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np

from conformance.cases import Case

WeightMode = Literal["per_class", "from_label", "from_hard_label"]
Denominator = Literal["target_weight", "label_weight", "valid_count", "positions", "applied_weight", "nonzero_weight"]
EmptyMean = Literal["nan", "zero"]
EmptyBatch = Literal["nan", "zero", "unreduced"]
ProbHandling = Literal["renormalise", "none", "renormalise_then_clip", "clip_then_renormalise", "clip"]


@dataclass(frozen=True)
class Knobs:
    """The semantic choices on which cross-entropy implementations differ.

    weight_mode: how class weights w enter a position's loss.
        per_class: sum_c w_c q_c (-lp_c) (torch: weight inside the smoothed sum);
        from_label: (w . q) * H(q, p) (paddle: weight computed from the smoothed/soft label);
        from_hard_label: w[y] * H(q, p) (Keras sample_weight = weight[label]; argmax for soft labels).
    denominator: what `mean` divides by.
        target_weight: sum of w[y] over non-ignored positions (count when unweighted);
        label_weight: sum of w . q over positions; valid_count: non-ignored positions;
        positions: every position N * d1 * ... * dk, ignored ones included (Keras: every per-sample value);
        applied_weight: sum of the weights applied per position (sample weights, and class weights where
        they are passed as sample weights), non-ignored only; nonzero_weight: how many of those are != 0.
    empty_mean: a mean whose denominator is 0 (all ignored, zero weights): 0/0 = NaN (its gradient NaN
        on the positions that were not ignored, as autograd gives 0 * (1/0)), or 0.
    empty_batch: a reduction over no positions at all: NaN (a mean; a sum is 0), 0, or the empty array
        returned unreduced (Keras).
    probabilities: for probability inputs, how log p is formed (renormalise: log(p / sum p);
        none: log p; renormalise_then_clip: Keras CCE; clip_then_renormalise: Keras SCCE;
        clip: Keras BCE, p clipped to [eps, 1-eps]).
    clip_eps: the clip of the *clip* modes (Keras epsilon).
    logit_floor: shifted logits x - max(x) are clipped at -logit_floor (paddle CPU: 64), None: exact.
    ignore_smoothed: whether ignored positions still contribute when smoothing is on.
    weights_as_sample_weights: class (or element) weights are handed to the API as its sample
        weights, so they count in the applied_weight / nonzero_weight denominators (TensorFlow).
    log_clamp: binary cross-entropy on probabilities clamps each log at -log_clamp (torch, paddle: 100).
    last_axis_mean: binary cross-entropy averages the last axis into one value per sample before
        weighting and reducing (Keras), instead of reducing elements directly.
    """

    weight_mode: WeightMode = "per_class"
    denominator: Denominator = "target_weight"
    empty_mean: EmptyMean = "nan"
    empty_batch: EmptyBatch = "nan"
    probabilities: ProbHandling = "renormalise"
    clip_eps: float = 1e-7
    logit_floor: float | None = None
    ignore_smoothed: bool = False
    weights_as_sample_weights: bool = False
    log_clamp: float | None = None
    last_axis_mean: bool = False

    def as_dict(self) -> dict[str, object]:
        return dict(vars(self))

    def switched(self, knob: str, value: Any) -> Knobs:
        """These knobs with one of them set otherwise."""
        return replace(self, **{knob: value})


TEXTBOOK = Knobs()


def textbook(case: Case) -> Knobs:
    """The textbook point for a case: class weight per class, mean / sum of target weights for class
    indices, / positions for probability targets, per-sample weights or binary targets (no clamp)."""
    own: Denominator = "target_weight" if case.labels is not None and not case.binary and case.sample_weight is None else "positions"
    return Knobs(denominator=mean_denominator(case, own))


@dataclass(frozen=True)
class Outcome:
    """A float64 loss (scalar or per position) and its gradient w.r.t. the predictions.

    read: the knobs the evaluation looked at; the others cannot change this case's outcome (an
    explanation need not evaluate them to know their effect is nil).
    """

    loss: np.ndarray
    grad: np.ndarray
    denominator: float | None = None
    read: frozenset[str] = frozenset()


class _Reading:
    """Knobs that note which of them are read."""

    def __init__(self, knobs: Knobs) -> None:
        self.knobs = knobs
        self.read: set[str] = set()

    def __getattr__(self, name: str) -> object:
        self.read.add(name)
        return getattr(self.knobs, name)


def rounded(case: Case, array: np.ndarray) -> np.ndarray:
    """`array` rounded to the case's dtype and back, so the model sees what the frameworks see."""
    if case.dtype == "bfloat16":
        bits = np.asarray(array, dtype=np.float32).view(np.uint32)
        bits = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16 << 16).astype(np.uint32)
        return bits.view(np.float32).astype(np.float64)
    return np.asarray(array, dtype=case.dtype).astype(np.float64)


def mean_denominator(case: Case, own_mean: Denominator) -> Denominator:
    """The denominator for the case's reduction: the framework's own `mean`, or an explicit one."""
    return {
        "sum_over_batch_size": "positions",
        "mean_with_sample_weight": "applied_weight",
        "sum_by_nonzero_weights": "nonzero_weight",
    }.get(case.reduction, own_mean)  # type: ignore[return-value]


def evaluate(case: Case, knobs: Knobs = TEXTBOOK) -> Outcome:
    """The loss of `case` under `knobs`, in float64."""
    reading = _Reading(knobs)
    outcome = _binary(case, reading) if case.binary else _softmax(case, reading)  # type: ignore[arg-type]
    return replace(outcome, read=frozenset(reading.read))


def _softmax(case: Case, knobs: Knobs) -> Outcome:
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

    bounds = (0.0, 1.0) if case.from_logits else _clip_bounds(case, knobs)
    lp = _log_probs(flat, case.from_logits, knobs, bounds)
    with np.errstate(invalid="ignore", over="ignore"):
        per_position = np.where(coef != 0, coef * -lp, 0.0).sum(axis=1)

    if case.reduction == "none":
        scale = np.ones(len(q))
        loss = per_position.reshape(spatial)
    elif len(q) == 0:
        return Outcome(loss=_empty_batch(case, knobs), grad=np.zeros(case.predictions.shape))
    else:
        denom = 1.0
        if case.reduction != "sum":
            denom = _denominator(knobs.denominator, mask, hard_weight, q @ weight, applied, case)
        loss, factor = _reduce(per_position.sum(), denom, knobs)
        scale = np.where(mask > 0, factor, 0.0) if np.isnan(factor) else np.full(len(q), factor)
    grad = _grad(flat, coef * scale[:, None], case.from_logits, knobs, bounds).reshape(x.shape)
    denominator = None if case.reduction in ("none", "sum") else float(denom)
    return Outcome(loss=np.asarray(loss, dtype=np.float64), grad=np.moveaxis(grad, -1, 1), denominator=denominator)


def _clip_bounds(case: Case, knobs: Knobs) -> tuple[float, float]:
    """[eps, 1-eps] as the framework holds them: in the case dtype (float32: 1-1e-7 is 1-1.19e-7)."""
    lo, hi = rounded(case, np.array([knobs.clip_eps, 1.0 - knobs.clip_eps]))
    return float(lo), float(hi)


def _reduce(total: float, denom: float, knobs: Knobs) -> tuple[np.ndarray, float]:
    """A mean-like reduction and the factor its gradient carries; 0/0 follows `empty_mean`."""
    if denom == 0:
        return (np.array(np.nan), np.nan) if knobs.empty_mean == "nan" else (np.array(0.0), 0.0)
    return np.array(total / denom), 1.0 / denom


def _empty_batch(case: Case, knobs: Knobs) -> np.ndarray:
    if knobs.empty_batch == "unreduced":
        return np.zeros((0,))
    if case.reduction == "sum" or knobs.empty_batch == "zero":
        return np.array(0.0)
    return np.array(np.nan)


def _per_position(case: Case, positions: int) -> np.ndarray:
    """The per-sample weight of each position (a sample's weight applies to all its positions)."""
    if case.sample_weight is None:
        return np.ones(positions)
    weights = rounded(case, case.sample_weight)
    return np.repeat(weights, positions // max(len(weights), 1)) if len(weights) else np.ones(positions)


def _channels_last(array: np.ndarray) -> np.ndarray:
    return np.moveaxis(array, 1, -1)


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


def _binary(case: Case, knobs: Knobs) -> Outcome:
    """Binary cross-entropy, elementwise, with pos_weight, element and sample weights.

    Targets are smoothed towards 0.5 (z = y(1-eps) + eps/2: Keras natively, a target transform elsewhere).
    """
    x = rounded(case, case.predictions)
    eps = case.label_smoothing
    z = rounded(case, case.targets) * (1.0 - eps) + 0.5 * eps
    pos = np.ones_like(x) if case.pos_weight is None else np.broadcast_to(rounded(case, case.pos_weight), x.shape)
    weight = np.ones_like(x) if case.weight is None else np.broadcast_to(rounded(case, case.weight), x.shape)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if case.from_logits:
            scale_pos = 1.0 + (pos - 1.0) * z
            softplus = np.log1p(np.exp(-np.abs(x))) + np.maximum(-x, 0.0)
            element = (1.0 - z) * x + scale_pos * softplus
            d_element = scale_pos / (1.0 + np.exp(-x)) - pos * z
        elif knobs.probabilities == "clip":
            lo, hi = _clip_bounds(case, knobs)
            p = np.clip(x, lo, hi)
            live = (x > lo) & (x < hi)
            element = -(_xlog(pos * z, p) + _xlog(1.0 - z, 1.0 - p))
            d_element = np.where(live, -pos * z / p + (1.0 - z) / (1.0 - p), 0.0)
        else:
            clamp = np.inf if knobs.log_clamp is None else knobs.log_clamp
            element = -(_xlog(pos * z, x, clamp) + _xlog(1.0 - z, 1.0 - x, clamp))
            d_element = (pos * z * (x - 1.0) + (1.0 - z) * x) / np.maximum(x * (1.0 - x), 1e-12)
    element = element * weight
    d_element = d_element * weight
    sw = None if case.sample_weight is None else rounded(case, case.sample_weight)
    if knobs.last_axis_mean:
        values = element.mean(axis=-1)
        d_values = d_element / max(x.shape[-1], 1)
        sample = _batch_aligned(sw, values.shape)
        d_sample = sample[..., None]
    else:
        values, d_values = element, d_element
        sample = d_sample = _batch_aligned(sw, x.shape)
    values = values * sample
    applied = sample
    if knobs.weights_as_sample_weights and not knobs.last_axis_mean:
        applied = sample * weight
    if case.reduction == "none":
        return Outcome(loss=np.asarray(values, dtype=np.float64), grad=np.asarray(d_values * d_sample))
    if x.size == 0:
        return Outcome(loss=_empty_batch(case, knobs), grad=np.zeros(x.shape))
    denom = 1.0
    if case.reduction != "sum":
        kind = knobs.denominator
        denom = {
            "applied_weight": float(np.sum(applied)),
            "nonzero_weight": float(np.count_nonzero(applied)),
        }.get(kind, float(np.size(values)))
    loss, factor = _reduce(float(np.sum(values)), denom, knobs)
    return Outcome(loss=loss, grad=np.asarray(d_values * d_sample * factor), denominator=denom if case.reduction != "sum" else None)


def _xlog(coefficient: np.ndarray, p: np.ndarray, clamp: float = np.inf) -> np.ndarray:
    """coefficient * max(log p, -clamp), with 0 * log 0 = 0 (the limit, as the formula means it)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(coefficient != 0, coefficient * np.maximum(np.log(p), -clamp), 0.0)


def _batch_aligned(weights: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    """Per-sample weights (N,) spread over an array of `shape` whose first axis is the batch."""
    if weights is None:
        return np.ones(shape)
    if not shape:
        raise ValueError("per-sample weights need a batch axis")
    return np.broadcast_to(weights.reshape((-1,) + (1,) * (len(shape) - 1)), shape)


def recipe_source(case: Case, knobs: Knobs) -> list[str] | None:
    """NumPy lines that build, for a softmax case, the target `T` (classes last) and the denominator `D`
    of `knobs`' semantics, so any framework's soft-label cross-entropy, sum(T * -log_softmax) / D,
    reproduces it. None where no such recipe exists (probabilities, binary, paddle's ignore quirk)."""
    if case.binary or not case.from_logits or knobs.ignore_smoothed or case.predictions.size == 0:
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
