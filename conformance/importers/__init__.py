"""Importers: other tools' recorded calls turned into case files (`conformance import SOURCE FILE...`).

One module per source, each with `read(paths) -> Import` (what it could and could not express) and
`write(imported, out) -> list[Path]` (case files the project's own loader reads), `summary(imported)`
(lines to print), and what the command line says of it: `HELP`, `FILES_HELP`, `DEFAULT_OUT`.
"""

import importlib
from types import ModuleType

SOURCES = {"paddleapitest": "conformance.importers.paddleapitest"}
"""`conformance import SOURCE`: the source's name on the command line -> its module."""


def importer(source: str) -> ModuleType:
    """The module of an importer (imported only when it is used)."""
    return importlib.import_module(SOURCES[source])
