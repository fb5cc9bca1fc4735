"""Sigmoid focal loss in TensorFlow: Keras `BinaryFocalCrossentropy`.

Keras applies `alpha` only with `apply_class_balancing=True` (it is ignored otherwise): the variant sets
it exactly when the case gives an alpha. Like Keras's BinaryCrossentropy it averages the last axis into
one value per sample before `sample_weight` and the reduction, so its `sum` and `none` differ from the
elementwise APIs (its `mean`, `sum_over_batch_size`, does not). From logits, the TensorFlow backend takes
the BCE from the logits behind Keras's sigmoid (`_keras_logits`, keras/src/backend/tensorflow/nn.py):
no clip; probabilities are clipped to [epsilon, 1 - epsilon] for the logs. Smoothing is native; the
normalizer is divided by hand. Shared with Keras on JAX (`conformance/losses/sigmoid_focal/jax.py`).
"""

from __future__ import annotations

from conformance.adapters import Unsupported, Variant
from conformance.adapters.tensorflow import keras_options
from conformance.cases import Case
from conformance.losses import sigmoid_focal as family
from conformance.reference import Knobs

API = "tf.keras.losses.BinaryFocalCrossentropy"


def focal_options(case: Case, balancing: bool = True) -> str:
    """BinaryFocalCrossentropy's arguments for the case, on every backend: class balancing switched on
    exactly when the case gives alpha (`balancing` False: alpha given alone), then the options every
    Keras loss takes."""
    switch = "apply_class_balancing=True, " if balancing else ""
    own = [f"{switch}alpha={case.alpha!r}"] if case.alpha is not None else []
    return ", ".join([*own, f"gamma={case.gamma!r}", keras_options(case, "BinaryFocalCrossentropy")])


def check(case: Case) -> None:
    """What Keras's focal loss cannot express, on every backend."""
    if case.sample_weight is not None and case.predictions.ndim < 2:
        raise Unsupported("Keras BinaryFocalCrossentropy makes one value of a 1-D batch: no per-sample axis for sample_weight")


def sample_weights(case: Case) -> str | None:
    """`sw` spread over the per-sample values Keras weighs (the predictions without their last axis)."""
    if case.sample_weight is None:
        return None
    trailing = case.predictions.ndim - 2
    return "sw" + ("[:, " + ", ".join(["None"] * trailing) + "]" if trailing > 0 else "")


def _tensor(name: str, case: Case) -> str:
    return f"tf.cast(tf.constant({name}), tf.bfloat16)" if case.dtype == "bfloat16" else f"tf.constant({name})"


def keras_focal(case: Case, balancing: bool = True) -> str:
    check(case)
    leaf = "logits" if case.from_logits else "probs"
    target = _tensor("y" if case.labels is not None else "t", case)
    lines = [f"{leaf} = {_tensor('x', case)}", f"target = {target}", "with tf.GradientTape() as tape:", f"    tape.watch({leaf})"]
    lines.append(f"    loss_fn = tf.keras.losses.BinaryFocalCrossentropy({focal_options(case, balancing)})")
    weights = sample_weights(case)
    if weights:
        lines.append(f"    weights = tf.broadcast_to({_tensor(weights, case)}, {case.predictions.shape[:-1]})")
    lines.append(f"    loss = loss_fn(target, {leaf}" + (", sample_weight=weights)" if weights else ")"))
    if case.normalizer is not None:
        lines.append(f"    loss = loss / {case.normalizer!r}  # the normalizer, by hand")
    lines += ["    total = tf.reduce_sum(loss)", f"grad = tape.gradient(total, {leaf})"]
    return "\n".join(lines)


def keras_documented(case: Case, sigmoid_clip: bool = False) -> Knobs:
    """Keras: per-element alpha_t (1 - p_t)^gamma BCE, averaged over the last axis, then sample_weight and
    sum_over_batch_size; probabilities clipped to [1e-7, 1 - 1e-7]; divide_no_nan (0/0 is 0)."""
    return family.documented(
        case, last_axis_mean=True, probabilities="clip", empty_mean="zero", empty_batch="unreduced", sigmoid_clip=sigmoid_clip
    )


def functional(case: Case) -> str:
    """`binary_focal_crossentropy`: one value per sample (the last axis averaged); weights and the
    reduction by hand. It computes in the inputs' dtype (no `dtype=`)."""
    check(case)
    leaf = "logits" if case.from_logits else "probs"
    own = [f"apply_class_balancing=True, alpha={case.alpha!r}"] if case.alpha is not None else []
    options = ", ".join([*own, f"gamma={case.gamma!r}", f"from_logits={case.from_logits!r}"])
    if case.label_smoothing:
        options += f", label_smoothing={case.label_smoothing!r}"
    lines = [f"{leaf} = {_tensor('x', case)}", f"target = {_tensor('y' if case.labels is not None else 't', case)}"]
    lines += ["with tf.GradientTape() as tape:", f"    tape.watch({leaf})"]
    lines.append(f"    loss = tf.keras.losses.binary_focal_crossentropy(target, {leaf}, {options})")
    weights = sample_weights(case)
    if weights:
        lines.append(f"    loss = loss * {_tensor(weights, case)}  # per-sample weights, by hand")
    if case.normalizer is not None:
        lines.append(f"    loss = loss / {case.normalizer!r}  # the normalizer, by hand")
    lines += {"mean": ["    loss = tf.reduce_mean(loss)"], "sum": ["    loss = tf.reduce_sum(loss)"]}.get(case.reduction, [])
    lines += ["    total = tf.reduce_sum(loss)", f"grad = tape.gradient(total, {leaf})"]
    return "\n".join(lines)


def alpha_alone(case: Case) -> str:
    """The class with `alpha=` but without `apply_class_balancing=True`, as users write it: Keras ignores alpha."""
    if case.alpha is None:
        raise Unsupported("the case gives no alpha, so there is none for Keras to ignore")
    return keras_focal(case, balancing=False)


def alpha_alone_documented(case: Case) -> Knobs:
    """Keras's docstring: alpha is used only when apply_class_balancing is True."""
    return keras_documented(case).switched("balancing", None)


VARIANTS = [
    Variant("tensorflow", API, keras_focal, keras_documented, (family.NAME,)),
    Variant("tensorflow:functional", "tf.keras.losses.binary_focal_crossentropy", functional, keras_documented, (family.NAME,)),
    Variant("tensorflow:alpha_alone", f"{API}(alpha=...), balancing off", alpha_alone, alpha_alone_documented, (family.NAME,)),
]
