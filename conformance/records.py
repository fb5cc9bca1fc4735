"""Typed, immutable records: what one case produced, from the workers' answers to the reports.

The pipeline builds each record once (`Result`s from the workers' answers, then the `Comparison`, the
`Explanation`s and the baseline `Finding`s) and serialises it once (`to_json`), one case per line of
`results.json`; what the package reads back of its own documents (results.json, baselines) it reads
as records again (`from_json`), never as dicts. Nothing edits a record on its way through: a stage that
adds to a record makes a new one (`dataclasses.replace`).

The JSON form is the results.json contract (keys documented in docs/results-json.md); it does not change when a
field is added here, only grows. A value of more than `compact.COMPACT_ABOVE` elements is written in its
compact form (`conformance.compact`); the record itself keeps every element.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from conformance import compact, registry


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


def value_json(value: Any, dtype: str | None = None, against: tuple[str, Any] | None = None) -> Any:
    """A loss or gradient as written: nested lists of floats, or the compact form of a large array
    (with its largest differences from `against`, (key, array), where given)."""
    if compact.large(value):
        return compact.form(value, dtype, against)
    return plain(value)


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
        out: dict[str, Any] = {"knobs": self.knobs, "loss": value_json(self.loss)}
        if self.agrees is not None:
            out.update(agrees=self.agrees, loss_max_abs=self.loss_max_abs, grad_max_abs=self.grad_max_abs)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Documented:
        """Read back as written (the gradient is not kept in results.json)."""
        return cls(data["knobs"], data["loss"], None, data.get("agrees"), data.get("loss_max_abs"), data.get("grad_max_abs"))


CHANGE = "~change"
"""A recipe key's suffix for the smallest change to the framework's own call (`adapters.smallest_change`),
run beside the general recipe of the same target."""


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
    numerical: dict[str, Any] | None = None
    """Where the result is off its documented float64 value by more than the dtype's tolerance but within
    the case's size allowance (`compare.allowance`): the rtol each value needs, the allowance, a sentence."""

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_json(self, against: Result | None = None) -> dict[str, Any]:
        """Its JSON form; `against`: the oracle's result, whose differences a compact value shows."""
        out: dict[str, Any] = {
            "api": self.api,
            "status": self.status,
            "message": self.message,
            "loss": value_json(self.loss, self.dtype, _other(against, "loss")),
            "grad": value_json(self.grad, self.dtype, _other(against, "grad")),
            "code": self.code,
        }
        if self.dtype is not None:
            out["dtype"] = self.dtype
        if self.seconds is not None:
            out["seconds"] = self.seconds
        if self.documented is not None:
            out["documented"] = self.documented.to_json()
        if self.numerical is not None:
            out["numerical"] = self.numerical
        return out

    @classmethod
    def from_json(cls, key: str, data: dict[str, Any]) -> Result:
        """The result `key` as results.json has it: values as written (nested lists, or a large one's
        compact form), no recipes (results.json keeps them in the explanations)."""
        documented = data.get("documented")
        return cls(
            key=key,
            api=data["api"],
            status=data["status"],
            message=data.get("message"),
            loss=data.get("loss"),
            grad=data.get("grad"),
            dtype=data.get("dtype"),
            seconds=data.get("seconds"),
            code=data.get("code"),
            documented=None if documented is None else Documented.from_json(documented),
            numerical=data.get("numerical"),
        )


def _other(against: Result | None, what: str) -> tuple[str, Any] | None:
    value = None if against is None else getattr(against, what)
    return None if value is None or against is None else (against.key, value)


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
    allowance: bool = False
    """Agree only under the case's size allowance (both on their documented float64 values, which agree)."""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"a": self.a, "b": self.b, "loss_max_abs": self.loss_max_abs, "loss_max_rel": self.loss_max_rel}
        out["agree"] = self.agree
        if self.reason is not None:
            out["reason"] = self.reason
        if self.allowance:
            out["within_allowance"] = True
        if self.grad_max_abs is not None:
            out.update(grad_max_abs=self.grad_max_abs, grad_max_rel=self.grad_max_rel)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Pair:
        return cls(
            data["a"],
            data["b"],
            data["agree"],
            data["loss_max_abs"],
            data["loss_max_rel"],
            data.get("grad_max_abs"),
            data.get("grad_max_rel"),
            data.get("reason"),
            bool(data.get("within_allowance", False)),
        )


@dataclass(frozen=True)
class Comparison:
    """How a case's results agree: groups of mutually agreeing keys, every pair, the tolerance, and
    the verdict on the case's expectation (met, violated, none)."""

    groups: tuple[tuple[str, ...], ...]
    pairs: tuple[Pair, ...]
    tolerance: dict[str, float]
    expectation: str
    expectation_message: str | None = None
    allowance: dict[str, float] | None = None
    """The tolerance the case's size allows for rounding (`compare.allowance`), where wider than `tolerance`."""

    def to_json(self) -> dict[str, Any]:
        out = {
            "groups": [list(g) for g in self.groups],
            "pairs": [p.to_json() for p in self.pairs],
            "tolerance": self.tolerance,
            "expectation": self.expectation,
            "expectation_message": self.expectation_message,
        }
        if self.allowance is not None:
            out["allowance"] = self.allowance
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Comparison:
        """From a case record's JSON, whose comparison keys sit beside its others."""
        return cls(
            tuple(tuple(g) for g in data["groups"]),
            tuple(Pair.from_json(p) for p in data["pairs"]),
            data["tolerance"],
            data["expectation"],
            data.get("expectation_message"),
            data.get("allowance"),
        )


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

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> KnobDifference:
        return cls(data["knob"], data["a"], data["b"], data["effect"])


@dataclass(frozen=True)
class ShownRecipe:
    """b's native code reproducing a, and whether it does reproduce a's loss; `change`: the smallest
    change to b's own call that does the same (shown first), as run, where one can be written."""

    code: str | None
    result: Any
    target: Any
    reproduces: bool
    message: str | None = None
    change: ShownRecipe | None = None

    def to_json(self) -> dict[str, Any]:
        out = {"code": self.code, "result": value_json(self.result), "target": value_json(self.target), "reproduces": self.reproduces}
        if self.message is not None:
            out["message"] = self.message
        if self.change is not None:
            out["change"] = self.change.to_json()
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ShownRecipe:
        change = data.get("change")
        return cls(
            data["code"],
            data["result"],
            data["target"],
            data["reproduces"],
            data.get("message"),
            None if change is None else cls.from_json(change),
        )


@dataclass(frozen=True)
class Explanation:
    """Why two default variants land in different groups: the knobs that move them, in words, and the
    recipe (b's native code reproducing a), or why there is none (`no_recipe`). For a user's function
    (`--variant`, b), `fit`: the knob settings of the model that reproduce its values on the case
    (`knobs`: those set otherwise than a's documented ones; `exact`: whether they reproduce loss and
    gradient within tolerance, else the closest found and its `distance`, the largest loss difference,
    its `share` of the difference, whether the text names it (`closest_named`), and `residual`: what the
    numbers show, `conformance.residual`).
    `reverse`: a's native code reproducing b, for a reader porting from b to a."""

    a: str
    b: str
    knobs: tuple[KnobDifference, ...]
    text: str
    recipe: ShownRecipe | None = None
    no_recipe: str | None = None
    fit: dict[str, Any] | None = None
    reverse: ShownRecipe | None = None

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
        if self.reverse is not None:
            out["reverse"] = self.reverse.to_json()
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Explanation:
        recipe, reverse = data.get("recipe"), data.get("reverse")
        return cls(
            data["a"],
            data["b"],
            tuple(KnobDifference.from_json(k) for k in data["knobs"]),
            data["text"],
            None if recipe is None else ShownRecipe.from_json(recipe),
            data.get("no_recipe"),
            data.get("fit"),
            None if reverse is None else ShownRecipe.from_json(reverse),
        )


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
        out: dict[str, Any] = {
            "case": self.case,
            "key": self.key,
            "what": self.what,
            "old": self.old if compact.is_compact(self.old) else value_json(self.old, self.dtype),
            "new": value_json(self.new, self.dtype),
        }
        if self.dtype is not None:
            out["dtype"] = self.dtype
        if self.moved:
            out.update(max_abs=self.max_abs, max_rel=self.max_rel)
        elif self.what == "status":
            out["message"] = self.message
        if self.knobs is not None:
            out["knobs"] = list(self.knobs)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Finding:
        knobs = data.get("knobs")
        return cls(
            case=data["case"],
            key=data["key"],
            what=data["what"],
            old=data["old"],
            new=data["new"],
            max_abs=data.get("max_abs"),
            max_rel=data.get("max_rel"),
            message=data.get("message"),
            knobs=None if knobs is None else tuple(knobs),
            dtype=data.get("dtype"),
        )


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
    def oracle(self) -> Result | None:
        """The first ok result of an oracle framework (the float64 reference), if one ran."""
        oracles = registry.oracles()
        return next((r for key, r in self.results.items() if r.ok and key.split(":", 1)[0] in oracles), None)

    @property
    def fails(self) -> bool:
        """Whether its pytest item fails: the expectation is violated or a value moved since the baseline."""
        return self.comparison.expectation == "violated" or bool(self.findings)

    def to_json(self) -> dict[str, Any]:
        oracle = self.oracle
        out: dict[str, Any] = {
            "id": self.id,
            "file": self.file,
            "line": self.line,
            "description": self.description,
            "params": self.params,
            "results": {key: r.to_json(None if r is oracle else oracle) for key, r in self.results.items()},
            **self.comparison.to_json(),
            "expected": self.expected,
            "explanation": [e.to_json() for e in self.explanation],
        }
        if self.timeline:
            out["timeline"] = list(self.timeline)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CaseRecord:
        """A case of results.json (`results.cases`) read back: values as written; the baseline findings
        are in the document's head (`BaselineReport`), not in the case."""
        return cls(
            id=data["id"],
            file=data["file"],
            line=data["line"],
            description=data.get("description"),
            params=data["params"],
            results={key: Result.from_json(key, r) for key, r in data["results"].items()},
            comparison=Comparison.from_json(data),
            expected=data.get("expected"),
            explanation=tuple(Explanation.from_json(e) for e in data.get("explanation", [])),
            timeline=tuple(data.get("timeline", [])),
        )


@dataclass(frozen=True)
class BaselineReport:
    """What a run with `--baseline` found (results.json's `baseline`), as `baseline.Replay.report` writes it."""

    file: str
    old_versions: dict[str, str]
    new_versions: dict[str, str]
    compared: int
    moved: tuple[Finding, ...]
    within_tolerance: int
    within_tolerance_compact: int
    status_changes: tuple[Finding, ...]
    gone_cases: tuple[str, ...]
    gone_keys: tuple[dict[str, str], ...]
    new_cases: tuple[str, ...]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BaselineReport:
        return cls(
            file=data["file"],
            old_versions=data["old_versions"],
            new_versions=data["new_versions"],
            compared=data["compared"],
            moved=tuple(Finding.from_json(f) for f in data["moved"]),
            within_tolerance=data["within_tolerance"],
            within_tolerance_compact=data.get("within_tolerance_compact", 0),
            status_changes=tuple(Finding.from_json(f) for f in data["status_changes"]),
            gone_cases=tuple(data.get("gone_cases", [])),
            gone_keys=tuple(data.get("gone_keys", [])),
            new_cases=tuple(data.get("new_cases", [])),
        )


@dataclass(frozen=True)
class SavedResult:
    """What a baseline keeps of one result: its status, output dtype and (if ok) loss and gradient."""

    status: str
    dtype: str | None = None
    loss: Any = None
    grad: Any = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def value(self, what: str) -> Any:
        """The loss or the gradient (`what`), as saved."""
        return self.loss if what == "loss" else self.grad

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SavedResult:
        return cls(data["status"], data.get("dtype"), data.get("loss"), data.get("grad"))


@dataclass(frozen=True)
class SavedCase:
    """What a baseline keeps of one case: its tolerance and every result key's `SavedResult`."""

    tolerance: dict[str, float]
    results: dict[str, SavedResult]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SavedCase:
        return cls(data.get("tolerance", {}), {key: SavedResult.from_json(r) for key, r in data["results"].items()})


@dataclass(frozen=True)
class Baseline:
    """A baseline file: the versions that produced it and, per case node id, what it keeps."""

    versions: dict[str, str]
    values: dict[str, SavedCase]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Baseline:
        """From the file's JSON with every "=KEY" already replaced by that result's value (`baseline.load`)."""
        return cls(data["versions"], {name: SavedCase.from_json(case) for name, case in data["values"].items()})


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
