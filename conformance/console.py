"""Terminal output: a progress bar while cases run, then the summary table and what failed.

The output is read in CI logs as often as in terminals: a line naming a case holds the whole case id
(`file::id`, never wrapped, so it can be searched for and copied), and numbers are written at their
dtype's precision (`digits.number`: a float32 loss as 1.0553335, not 1.0553334951400757).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from conformance.digits import number

T = TypeVar("T")
MAX_LISTED = 25


def progress(items: Iterable[T], total: int, console: Console) -> Iterator[T]:
    """Yield `items`, showing how many of `total` cases are done (only on a terminal)."""
    columns = (TextColumn("running cases"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True, disable=not console.is_terminal) as bar:
        task = bar.add_task("cases", total=total)
        for item in items:
            yield item
            bar.advance(task)


def print_summary(doc: dict[str, Any], console: Console, outputs: list[str]) -> None:
    s = doc["summary"]
    table = Table(
        title="conformance", caption="met/violated/unchecked: case expectations; off-doc: results that differ from their documented formula"
    )
    for column in ("cases", "agree", "diverge", "met", "violated", "unchecked", "off-doc"):
        table.add_column(column, justify="right")
    e = s["expectations"]
    table.add_row(
        str(s["cases"]),
        str(s["agree"]),
        str(s["diverge"]),
        str(e["met"]),
        f"[red]{e['violated']}[/red]" if e["violated"] else "0",
        str(e["none"]),
        str(s["off_documented_formula"]),
    )
    console.print(table)
    console.print("versions: " + ", ".join(f"{k} {v}" for k, v in doc["versions"].items()))
    statuses = ", ".join(f"{k} {v}" for k, v in sorted(s["statuses"].items()))
    console.print(f"results by status: {statuses}")
    if s.get("numerical_notes"):
        console.print(f"numerical notes (rounding at size, within the case's allowance): {s['numerical_notes']} results")
        for note in s.get("numerical_examples", []):
            console.print(escape(f"  {note}"), highlight=False, soft_wrap=True)
    moved = doc.get("residual_matrices") or []
    if moved:
        console.print("your functions across the cases of a matrix (what their difference moves with):")
        for entry in moved[:MAX_LISTED]:
            console.print(escape(f"  {entry['case']}: {entry['text']}"), highlight=False, soft_wrap=True)
        if len(moved) > MAX_LISTED:
            console.print(f"  ... and {len(moved) - MAX_LISTED} more (results.json: residual_matrices)")
    violated = [c for c in doc["cases"] if c["expectation"] == "violated"]
    for case in violated[:MAX_LISTED]:
        text = escape(f"{case['file']}::{case['id']}: {case['expectation_message']}")
        console.print(f"[red]VIOLATED[/red] {text}", highlight=False, soft_wrap=True)
    if len(violated) > MAX_LISTED:
        console.print(f"... and {len(violated) - MAX_LISTED} more (see the report)")
    if "baseline" in doc:
        dtypes = {(f"{c['file']}::{c['id']}", key): r.get("dtype") for c in doc["cases"] for key, r in c["results"].items()}
        print_baseline(doc["baseline"], console, dtypes)
    for path in outputs:
        console.print(f"wrote {path}", highlight=False, soft_wrap=True)


def print_baseline(report: dict[str, Any], console: Console, dtypes: dict[tuple[str, str], str | None] | None = None) -> None:
    """Every value that moved since the baseline and every status that changed, one line each: the case
    id whole, the result key, what changed, old -> new (at the result's dtype: the row's `dtype`, else
    `dtypes` by case and key, else float64). Lines are never wrapped: a CI log keeps each one greppable."""
    old, new = report["old_versions"], report["new_versions"]
    names = sorted(set(old) | set(new))
    steps = ", ".join(f"{n} {old.get(n, '-')} -> {new.get(n, '-')}" for n in names if old.get(n) != new.get(n)) or "same versions"
    console.print(
        f"baseline {report['file']} ({steps}): {report['compared']} values compared, "
        f"{len(report['moved'])} moved beyond tolerance, {report['within_tolerance']} moved within tolerance, "
        f"{len(report['status_changes'])} status changes",
        highlight=False,
    )
    _print_gaps(report, console)
    if not (report["moved"] or report["status_changes"]):
        return
    console.print("changed since the baseline (case, result, what: old -> new):", highlight=False)
    rows = report["status_changes"] + report["moved"]
    for row in rows[:MAX_LISTED]:
        dtype = row.get("dtype") or (dtypes or {}).get((row["case"], row["key"]))
        change = f"{_short(row['old'], dtype)} -> {_short(row['new'], dtype)}"
        console.print(escape(f"  {row['case']} {row['key']} {row['what']}: {change}"), highlight=False, soft_wrap=True)
    if len(rows) > MAX_LISTED:
        console.print(f"... and {len(rows) - MAX_LISTED} more (see results.json)")


def _print_gaps(report: dict[str, Any], console: Console) -> None:
    """What the baseline has and this run has not (renamed or removed: the run fails), and what is new."""
    gone, keys, new = report.get("gone_cases", []), report.get("gone_keys", []), report.get("new_cases", [])
    if gone:
        console.print(f"[red]{len(gone)} baselined cases are gone[/red] (renamed or removed; the run fails):", highlight=False)
        for name in gone[:MAX_LISTED]:
            console.print(escape(f"  gone: {name}"), highlight=False, soft_wrap=True)
    if keys:
        console.print(f"[red]{len(keys)} baselined results are gone[/red] (a variant dropped; the run fails):", highlight=False)
        for row in keys[:MAX_LISTED]:
            console.print(escape(f"  gone: {row['case']} {row['key']}"), highlight=False, soft_wrap=True)
    if new:
        console.print(f"{len(new)} cases are new (no baseline value yet; save a baseline to pin them):", highlight=False)
        for name in new[:MAX_LISTED]:
            console.print(escape(f"  new: {name}"), highlight=False, soft_wrap=True)
    if max(len(gone), len(keys), len(new)) > MAX_LISTED:
        console.print("... and more (see results.json: baseline.gone_cases, gone_keys, new_cases)", highlight=False)


def _short(value: Any, dtype: str | None = None) -> str:
    text = number(value, dtype) if not isinstance(value, str) else value
    return text if len(text) <= 60 else text[:57] + "..."
