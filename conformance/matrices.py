"""Across the cases of one matrix, which parameter a user's function's difference moves with.

One case's explanation says what the numbers of that case show (`conformance.residual`); the cases a
`matrix:` expands to say more together: kornia's focal mean is torch's divided by C under `reduction:
mean`, another shape under `none`, the same under `sum`, whatever `weight` is. `Movements` reads the case
records as they are written (their JSON form: the fit of each user's function against its default
variant) and, at the end, says for each matrix and pair which matrix key the kind of difference is a
function of, with the kind for each of its values.
"""

from __future__ import annotations

import json
import re
from typing import Any

_KEY = re.compile(r"(?:^|,)([A-Za-z_]\w*)=")


def matrix_keys(case_id: str) -> tuple[str, list[str]]:
    """The case id without its matrix label, and the matrix keys the label names (none outside a matrix)."""
    base, bracket, label = case_id.partition("[")
    return base, _KEY.findall(label.removesuffix("]")) if bracket else []


def kind(entry: dict[str, Any] | None, status: str) -> str:
    """What a user's function does on one case, in a few words: agrees, a non-ok status, the knob settings
    of an exact fit, or the residual's kind (`fit.residual`), with the count a factor equals rather than its
    value (the value changes with the case's shape, the count does not)."""
    if status != "ok":
        return status
    if entry is None:
        return "agrees"
    fit = entry.get("fit") or {}
    if fit.get("exact"):
        return "fit: " + ", ".join(f"{k} = {v!r}" for k, v in sorted((fit.get("knobs") or {}).items())) if fit.get("knobs") else "agrees"
    facts = fit.get("residual") or {}
    if "parameter" in facts:
        return f"as if {facts['parameter']['key']} were {facts['parameter']['value']:.4g}"
    if "shift" in facts:
        shift = facts["shift"]
        return f"labels shifted by {shift['by']} along label axis {shift['axis']}"
    if "reduced" in facts:
        return f"values of another shape ({facts['reduced']['how']})"
    if facts.get("denominator_counts"):
        return f"its mean divides by {facts['denominator_counts'][0]}"
    if facts.get("factor_counts"):
        return f"a factor equal to {facts['factor_counts'][0]}"
    if "factor" in facts:
        return f"a factor of {facts['factor']:.4g}"
    if "offset" in facts:
        return "a constant offset"
    if "differs" in facts:
        return "some positions differ"
    return "unexplained"


class Movements:
    """Collects, per matrix case (file, id without its label), each case's matrix values, statuses, groups
    and the kind of each fitted pair; `found` resolves the pairs over every case of the matrix (a pair is
    fitted only where it diverges, so a case where b agrees has no entry of its own)."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], list[tuple[dict[str, str], dict[str, str], dict[str, int], dict[tuple[str, str], str]]]] = {}

    def add(self, case: dict[str, Any]) -> None:
        base, keys = matrix_keys(str(case["id"]))
        if not keys:
            return
        values = {k: _shown(case["params"].get(k)) for k in keys}
        statuses = {key: str(r["status"]) for key, r in case["results"].items()}
        group_of = {key: i for i, group in enumerate(case.get("groups", [])) for key in group}
        kinds = {(e["a"], e["b"]): kind(e, statuses.get(e["b"], "ok")) for e in case.get("explanation", []) if e.get("fit") is not None}
        self.rows.setdefault((case["file"], base), []).append((values, statuses, group_of, kinds))

    def found(self) -> list[dict[str, Any]]:
        """For each matrix and pair with a difference somewhere: the keys its kind moves with (each alone
        determines it), the kind by value of the first such key, and a sentence."""
        out = []
        for (file, base), rows in self.rows.items():
            for a, b in sorted({pair for *_, kinds in rows for pair in kinds}):
                resolved = [(values, _resolved(a, b, statuses, group_of, kinds)) for values, statuses, group_of, kinds in rows]
                kept = [(values, k) for values, k in resolved if k is not None]
                if len(kept) > 1:
                    out.append(_movement(file, base, a, b, kept))
        return out


def _resolved(a: str, b: str, statuses: dict[str, str], group_of: dict[str, int], kinds: dict[tuple[str, str], str]) -> str | None:
    """The kind of (a, b) on one case; None where a did not run (nothing to compare b with) or b cannot
    express the case (unsupported: a parameter it does not take, not a difference)."""
    if statuses.get(a) != "ok" or statuses.get(b, "unsupported") == "unsupported":
        return None
    if (a, b) in kinds:
        return kinds[(a, b)]
    if statuses[b] != "ok":
        return statuses[b]
    return "agrees" if group_of.get(a) == group_of.get(b) else "unexplained"


def _movement(file: str, base: str, a: str, b: str, rows: list[tuple[dict[str, str], str]]) -> dict[str, Any]:
    kinds = {k for _, k in rows}
    keys = list(rows[0][0])
    moving = [key for key in keys if _determines(rows, key) and len({v[key] for v, _ in rows}) > 1]
    by: dict[str, str] = {}
    if len(kinds) == 1:
        text = f"the same in every case of the matrix: {next(iter(kinds))}"
    elif moving:
        key = moving[0]
        by = {v[key]: k for v, k in rows}
        also = f" (and {', '.join(moving[1:])}, which vary with it)" if moving[1:] else ""
        text = f"moves with {key}{also}: " + "; ".join(f"{key}={value}: {k}" for value, k in by.items())
    else:
        text = f"moves with no single key of the matrix ({', '.join(keys)} together)"
    return {"case": f"{file}::{base}", "a": a, "b": b, "moves_with": moving, "by_value": by, "text": f"{b} vs {a}: {text}"}


def _shown(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def _determines(rows: list[tuple[dict[str, str], str]], key: str) -> bool:
    """Whether the kind is a function of `key`'s value across the rows."""
    first: dict[str, str] = {}
    return all(first.setdefault(values[key], k) == k for values, k in rows)
