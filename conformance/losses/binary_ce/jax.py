"""Binary cross-entropy in JAX: optax's `sigmoid_binary_cross_entropy` (default) and Keras 3's
`BinaryCrossentropy` on the JAX backend (its documented knobs are Keras's: `losses/binary_ce/tensorflow.py`).
"""

from __future__ import annotations

from conformance.adapters import Unsupported, Variant
from conformance.adapters.jax import KERAS_HEAD, _array, _grad, _leaf, _positions_shape, _reduce, jitted
from conformance.adapters.tensorflow import keras_options
from conformance.cases import Case
from conformance.losses.binary_ce import NAME
from conformance.losses.binary_ce import tensorflow as keras_docs  # pure Python: Keras's documented knobs, shared
from conformance.reference import Knobs, mean_denominator

BCE = (NAME,)


def optax_binary(case: Case) -> str:
    if not case.from_logits:
        raise Unsupported("optax.losses.sigmoid_binary_cross_entropy takes logits, not probabilities")
    if case.pos_weight is not None:
        raise Unsupported("optax.losses.sigmoid_binary_cross_entropy has no pos_weight")
    target = _array("y" if case.labels is not None else "t", case)
    lines = [f"logits = {_array('x', case)}", f"target = {target}"]
    if case.label_smoothing:
        eps = case.label_smoothing
        lines.append(f"target = target * (1 - {eps!r}) + 0.5 * {eps!r}  # optax has no binary smoothing: Keras's transform")
    lines += ["def loss_fn(logits):", "    per = optax.losses.sigmoid_binary_cross_entropy(logits, target)"]
    factors = [f for f in (_array("w", case) if case.weight is not None else None,) if f]
    if case.sample_weight is not None:
        factors.append(_array(_positions_shape(case), case))
    weights = " * ".join(["jnp.ones_like(per)", *factors]) if factors else None
    return jitted("\n".join(lines + _reduce(case, weights, None) + _grad(case)))


def binary_documented(case: Case) -> Knobs:
    """Elementwise sigmoid BCE, weights by hand, jnp.mean over every element."""
    return Knobs(
        weights_as_sample_weights=True,
        denominator=mean_denominator(case, "positions"),  # type: ignore[arg-type]
        empty_mean="nan",
        empty_batch="nan",
        probabilities="none",
    )


def keras_binary(case: Case) -> str:
    keras_docs.check_binary_keras(case, "optax has none either")
    options = keras_options(case, "BinaryCrossentropy")
    target = _array("y" if case.labels is not None else "t", case)
    weights = None
    if case.sample_weight is not None:
        trailing = case.predictions.ndim - 2
        per_sample = _array("sw" + ("[:, " + ", ".join(["None"] * trailing) + "]" if trailing > 0 else ""), case)
        weights = f"jnp.broadcast_to({per_sample}, {case.predictions.shape[:-1]})"
    head = [KERAS_HEAD, f"{_leaf(case)} = {_array('x', case)}", f"target = {target}"]
    lines = [f"loss_obj = keras.losses.BinaryCrossentropy({options})", f"def loss_fn({_leaf(case)}):"]
    lines.append(f"    loss = loss_obj(target, {_leaf(case)}" + (f", sample_weight={weights})" if weights else ")"))
    if case.reduction == "sum_by_nonzero_weights":
        nonzero = f"jnp.count_nonzero(jnp.ones_like(loss) * {weights})" if weights else "loss.size"
        lines.append(f"    loss = jnp.where({nonzero} > 0, jnp.sum(loss) / jnp.maximum({nonzero}, 1), 0.0)  # divide_no_nan")
    lines.append("    return loss")
    return jitted("\n".join(head + lines + _grad(case)))


VARIANTS = [
    Variant("jax", "optax.losses.sigmoid_binary_cross_entropy", optax_binary, binary_documented, BCE),
    Variant("jax:keras", "keras.losses.BinaryCrossentropy (JAX backend)", keras_binary, keras_docs.binary_documented, BCE),
]
