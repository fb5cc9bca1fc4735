"""KL divergence in TensorFlow: Keras `KLDivergence` (default) and the functional `keras.losses.kl_divergence`.

Keras takes probabilities, classes last: `softmax(x, axis=-1)` for logits, `p` as given. It clips both
`y_true` and `y_pred` to [epsilon, 1] (epsilon 1e-7) and sums `y_true * log(y_true / y_pred)` over the
last axis: one value per position. Its reductions: `mean` is `sum_over_batch_size` (the number of
positions); it has no `batchmean` (ValueError), and its default, the per-position sums averaged over the
positions, is what Keras users write for it (the same as torch's on (N, C), not on K-dim). The functional
form returns the per-position values; its reductions are by hand (`batchmean`: the sum over N).
"""

from __future__ import annotations

from conformance.adapters import Variant, kwargs, moved
from conformance.cases import Case
from conformance.losses.kl_divergence import NAME, documented, sample_axes
from conformance.reference import Knobs

KL = (NAME,)
KERAS_REDUCTIONS = {"none": "none", "mean": "sum_over_batch_size", "sum": "sum", "batchmean": "sum_over_batch_size"}
BY_HAND = {
    "mean": "loss = tf.reduce_mean(per)",
    "sum": "loss = tf.reduce_sum(per)",
    "batchmean": "loss = tf.reduce_sum(per) / per.shape[0]",
    "none": "loss = per",
}


def _tensor(name: str, case: Case) -> str:
    return f"tf.cast(tf.constant({name}), tf.bfloat16)" if case.dtype == "bfloat16" else f"tf.constant({name})"


def _leaf(case: Case) -> str:
    return "logits" if case.from_logits else "probs"


def _head(case: Case) -> list[str]:
    leaf = _leaf(case)
    target = _tensor("np.moveaxis(t, 1, -1)" if moved(case) else "t", case)
    lines = [f"{leaf} = {_tensor('x', case)}", f"target = {target}", "with tf.GradientTape() as tape:", f"    tape.watch({leaf})"]
    inputs = leaf
    if moved(case):
        lines.append(f"    inputs = tf.experimental.numpy.moveaxis({leaf}, 1, -1)  # Keras wants classes last")
        inputs = "inputs"
    if case.from_logits:
        return lines + [f"    y_pred = tf.nn.softmax({inputs}, axis=-1)"]
    return lines + [f"    y_pred = {inputs}"]


def _weights(case: Case) -> str | None:
    """Per-sample weights spread over a sample's positions (Keras would broadcast (N,) against the last axis)."""
    if case.sample_weight is None:
        return None
    positions = (case.predictions.shape[0],) + case.predictions.shape[2:]
    return f"tf.broadcast_to({_tensor(sample_axes(case, per_position=True), case)}, {positions})"


def _tail(case: Case) -> list[str]:
    return ["    total = tf.reduce_sum(loss)", f"grad = tape.gradient(total, {_leaf(case)})"]


def keras_options(case: Case) -> str:
    """KLDivergence's arguments: the reduction and, off float32, the case dtype (Keras computes in
    float32 otherwise). `batchmean` runs as Keras's default, sum_over_batch_size."""
    return kwargs(("reduction", repr(KERAS_REDUCTIONS[case.reduction])), ("dtype", None if case.dtype == "float32" else repr(case.dtype)))


def keras_api(case: Case) -> str:
    weights = _weights(case)
    comment = "  # Keras has no batchmean: its default averages per-position sums" if case.reduction == "batchmean" else ""
    call = "    loss = loss_fn(target, y_pred" + (f", sample_weight={weights})" if weights else ")")
    lines = [f"    loss_fn = tf.keras.losses.KLDivergence({keras_options(case)}){comment}", call]
    return "\n".join(_head(case) + lines + _tail(case))


def functional_api(case: Case) -> str:
    lines = ["    per = keras.losses.kl_divergence(target, y_pred)  # one value per position"]
    weights = _weights(case)
    if weights:
        lines.append(f"    per = per * {weights}  # per-sample weights, by hand")
    lines.append("    " + BY_HAND[case.reduction])
    head = _head(case)
    return "\n".join(["import keras", *head, *lines, *_tail(case)])


def keras_documented(case: Case) -> Knobs:
    """Keras docs: y_true and y_pred clipped to [epsilon, 1], y_true log(y_true / y_pred) summed over the
    last axis; sum_over_batch_size divides by the positions, `none` gives the per-position values. An
    empty batch comes back unreduced (an empty array, measured), as Keras's cross-entropies do."""
    knobs = dict(clip_predictions=True, zero_target="clipped", unreduced="positions", empty_batch="unreduced")
    return documented(case, mean="positions", batchmean="positions", **knobs)


def functional_documented(case: Case) -> Knobs:
    """The same per-position values; `mean` is reduce_mean (positions), `batchmean` the sum over N by hand."""
    return documented(case, mean="positions", batchmean="batch", clip_predictions=True, zero_target="clipped", unreduced="positions")


VARIANTS = [
    Variant("tensorflow", "tf.keras.losses.KLDivergence(softmax(x))", keras_api, keras_documented, KL),
    Variant("tensorflow:functional", "keras.losses.kl_divergence (TensorFlow backend)", functional_api, functional_documented, KL),
]
