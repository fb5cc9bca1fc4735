"""TensorFlow adapter: Keras `SparseCategoricalCrossentropy` / `CategoricalCrossentropy` (default) and
`tf.nn.softmax_cross_entropy_with_logits`.

TensorFlow has no class-weight argument: the default variant passes `sample_weight = weight[label]`
(what `model.fit(class_weight=...)` does; the argmax class for soft labels) and maps `mean` to Keras's
`sum_over_batch_size`.
"""

from __future__ import annotations

from conformance.adapters import Unsupported, Variant, kwargs, moved
from conformance.cases import Case
from conformance.reference import Knobs

SETUP = "import numpy as np\nimport tensorflow as tf"
REDUCTIONS = {"none": '"none"', "mean": '"sum_over_batch_size"', "sum": '"sum"'}


def version() -> dict[str, str]:
    import keras
    import tensorflow as tf

    return {"tensorflow": tf.__version__, "keras": keras.__version__}


def _tensor(name: str, case: Case) -> str:
    if case.dtype == "bfloat16":
        return f"tf.cast(tf.constant({name}), tf.bfloat16)"
    return f"tf.constant({name})"


def _sparse(case: Case) -> bool:
    return case.labels is not None and not case.label_smoothing


def _head(case: Case) -> list[str]:
    leaf = "logits" if case.from_logits else "probs"
    lines = [f"{leaf} = {_tensor('x', case)}", "with tf.GradientTape() as tape:", f"    tape.watch({leaf})"]
    if moved(case):
        lines.append(f"    inputs = tf.experimental.numpy.moveaxis({leaf}, 1, -1)  # Keras wants classes last")
    return lines


def _inputs(case: Case) -> str:
    return "inputs" if moved(case) else ("logits" if case.from_logits else "probs")


def _tail(case: Case) -> list[str]:
    leaf = "logits" if case.from_logits else "probs"
    return ["    total = tf.reduce_sum(loss)", f"grad = tape.gradient(total, {leaf})"]


def _sample_weight(case: Case) -> str | None:
    """weight[label] per position (argmax class for soft labels); ignored positions weigh 0."""
    if case.labels is None:
        return f"tf.gather({_tensor('w', case)}, tf.argmax({_soft(case)}, axis=-1))" if case.weight is not None else None
    if case.ignore_index is None:
        return f"tf.gather({_tensor('w', case)}, y)" if case.weight is not None else None
    keep = f"y != {case.ignore_index}"
    if _sparse(case):
        return f"tf.gather({_tensor('w', case)}, np.where({keep}, y, 0))" if case.weight is not None else None
    if case.weight is None:
        return f"tf.cast({keep}, tf.{case.dtype})"
    return f"tf.gather({_tensor('w', case)}, np.where({keep}, y, 0)) * tf.cast({keep}, tf.{case.dtype})"


def _soft(case: Case) -> str:
    return _tensor("np.moveaxis(t, 1, -1)" if moved(case) else "t", case)


def keras_api(case: Case) -> str:
    dtype = None if case.dtype == "float32" else repr(case.dtype)
    if _sparse(case):
        cls = "SparseCategoricalCrossentropy"
        options = kwargs(
            ("from_logits", repr(case.from_logits)),
            ("ignore_class", case.ignore_index),
            ("reduction", REDUCTIONS[case.reduction]),
            ("dtype", dtype),
        )
        target = "y"
    else:
        cls = "CategoricalCrossentropy"
        options = kwargs(
            ("from_logits", repr(case.from_logits)),
            ("label_smoothing", case.label_smoothing or None),
            ("reduction", REDUCTIONS[case.reduction]),
            ("dtype", dtype),
        )
        target = _soft(case) if case.labels is None else f"tf.one_hot(y, {case.num_classes}, dtype=tf.{case.dtype})"
    weight = _sample_weight(case)
    call = f"loss_fn({target}, {_inputs(case)}" + (f", sample_weight={weight})" if weight else ")")
    return "\n".join(
        _head(case) + [f"    loss_fn = tf.keras.losses.{cls}({options})", f"    loss = {call}"] + _tail(case)
    )


def nn_api(case: Case) -> str:
    """tf.nn.softmax_cross_entropy_with_logits: per position only; reductions and weights by hand."""
    if not case.from_logits:
        raise Unsupported("tf.nn.softmax_cross_entropy_with_logits takes logits, not probabilities")
    if case.weight is not None:
        raise Unsupported("tf.nn.softmax_cross_entropy_with_logits has no class weights")
    if case.ignore_index is not None:
        raise Unsupported("tf.nn.softmax_cross_entropy_with_logits has no ignore_index")
    lines = _head(case)
    if case.labels is not None:
        lines.append(f"    labels = tf.one_hot(y, {case.num_classes}, dtype=tf.{case.dtype})")
    else:
        lines.append(f"    labels = {_soft(case)}")
    if case.label_smoothing:
        eps = case.label_smoothing
        lines.append(f"    labels = labels * (1 - {eps!r}) + {eps!r} / {case.num_classes}  # tf.nn has no smoothing")
    lines.append(f"    loss = tf.nn.softmax_cross_entropy_with_logits(labels=labels, logits={_inputs(case)})")
    if case.reduction == "mean":
        lines.append("    loss = tf.reduce_mean(loss)")
    elif case.reduction == "sum":
        lines.append("    loss = tf.reduce_sum(loss)")
    return "\n".join(lines + _tail(case))


def documented(case: Case) -> Knobs:
    """Keras docs: sample_weight multiplies each position's loss (here weight of the hard label);
    sum_over_batch_size divides by the number of positions, or by the unmasked ones with ignore_class;
    divide_no_nan -> 0; probabilities: CCE renormalises then clips to [1e-7, 1-1e-7], SCCE clips first."""
    masked = _sparse(case) and case.ignore_index is not None
    return Knobs(
        weight_mode="from_hard_label",
        denominator="valid_count" if masked else "positions",
        empty_mean="zero",
        probabilities="clip_then_renormalise" if _sparse(case) else "renormalise_then_clip",
    )


def nn_documented(case: Case) -> Knobs:
    return Knobs(denominator="positions")


VARIANTS = [
    Variant("tensorflow", "tf.keras.losses.SparseCategoricalCrossentropy / CategoricalCrossentropy", keras_api, documented),
    Variant("tensorflow:nn", "tf.nn.softmax_cross_entropy_with_logits", nn_api, nn_documented),
]


def to_numpy(value: object) -> tuple[object, str]:
    import numpy as np

    return np.asarray(value.numpy(), dtype=np.float64), value.dtype.name  # type: ignore[attr-defined]
