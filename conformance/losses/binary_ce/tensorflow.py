"""Binary cross-entropy in TensorFlow: Keras's `BinaryCrossentropy` (default),
`tf.nn.sigmoid_cross_entropy_with_logits`, `tf.compat.v1.losses.sigmoid_cross_entropy`.
"""

from __future__ import annotations

from conformance.adapters import Unsupported, Variant, kwargs
from conformance.adapters.tensorflow import (
    _by_hand,
    _head,
    _keras_call,
    _keras_empty_batch,
    _tail,
    _tensor,
    _v1_reduction,
    keras_options,
    v1_documented,
)
from conformance.cases import Case
from conformance.losses.binary_ce import NAME
from conformance.reference import Knobs, mean_denominator

BCE = (NAME,)


def check_binary_keras(case: Case, instead: str) -> None:
    """What Keras's BinaryCrossentropy cannot express, on every backend (`instead`: where the
    framework's users go for a pos_weight)."""
    if case.pos_weight is not None:
        raise Unsupported(f"Keras BinaryCrossentropy has no pos_weight ({instead})")
    if case.weight is not None:
        raise Unsupported("Keras BinaryCrossentropy averages the last axis before sample_weight applies: no per-element weight")
    if case.sample_weight is not None and case.predictions.ndim < 2:
        raise Unsupported("Keras BinaryCrossentropy makes one value of a 1-D batch: no per-sample axis for sample_weight")


def binary_keras(case: Case) -> str:
    check_binary_keras(case, "tf.nn.weighted_cross_entropy_with_logits has")
    options = keras_options(case, "BinaryCrossentropy")
    target = _tensor("y" if case.labels is not None else "t", case)
    trailing = case.predictions.ndim - 2
    weights = None
    if case.sample_weight is not None:
        per_sample = _tensor("sw" + ("[:, " + ", ".join(["None"] * trailing) + "]" if trailing > 0 else ""), case)
        weights = f"tf.broadcast_to({per_sample}, {case.predictions.shape[:-1]})"
    return "\n".join(_head(case) + _keras_call(case, "BinaryCrossentropy", options, target, weights, weights) + _tail(case))


def binary_documented(case: Case) -> Knobs:
    """Keras docs: the elementwise loss is averaged over the last axis into one value per sample, then
    sample_weight and the batch reduction; probabilities clipped to [1e-7, 1-1e-7]."""
    return Knobs(
        denominator=mean_denominator(case, "positions"),  # type: ignore[arg-type]
        empty_mean="zero",
        empty_batch=_keras_empty_batch(case),  # type: ignore[arg-type]
        probabilities="clip",
        last_axis_mean=True,
    )


def nn_sigmoid_api(case: Case) -> str:
    if not case.from_logits:
        raise Unsupported("tf.nn.sigmoid_cross_entropy_with_logits takes logits, not probabilities")
    target = _tensor("y" if case.labels is not None else "t", case)
    lines = _head(case) + [f"    labels = {target}"]
    if case.label_smoothing:
        eps = case.label_smoothing
        lines.append(f"    labels = labels * (1 - {eps!r}) + 0.5 * {eps!r}  # smoothing by hand, as Keras does")
    if case.pos_weight is not None:
        lines.append(f"    loss = tf.nn.weighted_cross_entropy_with_logits(labels=labels, logits=logits, pos_weight={_tensor('pw', case)})")
    else:
        lines.append("    loss = tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits)")
    weights = [f for f in (_tensor("w", case) if case.weight is not None else None, _binary_sample(case)) if f]
    return "\n".join(lines + _by_hand(case, " * ".join(weights) or None) + _tail(case))


def _binary_sample(case: Case) -> str | None:
    if case.sample_weight is None:
        return None
    trailing = case.predictions.ndim - 1
    return _tensor("sw" + ("[:, " + ", ".join(["None"] * trailing) + "]" if trailing > 0 else ""), case)


def nn_sigmoid_documented(case: Case) -> Knobs:
    return Knobs(
        weights_as_sample_weights=True,
        denominator=mean_denominator(case, "positions"),  # type: ignore[arg-type]
        empty_mean="zero",
        empty_batch="zero",
    )


def v1_sigmoid(case: Case) -> str:
    if not case.from_logits:
        raise Unsupported("tf.compat.v1.losses take logits, not probabilities")
    if case.pos_weight is not None:
        raise Unsupported("tf.compat.v1.losses.sigmoid_cross_entropy has no pos_weight")
    target = _tensor("y" if case.labels is not None else "t", case)
    factors = [f for f in (_tensor("w", case) if case.weight is not None else None, _binary_sample(case)) if f]
    weights = " * ".join(["tf.ones_like(logits)", *factors]) if factors else "1.0"  # v1 needs the losses' rank
    options = kwargs(("weights", "weights"), ("label_smoothing", case.label_smoothing or None), ("reduction", _v1_reduction(case)))
    return "\n".join(
        _head(case)
        + [f"    weights = {weights}", f"    loss = tf.compat.v1.losses.sigmoid_cross_entropy({target}, logits, {options})"]
        + _tail(case)
    )


VARIANTS = [
    Variant("tensorflow", "tf.keras.losses.BinaryCrossentropy", binary_keras, binary_documented, BCE),
    Variant(
        "tensorflow:nn",
        "tf.nn.sigmoid_cross_entropy_with_logits / weighted_cross_entropy_with_logits",
        nn_sigmoid_api,
        nn_sigmoid_documented,
        BCE,
    ),
    Variant("tensorflow:v1", "tf.compat.v1.losses.sigmoid_cross_entropy", v1_sigmoid, v1_documented, BCE),
]
