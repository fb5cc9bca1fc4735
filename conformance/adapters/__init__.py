"""Framework adapters: what every framework module shares (the `Variant` record, `Unsupported`, helpers).

Framework modules are found through the registry (`conformance.registry`, entry point group
`conformance.frameworks`); their frameworks are imported only inside workers.

A variant turns a `Case` into the exact native code it runs (`Variant.build`); the worker executes that
code and the same text, preceded by the arrays as literals, is the snippet shown to users. So what the
report shows is what ran. A variant that has no native way to express a case raises `Unsupported`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from conformance import registry
from conformance.cases import Case
from conformance.reference import Knobs


class Unsupported(Exception):
    """The framework has no native way to express a parameter of the case (the reason says which)."""


@dataclass(frozen=True)
class Variant:
    """One native API of a framework.

    key: result key, `framework` for the default variant, `framework:name` for the others; a key may
        have one Variant per loss family (the default variant of each).
    build: the code body for a case; it reads the arrays `x`, `y` / `t`, `w`, `pw`, `sw` and sets `loss`
        and `grad`.
    knobs: the point of the reference model this API's documentation describes for the case, or None
        where the documentation gives no formula (then no documented-formula check is made).
    losses: the loss families the API computes; it is not run on others.
    module: for a user's function run as a variant (`conformance.user`), its module: an error is
        reported with the line of that module it came from.
    """

    key: str
    api: str
    build: Callable[[Case], str]
    knobs: Callable[[Case], Knobs | None]
    losses: tuple[str, ...] = ("softmax_cross_entropy",)
    module: str | None = None


def variants(framework: str) -> list[Variant]:
    """The variants of a framework, without importing the framework itself: its module's own, then
    those each loss family brings for it (a family added after the framework carries its native calls
    in its own module: `variants(framework)` in `conformance.losses`)."""
    brought = [v for family in registry.losses().values() if hasattr(family, "variants") for v in family.variants(framework)]
    return list(registry.framework(framework).VARIANTS) + brought


def setup(framework: str) -> str:
    """The imports that open every snippet of a framework."""
    return str(registry.framework(framework).SETUP)


def known_keys() -> set[str]:
    """Every result key a case expectation may name (the user's functions of this run included)."""
    from conformance import user

    return {v.key for name in registry.frameworks() for v in variants(name)} | user.keys()


def framework_of(key: str) -> str:
    return key.split(":", 1)[0]


def storage_dtype(case: Case) -> str:
    """The NumPy dtype arrays are handed over in (NumPy has no bfloat16: float32 holding bf16 values)."""
    return "float32" if case.dtype == "bfloat16" else case.dtype


def arrays(case: Case) -> dict[str, np.ndarray]:
    """The arrays a variant's code reads: x (predictions), y (labels: int64 class indices where the
    family's labels are indices, else targets in the case dtype) or t (soft targets), w (weights), the
    family's own arrays by their names (binary: pw, pos_weight), sw (per-sample weights)."""
    from conformance.reference import rounded

    dtype = storage_dtype(case)
    family = case.family
    out = {"x": rounded(case, case.predictions).astype(dtype)}
    if case.labels is not None:
        out["y"] = case.targets.astype(np.int64) if family.INDEX_LABELS else rounded(case, case.targets).astype(dtype)
    else:
        out["t"] = rounded(case, case.targets).astype(dtype)
    own = [(name, case.extra.get(key)) for key, name in family.ARRAYS.items()]
    for name, value in [("w", case.weight), *own, ("sw", case.sample_weight)]:
        if value is not None:
            out[name] = rounded(case, value).astype(dtype)
    return out


def native_reduction(case: Case) -> str:
    """What torch's and paddle's loss modules are asked for: the case's reduction if they have it; with
    per-sample weights or a TensorFlow-style reduction, 'none' and the recipe by hand after it."""
    if case.sample_weight is None and case.reduction in ("none", "mean", "sum"):
        return case.reduction
    return "none"


def for_case(variants: list[Variant], case: Case) -> list[Variant]:
    """The variants that compute the case's loss family."""
    return [v for v in variants if case.loss in v.losses]


def batch_shape(case: Case, name: str = "sw") -> str:
    """`sw` reshaped to broadcast over a sample's positions: sw[:, None, None] for (N, d1, d2) (the
    predictions without the batch axis and the family's class axis, if it has one)."""
    trailing = case.predictions.ndim - 1 - (0 if case.family.CLASS_AXIS is None else 1)
    return name + ("[:, " + ", ".join(["None"] * trailing) + "]" if trailing > 0 else "")


def array_source(case: Case) -> str:
    """The arrays as NumPy literals, so a snippet runs on its own."""
    lines = []
    for name, value in arrays(case).items():
        dtype = "" if value.dtype == np.int64 else f', dtype="{value.dtype}"'
        lines.append(f"{name} = np.array({_literal(value)}{dtype})")
    return "\n".join(lines)


def moved(case: Case) -> bool:
    """Whether the case is K-dim with a class axis, so channels-last APIs need the class axis moved to
    the end (an elementwise family has none to move)."""
    return case.predictions.ndim > 2 and case.family.CLASS_AXIS is not None


def kwargs(*pairs: tuple[str, object | None]) -> str:
    """`name=value` arguments, leaving out those whose value is None."""
    return ", ".join(f"{k}={v}" for k, v in pairs if v is not None)


def _literal(value: np.ndarray) -> str:
    """Shortest text that reads back to exactly these values in their own dtype (0.05, not 0.0500000007)."""
    if value.ndim == 0:
        return repr(value.item()) if value.dtype == np.int64 else _number(value)
    return "[" + ", ".join(_literal(v) for v in value) + "]"


def _number(value: np.ndarray | np.generic) -> str:
    text = str(value)
    return {"nan": "np.nan", "inf": "np.inf", "-inf": "-np.inf"}.get(text, text)
