"""Sigmoid focal loss in JAX: optax's `sigmoid_focal_loss` (default) and Keras's BinaryFocalCrossentropy on
the JAX backend.

optax 0.2.8: `optax.losses.sigmoid_focal_loss(logits, labels, *, alpha=None, gamma=2.0)` returns one value
per element (alpha None: no balancing; soft labels since 0.2.5); the reduction, per-sample weights,
smoothing and the normalizer are the idiomatic recipe by hand, `jnp.mean` over every element. Logits only.

Keras on JAX computes the BCE of sigmoid(x) clipped to [epsilon, 1 - epsilon] even from logits (the JAX
backend has no logits behind its sigmoid, unlike the TensorFlow backend): past |x| of about 16 in float32
its loss stops growing and its gradient is 0 (`sigmoid_clip`).
"""

from __future__ import annotations

from conformance.adapters import Unsupported, Variant, batch_shape
from conformance.adapters.jax import KERAS_HEAD, jitted
from conformance.cases import Case
from conformance.losses import sigmoid_focal as family
from conformance.losses.sigmoid_focal import tensorflow as keras_focal
from conformance.reference import Knobs

API = "optax.losses.sigmoid_focal_loss"


def _array(name: str, case: Case) -> str:
    return f"jnp.asarray({name}, dtype=jnp.bfloat16)" if case.dtype == "bfloat16" else f"jnp.asarray({name})"


def _grad(leaf: str) -> list[str]:
    return [f"loss = loss_fn({leaf})", f"grad = jax.grad(lambda v: jnp.sum(loss_fn(v)))({leaf})"]


def optax_focal(case: Case) -> str:
    if not case.from_logits:
        raise Unsupported(f"{API} takes logits, not probabilities")
    lines = [f"logits = {_array('x', case)}", f"target = {_array('y' if case.labels is not None else 't', case)}"]
    if case.label_smoothing:
        eps = case.label_smoothing
        lines.append(f"target = target * (1 - {eps!r}) + 0.5 * {eps!r}  # optax has no smoothing here: Keras's transform")
    call = f"optax.losses.sigmoid_focal_loss(logits, target, alpha={case.alpha!r}, gamma={case.gamma!r})"
    lines += ["def loss_fn(logits):", f"    per = {call}"]
    if case.sample_weight is not None:
        lines.append(f"    per = per * {_array(batch_shape(case), case)}  # per-sample weights, by hand")
    if case.normalizer is not None:
        lines.append(f"    per = per / {case.normalizer!r}  # the normalizer, by hand")
    lines.append({"none": "    return per", "sum": "    return jnp.sum(per)"}.get(case.reduction, "    return jnp.mean(per)"))
    return jitted("\n".join(lines + _grad("logits")))


def optax_documented(case: Case) -> Knobs:
    """optax's formula per element (alpha None: no balancing), jnp.mean over every element."""
    return family.documented(case)


def keras_jax_focal(case: Case) -> str:
    keras_focal.check(case)
    leaf = "logits" if case.from_logits else "probs"
    lines = [KERAS_HEAD, f"{leaf} = {_array('x', case)}", f"target = {_array('y' if case.labels is not None else 't', case)}"]
    lines.append(f"loss_obj = keras.losses.BinaryFocalCrossentropy({keras_focal.focal_options(case)})")
    weights = keras_focal.sample_weights(case)
    if weights:
        lines.append(f"weights = jnp.broadcast_to({_array(weights, case)}, {case.predictions.shape[:-1]})")
    lines += [f"def loss_fn({leaf}):", f"    loss = loss_obj(target, {leaf}" + (", sample_weight=weights)" if weights else ")")]
    if case.normalizer is not None:
        lines.append(f"    loss = loss / {case.normalizer!r}  # the normalizer, by hand")
    lines.append("    return loss")
    return jitted("\n".join(lines + _grad(leaf)))


def keras_jax_documented(case: Case) -> Knobs:
    """As Keras on TensorFlow, but sigmoid(x) is clipped before its logs even from logits."""
    return keras_focal.keras_documented(case, sigmoid_clip=True)


VARIANTS = [
    Variant("jax", API, optax_focal, optax_documented, (family.NAME,)),
    Variant("jax:keras", "keras.losses.BinaryFocalCrossentropy (JAX backend)", keras_jax_focal, keras_jax_documented, (family.NAME,)),
]
