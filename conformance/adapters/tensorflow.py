"""TensorFlow adapter: Keras losses (default), `tf.nn`, `tf.compat.v1.losses`.

TensorFlow has no class-weight argument: class weights become `sample_weight = weight[label]` (what
`model.fit(class_weight=...)` does; the argmax class for soft labels), `mean` maps to Keras's
`sum_over_batch_size`, and tf.compat.v1's `mean` is its default `SUM_BY_NONZERO_WEIGHTS`. Keras losses
are given the case dtype (`dtype=`), since they otherwise compute in float32.
"""

from __future__ import annotations

from collections.abc import Callable

from conformance.adapters import Unsupported, Variant, is_bfloat16, kwargs, moved, squeezed_labels
from conformance.cases import Case
from conformance.reference import Knobs, mean_denominator, recipe_source

ORDER = 30
# names written before an issue number (#123) -> GitHub
REPOSITORIES = {"tensorflow": "tensorflow/tensorflow", "tf": "tensorflow/tensorflow", "keras": "keras-team/keras"}
SETUP = "import numpy as np\nimport tensorflow as tf"
CE, BCE = ("softmax_cross_entropy",), ("binary_cross_entropy",)
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


def _sparse(case: Case) -> bool:
    return case.labels is not None and not case.label_smoothing


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


def check_binary_keras(case: Case, instead: str) -> None:
    """What Keras's BinaryCrossentropy cannot express, on every backend (`instead`: where the
    framework's users go for a pos_weight)."""
    if case.pos_weight is not None:
        raise Unsupported(f"Keras BinaryCrossentropy has no pos_weight ({instead})")
    if case.weight is not None:
        raise Unsupported("Keras BinaryCrossentropy averages the last axis before sample_weight applies: no per-element weight")
    if case.sample_weight is not None and case.predictions.ndim < 2:
        raise Unsupported("Keras BinaryCrossentropy makes one value of a 1-D batch: no per-sample axis for sample_weight")


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


def _keras_empty_batch(case: Case) -> str:
    """Keras returns an empty batch unreduced; the sum_by_nonzero_weights recipe divides 0 by 0 -> 0."""
    return "zero" if case.reduction == "sum_by_nonzero_weights" else "unreduced"


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


def nn_sigmoid_documented(case: Case) -> Knobs:
    return Knobs(
        weights_as_sample_weights=True,
        denominator=mean_denominator(case, "positions"),  # type: ignore[arg-type]
        empty_mean="zero",
        empty_batch="zero",
    )


# ---------------------------------------------------------------- tf.compat.v1.losses


def _v1_reduction(case: Case) -> str:
    return f"tf.compat.v1.losses.Reduction.{V1_REDUCTIONS[case.reduction]}"


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
