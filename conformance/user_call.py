"""What a user's loss object takes, and the call a case makes of it (`conformance.user`).

The object is read once (`describe`): a function, or a class (constructed, then called: its `__call__`,
or `forward` where `__call__` only forwards `*args, **kwargs`, as torch's `nn.Module` and paddle's
`nn.Layer` do). Only parameters it names count: a `**kwargs` declares none, so an argument it would
swallow and drop is never passed.

Which case keys reach it is the loss families' to say (`conformance.losses.parameters`): an array
(`weight`) where the case gives one, an optional value (`ignore_index`) where the case sets it, a value
with a meaning by default (`reduction`, `label_smoothing`, `gamma`, `alpha`) always, at the case's
effective value. A case that sets a key the object does not take is `Unsupported`, naming it. The same
rules check a spec before any case runs (`problems`): what the object requires must be filled by
`fixed` or by a key every case of its families passes.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Takes:
    """What an object takes: `kind` "function", "class" or "other" (not callable: `what` says what it
    is); its constructor's and its call's named parameters (name -> required), the call's without the
    data arguments; `data`: how many data arguments its call takes positionally (None: any number)."""

    kind: str
    construct: dict[str, bool]
    call: dict[str, bool]
    data: int | None
    what: str = ""

    def names(self) -> set[str]:
        return set(self.construct) | set(self.call)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "construct": self.construct, "call": self.call, "data": self.data, "what": self.what}


def load(module: str, name: str) -> Any:
    """The object, imported as the worker imports it (the current directory on the path)."""
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    return getattr(importlib.import_module(module), name)


def describe(obj: Any, data: int) -> Takes:
    """What `obj` takes, with `data` data arguments to its call."""
    if inspect.isclass(obj):
        construct, _, _ = _named(_signature(obj.__init__), skip=1)
        call, taken, open_ = _named(_call_signature(obj), skip=1 + data)
        return Takes("class", construct, call, None if open_ else max(taken - 1, 0))
    if not callable(obj):
        return Takes("other", {}, {}, 0, what=type(obj).__name__)
    call, taken, open_ = _named(_call_signature(obj), skip=data)
    return Takes("function", {}, call, None if open_ else taken)


def _signature(fn: Any) -> inspect.Signature | None:
    try:
        return inspect.signature(fn)
    except (TypeError, ValueError):
        return None


def _call_signature(obj: Any) -> inspect.Signature | None:
    """The signature of what calling `obj` (or an instance of the class `obj`) runs."""
    own = 1 if inspect.isclass(obj) else 0  # self
    signature = _signature(obj.__call__ if own else obj)
    forward = getattr(obj, "forward", None)
    if forward is not None and (signature is None or _named(signature, own)[1] <= own):
        return _signature(forward)  # __call__(*args, **kwargs) forwards to forward()
    return signature


def _named(signature: inspect.Signature | None, skip: int) -> tuple[dict[str, bool], int, bool]:
    """Named parameters after the first `skip` positional ones (self, the data arguments): name ->
    required; how many positional parameters there are to skip; whether `*args` takes any number."""
    if signature is None:
        return {}, 0, True
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    params = list(signature.parameters.values())
    leading = [p for p in params if p.kind in positional]
    open_ = any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params)
    rest = leading[skip:] + [p for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY]
    named = {p.name: p.default is inspect.Parameter.empty for p in rest if p.kind is not inspect.Parameter.POSITIONAL_ONLY}
    return named, len(leading), open_


# ---------------------------------------------------------------- the checks before any case runs


def problems(spec: Any, takes: Takes, families: dict[str, Any]) -> list[str]:
    """What makes `spec` unusable on the cases of `families` (name -> module), each naming the object
    and the parameter: not callable, too few data arguments, a name in params/fixed it does not take, a
    parameter it requires that nothing fills on some family's cases."""
    from conformance import losses

    name = spec.target
    if takes.kind == "other":
        return [f"{name} is a {takes.what}, not a function or a class"]
    found = []
    if takes.data is not None and takes.data < len(spec.arguments):
        found.append(f"{name} takes {takes.data} data arguments positionally; the spec passes {len(spec.arguments)} (arguments:)")
    taken = sorted(takes.names())
    for key, target in spec.params:
        if target not in takes.names():
            found.append(f"{name} takes no parameter '{target}' (params: {key}: {target}); it takes {_listed(taken)}")
    for target, _ in spec.fixed:
        if target not in takes.names():
            found.append(f"{name} takes no parameter '{target}' (fixed: {target}); it takes {_listed(taken)}")
    required = [n for n, needed in {**takes.call, **takes.construct}.items() if needed and n not in dict(spec.fixed)]
    renamed = {target: key for key, target in spec.params}
    for family_name, family in families.items():
        always = {key for key, p in losses.parameters(family).items() if p.kind == "value"} | set(losses.DERIVED)
        for needed in required:
            key = renamed.get(needed, needed)
            if key in always and (key not in losses.DERIVED or needed in renamed):
                continue
            place = "its constructor" if needed in takes.construct else "its call"
            found.append(
                f"{name} requires '{needed}' ({place}), which not every {family_name} case gives: give it under fixed:, "
                f"map a case key to it under params:, or name the families it computes under loss:"
            )
    return list(dict.fromkeys(found))


def _listed(names: list[str]) -> str:
    return ", ".join(names) if names else "no named parameter"


# ---------------------------------------------------------------- the call a case makes


@dataclass(frozen=True)
class Call:
    """The keyword arguments of one case's call: (the object's name, the code of the value) for its
    constructor and for its call."""

    construct: tuple[tuple[str, str], ...]
    call: tuple[tuple[str, str], ...]


def arguments(spec: Any, takes: Takes, case: Any, tensor: Any) -> Call:
    """The keyword arguments the case passes (`tensor(name)` writes a framework tensor of the array read
    by `name`), or `Unsupported` naming the key the case sets and the object does not take."""
    from conformance import losses
    from conformance.adapters import ARRAY_KEYS, Unsupported

    array_names = {key: name for name, key in ARRAY_KEYS.items()}

    renamed, fixed = dict(spec.params), dict(spec.fixed)
    chosen: list[tuple[str, str]] = []
    missing: list[tuple[str, str]] = []  # (key, as the case sets it)
    for key, parameter in losses.parameters(case.family).items():
        target = renamed.get(key, key)
        have = getattr(case, key)
        given = have is not None if parameter.kind != "value" else True
        sets = have is not None if parameter.kind != "value" else have != parameter.default
        if target in fixed:
            if sets:
                raise Unsupported(f"the spec fixes {target} at {fixed[target]!r} (fixed:), and the case sets {key} to {have!r}")
            continue
        if target not in takes.names():
            if sets:
                shown = "given" if parameter.kind == "array" else f"{have!r}"
                missing.append((key, f"{key}{f' (as {target!r}, params)' if target != key else ''}: {shown}"))
            continue
        if not given:
            continue
        if parameter.kind == "array":
            name = case.family.ARRAYS.get(key) or array_names[key]
            chosen.append((target, tensor(name)))
        else:
            chosen.append((target, repr(_plain(have))))
    if missing:
        names, sets = ", ".join(k for k, _ in missing), "; ".join(text for _, text in missing)
        raise Unsupported(f"{spec.module}.{spec.function} does not declare {names} (the case sets {sets})")
    for key, target in spec.params:
        if key in losses.DERIVED:
            chosen.append((target, repr(int(case.num_classes))))
    chosen += [(target, repr(value)) for target, value in spec.fixed]
    values = dict(chosen)  # written in the object's own order of its parameters
    return Call(
        tuple((n, values[n]) for n in takes.construct if n in values),
        tuple((n, values[n]) for n in takes.call if n in values and n not in takes.construct),
    )


def _plain(value: Any) -> Any:
    """A NumPy scalar as the Python number it holds (its repr is code)."""
    return value.item() if hasattr(value, "item") and not isinstance(value, (str, bool)) else value
