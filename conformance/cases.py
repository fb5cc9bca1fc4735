"""Case files: YAML -> validated, expanded `Case`s.

A case file is data; everything that can be wrong with it is caught here, before any framework runs,
and reported with the file, the line and the key. The schema is the pydantic model `case_model()`,
named `CaseSpec`: the shared keys below plus every registered loss family's own keys (`FIELDS`,
see `conformance.losses`), exported to `cases/schema.json` by `conformance schema`. What a case's
arrays are (layout, targets, weights) is its loss family's to say: `_build` hands the validated spec
to the family's `build`, and nothing here names a family.

MAX_ELEMENTS bounds the numbers any one array of a case may hold (default 2^24 = 16,777,216: a
[256, 50000] language-model head fits; 134 MB in float64, a few times that while the model runs);
it is checked on the shape before anything is generated, so `random: {shape: [200000, 100000]}` is a
CaseError naming `random`, not a MemoryError.
It is a module-level setting, raised by `--max-elements` (`conformance run`, `baseline save`) and
`--conformance-max-elements` (pytest) before anything is loaded.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import itertools
import json
import math
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Annotated, Any, Literal, get_args

import numpy as np
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, create_model, field_validator

from conformance import losses, registry, yamlfile
from conformance.contract import LossFamily
from conformance.errors import CaseError

ID_PATTERN = r"^[A-Za-z0-9_.-]+$"
MAX_ELEMENTS = 2**24  # numbers in any one array of a case (see the module docstring)


def _integer(value: Any) -> Any:
    if isinstance(value, bool) or isinstance(value, float) and not value.is_integer():
        raise ValueError(f"expected an integer, got {value!r}")
    return value


def _positive(value: float | None) -> float | None:
    if value is not None and not 0 < value < math.inf:  # an endless budget would let a hung case wait for ever
        raise ValueError("expected a finite number of seconds above 0")
    return value


def _as_list(value: Any) -> Any:
    """`expect:` may be one mapping or a list of mappings with `when:`."""
    return [value] if isinstance(value, dict) else value


Number = Annotated[float, BeforeValidator(losses.number)]
Integer = Annotated[int, BeforeValidator(_integer)]
Dtype = Literal["float16", "bfloat16", "float32", "float64"]
PREDICTIONS = ("logits", "probs", "random")  # the keys that give the predictions
ANY_RESULT = "*"  # in `expect: status:`, every result the case does not name


class Tolerance(BaseModel):
    """Overrides the dtype's default; agreement is |a-b| <= atol + rtol*max(|a|,|b|)."""

    model_config = ConfigDict(extra="forbid")
    rtol: Number | None = Field(default=None, ge=0, description="relative tolerance (default: the dtype's)")
    atol: Number | None = Field(default=None, ge=0, description="absolute tolerance (default: the dtype's)")


class RandomSpec(BaseModel):
    """Generated logits: standard normal times `scale`, reproducible from `seed`; with `probabilities`,
    turned into probabilities (softmax along the family's class axis, or the sigmoid of each element)."""

    model_config = ConfigDict(extra="forbid")
    shape: list[Integer] = Field(min_length=1, description="the predictions' shape, e.g. [N, C] or [N, C, d1, ..., dk]")
    seed: Integer = Field(
        default=0, description="seed of NumPy's default_rng; labels, weights and pos_weight given as random draw from seed + 1, + 2, + 3"
    )
    scale: Number = Field(default=1.0, description="the standard normal logits are multiplied by it")
    probabilities: bool = Field(
        default=False,
        description="true: the logits are turned into probabilities (softmax along the class axis; binary: the sigmoid of each element)",
    )


class Expectation(BaseModel):
    """What the author expects: the agreement groups and, optionally, non-ok statuses.

    Only the result keys named are checked, so a variant added later breaks no case.
    """

    model_config = ConfigDict(extra="forbid")
    when: dict[str, Any] | None = Field(
        default=None,
        description="the parameters this entry applies to (a list value means any of); later matching entries override earlier ones",
    )
    groups: list[list[str]] | None = Field(default=None, description="the expected partition of the result keys into agreeing groups")
    status: dict[str, Literal["ok", "unsupported", "error", "crashed"]] | None = Field(
        default=None, description="result key -> status; '*' stands for every result not named (unsupported ones aside)"
    )
    values: dict[str, Number | list[Any]] | None = Field(
        default=None,
        description=(
            "numbers printed in documentation that a result must reproduce: matched to one unit of their last digit, "
            "or 4 float32 ulps for long float32 prints"
        ),
    )

    @field_validator("when")
    @classmethod
    def _known_when_keys(cls, when: dict[str, Any] | None) -> dict[str, Any] | None:
        known = case_model().model_fields
        for key in when or {}:
            if key not in known or key in ("expect", "matrix"):
                raise ValueError(_unknown_message(key, [k for k in known if k not in ("expect", "matrix")]))
        return when

    def statuses(self, found: dict[str, str]) -> dict[str, str]:
        """The statuses expected of the results `found` (key -> status): those named, and '*' for every
        other result that ran (an `unsupported` one ran nothing, so '*' does not apply to it)."""
        named: dict[str, str] = {k: v for k, v in (self.status or {}).items() if k != ANY_RESULT}
        default = (self.status or {}).get(ANY_RESULT)
        if default is not None:
            named.update({k: default for k, status in found.items() if k not in named and status != "unsupported"})
        return named

    def matches(self, params: dict[str, Any]) -> bool:
        """A `when` value matches a parameter equal to it, or, given a list, a parameter in that list."""
        for key, wanted in (self.when or {}).items():
            have = params.get(key)
            if have == wanted:
                continue
            if isinstance(wanted, list) and have in wanted:
                continue
            return False
        return True


class _SharedKeys(BaseModel):
    """The keys every loss family takes, in the order the schema and error messages list them; the
    families' own keys go after `weight`, and `loss` takes the registered names (`case_model`)."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=ID_PATTERN, description="unique in the file, [A-Za-z0-9_.-]+; a matrix adds [key=value,...]")
    description: str | None = Field(default=None, description="free text shown in the report; upstream references in it become links")
    loss: str | None = Field(default=None, description="the loss family: one of the registered families")
    logits: Annotated[list[Any] | losses.Generated | None, BeforeValidator(losses.as_generated)] = Field(
        default=None,
        description=f"predictions as logits (nested lists, or {losses.GENERATED}, uniform); exactly one of logits, probs, random",
    )
    probs: Annotated[list[Any] | losses.Generated | None, BeforeValidator(losses.as_generated)] = Field(
        default=None,
        description=f"predictions as probabilities (from_logits false); or {losses.GENERATED}, uniform, normalised over the class axis",
    )
    random: RandomSpec | None = Field(
        default=None, description="generated logits (or probabilities): `{shape, seed, scale, probabilities}`"
    )
    labels: Annotated[list[Any] | Literal["random"] | losses.Generated | None, BeforeValidator(losses.as_generated)] = Field(
        default=None,
        description=(
            "targets as class indices (binary: 0/1 of the predictions' shape), or random; exactly one of labels, soft_labels. "
            "Class indices may carry a trailing axis of 1, [N, d1, ..., 1] (paddle's form): each framework gets them as its users "
            "pass them (paddle's losses and Keras's SparseCategoricalCrossentropy as given; torch, tf.nn, one_hot and optax squeezed, "
            "the squeeze shown in the snippet); or {shape, seed}: class indices in [0, C) (binary: 0/1) of that shape, [N, ..., 1] too"
        ),
    )
    soft_labels: Annotated[list[Any] | Literal["random"] | losses.Generated | None, BeforeValidator(losses.as_generated)] = Field(
        default=None,
        description=(
            "targets as per-class probabilities (binary: soft targets in [0, 1]), or random (drawn from default_rng(seed + 1)), "
            f"or {losses.GENERATED}, uniform (normalised over the class axis where there is one)"
        ),
    )
    weight: Annotated[list[Any] | Literal["random"] | losses.Generated | None, BeforeValidator(losses.as_generated)] = Field(
        default=None,
        description=(
            "softmax: per-class weights, length C; binary: element weights broadcast to the predictions; random: positive, "
            "uniform in [0.5, 2) from default_rng(seed + 2) (softmax: one per class; binary: one per element); "
            f"or {losses.GENERATED}, uniform"
        ),
    )
    sample_weight: list[Number] | None = Field(
        default=None,
        description=(
            "per-sample weights, length N (native in Keras and tf.compat.v1; torch and paddle run the reduction='none' recipe, "
            "shown in the snippet)"
        ),
    )
    label_smoothing: Number = Field(default=0.0, ge=0.0, lt=1.0, description="0 <= x < 1")
    ignore_index: Integer | None = Field(default=None, description="labels equal to it are ignored (may lie outside [0, C))")
    # none/mean/sum: each framework's own; the others are framework-specific reductions made explicit, run
    # natively where a framework has them and through the idiomatic reduction='none' recipe elsewhere.
    # A family adds its own (`REDUCTIONS`, e.g. KL divergence's batchmean): `case_model` extends this list.
    reduction: Literal["none", "mean", "sum", "sum_over_batch_size", "mean_with_sample_weight", "sum_by_nonzero_weights"] = Field(
        default="mean",
        description=(
            "each framework's own none, mean, sum; or a framework-specific reduction made explicit: sum_over_batch_size, "
            "mean_with_sample_weight, sum_by_nonzero_weights (tf.compat.v1's default), run natively where a framework has it and "
            "through the reduction='none' recipe elsewhere. A loss family may add its own, accepted for its cases only"
        ),
    )
    # one dtype for every array, or {array key: dtype} (AMP: {logits: float16, weight: float32}); arrays the
    # mapping does not name take the predictions' dtype (default float32)
    dtype: Dtype | dict[str, Dtype] = Field(
        default="float32",
        description=(
            "one dtype for every array, or a mapping from array key to dtype ({logits: float16, weight: float32}, mixed "
            "precision): each array is handed over (and rounded for the reference) in its own dtype; an array the mapping does "
            "not name takes the predictions' dtype, which picks the tolerance. What a framework does with the mix (promotes, "
            "casts, raises) is its result"
        ),
    )
    labels_dtype: Literal["int32", "int64"] | None = Field(default=None, description="class indices' dtype (default int64)")
    check_shapes: bool | None = Field(
        default=None,
        description=(
            "false: the shapes are mismatched on purpose (labels of another batch, a weight of another length, binary targets of "
            "another rank), and every framework is expected to raise; one that is ok is a finding (the expectation is violated "
            "unless the case names it, e.g. status: {jax: ok}). The reference has no formula there and raises too"
        ),
    )
    tolerance: Tolerance | None = Field(
        default=None, description="`{rtol, atol}` overriding the dtype's default (and the allowance at size)"
    )
    matrix: dict[str, list[Any]] | None = Field(
        default=None, description="`{key: [values]}`: one case per combination (the cartesian product), ids ID[key=value,...]"
    )
    timeout: Annotated[Number | None, AfterValidator(_positive)] = Field(
        default=None,
        description="seconds of CPU time this case may take in each framework's worker (replaces --timeout and its allowance for size)",
        json_schema_extra={"exclusiveMinimum": 0},
    )
    expect: Annotated[
        list[Expectation] | None,
        BeforeValidator(_as_list, json_schema_input_type=Expectation | list[Expectation] | None),
    ] = Field(
        default=None,
        description="one mapping or a list of mappings (`when`, `groups`, `status`, `values`); checked only on the result keys it names",
    )


FAMILY_KEYS_AFTER = "weight"
SHARED_REDUCTIONS: tuple[str, ...] = get_args(_SharedKeys.model_fields["reduction"].annotation)


def case_model() -> type[BaseModel]:
    """The pydantic model of one case as written in YAML (after `defaults` and one `matrix` combination
    are merged in): the shared keys, `loss` one of the registered families, and every family's own keys."""
    return _case_model(tuple(registry.losses().items()))


@functools.cache
def _case_model(families: tuple[tuple[str, LossFamily], ...]) -> type[BaseModel]:
    names = tuple(name for name, _ in families)
    default = next((name for name, family in families if family.DEFAULT), ...)
    definitions: dict[str, Any] = {}
    for key, info in _SharedKeys.model_fields.items():
        definitions[key] = (info.annotation, info)
        if key == "loss":
            definitions[key] = (Literal.__getitem__(names), Field(default=default, description=info.description))
        if key == "reduction":
            definitions[key] = (
                Literal.__getitem__(SHARED_REDUCTIONS + losses.reductions()),
                Field(default="mean", description=info.description),
            )
        if key == FAMILY_KEYS_AFTER:
            definitions.update(losses.fields())
    model: type[BaseModel] = create_model(  # type: ignore[call-overload]
        "CaseSpec",
        __config__=ConfigDict(extra="forbid"),
        __doc__="One case as written in YAML, after `defaults` and one `matrix` combination are merged in.",
        **definitions,
    )
    return model


@dataclass(frozen=True)
class Case:
    """A runnable case: validated parameters plus the float64 arrays every framework receives.

    Arrays are float64 master copies; each is handed over in its own dtype (`dtype_of`: the case's
    `dtype`, the predictions', unless `dtypes` names it), and the reference computes on the same values
    rounded to those dtypes. Class indices are handed over as `labels_dtype`, with a trailing axis of 1
    where the case gave them so (`trailing_label_axis`; `labels` here is without it). `check_shapes`
    False: the shapes are mismatched on purpose and every framework is expected to raise.
    """

    id: str
    file: str
    line: int
    params: dict[str, Any]
    loss: str
    predictions: np.ndarray
    from_logits: bool
    labels: np.ndarray | None
    soft_labels: np.ndarray | None
    weight: np.ndarray | None
    label_smoothing: float
    ignore_index: int | None
    reduction: str
    dtype: str
    tolerance: dict[str, float] = field(default_factory=dict)
    expect: Expectation | None = None
    description: str | None = None
    sample_weight: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    dtypes: dict[str, str] = field(default_factory=dict)
    labels_dtype: str = "int64"
    trailing_label_axis: bool = False
    check_shapes: bool = True
    timeout: float | None = None
    """Its own budget of CPU seconds in a worker (`conformance.budget`); None: `--timeout` and its size's share."""

    def dtype_of(self, key: str | None) -> str:
        """The dtype the array of case key `key` is handed over in (`predictions`, `labels`,
        `soft_labels`, `weight`, `sample_weight`, a family's own array key): its own where `dtype:` maps
        it, else the case dtype. None: the case dtype."""
        return self.dtypes.get(key, self.dtype) if key else self.dtype

    def __getattr__(self, name: str) -> Any:
        """A loss family's own key (`FIELDS`) reads as an attribute, `case.pos_weight`: its value from
        `extra`, None where the case does not give it (or its family has no such key)."""
        if name.startswith("_") or name not in losses.fields():
            raise AttributeError(f"'Case' object has no attribute '{name}'")
        return self.__dict__.get("extra", {}).get(name)

    @property
    def family(self) -> LossFamily:
        """The module of the case's loss family (see `conformance.losses`)."""
        return registry.loss(self.loss)

    @property
    def num_classes(self) -> int:
        """C: the size of the family's class axis (softmax: axis 1); an elementwise family counts its
        last axis (where a per-class weight has its entries)."""
        axis = self.family.CLASS_AXIS
        if axis is None:
            return int(self.predictions.shape[-1]) if self.predictions.ndim else 1
        return int(self.predictions.shape[axis])

    @property
    def targets(self) -> np.ndarray:
        return self.labels if self.labels is not None else self.soft_labels  # type: ignore[return-value]

    @property
    def nodeid(self) -> str:
        return f"{self.file}::{self.id}"


# ---------------------------------------------------------------- loading


def read(paths: list[Path]) -> Iterator[Case]:
    """Every case of every YAML file under `paths`, in a stable order, each validated as it is read
    (a bad one raises when it is reached; `conformance run` spools them all before any runs)."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml")))
        elif path.is_file():
            files.append(path)
        else:
            raise CaseError(str(path), "no such file or directory")
    for file in files:
        yield from read_file(file)


def load_paths(paths: list[Path]) -> list[Case]:
    """Every case of every YAML file under `paths`, in a stable order; the first bad file raises."""
    return list(read(paths))


def read_file(path: Path) -> Iterator[Case]:
    """The expanded cases of one file, read and validated one at a time (memory follows one case, not
    the file)."""
    return _read(lambda: path.open(encoding="utf-8"), _display(path))


def load_file(path: Path) -> list[Case]:
    """The expanded cases of one file."""
    return list(read_file(path))


def load_text(text: str, name: str) -> list[Case]:
    """The expanded cases of a case file's text; `name` is how errors and ids refer to the file."""
    return list(_read(lambda: text, name))


Source = Callable[[], "IO[str] | str"]
"""Opens a case file's text (once for the cases, once more if `defaults:` comes after them)."""


def _read(source: Source, name: str) -> Iterator[Case]:
    """The cases of one file as its `cases:` list is read, item by item. `defaults:` may come before or
    after `cases:`: after, a second reader finds it first, passing over the cases (events only). Ids
    are checked for duplicates as they come (a set of ids is kept, not the cases)."""
    with _opened(source, name) as stream, yamlfile.Document(stream, name) as doc:
        if not doc.mapping():
            raise CaseError(name, "a case file is a mapping with a 'cases:' list (and optional 'defaults:')", 1)
        defaults: dict[str, Any] | None = None
        default_lines: dict[tuple[Any, ...], int] = {}
        listed = False
        for key, line in doc.keys():
            if key == "defaults" and listed:
                doc.skip()  # read already, by `_later_defaults`
            elif key == "defaults":
                defaults, default_lines = _defaults(*doc.value(("defaults",), line), name)
            elif key == "cases":
                listed = True
                if defaults is None:
                    defaults, default_lines = _later_defaults(source, name)
                items = doc.items(("cases",))
                if items is None or not (yield from _cases(items, defaults, default_lines, name)):
                    raise CaseError(name, "'cases:' must be a non-empty list of cases", line, "cases")
            else:
                raise CaseError(name, _unknown_message(str(key), ["cases", "defaults"]), line, str(key))
        if not listed:
            raise CaseError(name, "'cases:' must be a non-empty list of cases", 1, "cases")


@contextlib.contextmanager
def _opened(source: Source, name: str) -> Iterator[IO[str] | str]:
    """The file's text as a stream; a file that cannot be opened or decoded is a CaseError."""
    try:
        stream = source()
    except OSError as exc:
        raise CaseError(name, f"cannot read the file: {exc}") from None
    try:
        yield stream
    except (OSError, UnicodeDecodeError) as exc:  # the stream is read as it is parsed
        raise CaseError(name, f"cannot read the file: {exc}") from None
    finally:
        if not isinstance(stream, str):
            stream.close()


def _defaults(value: Any, lines: dict[tuple[Any, ...], int], name: str) -> tuple[dict[str, Any], dict[tuple[Any, ...], int]]:
    defaults = value or {}
    if not isinstance(defaults, dict):
        raise CaseError(name, "'defaults:' must be a mapping of case keys", lines.get(("defaults",)), "defaults")
    return defaults, lines


def _later_defaults(source: Source, name: str) -> tuple[dict[str, Any], dict[tuple[Any, ...], int]]:
    """`defaults:` written after `cases:` (or {} if there is none), read before the first case needs it."""
    with _opened(source, name) as stream, yamlfile.Document(stream, name) as doc:
        doc.mapping()
        for key, line in doc.keys():
            if key == "defaults":
                return _defaults(*doc.value(("defaults",), line), name)
            doc.skip()
    return {}, {}


def _cases(
    items: Iterator[tuple[Any, dict[tuple[Any, ...], int]]], defaults: dict[str, Any], default_lines: dict[tuple[Any, ...], int], name: str
) -> Generator[Case, None, int]:
    """The expanded cases of the `cases:` list's items; returns how many items there were."""
    seen_ids: dict[str, int] = {}
    expanded: dict[str, int] = {}
    count = 0
    for index, (raw, lines) in enumerate(items):
        count += 1
        where = ("cases", index)
        lines.update(default_lines)
        if not isinstance(raw, dict):
            raise CaseError(name, "each case is a mapping (id, logits, labels, ...)", lines.get(where))
        origin = {key: ("defaults", key) for key in defaults}
        origin.update({key: where + (key,) for key in raw})
        merged = {**defaults, **raw}
        base_id = merged.get("id")
        if isinstance(base_id, str) and base_id in seen_ids:
            raise CaseError(
                name,
                f"duplicate case id '{base_id}' (first used on line {seen_ids[base_id]})",
                lines.get(where + ("id",)),
                "id",
            )
        if isinstance(base_id, str):
            seen_ids[base_id] = lines.get(where + ("id",), 0)
        for case in _expand(merged, origin, where, lines, name):
            if case.id in expanded:
                raise CaseError(
                    name,
                    f"two matrix entries expand to the same case id '{case.id}' (first from line {expanded[case.id]}); "
                    "make the matrix values distinct",
                    case.line,
                    "matrix",
                )
            expanded[case.id] = case.line
            yield case
    return count


def _expand(merged: dict[str, Any], origin: dict[str, tuple[Any, ...]], where: tuple[Any, ...], lines: dict, name: str) -> Iterator[Case]:
    matrix = merged.get("matrix")
    if "id" not in merged:
        raise CaseError(name, "each case needs an 'id' (letters, digits, '_', '.', '-')", lines.get(where), "id")
    if not isinstance(merged["id"], str):
        raise CaseError(
            name, f"'id' must be text, got {merged['id']!r} (quote it: id: \"{merged['id']}\")", _line(lines, origin, "id"), "id"
        )
    if matrix is None:
        yield _build(merged, origin, where, lines, name, {})
        return
    if not isinstance(matrix, dict) or not matrix:
        raise CaseError(name, "'matrix:' must map case keys to lists of values", _line(lines, origin, "matrix"), "matrix")
    for key, values in matrix.items():
        mat_origin = origin["matrix"] + (key,)
        if key in ("id", "matrix", "expect", "description"):
            raise CaseError(name, f"'{key}' cannot vary in a matrix", lines.get(mat_origin), f"matrix.{key}")
        if key not in case_model().model_fields:
            raise CaseError(name, _unknown_message(key, case_model().model_fields), lines.get(mat_origin), f"matrix.{key}")
        if not isinstance(values, list) or not values:
            raise CaseError(name, f"matrix values for '{key}' must be a non-empty list", lines.get(mat_origin), f"matrix.{key}")
    keys = list(matrix)
    for i, combo in enumerate(itertools.product(*(matrix[k] for k in keys))):
        entry = dict(merged)
        entry_origin = dict(origin)
        label = ",".join(f"{k}={_format_value(v)}" for k, v in zip(keys, combo, strict=True))
        for key, value, j in zip(keys, combo, _indices(matrix, keys, i), strict=True):
            entry[key] = value
            entry_origin[key] = origin["matrix"] + (key, j)
        yield _build(entry, entry_origin, where, lines, name, dict(zip(keys, combo, strict=True)), f"[{label}]")


def _indices(matrix: dict[str, list[Any]], keys: list[str], flat: int) -> list[int]:
    """Position of each key's value in its list for the `flat`-th combination (row-major)."""
    out = []
    for key in reversed(keys):
        size = len(matrix[key])
        out.append(flat % size)
        flat //= size
    return list(reversed(out))


def _format_value(value: Any) -> str:
    if isinstance(value, (list, dict)):
        return json.dumps(value, separators=(",", ":"))
    if value is None:
        return "null"
    return str(value)


def _build(
    entry: dict[str, Any],
    origin: dict[str, tuple[Any, ...]],
    where: tuple[Any, ...],
    lines: dict,
    name: str,
    varied: dict[str, Any],
    suffix: str = "",
) -> Case:
    spec_input = {k: v for k, v in entry.items() if k != "matrix"}
    try:
        spec: Any = case_model().model_validate(spec_input)
    except ValidationError as exc:
        raise _from_validation(exc, origin, where, lines, name) from None
    case_line = lines.get(where, 0)

    def fail(message: str, key: str) -> CaseError:
        return CaseError(name, f"case '{spec.id}{suffix}': {message}", _line(lines, origin, key) or case_line, key)

    for group in (("logits", "probs", "random"), ("labels", "soft_labels")):
        given = [k for k in group if getattr(spec, k) is not None]
        if len(given) != 1:
            raise fail(f"give exactly one of {', '.join(group)} (got {' and '.join(given) or 'none'})", (given or group)[-1])

    _check_sizes(spec, fail)
    family = registry.loss(spec.loss)
    if spec.reduction not in SHARED_REDUCTIONS + tuple(family.REDUCTIONS):
        owners = [name for name, other in registry.losses().items() if spec.reduction in other.REDUCTIONS]
        raise fail(
            f"reduction '{spec.reduction}' is for {' and '.join(owners)} only; {family.NAME} takes {', '.join(SHARED_REDUCTIONS)}",
            "reduction",
        )
    dtype, dtypes = _dtypes(spec, family, _dtype_fail(name, f"case '{spec.id}{suffix}'", lines, origin, case_line))
    if spec.labels_dtype is not None and not family.INDEX_LABELS:
        raise fail(f"labels_dtype is for class indices; {family.NAME}'s labels are targets: give dtype: {{labels: ...}}", "labels_dtype")
    built = family.build(spec, fail)
    _foreign_keys(spec, family, fail)
    extra = {key: built.pop(key) for key in family.FIELDS}
    mismatched = list(built.pop("mismatched", ()))
    predictions = built["predictions"]
    sample_weight = None
    if spec.sample_weight is not None:
        sample_weight = np.asarray(spec.sample_weight, dtype=np.float64)
        if sample_weight.shape != predictions.shape[:1] and spec.check_shapes is not False:
            raise fail(f"sample_weight has {sample_weight.size} entries, one per sample is {predictions.shape[0]}", "sample_weight")
        if sample_weight.shape != predictions.shape[:1]:
            mismatched.append("sample_weight")
        if np.any(sample_weight < 0) or not np.all(np.isfinite(sample_weight)):
            raise fail("sample_weight must be finite and >= 0", "sample_weight")
    if spec.check_shapes is False and not mismatched:
        raise fail("check_shapes: false keeps mismatched shapes on purpose, but every shape of this case fits", "check_shapes")
    params = {k: v for k, v in spec.model_dump(exclude_none=True).items() if k not in ("expect", "matrix", "description")}
    params.update({k: v for k, v in varied.items()})
    expect = _effective_expectation(spec, {**spec.model_dump(exclude={"expect", "matrix"}), **varied})
    return Case(
        id=spec.id + suffix,
        file=name,
        line=case_line,
        params=params,
        loss=spec.loss,
        **built,
        sample_weight=sample_weight,
        label_smoothing=float(spec.label_smoothing),
        ignore_index=spec.ignore_index,
        reduction=spec.reduction,
        dtype=dtype,
        dtypes=dtypes,
        labels_dtype=spec.labels_dtype or "int64",
        check_shapes=spec.check_shapes is not False,
        tolerance=spec.tolerance.model_dump(exclude_none=True) if spec.tolerance else {},
        timeout=spec.timeout,
        expect=expect,
        description=spec.description,
        extra=extra,
    )


def _dtypes(spec: Any, family: LossFamily, fail: Any) -> tuple[str, dict[str, str]]:
    """The case dtype (the predictions') and the arrays' own dtypes, from `dtype:` (one name, or a mapping
    from array key to dtype). A mapping names the predictions by the key the case gives them with; class
    indices take `labels_dtype` instead; an array the mapping does not name takes the predictions' dtype."""
    if isinstance(spec.dtype, str):
        return spec.dtype, {}
    given = next(key for key in PREDICTIONS if getattr(spec, key) is not None)
    arrays = ["soft_labels", "weight", "sample_weight", *family.ARRAYS] + ([] if family.INDEX_LABELS else ["labels"])
    dtypes: dict[str, str] = {}
    for key, value in spec.dtype.items():
        if key in PREDICTIONS and key != given:
            raise fail(f"dtype names {key}, but this case gives its predictions as {given}", f"dtype.{key}")
        if key == "labels" and family.INDEX_LABELS:
            raise fail("class indices take labels_dtype (int32 or int64), not a float dtype", "dtype.labels")
        if key != given and key not in arrays:
            raise fail(f"dtype: {_unknown_message(key, [given, *arrays]).replace('key', 'array key', 1)}", f"dtype.{key}")
        dtypes["predictions" if key == given else key] = value
    return dtypes.pop("predictions", "float32"), dtypes


def _dtype_fail(name: str, case: str, lines: dict, origin: dict[str, tuple[Any, ...]], case_line: int) -> Any:
    """`fail` for a key inside the `dtype:` mapping: the line of that key."""

    def fail(message: str, key: str) -> CaseError:
        inner = origin["dtype"] + (key.split(".", 1)[1],)
        return CaseError(name, f"{case}: {message}", lines.get(inner) or _line(lines, origin, "dtype") or case_line, key)

    return fail


def _check_sizes(spec: Any, fail: Any) -> None:
    """No array of the case may hold more than MAX_ELEMENTS numbers: checked on the written lists and
    on `random.shape`, before the family parses or generates anything."""
    if spec.random is not None:
        count = math.prod(max(s, 0) for s in spec.random.shape)
        if count > MAX_ELEMENTS:
            raise fail(
                f"random.shape {list(spec.random.shape)} would generate {count:,} numbers; a case array holds at most "
                f"{MAX_ELEMENTS:,} (raise it with --max-elements)",
                "random",
            )
    for key, value in spec:
        if isinstance(value, losses.Generated) and math.prod(max(s, 0) for s in value.shape) > MAX_ELEMENTS:
            raise fail(
                f"{key}.shape {list(value.shape)} would generate {math.prod(value.shape):,} numbers; a case array holds at most "
                f"{MAX_ELEMENTS:,} (raise it with --max-elements)",
                key,
            )
        if isinstance(value, list) and key not in ("expect", "matrix"):
            count = _numbers(value)
            if count > MAX_ELEMENTS:
                raise fail(
                    f"{key} holds {count:,} numbers; a case array holds at most {MAX_ELEMENTS:,} (raise it with --max-elements)", key
                )


def _numbers(value: Any) -> int:
    """How many numbers nested lists hold (a row of numbers counts as its length: no walk per number)."""
    if not isinstance(value, list):
        return 1
    if value and not isinstance(value[0], list):
        return len(value)
    return sum(_numbers(v) for v in value)


def _foreign_keys(spec: Any, family: LossFamily, fail: Any) -> None:
    """Another family's own key given to this case is an error naming the key (after the family has
    checked its own keys, so the first mistake of a case is reported first, as it always was)."""
    for key in losses.fields():
        if key in family.FIELDS or getattr(spec, key) is None:
            continue
        instead = family.INSTEAD.get(key) or f"{family.NAME} has no {key}"
        raise fail(f"{key} is for {' and '.join(losses.owners(key))}; {instead}", key)


def _effective_expectation(spec: Any, params: dict[str, Any]) -> Expectation | None:
    """Entries apply in order; a later matching entry overrides the fields it sets. `when` is matched
    against the validated parameters, so a key left at its default (reduction: mean) matches too."""
    raises = {ANY_RESULT: "error"} if spec.check_shapes is False else {}  # shapes mismatched on purpose: all raise
    merged: dict[str, Any] = {"status": raises} if raises else {}
    for item in spec.expect or []:
        if item.matches(params):
            merged.update(item.model_dump(exclude_none=True, exclude={"when"}))
    if raises:
        merged["status"] = {**raises, **merged["status"]}
    return Expectation(**merged) if merged else None


# ---------------------------------------------------------------- error messages


def _line(lines: dict, origin: dict[str, tuple[Any, ...]], key: str) -> int | None:
    path = origin.get(key)
    return lines.get(path) if path is not None else None


def _from_validation(exc: ValidationError, origin: dict[str, tuple[Any, ...]], where: tuple[Any, ...], lines: dict, name: str) -> CaseError:
    err = exc.errors()[0]
    loc = [str(p) for p in err["loc"]]
    key = loc[0] if loc else None
    if err["type"] == "extra_forbidden" and key is not None:
        message = _unknown_message(loc[-1], case_model().model_fields if len(loc) == 1 else _sub_fields(loc))
        if len(loc) > 1:
            message = f"{'.'.join(loc[:-1])}: {message}"
    else:
        value = err.get("input")
        shown = "" if isinstance(value, dict) else f" (got {_short(value)})"
        message = f"{'.'.join(loc) or 'case'}: {err['msg'].removeprefix('Value error, ')}{shown}"
    line = None
    if key is not None and key in origin:
        rest = tuple(int(p) if p.isdigit() else p for p in loc[1:])
        if key == "expect" and rest[:1] == (0,) and origin[key] + (0,) not in lines:
            rest = rest[1:]  # `expect:` written as one mapping, validated as a list of one
        path = origin[key] + rest
        while path and path not in lines:
            path = path[:-1]
        line = lines.get(path)
    return CaseError(name, message, line or lines.get(where), ".".join(loc) or None)


def _sub_fields(loc: list[str]) -> dict[str, Any]:
    models: dict[str, type[BaseModel]] = {"tolerance": Tolerance, "random": RandomSpec, "expect": Expectation}
    model = models.get(loc[0])
    return model.model_fields if model else {}


def _unknown_message(key: str, known: Any) -> str:
    close = difflib.get_close_matches(key, list(known), n=1)
    hint = f"; did you mean '{close[0]}'?" if close else f"; known keys: {', '.join(known)}"
    return f"unknown key '{key}'{hint}"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _unknown_keys(doc: dict, allowed: set[str], path: tuple, lines: dict, name: str) -> None:
    for key in doc:
        if key not in allowed:
            raise CaseError(name, _unknown_message(str(key), sorted(allowed)), lines.get(path + (key,)), str(key))


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def schema() -> dict[str, Any]:
    """JSON schema of a case file, for editors that validate YAML as it is typed."""
    case = case_model().model_json_schema()
    defs = case.pop("$defs", {})
    defaults = json.loads(json.dumps(case))
    defaults["required"] = []
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "conformance case file",
        "type": "object",
        "additionalProperties": False,
        "required": ["cases"],
        "properties": {
            "defaults": defaults,
            "cases": {"type": "array", "minItems": 1, "items": case},
        },
        "$defs": defs,
    }


LOSSES = tuple(registry.losses())  # the registered loss families' names, in their ORDER
