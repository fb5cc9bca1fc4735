"""Typed, immutable records: what one case produced, from the workers' answers to the reports.

The pipeline builds each record once (`Result`s from the workers' answers, then the `Comparison`, the
`Explanation`s and the baseline `Finding`s) and serialises it once (`to_json`), one case per line of
`results.json`; reports read what was written. Nothing edits a record on its way through: a stage that
adds to a record makes a new one (`dataclasses.replace`).

The JSON form is the results.json contract (keys documented in the README); it does not change when a
field is added here, only grows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


def plain(value: Any) -> Any:
    """NumPy values as JSON-ready Python values (nested lists of floats)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


@dataclass(frozen=True)
class Documented:
    """A result's documented formula: the knob point its API's documentation describes, the float64
    model's loss (and gradient, checked, not kept in results.json) there, and whether the result agrees."""

    knobs: dict[str, Any]
    loss: Any
    grad: Any = None
    agrees: bool | None = None
    loss_max_abs: float | None = None
    grad_max_abs: float | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"knobs": self.knobs, "loss": plain(self.loss)}
        if self.agrees is not None:
            out.update(agrees=self.agrees, loss_max_abs=self.loss_max_abs, grad_max_abs=self.grad_max_abs)
        return out


@dataclass(frozen=True)
class RecipeRun:
    """A framework's native code reproducing another framework's documented semantics, as it ran."""

    code: str | None
    loss: Any = None
    message: str | None = None


@dataclass(frozen=True)
class Result:
    """One variant's outcome on one case.

    status: ok, unsupported (the API cannot express the case; `message` says why), error (the
    framework raised: a finding) or crashed (the worker died or hung on the case).
    code: the runnable snippet of what ran (imports, the arrays, the native call).
    """

    key: str
    api: str
    status: str
    message: str | None = None
    loss: Any = None
    grad: Any = None
    dtype: str | None = None
    seconds: float | None = None
    code: str | None = None
    documented: Documented | None = None
    recipes: dict[str, RecipeRun] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "api": self.api,
            "status": self.status,
            "message": self.message,
            "loss": plain(self.loss),
            "grad": plain(self.grad),
            "code": self.code,
        }
        if self.dtype is not None:
            out["dtype"] = self.dtype
        if self.seconds is not None:
            out["seconds"] = self.seconds
        if self.documented is not None:
            out["documented"] = self.documented.to_json()
        return out


@dataclass(frozen=True)
class Pair:
    """The agreement of two ok results: largest loss (and gradient) differences, and the verdict."""

    a: str
    b: str
    agree: bool
    loss_max_abs: float
    loss_max_rel: float
    grad_max_abs: float | None = None
    grad_max_rel: float | None = None
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"a": self.a, "b": self.b, "loss_max_abs": self.loss_max_abs, "loss_max_rel": self.loss_max_rel}
        out["agree"] = self.agree
        if self.reason is not None:
            out["reason"] = self.reason
        if self.grad_max_abs is not None:
            out.update(grad_max_abs=self.grad_max_abs, grad_max_rel=self.grad_max_rel)
        return out


@dataclass(frozen=True)
class Comparison:
    """How a case's results agree: groups of mutually agreeing keys, every pair, the tolerance, and
    the verdict on the case's expectation (met, violated, none)."""

    groups: tuple[tuple[str, ...], ...]
    pairs: tuple[Pair, ...]
    tolerance: dict[str, float]
    expectation: str
    expectation_message: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "groups": [list(g) for g in self.groups],
            "pairs": [p.to_json() for p in self.pairs],
            "tolerance": self.tolerance,
            "expectation": self.expectation,
            "expectation_message": self.expectation_message,
        }


@dataclass(frozen=True)
class KnobDifference:
    """A knob on which two frameworks' documented semantics differ, and its effect: the largest change
    of a's modelled loss when only that knob takes b's value (None where not finite)."""

    knob: str
    a: Any
    b: Any
    effect: float | None

    def to_json(self) -> dict[str, Any]:
        return {"knob": self.knob, "a": self.a, "b": self.b, "effect": self.effect}


@dataclass(frozen=True)
class ShownRecipe:
    """b's native code reproducing a, and whether it does reproduce a's loss."""

    code: str | None
    result: Any
    target: Any
    reproduces: bool
    message: str | None = None

    def to_json(self) -> dict[str, Any]:
        out = {"code": self.code, "result": plain(self.result), "target": plain(self.target), "reproduces": self.reproduces}
        if self.message is not None:
            out["message"] = self.message
        return out


@dataclass(frozen=True)
class Explanation:
    """Why two default variants land in different groups: the knobs that move them, in words, and the
    recipe (b's native code reproducing a), or why there is none (`no_recipe`). For a user's function
    (`--variant`, b), `fit`: the knob settings of the model that reproduce its values on the case
    (`knobs`: those set otherwise than a's documented ones; `exact`: whether they reproduce loss and
    gradient within tolerance, else the closest found and its `distance`, the largest loss difference)."""

    a: str
    b: str
    knobs: tuple[KnobDifference, ...]
    text: str
    recipe: ShownRecipe | None = None
    no_recipe: str | None = None
    fit: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        out = {
            "a": self.a,
            "b": self.b,
            "knobs": [k.to_json() for k in self.knobs],
            "recipe": self.recipe.to_json() if self.recipe else None,
            "text": self.text,
        }
        if self.no_recipe is not None:
            out["no_recipe"] = self.no_recipe
        if self.fit is not None:
            out["fit"] = self.fit
        return out


@dataclass(frozen=True)
class Finding:
    """A baseline finding on one result: a value that moved beyond tolerance (`what` loss / grad), a
    status or dtype that changed, with the knob settings that would explain an old loss."""

    case: str
    key: str
    what: str
    old: Any
    new: Any
    max_abs: float | None = None
    max_rel: float | None = None
    message: str | None = None
    knobs: tuple[str, ...] | None = None
    dtype: str | None = None

    @property
    def moved(self) -> bool:
        return self.what in ("loss", "grad")

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"case": self.case, "key": self.key, "what": self.what, "old": plain(self.old), "new": plain(self.new)}
        if self.dtype is not None:
            out["dtype"] = self.dtype
        if self.moved:
            out.update(max_abs=self.max_abs, max_rel=self.max_rel)
        elif self.what == "status":
            out["message"] = self.message
        if self.knobs is not None:
            out["knobs"] = list(self.knobs)
        return out


@dataclass(frozen=True)
class CaseRecord:
    """Everything one case produced: the element of `results.json`'s `cases`."""

    id: str
    file: str
    line: int
    description: str | None
    params: dict[str, Any]
    results: dict[str, Result]
    comparison: Comparison
    expected: dict[str, Any] | None
    explanation: tuple[Explanation, ...] = ()
    timeline: tuple[dict[str, Any], ...] = ()
    findings: tuple[Finding, ...] = ()
    within_tolerance: int = 0
    compared: int = 0

    @property
    def nodeid(self) -> str:
        return f"{self.file}::{self.id}"

    @property
    def groups(self) -> tuple[tuple[str, ...], ...]:
        return self.comparison.groups

    @property
    def fails(self) -> bool:
        """Whether its pytest item fails: the expectation is violated or a value moved since the baseline."""
        return self.comparison.expectation == "violated" or bool(self.findings)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "file": self.file,
            "line": self.line,
            "description": self.description,
            "params": self.params,
            "results": {key: r.to_json() for key, r in self.results.items()},
            **self.comparison.to_json(),
            "expected": self.expected,
            "explanation": [e.to_json() for e in self.explanation],
        }
        if self.timeline:
            out["timeline"] = list(self.timeline)
        return out


def result_of(key: str, answer: dict[str, Any]) -> Result:
    """A worker's answer for one result key (its wire form: a plain dict) as a `Result`."""
    documented = answer.get("documented")
    recipes = answer.get("recipes") or {}
    return Result(
        key=key,
        api=answer["api"],
        status=answer["status"],
        message=answer.get("message"),
        loss=answer.get("loss"),
        grad=answer.get("grad"),
        dtype=answer.get("dtype"),
        seconds=answer.get("seconds"),
        code=answer.get("code"),
        documented=None if not documented else Documented(documented["knobs"], documented["loss"], documented.get("grad")),
        recipes={target: RecipeRun(r.get("code"), r.get("loss"), r.get("message")) for target, r in recipes.items()},
    )
