"""A user's own loss function or class run as a variant (`--variant`, `--variants`, pyproject.toml).

`KEY` is `FRAMEWORK:NAME`; the object runs in that framework's worker with the framework's own tensors
(in the layout of its default variant, or where the spec's `layout` puts the class axis), and is a result
key like any other (groups, expectations, baselines, the report). The specs are read by
`conformance.user_spec`; what the object takes and which case keys a case passes, by `conformance.user_call`.

What this module owns (it never names a framework; the framework module lays out the tensors):
- the specs active for this run (`activate`), which `known_keys` and the runner read; the
  runner hands them to the workers in the environment variable `ENV`;
- the variant itself (`variant(spec)`): its `build` imports the object in the worker, asks the framework
  module (`user_body(case, call, class_axis)`, optional: a framework without it runs no user variant) for
  the tensors, and writes the real call, so the snippet pasted next to the module reproduces the value;
- checking up front, in a fresh interpreter each (importing here would import its framework into the
  parent), that every object imports and can be called on the cases of its families (`check`);
- where in the user's file an exception came from (`where`).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import subprocess
import sys
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from conformance import user_call, user_spec
from conformance.errors import UsageError
from conformance.user_spec import Spec as Spec  # re-exported: user.Spec

ENV = "CONFORMANCE_USER_VARIANTS"

_active: tuple[Spec, ...] = ()


def parse(texts: list[str] | None) -> tuple[Spec, ...]:
    """`KEY=MODULE:FUNCTION` strings as specs; a malformed one, an unknown framework or a key that is
    already a variant's is a usage error."""
    return user_spec.checked([user_spec.short(text) for text in texts or []])


def specs(texts: list[str] | None, files: list[Path] | None = None, folder: Path | None = None) -> tuple[Spec, ...]:
    """Every spec of a run: `[tool.conformance]` of the pyproject.toml in `folder` (default: the current
    directory), the `--variants` files, the `--variant` texts; each checked against the registry."""
    given = user_spec.from_pyproject(folder or Path.cwd())
    for file in files or []:
        given += user_spec.from_file(Path(file))
    given += [user_spec.short(text) for text in texts or []]
    return user_spec.checked(given)


def activate(specs: tuple[Spec, ...]) -> None:
    """Make `specs` the user variants of this process's runs (known keys, workers started from now)."""
    global _active
    _active = tuple(specs)


def active() -> tuple[Spec, ...]:
    return _active


@contextlib.contextmanager
def activated(specs: tuple[Spec, ...]) -> Iterator[None]:
    """`activate` for a block, restoring what was active before."""
    before = _active
    activate(specs)
    try:
        yield
    finally:
        activate(before)


def keys() -> set[str]:
    return {s.key for s in _active}


def against() -> dict[str, str]:
    """variant key -> the result key it ports (`against:`), for the active specs that name one."""
    return {s.key: s.against for s in _active if s.against is not None}


def known_keys() -> set[str]:
    """Every result key a case expectation may name: every framework's variants' and the user's functions of this run."""
    from conformance import adapters, registry

    return {v.key for name in registry.frameworks() for v in adapters.variants(name)} | keys()


def environment(framework: str) -> dict[str, str]:
    """What a worker of `framework` is started with: its user variants, as JSON (none: nothing)."""
    mine = [s.to_json() for s in _active if s.framework == framework]
    return {ENV: json.dumps(mine)} if mine else {}


def from_environment() -> list[Any]:
    """In a worker: the variants of the user's objects it was started with."""
    raw = os.environ.get(ENV)
    return [variant(Spec.from_json(entry)) for entry in json.loads(raw)] if raw else []


# ---------------------------------------------------------------- checked before any case runs

_CHECK = """
import importlib, json, sys
from conformance import user_call
module, name, data = sys.argv[1], sys.argv[2], int(sys.argv[3])
try:
    loaded = importlib.import_module(module)
except BaseException as exc:
    print(json.dumps({"problem": f"cannot import module '{module}': {type(exc).__name__}: {exc}"}))
    sys.exit(3)
if not hasattr(loaded, name):
    print(json.dumps({"problem": f"module '{module}' ({loaded.__file__}) has no function '{name}'"}))
    sys.exit(3)
print(json.dumps(user_call.describe(getattr(loaded, name), data).to_json()))
"""


def check(specs: tuple[Spec, ...], env: dict[str, str] | None = None) -> None:
    """Each spec's object imports and can be called on the cases of its families (`user_call.problems`),
    read in a fresh interpreter each (in parallel) with the current directory and PYTHONPATH on the path,
    as in the worker; else a UsageError (exit 2) naming the object and the parameter."""
    from conformance import registry

    path = os.pathsep.join(filter(None, [os.getcwd(), os.environ.get("PYTHONPATH")]))
    procs = [
        (
            spec,
            subprocess.Popen(
                [sys.executable, "-c", _CHECK, spec.module, spec.function, str(len(spec.arguments))],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env={**os.environ, **(env or {}), "PYTHONPATH": path},
                text=True,
            ),
        )
        for spec in specs
    ]
    found = []
    for spec, proc in procs:
        out, _ = proc.communicate()
        try:
            answer = json.loads(out.strip().splitlines()[-1])
        except (ValueError, IndexError):
            answer = {"problem": f"its check exited with {proc.returncode}"}
        if "problem" in answer:
            found.append(f"{spec.text()}: {answer['problem']}")
            continue
        families = {name: module for name, module in registry.losses().items() if not spec.losses or name in spec.losses}
        takes = user_call.Takes(**answer)
        found += [f"{spec.text()}: {problem}" for problem in user_call.problems(spec, takes, families)]
    if found:
        raise UsageError("\n".join(found))


# ---------------------------------------------------------------- the variant, built in the worker


def variant(spec: Spec) -> Any:
    """The `Variant` of a user's object (its loss families; no documented knobs: the fit explains it)."""
    from conformance import registry
    from conformance.adapters import Variant

    body = registry.framework(spec.framework).user_body
    if body is None:
        raise UsageError(f"--variant {spec.key}: {spec.framework} runs no user's function (its plug-in has no user_body)")

    def build(case: Any) -> str:
        return str(body(case, _writer(spec, case), **_layout(spec)))

    return Variant(
        spec.key,
        f"{spec.module}.{spec.function} (your code)",
        build,
        lambda case: None,
        spec.losses or tuple(registry.losses()),
        module=spec.module,
    )


def _layout(spec: Spec) -> dict[str, Any]:
    """The framework's `user_body` gets `class_axis` only where the spec sets a layout (a framework
    module written before layouts existed still runs the specs that set none)."""
    return {} if spec.class_axis is None else {"class_axis": spec.class_axis}


def _takes(spec: Spec) -> user_call.Takes:
    return _described(spec.module, spec.function, len(spec.arguments))


@functools.cache
def _described(module: str, name: str, data: int) -> user_call.Takes:
    return user_call.describe(user_call.load(module, name), data)


def _writer(spec: Spec, case: Any) -> Callable[[str, str, Callable[[str], str]], str]:
    """What the framework module calls with its prediction and target expressions and its way of
    making a tensor of an array: the import, the construction of a class, and the call, with the case
    keys the object takes (`Unsupported`, naming the key, where the case sets one it does not)."""
    takes = _takes(spec)

    def call(predictions: str, targets: str, tensor: Callable[[str], str]) -> str:
        made = user_call.arguments(spec, takes, case, tensor)
        roles = {"predictions": predictions, "targets": targets}
        data = [roles[a] if isinstance(a, str) else "{" + ", ".join(f"{k!r}: {roles[r]}" for k, r in a) + "}" for a in spec.arguments]
        keywords = [f"{name}={value}" for name, value in made.call]
        head = f"from {spec.module} import {spec.function}"
        if takes.kind == "class":
            built = ", ".join(f"{name}={value}" for name, value in made.construct)
            return "\n".join([head, f"loss_fn = {spec.function}({built})", f"loss = loss_fn({', '.join(data + keywords)})"])
        return "\n".join([head, f"loss = {spec.function}({', '.join(data + keywords)})"])

    return call


def where(exc: BaseException, module: str) -> str:
    """` (at FILE:LINE in FUNCTION: SOURCE)` for the deepest frame of the exception in the user's module."""
    loaded = sys.modules.get(module)
    path = getattr(loaded, "__file__", None)
    if path is None:
        return ""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if os.path.abspath(f.filename) == os.path.abspath(path)]
    if not frames:
        return ""
    f = frames[-1]
    return f" (at {os.path.relpath(f.filename)}:{f.lineno} in {f.name}: {(f.line or '').strip()})"
