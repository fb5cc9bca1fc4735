"""The results model: one record per case, serialised to `results.json` and read back by reports.

`loss` and `grad` are nested lists of floats; NaN and infinities are written as JSON's NaN/Infinity
extensions, which Python's `json` reads back (reports that feed JavaScript encode them separately).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from conformance.cases import Case
from conformance.compare import compare, order
from conformance.explain import explain

SCHEMA_VERSION = 1


def record(case: Case, results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A case and its results as plain data (the element of `results.json`'s `cases`)."""
    comparison = compare(case, results)
    for result in results.values():
        if result.get("documented"):
            result["documented"].pop("grad", None)  # checked above; its verdict and loss are what readers need
    expected = None
    if case.expect is not None:
        expected = case.expect.model_dump(exclude_none=True, exclude={"when"})
    record = {
        "id": case.id,
        "file": case.file,
        "line": case.line,
        "description": case.description,
        "params": case.params,
        "results": {key: _plain(results[key]) for key in order(results)},
        **comparison,
        "expected": expected,
    }
    record["explanation"] = _plain(explain(case, record)) if len(record["groups"]) > 1 else []
    for result in record["results"].values():
        result.pop("recipes", None)  # shown once, in the explanation
    return record


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def summary(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts for the terminal, the report and CI."""
    diverging = [r for r in records if len(r["groups"]) > 1]
    statuses: dict[str, int] = {}
    for r in records:
        for res in r["results"].values():
            statuses[res["status"]] = statuses.get(res["status"], 0) + 1
    undocumented = sum(1 for r in records for res in r["results"].values() if res.get("documented", {}).get("agrees") is False)
    return {
        "cases": len(records),
        "agree": len(records) - len(diverging),
        "diverge": len(diverging),
        "expectations": {v: sum(1 for r in records if r["expectation"] == v) for v in ("met", "violated", "none")},
        "statuses": statuses,
        "off_documented_formula": undocumented,
    }


def document(records: list[dict[str, Any]], versions: dict[str, str], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "versions": versions,
        "summary": summary(records),
        **(extra or {}),
        "cases": records,
    }


def write(path: Path, doc: dict[str, Any]) -> None:
    """Compact JSON (json's C encoder; an indent would use the pure-Python one, ~8x slower), one case
    record per line so a diff or `grep` still finds a case."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    head = json.dumps({k: v for k, v in doc.items() if k != "cases"}, indent=1, allow_nan=True)
    body = ",\n".join(json.dumps(case, separators=(",", ":"), allow_nan=True) for case in doc["cases"])
    tmp.write_text(f'{head[:-2]},\n "cases": [\n{body}\n]}}\n', encoding="utf-8")
    tmp.replace(path)


def read(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))
