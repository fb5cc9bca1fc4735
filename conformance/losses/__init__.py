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
import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from conformance import registry
from conformance.contract import Fail as Fail
from conformance.contract import LossFamily, Variant

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
    value = getattr(spec, key)
    if isinstance(value, Generated):
        how: dict[str, Any] = {"normalise": registry.loss(spec.loss).CLASS_AXIS} if key == "probs" else {}
        arr = generated("x", key, value, fail, **how)[0]
        if key == "probs" and (value.low is not None and value.low < 0 or value.high is not None and value.high > 1):
            raise fail("probs: low and high must lie in [0, 1]", key)
        return arr, key
    arr = array(deep_numbers(value, fail, key), key, fail, key)
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


# ---------------------------------------------------------------- arrays of a given shape


def _whole(value: Any) -> Any:
    if isinstance(value, bool) or isinstance(value, float) and not value.is_integer():
        raise ValueError(f"expected an integer, got {value!r}")
    return value


class Generated(BaseModel):
    """An array generated at a shape the case names, for any array key (`logits: {shape: [8, 1024]}`,
    `labels: {shape: [8, 1]}`, `weight: {shape: [3], low: 0, high: 1}`): recorded calls (PaddleAPITest's)
    name shapes and dtypes, not values, and a shape the predictions do not imply (labels [N, 1], a
    weight [N, 1, 1], mismatched shapes under `check_shapes: false`) cannot be `random`."""

    model_config = ConfigDict(extra="forbid")
    shape: list[Annotated[int, BeforeValidator(_whole)]] = Field(description="the array's shape")
    seed: Annotated[int, BeforeValidator(_whole)] = Field(
        default=0, description="seed of NumPy's default_rng, plus the key's stream (predictions 0, labels 1, weight 2, pos_weight 3)"
    )
    low: Annotated[float, BeforeValidator(number)] | None = Field(
        default=None, description="uniform draws in [low, high) (default: logits -1, probabilities and soft targets 0, weights 0.5)"
    )
    high: Annotated[float, BeforeValidator(number)] | None = Field(
        default=None, description="(default: logits 1, probabilities and soft targets 1, weights 2); class indices take none"
    )


GENERATED = "{shape, seed, low, high}: generated at that shape (see Generated)"


def as_generated(value: Any) -> Any:
    """A mapping given for an array key is a `Generated` spec: validated here so a mistake in it is
    named as one (`unknown key 'shap'`), not as the list the key could also have been."""
    if not isinstance(value, dict):
        return value
    try:
        return Generated.model_validate(value)
    except ValidationError as exc:
        err = min(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")  # a misspelt key first: it explains the rest
        where = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            raise ValueError(f"unknown key '{where}' (a generated array takes shape, seed, low, high)") from None
        message = err["msg"].removeprefix("Value error, ")
        raise ValueError(f"{where or 'the mapping'}: {message} (a generated array is {{shape, seed, low, high}})") from None


DEFAULT_RANGE = {
    "logits": (-1.0, 1.0),
    "probs": (0.0, 1.0),
    "soft_labels": (0.0, 1.0),
    "weight": (0.5, 2.0),
    "pos_weight": (0.5, 2.0),
    "prior_dist": (0.0, 1.0),
}
STREAM = {"logits": 0, "probs": 0, "labels": 1, "soft_labels": 1, "weight": 2, "pos_weight": 3, "prior_dist": 4}


def generated(name: str, key: str, value: Generated | dict[str, Any], fail: Fail | None = None, **how: Any) -> tuple[np.ndarray, list[str]]:
    """The array a `Generated` spec of case key `key` stands for and the NumPy lines (array `name`, float64)
    that draw the same numbers. `how`: `classes=C` draws class indices in [0, C) (binary: 0/1 with C=2);
    `normalise=axis` divides uniform draws by their sum along that axis (probabilities, soft labels).
    Uniform otherwise, in [low, high) (`DEFAULT_RANGE` for the key)."""
    spec = value if isinstance(value, Generated) else Generated(**value)
    shape, seed = tuple(spec.shape), spec.seed + STREAM[key]
    if any(s < 0 for s in shape):
        raise _failed(fail, f"{key}.shape {list(shape)} has a negative size", key)
    rng = np.random.default_rng(seed)
    if "classes" in how:
        if spec.low is not None or spec.high is not None:
            raise _failed(fail, f"{key}: class indices are drawn in [0, C); low and high are for float arrays", key)
        top = max(int(how["classes"]), 1)
        line = f"{name} = np.random.default_rng({seed}).integers(0, {top}, size={shape}).astype(np.float64)"
        return rng.integers(0, top, size=shape).astype(np.float64), [line]
    low, high = DEFAULT_RANGE[key]
    low, high = (spec.low if spec.low is not None else low), (spec.high if spec.high is not None else high)
    if not (np.isfinite(low) and np.isfinite(high) and low <= high):
        raise _failed(fail, f"{key}: low and high must be finite with low <= high, got [{low!r}, {high!r})", key)
    drawn = rng.uniform(low, high, size=shape)
    lines = [f"{name} = np.random.default_rng({seed}).uniform({low!r}, {high!r}, size={shape})"]
    axis = how.get("normalise")
    if axis is not None and len(shape) > axis and shape[axis] > 0:
        drawn = drawn / drawn.sum(axis=axis, keepdims=True)
        lines.append(f"{name} = {name} / {name}.sum(axis={axis}, keepdims=True)")
    return drawn, lines


def _failed(fail: Fail | None, message: str, key: str) -> Exception:
    return fail(message, key) if fail is not None else ValueError(message)


def generated_sources(case: Any, names: dict[str, tuple[str, dict[str, Any]]]) -> dict[str, list[str]]:
    """The NumPy lines of every array the case gives as `Generated` (a mapping in its parameters):
    `names` maps a case key to the name the variants read it by and `generated`'s `how` for it."""
    out: dict[str, list[str]] = {}
    for key, (name, how) in names.items():
        value = case.params.get(key)
        if isinstance(value, dict):
            out[name] = generated(name, key, value, **how)[1]
    return out


# ---------------------------------------------------------------- generated arrays in snippets


def seed_of(case: Any) -> int:
    """The case's `random.seed` (0 without `random`), from its parameters."""
    return int((case.params.get("random") or {}).get("seed", 0))


def generated_predictions(case: Any) -> list[str] | None:
    """NumPy lines that regenerate `x` from the case's `random` spec (or `logits` / `probs` given as
    `Generated`) as `given_predictions` drew it (float64, before its dtype), or None where the
    predictions were written out."""
    for key in ("logits", "probs"):
        if isinstance(case.params.get(key), dict):
            how: dict[str, Any] = {"normalise": registry.loss(case.loss).CLASS_AXIS} if key == "probs" else {}
            return generated("x", key, case.params[key], **how)[1]
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


def package_variants(package: str, framework: str) -> list[Variant]:
    """A family package's native calls in `framework`: the `VARIANTS` of its module named after the
    framework (`losses/<family>/<framework>.py`, the one place a shipped family's calls live), imported
    only when asked for; [] for a framework the package has no module for."""
    name = f"{package}.{framework}"
    if importlib.util.find_spec(name) is None:
        return []
    return list(importlib.import_module(name).VARIANTS)
