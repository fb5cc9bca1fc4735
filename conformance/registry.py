"""The plug-in registry: frameworks and loss families found through entry points.

A framework is a module registered in the entry point group `conformance.frameworks`; a loss family a
module registered in `conformance.losses`. This package registers its own (torch, paddle, tensorflow,
reference; softmax and binary cross-entropy) the same way in `pyproject.toml`, so another package adds
one by declaring an entry point, with no edit here. The core only iterates this registry: nothing
outside the framework and loss-family modules names a framework or a family.

A framework module is imported in the parent too (to list its variants and read its snippets' set-up);
it must import its framework itself only inside functions the worker calls (`version`, `to_numpy`,
the variants' code), never at module level. See `docs/extending.md` for both protocols.

The two protocols (module attributes; `typing.Protocol` only documents them, nothing is subclassed):
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from importlib.metadata import entry_points
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol

from conformance.errors import UsageError

if TYPE_CHECKING:
    from conformance.adapters import Variant
    from conformance.cases import Case

FRAMEWORKS_GROUP = "conformance.frameworks"
LOSSES_GROUP = "conformance.losses"
DEFAULT_ORDER = 500


class Framework(Protocol):
    """What a framework module provides.

    ORDER: rank in tables and in the canonical key order (optional; lower first, default 500).
    REFERENCE: True for the float64 oracle (optional, default False): it is what differences are
        measured against; explanations and recipes are made between the other (native) frameworks.
    SETUP: the imports that open every snippet of the framework.
    VARIANTS: its `Variant`s (each one native API for one or more loss families).
    version(): the versions of the packages that ran, e.g. {"torch": "2.13.0"} (runs in the worker).
    to_numpy(value): a framework tensor as (float64-castable array, dtype name) (runs in the worker).
    recipe(case, knobs): optional; native code reproducing another framework's documented semantics
        (`knobs`), or None where it has none.
    REPOSITORIES: optional; names written before an issue number (`Paddle #20994`) -> GitHub repository.
    Runner(namespace): optional; made once per worker, its `run(code, scope)` executes the variants' and
        recipes' code instead of a plain `exec` (JAX's keeps what `jax.jit` compiled across cases).
    """

    SETUP: str
    VARIANTS: list[Variant]

    def version(self) -> dict[str, str]: ...

    def to_numpy(self, value: object) -> tuple[object, str]: ...


class LossFamily(Protocol):
    """What a loss-family module provides (see `conformance.losses`)."""

    NAME: str

    def build(self, spec: Any, fail: Callable[[str, str], Exception]) -> dict[str, Any]: ...

    def evaluate(self, case: Case, knobs: Any) -> Any: ...


def _entry_points(group: str) -> dict[str, str]:
    found = {ep.name: ep.value for ep in entry_points(group=group)}
    if not found:
        raise UsageError(
            f"no plug-ins in the entry point group '{group}': the conformance package is not installed "
            "(pip install -c constraints.txt -e '.[all]')"
        )
    return found


@functools.cache
def frameworks() -> dict[str, str]:
    """Framework name -> module path, in their canonical order (ORDER, then name)."""
    found = _entry_points(FRAMEWORKS_GROUP)
    rank = {name: getattr(framework(name, found[name]), "ORDER", DEFAULT_ORDER) for name in found}
    return {name: found[name] for name in sorted(found, key=lambda n: (rank[n], n))}


@functools.cache
def framework(name: str, path: str | None = None) -> ModuleType:
    """The module of framework `name` (its framework itself is not imported)."""
    return importlib.import_module(path or frameworks()[name])


def native() -> list[str]:
    """The frameworks whose results are explained against each other (every one but the oracle)."""
    return [name for name in frameworks() if not getattr(framework(name), "REFERENCE", False)]


def oracles() -> list[str]:
    """The frameworks that compute the float64 reference."""
    return [name for name in frameworks() if getattr(framework(name), "REFERENCE", False)]


@functools.cache
def losses() -> dict[str, ModuleType]:
    """Loss family name -> its module, in the order of their ORDER (then name)."""
    found = {name: importlib.import_module(path) for name, path in _entry_points(LOSSES_GROUP).items()}
    return {name: found[name] for name in sorted(found, key=lambda n: (getattr(found[n], "ORDER", DEFAULT_ORDER), n))}


def loss(name: str) -> ModuleType:
    return losses()[name]


def refresh() -> None:
    """Forget what was found (a test that registers a plug-in at run time)."""
    frameworks.cache_clear()
    framework.cache_clear()
    losses.cache_clear()
