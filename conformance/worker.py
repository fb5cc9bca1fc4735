"""The worker process: imports one framework, runs its variants on the cases it is sent.

Run as `python -m conformance.worker FRAMEWORK`. Messages are pickled over stdin/stdout; anything the
framework prints to stdout is moved to stderr so it cannot corrupt the stream. One framework per
process: `import tensorflow; import paddle` in one process segfaults.

It answers `("ready", versions, seconds)` once imported, then each message in order:
`("case", index, case, keys)` -> `("result", index, results by key)` (keys None: every variant);
`("recipes", index, case, {name: code})` -> `("recipes", index, recipes by name)`: the parent builds
each recipe's code (`adapters.recipes`, where the knobs and the explanation's model are) and the worker
runs it.
The user's functions given with `--variant` come in the environment (`conformance.user.ENV`) and run
after the framework's own variants.
"""

from __future__ import annotations

import os
import pickle
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any, BinaryIO

import numpy as np

from conformance import adapters, compact, registry, user
from conformance.adapters import Unsupported, Variant
from conformance.cases import Case
from conformance.reference import evaluate


def main(framework: str) -> None:
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    inp: BinaryIO = sys.stdin.buffer
    worker = Worker(framework)
    send(out, worker.ready)
    while True:
        try:
            message = pickle.load(inp)
        except EOFError:
            return
        if message is None:
            return
        send(out, worker.answer(message))


class Worker:
    """One framework, imported, answering messages: the process loop above and an engine's actor
    (`conformance.engines`) both run cases through it, so a case runs the same code wherever it runs."""

    def __init__(self, framework: str) -> None:
        started = time.perf_counter()
        self.framework = framework
        self.module = registry.framework(framework)
        self.namespace: dict[str, Any] = {}
        exec(self.module.SETUP, self.namespace)
        self.ready = ("ready", self.module.version(), time.perf_counter() - started)
        self.compiled: dict[str, Any] = {}
        runner = self.module.Runner(self.namespace) if self.module.Runner is not None else None
        self.run = runner.run if runner is not None else _run
        self.own = adapters.variants(framework) + user.from_environment()  # the user's functions (`--variant`) after the native ones

    def answer(self, message: tuple[str, int, Case, Any]) -> tuple[str, int, Any]:
        """`("case", index, case, keys)` -> `("result", index, results by key)`;
        `("recipes", index, case, {name: code})` -> `("recipes", index, recipes by name)`."""
        kind, index, case, detail = message
        per_case = _PerCase(case)
        if kind == "recipes":
            return ("recipes", index, run_recipes(self.framework, self.module, self.namespace, self.compiled, per_case, detail, self.run))
        results = {
            v.key: run_variant(v, case, self.module, self.namespace, self.compiled, per_case, self.run)
            for v in adapters.for_case(self.own, case)
            if detail is None or v.key in detail
        }
        return ("result", index, results)


class _PerCase:
    """What every variant of one case shares: its arrays and the documented model's values."""

    def __init__(self, case: Case) -> None:
        self.case = case
        self.arrays = adapters.arrays(case)
        self._documented: dict[Any, Any] = {}

    def documented(self, knobs: Any) -> Any:
        if knobs not in self._documented:
            self._documented[knobs] = evaluate(self.case, knobs)
        return self._documented[knobs]

    def documented_grad(self, knobs: Any, dtype: str | None, result_grad: Any) -> Any:
        """The model's gradient as it travels: for a result of a dtype narrower than float64 whose gradient
        travels as float32 (a large one, `carried`), rounded to float32 too (off by at most 2^-24
        relative, far inside those dtypes' tolerances; half the bytes), once per knob point; else float64."""
        grad = self.documented(knobs).grad
        narrow = dtype != "float64" and isinstance(result_grad, np.ndarray) and result_grad.dtype == np.float32
        if grad is None or not narrow:
            return grad
        if ("float32", knobs) not in self._documented:
            self._documented[("float32", knobs)] = np.asarray(grad, dtype=np.float32)
        return self._documented[("float32", knobs)]


def _run(code: Any, scope: dict[str, Any]) -> None:
    exec(code, scope)


def _compiled(compiled: dict[str, Any], body: str, name: str) -> Any:
    code = compiled.get(body)
    if code is None:
        code = compiled[body] = compile(body, name, "exec")
    return code


def send(out: BinaryIO, message: object) -> None:
    pickle.dump(message, out, protocol=pickle.HIGHEST_PROTOCOL)
    out.flush()


def run_variant(
    variant: Variant,
    case: Case,
    module: Any,
    namespace: dict[str, Any],
    compiled: dict[str, Any],
    per_case: _PerCase | None = None,
    run: Callable[[Any, dict[str, Any]], None] = _run,
) -> dict[str, Any]:
    """One native call; its outcome as plain data (status ok / unsupported / error). `body` is the code
    run; the parent makes it the runnable snippet (`code`) by adding the imports and the arrays. `run`
    executes it: `exec`, or the framework's `Runner.run` (JAX's reuses what it compiled)."""
    per_case = per_case or _PerCase(case)
    result: dict[str, Any] = {"api": variant.api, "status": "ok", "body": None, "message": None, "loss": None, "grad": None}
    try:
        body = result["body"] = variant.build(case)
    except Unsupported as exc:
        result.update(status="unsupported", message=str(exc))
        return result
    except Exception as exc:  # a user's module that fails to import here (it passed the check up front)
        if variant.module is None:
            raise
        result.update(status="error", message=_error_message(exc) + user.where(exc, variant.module))
        return result
    code = _compiled(compiled, body, f"<{variant.key}>")
    scope = dict(namespace, case=case, **per_case.arrays)
    started = time.perf_counter()
    try:
        run(code, scope)
        loss, dtype = module.to_numpy(scope["loss"])
        grad = scope.get("grad")
        result["grad"] = None if grad is None else carried(module.to_numpy(grad)[0])
    except Exception as exc:  # the framework's own error is the finding
        result.update(status="error", message=_error_message(exc) + (user.where(exc, variant.module) if variant.module else ""))
        return result
    finally:
        result["seconds"] = time.perf_counter() - started
    result.update(loss=carried(loss), dtype=dtype, message=scope.get("note"))  # a variant's note on its ok result
    knobs = variant.knobs(case) if case.check_shapes else None  # mismatched shapes on purpose: no formula
    if knobs is not None:
        documented = per_case.documented(knobs)
        grad = per_case.documented_grad(knobs, dtype, result["grad"])
        result["documented"] = {"knobs": knobs.as_dict(), "loss": documented.loss, "grad": grad}
    return result


def carried(values: Any) -> np.ndarray:
    """A loss or gradient as it travels to the parent: float64, or for a large array float32 where that
    holds every value exactly (a float32, float16 or bfloat16 result): the same numbers, half the bytes
    to pickle and to keep. Arrays travel pickled as buffers, never as per-element Python objects."""
    array = np.asarray(values, dtype=np.float64)
    if array.size > compact.COMPACT_ABOVE:
        with np.errstate(over="ignore"):
            narrow = array.astype(np.float32)
        if np.array_equal(narrow, array, equal_nan=True):
            return narrow
    return array


def run_recipes(
    framework: str,
    module: Any,
    namespace: dict[str, Any],
    compiled: dict[str, Any],
    per_case: _PerCase,
    bodies: dict[str, str],
    run: Callable[[Any, dict[str, Any]], None] = _run,
) -> dict[str, Any]:
    """This framework's code reproducing other frameworks' documented semantics (`bodies`: name -> code,
    `adapters.recipes`), run on the case's arrays: the code and the loss it gives (compared with the
    target's in the parent), or the error it raised."""
    recipes: dict[str, Any] = {}
    for name, body in bodies.items():
        scope = dict(namespace, **per_case.arrays)
        entry: dict[str, Any] = {"body": body, "loss": None}
        try:
            run(_compiled(compiled, body, f"<recipe {framework} as {name}>"), scope)
            entry["loss"] = np.asarray(module.to_numpy(scope["loss"])[0], dtype=np.float64)
        except Exception as exc:  # a recipe that fails is shown as failing, not hidden
            entry["message"] = _error_message(exc)
        recipes[name] = entry
    return recipes


def _error_message(exc: BaseException) -> str:
    text = str(exc).strip()
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) > 12:
        text = "\n".join(lines[:4] + ["..."] + lines[-6:])
    if not text:
        text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    return f"{type(exc).__name__}: {text}"


if __name__ == "__main__":
    main(sys.argv[1])
