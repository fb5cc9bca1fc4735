"""results.json: written case by case as records complete, read back by the reports.

`loss` and `grad` are nested lists of floats (above 4,096 elements their compact form,
`conformance.compact`); NaN and infinities are written as JSON's NaN/Infinity extensions, which
Python's `json` reads back (reports that feed JavaScript encode them separately).
The document is one JSON object (`json.load` reads it); its head (versions, summary, baseline, ...)
comes first, then `cases`, one case record per line, so a reader can also stream it (`head`, `cases`)
without holding every case.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
CASES_LINE = ' "cases": ['


NOTES_SHOWN = 5


class Counts:
    """The document's `summary`, counted as cases are added: with the results that carry a numerical note
    (off their float64 value within the size allowance, `compare.allowance`) and the first few notes."""

    def __init__(self) -> None:
        self.cases = self.diverge = self.off_documented = 0
        self.expectations = {"met": 0, "violated": 0, "none": 0}
        self.statuses: dict[str, int] = {}
        self.notes: list[str] = []
        self.noted = 0

    def add(self, case: dict[str, Any]) -> None:
        self.cases += 1
        self.diverge += len(case["groups"]) > 1
        self.expectations[case["expectation"]] += 1
        for result in case["results"].values():
            self.statuses[result["status"]] = self.statuses.get(result["status"], 0) + 1
            self.off_documented += (result.get("documented") or {}).get("agrees") is False
            if result.get("numerical"):
                self.noted += 1
                if len(self.notes) < NOTES_SHOWN:
                    self.notes.append(f"{case['file']}::{case['id']}: {result['numerical']['text']}")

    def summary(self) -> dict[str, Any]:
        return {
            "cases": self.cases,
            "agree": self.cases - self.diverge,
            "diverge": self.diverge,
            "expectations": dict(self.expectations),
            "statuses": dict(self.statuses),
            "off_documented_formula": self.off_documented,
            "numerical_notes": self.noted,
            "numerical_examples": list(self.notes),
        }


class Writer:
    """Writes results.json as cases complete: each case line goes to a part file beside it at once (an
    interrupted run keeps what was done), and `finish` puts the head, whose summary is known only then,
    before them. Memory stays flat in the number of cases."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.partial = path.with_suffix(path.suffix + ".part")
        self.out = self.partial.open("w", encoding="utf-8")
        self.counts = Counts()

    def add(self, case: dict[str, Any]) -> None:
        """One case record (its JSON form); compact JSON by json's C encoder."""
        if self.counts.cases:
            self.out.write(",\n")
        self.out.write(json.dumps(case, separators=(",", ":"), allow_nan=True))
        self.counts.add(case)

    def finish(self, head: dict[str, Any]) -> dict[str, Any]:
        """Write the document; returns its head (with `summary`)."""
        self.out.close()
        head = {"schema_version": SCHEMA_VERSION, "versions": head.pop("versions", {}), "summary": self.counts.summary(), **head}
        text = json.dumps(head, indent=1, allow_nan=True)
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        with tmp.open("w", encoding="utf-8") as out, self.partial.open(encoding="utf-8") as body:
            out.write(f"{text[:-2]},\n{CASES_LINE}\n")
            shutil.copyfileobj(body, out)
            out.write("\n]}\n")
        tmp.replace(self.path)
        self.partial.unlink()
        return head


def write(path: Path, doc: dict[str, Any]) -> None:
    """A whole in-memory document (the streaming `Writer` does the same case by case)."""
    writer = Writer(path)
    for case in doc["cases"]:
        writer.add(case)
    writer.finish({k: v for k, v in doc.items() if k not in ("cases", "summary", "schema_version")})


def run_details(paths: Iterable[Path] = ()) -> dict[str, Any]:
    """Where and when a run happened, for the reports: Python, OS, CPU, the date (UTC) and, where the
    first case path lies in a git work tree, its commit (`modified`: the case files have uncommitted
    changes), so a report says which case files it shows."""
    details: dict[str, Any] = {
        "python": platform.python_version(),
        "os": platform.platform(),
        "cpu": _cpu(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    for path in paths:
        folder = path if path.is_dir() else path.parent
        commit = _git(folder, "rev-parse", "HEAD")
        if commit:
            details["commit"] = commit
            details["modified"] = bool(_git(folder, "status", "--porcelain", "--", "."))
        break
    return details


def _cpu() -> str:
    """The CPU's model name and how many logical CPUs this process may use."""
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            name = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), name)
    except OSError:
        pass
    return f"{name}, {os.cpu_count() or 1} logical CPUs"


def _git(folder: Path, *args: str) -> str:
    """A git command's output in `folder`, or "" where git or a work tree is missing."""
    try:
        done = subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def read(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def head(path: Path) -> dict[str, Any]:
    """Everything but the cases, without reading them."""
    lines = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.rstrip("\n") == CASES_LINE:
                break
            lines.append(line)
    text = "".join(lines).rstrip().removesuffix(",")
    return json.loads(text + "}") if lines else {}


def cases(path: Path) -> Iterator[dict[str, Any]]:
    """The case records one at a time, as `Writer` wrote them (one per line)."""
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.rstrip("\n") == CASES_LINE:
                break
        for line in f:
            text = line.rstrip().removesuffix(",")
            if text in ("]}", ""):
                return
            yield json.loads(text)
