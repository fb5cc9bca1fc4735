"""User mistakes, kept apart from bugs: only the CLI and the pytest plugin turn these into exit code 2."""

from __future__ import annotations


class ConformanceError(Exception):
    """A mistake of the user's (bad case file, bad option): reported in one paragraph, exit code 2."""


class CaseError(ConformanceError):
    """A case file that cannot be run, with where it is wrong and what was expected there."""

    def __init__(self, file: str, message: str, line: int | None = None, key: str | None = None) -> None:
        self.file = file
        self.line = line
        self.key = key
        self.message = message
        where = file if line is None else f"{file}:{line}"
        at = f" (key '{key}')" if key else ""
        super().__init__(f"{where}{at}: {message}")


class UsageError(ConformanceError):
    """A command-line option that does not make sense."""
