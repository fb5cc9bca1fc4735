"""KL divergence in JAX: optax (default), optax's log-target form, and Keras 3 on the JAX backend.

optax 0.2.8's `losses.kl_divergence(log_predictions, targets, axis, where)` sums
`targets * (where(targets == 0, 0, log targets) - log_predictions)` over `axis`: one value per position
(so a zero target against a -inf log-probability is 0 * inf = NaN); `kl_divergence_with_log_targets`
sums `exp(log_targets) * (log_targets - log_predictions)`. The reductions are by hand, as optax users
write them: `mean` is `jnp.mean` (the positions), `batchmean` the sum over N. Keras on JAX is the
`tensorflow` key's `KLDivergence` with `KERAS_BACKEND=jax` (set before keras is imported); gradients
by `jax.grad`.
"""

from __future__ import annotations

from conformance.adapters import Variant, moved
from conformance.adapters.jax import KERAS_HEAD, jitted
from conformance.cases import Case
from conformance.losses.kl_divergence import NAME, documented, sample_axes
from conformance.losses.kl_divergence.tensorflow import keras_documented, keras_options
from conformance.reference import Knobs

KL = (NAME,)
BY_HAND = {
    "none": "    return per",
    "mean": "    return jnp.mean(per)",
    "sum": "    return jnp.sum(per)",
    "batchmean": "    return jnp.sum(per) / per.shape[0]",
}


def _array(name: str, case: Case) -> str:
    return f"jnp.asarray({name}, dtype=jnp.bfloat16)" if case.dtype == "bfloat16" else f"jnp.asarray({name})"


def _leaf(case: Case) -> str:
    return "logits" if case.from_logits else "probs"


def _grad(case: Case) -> list[str]:
    leaf = _leaf(case)
    return [f"loss = loss_fn({leaf})", f"grad = jax.grad(lambda v: jnp.sum(loss_fn(v)))({leaf})"]


def _optax(case: Case, log_targets: bool) -> str:
    leaf = _leaf(case)
    log_probs = "jax.nn.log_softmax(logits, axis=1)" if case.from_logits else "jnp.log(probs)"
    if log_targets:
        call = "optax.losses.kl_divergence_with_log_targets(log_probs, jnp.log(target), axis=1)"
    else:
        call = "optax.losses.kl_divergence(log_probs, target, axis=1)"
    lines = [f"{leaf} = {_array('x', case)}", f"target = {_array('t', case)}", f"def loss_fn({leaf}):"]
    lines += [f"    log_probs = {log_probs}", f"    per = {call}  # one value per position"]
    if case.sample_weight is not None:
        lines.append(f"    per = per * {_array(sample_axes(case, per_position=True), case)}  # per-sample weights, by hand")
    return jitted("\n".join([*lines, BY_HAND[case.reduction], *_grad(case)]))


def optax_api(case: Case) -> str:
    return _optax(case, log_targets=False)


def optax_log_targets_api(case: Case) -> str:
    return _optax(case, log_targets=True)


def keras_api(case: Case) -> str:
    leaf = _leaf(case)
    target = _array("np.moveaxis(t, 1, -1)" if moved(case) else "t", case)
    lines = [KERAS_HEAD, f"{leaf} = {_array('x', case)}", f"target = {target}"]
    comment = "  # Keras has no batchmean: its default averages per-position sums" if case.reduction == "batchmean" else ""
    lines += [f"loss_obj = keras.losses.KLDivergence({keras_options(case)}){comment}", f"def loss_fn({leaf}):"]
    inputs = f"jnp.moveaxis({leaf}, 1, -1)  # Keras wants classes last" if moved(case) else leaf
    lines.append(f"    inputs = {inputs}")
    lines.append("    y_pred = jax.nn.softmax(inputs, axis=-1)" if case.from_logits else "    y_pred = inputs")
    weights = None
    if case.sample_weight is not None:
        positions = (case.predictions.shape[0],) + case.predictions.shape[2:]
        weights = f"jnp.broadcast_to({_array(sample_axes(case, per_position=True), case)}, {positions})"
    lines.append("    return loss_obj(target, y_pred" + (f", sample_weight={weights})" if weights else ")"))
    return jitted("\n".join(lines + _grad(case)))


def optax_documented(case: Case) -> Knobs:
    """optax docs: sum over `axis` of t (log t - log_predictions), t = 0 giving 0 log 0 = 0 (its
    where); the reductions by hand: jnp.mean over positions, the sum over N for batchmean."""
    return documented(case, mean="positions", batchmean="batch", zero_target="xlogy", unreduced="positions")


def log_targets_documented(case: Case) -> Knobs:
    """exp(log t) (log t - log_predictions): a zero target is NaN."""
    return documented(case, mean="positions", batchmean="batch", zero_target="log_target", unreduced="positions")


VARIANTS = [
    Variant("jax", "optax.losses.kl_divergence(log_softmax(x))", optax_api, optax_documented, KL),
    Variant("jax:log_target", "optax.losses.kl_divergence_with_log_targets", optax_log_targets_api, log_targets_documented, KL),
    Variant("jax:keras", "keras.losses.KLDivergence (JAX backend)", keras_api, keras_documented, KL),
]
