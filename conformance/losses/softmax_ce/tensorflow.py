"""Softmax cross-entropy in TensorFlow: Keras's `SparseCategoricalCrossentropy` / `CategoricalCrossentropy`
(default), `CategoricalCrossentropy` on one-hot labels, `tf.nn.(sparse_)softmax_cross_entropy_with_logits`,
`tf.compat.v1.losses.(sparse_)softmax_cross_entropy`. Class weights become `sample_weight = weight[label]`
(what `model.fit(class_weight=...)` does; the argmax class for soft labels).
"""

from __future__ import annotations

from conformance.adapters import Unsupported, Variant, kwargs
from conformance.adapters.tensorflow import (
    _by_hand,
    _head,
    _inputs,
    _keras_call,
    _keras_empty_batch,
    _soft,
    _tail,
    _tensor,
    _v1_reduction,
    keras_options,
    v1_documented,
)
from conformance.cases import Case
from conformance.losses.softmax_ce import NAME
from conformance.reference import Knobs, mean_denominator

CE = (NAME,)


def _sparse(case: Case) -> bool:
    return case.labels is not None and not case.label_smoothing


def _one_hot(case: Case) -> str:
    return f"tf.one_hot(y, {case.num_classes}, dtype=tf.{case.dtype})"


def _per_sample(case: Case) -> str:
    """sw spread over a sample's per-position values ((N,) -> (N, 1, ...)); Keras would otherwise
    broadcast it against the last axis."""
    trailing = case.predictions.ndim - 2
    return "sw" + ("[:, " + ", ".join(["None"] * trailing) + "]" if trailing > 0 else "")


def _position_weights(case: Case, smoothed_label: bool = False, mask: bool = True) -> str | None:
    """The per-position weight: sample weight x class weight (of the hard label, or w . q of the
    smoothed label) x the non-ignored mask (left out where ignore_class masks). None when all are 1."""
    factors = []
    if case.sample_weight is not None:
        positions = (case.predictions.shape[0],) + case.predictions.shape[2:]
        factors.append(f"tf.broadcast_to({_tensor(_per_sample(case), case)}, {positions})")
    if case.weight is not None:
        if smoothed_label:
            factors.append(f"tf.linalg.matvec(labels, {_tensor('w', case)})")
        elif case.labels is None:
            factors.append(f"tf.gather({_tensor('w', case)}, tf.argmax({_soft(case)}, axis=-1))")
        elif case.ignore_index is not None:
            factors.append(f"tf.gather({_tensor('w', case)}, np.where(y != {case.ignore_index}, y, 0))")
        else:
            factors.append(f"tf.gather({_tensor('w', case)}, y)")
    if mask and case.ignore_index is not None and case.labels is not None:
        factors.append(f"tf.cast(y != {case.ignore_index}, tf.{case.dtype})")
    return " * ".join(factors) or None


def _smoothing(case: Case, soft: str) -> list[str]:
    if not case.label_smoothing:
        return [f"    labels = {soft}"]
    eps = case.label_smoothing
    return [f"    labels = {soft} * (1 - {eps!r}) + {eps!r} / {case.num_classes}  # smoothing by hand"]


def keras_api(case: Case) -> str:
    if _sparse(case):
        return sparse_keras(case)
    return categorical_keras(case)


def keras_sparse_labels(case: Case) -> tuple[list[str], str]:
    """The labels Keras's SparseCategoricalCrossentropy is given, on every backend: as the case gives
    them, a trailing axis of 1 included (Keras takes [N, ..., 1]); the lines that keep them, and their name."""
    if not case.trailing_label_axis:
        return [], "y"
    return ["labels = y  # as given, [N, ..., 1]: Keras takes them so (weights and masks below use y without it)"], "labels"


def sparse_keras(case: Case) -> str:
    options = keras_options(case, "SparseCategoricalCrossentropy")
    weights = _position_weights(case, mask=False)
    given, target = keras_sparse_labels(case)
    call = _keras_call(case, "SparseCategoricalCrossentropy", options, target, weights, _position_weights(case))
    return "\n".join(given + _head(case) + call + _tail(case))


def categorical_keras(case: Case, smoothed_weight: bool = False) -> str:
    options = keras_options(case, "CategoricalCrossentropy")
    target = _soft(case) if case.labels is None else _one_hot(case)
    lines = _head(case)
    if smoothed_weight:
        eps = case.label_smoothing
        smooth = f" * (1 - {eps!r}) + {eps!r} / {case.num_classes}" if eps else ""
        lines.append(f"    labels = {target}{smooth}  # the smoothed label, to weigh classes as paddle does")
    weights = _position_weights(case, smoothed_label=smoothed_weight)
    return "\n".join(lines + _keras_call(case, "CategoricalCrossentropy", options, target, weights, weights) + _tail(case))


def cce_api(case: Case) -> str:
    return categorical_keras(case)


def smoothed_weight_api(case: Case) -> str:
    """Class weights from the smoothed label (w . q), the recipe that reproduces paddle."""
    if case.weight is None:
        raise Unsupported("no class weights: weighing by the smoothed label only matters with `weight`")
    return categorical_keras(case, smoothed_weight=True)


def _keras_own_mean(case: Case) -> str:
    return "valid_count" if _sparse(case) and case.ignore_index is not None else "positions"


def documented(case: Case) -> Knobs | None:
    """Keras docs: sample_weight multiplies each position's loss (here the weight of the hard label);
    sum_over_batch_size divides by the number of positions, or by the unmasked ones with ignore_class;
    divide_no_nan -> 0; probabilities: CCE renormalises then clips to [1e-7, 1-1e-7], SCCE clips first."""
    own = _keras_own_mean(case)
    return Knobs(
        weight_mode="from_hard_label",
        weights_as_sample_weights=True,
        denominator=own if case.reduction == "sum_over_batch_size" else mean_denominator(case, own),  # type: ignore[arg-type]
        empty_mean="zero",
        empty_batch=_keras_empty_batch(case),  # type: ignore[arg-type]
        probabilities="clip_then_renormalise" if _sparse(case) else "renormalise_then_clip",
    )


def cce_documented(case: Case) -> Knobs:
    return Knobs(
        weight_mode="from_hard_label",
        weights_as_sample_weights=True,
        denominator=mean_denominator(case, "positions"),  # type: ignore[arg-type]
        empty_mean="zero",
        empty_batch=_keras_empty_batch(case),  # type: ignore[arg-type]
        probabilities="renormalise_then_clip",
    )


def smoothed_documented(case: Case) -> Knobs:
    return Knobs(
        weight_mode="from_label",
        weights_as_sample_weights=True,
        denominator=mean_denominator(case, "positions"),  # type: ignore[arg-type]
        empty_mean="zero",
        empty_batch=_keras_empty_batch(case),  # type: ignore[arg-type]
        probabilities="renormalise_then_clip",
    )


def nn_api(case: Case) -> str:
    """tf.nn.softmax_cross_entropy_with_logits: per position only; smoothing, weights, reduction by hand."""
    if not case.from_logits:
        raise Unsupported("tf.nn.softmax_cross_entropy_with_logits takes logits, not probabilities")
    if case.labels is not None:
        labels = (
            _one_hot(case)
            if case.ignore_index is None
            else f"tf.one_hot(np.where(y != {case.ignore_index}, y, 0), {case.num_classes}, dtype=tf.{case.dtype})"
        )
    else:
        labels = _soft(case)
    lines = _head(case) + _smoothing(case, labels)
    lines.append(f"    loss = tf.nn.softmax_cross_entropy_with_logits(labels=labels, logits={_inputs(case)})")
    return "\n".join(lines + _by_hand(case, _position_weights(case)) + _tail(case))


def nn_sparse_api(case: Case) -> str:
    if not case.from_logits:
        raise Unsupported("tf.nn.sparse_softmax_cross_entropy_with_logits takes logits, not probabilities")
    if case.labels is None:
        raise Unsupported("tf.nn.sparse_softmax_cross_entropy_with_logits takes class indices, not probabilities")
    if case.label_smoothing:
        raise Unsupported("class indices cannot carry smoothing: use tf.nn.softmax_cross_entropy_with_logits")
    labels = "y" if case.ignore_index is None else f"np.where(y != {case.ignore_index}, y, 0)"
    lines = _head(case) + [f"    loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels={labels}, logits={_inputs(case)})"]
    return "\n".join(lines + _by_hand(case, _position_weights(case)) + _tail(case))


def nn_documented(case: Case) -> Knobs:
    """Per position -sum q log softmax; class weight of the hard label, mean by hand: over all positions,
    or over the non-ignored ones."""
    own = "valid_count" if case.ignore_index is not None and case.labels is not None else "positions"
    return Knobs(
        weight_mode="from_hard_label",
        weights_as_sample_weights=True,
        denominator=mean_denominator(case, own),  # type: ignore[arg-type]
        empty_mean="zero",
        empty_batch="zero",
    )


def v1_api(case: Case) -> str:
    if not case.from_logits:
        raise Unsupported("tf.compat.v1.losses take logits, not probabilities")
    labels = (
        _soft(case)
        if case.labels is None
        else (
            _one_hot(case)
            if case.ignore_index is None
            else f"tf.one_hot(np.where(y != {case.ignore_index}, y, 0), {case.num_classes}, dtype=tf.{case.dtype})"
        )
    )
    weights = _position_weights(case) or "1.0"
    options = kwargs(("weights", "weights"), ("label_smoothing", case.label_smoothing or None), ("reduction", _v1_reduction(case)))
    return "\n".join(
        _head(case)
        + [f"    weights = {weights}", f"    loss = tf.compat.v1.losses.softmax_cross_entropy({labels}, {_inputs(case)}, {options})"]
        + _tail(case)
    )


def v1_sparse_api(case: Case) -> str:
    if not case.from_logits:
        raise Unsupported("tf.compat.v1.losses take logits, not probabilities")
    if case.labels is None:
        raise Unsupported("sparse_softmax_cross_entropy takes class indices, not probabilities")
    if case.label_smoothing:
        raise Unsupported("tf.compat.v1.losses.sparse_softmax_cross_entropy has no label_smoothing")
    labels = "y" if case.ignore_index is None else f"np.where(y != {case.ignore_index}, y, 0)"
    weights = _position_weights(case) or "1.0"
    options = kwargs(("weights", "weights"), ("reduction", _v1_reduction(case)))
    return "\n".join(
        _head(case)
        + [f"    weights = {weights}", f"    loss = tf.compat.v1.losses.sparse_softmax_cross_entropy({labels}, {_inputs(case)}, {options})"]
        + _tail(case)
    )


VARIANTS = [
    Variant("tensorflow", "tf.keras.losses.SparseCategoricalCrossentropy / CategoricalCrossentropy", keras_api, documented, CE),
    Variant("tensorflow:cce", "tf.keras.losses.CategoricalCrossentropy (one-hot labels)", cce_api, cce_documented, CE),
    Variant(
        "tensorflow:smoothed_weight",
        "tf.keras.losses.CategoricalCrossentropy, sample_weight = weight . smoothed label",
        smoothed_weight_api,
        smoothed_documented,
        CE,
    ),
    Variant("tensorflow:nn", "tf.nn.softmax_cross_entropy_with_logits", nn_api, nn_documented, CE),
    Variant("tensorflow:nn_sparse", "tf.nn.sparse_softmax_cross_entropy_with_logits", nn_sparse_api, nn_documented, CE),
    Variant("tensorflow:v1", "tf.compat.v1.losses.softmax_cross_entropy", v1_api, v1_documented, CE),
    Variant("tensorflow:v1_sparse", "tf.compat.v1.losses.sparse_softmax_cross_entropy", v1_sparse_api, v1_documented, CE),
]
