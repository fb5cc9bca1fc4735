"""Terminal output: a progress bar while cases run, then the summary table and what failed."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

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
    violated = [c for c in doc["cases"] if c["expectation"] == "violated"]
    for case in violated[:MAX_LISTED]:
        text = escape(f"{case['file']}::{case['id']}: {case['expectation_message']}")
        console.print(f"[red]VIOLATED[/red] {text}", highlight=False)
    if len(violated) > MAX_LISTED:
        console.print(f"... and {len(violated) - MAX_LISTED} more (see the report)")
    if "baseline" in doc:
        print_baseline(doc["baseline"], console)
    for path in outputs:
        console.print(f"wrote {path}", highlight=False)


def print_baseline(report: dict[str, Any], console: Console) -> None:
    """Per framework, every value that moved since the baseline, old and new versions side by side."""
    old, new = report["old_versions"], report["new_versions"]
    names = sorted(set(old) | set(new))
    steps = ", ".join(f"{n} {old.get(n, '-')} -> {new.get(n, '-')}" for n in names if old.get(n) != new.get(n)) or "same versions"
    console.print(
        f"baseline {report['file']} ({steps}): {report['compared']} values compared, "
        f"{len(report['moved'])} moved beyond tolerance, {report['within_tolerance']} moved within tolerance, "
        f"{len(report['status_changes'])} status changes",
        highlight=False,
    )
    if not (report["moved"] or report["status_changes"]):
        return
    table = Table(title="changed since the baseline")
    for column in ("case", "result", "what", "old", "new"):
        table.add_column(column, overflow="fold")
    rows = report["status_changes"] + report["moved"]
    for row in rows[:MAX_LISTED]:
        table.add_row(escape(row["case"]), row["key"], row["what"], escape(_short(row["old"])), escape(_short(row["new"])))
    console.print(table)
    if len(rows) > MAX_LISTED:
        console.print(f"... and {len(rows) - MAX_LISTED} more (see results.json)")


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."
