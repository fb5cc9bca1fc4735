"""Loss families: one module each, found through the entry point group `conformance.losses`.

The core (case loading, the reference model, explanations, the fuzzer, the adapters' shared helpers)
never names a family: it reads the attributes below from `conformance.registry.loss(name)`, so a new
family (focal loss, KL divergence) is one module, its entry point, its tests and its cases.

The protocol: module attributes every family provides (`typing.Protocol` would only document them).

    NAME: str                 the family's name: the value of `loss:` in a case file and its entry point name.
    ORDER: int                optional; rank in the registry, schema and fuzzer (lower first; default 500).
    DEFAULT: bool             optional; the family of a case that names no `loss` (one family sets it).
    FIELDS: dict              its own case keys as pydantic field definitions, `{key: (annotation, None or
                              Field(default=None, ...))}`; merged into the case schema after the shared
                              keys, so a family adds keys (focal loss: `gamma`, `alpha`) without editing
                              cases.py. The default is None (not given): a case of another family that
                              gives one is an error naming the key. A key two families declare must be
                              declared alike (the first, in ORDER, is used).
    INSTEAD: dict[str, str]   optional; for another family's key given to a case of this one, what to write
                              instead (the second half of the error message).
    ARRAYS: dict[str, str]    its FIELDS that are arrays handed to the variants, with the name the variants'
                              code reads them by (binary: {"pos_weight": "pw"}).
    CLASS_AXIS: int | None    the predictions' class axis (softmax: 1, as in torch and ONNX); None for an
                              elementwise loss, whose last axis then counts as the classes (`Case.num_classes`)
                              and whose predictions no channels-last API needs moved (`adapters.moved`).
    INDEX_LABELS: bool        whether `labels` are integer class indices (handed over as int64 `y`), or
                              targets of the predictions' shape (handed over in the case dtype).
    build(spec, fail) -> dict
                              the case's arrays from the validated spec (pydantic model of every key):
                              `predictions`, `from_logits`, `labels`, `soft_labels`, `weight`, and a value
                              for each of FIELDS (they become `Case.extra`, read as `case.<key>`). Every
                              mistake is `raise fail(message, key)` (a CaseError with file, line and key).
                              The shared keys (`sample_weight`, `reduction`, `dtype`, ...) are the core's.
    textbook(case) -> Knobs   the family's textbook point of the knob model (the `reference` result).
    evaluate(case, knobs) -> Outcome
                              the float64 loss and its gradient w.r.t. the predictions at `knobs`; every knob
                              it may read is read as an attribute of `knobs` (the caller records which).
    KNOBS: dict[str, Any]     optional; the family's own knobs of the reference model and their
                              defaults (`reference.Knobs.own`: focal loss's class balancing), for
                              what the shared knobs do not cover. Read as `knobs.<name>` in evaluate;
                              documented points set them with `Knobs.of(..., name=value)`.
    PHRASES: dict             knob -> value -> what a framework with that value does ("divides the mean by the
                              number of positions"), for the knobs and values the family reads.
    ALTERNATIVES: dict        knob -> the values it can take for this family (the values a moved baseline
                              value is attributed to, in the order they are tried).
    recipe_source(case, knobs) -> list[str] | None
                              optional; NumPy lines building the soft target `T` and denominator `D` that
                              reproduce `knobs` through any framework's soft-label cross-entropy.
    variants(framework) -> list[Variant]
                              optional; the family's native calls in a framework (`adapters.Variant`,
                              the framework module's helpers may be used): a family that arrives after
                              a framework brings that framework's APIs for it in its own module(s),
                              instead of an edit of the framework module. [] for a framework it has none for.
    strategy() -> SearchStrategy[dict]
                              hypothesis strategy of case specs as written in YAML (`id` "fuzz"; `loss`
                              unless the family is the default), simplest values first so shrinking ends at
                              small cases. hypothesis is imported inside it, never at module level.

A family module is imported by every process that loads cases (workers too): keep it to NumPy at
module level. Below: the parsing helpers every family's `build` shares, and the merged views of all
families the core reads (`fields`, `phrases`, `alternatives`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from conformance import registry

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy

# What `build` receives to report a mistake: fail(message, key) -> the exception to raise.
Fail = Callable[[str, str], Exception]


# ---------------------------------------------------------------- parsing case values


def number(value: Any) -> Any:
    """Accept what YAML 1.1 leaves as strings (`1e-5`, `nan`, `inf`), refuse booleans (`no`, `off`)."""
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got the boolean {value!r} (YAML reads no/off/yes/on as booleans)")
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            raise ValueError(f"expected a number, got the string {value!r}") from None
    return value


def deep_numbers(value: Any, fail: Fail, key: str) -> Any:
    """A nested list with every leaf a number (YAML strings like `1e-5` converted), or `fail`."""
    if isinstance(value, list):
        return [deep_numbers(v, fail, key) for v in value]
    try:
        return number(value)
    except ValueError as exc:
        raise fail(f"{key}: {exc}", key) from None


def array(value: list[Any], what: str, fail: Fail, key: str, dtype: Any = np.float64) -> np.ndarray:
    """A rectangular float64 array from nested lists, or `fail` saying why not (ragged rows)."""
    try:
        arr = np.asarray([number(v) for v in value] if _flat(value) else value, dtype=dtype)
    except (ValueError, TypeError) as exc:
        text = str(exc)
        hint = "rows of different lengths (ragged)" if "inhomogeneous" in text or "sequence" in text else text
        raise fail(f"{what} is not a rectangular array of numbers: {hint}", key) from None
    if arr.dtype == object:
        raise fail(f"{what} is not a rectangular array of numbers", key)
    return arr


def _flat(value: list[Any]) -> bool:
    return all(not isinstance(v, list) for v in value)


def given_predictions(spec: Any, fail: Fail, random_shape_ok: Callable[[tuple[int, ...]], bool]) -> tuple[np.ndarray, str | None]:
    """The predictions as given, before the family checks their layout: logits generated from `random`
    (key None; its shape must satisfy `random_shape_ok`), or the parsed `logits` / `probs` (the key;
    probabilities checked to lie in [0, 1])."""
    if spec.random is not None:
        rng = np.random.default_rng(spec.random.seed)
        shape = tuple(spec.random.shape)
        if any(s < 0 for s in shape) or not random_shape_ok(shape):
            raise fail(f"random.shape {list(shape)} must be (N, C, d1, ...) with C >= 1", "random")
        return rng.standard_normal(shape) * spec.random.scale, None
    key = "logits" if spec.logits is not None else "probs"
    arr = array(deep_numbers(getattr(spec, key), fail, key), key, fail, key)
    if key == "probs" and np.any((arr < 0) | (arr > 1)):
        raise fail("probs must lie in [0, 1]", key)
    return arr, key


# ---------------------------------------------------------------- strategies


def nested(element: SearchStrategy[Any], shape: list[int]) -> SearchStrategy[Any]:
    """Nested lists of `shape` drawn from `element` (a YAML array)."""
    from hypothesis import strategies as st

    if len(shape) == 1:
        return st.lists(element, min_size=shape[0], max_size=shape[0])
    return st.lists(nested(element, shape[1:]), min_size=shape[0], max_size=shape[0])


def size(shape: list[int]) -> int:
    """How many elements an array of `shape` has."""
    total = 1
    for s in shape:
        total *= s
    return total


# ---------------------------------------------------------------- every family, merged


def families() -> dict[str, ModuleType]:
    """The registered families, in ORDER."""
    return registry.losses()


def fields() -> dict[str, tuple[Any, Any]]:
    """Every family's own case keys (pydantic field definitions), the first declaration of each."""
    return _fields(tuple(families().values()))


def owners(key: str) -> list[str]:
    """The families that declare `key` among their own FIELDS."""
    return [name for name, family in families().items() if key in family.FIELDS]


def phrases() -> dict[str, dict[Any, str]]:
    """knob -> value -> phrase, from every family (a value two families phrase keeps the first's)."""
    return _phrases(tuple(families().values()))


def alternatives() -> dict[str, list[Any]]:
    """knob -> every value any family lets it take, in family order, each once."""
    return _alternatives(tuple(families().values()))


def knobs() -> dict[str, Any]:
    """knob -> default, of the knobs families add for themselves (`KNOBS`), the first declaration of each."""
    return _knobs(tuple(families().values()))


@functools.cache
def _fields(modules: tuple[ModuleType, ...]) -> dict[str, tuple[Any, Any]]:
    out: dict[str, tuple[Any, Any]] = {}
    for module in modules:
        for key, definition in module.FIELDS.items():
            out.setdefault(key, definition)
    return out


@functools.cache
def _phrases(modules: tuple[ModuleType, ...]) -> dict[str, dict[Any, str]]:
    out: dict[str, dict[Any, str]] = {}
    for module in modules:
        for knob, phrased in module.PHRASES.items():
            merged = out.setdefault(knob, {})
            for value, phrase in phrased.items():
                merged.setdefault(value, phrase)
    return out


@functools.cache
def _alternatives(modules: tuple[ModuleType, ...]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for module in modules:
        for knob, values in module.ALTERNATIVES.items():
            merged = out.setdefault(knob, [])
            merged.extend(v for v in values if v not in merged)
    return out


@functools.cache
def _knobs(modules: tuple[ModuleType, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for module in modules:
        for knob, default in getattr(module, "KNOBS", {}).items():
            out.setdefault(knob, default)
    return out
