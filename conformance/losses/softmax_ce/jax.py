"""Softmax cross-entropy in JAX: optax's `softmax_cross_entropy_with_integer_labels` / `softmax_cross_entropy`
(default), optax's generic one-hot form with the mask by hand, and Keras 3's categorical losses on the JAX
backend (their documented knobs are Keras's: `losses/softmax_ce/tensorflow.py`). Each is one `jax.jit`
function of the arrays (the adapter's `jitted`).
"""

from __future__ import annotations

import functools
import re
from importlib import metadata

from conformance.adapters import Variant, moved, squeezed_labels
from conformance.adapters.jax import KERAS_HEAD, _array, _grad, _leaf, _positions_shape, _reduce, jitted
from conformance.adapters.tensorflow import keras_options
from conformance.cases import Case
from conformance.losses.softmax_ce import NAME
from conformance.losses.softmax_ce import tensorflow as keras_docs  # pure Python: Keras's documented knobs, shared
from conformance.reference import Knobs, mean_denominator

CE = (NAME,)


def _class_weights(case: Case, labels: str) -> str | None:
    """The per-position weight: class weight (of the label, or w . t for soft labels) x sample weight."""
    factors = []
    if case.weight is not None:
        w = _array("w", case)
        if case.labels is None:
            factors.append(f"jnp.tensordot({w}, t_, axes=([0], [{1 if optax_has_where() else -1}]))")  # w . t, per position
        else:
            factors.append(f"{w}[{labels}]")
    if case.sample_weight is not None:
        factors.append(_array(_positions_shape(case), case))
    return " * ".join(factors) or None


@functools.cache
def optax_has_where() -> bool:
    """Whether the installed optax's cross-entropies take `where=` (added in 0.2.4). Read from the package
    metadata: the parent builds the code and must not import optax."""
    try:
        found = metadata.version("optax")
    except metadata.PackageNotFoundError:
        return True
    parts = [int(p) for p in re.findall(r"\d+", found)[:3]]
    return tuple(parts + [0] * (3 - len(parts))) >= (0, 2, 4)


def _optax(case: Case, generic: bool) -> str:
    """optax's cross-entropy over the class axis 1 (`axis=` and `where=` since optax 0.2.4; an older optax
    gets the classes moved last and the ignored positions masked by hand)."""
    current = optax_has_where()
    axis = ", axis=1" if current else ""
    move = not current and moved(case)
    lines = squeezed_labels(case, "optax takes class indices without a trailing axis of 1")
    lines.append(f"{_leaf(case)} = {_array('x', case)}")
    ignore, eps = case.ignore_index, case.label_smoothing
    mask = None
    if case.labels is not None and ignore is not None:
        lines.append(f"mask = y != {ignore}")
        mask = "mask"
    safe = "y" if mask is None else "jnp.where(mask, y, 0)"
    if case.labels is None:
        lines.append(f"t_ = {_array('np.moveaxis(t, 1, -1)' if move else 't', case)}")
        if eps:
            lines.append(f"t_ = optax.smooth_labels(t_, {eps!r}{axis})  # (1 - a) * t + a / C")
    lines.append(f"def loss_fn({_leaf(case)}):")
    if not case.from_logits:
        lines.append(f"    logits = jnp.log({_leaf(case)})  # optax takes logits: log_softmax(log p) = log(p / sum p)")
    if move:
        lines.append("    logits = jnp.moveaxis(logits, 1, -1)  # this optax has no axis=: classes last")
    if case.labels is None:
        lines.append(f"    per = optax.losses.softmax_cross_entropy(logits, t_{axis})")
    elif generic or eps:
        lines.append(f"    labels = jax.nn.one_hot(y, {case.num_classes}, dtype=logits.dtype{axis})")
        if eps:
            lines.append(f"    labels = optax.smooth_labels(labels, {eps!r}{axis})  # (1 - a) * onehot + a / C")
        where = ", where=mask" if mask and not generic and current else ""
        lines.append(f"    per = optax.losses.softmax_cross_entropy(logits, labels{axis}{where})")
        if mask and not generic and not current:
            lines.append("    per = per * mask  # this optax has no where=: the mask by hand")
    elif mask and not current:
        lines.append(f"    per = optax.losses.softmax_cross_entropy_with_integer_labels(logits, {safe})")
        lines.append("    per = per * mask  # this optax has no where=: the mask by hand")
    else:
        where = ", where=mask" if mask else ""
        lines.append(f"    per = optax.losses.softmax_cross_entropy_with_integer_labels(logits, y{axis}{where})")
    weights = _class_weights(case, safe)
    if generic and mask:
        weights = " * ".join(f for f in (weights, "mask") if f)  # ignored positions weigh 0, by hand
        mask = None  # the mask is a weight: jnp.mean divides by every position
    lines += _reduce(case, weights, mask)
    return "\n".join(lines + _grad(case))


def optax_api(case: Case) -> str:
    return jitted(_optax(case, generic=False))


def optax_generic_api(case: Case) -> str:
    return jitted(_optax(case, generic=True))


def _own_denominator(case: Case, generic: bool) -> str:
    return "valid_count" if case.labels is not None and case.ignore_index is not None and not generic else "positions"


def _documented(case: Case, generic: bool) -> Knobs:
    return Knobs(
        weight_mode="from_label" if case.labels is None else "from_hard_label",
        weights_as_sample_weights=True,
        denominator=mean_denominator(case, _own_denominator(case, generic)),  # type: ignore[arg-type]
        empty_mean="nan",
        empty_batch="nan",
        probabilities="renormalise",
    )


def documented(case: Case) -> Knobs:
    """optax: per-position -sum q log_softmax; weights by hand (w[y], w . t for soft labels); mean =
    jnp.mean over positions, over the non-ignored ones with where=; 0/0 is NaN."""
    return _documented(case, generic=False)


def generic_documented(case: Case) -> Knobs:
    """The one-hot form with ignored positions masked by hand: jnp.mean divides by every position."""
    return _documented(case, generic=True)


def _keras_weights(case: Case, mask: bool) -> str | None:
    """As the tensorflow key: sample weight x class weight of the hard label (argmax for soft labels) x
    the non-ignored mask (left out where ignore_class masks)."""
    factors = []
    if case.sample_weight is not None:
        positions = (case.predictions.shape[0],) + case.predictions.shape[2:]
        factors.append(f"jnp.broadcast_to({_array(_positions_shape(case), case)}, {positions})")
    if case.weight is not None:
        w = _array("w", case)
        if case.labels is None:
            factors.append(f"{w}[jnp.argmax(t_, axis=-1)]")
        elif case.ignore_index is not None:
            factors.append(f"{w}[jnp.where(y != {case.ignore_index}, y, 0)]")
        else:
            factors.append(f"{w}[y]")
    if mask and case.ignore_index is not None and case.labels is not None:
        factors.append(f"(y != {case.ignore_index}).astype(jnp.{case.dtype})")
    return " * ".join(factors) or None


def _keras_call(case: Case, cls: str, options: str, target: str, weights: str | None, counted: str | None) -> list[str]:
    lines = [f"loss_obj = keras.losses.{cls}({options})", f"def loss_fn({_leaf(case)}):"]
    inputs = f"jnp.moveaxis({_leaf(case)}, 1, -1)  # Keras wants classes last" if moved(case) else _leaf(case)
    lines.append(f"    inputs = {inputs}")
    lines.append(f"    loss = loss_obj({target}, inputs" + (f", sample_weight={weights})" if weights else ")"))
    if case.reduction == "sum_by_nonzero_weights":
        nonzero = f"jnp.count_nonzero(jnp.ones_like(loss) * {counted})" if counted else "loss.size"
        lines.append(f"    loss = jnp.where({nonzero} > 0, jnp.sum(loss) / jnp.maximum({nonzero}, 1), 0.0)  # divide_no_nan")
    lines.append("    return loss")
    return lines


def keras_api(case: Case) -> str:
    head = [KERAS_HEAD, f"{_leaf(case)} = {_array('x', case)}"]
    sparse = case.labels is not None and not case.label_smoothing
    given, target = keras_docs.keras_sparse_labels(case) if sparse else ([], "y")
    head = given + squeezed_labels(case, "one_hot and the weights take class indices without a trailing axis of 1") + head
    if sparse:
        options = keras_options(case, "SparseCategoricalCrossentropy")
        call = _keras_call(case, "SparseCategoricalCrossentropy", options, target, _keras_weights(case, False), _keras_weights(case, True))
        return jitted("\n".join(head + call + _grad(case)))
    options = keras_options(case, "CategoricalCrossentropy")
    if case.labels is None:
        head.append(f"t_ = {_array('np.moveaxis(t, 1, -1)' if moved(case) else 't', case)}")
        target = "t_"
    else:
        target = f"jax.nn.one_hot(y, {case.num_classes}, dtype=jnp.{case.dtype})"
    weights = _keras_weights(case, True)
    return jitted("\n".join(head + _keras_call(case, "CategoricalCrossentropy", options, target, weights, weights) + _grad(case)))


def keras_documented(case: Case) -> Knobs | None:
    """As the tensorflow key, but with probabilities Keras's JAX backend renormalises then clips in
    SparseCategoricalCrossentropy too (keras/src/backend/jax/nn.py); the TensorFlow backend clips first."""
    knobs = keras_docs.documented(case)
    return None if knobs is None else knobs.switched("probabilities", "renormalise_then_clip")


VARIANTS = [
    Variant(
        "jax",
        "optax.losses.softmax_cross_entropy_with_integer_labels / softmax_cross_entropy (+ optax.smooth_labels)",
        optax_api,
        documented,
        CE,
    ),
    Variant(
        "jax:optax_generic", "optax.losses.softmax_cross_entropy (one-hot labels, mask by hand)", optax_generic_api, generic_documented, CE
    ),
    Variant(
        "jax:keras",
        "keras.losses.SparseCategoricalCrossentropy / CategoricalCrossentropy (JAX backend)",
        keras_api,
        keras_documented,
        CE,
    ),
]
