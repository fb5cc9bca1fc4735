"""The worker process: imports one framework, runs its variants on the cases it is sent.

Run as `python -m conformance.worker FRAMEWORK`. Messages are pickled over stdin/stdout; anything the
framework prints to stdout is moved to stderr so it cannot corrupt the stream. One framework per
process: `import tensorflow; import paddle` in one process segfaults.

It answers `("ready", versions, seconds)` once imported, then each message in order:
`("case", index, case, keys)` -> `("result", index, results by key)` (keys None: every variant);
`("recipes", index, case, {target: knobs})` -> `("recipes", index, recipes by target)`.
The user's functions given with `--variant` come in the environment (`conformance.user.ENV`) and run
after the framework's own variants.
"""

from __future__ import annotations

import os
import pickle
import sys
import time
import traceback
from typing import Any, BinaryIO

import numpy as np

from conformance import adapters, registry, user
from conformance.adapters import Unsupported, Variant
from conformance.cases import Case
from conformance.reference import Knobs, evaluate


def main(framework: str) -> None:
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    inp: BinaryIO = sys.stdin.buffer
    started = time.perf_counter()
    module = registry.framework(framework)
    namespace: dict[str, Any] = {}
    exec(module.SETUP, namespace)
    send(out, ("ready", module.version(), time.perf_counter() - started))
    compiled: dict[str, Any] = {}
    own = adapters.variants(framework) + user.from_environment()  # the user's functions (`--variant`) after the native ones
    while True:
        try:
            message = pickle.load(inp)
        except EOFError:
            return
        if message is None:
            return
        kind, index, case, detail = message
        per_case = _PerCase(case)
        if kind == "recipes":
            send(out, ("recipes", index, run_recipes(framework, case, module, namespace, compiled, per_case, detail)))
            continue
        results = {
            v.key: run_variant(v, case, module, namespace, compiled, per_case)
            for v in adapters.for_case(own, case)
            if detail is None or v.key in detail
        }
        send(out, ("result", index, results))


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


def _compiled(compiled: dict[str, Any], body: str, name: str) -> Any:
    code = compiled.get(body)
    if code is None:
        code = compiled[body] = compile(body, name, "exec")
    return code


def send(out: BinaryIO, message: object) -> None:
    pickle.dump(message, out, protocol=pickle.HIGHEST_PROTOCOL)
    out.flush()


def run_variant(
    variant: Variant, case: Case, module: Any, namespace: dict[str, Any], compiled: dict[str, Any], per_case: _PerCase | None = None
) -> dict[str, Any]:
    """One native call; its outcome as plain data (status ok / unsupported / error). `body` is the code
    run; the parent makes it the runnable snippet (`code`) by adding the imports and the arrays."""
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
        exec(code, scope)
        loss, dtype = module.to_numpy(scope["loss"])
        grad = scope.get("grad")
        result["grad"] = None if grad is None else module.to_numpy(grad)[0]
    except Exception as exc:  # the framework's own error is the finding
        result.update(status="error", message=_error_message(exc) + (user.where(exc, variant.module) if variant.module else ""))
        return result
    finally:
        result["seconds"] = time.perf_counter() - started
    result.update(loss=np.asarray(loss, dtype=np.float64), dtype=dtype)
    knobs = variant.knobs(case)
    if knobs is not None:
        documented = per_case.documented(knobs)
        result["documented"] = {"knobs": knobs.as_dict(), "loss": documented.loss, "grad": documented.grad}
    return result


def run_recipes(
    framework: str,
    case: Case,
    module: Any,
    namespace: dict[str, Any],
    compiled: dict[str, Any],
    per_case: _PerCase,
    targets: dict[str, Knobs],
) -> dict[str, Any]:
    """This framework reproducing other frameworks' documented semantics (`targets`: their knobs), as
    the parent asks where they diverge: the native code, run here, and the loss it gives (compared
    with the target's in the parent). A target without a recipe is left out."""
    recipes: dict[str, Any] = {}
    for other, knobs in targets.items():
        body = module.recipe(case, knobs) if hasattr(module, "recipe") else None
        if body is None:
            continue
        scope = dict(namespace, **per_case.arrays)
        entry: dict[str, Any] = {"body": body, "loss": None}
        try:
            exec(_compiled(compiled, body, f"<recipe {framework} as {other}>"), scope)
            entry["loss"] = np.asarray(module.to_numpy(scope["loss"])[0], dtype=np.float64)
        except Exception as exc:  # a recipe that fails is shown as failing, not hidden
            entry["message"] = _error_message(exc)
        recipes[other] = entry
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
