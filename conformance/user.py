"""A user's own loss function run as a variant: `--variant KEY=MODULE:FUNCTION`.

`KEY` is `FRAMEWORK:NAME`; the function runs in that framework's worker, called as
`FUNCTION(predictions, targets, **params)` with the framework's own tensors in the layout of its
default variant, and is a result key like any other (groups, expectations, baselines, the report).

What this module owns (it never names a framework; the framework module lays out the tensors):
- parsing the specs and keeping the ones active for this run (`activate`), which `known_keys`
  and the runner read; the runner hands them to the workers in the environment variable `ENV`;
- the variant itself (`variant(spec)`): its `build` imports the module in the worker, asks the
  framework module (`user_body(case, call)`, optional: a framework without it runs no user variant) for
  the tensors, and writes the real call, so the snippet pasted next to the module reproduces the value;
- checking up front that every module imports and has its function (`check`), in a fresh interpreter
  (importing it here would import its framework into the parent);
- where in the user's file an exception came from (`where`).
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import json
import os
import subprocess
import sys
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from conformance.errors import UsageError

ENV = "CONFORMANCE_USER_VARIANTS"
# The case parameters a user's function may declare: name -> (how a case sets it, the array it reads).
ARRAY_PARAMS = {"weight": "w", "pos_weight": "pw", "sample_weight": "sw"}
PLAIN_PARAMS = ("label_smoothing", "ignore_index", "reduction")


@dataclass(frozen=True)
class Spec:
    """One `KEY=MODULE:FUNCTION`."""

    key: str
    module: str
    function: str

    @property
    def framework(self) -> str:
        return self.key.split(":", 1)[0]

    def text(self) -> str:
        return f"{self.key}={self.module}:{self.function}"


_active: tuple[Spec, ...] = ()


def parse(texts: list[str] | None) -> tuple[Spec, ...]:
    """`KEY=MODULE:FUNCTION` strings as specs; a malformed one, an unknown framework or a key that is
    already a variant's is a usage error."""
    from conformance import adapters, registry

    out: list[Spec] = []
    native = {v.key for name in registry.frameworks() for v in adapters.variants(name)}
    for text in texts or []:
        key, eq, target = text.partition("=")
        module, colon, function = target.rpartition(":")
        framework, sep, name = key.partition(":")
        if not (eq and colon and module and function and sep and framework and name):
            raise UsageError(f"--variant {text!r}: expected FRAMEWORK:NAME=MODULE:FUNCTION, e.g. FRAMEWORK:mine=my_loss:cross_entropy")
        if framework not in registry.frameworks():
            raise UsageError(f"--variant {text!r}: unknown framework '{framework}'; known: {', '.join(registry.frameworks())}")
        if registry.framework(framework).user_body is None:
            raise UsageError(f"--variant {text!r}: the {framework} adapter cannot run a user's function (it has no user_body)")
        if key in native or key in (s.key for s in out):
            raise UsageError(f"--variant {text!r}: the result key '{key}' is taken")
        out.append(Spec(key.strip(), module.strip(), function.strip()))
    return tuple(out)


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


def known_keys() -> set[str]:
    """Every result key a case expectation may name: every framework's variants' and the user's functions of this run."""
    from conformance import adapters, registry

    return {v.key for name in registry.frameworks() for v in adapters.variants(name)} | keys()


def environment(framework: str) -> dict[str, str]:
    """What a worker of `framework` is started with: its user variants, as JSON (none: nothing)."""
    mine = [[s.key, s.module, s.function] for s in _active if s.framework == framework]
    return {ENV: json.dumps(mine)} if mine else {}


def from_environment() -> list[Any]:
    """In a worker: the variants of the user's functions it was started with."""
    raw = os.environ.get(ENV)
    return [variant(Spec(*entry)) for entry in json.loads(raw)] if raw else []


# ---------------------------------------------------------------- checked before any case runs

_CHECK = """
import importlib, sys
module, function = sys.argv[1], sys.argv[2]
try:
    loaded = importlib.import_module(module)
except BaseException as exc:
    print(f"cannot import module '{module}': {type(exc).__name__}: {exc}")
    sys.exit(3)
if not callable(getattr(loaded, function, None)):
    print(f"module '{module}' ({loaded.__file__}) has no function '{function}'")
    sys.exit(3)
"""


def check(specs: tuple[Spec, ...], env: dict[str, str] | None = None) -> None:
    """Each spec's module imports and has its function, tried in a fresh interpreter each (in parallel)
    with the current directory and PYTHONPATH on the path, as in the worker; else a UsageError (exit 2)."""
    procs = [
        (
            spec,
            subprocess.Popen(
                [sys.executable, "-c", _CHECK, spec.module, spec.function],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env={**os.environ, **(env or {}), "PYTHONPATH": os.pathsep.join(filter(None, [os.getcwd(), os.environ.get("PYTHONPATH")]))},
                text=True,
            ),
        )
        for spec in specs
    ]
    problems = []
    for spec, proc in procs:
        out, _ = proc.communicate()
        if proc.returncode:
            problems.append(f"--variant {spec.text()}: {out.strip() or f'exit {proc.returncode}'}")
    if problems:
        raise UsageError("\n".join(problems))


# ---------------------------------------------------------------- the variant, built in the worker


def variant(spec: Spec) -> Any:
    """The `Variant` of a user's function (every loss family; no documented knobs: the fit explains it)."""
    from conformance import registry
    from conformance.adapters import Variant

    body = registry.framework(spec.framework).user_body
    if body is None:
        raise UsageError(f"--variant {spec.key}: {spec.framework} runs no user's function (its plug-in has no user_body)")

    def build(case: Any) -> str:
        function = _function(spec)
        call = _call(spec, function, case)
        return str(body(case, call))

    return Variant(
        spec.key,
        f"{spec.module}.{spec.function} (your function)",
        build,
        lambda case: None,
        tuple(registry.losses()),
        module=spec.module,
    )


def _function(spec: Spec) -> Callable[..., Any]:
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    return getattr(importlib.import_module(spec.module), spec.function)  # type: ignore[no-any-return]


def case_params(case: Any) -> dict[str, Any]:
    """The parameters the case sets (to their defaults, a parameter is not set)."""
    out: dict[str, Any] = {}
    for name in ARRAY_PARAMS:
        if getattr(case, name, None) is not None:
            out[name] = name
    if case.label_smoothing:
        out["label_smoothing"] = case.label_smoothing
    if case.ignore_index is not None:
        out["ignore_index"] = case.ignore_index
    out["reduction"] = case.reduction
    return out


def _call(spec: Spec, function: Callable[..., Any], case: Any) -> Callable[[str, str, Callable[[str], str]], str]:
    """What the framework module calls with its prediction and target expressions and its way of
    making a tensor of an array: the import and the call, with the parameters the function declares."""
    from conformance.adapters import Unsupported

    try:
        declared = inspect.signature(function).parameters
    except (TypeError, ValueError):
        declared = {}  # type: ignore[assignment]
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in declared.values())
    wanted = case_params(case)
    missing = [name for name in wanted if name not in declared and not takes_any and not (name == "reduction" and case.reduction == "mean")]
    if missing:
        raise Unsupported(f"{spec.module}.{spec.function} does not declare {', '.join(missing)} (the case sets it)")
    passed = [name for name in [*ARRAY_PARAMS, *PLAIN_PARAMS] if name in declared or (takes_any and name in wanted)]

    def call(predictions: str, targets: str, tensor: Callable[[str], str]) -> str:
        args = [predictions, targets]
        for name in passed:
            if name in ARRAY_PARAMS:
                args.append(f"{name}={tensor(ARRAY_PARAMS[name]) if name in wanted else None}")
            elif name == "reduction":
                args.append(f"reduction={case.reduction!r}")
            else:
                value = getattr(case, name)
                args.append(f"{name}={(value or 0.0) if name == 'label_smoothing' else value!r}")
        return f"from {spec.module} import {spec.function}\nloss = {spec.function}({', '.join(args)})"

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
