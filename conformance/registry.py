"""The plug-in registry: frameworks and loss families found through entry points.

A framework is a module registered in the entry point group `conformance.frameworks`; a loss family a
module registered in `conformance.losses`. This package registers its own (torch, paddle, tensorflow,
reference; softmax and binary cross-entropy) the same way in `pyproject.toml`, so another package adds
one by declaring an entry point, with no edit here. The core only iterates this registry: nothing
outside the framework and loss-family modules names a framework or a family.

A framework module is imported in the parent too (to list its variants and read its snippets' set-up);
it must import its framework itself only inside functions the worker calls (`version`, `to_numpy`,
the variants' code), never at module level. See `docs/extending.md` for both protocols.

Every plug-in is checked against the contract (`conformance.contract`) when it is loaded: a missing,
misspelt or wrongly typed member is a usage error naming the plug-in, its entry point and the member,
and what the rest of the package reads is the checked record, the optional members' defaults filled in.
"""

from __future__ import annotations

import functools
import importlib
from importlib.metadata import entry_points

from conformance import contract
from conformance.contract import Framework, LossFamily
from conformance.errors import UsageError

FRAMEWORKS_GROUP = "conformance.frameworks"
LOSSES_GROUP = "conformance.losses"


def _entry_points(group: str) -> dict[str, str]:
    found = {ep.name: ep.value for ep in entry_points(group=group)}
    if not found:
        raise UsageError(
            f"no plug-ins in the entry point group '{group}': the conformance package is not installed "
            "(pip install -c constraints.txt -e '.[all]')"
        )
    return found


def load(kind: type[contract.Plugin], group: str, name: str, path: str) -> contract.Plugin:
    """The plug-in `name` (entry point `name = path` in `group`) checked against the contract."""
    module = importlib.import_module(path)
    problems = contract.check(kind, module, name)
    if problems:
        what = "framework" if kind is Framework else "loss family"
        raise UsageError(
            f"the {what} plug-in '{name}' (entry point '{name} = {path}' in the group '{group}', module {module.__file__}) "
            f"does not fit the plug-in contract (conformance/contract.py, docs/extending.md): {'; '.join(problems)}"
        )
    return contract.view(kind, name, path, module)


@functools.cache
def frameworks() -> dict[str, str]:
    """Framework name -> module path, in their canonical order (ORDER, then name)."""
    found = _entry_points(FRAMEWORKS_GROUP)
    rank = {name: framework(name, found[name]).ORDER for name in found}
    return {name: found[name] for name in sorted(found, key=lambda n: (rank[n], n))}


def framework(name: str, path: str | None = None) -> Framework:
    """The checked framework plug-in `name` (its framework itself is not imported)."""
    return _framework(name, path or frameworks()[name])


@functools.cache
def _framework(name: str, path: str) -> Framework:
    return load(Framework, FRAMEWORKS_GROUP, name, path)


def native() -> list[str]:
    """The frameworks whose results are explained against each other (every one but the oracle)."""
    return [name for name in frameworks() if not framework(name).REFERENCE]


def oracles() -> list[str]:
    """The frameworks that compute the float64 reference."""
    return [name for name in frameworks() if framework(name).REFERENCE]


@functools.cache
def losses() -> dict[str, LossFamily]:
    """Loss family name -> its checked plug-in, in the order of their ORDER (then name)."""
    found = {name: load(LossFamily, LOSSES_GROUP, name, path) for name, path in _entry_points(LOSSES_GROUP).items()}
    return {name: found[name] for name in sorted(found, key=lambda n: (found[n].ORDER, n))}


def loss(name: str) -> LossFamily:
    return losses()[name]


def refresh() -> None:
    """Forget what was found (a test that registers a plug-in at run time)."""
    frameworks.cache_clear()
    _framework.cache_clear()
    losses.cache_clear()
