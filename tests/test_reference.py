"""`conformance.reference` against independent float64 formulas.

Each framework's documented cross-entropy is written here again as a plain loop over positions and
classes (torch: class weight inside the smoothed sum; paddle: weight w.q of the smoothed/soft label and
the -64 logit clip; Keras: sample_weight = w[y]), deliberately not sharing code or structure with the
vectorised model. The model, evaluated at the matching knob point, must give the same loss; its analytic
gradient must match a central finite difference of the loop; and the knob points the adapters declare
must reproduce the numbers published for the four scenarios of the cross-framework article and the
Keras documentation example.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pytest

from conformance import cases, reference
from conformance.losses.softmax_ce import paddle as paddle_softmax
from conformance.losses.softmax_ce import tensorflow as tf_softmax
from conformance.losses.softmax_ce import torch as torch_softmax
from conformance.reference import Knobs

KERAS_EPS = 1e-7
PADDLE_FLOOR = 64.0

# ---------------------------------------------------------------- building cases


def make_case(**spec: object):
    """One case from keyword arguments, through the real case-file loader (JSON is valid YAML)."""
    spec.setdefault("id", "c")
    spec.setdefault("dtype", "float64")
    return cases.load_text(json.dumps({"cases": [spec]}), "x.yaml")[0]


def random_logits(shape: tuple[int, ...], seed: int) -> list:
    return (np.random.default_rng(seed).standard_normal(shape) * 2.0).round(6).tolist()


def random_probs(shape: tuple[int, ...], seed: int) -> list:
    """Rows of probabilities that do not sum to 1 (so renormalisation matters), away from 0 and 1."""
    return np.random.default_rng(seed).uniform(0.05, 0.9, shape).round(6).tolist()


def random_soft(shape: tuple[int, ...], seed: int) -> list:
    raw = np.random.default_rng(seed).uniform(0.0, 1.0, shape)
    return (raw / raw.sum(axis=1, keepdims=True)).tolist()


def random_labels(shape: tuple[int, ...], num_classes: int, seed: int, ignore: int | None) -> list:
    labels = np.random.default_rng(seed).integers(0, num_classes, shape)
    if ignore is not None:
        flat = labels.reshape(-1)
        flat[1] = ignore
        flat[-1] = ignore
    return labels.tolist()


# ---------------------------------------------------------------- independent loops


def as_seen(case):
    """The case with its float arrays rounded to the case's dtype (float16/32/64), as a framework sees them."""

    def cast(array):
        return None if array is None else np.asarray(array, dtype=case.dtype).astype(np.float64)

    return replace(case, predictions=cast(case.predictions), soft_labels=cast(case.soft_labels), weight=cast(case.weight))


def label_positions(case) -> list[tuple[int, ...]]:
    """Every position (n, d1, ..., dk): predictions (N, C, d1, ..., dk) without the class axis."""
    shape = case.predictions.shape[:1] + case.predictions.shape[2:]
    return list(itertools.product(*(range(s) for s in shape)))


def class_row(array: np.ndarray, pos: tuple[int, ...]) -> list[float]:
    """The C values at one position of a channels-first array."""
    return [float(array[(pos[0], c) + pos[1:]]) for c in range(array.shape[1])]


def safe_log(v: float) -> float:
    return math.log(v) if v > 0 else -math.inf


def lp_logits(row: list[float]) -> list[float]:
    top = max(row)
    total = math.fsum(math.exp(v - top) for v in row)
    return [v - top - math.log(total) for v in row]


def lp_logits_floor(row: list[float]) -> list[float]:
    """paddle CPU: shifted logits x - max(x) clipped at -64 before the softmax."""
    top = max(row)
    shifted = [max(v - top, -PADDLE_FLOOR) for v in row]
    total = math.fsum(math.exp(v) for v in shifted)
    return [v - math.log(total) for v in shifted]


def lp_renormalise(row: list[float]) -> list[float]:
    """torch CrossEntropyLoss(log p): log_softmax(log p) = log(p / sum p)."""
    total = math.fsum(row)
    return [safe_log(v / total) for v in row]


def lp_raw(row: list[float]) -> list[float]:
    """paddle use_softmax=False: log p as given."""
    return [safe_log(v) for v in row]


def lp_keras_cce(row: list[float]) -> list[float]:
    """Keras CategoricalCrossentropy(from_logits=False): p / sum p, then clip to [eps, 1 - eps]."""
    total = math.fsum(row)
    return [math.log(min(max(v / total, KERAS_EPS), 1.0 - KERAS_EPS)) for v in row]


def lp_keras_scce(row: list[float]) -> list[float]:
    """Keras SparseCategoricalCrossentropy(from_logits=False): clip to [eps, 1 - eps], then renormalise."""
    clipped = [min(max(v, KERAS_EPS), 1.0 - KERAS_EPS) for v in row]
    total = math.fsum(clipped)
    return [math.log(v / total) for v in clipped]


def smoothed_target(case, pos: tuple[int, ...]) -> list[float]:
    """q = (1 - eps) * target + eps / C, the target being one-hot(y) or the given probabilities."""
    num_classes = case.num_classes
    eps = case.label_smoothing
    if case.labels is not None:
        y = int(case.labels[pos])
        base = [1.0 if c == y else 0.0 for c in range(num_classes)]
    else:
        base = class_row(case.soft_labels, pos)
    return [(1.0 - eps) * base[c] + eps / num_classes for c in range(num_classes)]


def cross_term(q: list[float], lp: list[float], factor: Callable[[int], float] = lambda c: 1.0) -> float:
    """sum_c factor(c) * q_c * (-lp_c); a class with no target mass adds nothing (0 * log 0 = 0)."""
    total = 0.0
    for c in range(len(q)):
        if q[c] * factor(c) != 0.0:
            total += factor(c) * q[c] * -lp[c]
    return total


def is_ignored(case, pos: tuple[int, ...]) -> bool:
    return case.labels is not None and case.ignore_index is not None and int(case.labels[pos]) == case.ignore_index


def hard_label(case, pos: tuple[int, ...]) -> int:
    if case.labels is not None:
        return int(case.labels[pos])
    row = class_row(case.soft_labels, pos)
    return row.index(max(row))


def reduce_losses(case, losses: dict, denominator: float, empty: float) -> np.ndarray:
    """none: the per-position losses in label shape; sum; mean = sum / denominator (0/0 -> `empty`)."""
    positions = label_positions(case)
    if case.reduction == "none":
        shape = case.predictions.shape[:1] + case.predictions.shape[2:]
        return np.array([losses[p] for p in positions], dtype=np.float64).reshape(shape)
    total = math.fsum(losses[p] for p in positions)
    if case.reduction == "sum":
        return np.array(total)
    if denominator == 0.0:
        return np.array(empty)
    return np.array(total / denominator)


def torch_formula(case, log_probs: Callable = lp_logits) -> np.ndarray:
    """torch.nn.CrossEntropyLoss docs: l_n = sum_c w_c q_nc (-lp_nc), 0 where ignored; mean divides by
    sum of w[y_n] over non-ignored positions (index targets) or by the number of positions
    (probability targets); 0/0 is NaN."""
    case = as_seen(case)
    w = case.weight if case.weight is not None else np.ones(case.num_classes)
    losses, denominator = {}, 0.0
    for pos in label_positions(case):
        if is_ignored(case, pos):
            losses[pos] = 0.0
            continue
        q = smoothed_target(case, pos)
        lp = log_probs(class_row(case.predictions, pos))
        losses[pos] = cross_term(q, lp, lambda c: float(w[c]))
        denominator += float(w[int(case.labels[pos])]) if case.labels is not None else 1.0
    return reduce_losses(case, losses, denominator, math.nan)


def paddle_formula(case, log_probs: Callable = lp_logits_floor) -> np.ndarray:
    """paddle.nn.CrossEntropyLoss docs/source: l_n = H(q_n, p_n) * (w . q_n), 0 where ignored; mean
    divides by sum of w . q_n over non-ignored positions when weighted; unweighted by the non-ignored
    count when ignore_index >= 0 (hard labels), else by every position; 0/0 is 0."""
    case = as_seen(case)
    w = case.weight if case.weight is not None else np.ones(case.num_classes)
    losses, label_weight, valid = {}, 0.0, 0
    for pos in label_positions(case):
        if is_ignored(case, pos):
            losses[pos] = 0.0
            continue
        q = smoothed_target(case, pos)
        lp = log_probs(class_row(case.predictions, pos))
        wq = math.fsum(float(w[c]) * q[c] for c in range(case.num_classes))
        losses[pos] = cross_term(q, lp) * wq
        label_weight += wq
        valid += 1
    hard = case.labels is not None and case.label_smoothing == 0
    if case.weight is not None:
        denominator = label_weight
    elif hard and case.ignore_index is not None and case.ignore_index >= 0:
        denominator = float(valid)
    else:
        denominator = float(len(label_positions(case)))
    return reduce_losses(case, losses, denominator, 0.0)


def keras_formula(case, log_probs: Callable = lp_logits) -> np.ndarray:
    """Keras with sample_weight = w[y] (class_weight): l_n = w[y_n] * H(q_n, p_n), 0 where ignored;
    sum_over_batch_size divides by the number of positions, or by the unmasked ones with
    SparseCategoricalCrossentropy(ignore_class); 0/0 is 0."""
    case = as_seen(case)
    w = case.weight if case.weight is not None else np.ones(case.num_classes)
    losses, valid = {}, 0
    for pos in label_positions(case):
        if is_ignored(case, pos):
            losses[pos] = 0.0
            continue
        q = smoothed_target(case, pos)
        lp = log_probs(class_row(case.predictions, pos))
        losses[pos] = float(w[hard_label(case, pos)]) * cross_term(q, lp)
        valid += 1
    sparse = case.labels is not None and case.label_smoothing == 0
    masked = sparse and case.ignore_index is not None
    denominator = float(valid) if masked else float(len(label_positions(case)))
    return reduce_losses(case, losses, denominator, 0.0)


def finite_difference(case, formula: Callable, tiny_step: float = 1e-6, **kw: object) -> np.ndarray:
    """Central difference of sum(formula(case)) w.r.t. each prediction entry (float64 cases).

    h = 1e-6, except for probability entries below 1e-3, which use `tiny_step` (chosen by the caller so
    the step neither leaves a clip region nor outruns a steep -q/p)."""
    x = case.predictions
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        h = 1e-6
        if not case.from_logits and abs(x[index]) <= 1e-3:
            h = tiny_step
        values = []
        for step in (h, -h):
            moved = x.copy()
            moved[index] += step
            values.append(float(np.sum(formula(replace(case, predictions=moved), **kw))))
        grad[index] = (values[0] - values[1]) / (2 * h)
    return grad


# ---------------------------------------------------------------- knob points for the loops

TORCH_KNOBS = Knobs(weight_mode="per_class", denominator="target_weight", empty_mean="nan", probabilities="renormalise")


def torch_knobs(case) -> Knobs:
    return Knobs(
        weight_mode="per_class",
        denominator="target_weight" if case.labels is not None else "positions",
        empty_mean="nan",
        probabilities="renormalise",
    )


def paddle_knobs(case) -> Knobs:
    hard = case.labels is not None and case.label_smoothing == 0
    if case.weight is not None:
        denominator = "label_weight"
    elif hard and case.ignore_index is not None and case.ignore_index >= 0:
        denominator = "valid_count"
    else:
        denominator = "positions"
    return Knobs(weight_mode="from_label", denominator=denominator, empty_mean="zero", probabilities="none", logit_floor=64.0)


def keras_knobs(case) -> Knobs:
    sparse = case.labels is not None and case.label_smoothing == 0
    return Knobs(
        weight_mode="from_hard_label",
        denominator="valid_count" if sparse and case.ignore_index is not None else "positions",
        empty_mean="zero",
        probabilities="clip_then_renormalise" if sparse else "renormalise_then_clip",
    )


FORMULAS = {
    "torch": (torch_formula, torch_knobs, torch_softmax.documented),
    "paddle": (paddle_formula, paddle_knobs, paddle_softmax.documented),
    "keras": (keras_formula, keras_knobs, tf_softmax.documented),
}

# ---------------------------------------------------------------- grid of logit cases

SHAPES = {"2d": (5, 3), "kdim": (2, 3, 2, 2)}


def grid_case(shape_name: str, weighted: bool, smoothing: float, ignore: int | None, reduction: str, seed: int = 0):
    shape = SHAPES[shape_name]
    label_shape = shape[:1] + shape[2:]
    spec: dict[str, object] = {
        "logits": random_logits(shape, seed),
        "labels": random_labels(label_shape, shape[1], seed + 1, ignore),
        "reduction": reduction,
        "label_smoothing": smoothing,
    }
    if weighted:
        spec["weight"] = [0.5, 2.0, 1.5]
    if ignore is not None:
        spec["ignore_index"] = ignore
    return make_case(**spec)


def _paddle_formula_defined(smoothing: float, ignore: int | None) -> bool:
    """paddle raises on smoothing with a -100 label and ignores ignore_index >= 0 when smoothing (docs/semantics.md D5):
    its documented formula covers smoothing only without ignore_index."""
    return not (smoothing and ignore is not None)


GRID = [
    pytest.param(
        shape,
        weighted,
        smoothing,
        ignore,
        reduction,
        id=f"{shape}-w{int(weighted)}-ls{smoothing}-ig{ignore}-{reduction}",
    )
    for shape in SHAPES
    for weighted in (False, True)
    for smoothing in (0.0, 0.2)
    for ignore in (None, -100, 1)
    for reduction in ("none", "mean", "sum")
]
FRAMEWORK_GRID = [
    pytest.param(framework, *param.values, id=f"{framework}-{param.id}")
    for framework in FORMULAS
    for param in GRID
    if framework != "paddle" or _paddle_formula_defined(param.values[2], param.values[3])
]


@pytest.mark.parametrize("framework, shape, weighted, smoothing, ignore, reduction", FRAMEWORK_GRID)
def test_model_matches_each_frameworks_formula_on_index_targets(framework, shape, weighted, smoothing, ignore, reduction):
    """Protects the weight modes, denominators and ignore handling of `evaluate` on 2-D and K-dim
    index targets: the model at each framework's knob point equals that framework's formula as a loop
    (paddle only where it documents one: no smoothing together with ignore_index)."""
    case = grid_case(shape, weighted, smoothing, ignore, reduction)
    formula, knobs, _ = FORMULAS[framework]
    expected = formula(case)
    got = reference.evaluate(case, knobs(case)).loss
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("framework, shape, weighted, smoothing, ignore, reduction", FRAMEWORK_GRID)
def test_adapter_declared_knobs_give_the_frameworks_formula(framework, shape, weighted, smoothing, ignore, reduction):
    """Protects each adapter's `documented(case)` declaration: the model at the declared knob point
    equals the framework's documented formula."""
    case = grid_case(shape, weighted, smoothing, ignore, reduction)
    formula, _, declared = FORMULAS[framework]
    knobs = declared(case)
    assert knobs is not None
    np.testing.assert_allclose(reference.evaluate(case, knobs).loss, formula(case), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("shape", list(SHAPES))
def test_paddle_declares_no_formula_for_smoothing_with_a_class_ignore_index(shape):
    """Protects against checking paddle against a formula it does not follow: with smoothing, paddle
    ignores an ignore_index >= 0 and divides the mean by N*C (docs/semantics.md D5), so no knob point is declared."""
    case = grid_case(shape, False, 0.2, 1, "mean")
    assert paddle_softmax.documented(case) is None


def test_textbook_is_torch_on_index_targets():
    """Protects the meaning of the `reference` result: TEXTBOOK is torch's formula for index targets."""
    case = grid_case("kdim", True, 0.2, -100, "mean")
    assert reference.TEXTBOOK == TORCH_KNOBS
    np.testing.assert_allclose(reference.evaluate(case).loss, torch_formula(case), rtol=1e-12)


# ---------------------------------------------------------------- soft (probability) targets


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("smoothing", [0.0, 0.3])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("framework", list(FORMULAS))
def test_model_matches_formulas_on_probability_targets(framework, shape, weighted, smoothing, reduction):
    """Protects soft-label handling: torch divides by positions even when weighted, paddle weighs by
    w . q and divides by its sum, Keras weighs by the argmax class and divides by positions."""
    dims = SHAPES[shape]
    spec: dict[str, object] = {
        "logits": random_logits(dims, 3),
        "soft_labels": random_soft(dims, 4),
        "label_smoothing": smoothing,
        "reduction": reduction,
    }
    if weighted:
        spec["weight"] = [0.5, 2.0, 1.5]
    case = make_case(**spec)
    formula, knobs, declared = FORMULAS[framework]
    expected = formula(case)
    np.testing.assert_allclose(reference.evaluate(case, knobs(case)).loss, expected, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(reference.evaluate(case, declared(case)).loss, expected, rtol=1e-12, atol=1e-14)


def test_torch_probability_targets_ignore_weights_in_the_mean():
    """Protects docs/semantics.md 1.1(c): one-hot probability targets with weights divide by N', index targets by
    sum w[y], so the two differ by the ratio sum w[y] / N."""
    logits = [[0.05, 0.95, 0.0], [0.1, 0.8, 0.1]]
    as_index = make_case(logits=logits, labels=[1, 2], weight=[1, 2, 3])
    as_probs = make_case(logits=logits, soft_labels=[[0, 1, 0], [0, 0, 1]], weight=[1, 2, 3])
    index_loss = float(reference.evaluate(as_index, torch_softmax.documented(as_index)).loss)
    probs_loss = float(reference.evaluate(as_probs, torch_softmax.documented(as_probs)).loss)
    assert probs_loss == pytest.approx(index_loss * 5 / 2, rel=1e-12)
    assert probs_loss == pytest.approx(float(torch_formula(as_probs)), rel=1e-12)


# ---------------------------------------------------------------- empty means


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("weighted", [False, True])
def test_all_ignored_mean_is_nan_or_zero_by_the_empty_mean_knob(shape, weighted):
    """Protects the 0/0 convention: every target ignored gives NaN for empty_mean='nan' (torch, ONNX) and
    0 for 'zero' (paddle, Keras); sum is 0 either way and the gradient is all zeros."""
    dims = SHAPES[shape]
    label_shape = dims[:1] + dims[2:]
    spec: dict[str, object] = {
        "logits": random_logits(dims, 5),
        "labels": np.full(label_shape, -100).tolist(),
        "ignore_index": -100,
    }
    if weighted:
        spec["weight"] = [0.5, 2.0, 1.5]
    case = make_case(**spec)
    assert math.isnan(float(torch_formula(case)))
    assert float(paddle_formula(case)) == 0.0
    assert float(keras_formula(case)) == 0.0
    for knobs, expect_nan in ((Knobs(empty_mean="nan"), True), (Knobs(empty_mean="zero"), False)):
        out = reference.evaluate(case, knobs)
        assert math.isnan(float(out.loss)) if expect_nan else float(out.loss) == 0.0
        assert np.all(out.grad == 0.0)
    summed = make_case(**{**spec, "reduction": "sum"})
    assert float(reference.evaluate(summed, Knobs(empty_mean="nan")).loss) == 0.0


def test_ignore_smoothed_only_matters_with_smoothing():
    """Protects the `ignore_smoothed` knob as documented: with smoothing on, ignored positions still
    contribute (a non-zero per-position loss there); with smoothing off the knob changes nothing."""
    spec = {"logits": random_logits((4, 3), 13), "labels": [0, -100, 2, 1], "ignore_index": -100, "reduction": "none"}
    plain = make_case(**spec)
    assert np.array_equal(reference.evaluate(plain, Knobs(ignore_smoothed=True)).loss, reference.evaluate(plain, Knobs()).loss)
    smoothed = make_case(**spec, label_smoothing=0.2)
    assert float(reference.evaluate(smoothed, Knobs()).loss[1]) == 0.0
    assert float(reference.evaluate(smoothed, Knobs(ignore_smoothed=True)).loss[1]) > 0.0


def test_zero_weight_on_every_present_target_is_an_empty_mean():
    """Protects torch's 'all present targets weigh 0 -> NaN' (the denominator is a weight sum, not a count)."""
    case = make_case(logits=[[0.05, 0.95, 0.0], [0.1, 0.8, 0.1]], labels=[1, 1], weight=[1.0, 0.0, 2.0])
    assert math.isnan(float(torch_formula(case)))
    assert math.isnan(float(reference.evaluate(case, torch_softmax.documented(case)).loss))
    assert float(reference.evaluate(case, Knobs(empty_mean="zero")).loss) == 0.0


# ---------------------------------------------------------------- probability inputs

PROBS_WITH_EDGES = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.2, 0.5, 0.3], [0.25, 0.25, 0.1], [0.0, 0.6, 0.4]]
EDGE_LABELS = [0, 0, 1, 2, 1]

PROB_MODES = {
    "renormalise": lp_renormalise,
    "none": lp_raw,
    "renormalise_then_clip": lp_keras_cce,
    "clip_then_renormalise": lp_keras_scce,
}


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("mode", list(PROB_MODES))
def test_probability_modes_on_exact_zeros_and_ones(mode, reduction):
    """Protects each `probabilities` mode on rows with exact 0 and 1 entries and rows not summing to 1:
    the model equals torch's loop (per class, divide by count) with that mode's log p."""
    case = make_case(probs=PROBS_WITH_EDGES, labels=EDGE_LABELS, reduction=reduction)
    expected = torch_formula(case, PROB_MODES[mode])
    got = reference.evaluate(case, Knobs(probabilities=mode)).loss
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15)


def keras_log_probs(case) -> Callable:
    """SCCE (index labels, no smoothing) clips then renormalises; CCE renormalises then clips."""
    return lp_keras_scce if case.labels is not None and case.label_smoothing == 0 else lp_keras_cce


PROB_LOOPS = {
    "torch": (torch_formula, lambda case: lp_renormalise),
    "paddle": (paddle_formula, lambda case: lp_raw),
    "keras": (keras_formula, keras_log_probs),
}


PROB_GRID = [
    pytest.param(
        framework,
        weighted,
        smoothing,
        ignore,
        reduction,
        id=f"{framework}-w{int(weighted)}-ls{smoothing}-ig{ignore}-{reduction}",
    )
    for framework in PROB_LOOPS
    for weighted in (False, True)
    for smoothing, ignore in ((0.0, None), (0.0, -100), (0.2, None), (0.2, -100))
    for reduction in ("none", "mean", "sum")
    if framework != "paddle" or _paddle_formula_defined(smoothing, ignore)
]


@pytest.mark.parametrize("framework, weighted, smoothing, ignore, reduction", PROB_GRID)
def test_declared_knobs_on_kdim_probability_inputs(framework, weighted, smoothing, ignore, reduction):
    """Protects probability inputs end to end on K-dim cases: each adapter's declared knob point (which
    picks the `probabilities` mode: torch renormalises, paddle takes log p, Keras SCCE clips first and CCE
    renormalises first) equals the framework's loop."""
    dims = SHAPES["kdim"]
    spec: dict[str, object] = {
        "probs": random_probs(dims, 11),
        "labels": random_labels(dims[:1] + dims[2:], dims[1], 12, ignore),
        "label_smoothing": smoothing,
        "reduction": reduction,
    }
    if weighted:
        spec["weight"] = [0.5, 2.0, 1.5]
    if ignore is not None:
        spec["ignore_index"] = ignore
    case = make_case(**spec)
    formula, log_probs = PROB_LOOPS[framework]
    declared = FORMULAS[framework][2](case)
    np.testing.assert_allclose(reference.evaluate(case, declared).loss, formula(case, log_probs(case)), rtol=1e-12, atol=1e-15)


def test_keras_clip_values_at_probability_edges():
    """Protects the Keras 1e-7 clip (docs/semantics.md 1.10/1.11, D7): CCE renormalises then clips (p_y = 1 ->
    -log(1 - 1e-7) ~ 1e-7; p_y = 0 -> -log(1e-7) = 16.118), SCCE clips then renormalises (p_y = 1 ->
    ~2e-7); renormalise/none give inf for p_y = 0."""
    one = make_case(probs=[[1.0, 0.0, 0.0]], labels=[0])
    zero = make_case(probs=[[0.0, 1.0, 0.0]], labels=[0])
    eps = 1e-7

    def loss(case, mode):
        return float(reference.evaluate(case, Knobs(probabilities=mode)).loss)

    assert loss(one, "renormalise_then_clip") == pytest.approx(-math.log(1 - eps), rel=1e-12)
    assert loss(one, "clip_then_renormalise") == pytest.approx(-math.log((1 - eps) / (1 + eps)), rel=1e-9)
    assert loss(one, "clip_then_renormalise") == pytest.approx(2e-7, rel=1e-6)
    assert loss(zero, "renormalise_then_clip") == pytest.approx(-math.log(eps), rel=1e-12)
    assert loss(zero, "renormalise_then_clip") == pytest.approx(16.118095650958319, rel=1e-12)
    assert loss(zero, "clip_then_renormalise") == pytest.approx(-math.log(eps / (1 + eps)), rel=1e-12)
    assert loss(zero, "renormalise") == math.inf
    assert loss(zero, "none") == math.inf
    assert loss(one, "renormalise") == 0.0


def test_clip_eps_knob_is_used():
    """Protects `clip_eps`: a different epsilon moves the clipped value to -log(eps)."""
    case = make_case(probs=[[0.0, 1.0, 0.0]], labels=[0])
    got = float(reference.evaluate(case, Knobs(probabilities="renormalise_then_clip", clip_eps=1e-3)).loss)
    assert got == pytest.approx(-math.log(1e-3), rel=1e-12)


def test_keras_documentation_example_categorical_crossentropy():
    """Protects the Keras CategoricalCrossentropy docs example: y_true=[[0,1,0],[0,0,1]],
    y_pred=[[.05,.95,0],[.1,.8,.1]] -> 1.177 (sum 2.354, none [0.0513, 2.303]) at the tensorflow
    adapter's declared knob point (from_logits=False: renormalise then clip)."""
    spec = {"probs": [[0.05, 0.95, 0.0], [0.1, 0.8, 0.1]], "soft_labels": [[0, 1, 0], [0, 0, 1]], "dtype": "float32"}
    for reduction, documented, digits in (("mean", [1.177], 3), ("sum", [2.354], 3), ("none", [0.0513, 2.303], 3)):
        case = make_case(**spec, reduction=reduction)
        knobs = tf_softmax.documented(case)
        assert knobs.probabilities == "renormalise_then_clip"
        got = np.atleast_1d(reference.evaluate(case, knobs).loss)
        np.testing.assert_allclose(got, documented, atol=10.0**-digits)
        np.testing.assert_allclose(got, np.atleast_1d(keras_formula(case, lp_keras_cce)), rtol=1e-12)


# ---------------------------------------------------------------- logit floor


@pytest.mark.parametrize(
    "logits, label, clipped, exact",
    [([1e4, -1e4, 0.0], 1, 64.0, 20000.0), ([70.0, 0.0, -70.0], 2, 64.0, 140.0)],
)
def test_logit_floor_caps_a_position_at_64(logits, label, clipped, exact):
    """Protects the paddle -64 clip of shifted logits (docs/semantics.md D6): logits [1e4,-1e4,0], label 1 -> 64
    with logit_floor=64, 20000 without; [70,0,-70], label 2 -> 64 vs 140."""
    case = make_case(logits=[logits], labels=[label], dtype="float32")
    assert float(reference.evaluate(case, Knobs(logit_floor=64.0)).loss) == pytest.approx(clipped, rel=1e-12)
    assert float(reference.evaluate(case, Knobs()).loss) == pytest.approx(exact, rel=1e-12)
    assert float(paddle_formula(case)) == pytest.approx(clipped, rel=1e-12)
    assert float(torch_formula(case)) == pytest.approx(exact, rel=1e-12)
    assert float(reference.evaluate(case, paddle_softmax.documented(case)).loss) == pytest.approx(clipped, rel=1e-12)


# ---------------------------------------------------------------- gradients


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("framework", list(FORMULAS))
def test_analytic_gradient_matches_finite_difference_on_logits(framework, shape, reduction):
    """Protects `_grad` for logits: weights, smoothing, ignored positions and every reduction, against a
    central difference of the framework's loop."""
    case = grid_case(shape, True, 0.2 if framework != "paddle" else 0.0, -100 if framework != "paddle" else None, reduction, 7)
    formula, knobs, _ = FORMULAS[framework]
    analytic = reference.evaluate(case, knobs(case)).grad
    assert analytic.shape == case.predictions.shape
    np.testing.assert_allclose(analytic, finite_difference(case, formula), rtol=1e-5, atol=1e-8)


def test_analytic_gradient_matches_finite_difference_on_soft_targets():
    """Protects the gradient with probability targets and weights (paddle's w . q factor included)."""
    dims = SHAPES["kdim"]
    case = make_case(logits=random_logits(dims, 8), soft_labels=random_soft(dims, 9), weight=[0.5, 2.0, 1.5], label_smoothing=0.1)
    for formula, knobs, _ in FORMULAS.values():
        np.testing.assert_allclose(reference.evaluate(case, knobs(case)).grad, finite_difference(case, formula), rtol=1e-5, atol=1e-8)


SMOOTH_PROBS = [[0.2, 0.5, 0.3], [0.25, 0.35, 0.1], [5e-9, 0.6, 0.4], [0.3, 0.3, 0.3]]
SMOOTH_LABELS = [0, 2, 1, 1]


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("mode", list(PROB_MODES))
def test_analytic_gradient_matches_finite_difference_on_probabilities(mode, reduction, smoothing):
    """Protects `_grad` for every `probabilities` mode at smooth points, with weights. The entry 5e-9 is
    inside the clip region of the clipping modes (a 1e-9 step keeps it there); for the others it enters
    only through the row sum without smoothing (1e-6 step) and through a steep -q/p with it (5e-13)."""
    case = make_case(probs=SMOOTH_PROBS, labels=SMOOTH_LABELS, weight=[0.5, 2.0, 1.5], reduction=reduction, label_smoothing=smoothing)
    analytic = reference.evaluate(case, Knobs(probabilities=mode)).grad
    tiny_step = 1e-9 if "clip" in mode else (5e-13 if smoothing else 1e-6)
    numeric = finite_difference(case, torch_formula, tiny_step=tiny_step, log_probs=PROB_MODES[mode])
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-6)


def test_gradient_of_a_zero_probability_without_target_mass():
    """Protects the 'a class with no weight adds 0' rule: p_c = 0 with q_c = 0 has a finite gradient
    (through the row sum only) under renormalise, and 0 under none."""
    case = make_case(probs=[[0.0, 0.6, 0.3]], labels=[1], reduction="sum")
    for mode in ("renormalise", "none"):
        analytic = reference.evaluate(case, Knobs(probabilities=mode)).grad
        assert np.all(np.isfinite(analytic))
        numeric = finite_difference(case, torch_formula, tiny_step=1e-6, log_probs=PROB_MODES[mode])
        np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- published article numbers

ARTICLE_LOGITS = [[0.05, 0.95, 0.0], [0.1, 0.8, 0.1]]
ARTICLE_LABELS = [1, 2]
SCENARIOS = {
    "plain": {},
    "smoothing": {"label_smoothing": 0.1},
    "weighted": {"weight": [1, 2, 3]},
    "weighted_smoothing": {"weight": [1, 2, 3], "label_smoothing": 0.1},
}
# The article's table (torch 1.13, paddle 2.4, tf 2.11; float32 prints). Sums are the sums of the
# printed per-sample values.
PUBLISHED_NONE = {
    "plain": {key: [0.5840635, 1.3897266] for key in ("torch", "paddle", "tensorflow")},
    "smoothing": {key: [0.64573014, 1.3663933] for key in ("torch", "paddle", "tensorflow")},
    "weighted": {key: [1.168127, 4.16918] for key in ("torch", "paddle", "tensorflow")},
    "weighted_smoothing": {
        "torch": [1.293127, 3.9835405],
        "paddle": [1.2914604, 3.9625409],
        "tensorflow": [1.2914603, 4.09918],
    },
}
PUBLISHED_MEAN = {
    "plain": dict.fromkeys(("torch", "paddle", "tensorflow"), 0.9868951),
    "smoothing": dict.fromkeys(("torch", "paddle", "tensorflow"), 1.0060617),
    "weighted": {"torch": 1.0674614, "paddle": 1.0674614, "tensorflow": 2.6686535},
    "weighted_smoothing": {"torch": 1.0553335, "paddle": 1.0722452, "tensorflow": 2.6953201},
}
DECLARED = {"torch": torch_softmax.documented, "paddle": paddle_softmax.documented, "tensorflow": tf_softmax.documented}
LOOPS = {"torch": torch_formula, "paddle": paddle_formula, "tensorflow": keras_formula}


def published(scenario: str, framework: str, reduction: str) -> np.ndarray:
    if reduction == "none":
        return np.array(PUBLISHED_NONE[scenario][framework])
    if reduction == "sum":
        return np.array(sum(PUBLISHED_NONE[scenario][framework]))
    return np.array(PUBLISHED_MEAN[scenario][framework])


def article_case(scenario: str, reduction: str):
    return make_case(logits=ARTICLE_LOGITS, labels=ARTICLE_LABELS, reduction=reduction, dtype="float32", **SCENARIOS[scenario])


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("scenario", list(SCENARIOS))
@pytest.mark.parametrize("framework", list(DECLARED))
def test_declared_knobs_reproduce_the_published_article_table(framework, scenario, reduction):
    """Protects each adapter's declared knob point against the published cross-framework table (and the
    loops against the same table, so the loops themselves are checked by an outside source)."""
    case = article_case(scenario, reduction)
    expected = published(scenario, framework, reduction)
    np.testing.assert_allclose(reference.evaluate(case, DECLARED[framework](case)).loss, expected, rtol=1e-6)
    np.testing.assert_allclose(LOOPS[framework](case), expected, rtol=1e-6)


def test_paddle_issue_47813_kdim_weighted_smoothing():
    """Protects the K-dim path against Paddle issue #47813: x=[0,1,0,0,0,1].view(1,3,2), t=[[0,1]],
    weight [1,2,3], smoothing 0.1 -> paddle 1.5481 (the issue's number); torch's formula gives 1.59971
    (docs/semantics.md section 7: the issue's own torch print 1.5991 came from torch 1.x)."""
    case = make_case(logits=[[[0, 1], [0, 0], [0, 1]]], labels=[[0, 1]], weight=[1, 2, 3], label_smoothing=0.1, dtype="float32")
    paddle_value = float(reference.evaluate(case, paddle_softmax.documented(case)).loss)
    assert paddle_value == pytest.approx(1.5481, abs=1e-4)
    assert paddle_value == pytest.approx(float(paddle_formula(case)), rel=1e-12)
    torch_value = float(reference.evaluate(case, torch_softmax.documented(case)).loss)
    assert torch_value == pytest.approx(float(torch_formula(case)), rel=1e-12)
    assert torch_value == pytest.approx(1.59971, abs=1e-5)


def test_a_family_adds_its_own_knobs_read_as_attributes_with_their_default(monkeypatch):
    """`Knobs.own`: a loss family's knobs (its KNOBS) travel with the shared ones, through as_dict and
    back, and a family knob not set reads as its family's default."""
    from conformance import losses

    monkeypatch.setattr(losses, "knobs", lambda: {"balancing": "none", "normalizer": 1.0})
    knobs = Knobs.of(denominator="positions", balancing="alpha")
    assert (knobs.denominator, knobs.balancing, knobs.normalizer) == ("positions", "alpha", 1.0)
    assert Knobs.of(knobs.as_dict()) == knobs
    assert knobs.switched("normalizer", 2.0).normalizer == 2.0
    assert knobs.switched("normalizer", 2.0).balancing == "alpha"
    assert knobs.switched("denominator", "valid_count").own == knobs.own
    assert reference.knob_names()[-2:] == ["balancing", "normalizer"]
    with pytest.raises(TypeError, match="unknown knobs: gamma"):
        Knobs.of(gamma=2.0)
    with pytest.raises(AttributeError):
        _ = knobs.gamma


# ---------------------------------------------------------------- paddle's label_smooth prior


def test_smoothing_towards_a_given_prior_follows_paddles_label_smooth_formula():
    """paddle's label_smooth docs: (1 - eps) * label + eps * prior_dist. The model applies the case's
    prior at the knob point smoothing_prior='given' (paddle:label_smooth's) and smooths towards 1/C
    everywhere else (the textbook point, every other framework)."""
    x, y, prior = [[0.5, -1.0, 2.0], [0.0, 1.0, -0.5]], [2, 0], [0.6, 0.3, 0.1]
    case = make_case(logits=x, labels=y, label_smoothing=0.2, prior_dist=[prior])
    lp = np.log(np.exp(x) / np.exp(x).sum(axis=1, keepdims=True))
    onehot = np.eye(3)[y]
    given = np.mean(-((0.8 * onehot + 0.2 * np.array(prior)) * lp).sum(axis=1))
    uniform = np.mean(-((0.8 * onehot + 0.2 / 3) * lp).sum(axis=1))
    textbook = reference.textbook(case)
    assert float(reference.evaluate(case, textbook).loss) == pytest.approx(uniform, rel=1e-12)
    assert float(reference.evaluate(case, textbook.switched("smoothing_prior", "given")).loss) == pytest.approx(given, rel=1e-12)


def test_a_prior_needs_smoothing_and_c_numbers():
    with pytest.raises(cases.CaseError, match="give label_smoothing"):
        make_case(logits=[[0.0, 1.0]], labels=[1], prior_dist=[0.5, 0.5])
    with pytest.raises(cases.CaseError) as info:
        make_case(logits=[[0.0, 1.0]], labels=[1], label_smoothing=0.1, prior_dist=[0.5, 0.25, 0.25])
    assert info.value.key == "prior_dist"
