"""The plug-in contract: what a framework module and a loss-family module provide, checked at load.

A plug-in is a module named by an entry point (`conformance.frameworks`, `conformance.losses`). Its
members (module attributes) are declared here once, as the fields of `Framework` and `LossFamily`: the
type, whether it is optional and its default, and what it is in brief (docs/extending.md says it at
length; tests/test_contract.py keeps the members and defaults of the two alike). `check` lists what a
module gets wrong (a required member missing, a member of the wrong type, a name that looks like a
misspelt member) and `view` reads a module that fits into the typed record the rest of the package
reads, with the optional members' defaults filled in here and nowhere else. The registry does both
when it loads a plug-in, so a misspelt member is a usage error naming the plug-in and its entry point,
never an AttributeError at first use nor a silent default.

This is the bottom of the package: it imports no other module of it at run time (the case, knob and
outcome types below are named for annotations only), so every other module may import it.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields
from types import MappingProxyType, ModuleType
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy

    from conformance.cases import Case
    from conformance.reference import Knobs, Outcome

DEFAULT_ORDER = 500
# A module attribute this close to a member it lacks (case ignored) is taken for a misspelling of it.
MISSPELT = 0.85
Fail = Callable[[str, str], Exception]
"""What a family's `build` receives to report a mistake: fail(message, key) -> the exception to raise."""


class Unsupported(Exception):
    """The framework has no native way to express a parameter of the case (the reason says which)."""


@dataclass(frozen=True)
class Variant:
    """One native API of a framework: the record a family (`variants`) or a framework (`VARIANTS`) returns.

    key: result key, `framework` for the default variant, `framework:name` for the others; a key may
        have one Variant per loss family (the default variant of each).
    build: the code body for a case; it reads the arrays `x`, `y` / `t`, `w`, `pw`, `sw` and sets `loss`
        and `grad`; raises `Unsupported` where the API cannot express the case.
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


class RecipeSource(Protocol):
    """`recipe_source(case, knobs, probabilities=False)`: NumPy lines building T and D, or None."""

    def __call__(self, case: Case, knobs: Knobs, probabilities: bool = False) -> list[str] | None: ...


CALLABLE = (Callable,)
OPTIONAL_CALLABLE = (Callable, type(None))
EMPTY: Mapping[str, Any] = MappingProxyType({})
"""The default of an optional mapping member: {}."""


def member(what: str, kind: tuple[Any, ...], default: Any = MISSING) -> Any:
    """A plug-in member: `what` it is, in brief, the types its value may have (checked at load), and its
    default (none: required; an empty mapping is made anew for each plug-in)."""
    if default is EMPTY:
        return field(default_factory=dict, metadata={"what": what, "kind": kind})
    return field(default=default, metadata={"what": what, "kind": kind})


@dataclass(frozen=True, eq=False, kw_only=True)
class Framework:
    """A framework plug-in: its own framework is imported only inside the worker (in `version`,
    `to_numpy` and the code its variants generate), never at module level."""

    name: str
    entry_point: str
    module: ModuleType
    ORDER: int = member("rank in tables and in the canonical key order (lower first)", (int,), DEFAULT_ORDER)
    REFERENCE: bool = member("True only for the float64 oracle; the others are native and explained against each other", (bool,), False)
    SETUP: str = member("the imports that open every snippet", (str,))
    VARIANTS: Sequence[Variant] = member(
        "native APIs it brings for families that do not carry them (a shipped framework's are in each family's package)", (list, tuple), ()
    )
    version: Callable[[], dict[str, str]] = member("the versions of the packages that ran (runs in the worker)", CALLABLE)
    to_numpy: Callable[[Any], tuple[Any, str]] = member(
        "a framework tensor as (array castable to float64, dtype name) (runs in the worker)", CALLABLE
    )
    recipe: Callable[[Case, Knobs], str | None] | None = member(
        "native code reproducing another framework's documented semantics (`knobs`), or None", OPTIONAL_CALLABLE, None
    )
    OPS: dict[str, str] | None = member(
        "its ops as format strings, in which families write their recipes (None: it gets none of theirs)", (dict, type(None)), None
    )
    REPOSITORIES: Mapping[str, str] = member(
        "names written before an issue number in case descriptions -> GitHub repository", (dict,), EMPTY
    )
    Runner: type | None = member(
        "made once in the worker; its `run(code, scope)` executes variants' and recipes' code instead of `exec`", (type, type(None)), None
    )
    user_body: Callable[[Case, Callable[..., str]], str] | None = member(
        "the code that runs a user's function or class (`--variant`, `--variants`); None: it runs none", OPTIONAL_CALLABLE, None
    )


def _no_probability_steps(ops: Mapping[str, str], case: Case, knobs: Knobs) -> list[str]:
    """The default `probability_recipe`: never asked (only a family with `probability_steps` is)."""
    raise TypeError(f"{case.loss} has no probability_steps, so no probability_recipe")


@dataclass(frozen=True, eq=False, kw_only=True)
class LossFamily:
    """A loss-family plug-in: imported by every process that loads cases (workers too), so NumPy only
    at module level."""

    name: str
    entry_point: str
    module: ModuleType
    NAME: str = member("the value of the case key `loss` and the entry point's name", (str,))
    ORDER: int = member("rank in the registry, schema and fuzzer (lower first)", (int,), DEFAULT_ORDER)
    DEFAULT: bool = member("whether a case that names no `loss` is of this family (one family sets it)", (bool,), False)
    FIELDS: Mapping[str, tuple[Any, Any]] = member("its own case keys as pydantic field definitions, merged into the case schema", (dict,))
    REDUCTIONS: tuple[str, ...] = member("reductions of its own beyond the shared ones, accepted for its cases only", (tuple, list), ())
    INSTEAD: Mapping[str, str] = member("for another family's key given to one of its cases, what to write instead", (dict,), EMPTY)
    ARRAYS: Mapping[str, str] = member("its FIELDS that are arrays, and the names variants read them by", (dict,))
    CLASS_AXIS: int | None = member("the predictions' class axis; None for an elementwise loss", (int, type(None)))
    INDEX_LABELS: bool = member("whether `labels` are integer class indices (else targets of the predictions' shape)", (bool,))
    build: Callable[[Any, Fail], dict[str, Any]] = member(
        "the case's arrays from the validated spec; every mistake is `raise fail(message, key)`", CALLABLE
    )
    textbook: Callable[[Case], Knobs] = member("the family's textbook point of the knob model (the `reference` result)", CALLABLE)
    evaluate: Callable[[Case, Knobs], Outcome] = member("the float64 loss and its gradient at a knob point", CALLABLE)
    KNOBS: Mapping[str, Any] = member("its own knobs of the reference model and their defaults", (dict,), EMPTY)
    PHRASES: Mapping[str, Mapping[Any, str]] = member("knob -> value -> what a framework with that value does", (dict,))
    KNOB_LABELS: Mapping[str, str] = member("plain names of the knobs it adds (`KNOBS`)", (dict,), EMPTY)
    ALTERNATIVES: Mapping[str, list[Any]] = member("knob -> the values it can take for this family", (dict,))
    port: Callable[[Case, Knobs, Knobs, Callable[[Knobs], Outcome]], dict[str, Any] | None] | None = member(
        "the smallest change to a framework's own call giving another's semantics, or None", OPTIONAL_CALLABLE, None
    )
    generated_source: Callable[[Case], dict[str, list[str]]] | None = member(
        "per generated array, NumPy lines that regenerate it from the case's seed", OPTIONAL_CALLABLE, None
    )
    recipe_source: RecipeSource | None = member(
        "NumPy lines building the soft target T and denominator D that reproduce a knob point", OPTIONAL_CALLABLE, None
    )
    probability_steps: Callable[[Knobs], tuple[str, ...]] | None = member(
        "how a knob point turns probability inputs into the probabilities whose log the loss takes", OPTIONAL_CALLABLE, None
    )
    probability_recipe: Callable[[Mapping[str, str], Case, Knobs], list[str]] = member(
        "those steps and sum_c T * -log r as lines in a framework's OPS (given with `probability_steps`)", CALLABLE, _no_probability_steps
    )
    RECIPES: str | None = member("what its recipes cover, in words", (str, type(None)), None)
    native_recipe: Callable[[str, Case, Knobs], str | None] | None = member(
        "a framework's code reproducing a knob point, for a loss that is no soft-label cross-entropy", OPTIONAL_CALLABLE, None
    )
    variants: Callable[[str], list[Variant]] | None = member(
        "its native calls in a framework (a shipped family: its module <family>/<framework>.py)", OPTIONAL_CALLABLE, None
    )
    PARAMETERS: Mapping[str, Any] | None = member(
        "the case keys a user's loss function may take, each with how it is passed (`losses.Parameter`)", (dict, type(None)), None
    )
    strategy: Callable[[], SearchStrategy[dict[str, Any]]] = member("a hypothesis strategy of case specs for the fuzzer", CALLABLE)


Plugin = TypeVar("Plugin", Framework, LossFamily)


def members(kind: type[Framework] | type[LossFamily]) -> Iterator[tuple[str, str, tuple[type, ...], Any]]:
    """(name, what it is, the types it may have, default or MISSING) of every member of a plug-in kind."""
    for f in fields(kind):
        if "what" in f.metadata:
            yield f.name, f.metadata["what"], f.metadata["kind"], f.default_factory() if f.default_factory is not MISSING else f.default


def check(kind: type[Framework] | type[LossFamily], module: ModuleType, name: str | None = None) -> list[str]:
    """What `module` gets wrong as a plug-in of `kind` registered as `name`, one sentence each (none: it fits)."""
    known = {member for member, *_ in members(kind)}
    others = [n for n, value in vars(module).items() if not n.startswith("_") and n not in known and _own(value, module)]
    problems = []
    for member, _, types, default in members(kind):
        if not hasattr(module, member):
            if default is MISSING:
                near = _close(member, others)
                problems.append(f"it has no {member}" + (f" (it has {' and '.join(near)}: did you mean {member}?)" if near else ""))
            else:
                alike = [n for n in others if callable(getattr(module, n)) == (Callable in types)]  # a function for a function
                problems += [f"{near} is no member of the contract (did you mean {member}?)" for near in _close(member, alike, MISSPELT)]
            continue
        value = getattr(module, member)
        if not _fits(value, types) or (types == (int,) and isinstance(value, bool)):
            problems.append(f"{member} is {_kind(value)}, expected {' or '.join(_kind_name(t) for t in types)}")
    if kind is Framework:
        variants = getattr(module, "VARIANTS", ())
        problems += [f"VARIANTS[{i}] is {_kind(v)}, expected a Variant" for i, v in enumerate(variants) if not isinstance(v, Variant)]
    if kind is LossFamily and hasattr(module, "probability_steps") != hasattr(module, "probability_recipe"):
        problems.append("probability_steps and probability_recipe come together (one without the other)")
    if kind is LossFamily and name is not None and isinstance(getattr(module, "NAME", None), str) and module.NAME != name:
        problems.append(f"NAME is {module.NAME!r}, but a family's NAME is its entry point's name {name!r}")
    return problems


def view(kind: type[Plugin], name: str, entry_point: str, module: ModuleType) -> Plugin:
    """The typed record of a module that fits (`check`): its members, the optional ones it lacks at
    their defaults."""
    given = {member: getattr(module, member) for member, *_ in members(kind) if hasattr(module, member)}
    return kind(name=name, entry_point=entry_point, module=module, **given)


def _own(value: Any, module: ModuleType) -> bool:
    """Whether a module attribute may be a member: no module, class, or function imported from elsewhere."""
    if isinstance(value, (ModuleType, type)):
        return False
    return getattr(value, "__module__", module.__name__) == module.__name__ if callable(value) else True


def _close(name: str, names: list[str], cutoff: float = 0.6) -> list[str]:
    folded = {n.casefold(): n for n in names}
    return [folded[n] for n in difflib.get_close_matches(name.casefold(), list(folded), n=3, cutoff=cutoff)]


def _fits(value: Any, types: tuple[type, ...]) -> bool:
    return any(callable(value) if t is Callable else isinstance(value, t) for t in types)


def _kind(value: Any) -> str:
    return "a function" if callable(value) else f"{type(value).__name__} {value!r:.60}"


def _kind_name(t: type) -> str:
    return {Callable: "a function", type(None): "None"}.get(t, t.__name__)
