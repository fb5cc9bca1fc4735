"""Project-local pytest settings.

The case-file plugin is registered by the package's `pytest11` entry point once it is installed; from a
bare checkout (not installed) it is registered here instead, never both.
"""

from typing import Any


def pytest_addoption(parser: Any, pluginmanager: Any) -> None:
    if not pluginmanager.has_plugin("conformance"):
        pluginmanager.import_plugin("conformance.plugin")
