"""Loss families: one module each, found through the entry point group `conformance.losses`.

The core (case loading, the reference model, explanations, the fuzzer, the adapters' shared helpers)
never names a family: it reads the members a family declares, as the plug-in contract lists them
(`conformance.contract.LossFamily`, each member's type, default and meaning; docs/extending.md), from
`conformance.registry.loss(name)`, so a new family (focal loss, KL divergence) is one module, its entry
point, its tests and its cases.

Below: the parsing helpers every family's `build` shares, and the merged views of all families the
core reads (`fields`, `phrases`, `alternatives`, `reductions`, `knobs`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from conformance import registry
from conformance.contract import Fail as Fail
from conformance.contract import LossFamily

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy


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
            raise fail(f"random.shape {list(shape)} does not fit {spec.loss}'s layout (N, C, d1, ...)", "random")
        logits = rng.standard_normal(shape) * spec.random.scale
        if spec.random.probabilities:
            return probabilities(logits, registry.loss(spec.loss).CLASS_AXIS), "probs"
        return logits, None
    key = "logits" if spec.logits is not None else "probs"
    arr = array(deep_numbers(getattr(spec, key), fail, key), key, fail, key)
    if key == "probs" and np.any((arr < 0) | (arr > 1)):
        raise fail("probs must lie in [0, 1]", key)
    return arr, key


def probabilities(logits: np.ndarray, axis: int | None) -> np.ndarray:
    """Probabilities from logits: the softmax along the class `axis`, or (None) each element's sigmoid.
    An empty class axis stays empty."""
    if axis is None:
        return 1.0 / (1.0 + np.exp(-logits))
    if logits.shape[axis] == 0:
        return logits
    e = np.exp(logits - logits.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)  # type: ignore[no-any-return]


def random_weights(spec: Any, shape: tuple[int, ...], stream: int) -> np.ndarray:
    """`weight: random` and the like: positive weights in [0.5, 2) of `shape`, reproducible from the
    case's `random.seed` (0 without `random`); `stream` keeps each key's numbers apart (weight 2,
    pos_weight 3; labels and soft labels use 1)."""
    seed = spec.random.seed if spec.random is not None else 0
    return np.random.default_rng(seed + stream).uniform(0.5, 2.0, size=shape)


# ---------------------------------------------------------------- generated arrays in snippets


def seed_of(case: Any) -> int:
    """The case's `random.seed` (0 without `random`), from its parameters."""
    return int((case.params.get("random") or {}).get("seed", 0))


def generated_predictions(case: Any) -> list[str] | None:
    """NumPy lines that regenerate `x` from the case's `random` spec as `given_predictions` drew it
    (float64, before its dtype), or None where the predictions were written out."""
    spec = case.params.get("random")
    if not spec:
        return None
    shape = tuple(spec["shape"])
    lines = [f"x = np.random.default_rng({int(spec.get('seed', 0))}).standard_normal({shape}) * {float(spec.get('scale', 1.0))!r}"]
    if spec.get("probabilities"):
        lines += probability_lines("x", shape, registry.loss(case.loss).CLASS_AXIS)
    return lines


def probability_lines(name: str, shape: tuple[int, ...], axis: int | None) -> list[str]:
    """`probabilities` as NumPy lines on the array `name` (the same operations, so the same values)."""
    if axis is None:
        return [f"{name} = 1.0 / (1.0 + np.exp(-{name}))"]
    if shape[axis] == 0:
        return []
    return [f"e = np.exp({name} - {name}.max(axis={axis}, keepdims=True))", f"{name} = e / e.sum(axis={axis}, keepdims=True)"]


def weights_line(name: str, case: Any, shape: tuple[int, ...], stream: int) -> list[str]:
    """`random_weights` as a NumPy line."""
    return [f"{name} = np.random.default_rng({seed_of(case) + stream}).uniform(0.5, 2.0, size={tuple(shape)})"]


# ---------------------------------------------------------------- strategies


def elementwise_inputs(
    draw: Callable[..., Any], shape: list[int], logits: list[float], probs: list[float], targets: list[float]
) -> dict[str, Any]:
    """The inputs of an elementwise binary loss as YAML has them, drawn for the fuzzer: `logits` or
    `probs` of `shape` (logits first: simplest), then 0/1 `labels` or `soft_labels` (labels first)."""
    from hypothesis import strategies as st

    spec: dict[str, Any] = {}
    if draw(st.booleans()):
        spec["probs"] = draw(nested(st.sampled_from(probs), shape))
    else:
        spec["logits"] = draw(nested(st.sampled_from(logits), shape))
    if draw(st.booleans()):
        spec["soft_labels"] = draw(nested(st.sampled_from(targets), shape))
    else:
        spec["labels"] = draw(nested(st.sampled_from([0, 1]), shape))
    return spec


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


# ---------------------------------------------------------------- the keyword arguments of a user's loss function


@dataclass(frozen=True)
class Parameter:
    """How a case key reaches a user's loss function (`PARAMETERS`): `kind` "array" (a tensor where the
    case gives one, else not passed), "optional" (passed where the case sets it: a function's own default
    stands in for "not set", e.g. transformers' `ignore_index=-100`) or "value" (the family gives it a
    meaning by default, so it is always passed where the function takes it; a case at `default` sets
    nothing, so a function without it is still run)."""

    kind: str
    default: Any = None


ARRAY = Parameter("array")
OPTIONAL = Parameter("optional")


def defaulted(default: Any) -> Parameter:
    """A "value" parameter whose default (what a case that leaves it out has) is `default`."""
    return Parameter("value", default)


# Every family's predictions are logits or probabilities (`probs:`): a function that takes only logits
# has no `from_logits`, and a case of probabilities is unsupported for it instead of silently wrong.
COMMON_PARAMETERS: dict[str, Parameter] = {"from_logits": defaulted(True), "sample_weight": ARRAY, "reduction": defaulted("mean")}
# What a case gives that is no key of it, passed only to the parameter `params:` names for it.
DERIVED = {"num_classes": "the size of the class axis (C)"}


def parameters(family: LossFamily) -> dict[str, Parameter]:
    """The keyword arguments a case of `family` may pass to a user's loss function (`PARAMETERS`)."""
    declared = family.PARAMETERS
    if declared is not None:
        return dict(declared)
    own = {key: ARRAY if key in family.ARRAYS else defaulted(None) for key in family.FIELDS}
    return {**COMMON_PARAMETERS, **own}


def parameter_names() -> list[str]:
    """Every key any family lets reach a user's function, and the derived ones, in family order."""
    names = [name for family in families().values() for name in parameters(family)] + list(DERIVED)
    return list(dict.fromkeys(names))


# ---------------------------------------------------------------- every family, merged


def families() -> dict[str, LossFamily]:
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


def reductions() -> tuple[str, ...]:
    """The reductions families add for their own cases (`REDUCTIONS`), in family order, each once."""
    return tuple(dict.fromkeys(r for family in families().values() for r in family.REDUCTIONS))


def knobs() -> dict[str, Any]:
    """knob -> default, of the knobs families add for themselves (`KNOBS`), the first declaration of each."""
    return _knobs(tuple(families().values()))


@functools.cache
def _fields(modules: tuple[LossFamily, ...]) -> dict[str, tuple[Any, Any]]:
    out: dict[str, tuple[Any, Any]] = {}
    for module in modules:
        for key, definition in module.FIELDS.items():
            out.setdefault(key, definition)
    return out


@functools.cache
def _phrases(modules: tuple[LossFamily, ...]) -> dict[str, dict[Any, str]]:
    out: dict[str, dict[Any, str]] = {}
    for module in modules:
        for knob, phrased in module.PHRASES.items():
            merged = out.setdefault(knob, {})
            for value, phrase in phrased.items():
                merged.setdefault(value, phrase)
    return out


@functools.cache
def _alternatives(modules: tuple[LossFamily, ...]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for module in modules:
        for knob, values in module.ALTERNATIVES.items():
            merged = out.setdefault(knob, [])
            merged.extend(v for v in values if v not in merged)
    return out


@functools.cache
def _knobs(modules: tuple[LossFamily, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for module in modules:
        for knob, default in module.KNOBS.items():
            out.setdefault(knob, default)
    return out
