"""TensorFlow adapter: what is TensorFlow's own, whatever the loss family; the native calls (Keras
losses, `tf.nn`, `tf.compat.v1.losses`) of each family are in its package (`conformance/losses/<family>/tensorflow.py`),
written with the helpers here (Keras's options and call, the weights and reductions by hand, tf.compat.v1's
documented knobs, which both of its cross-entropies share).

TensorFlow has no class-weight argument: class weights become `sample_weight = weight[label]` (what
`model.fit(class_weight=...)` does; the argmax class for soft labels), `mean` maps to Keras's
`sum_over_batch_size`, and tf.compat.v1's `mean` is its default `SUM_BY_NONZERO_WEIGHTS`. Keras losses
are given the case dtype (`dtype=`), since they otherwise compute in float32.
"""

from __future__ import annotations

from collections.abc import Callable

from conformance.adapters import is_bfloat16, kwargs, moved, squeezed_labels
from conformance.cases import Case
from conformance.reference import Knobs, mean_denominator, recipe_source

ORDER = 30
# names written before an issue number (#123) -> GitHub
REPOSITORIES = {"tensorflow": "tensorflow/tensorflow", "tf": "tensorflow/tensorflow", "keras": "keras-team/keras"}
SETUP = "import numpy as np\nimport tensorflow as tf"
KERAS_REDUCTIONS = {
    "none": '"none"',
    "mean": '"sum_over_batch_size"',
    "sum": '"sum"',
    "sum_over_batch_size": '"sum_over_batch_size"',
    "mean_with_sample_weight": '"mean_with_sample_weight"',
}
V1_REDUCTIONS = {
    "none": "NONE",
    "sum": "SUM",
    "mean": "SUM_BY_NONZERO_WEIGHTS",
    "sum_over_batch_size": "SUM_OVER_BATCH_SIZE",
    "mean_with_sample_weight": "MEAN",
    "sum_by_nonzero_weights": "SUM_BY_NONZERO_WEIGHTS",
}
# Reductions by hand divide with divide_no_nan, as Keras and tf.compat.v1 do: 0/0 is 0.
BY_HAND = {
    "sum": "loss = tf.reduce_sum(loss)",
    "mean": "loss = tf.math.divide_no_nan(tf.reduce_sum(loss), tf.cast(tf.size(loss), loss.dtype))",
    "sum_over_batch_size": "loss = tf.math.divide_no_nan(tf.reduce_sum(loss), tf.cast(tf.size(loss), loss.dtype))",
    "mean_with_sample_weight": "loss = tf.math.divide_no_nan(tf.reduce_sum(loss), tf.reduce_sum(weights))",
    "sum_by_nonzero_weights": "loss = tf.math.divide_no_nan(tf.reduce_sum(loss), tf.cast(tf.math.count_nonzero(weights), loss.dtype))",
}


def version() -> dict[str, str]:
    import keras
    import tensorflow as tf

    return {"tensorflow": str(tf.__version__), "keras": str(keras.__version__)}


def to_numpy(value: object) -> tuple[object, str]:
    import numpy as np

    return np.asarray(value.numpy(), dtype=np.float64), value.dtype.name  # type: ignore[attr-defined]


def _tensor(name: str, case: Case) -> str:
    if is_bfloat16(case, name):
        return f"tf.cast(tf.constant({name}), tf.bfloat16)"
    return f"tf.constant({name})"


def _leaf(case: Case) -> str:
    return "logits" if case.from_logits else "probs"


def _head(case: Case) -> list[str]:
    lines = squeezed_labels(case, "tf.nn, tf.one_hot and tf.gather take class indices without a trailing axis of 1")
    lines += [f"{_leaf(case)} = {_tensor('x', case)}", "with tf.GradientTape() as tape:", f"    tape.watch({_leaf(case)})"]
    if moved(case):
        lines.append(f"    inputs = tf.experimental.numpy.moveaxis({_leaf(case)}, 1, -1)  # TensorFlow wants classes last")
    return lines


def _inputs(case: Case) -> str:
    return "inputs" if moved(case) else _leaf(case)


def _tail(case: Case) -> list[str]:
    return ["    total = tf.reduce_sum(loss)", f"grad = tape.gradient(total, {_leaf(case)})"]


def _soft(case: Case) -> str:
    return _tensor("np.moveaxis(t, 1, -1)" if moved(case) else "t", case)


def _keras_dtype(case: Case) -> str | None:
    return None if case.dtype == "float32" else repr(case.dtype)


def keras_options(case: Case, loss: str) -> str:
    """The arguments of Keras's loss class `loss` for the case, whatever the backend (TensorFlow here,
    JAX in the jax adapter): Keras 3 takes the same ones on every backend."""
    return kwargs(
        ("from_logits", repr(case.from_logits)),
        ("ignore_class", case.ignore_index if loss == "SparseCategoricalCrossentropy" else None),
        ("label_smoothing", case.label_smoothing or None if loss != "SparseCategoricalCrossentropy" else None),
        ("reduction", _keras_reduction(case)),
        ("dtype", _keras_dtype(case)),
    )


def _keras_call(case: Case, cls: str, options: str, target: str, weights: str | None, counted: str | None) -> list[str]:
    """A Keras loss call with `weights` as sample_weight. Keras has no sum_by_nonzero_weights: that one
    is reduction='none', then / the number of non-zero `counted` weights, by hand."""
    lines = [f"    weights = {weights}"] if weights else []
    lines.append(f"    loss_fn = tf.keras.losses.{cls}({options})")
    lines.append(f"    loss = loss_fn({target}, {_inputs(case)}" + (", sample_weight=weights)" if weights else ")"))
    if case.reduction == "sum_by_nonzero_weights":
        nonzero = f"tf.math.count_nonzero(tf.ones_like(loss) * {counted})" if counted else "tf.size(loss)"
        lines.append(f"    loss = tf.math.divide_no_nan(tf.reduce_sum(loss), tf.cast({nonzero}, loss.dtype))")
    return lines


def _keras_reduction(case: Case) -> str:
    return '"none"' if case.reduction == "sum_by_nonzero_weights" else KERAS_REDUCTIONS[case.reduction]


# ---------------------------------------------------------------- Keras


def _keras_empty_batch(case: Case) -> str:
    """Keras returns an empty batch unreduced; the sum_by_nonzero_weights recipe divides 0 by 0 -> 0."""
    return "zero" if case.reduction == "sum_by_nonzero_weights" else "unreduced"


# ---------------------------------------------------------------- tf.nn


def _by_hand(case: Case, weights: str | None) -> list[str]:
    """Weights and the reduction by hand, for APIs that return per-position values."""
    lines = []
    if weights:
        lines += [f"    weights = tf.ones_like(loss) * {weights}", "    loss = loss * weights"]
    else:
        lines.append("    weights = tf.ones_like(loss)")
    if case.reduction == "none":
        return lines
    if case.reduction == "mean" and case.ignore_index is not None and case.labels is not None:
        mask = f"tf.cast(y != {case.ignore_index}, loss.dtype)"
        return lines + [f"    loss = tf.math.divide_no_nan(tf.reduce_sum(loss), tf.reduce_sum({mask}))  # mean over non-ignored positions"]
    return lines + ["    " + BY_HAND[case.reduction]]


# ---------------------------------------------------------------- tf.compat.v1.losses


def _v1_reduction(case: Case) -> str:
    return f"tf.compat.v1.losses.Reduction.{V1_REDUCTIONS[case.reduction]}"


def v1_documented(case: Case) -> Knobs:
    """tf.compat.v1 docs: weights multiply each position's loss; the default reduction divides by the
    number of non-zero weights; div_no_nan -> 0 (computed in float32 whatever the input dtype)."""
    return Knobs(
        weight_mode="from_hard_label",
        weights_as_sample_weights=True,
        denominator=mean_denominator(case, "nonzero_weight"),  # type: ignore[arg-type]
        empty_mean="zero",
        empty_batch="zero",
    )


def recipe(case: Case, knobs: Knobs) -> str | None:
    """TensorFlow reproducing another framework's semantics: the cross-entropy with the target T
    (classes last), sum(T * -log_softmax), summed and divided by D by hand. Written out with
    tf.nn.log_softmax rather than tf.nn.softmax_cross_entropy_with_logits: the same values, and in eager
    mode a fifth of the time (the latter reshapes and slices its inputs on every call). On
    probabilities, sum(T * -log r) with r formed as the other framework does (the family's
    `probability_recipe`, in `OPS`)."""
    source = recipe_source(case, knobs, probabilities=True)
    if source is None or case.dtype == "bfloat16":
        return None
    reduce = {"none": [], "sum": ["loss = tf.reduce_sum(loss)"]}.get(case.reduction, ["loss = tf.reduce_sum(loss) / D"])
    if not case.from_logits:
        return "\n".join(source + case.family.probability_recipe(OPS, case, knobs) + reduce)
    lines = source + [f"logits = {_tensor('x', case)}"]
    inputs = "tf.experimental.numpy.moveaxis(logits, 1, -1)" if moved(case) else "logits"
    if knobs.logit_floor:
        inputs = f"tf.maximum({inputs} - tf.reduce_max({inputs}, axis=-1, keepdims=True), -{knobs.logit_floor:g})"
    lines.append(f"loss = -tf.reduce_sum(tf.constant(T, dtype=logits.dtype) * tf.nn.log_softmax({inputs}), axis=-1)")
    return "\n".join(lines + reduce)


def user_body(case: Case, call: Callable[[str, str, Callable[[str], str]], str], class_axis: int = -1) -> str:
    """A user's function run as a variant (`conformance.user`): the predictions as the default variant
    gets them (classes last; `class_axis=1`: left second, as a function written for torch's layout wants
    them), watched by the tape (the gradient is w.r.t. the case's layout); the targets (class indices;
    probabilities in the same layout; binary targets); `call` writes the import and the call."""
    last = class_axis == -1
    if case.labels is not None:
        target = "tf.constant(y)" if case.family.INDEX_LABELS else _tensor("y", case)
    else:
        target = _soft(case) if case.family.CLASS_AXIS is not None and last else _tensor("t", case)
    head = _head(case) if last else [line for line in _head(case) if "inputs = " not in line]
    body = call(_inputs(case) if last else _leaf(case), target, lambda name: _tensor(name, case))
    return "\n".join(head + ["    " + line for line in body.splitlines()] + _tail(case))


OPS = {  # TensorFlow's ops, for the loss families that write their recipes in any framework's ops (`native_recipe`)
    "tensor": "tf.constant({})",
    "bfloat16": "tf.cast({}, tf.bfloat16)",
    "log": "tf.math.log({})",
    "log1p": "tf.math.log1p({})",
    "exp": "tf.exp({})",
    "abs": "tf.abs({})",
    "relu": "tf.nn.relu({})",
    "sigmoid": "tf.sigmoid({})",
    "log_softmax": "tf.nn.log_softmax({}, axis=1)",
    "max1": "tf.reduce_max({}, axis=1, keepdims=True)",
    "clip": "tf.clip_by_value({}, {}, {})",
    "at_least": "tf.maximum({}, {})",
    "where": "tf.where({}, {}, {})",
    "ones_like": "tf.ones_like({})",
    "zeros_like": "tf.zeros_like({})",
    "sum1": "tf.reduce_sum({}, axis=1)",
    "sum1_keep": "tf.reduce_sum({}, axis=1, keepdims=True)",
    "mean_last": "tf.reduce_mean({}, axis=-1)",
    "sum": "tf.reduce_sum({})",
}
