"""What a reader wants first, from a results document: the pair agreement matrix, and `summary.md`.

`summary.md` is written for a CI job summary (GitHub drops one over 1 MiB whole), so it stays short:
the counts, the expectation failures (a bounded list), the agreement of the default variants, what moved
since a baseline, and a link to the HTML report that has everything else.
"""

from __future__ import annotations

import math
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

from conformance.compare import order

MAX_LISTED = 20
MESSAGE_CHARS = 300
REPORT_URL_ENV = "CONFORMANCE_REPORT_URL"


def result_keys(cases: list[dict[str, Any]]) -> list[str]:
    """Every result key that occurs, in the canonical order (each framework's default variant first)."""
    return order({key for case in cases for key in case["results"]})


def default_keys(keys: list[str]) -> list[str]:
    """The frameworks' default variants (their key is the framework's name, without `:variant`)."""
    return [key for key in keys if ":" not in key]


def pair_agreement(cases: list[dict[str, Any]], keys: list[str]) -> list[list[dict[str, Any]]]:
    """Rows of cells, one per pair of `keys`: in how many of the cases where both ran both are ok and agree.

    A cell counts `cases` (both keys have a result), `both_ok` and `agree`; `fraction` is agree/cases
    (None without cases). On the diagonal a key agrees with itself exactly when it is ok.
    """
    agree: Counter[tuple[str, str]] = Counter()
    patterns: Counter[tuple[frozenset[str], frozenset[str]]] = Counter()
    for case in cases:
        results = case["results"]
        patterns[(frozenset(results), frozenset(k for k, r in results.items() if r["status"] == "ok"))] += 1
        agree.update((p["a"], p["b"]) for p in case.get("pairs", []) if p.get("agree"))
    rows = []
    for a in keys:
        row = []
        for b in keys:
            ran = sum(n for (present, _), n in patterns.items() if a in present and b in present)
            both_ok = sum(n for (_, ok), n in patterns.items() if a in ok and b in ok)
            agreeing = both_ok if a == b else agree[(a, b)] + agree[(b, a)]
            row.append(
                {
                    "a": a,
                    "b": b,
                    "cases": ran,
                    "both_ok": both_ok,
                    "agree": agreeing,
                    "fraction": agreeing / ran if ran else None,
                }
            )
        rows.append(row)
    return rows


def percent(fraction: float) -> str:
    """Rounded down, so 100% means every case and never 99.6%."""
    return f"{math.floor(fraction * 100 + 1e-9):d}%"


def markdown(doc: dict[str, Any], report_link: str | None = None) -> str:
    """The Markdown summary: short, bounded whatever the number of cases."""
    s, cases = doc["summary"], doc["cases"]
    e = s["expectations"]
    lines = [
        (
            f"## Conformance: {s['cases']} cases, {s['diverge']} diverge, "
            f"{e['violated']} expectation{'' if e['violated'] == 1 else 's'} violated"
        ),
        "",
        _escape(" · ".join(f"{name} {version}" for name, version in doc.get("versions", {}).items())),
        "",
        "| cases | all agree | diverge | expectations met | violated | no expectation | off documented formula |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        (
            f"| {s['cases']} | {s['agree']} | {s['diverge']} | {e['met']} | {e['violated']} | {e['none']} | "
            f"{s.get('off_documented_formula', 0)} |"
        ),
        "",
        "Results by status: " + ", ".join(f"{k} {v}" for k, v in sorted(s.get("statuses", {}).items())),
        "",
    ]
    lines += _failures(cases)
    lines += _matrix(cases)
    if doc.get("baseline"):
        lines += _baseline(doc["baseline"])
    if report_link:
        lines.append(f"Full report (every case, its values, native code and plots): [{_escape(report_link)}](<{report_link}>)")
    return "\n".join(lines).rstrip() + "\n"


def _failures(cases: list[dict[str, Any]]) -> list[str]:
    violated = [c for c in cases if c["expectation"] == "violated"]
    if not violated:
        return []
    out = [f"### Expectation failures ({len(violated)})", ""]
    for case in violated[:MAX_LISTED]:
        message = (case.get("expectation_message") or "")[:MESSAGE_CHARS]
        out.append(f"- **{_escape(case['file'])}::{_escape(case['id'])}**: {_escape(message)}")
    if len(violated) > MAX_LISTED:
        out.append(f"- … and {len(violated) - MAX_LISTED} more (see the report)")
    return out + [""]


def _matrix(cases: list[dict[str, Any]]) -> list[str]:
    keys = default_keys(result_keys(cases))
    if not keys:
        return []
    out = [
        "### Pair agreement (share of cases where both are ok and agree)",
        "",
        "| | " + " | ".join(keys) + " |",
        "|---|" + "---:|" * len(keys),
    ]
    for row in pair_agreement(cases, keys):
        cells = [f"{percent(c['fraction'])} ({c['agree']}/{c['cases']})" if c["fraction"] is not None else "–" for c in row]
        out.append(f"| **{row[0]['a']}** | " + " | ".join(cells) + " |")
    return out + [""]


def _baseline(report: dict[str, Any]) -> list[str]:
    moved, changes = report.get("moved", []), report.get("status_changes", [])
    out = [
        "### Since the baseline",
        "",
        (
            f"{_escape(str(report.get('file')))}: {report.get('compared', 0)} values compared, "
            f"**{len(moved)}** moved beyond tolerance, {report.get('within_tolerance', 0)} within tolerance, "
            f"**{len(changes)}** status changes."
        ),
        "",
    ]
    rows = changes + moved
    if rows:
        out += ["| case | result | what | baseline | this run |", "|---|---|---|---|---|"]
        for row in rows[:MAX_LISTED]:
            out.append(
                f"| {_escape(row['case'])} | {_escape(row['key'])} | {row['what']} | "
                f"{_escape(_short(row['old']))} | {_escape(_short(row['new']))} |"
            )
        if len(rows) > MAX_LISTED:
            out.append(f"| … {len(rows) - MAX_LISTED} more | | | | |")
        out.append("")
    return out


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _escape(text: str) -> str:
    """Case files are untrusted: no HTML, no table breaks, no Markdown markup from them."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\n", " ")
    return re.sub(r"([\\`*_\[\]|#~])", r"\\\1", text)


def write(path: Path, doc: dict[str, Any], html_path: Path | None = None) -> None:
    """Write `summary.md` beside results.json; it links to the HTML report (CONFORMANCE_REPORT_URL if set)."""
    link = os.environ.get(REPORT_URL_ENV) or (os.path.relpath(html_path, path.parent) if html_path else None)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(markdown(doc, link), encoding="utf-8")
