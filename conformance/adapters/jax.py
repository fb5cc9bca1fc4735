"""JAX adapter: what is JAX's own, whatever the loss family. The native calls (optax's losses, the
default, optax's generic one-hot form, Keras 3 on the JAX backend) of each family are in its package
(`conformance/losses/<family>/jax.py`), written with the helpers here; what follows holds for all of them.

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

import re
import textwrap
from collections.abc import Callable
from importlib import metadata
from typing import Any

from conformance.adapters import is_bfloat16, moved
from conformance.cases import Case
from conformance.reference import Knobs, recipe_source

ORDER = 40
REPOSITORIES = {"jax": "jax-ml/jax", "optax": "google-deepmind/optax"}  # names written before an issue number (#123) -> GitHub
SETUP = (
    "import numpy as np\n"
    "import jax\n"
    'jax.config.update("jax_enable_x64", True)  # float64 cases compute in float64\n'
    "import jax.numpy as jnp\n"
    "import optax"
)
KERAS_HEAD = 'import os\nos.environ["KERAS_BACKEND"] = "jax"  # before keras is imported\nimport keras'


def version() -> dict[str, str]:
    """Versions read from the installed metadata, so keras is not imported (seconds) unless a case uses it."""
    import os

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
