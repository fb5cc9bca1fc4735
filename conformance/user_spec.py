"""Users' own loss functions and classes as variants: the spec of each, as given.

Three ways to give one, combined in a run (a result key given twice is an error naming both places):
- the short form `--variant KEY=MODULE:OBJECT` (pytest `--conformance-variant`): called as
  `OBJECT(predictions, targets, **params)`;
- a YAML file, `--variants FILE` (pytest `--conformance-variants FILE`), `variants: {KEY: {...}}`;
- the table `[tool.conformance.variants."KEY"]` of the pyproject.toml in the current directory.

A spec's keys (`VariantSpec`): `call` (MODULE:OBJECT, a function or a class constructed with the case
parameters its `__init__` takes, then called), `arguments` (the order of the data arguments; an entry may
be a mapping, `{logits: predictions}`, for an object that wants a model-output dict), `params` (case key
-> the object's name for it), `fixed` (extra arguments with fixed values), `layout` (`class_axis: -1`
where the object wants classes last), `against` (the result key it ports: it must join that key's group),
`loss` (the loss families it computes; default every one). Every mistake is a ConformanceError naming the
file, the line (YAML) or the table (TOML), and the key: exit 2, before anything runs.
"""

from __future__ import annotations

import difflib
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from conformance import yamlfile
from conformance.errors import CaseError, UsageError

Role = Literal["predictions", "targets"]
ROLES: tuple[Role, Role] = ("predictions", "targets")
DEFAULT_ARGUMENTS: tuple[Any, ...] = ROLES
PYPROJECT = "pyproject.toml"


@dataclass(frozen=True)
class Spec:
    """One user's variant. `arguments`: each a role ("predictions", "targets") or a tuple of (dict key,
    role) pairs (the argument is that dict); `params`: (case key, the object's name) pairs; `fixed`:
    (name, value) pairs; `class_axis`: where the object wants the class axis (None: the framework's
    default layout); `losses`: the families it computes (empty: every one). `where` names the place it
    was given (for errors) and `option` how to give it again (the fuzzer's header); neither is compared."""

    key: str
    module: str
    function: str
    arguments: tuple[Any, ...] = DEFAULT_ARGUMENTS
    params: tuple[tuple[str, str], ...] = ()
    fixed: tuple[tuple[str, Any], ...] = ()
    class_axis: int | None = None
    against: str | None = None
    losses: tuple[str, ...] = ()
    where: str = field(default="", compare=False)
    option: str = field(default="", compare=False)

    @property
    def framework(self) -> str:
        return self.key.split(":", 1)[0]

    @property
    def target(self) -> str:
        return f"{self.module}:{self.function}"

    def text(self) -> str:
        """Where the spec was given, as errors name it: `--variant KEY=MODULE:OBJECT`, or the file and key."""
        return self.where or f"{self.key}={self.target}"

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "module": self.module,
            "function": self.function,
            "arguments": [a if isinstance(a, str) else dict(a) for a in self.arguments],
            "params": dict(self.params),
            "fixed": dict(self.fixed),
            "class_axis": self.class_axis,
            "against": self.against,
            "losses": list(self.losses),
            "where": self.where,
            "option": self.option,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Spec:
        return cls(
            data["key"],
            data["module"],
            data["function"],
            tuple(a if isinstance(a, str) else tuple(a.items()) for a in data["arguments"]),
            tuple(data["params"].items()),
            tuple(data["fixed"].items()),
            data["class_axis"],
            data["against"],
            tuple(data["losses"]),
            data["where"],
            data["option"],
        )


def _default_arguments() -> list[Role | dict[str, Role]]:
    return ["predictions", "targets"]


class Layout(BaseModel):
    """Where the object wants the class axis of the predictions (and of probability targets)."""

    model_config = ConfigDict(extra="forbid")
    class_axis: Literal[1, -1] = Field(description="1: classes second (after the batch axis); -1: classes last (channels-last)")


class VariantSpec(BaseModel):
    """One variant as written in YAML or TOML."""

    model_config = ConfigDict(extra="forbid")
    call: str = Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$", description="MODULE:OBJECT, a function or a class")
    arguments: list[Role | dict[str, Role]] = Field(
        default_factory=_default_arguments,
        description="the data arguments in the object's order; {logits: predictions} passes a dict",
    )
    params: dict[str, str] = Field(default_factory=dict, description="case key -> the object's name for it")
    fixed: dict[str, Any] = Field(default_factory=dict, description="extra arguments with fixed values")
    layout: Layout | None = None
    against: str | None = Field(default=None, description="the result key this ports: it must join that key's group")
    loss: str | list[str] | None = Field(default=None, description="the loss families it computes (default: every one)")

    @field_validator("arguments")
    @classmethod
    def _each_role_once(cls, arguments: list[Any]) -> list[Any]:
        roles = [r for a in arguments for r in ([a] if isinstance(a, str) else a.values())]
        if sorted(roles) != sorted(ROLES):
            raise ValueError(f"name predictions and targets once each (got {', '.join(roles) or 'none'})")
        return arguments

    @field_validator("params")
    @classmethod
    def _known_case_keys(cls, params: dict[str, str]) -> dict[str, str]:
        from conformance import losses

        known = losses.parameter_names()
        for key, name in params.items():
            if key not in known:
                raise ValueError(f"params: {_unknown(key, known, 'case key')}")
            if not _identifier(name):
                raise ValueError(f"params: {key}: {name!r} is not a parameter name")
        names = list(params.values())
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"params: two case keys go to the parameter {twice[0]!r}")
        return params

    @field_validator("fixed")
    @classmethod
    def _names(cls, fixed: dict[str, Any]) -> dict[str, Any]:
        for name in fixed:
            if not _identifier(name):
                raise ValueError(f"fixed: {name!r} is not a parameter name")
        return fixed

    @model_validator(mode="after")
    def _fixed_apart_from_params(self) -> VariantSpec:
        both = sorted(set(self.fixed) & set(self.params.values()))
        if both:
            raise ValueError(f"{both[0]!r} is given under fixed and filled by params")
        return self


class ToolTable(BaseModel):
    """`[tool.conformance]` of a pyproject.toml, or a `--variants` YAML file."""

    model_config = ConfigDict(extra="forbid")
    variants: dict[str, VariantSpec] = Field(default_factory=dict)


def _identifier(name: str) -> bool:
    return name.isidentifier()


def _unknown(key: str, known: list[str], what: str = "key") -> str:
    close = difflib.get_close_matches(key, known, n=1)
    return f"unknown {what} '{key}'" + (f"; did you mean '{close[0]}'?" if close else f"; known: {', '.join(known)}")


# ---------------------------------------------------------------- reading the three forms


def short(text: str) -> Spec:
    """`KEY=MODULE:OBJECT`, the short form (its shape only; `checked` checks the key)."""
    key, eq, target = text.partition("=")
    module, colon, function = target.rpartition(":")
    framework, sep, name = key.partition(":")
    if not (eq and colon and module and function and sep and framework and name):
        raise UsageError(f"--variant {text!r}: expected FRAMEWORK:NAME=MODULE:FUNCTION, e.g. FRAMEWORK:mine=my_loss:cross_entropy")
    key, module, function = key.strip(), module.strip(), function.strip()
    return Spec(key, module, function, where=f"--variant {key}={module}:{function}", option=f"--variant {key}={module}:{function}")


def from_file(path: Path) -> list[Spec]:
    """The specs of a `--variants` YAML file."""
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CaseError(name, f"cannot read the variants file: {exc}") from None
    doc, lines = yamlfile.load(text, name)
    if not isinstance(doc, dict):
        raise CaseError(name, "a variants file is a mapping 'variants:' of result keys (FRAMEWORK:NAME) to specs (call: MODULE:OBJECT)", 1)

    def place(loc: tuple[Any, ...]) -> tuple[str, int | None]:
        path_ = tuple(loc)
        while path_ and path_ not in lines:
            path_ = path_[:-1]
        return name, lines.get(path_)

    return _specs(doc, place, f"--variants {name}", lambda key: f"{name}:{lines.get(('variants', key), '?')}")


def from_pyproject(folder: Path) -> list[Spec]:
    """The specs of `[tool.conformance]` in `folder`'s pyproject.toml (none without the file or table)."""
    path = folder / PYPROJECT
    if not path.is_file():
        return []
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        text = path.read_text(encoding="utf-8")
        doc = tomllib.loads(text)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise CaseError(PYPROJECT, f"cannot read it: {exc}") from None
    table = doc.get("tool", {}).get("conformance")
    if table is None:
        return []
    lines = _toml_lines(text)

    def place(loc: tuple[Any, ...]) -> tuple[str, int | None]:
        found = [lines[loc[:n]] for n in range(len(loc), 0, -1) if loc[:n] in lines]
        return PYPROJECT, found[0] if found else lines.get(())

    where = f"{PYPROJECT} [tool.conformance]"
    return _specs(table, place, where, lambda key: f'{PYPROJECT} [tool.conformance.variants."{key}"]', "tool.conformance.")


def _toml_lines(text: str) -> dict[tuple[str, ...], int]:
    """Where `[tool.conformance...]` tables and their keys are (tomllib keeps no lines): (), ("variants",
    KEY) for a `[tool.conformance.variants."KEY"]` header, and (..., name) for `name = ...` under it."""
    out: dict[tuple[str, ...], int] = {}
    table: tuple[str, ...] | None = None
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith("["):
            header = stripped.strip("[]").strip()
            table = None
            if header == "tool.conformance":
                table = ()
            elif header.startswith("tool.conformance.variants."):
                table = ("variants", header.removeprefix("tool.conformance.variants.").strip().strip("\"'"))
            if table is not None:
                out.setdefault(table, number)
        elif table is not None and "=" in stripped and not stripped.startswith("#"):
            out.setdefault((*table, stripped.split("=", 1)[0].strip().strip("\"'")), number)
    return out


def _specs(doc: dict[str, Any], place: Any, option: str, where: Any, prefix: str = "") -> list[Spec]:
    try:
        table = ToolTable.model_validate(doc)
    except ValidationError as exc:
        err = min(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")  # a misspelt key before the key it misses
        loc = tuple(err["loc"])
        loc = tuple(p for p in loc if not isinstance(p, str) or not ("[" in p or p.startswith("function-")))  # pydantic's union arms
        shown = prefix + ".".join(str(p) for p in loc)
        if err["type"] == "extra_forbidden":
            known = _fields_at(loc[:-1])
            message = _unknown(str(loc[-1]), known)
        else:
            value = err.get("input")
            got = "" if isinstance(value, (dict, list)) else f" (got {value!r})"
            message = f"{err['msg'].removeprefix('Value error, ')}{got}"
        file, line = place(tuple(p for p in loc if isinstance(p, (str, int))))
        raise CaseError(file, message, line, shown or None) from None
    out = []
    for key, spec in table.variants.items():
        module, _, function = spec.call.partition(":")
        out.append(
            Spec(
                key=key,
                module=module,
                function=function,
                arguments=tuple(a if isinstance(a, str) else tuple(a.items()) for a in spec.arguments),
                params=tuple(spec.params.items()),
                fixed=tuple(spec.fixed.items()),
                class_axis=spec.layout.class_axis if spec.layout else None,
                against=spec.against,
                losses=tuple([spec.loss] if isinstance(spec.loss, str) else spec.loss or []),
                where=where(key),
                option=option,
            )
        )
    return out


def _fields_at(loc: tuple[Any, ...]) -> list[str]:
    """The keys known where an unknown key was found (the table, a variant, its layout)."""
    if not loc:
        return list(ToolTable.model_fields)
    if loc[-1] == "layout":
        return list(Layout.model_fields)
    return list(VariantSpec.model_fields)


def checked(specs: list[Spec]) -> tuple[Spec, ...]:
    """The specs of a run, each checked against the registry: a known framework that runs users'
    functions, a key no native variant and no other spec has, known loss families, an `against` that
    names a result key."""
    from conformance import adapters, registry

    native = {v.key for name in registry.frameworks() for v in adapters.variants(name)}
    out: list[Spec] = []
    for spec in specs:
        framework, _, name = spec.key.partition(":")
        if not name:
            raise UsageError(f"{spec.text()}: the key '{spec.key}' must be FRAMEWORK:NAME, e.g. {framework}:mine")
        if framework not in registry.frameworks():
            raise UsageError(f"{spec.text()}: unknown framework '{framework}'; known: {', '.join(registry.frameworks())}")
        if registry.framework(framework).user_body is None:
            raise UsageError(f"{spec.text()}: the {framework} adapter cannot run a user's function (it has no user_body)")
        if spec.key in native:
            raise UsageError(f"{spec.text()}: the result key '{spec.key}' is taken")
        other = next((s for s in out if s.key == spec.key), None)
        if other is not None:
            raise UsageError(f"{spec.text()}: the result key '{spec.key}' is taken (also given by {other.text()})")
        for loss in spec.losses:
            if loss not in registry.losses():
                raise UsageError(f"{spec.text()}: loss: {_unknown(loss, list(registry.losses()), 'loss family')}")
        out.append(spec)
    keys = native | {s.key for s in out}
    for spec in out:
        if spec.against is not None and (spec.against not in keys or spec.against == spec.key):
            raise UsageError(f"{spec.text()}: against: {_unknown(spec.against, sorted(keys - {spec.key}), 'result key')}")
    return tuple(out)
