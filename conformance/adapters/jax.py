"""JAX adapter: optax's losses (default), optax's generic one-hot form, and Keras 3 on the JAX backend.

optax returns per-position losses only: class weights, per-sample weights and the reductions are the
idiomatic recipe by hand (per-position loss, times the weights, then `jnp.sum` / `jnp.mean`), shown in
the snippet. So `mean` is `jnp.mean` of the weighted per-position losses: the number of positions is the
denominator (the non-ignored ones where `ignore_index` goes through optax's `where=`), not torch's sum
of target weights. Gradients are `jax.grad` w.r.t. the predictions. The worker enables `jax_enable_x64`
(in `SETUP`, before any array exists) so float64 cases compute in float64; Keras gets
`KERAS_BACKEND=jax` before it is imported (in `version()` and in its snippets). jax, optax and keras are
imported only inside the worker, never here.
"""

from __future__ import annotations

import functools
import re
import textwrap
from collections.abc import Callable
from importlib import metadata
from typing import Any

from conformance.adapters import Unsupported, Variant, is_bfloat16, moved, squeezed_labels
from conformance.adapters import tensorflow as keras_docs  # pure Python: Keras's documented knobs, shared
from conformance.cases import Case
from conformance.reference import Knobs, mean_denominator, recipe_source

ORDER = 40
REPOSITORIES = {"jax": "jax-ml/jax", "optax": "google-deepmind/optax"}  # names written before an issue number (#123) -> GitHub
SETUP = (
    "import numpy as np\n"
    "import jax\n"
    'jax.config.update("jax_enable_x64", True)  # float64 cases compute in float64\n'
    "import jax.numpy as jnp\n"
    "import optax"
)
CE, BCE = ("softmax_cross_entropy",), ("binary_cross_entropy",)
KERAS_HEAD = 'import os\nos.environ["KERAS_BACKEND"] = "jax"  # before keras is imported\nimport keras'


def version() -> dict[str, str]:
    """Versions read from the installed metadata, so keras is not imported (seconds) unless a case uses it."""
    import os
    from importlib import metadata

    os.environ["KERAS_BACKEND"] = "jax"  # the Keras variant must find the JAX backend, whatever the parent said
    import jax
    import optax

    found = {"jax": str(jax.__version__), "jaxlib": metadata.version("jaxlib"), "optax": str(optax.__version__)}
    try:
        found["keras"] = metadata.version("keras")
    except metadata.PackageNotFoundError:
        pass
    return found


def to_numpy(value: object) -> tuple[object, str]:
    import numpy as np

    return np.asarray(value, dtype=np.float64), str(value.dtype)  # type: ignore[attr-defined]


def _array(name: str, case: Case) -> str:
    return f"jnp.asarray({name}, dtype=jnp.bfloat16)" if is_bfloat16(case, name) else f"jnp.asarray({name})"


def _leaf(case: Case) -> str:
    return "logits" if case.from_logits else "probs"


def _positions_shape(case: Case) -> str:
    """sw broadcast over a sample's positions ((N,) -> (N, 1, ...)), to multiply a per-position loss."""
    family_axes = 0 if case.family.CLASS_AXIS is None else 1
    trailing = case.predictions.ndim - 1 - family_axes
    return "sw" + ("[:, " + ", ".join(["None"] * trailing) + "]" if trailing > 0 else "")


def _grad(case: Case) -> list[str]:
    return [f"loss = loss_fn({_leaf(case)})", f"grad = jax.grad(lambda v: jnp.sum(loss_fn(v)))({_leaf(case)})"]


def _reduce(case: Case, weights: str | None, mask: str | None) -> list[str]:
    """Weights, then the reduction by hand. `mean` is jnp.mean over positions, over the non-ignored ones
    (jnp.mean's `where=`) when a mask is given; the explicit reductions divide by the applied weights."""
    lines = []
    if weights:
        lines += [f"    weights = {weights}", "    per = per * weights"]
    reduction = case.reduction
    if reduction == "none":
        return lines + ["    return per"]
    if reduction == "sum":
        return lines + ["    return jnp.sum(per)"]
    if reduction == "mean":
        where = f", where={mask}" if mask else ""
        return lines + [f"    return jnp.mean(per{where})"]
    if reduction == "sum_over_batch_size":
        return lines + ["    return jnp.sum(per) / per.size"]
    applied = "weights" if weights else "jnp.ones_like(per)"
    if mask:  # the applied weights of the non-ignored positions only
        applied += f" * {mask}"
    if reduction == "mean_with_sample_weight":
        return lines + [f"    return jnp.sum(per) / jnp.sum({applied})"]
    return lines + [f"    return jnp.sum(per) / jnp.count_nonzero({applied})"]


# ---------------------------------------------------------------- optax, softmax cross-entropy


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


# ---------------------------------------------------------------- optax, binary cross-entropy


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


# ---------------------------------------------------------------- Keras 3 on the JAX backend


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
        options = keras_docs.keras_options(case, "SparseCategoricalCrossentropy")
        call = _keras_call(case, "SparseCategoricalCrossentropy", options, target, _keras_weights(case, False), _keras_weights(case, True))
        return jitted("\n".join(head + call + _grad(case)))
    options = keras_docs.keras_options(case, "CategoricalCrossentropy")
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


def keras_binary(case: Case) -> str:
    keras_docs.check_binary_keras(case, "optax has none either")
    options = keras_docs.keras_options(case, "BinaryCrossentropy")
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


# ---------------------------------------------------------------- compiled once per shape


def jitted(body: str) -> str:
    """A variant's code as a JAX user runs it at scale: everything that touches the arrays inside one
    `@jax.jit` function of them, so XLA compiles the loss and its gradient as one program per input shape
    and dtype and every later call with those shapes reuses it. Run line by line instead, JAX compiles
    each primitive anew for every new shape (about 30 small programs per case, its forward pass and
    gradient) and keeps them all: a second per case and gigabytes at a few hundred shapes. The Keras
    imports stay outside the function. The values are those of the compiled program (XLA fuses the
    loss and its reduction: on some float32 losses the last bit differs from op-by-op dispatch), and the
    snippet shows and reproduces exactly that."""
    head = ""
    if KERAS_HEAD in body:
        body, head = body.replace(KERAS_HEAD + "\n", ""), KERAS_HEAD + "\n"
    read = set(re.findall(r"[A-Za-z_]\w*", body))
    names = ", ".join(name for name in ARGUMENTS if name in read)
    inner = textwrap.indent(body, "    ")
    decorator = "@jax.jit  # one program per input shape and dtype, compiled at its first call"
    return f"{head}{decorator}\ndef loss_and_grad({names}):\n{inner}\n    return loss, grad\nloss, grad = loss_and_grad({names})"


ARGUMENTS = ("x", "y", "t", "w", "pw", "sw")
"""The arrays a variant reads (`adapters.arrays`), in the order `jitted` passes them."""


class Runner:
    """Runs the code in the worker (`exec`), with `jax.jit` remembered: the same function (same code,
    no closure, every global it reads a module) jitted again, as every case's snippet does, is the
    function jitted the first time, so JAX's own cache (one compiled program per input shapes and dtypes)
    serves every later case and knob point with that code. What a snippet shows is what runs; only a new
    `jax.jit` per case, which would compile its program anew each time, is avoided. Every program XLA
    compiles in the worker is counted (JAX's compile events: the variants' and the op-by-op recipes'); past
    `LIMIT` JAX's caches are emptied (`jax.clear_caches`), so memory stays bounded on a file of ever new
    shapes (a loss-and-gradient program holds about 2 MB)."""

    LIMIT = 256

    def __init__(self, namespace: dict[str, Any]) -> None:
        import jax

        self.jax = jax
        self.functions: dict[Any, Any] = {}
        self.programs = 0
        """Programs compiled since the caches were last emptied."""
        self.compiled = 0
        """Programs compiled in all."""
        jax.monitoring.register_event_duration_secs_listener(self._compiled)
        namespace["jax"] = _Remembering(jax, self)

    def _compiled(self, event: str, *args: Any, **kwargs: Any) -> None:
        if event == "/jax/core/compile/backend_compile_duration":
            self.programs += 1
            self.compiled += 1

    def run(self, code: Any, scope: dict[str, Any]) -> None:
        """`exec(code, scope)`, then the caches emptied if they hold more than `LIMIT` programs."""
        try:
            exec(code, scope)
        finally:
            if self.programs > self.LIMIT:
                self.functions.clear()
                self.jax.clear_caches()
                self.programs = 0

    def jit(self, function: Any, **options: Any) -> Any:
        """`jax.jit(function, **options)`, the same object for the same code where that is safe."""
        code = getattr(function, "__code__", None)
        if code is None or code.co_freevars or options or not _reads_only_modules(code, function.__globals__):
            return self.jax.jit(function, **options)
        if code not in self.functions:
            self.functions[code] = self.jax.jit(function)
        return self.functions[code]


class _Remembering:
    """`jax` as the worker's code sees it: the module, with `jit` going through `Runner.jit`."""

    def __init__(self, module: Any, runner: Runner) -> None:
        self._module, self._runner = module, runner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module, name)

    def jit(self, function: Any = None, **options: Any) -> Any:
        if function is None:
            return lambda f: self._runner.jit(f, **options)
        return self._runner.jit(function, **options)


def _reads_only_modules(code: Any, scope: dict[str, Any]) -> bool:
    """Whether every global a function's code (nested functions included) reads is a module: then the
    arrays and everything else that differs between cases reach it as arguments."""
    from types import CodeType, ModuleType

    for name in code.co_names:
        if name in scope and not isinstance(scope[name], (ModuleType, _Remembering)):
            return False
    return all(_reads_only_modules(const, scope) for const in code.co_consts if isinstance(const, CodeType))


# ---------------------------------------------------------------- recipes


def recipe(case: Case, knobs: Knobs) -> str | None:
    """JAX reproducing another framework's semantics: optax.losses.softmax_cross_entropy with the target
    T (classes last), summed and divided by D by hand. On probabilities, sum(T * -log r) with r formed
    as the other framework does (the family's `probability_recipe`, in `OPS`)."""
    source = recipe_source(case, knobs, probabilities=True)
    if source is None or case.dtype == "bfloat16":
        return None
    reduce = {"none": [], "sum": ["loss = jnp.sum(loss)"]}.get(case.reduction, ["loss = jnp.sum(loss) / D"])
    if not case.from_logits:
        return "\n".join(source + case.family.probability_recipe(OPS, case, knobs) + reduce)
    lines = source + [f"logits = {_array('x', case)}"]
    inputs = "jnp.moveaxis(logits, 1, -1)" if moved(case) else "logits"
    if knobs.logit_floor:
        lines.append(f"z = {inputs}")
        lines.append(f"z = jnp.maximum(z - jnp.max(z, axis=-1, keepdims=True), -{knobs.logit_floor:g})  # paddle's softmax clip")
        inputs = "z"
    lines.append(f"loss = optax.losses.softmax_cross_entropy({inputs}, jnp.asarray(T, dtype=logits.dtype))")
    return "\n".join(lines + reduce)


def user_body(case: Case, call: Callable[[str, str, Callable[[str], str]], str], class_axis: int = 1) -> str:
    """A user's function run as a variant (`conformance.user`): the predictions as the default (optax)
    variant gets them (class axis 1, as in the case; `class_axis=-1`: moved last, as Keras and flax users
    write them), the targets (class indices; probabilities in the same layout, or binary targets in the
    case dtype); `call` writes the import and the call inside the function `jax.grad` differentiates, so
    the gradient is w.r.t. the predictions as for the native variants."""
    leaf = _leaf(case)
    last = class_axis == -1 and moved(case)
    if case.labels is not None:
        target = "jnp.asarray(y)" if case.family.INDEX_LABELS else _array("y", case)
    else:
        target = _array("np.moveaxis(t, 1, -1)" if last else "t", case)
    body = call(f"jnp.moveaxis({leaf}, 1, -1)" if last else leaf, target, lambda name: _array(name, case))
    inner = ["    " + line for line in body.splitlines()]
    return "\n".join([f"{leaf} = {_array('x', case)}", f"def loss_fn({leaf}):", *inner, "    return loss", *_grad(case)])


OPS = {  # JAX's ops, for the loss families that write their recipes in any framework's ops (`native_recipe`)
    "tensor": "jnp.asarray({})",
    "bfloat16": "{}.astype(jnp.bfloat16)",
    "log": "jnp.log({})",
    "log1p": "jnp.log1p({})",
    "exp": "jnp.exp({})",
    "abs": "jnp.abs({})",
    "relu": "jax.nn.relu({})",
    "sigmoid": "jax.nn.sigmoid({})",
    "log_softmax": "jax.nn.log_softmax({}, axis=1)",
    "max1": "jnp.max({}, axis=1, keepdims=True)",
    "clip": "jnp.clip({}, {}, {})",
    "at_least": "jnp.maximum({}, {})",
    "where": "jnp.where({}, {}, {})",
    "ones_like": "jnp.ones_like({})",
    "zeros_like": "jnp.zeros_like({})",
    "sum1": "jnp.sum({}, axis=1)",
    "sum1_keep": "jnp.sum({}, axis=1, keepdims=True)",
    "mean_last": "jnp.mean({}, axis=-1)",
    "sum": "jnp.sum({})",
}

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
    Variant("jax", "optax.losses.sigmoid_binary_cross_entropy", optax_binary, binary_documented, BCE),
    Variant("jax:keras", "keras.losses.BinaryCrossentropy (JAX backend)", keras_binary, keras_docs.binary_documented, BCE),
]
