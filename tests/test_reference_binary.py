"""`conformance.reference` on binary cross-entropy, per-sample weights and the explicit reductions,
against independent float64 loops.

Every native API an adapter runs is written here again as a plain loop over elements (binary) or
positions (softmax), from its documentation (docs/semantics.md 1.3, 1.4, 1.8, 1.9, 1.12-1.14 and the recipe
the adapter shows in its snippet: `reduction='none'`, multiply by the per-sample weights, reduce by
hand). The loops share nothing with the vectorised model. The model evaluated at the knob point each
adapter declares (`adapters.<framework>.*documented`) must give the loop's loss, its analytic gradient
must match a central finite difference of the loop, and both must reproduce the documentation's own
numbers. tests/test_adapters_variants.py imports `LOOPS`, `unsupported_reasons` and the case helpers to
check the real frameworks against the same loops.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pytest

from conformance import cases, reference
from conformance.adapters import tensorflow as tf_adapter
from conformance.cases import Case
from conformance.losses.binary_ce import paddle as paddle_bce
from conformance.losses.binary_ce import tensorflow as tf_bce
from conformance.losses.binary_ce import torch as torch_bce
from conformance.losses.softmax_ce import paddle as paddle_softmax
from conformance.losses.softmax_ce import tensorflow as tf_softmax
from conformance.losses.softmax_ce import torch as torch_softmax

KERAS_EPS = 1e-7
LOG_CLAMP = -100.0
PADDLE_FLOOR = 64.0
NAN = math.nan
BINARY, SOFTMAX = "binary_cross_entropy", "softmax_cross_entropy"
REDUCTIONS = ("none", "mean", "sum", "sum_over_batch_size", "mean_with_sample_weight", "sum_by_nonzero_weights")
EXPLICIT = ("sum_over_batch_size", "mean_with_sample_weight", "sum_by_nonzero_weights")

# ---------------------------------------------------------------- building cases


def make_case(**spec: object) -> Case:
    """One case from keyword arguments, through the real case-file loader (JSON is valid YAML)."""
    spec.setdefault("id", "c")
    spec.setdefault("dtype", "float64")
    return cases.load_text(json.dumps({"cases": [spec]}), "x.yaml")[0]


@functools.cache
def cached_case(text: str) -> Case:
    return make_case(**json.loads(text))


def as_seen(case: Case) -> Case:
    """The case with its float arrays rounded to the case dtype, as a framework receives them."""

    def cast(array: np.ndarray | None) -> np.ndarray | None:
        return None if array is None else np.asarray(array, dtype=case.dtype).astype(np.float64)

    return replace(
        case,
        predictions=cast(case.predictions),
        soft_labels=cast(case.soft_labels),
        weight=cast(case.weight),
        sample_weight=cast(case.sample_weight),
        extra={**case.extra, **({"pos_weight": cast(case.pos_weight)} if case.pos_weight is not None else {})},
    )


def random_logits(shape: tuple[int, ...], seed: int) -> list:
    return (np.random.default_rng(seed).standard_normal(shape) * 1.5).round(6).tolist()


def random_probs(shape: tuple[int, ...], seed: int) -> list:
    """Probabilities away from 0, 1 and the Keras clip, not summing to 1 along any axis."""
    return np.random.default_rng(seed).uniform(0.05, 0.9, shape).round(6).tolist()


def random_binary(shape: tuple[int, ...], seed: int) -> list:
    return np.random.default_rng(seed).integers(0, 2, shape).astype(float).tolist()


def random_soft(shape: tuple[int, ...], seed: int, axis: int | None = None) -> list:
    raw = np.random.default_rng(seed).uniform(0.0, 1.0, shape)
    return (raw if axis is None else raw / raw.sum(axis=axis, keepdims=True)).round(6).tolist()


def sample_weights(batch: int) -> list[float]:
    """Per-sample weights with one zero (so the non-zero count and the weight sum differ from N)."""
    return [0.5, 0.0, 1.5, 2.0, 0.25, 1.0][:batch]


# ---------------------------------------------------------------- shared loop helpers


def indices(shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    return list(itertools.product(*(range(s) for s in shape)))


def divide(total: float, denominator: float, on_zero: float) -> float:
    """total / denominator; a zero denominator gives `on_zero` (NaN: plain division, 0: divide_no_nan)."""
    return total / denominator if denominator != 0 else on_zero


def finish(case: Case, values: dict, shape: tuple[int, ...], denominators: dict[str, tuple[float, float]]) -> np.ndarray:
    """none: the values in `shape`; sum; every other reduction: sum / its (denominator, on_zero)."""
    if case.reduction == "none":
        return np.array([values[i] for i in indices(shape)], dtype=np.float64).reshape(shape)
    total = math.fsum(values.values())
    if case.reduction == "sum":
        return np.array(total)
    denominator, on_zero = denominators[case.reduction]
    return np.array(divide(total, denominator, on_zero))


def per_sample(case: Case, index: tuple[int, ...]) -> float:
    """The per-sample weight of the sample an element or position belongs to (1 without weights)."""
    return 1.0 if case.sample_weight is None else float(case.sample_weight[index[0]])


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def keras_bounds(dtype: str) -> tuple[float, float]:
    """Keras's [epsilon, 1 - epsilon] as the case dtype holds them (float32: 1 - 1e-7 is 1 - 1.19e-7)."""
    return float(np.array(KERAS_EPS, dtype=dtype)), float(np.array(1.0 - KERAS_EPS, dtype=dtype))


# ---------------------------------------------------------------- binary: elements


def binary_target(case: Case, i: tuple[int, ...]) -> float:
    """z = y (1 - eps) + eps / 2: Keras BinaryCrossentropy smoothing, the transform the others apply by hand."""
    eps = case.label_smoothing
    return float(case.targets[i]) * (1.0 - eps) + 0.5 * eps


def broadcast_at(array: np.ndarray | None, shape: tuple[int, ...], i: tuple[int, ...]) -> float:
    return 1.0 if array is None else float(np.broadcast_to(array, shape)[i])


def bce_with_logits(x: float, z: float, pos_weight: float = 1.0) -> float:
    """torch BCEWithLogitsLoss / paddle / tf.nn.weighted_cross_entropy_with_logits:
    (1 - z) x + (1 + (pw - 1) z) (log1p(exp(-|x|)) + max(-x, 0))."""
    return (1.0 - z) * x + (1.0 + (pos_weight - 1.0) * z) * (math.log1p(math.exp(-abs(x))) + max(-x, 0.0))


def sigmoid_cross_entropy(x: float, z: float) -> float:
    """tf.nn.sigmoid_cross_entropy_with_logits, Keras from_logits: max(x, 0) - x z + log1p(exp(-|x|))."""
    return max(x, 0.0) - x * z + math.log1p(math.exp(-abs(x)))


def clamped_log(v: float) -> float:
    return max(math.log(v), LOG_CLAMP) if v > 0 else LOG_CLAMP


def bce_clamped(p: float, z: float) -> float:
    """torch / paddle BCELoss: -(z max(log p, -100) + (1 - z) max(log(1 - p), -100))."""
    return -(z * clamped_log(p) + (1.0 - z) * clamped_log(1.0 - p))


def keras_bce(p: float, z: float, bounds: tuple[float, float]) -> float:
    """Keras BinaryCrossentropy on probabilities: p clipped to [eps, 1 - eps], then -(z log p + (1 - z) log(1 - p))."""
    lo, hi = bounds
    c = min(max(p, lo), hi)
    return -(z * math.log(c) + (1.0 - z) * math.log(1.0 - c))


# ---------------------------------------------------------------- binary: the APIs


def torch_binary(case: Case, through_sigmoid: bool = False) -> np.ndarray:
    """torch BCEWithLogitsLoss / BCELoss (paddle: the same formulas, docs/semantics.md 1.8) as the adapters run them:
    l_i = w_i * bce(x_i, z_i) (through_sigmoid: BCELoss(sigmoid(x))), per-sample weights by hand l_i * sw_n;
    mean = (loss_none * sw).mean() = / numel, sum_over_batch_size / numel, mean_with_sample_weight / sum_i sw_n,
    sum_by_nonzero_weights / #{i: sw_n != 0}; element weights never count; 0/0 = NaN."""
    x = case.predictions
    values, weights = {}, {}
    for i in indices(x.shape):
        z = binary_target(case, i)
        if through_sigmoid:
            element = bce_clamped(sigmoid(float(x[i])), z)
        elif case.from_logits:
            element = bce_with_logits(float(x[i]), z, broadcast_at(case.pos_weight, x.shape, i))
        else:
            element = bce_clamped(float(x[i]), z)
        weights[i] = per_sample(case, i)
        values[i] = broadcast_at(case.weight, x.shape, i) * element * weights[i]
    count = float(len(values))
    return finish(
        case,
        values,
        x.shape,
        {
            "mean": (count, NAN),
            "sum_over_batch_size": (count, NAN),
            "mean_with_sample_weight": (math.fsum(weights.values()), NAN),
            "sum_by_nonzero_weights": (float(sum(w != 0 for w in weights.values())), NAN),
        },
    )


def torch_sigmoid_bce(case: Case) -> np.ndarray:
    return torch_binary(case, through_sigmoid=True)


def keras_binary(case: Case) -> np.ndarray:
    """Keras BinaryCrossentropy: elements max(x,0) - x z + log1p(exp(-|x|)) (logits) or on p clipped to
    [1e-7, 1 - 1e-7] in the case dtype; one value per sample = the mean over the last axis; then
    sample_weight s_n (passed as one per sample, (N,) or (N, 1, ..)) and the reduction:
    sum_over_batch_size / size(v), mean_with_sample_weight sum v s / sum of the weights, passed one
    per value (/ size(v) without weights), both divide_no_nan; sum_by_nonzero_weights by hand
    sum / #(s != 0) over the broadcast weights (divide_no_nan). An empty batch comes back unreduced."""
    x = case.predictions
    bounds = keras_bounds(case.dtype)
    outer, last = x.shape[:-1], x.shape[-1]
    values, weights = {}, {}
    for j in indices(outer):
        elements = []
        for k in range(last):
            z = binary_target(case, j + (k,))
            v = float(x[j + (k,)])
            elements.append(sigmoid_cross_entropy(v, z) if case.from_logits else keras_bce(v, z, bounds))
        weights[j] = per_sample(case, j)
        values[j] = math.fsum(elements) / last * weights[j]
    if not values and case.reduction != "sum_by_nonzero_weights":
        return np.zeros((0,))
    size = float(len(values))
    return finish(
        case,
        values,
        outer,
        {
            "mean": (size, 0.0),
            "sum_over_batch_size": (size, 0.0),
            "mean_with_sample_weight": (math.fsum(weights.values()), 0.0),
            "sum_by_nonzero_weights": (float(sum(w != 0 for w in weights.values())), 0.0),
        },
    )


def tf_nn_binary(case: Case) -> np.ndarray:
    """tf.nn.sigmoid_cross_entropy_with_logits (weighted_cross_entropy_with_logits with pos_weight), the
    smoothing and the weights s_i = w_i sw_n by hand: mean = reduce_mean (/ numel), sum_over_batch_size
    / numel, mean_with_sample_weight / sum s, sum_by_nonzero_weights / #(s != 0); 0/0 = 0 (divide_no_nan)."""
    x = case.predictions
    values, weights = {}, {}
    for i in indices(x.shape):
        z = binary_target(case, i)
        if case.pos_weight is None:
            element = sigmoid_cross_entropy(float(x[i]), z)
        else:
            element = bce_with_logits(float(x[i]), z, broadcast_at(case.pos_weight, x.shape, i))
        weights[i] = broadcast_at(case.weight, x.shape, i) * per_sample(case, i)
        values[i] = element * weights[i]
    count = float(len(values))
    return finish(
        case,
        values,
        x.shape,
        {
            "mean": (count, 0.0),
            "sum_over_batch_size": (count, 0.0),
            "mean_with_sample_weight": (math.fsum(weights.values()), 0.0),
            "sum_by_nonzero_weights": (float(sum(w != 0 for w in weights.values())), 0.0),
        },
    )


V1_REDUCTION = {
    "none": "NONE",
    "sum": "SUM",
    "mean": "SUM_BY_NONZERO_WEIGHTS",
    "sum_over_batch_size": "SUM_OVER_BATCH_SIZE",
    "mean_with_sample_weight": "MEAN",
    "sum_by_nonzero_weights": "SUM_BY_NONZERO_WEIGHTS",
}


def compute_weighted_loss(case: Case, losses: dict, weights: dict, shape: tuple[int, ...]) -> np.ndarray:
    """tf.compat.v1.losses.compute_weighted_loss: wl = l * w; NONE wl; SUM sum wl; MEAN sum wl / sum w;
    SUM_OVER_BATCH_SIZE sum wl / numel; SUM_BY_NONZERO_WEIGHTS (the default) sum wl / #(w != 0); every
    division div_no_nan (x / 0 = 0)."""
    weighted = {i: losses[i] * weights[i] for i in losses}
    kind = V1_REDUCTION[case.reduction]
    if kind == "NONE":
        return np.array([weighted[i] for i in indices(shape)], dtype=np.float64).reshape(shape)
    total = math.fsum(weighted.values())
    if kind == "SUM":
        return np.array(total)
    denominator = {
        "MEAN": math.fsum(weights.values()),
        "SUM_OVER_BATCH_SIZE": float(len(weighted)),
        "SUM_BY_NONZERO_WEIGHTS": float(sum(w != 0 for w in weights.values())),
    }[kind]
    return np.array(divide(total, denominator, 0.0))


def v1_binary(case: Case) -> np.ndarray:
    """tf.compat.v1.losses.sigmoid_cross_entropy: z = y (1 - eps) + eps / 2, l = max(x,0) - x z +
    log1p(exp(-|x|)), weights w_i sw_n (1.0 when neither), compute_weighted_loss."""
    x = case.predictions
    losses, weights = {}, {}
    for i in indices(x.shape):
        losses[i] = sigmoid_cross_entropy(float(x[i]), binary_target(case, i))
        weights[i] = broadcast_at(case.weight, x.shape, i) * per_sample(case, i)
    return compute_weighted_loss(case, losses, weights, x.shape)


# ---------------------------------------------------------------- softmax: positions and log-probabilities


def positions(case: Case) -> list[tuple[int, ...]]:
    """Every position (n, d1, ..., dk): the predictions (N, C, d1, ..., dk) without the class axis."""
    return indices(case.predictions.shape[:1] + case.predictions.shape[2:])


def position_shape(case: Case) -> tuple[int, ...]:
    return case.predictions.shape[:1] + case.predictions.shape[2:]


def class_row(array: np.ndarray, pos: tuple[int, ...]) -> list[float]:
    return [float(array[(pos[0], c) + pos[1:]]) for c in range(array.shape[1])]


def ignored(case: Case, pos: tuple[int, ...]) -> bool:
    return case.labels is not None and case.ignore_index is not None and int(case.labels[pos]) == case.ignore_index


def smoothed(case: Case, pos: tuple[int, ...]) -> list[float]:
    """q = (1 - eps) target + eps / C, the target being one-hot(y) or the given probabilities."""
    num_classes = case.num_classes
    eps = case.label_smoothing
    if case.labels is not None:
        base = [1.0 if c == int(case.labels[pos]) else 0.0 for c in range(num_classes)]
    else:
        base = class_row(case.soft_labels, pos)
    return [(1.0 - eps) * base[c] + eps / num_classes for c in range(num_classes)]


def hard_label(case: Case, pos: tuple[int, ...]) -> int:
    """The label, or the argmax class (first of ties) of a soft label: where Keras class weights look."""
    if case.labels is not None:
        return int(case.labels[pos])
    row = class_row(case.soft_labels, pos)
    return row.index(max(row))


def class_weight(case: Case, c: int) -> float:
    return 1.0 if case.weight is None else float(case.weight[c])


def safe_log(v: float) -> float:
    return math.log(v) if v > 0 else -math.inf


def lp_softmax(row: list[float]) -> list[float]:
    top = max(row)
    total = math.fsum(math.exp(v - top) for v in row)
    return [v - top - math.log(total) for v in row]


def lp_softmax_floor(row: list[float]) -> list[float]:
    """paddle CPU softmax: shifted logits x - max(x) clipped at -64."""
    top = max(row)
    shifted = [max(v - top, -PADDLE_FLOOR) for v in row]
    total = math.fsum(math.exp(v) for v in shifted)
    return [v - math.log(total) for v in shifted]


def lp_renormalise(row: list[float]) -> list[float]:
    """torch CrossEntropyLoss(log p) = log(p / sum p)."""
    total = math.fsum(row)
    return [safe_log(v / total) for v in row]


def lp_raw(row: list[float]) -> list[float]:
    """NLLLoss(log p), paddle use_softmax=False: log p as given."""
    return [safe_log(v) for v in row]


def lp_keras_cce(row: list[float], bounds: tuple[float, float]) -> list[float]:
    """Keras CategoricalCrossentropy(from_logits=False): p / sum p, then clipped to [eps, 1 - eps]."""
    lo, hi = bounds
    total = math.fsum(row)
    return [math.log(min(max(v / total, lo), hi)) for v in row]


def lp_keras_scce(row: list[float], bounds: tuple[float, float]) -> list[float]:
    """Keras SparseCategoricalCrossentropy(from_logits=False): clipped to [eps, 1 - eps], then renormalised."""
    lo, hi = bounds
    clipped = [min(max(v, lo), hi) for v in row]
    total = math.fsum(clipped)
    return [math.log(v / total) for v in clipped]


def cross_entropy(q: list[float], lp: list[float], factor: Callable[[int], float] = lambda c: 1.0) -> float:
    """sum_c factor(c) q_c (-lp_c); a class with no target mass adds nothing (0 log 0 = 0)."""
    return math.fsum(factor(c) * q[c] * -lp[c] for c in range(len(q)) if factor(c) * q[c] != 0.0)


# ---------------------------------------------------------------- softmax: the APIs


def torch_ce(case: Case, nll: bool = False) -> np.ndarray:
    """torch CrossEntropyLoss (nll: NLLLoss over log_softmax, or over log p): l_n = sum_c w_c q_nc (-lp_nc)
    (NLLLoss: w_y (-lp_ny)), 0 where ignored; probabilities enter as log p (CrossEntropyLoss renormalises);
    per-sample weights by hand l_n sw_n. mean: / sum of w[y_n] over non-ignored positions (index targets),
    / positions (probability targets, and (loss_none * sw).mean() with per-sample weights);
    sum_over_batch_size / positions, mean_with_sample_weight / sum sw_n m_n, sum_by_nonzero_weights
    / #(sw_n m_n != 0); 0/0 = NaN."""
    values, applied, target_weight = {}, {}, 0.0
    for pos in positions(case):
        if ignored(case, pos):
            values[pos], applied[pos] = 0.0, 0.0
            continue
        row = class_row(case.predictions, pos)
        if case.from_logits:
            lp = lp_softmax(row)
        else:
            lp = lp_raw(row) if nll else lp_renormalise(row)
        if nll:
            y = int(case.labels[pos])
            loss = class_weight(case, y) * -lp[y]
        else:
            loss = cross_entropy(smoothed(case, pos), lp, lambda c: class_weight(case, c))
        applied[pos] = per_sample(case, pos)
        values[pos] = loss * applied[pos]
        target_weight += class_weight(case, int(case.labels[pos])) if case.labels is not None else 1.0
    count = float(len(values))
    own = count if case.sample_weight is not None else target_weight
    return finish(
        case,
        values,
        position_shape(case),
        {
            "mean": (own, NAN),
            "sum_over_batch_size": (count, NAN),
            "mean_with_sample_weight": (math.fsum(applied.values()), NAN),
            "sum_by_nonzero_weights": (float(sum(w != 0 for w in applied.values())), NAN),
        },
    )


def torch_nll(case: Case) -> np.ndarray:
    return torch_ce(case, nll=True)


def paddle_ce(case: Case) -> np.ndarray:
    """paddle CrossEntropyLoss (also the one_hot + label_smooth + soft_label=True recipe): l_n = H(q_n, p_n)
    (w . q_n), softmax over shifted logits clipped at -64 (probabilities: log p as given), 0 where ignored.
    Native mean (no per-sample weights): / sum of w . q_n over non-ignored positions with weight, / the
    non-ignored count for hard labels with ignore_index >= 0, else / every position; a zero denominator
    gives 0 (an empty batch NaN). Per-sample weights and the explicit reductions by hand after
    reduction='none': mean / positions, sum_over_batch_size / positions, mean_with_sample_weight
    / sum sw_n m_n, sum_by_nonzero_weights / #(sw_n m_n != 0), plain division (0/0 = NaN)."""
    values, applied, label_weight, valid = {}, {}, 0.0, 0
    for pos in positions(case):
        if ignored(case, pos):
            values[pos], applied[pos] = 0.0, 0.0
            continue
        row = class_row(case.predictions, pos)
        lp = lp_softmax_floor(row) if case.from_logits else lp_raw(row)
        q = smoothed(case, pos)
        wq = math.fsum(class_weight(case, c) * q[c] for c in range(case.num_classes))
        applied[pos] = per_sample(case, pos)
        values[pos] = cross_entropy(q, lp) * (wq if case.weight is not None else 1.0) * applied[pos]
        label_weight += wq
        valid += 1
    count = float(len(values))
    hard = case.labels is not None and case.label_smoothing == 0
    if case.sample_weight is not None:
        own = (count, NAN)
    elif case.weight is not None:
        own = (label_weight, 0.0 if count else NAN)
    elif hard and case.ignore_index is not None and case.ignore_index >= 0:
        own = (float(valid), 0.0 if count else NAN)
    else:
        own = (count, NAN)
    return finish(
        case,
        values,
        position_shape(case),
        {
            "mean": own,
            "sum_over_batch_size": (count, NAN),
            "mean_with_sample_weight": (math.fsum(applied.values()), NAN),
            "sum_by_nonzero_weights": (float(sum(w != 0 for w in applied.values())), NAN),
        },
    )


def paddle_softmax_with_ce(case: Case) -> np.ndarray:
    """paddle softmax_with_cross_entropy: per position H(q_n, softmax(x_n)) with the -64 clip, 0 where
    ignored (q: the label; one_hot + label_smooth, or label_smooth of a soft label, when smoothing); every
    reduction by hand: mean / positions (ignored ones included), sum_over_batch_size / positions,
    mean_with_sample_weight / sum sw_n m_n, sum_by_nonzero_weights / #(sw_n m_n != 0); 0/0 = NaN."""
    values, applied = {}, {}
    for pos in positions(case):
        if ignored(case, pos):
            values[pos], applied[pos] = 0.0, 0.0
            continue
        applied[pos] = per_sample(case, pos)
        values[pos] = cross_entropy(smoothed(case, pos), lp_softmax_floor(class_row(case.predictions, pos))) * applied[pos]
    count = float(len(values))
    return finish(
        case,
        values,
        position_shape(case),
        {
            "mean": (count, NAN),
            "sum_over_batch_size": (count, NAN),
            "mean_with_sample_weight": (math.fsum(applied.values()), NAN),
            "sum_by_nonzero_weights": (float(sum(w != 0 for w in applied.values())), NAN),
        },
    )


def keras_ce(case: Case, categorical: bool = False, smoothed_weight: bool = False) -> np.ndarray:
    """Keras SparseCategoricalCrossentropy (index labels without smoothing; ignore_class) or
    CategoricalCrossentropy (one-hot or soft labels, label_smoothing): l_n = H(q_n, p_n); from_logits=False:
    SCCE clips to [1e-7, 1 - 1e-7] then renormalises, CCE renormalises then clips. sample_weight
    s_n = sw_n * w[y_n] (the argmax class of a soft label; smoothed_weight: w . q_n) * m_n, v_n = l_n s_n.
    sum_over_batch_size / positions (/ the unmasked count under ignore_class), mean_with_sample_weight
    sum v / the sum of the weight tensor as passed (sum_n sw_n when it is the per-sample weights alone,
    (N, 1, ..) on K-dim; else sum s over positions), both divide_no_nan; sum_by_nonzero_weights by hand
    / #(s != 0) (plain division). An empty batch comes back unreduced."""
    sparse = not categorical and case.labels is not None and case.label_smoothing == 0
    bounds = keras_bounds(case.dtype)
    values, applied, valid = {}, {}, 0
    for pos in positions(case):
        if ignored(case, pos):
            values[pos], applied[pos] = 0.0, 0.0
            continue
        row = class_row(case.predictions, pos)
        if case.from_logits:
            lp = lp_softmax(row)
        else:
            lp = lp_keras_scce(row, bounds) if sparse else lp_keras_cce(row, bounds)
        q = smoothed(case, pos)
        if smoothed_weight:
            weight = math.fsum(class_weight(case, c) * q[c] for c in range(case.num_classes))
        else:
            weight = class_weight(case, hard_label(case, pos))
        applied[pos] = per_sample(case, pos) * weight
        values[pos] = cross_entropy(q, lp) * applied[pos]
        valid += 1
    if not values and case.reduction != "sum_by_nonzero_weights":
        return np.zeros((0,))
    own = float(valid) if sparse and case.ignore_index is not None else float(len(values))
    return finish(
        case,
        values,
        position_shape(case),
        {
            "mean": (own, 0.0),
            "sum_over_batch_size": (own, 0.0),
            "mean_with_sample_weight": (math.fsum(applied.values()), 0.0),
            "sum_by_nonzero_weights": (float(sum(w != 0 for w in applied.values())), 0.0),
        },
    )


def keras_cce(case: Case) -> np.ndarray:
    return keras_ce(case, categorical=True)


def keras_smoothed_weight(case: Case) -> np.ndarray:
    return keras_ce(case, categorical=True, smoothed_weight=True)


def tf_nn_ce(case: Case) -> np.ndarray:
    """tf.nn.(sparse_)softmax_cross_entropy_with_logits: l_n = H(q_n, softmax(x_n)) (smoothing by hand),
    weights s_n = sw_n w[y_n] m_n by hand, v_n = l_n s_n; mean = reduce_mean (/ positions) or, with
    ignore_index, / the non-ignored count; sum_over_batch_size / positions, mean_with_sample_weight
    / sum s, sum_by_nonzero_weights / #(s != 0); 0/0 = NaN."""
    values, applied, valid = {}, {}, 0
    for pos in positions(case):
        if ignored(case, pos):
            values[pos], applied[pos] = 0.0, 0.0
            continue
        applied[pos] = per_sample(case, pos) * class_weight(case, hard_label(case, pos))
        values[pos] = cross_entropy(smoothed(case, pos), lp_softmax(class_row(case.predictions, pos))) * applied[pos]
        valid += 1
    count = float(len(values))
    own = float(valid) if case.labels is not None and case.ignore_index is not None else count
    return finish(
        case,
        values,
        position_shape(case),
        {
            "mean": (own, 0.0),
            "sum_over_batch_size": (count, 0.0),
            "mean_with_sample_weight": (math.fsum(applied.values()), 0.0),
            "sum_by_nonzero_weights": (float(sum(w != 0 for w in applied.values())), 0.0),
        },
    )


def v1_ce(case: Case) -> np.ndarray:
    """tf.compat.v1.losses.(sparse_)softmax_cross_entropy: l_n = H(q_n, softmax(x_n)), q = y (1 - eps) + eps / C;
    weights s_n = sw_n w[y_n] m_n (1.0 when none); compute_weighted_loss."""
    losses, weights = {}, {}
    for pos in positions(case):
        if ignored(case, pos):
            losses[pos], weights[pos] = 0.0, 0.0
            continue
        losses[pos] = cross_entropy(smoothed(case, pos), lp_softmax(class_row(case.predictions, pos)))
        weights[pos] = per_sample(case, pos) * class_weight(case, hard_label(case, pos))
    return compute_weighted_loss(case, losses, weights, position_shape(case))


# ---------------------------------------------------------------- the registry: loop, declared knobs, support

LOOPS: dict[tuple[str, str], Callable[[Case], np.ndarray]] = {
    ("torch", SOFTMAX): torch_ce,
    ("torch:functional", SOFTMAX): torch_ce,
    ("torch:nll", SOFTMAX): torch_nll,
    ("paddle", SOFTMAX): paddle_ce,
    ("paddle:smooth_recipe", SOFTMAX): paddle_ce,
    ("paddle:softmax_with_ce", SOFTMAX): paddle_softmax_with_ce,
    ("tensorflow", SOFTMAX): keras_ce,
    ("tensorflow:cce", SOFTMAX): keras_cce,
    ("tensorflow:smoothed_weight", SOFTMAX): keras_smoothed_weight,
    ("tensorflow:nn", SOFTMAX): tf_nn_ce,
    ("tensorflow:nn_sparse", SOFTMAX): tf_nn_ce,
    ("tensorflow:v1", SOFTMAX): v1_ce,
    ("tensorflow:v1_sparse", SOFTMAX): v1_ce,
    ("torch", BINARY): torch_binary,
    ("torch:functional", BINARY): torch_binary,
    ("torch:sigmoid_bce", BINARY): torch_sigmoid_bce,
    ("paddle", BINARY): torch_binary,
    ("paddle:sigmoid_bce", BINARY): torch_sigmoid_bce,
    ("tensorflow", BINARY): keras_binary,
    ("tensorflow:nn", BINARY): tf_nn_binary,
    ("tensorflow:v1", BINARY): v1_binary,
}

DECLARED: dict[tuple[str, str], Callable] = {
    ("torch", SOFTMAX): torch_softmax.documented,
    ("torch:functional", SOFTMAX): torch_softmax.documented,
    ("torch:nll", SOFTMAX): torch_softmax.nll_documented,
    ("paddle", SOFTMAX): paddle_softmax.documented,
    ("paddle:smooth_recipe", SOFTMAX): paddle_softmax.recipe_documented,
    ("paddle:softmax_with_ce", SOFTMAX): paddle_softmax.softmax_with_ce_documented,
    ("tensorflow", SOFTMAX): tf_softmax.documented,
    ("tensorflow:cce", SOFTMAX): tf_softmax.cce_documented,
    ("tensorflow:smoothed_weight", SOFTMAX): tf_softmax.smoothed_documented,
    ("tensorflow:nn", SOFTMAX): tf_softmax.nn_documented,
    ("tensorflow:nn_sparse", SOFTMAX): tf_softmax.nn_documented,
    ("tensorflow:v1", SOFTMAX): tf_adapter.v1_documented,
    ("tensorflow:v1_sparse", SOFTMAX): tf_adapter.v1_documented,
    ("torch", BINARY): torch_bce.binary_documented,
    ("torch:functional", BINARY): torch_bce.binary_documented,
    ("paddle", BINARY): paddle_bce.binary_documented,
    ("tensorflow", BINARY): tf_bce.binary_documented,
    ("tensorflow:nn", BINARY): tf_bce.nn_sigmoid_documented,
    ("tensorflow:v1", BINARY): tf_adapter.v1_documented,
}


def distinct_apis(family: str) -> list[str]:
    """The keys of `family` with their own (loop, declared knobs) pair: torch:functional, nn_sparse and
    v1_sparse run the same formula as torch, nn and v1, so the grids check each formula once."""
    seen, out = set(), []
    for (key, loss), declared in DECLARED.items():
        if loss == family and (LOOPS[key, loss], declared) not in seen:
            seen.add((LOOPS[key, loss], declared))
            out.append(key)
    return out


def unsupported_reasons(key: str, case: Case) -> list[str]:
    """What the native API of `key` cannot express in `case`, each as a word its reason must name; empty
    when the API runs the case. Written from the APIs' signatures, not from the adapters."""
    probs, soft = not case.from_logits, case.soft_labels is not None
    reasons = []
    if case.loss == BINARY:
        if case.pos_weight is not None and (probs or key in ("torch:sigmoid_bce", "paddle:sigmoid_bce", "tensorflow", "tensorflow:v1")):
            reasons.append("pos_weight")
        if probs and key in ("torch:sigmoid_bce", "paddle:sigmoid_bce", "tensorflow:nn", "tensorflow:v1"):
            reasons.append("logits")
        if key == "tensorflow" and case.weight is not None:
            reasons.append("weight")
        if key == "tensorflow" and case.sample_weight is not None and case.predictions.ndim < 2:
            reasons.append("sample_weight")
        return reasons
    if probs and key in (
        "paddle:softmax_with_ce",
        "tensorflow:nn",
        "tensorflow:nn_sparse",
        "tensorflow:v1",
        "tensorflow:v1_sparse",
    ):
        reasons.append("logits")
    if soft and key in ("torch:nll", "paddle:smooth_recipe", "tensorflow:nn_sparse", "tensorflow:v1_sparse"):
        reasons.append("class indices")
    if case.label_smoothing and key in ("torch:nll", "tensorflow:nn_sparse", "tensorflow:v1_sparse"):
        reasons.append("smoothing")
    if case.ignore_index is not None and key == "paddle:smooth_recipe":
        reasons.append("ignore_index")
    if case.ignore_index is not None and case.label_smoothing and not soft and key == "paddle:softmax_with_ce":
        reasons.append("ignore_index")
    if case.weight is not None and key == "paddle:softmax_with_ce":
        reasons.append("class weights")
    if case.weight is None and key == "tensorflow:smoothed_weight":
        reasons.append("class weights")
    return reasons


def finite_difference(case: Case, loop: Callable[[Case], np.ndarray], h: float = 1e-5) -> np.ndarray:
    """Fourth-order central difference of sum(loop(case)) w.r.t. each prediction (smooth points only)."""
    x = case.predictions
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        values = []
        for step in (2 * h, h, -h, -2 * h):
            moved = x.copy()
            moved[index] += step
            values.append(float(np.sum(loop(replace(case, predictions=moved)))))
        grad[index] = (-values[0] + 8 * values[1] - 8 * values[2] + values[3]) / (12 * h)
    return grad


# ---------------------------------------------------------------- known bugs of the declared knobs


def known_bug(key: str, case: Case) -> str | None:
    """The reason the model at `key`'s declared knobs departs from the API's loop on `case`, if known.

    The seven declaration and recipe bugs this file first found are fixed; a new one is returned here so
    its cases become strict xfails.
    """
    return None


def with_known_bug(key: str, case: Case, *values: object, id: str) -> object:
    bug = known_bug(key, case)
    return pytest.param(*values, marks=[pytest.mark.xfail(strict=True, reason=bug)] if bug else [], id=id)


# ---------------------------------------------------------------- binary grid: model at the declared knobs == loop

BINARY_SHAPES = {"1d": (6,), "2d": (3, 4), "3d": (2, 3, 4)}
BINARY_PARAMS = ("plain", "weighted", "smoothed_soft")


def binary_spec(shape: str, inputs: str, params: str, weighted_samples: bool, reduction: str, seed: int = 0) -> str:
    dims = BINARY_SHAPES[shape]
    spec: dict[str, object] = {"loss": BINARY, "reduction": reduction}
    spec["logits" if inputs == "logits" else "probs"] = random_logits(dims, seed) if inputs == "logits" else random_probs(dims, seed)
    if params == "smoothed_soft":
        spec["soft_labels"] = random_soft(dims, seed + 1)
        spec["label_smoothing"] = 0.2
    else:
        spec["labels"] = random_binary(dims, seed + 1)
    if params == "weighted":
        spec["weight"] = [0.5, 2.0, 0.0, 1.5, 1.0, 3.0][: dims[-1]]
        if inputs == "logits":
            spec["pos_weight"] = [2.0, 0.5, 1.0, 3.0, 1.5, 0.25][: dims[-1]]
    if weighted_samples:
        spec["sample_weight"] = sample_weights(dims[0])
    return json.dumps(spec)


BINARY_GRID = [
    pytest.param(shape, inputs, params, weighted, reduction, id=f"{shape}-{inputs}-{params}-sw{int(weighted)}-{reduction}")
    for shape in BINARY_SHAPES
    for inputs in ("logits", "probs")
    for params in BINARY_PARAMS
    for weighted in (False, True)
    for reduction in REDUCTIONS
]


def assert_model_matches_every_loop(case: Case) -> int:
    """The model at each API's declared knobs against its loop, for every API that runs `case` and
    declares a formula for it (known bugs have their own strict-xfail tests); how many were checked."""
    checked = 0
    for key in distinct_apis(case.loss):
        declared = DECLARED[key, case.loss]
        if unsupported_reasons(key, case) or declared(case) is None or known_bug(key, case):
            continue
        expected = LOOPS[key, case.loss](case)
        got = reference.evaluate(case, declared(case)).loss
        assert got.shape == expected.shape, key
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-14, err_msg=key)
        checked += 1
    return checked


@pytest.mark.parametrize("shape, inputs, params, weighted, reduction", BINARY_GRID)
def test_binary_model_at_declared_knobs_matches_each_apis_loop(shape, inputs, params, weighted, reduction):
    """Protects binary cross-entropy in `evaluate` for every binary API an adapter declares (torch/paddle
    BCE and BCEWithLogits with weight and pos_weight, Keras BinaryCrossentropy's last-axis mean and
    probability clip, tf.nn and tf.compat.v1 sigmoid with weights as sample weights) on 1-D, 2-D and
    (N, d, C) inputs, soft targets with smoothing, per-sample weights and every reduction."""
    assert assert_model_matches_every_loop(cached_case(binary_spec(shape, inputs, params, weighted, reduction))) >= 1


# ---------------------------------------------------------------- softmax grid: sample weights and explicit reductions

SOFTMAX_SHAPES = {"2d": (4, 3), "kdim": (2, 3, 2)}
SOFTMAX_TARGETS = ("labels", "ignored", "class_ignored", "smoothed", "soft", "probs")
WEIGHTINGS = [(sw, reduction) for sw in (False, True) for reduction in REDUCTIONS if sw or reduction in EXPLICIT]


def softmax_spec(shape: str, targets: str, weighted: bool, weighted_samples: bool, reduction: str, seed: int = 0) -> str:
    dims = SOFTMAX_SHAPES[shape]
    label_shape = dims[:1] + dims[2:]
    spec: dict[str, object] = {"reduction": reduction}
    spec["probs" if targets == "probs" else "logits"] = random_probs(dims, seed) if targets == "probs" else random_logits(dims, seed)
    if targets == "soft":
        spec["soft_labels"] = random_soft(dims, seed + 1, axis=1)
        spec["label_smoothing"] = 0.1
    else:
        labels = np.random.default_rng(seed + 1).integers(0, dims[1], label_shape)
        if targets in ("ignored", "class_ignored"):
            ignore = -100 if targets == "ignored" else 1
            labels.reshape(-1)[[0, -1]] = ignore
            labels.reshape(-1)[1] = 0
            spec["ignore_index"] = ignore
        spec["labels"] = labels.tolist()
    if targets == "smoothed":
        spec["label_smoothing"] = 0.2
    if weighted:
        spec["weight"] = [0.5, 2.0, 1.5]
    if weighted_samples:
        spec["sample_weight"] = sample_weights(dims[0])
    return json.dumps(spec)


SOFTMAX_GRID = [
    pytest.param(shape, targets, weighted, sw, reduction, id=f"{shape}-{targets}-w{int(weighted)}-sw{int(sw)}-{reduction}")
    for shape in SOFTMAX_SHAPES
    for targets in SOFTMAX_TARGETS
    for weighted in (False, True)
    for sw, reduction in WEIGHTINGS
]


@pytest.mark.parametrize("shape, targets, weighted, sw, reduction", SOFTMAX_GRID)
def test_softmax_model_at_declared_knobs_matches_each_apis_loop(shape, targets, weighted, sw, reduction):
    """Protects per-sample weights and the explicit reductions (sum_over_batch_size, mean_with_sample_weight,
    sum_by_nonzero_weights) of softmax cross-entropy in `evaluate`, for every softmax API an adapter declares:
    the torch recipe (loss_none * sw).mean(), paddle's recipe on its own per-position loss, Keras
    sample_weight = sw * w[y] with ignore_class, tf.nn by hand, tf.compat.v1 compute_weighted_loss."""
    assert assert_model_matches_every_loop(cached_case(softmax_spec(shape, targets, weighted, sw, reduction))) >= 3


@pytest.mark.parametrize("shape", list(SOFTMAX_SHAPES))
@pytest.mark.parametrize("weighted", [False, True])
def test_keras_explicit_sum_over_batch_size_divides_by_the_unmasked_count_under_ignore_class(shape, weighted):
    """Protects the tensorflow declaration of an explicit sum_over_batch_size with ignore_class: Keras treats
    it exactly as its mean (the mask rescaled to size / sum(mask)), so it equals the declared `mean`."""
    case = cached_case(softmax_spec(shape, "ignored", weighted, True, "sum_over_batch_size"))
    np.testing.assert_allclose(keras_ce(case), keras_ce(replace(case, reduction="mean")), rtol=1e-12)
    np.testing.assert_allclose(reference.evaluate(case, tf_softmax.documented(case)).loss, keras_ce(case), rtol=1e-12)


# ---------------------------------------------------------------- gradients


@pytest.mark.parametrize("reduction", ["none", "mean", "mean_with_sample_weight", "sum_by_nonzero_weights"])
@pytest.mark.parametrize(
    "inputs, params",
    [("logits", "weighted"), ("logits", "smoothed_soft"), ("probs", "plain"), ("probs", "smoothed_soft")],
)
@pytest.mark.parametrize("shape", list(BINARY_SHAPES))
def test_binary_gradient_matches_finite_differences_of_each_loop(shape, inputs, params, reduction):
    """Protects the analytic binary gradient (pos_weight, element and per-sample weights, smoothing, the
    Keras clip and last-axis mean, every denominator) against a central difference of each API's loop."""
    case = cached_case(binary_spec(shape, inputs, params, shape != "1d", reduction, seed=3))
    for (key, family), declared in DECLARED.items():
        if family != BINARY or unsupported_reasons(key, case) or known_bug(key, case):
            continue
        analytic = reference.evaluate(case, declared(case)).grad
        assert analytic.shape == case.predictions.shape, key
        np.testing.assert_allclose(analytic, finite_difference(case, LOOPS[key, BINARY]), rtol=1e-6, atol=1e-9, err_msg=key)


@pytest.mark.parametrize("reduction", ["mean", "sum_over_batch_size", "mean_with_sample_weight", "sum_by_nonzero_weights"])
@pytest.mark.parametrize("targets", ["ignored", "smoothed", "soft", "probs"])
@pytest.mark.parametrize("shape", list(SOFTMAX_SHAPES))
def test_softmax_gradient_with_sample_weights_matches_finite_differences(shape, targets, reduction):
    """Protects the analytic softmax gradient with per-sample and class weights under every explicit
    reduction, for each declared API, against a central difference of its loop."""
    case = cached_case(softmax_spec(shape, targets, True, True, reduction, seed=5))
    for (key, family), declared in DECLARED.items():
        if family != SOFTMAX or unsupported_reasons(key, case) or declared(case) is None or known_bug(key, case):
            continue
        analytic = reference.evaluate(case, declared(case)).grad
        np.testing.assert_allclose(analytic, finite_difference(case, LOOPS[key, SOFTMAX]), rtol=1e-6, atol=1e-9, err_msg=key)


# ---------------------------------------------------------------- documented numbers


def printed(values: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Documented values as printed, each with a tolerance of one unit of its last printed digit."""
    numbers = np.array([float(v) for v in values])
    units = []
    for v in values:
        mantissa, _, exponent = v.partition("e")
        digits = len(mantissa.split(".")[1]) if "." in mantissa else 0
        units.append(10.0 ** (int(exponent or 0) - digits))
    return numbers, np.array(units)


def assert_printed(got: np.ndarray, *values: str) -> None:
    expected, units = printed(list(values))
    got = np.asarray(got, dtype=np.float64).reshape(-1)
    assert got.shape == expected.shape, (got, values)
    assert np.all(np.abs(got - expected) <= units), (got, values)


KERAS_BCE_DOC = {"logits": [[-18.6, 0.51], [2.94, -12.8]], "labels": [[0, 1], [0, 0]]}


@pytest.mark.parametrize(
    "extra, values",
    [
        ({"reduction": "mean"}, ("0.8654",)),
        ({"reduction": "mean", "sample_weight": [0.8, 0.2]}, ("0.243",)),
        ({"reduction": "sum"}, ("1.73",)),
        ({"reduction": "none"}, ("0.235", "1.496")),
    ],
)
def test_keras_binary_crossentropy_docs_example(extra, values):
    """Protects the Keras BinaryCrossentropy knobs (mean over the last axis, then sample_weight and the
    batch reduction) against its docstring: logits [[-18.6, 0.51], [2.94, -12.8]], y [[0, 1], [0, 0]]
    -> 0.8654; sample_weight [0.8, 0.2] -> 0.243; sum 1.73; none [0.235, 1.496]."""
    case = make_case(loss=BINARY, dtype="float32", **KERAS_BCE_DOC, **extra)
    model = reference.evaluate(case, tf_bce.binary_documented(case)).loss
    assert_printed(model, *values)
    assert_printed(keras_binary(as_seen(case)), *values)


def test_keras_binary_crossentropy_function_docs_example_on_probabilities():
    """Protects the Keras probability path (clip, per-sample mean): keras.losses.binary_crossentropy
    y_true [[0, 1], [0, 0]], y_pred [[0.6, 0.4], [0.4, 0.6]] -> [0.916, 0.714]."""
    case = make_case(loss=BINARY, probs=[[0.6, 0.4], [0.4, 0.6]], labels=[[0, 1], [0, 0]], reduction="none", dtype="float32")
    assert_printed(reference.evaluate(case, tf_bce.binary_documented(case)).loss, "0.916", "0.714")
    assert_printed(keras_binary(as_seen(case)), "0.916", "0.714")


@pytest.mark.parametrize("pos_weight, values", [(1.5, ("0.30212", "0.880496")), (0.5, ("0.100707", "0.508298"))])
def test_tf_nn_weighted_cross_entropy_docs_example(pos_weight, values):
    """Protects pos_weight (torch's formula, tf.nn.weighted_cross_entropy_with_logits) against its docs:
    labels [1, .5, 0], logits [1.5, -.1, -10], pos_weight 1.5 -> [0.30212, 0.880496, 4.57764e-05]. The
    third printed value is float32 cancellation (-10 + 10.0000454 in float32); in float64 it is
    log1p(exp(-10)) = 4.53989e-05, within float32 tolerance (1e-6) of the print."""
    case = make_case(
        loss=BINARY,
        logits=[1.5, -0.1, -10.0],
        soft_labels=[1.0, 0.5, 0.0],
        pos_weight=[pos_weight],
        reduction="none",
        dtype="float32",
    )
    for declared, loop in (
        (tf_bce.nn_sigmoid_documented, tf_nn_binary),
        (torch_bce.binary_documented, torch_binary),
    ):
        for got in (reference.evaluate(case, declared(case)).loss, loop(as_seen(case))):
            assert_printed(got[:2], *values)
            np.testing.assert_allclose(got[2], 4.57764e-05, atol=1e-6)
            np.testing.assert_allclose(got[2], math.log1p(math.exp(-10.0)), rtol=1e-9)


@pytest.mark.parametrize(
    "spec, value",
    [
        ({"probs": [0.5, 0.6, 0.7], "labels": [1, 0, 1]}, 0.65537095),
        ({"logits": [5.0, 1.0, 3.0], "labels": [1, 0, 1]}, 0.45618808),
    ],
    ids=["BCELoss", "BCEWithLogitsLoss"],
)
def test_paddle_binary_docs_examples(spec, value):
    """Protects the torch/paddle binary knobs against paddle's docstrings: BCELoss on [0.5, 0.6, 0.7] with
    y [1, 0, 1] -> 0.65537095; BCEWithLogitsLoss on logits [5, 1, 3] -> 0.45618808 (float32 prints, to
    float32 resolution)."""
    case = make_case(loss=BINARY, dtype="float32", **spec)
    for declared in (paddle_bce.binary_documented, torch_bce.binary_documented):
        np.testing.assert_allclose(reference.evaluate(case, declared(case)).loss, value, rtol=2e-7)
    np.testing.assert_allclose(torch_binary(as_seen(case)), value, rtol=2e-7)


def test_tf_compat_v1_softmax_cross_entropy_docs_example():
    """Protects compute_weighted_loss's default SUM_BY_NONZERO_WEIGHTS with per-sample weights and smoothing
    against the tf.compat.v1.losses.softmax_cross_entropy docs (TF2 migration guide): weights [0.3, 0.7],
    label_smoothing 0.2, logits [[.05, .95, 0], [.1, .8, .1]], labels [1, 2] -> 0.57618 (as is Keras CCE's
    sum_over_batch_size with the same sample_weight, both weights being non-zero)."""
    case = make_case(
        logits=[[0.05, 0.95, 0.0], [0.1, 0.8, 0.1]],
        labels=[1, 2],
        sample_weight=[0.3, 0.7],
        label_smoothing=0.2,
        dtype="float32",
    )
    for declared, loop in ((tf_adapter.v1_documented, v1_ce), (tf_softmax.documented, keras_ce)):
        assert_printed(reference.evaluate(case, declared(case)).loss, "0.57618")
        assert_printed(loop(as_seen(case)), "0.57618")


# ---------------------------------------------------------------- clip and clamp values (docs/semantics.md 1.3, 1.12, D7)


@pytest.mark.parametrize("dtype, keras_values", [("float32", (15.942385, 16.118095)), ("float64", (16.118095, 16.118095))])
def test_keras_clip_and_torch_clamp_on_probabilities_of_exactly_zero_and_one(dtype, keras_values):
    """Protects the two probability guards: p = 1 with y = 0 and p = 0 with y = 1 cost 100 in torch/paddle
    (log clamped at -100) and -log(1e-7) = 16.118 in Keras, except that float32 holds 1 - 1e-7 as
    1 - 1.19e-7 (-log(1.19e-7) = 15.942)."""
    case = make_case(loss=BINARY, probs=[[1.0, 0.0]], labels=[[0, 1]], reduction="none", dtype=dtype)
    torch_loss = reference.evaluate(case, torch_bce.binary_documented(case)).loss
    np.testing.assert_allclose(torch_loss, [[100.0, 100.0]], rtol=1e-12)
    np.testing.assert_allclose(torch_binary(as_seen(case)), [[100.0, 100.0]], rtol=1e-12)
    keras_loss = reference.evaluate(case, tf_bce.binary_documented(case)).loss
    np.testing.assert_allclose(keras_loss, [sum(keras_values) / 2], rtol=1e-6)
    np.testing.assert_allclose(keras_binary(as_seen(case)), keras_loss, rtol=1e-12)


def test_bce_log_clamp_only_bites_below_exp_minus_100():
    """Protects the -100 clamp of BCELoss as measured (docs/semantics.md 1.3): p = 1 - 1e-12 with y = 0 costs
    -log(1e-12) = 27.631, unclamped; the textbook knobs (no clamp) give inf at p = 0."""
    case = make_case(loss=BINARY, probs=[1.0 - 1e-12, 0.0], labels=[0, 1], reduction="none")
    got = reference.evaluate(case, torch_bce.binary_documented(case)).loss
    np.testing.assert_allclose(got, [27.631, 100.0], atol=1e-3)
    np.testing.assert_allclose(got, torch_binary(case), rtol=1e-12)
    assert reference.evaluate(case, reference.textbook(case)).loss[1] == math.inf


def test_keras_rejects_per_sample_weights_on_a_one_dimensional_batch():
    """Protects the Keras last-axis mean: a 1-D batch is one value, so there is no axis for per-sample
    weights; the model refuses rather than guessing (the adapter reports it unsupported)."""
    case = make_case(loss=BINARY, logits=[0.5, -1.0, 2.0], labels=[1, 0, 1], sample_weight=[1.0, 2.0, 0.5])
    assert unsupported_reasons("tensorflow", case) == ["sample_weight"]
    with pytest.raises(ValueError, match="batch axis"):
        reference.evaluate(case, tf_bce.binary_documented(case))


def test_keras_last_axis_mean_gives_the_element_mean_but_a_smaller_sum():
    """Protects docs/semantics.md D12: Keras averages the last axis into one value per sample, so on (N, d, C) inputs
    with per-sample weights its mean (sum / N d) equals torch's mean over elements (sum / N d C) while its
    sum is torch's sum divided by C."""
    spec = json.loads(binary_spec("3d", "logits", "plain", True, "sum", seed=9))
    case = make_case(**spec)
    np.testing.assert_allclose(float(keras_binary(case)) * case.predictions.shape[-1], float(torch_binary(case)), rtol=1e-12)
    mean = make_case(**{**spec, "reduction": "mean"})
    np.testing.assert_allclose(keras_binary(mean), torch_binary(mean), rtol=1e-12)


@pytest.mark.parametrize("family", [BINARY, SOFTMAX])
def test_keras_mean_with_sample_weight_on_kdim_matches_the_declared_formula(family):
    """Protects mean_with_sample_weight on K-dim inputs with per-sample weights only: the adapter hands Keras
    one weight per position, so Keras divides by their sum over every position, as the model does (and
    torch's and paddle's recipes, tf.nn and tf.compat.v1 MEAN)."""
    if family == BINARY:
        case = cached_case(binary_spec("3d", "logits", "plain", True, "mean_with_sample_weight"))
    else:
        case = cached_case(softmax_spec("kdim", "labels", False, True, "mean_with_sample_weight"))
    expected = LOOPS["tensorflow", family](case)
    np.testing.assert_allclose(reference.evaluate(case, DECLARED["tensorflow", family](case)).loss, expected, rtol=1e-12)


# ---------------------------------------------------------------- empty batches, zero weights, all ignored

EMPTY_SPECS = {
    BINARY: {"loss": BINARY, "random": {"shape": [0, 3]}, "labels": "random"},
    SOFTMAX: {"random": {"shape": [0, 3]}, "labels": "random", "weight": [0.5, 2.0, 1.5]},
}
EMPTY_GRID = [
    with_known_bug(key, case, key, family, reduction, id=f"{key}-{family.split('_')[0]}-{reduction}")
    for key, family in DECLARED
    for reduction in REDUCTIONS
    for case in [cached_case(json.dumps({**EMPTY_SPECS[family], "reduction": reduction}))]
    if not unsupported_reasons(key, case)
]


@pytest.mark.parametrize("key, family, reduction", EMPTY_GRID)
def test_empty_batch_matches_each_apis_loop(key, family, reduction):
    """Protects empty batches (random shape [0, 3]): torch, paddle and tf.nn means are NaN and sums 0, Keras
    returns the empty array unreduced, tf.compat.v1 divides with div_no_nan (0); the gradient is empty."""
    case = cached_case(json.dumps({**EMPTY_SPECS[family], "reduction": reduction}))
    out = reference.evaluate(case, DECLARED[key, family](case))
    expected = LOOPS[key, family](case)
    assert out.grad.shape == (0, 3)
    assert out.loss.shape == expected.shape
    np.testing.assert_array_equal(out.loss, expected)


def zero_sample_weight_spec(family: str, reduction: str) -> str:
    spec: dict[str, object] = {"logits": [[0.05, 0.95, 0.0], [0.1, 0.8, 0.1]], "sample_weight": [0.0, 0.0], "reduction": reduction}
    if family == BINARY:
        spec.update(loss=BINARY, labels=[[1, 0, 1], [0, 0, 1]])
    else:
        spec.update(labels=[1, 2], weight=[0.5, 2.0, 1.5])
    return json.dumps(spec)


ZERO_SAMPLE_WEIGHT_GRID = [
    with_known_bug(key, case, key, family, reduction, id=f"{key}-{family.split('_')[0]}-{reduction}")
    for key, family in DECLARED
    for reduction in ("mean", "sum_over_batch_size", "mean_with_sample_weight", "sum_by_nonzero_weights")
    for case in [cached_case(zero_sample_weight_spec(family, reduction))]
    if not unsupported_reasons(key, case)
]


@pytest.mark.parametrize("key, family, reduction", ZERO_SAMPLE_WEIGHT_GRID)
def test_all_zero_sample_weights_follow_each_apis_zero_division(key, family, reduction):
    """Protects 0/0 under per-sample weights that are all 0: torch's, paddle's and tf.nn's by-hand divisions
    give NaN, Keras's own reductions and tf.compat.v1's div_no_nan give 0; means over positions stay 0."""
    case = cached_case(zero_sample_weight_spec(family, reduction))
    expected = LOOPS[key, family](case)
    np.testing.assert_array_equal(reference.evaluate(case, DECLARED[key, family](case)).loss, expected)


@pytest.mark.parametrize("key", [key for key, family in DECLARED if family == BINARY])
def test_zero_element_weights_count_in_the_binary_mean_only_where_they_are_sample_weights(key):
    """Protects docs/semantics.md D12: torch/paddle element weights of 0 leave the mean's denominator at numel (mean
    0 / 6 = 0), as does tf.nn's reduce_mean; tf.compat.v1's default divides by the non-zero weights (0/0 ->
    0) and mean_with_sample_weight (tf.nn, by hand with divide_no_nan) by their sum (0/0 -> 0)."""
    for reduction in ("mean", "mean_with_sample_weight"):
        case = make_case(
            loss=BINARY,
            logits=[[0.5, -1.0, 2.0], [1.0, 0.0, -0.5]],
            labels=[[1, 0, 1], [0, 0, 1]],
            weight=[0.0, 0.0, 0.0],
            reduction=reduction,
        )
        if unsupported_reasons(key, case):
            continue
        expected = LOOPS[key, BINARY](case)
        np.testing.assert_array_equal(reference.evaluate(case, DECLARED[key, BINARY](case)).loss, expected)
        if reduction == "mean" or key == "tensorflow:nn":
            assert float(expected) == 0.0


def test_torch_zero_class_weights_give_nan_loss_and_nan_gradient_on_counted_positions():
    """Protects torch's 0/0 (docs/semantics.md 1.1, D4): every present target weighs 0 -> mean NaN, and the
    gradient is NaN where a position was not ignored (0 * 1/0) but 0 at ignored ones; paddle and Keras
    give 0 and a zero gradient."""
    case = make_case(
        logits=[[0.05, 0.95, 0.0], [0.1, 0.8, 0.1], [0.3, 0.2, 0.5]],
        labels=[1, 1, -100],
        ignore_index=-100,
        weight=[1.0, 0.0, 3.0],
    )
    torch_out = reference.evaluate(case, torch_softmax.documented(case))
    assert math.isnan(float(torch_out.loss)) and math.isnan(float(torch_ce(case)))
    assert np.all(np.isnan(torch_out.grad[:2])) and np.all(torch_out.grad[2] == 0.0)
    for declared, loop in ((paddle_softmax.documented, paddle_ce), (tf_softmax.documented, keras_ce)):
        out = reference.evaluate(case, declared(case))
        assert float(out.loss) == 0.0 == float(loop(case))
        assert np.all(out.grad == 0.0)


@pytest.mark.parametrize("key", ["tensorflow:nn", "tensorflow:nn_sparse"])
def test_tf_nn_all_ignored_mean_is_zero_with_a_zero_gradient(key):
    """Protects the tf.nn recipe on an all-ignored batch: its mean is divide_no_nan(sum(l * w), sum(mask)),
    so 0/0 gives 0 (as Keras's own reductions do) and the gradient is 0 everywhere."""
    case = make_case(logits=[[0.05, 0.95, 0.0], [0.1, 0.8, 0.1]], labels=[-100, -100], ignore_index=-100)
    assert float(LOOPS[key, SOFTMAX](case)) == 0.0
    expected = finite_difference(case, LOOPS[key, SOFTMAX])
    assert np.all(expected == 0.0)
    np.testing.assert_array_equal(reference.evaluate(case, DECLARED[key, SOFTMAX](case)).grad, expected)


@pytest.mark.parametrize("shape", ["2d", "kdim"])
def test_torch_all_ignored_mean_is_nan_with_a_zero_gradient(shape):
    """Protects torch's all-ignored mean (docs/semantics.md 1.1): NaN loss, gradient 0 everywhere (no position
    counted), with per-sample weights too; tf.compat.v1 gives 0 and Keras ignore_class 0."""
    dims = SOFTMAX_SHAPES[shape]
    labels = np.full(dims[:1] + dims[2:], -100).tolist()
    for extra in ({}, {"sample_weight": sample_weights(dims[0]), "reduction": "mean_with_sample_weight"}):
        case = make_case(logits=random_logits(dims, 4), labels=labels, ignore_index=-100, **extra)
        out = reference.evaluate(case, torch_softmax.documented(case))
        assert math.isnan(float(out.loss)) and math.isnan(float(torch_ce(case)))
        assert np.all(out.grad == 0.0)
        for key in ("tensorflow", "tensorflow:v1"):
            assert float(reference.evaluate(case, DECLARED[key, SOFTMAX](case)).loss) == 0.0 == float(LOOPS[key, SOFTMAX](case))
