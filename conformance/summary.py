"""What a reader wants first, from a results document: the pair agreement matrix, and `summary.md`.

Both are built from results.json as it streams by (`results.cases`), through accumulators that keep
counts and a bounded list, so a run of any size is summarised in flat memory.

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

from conformance import results
from conformance.compare import order

MAX_LISTED = 20
MESSAGE_CHARS = 300
REPORT_URL_ENV = "CONFORMANCE_REPORT_URL"


def default_keys(keys: list[str]) -> list[str]:
    """The frameworks' default variants (their key is the framework's name, without `:variant`)."""
    return [key for key in keys if ":" not in key]


class PairAgreement:
    """The pair agreement counts, added case by case: the reports stream results.json, so the matrix is
    kept as counts (one per distinct pattern of keys that ran and were ok, one per agreeing pair), never
    as the cases themselves.

    A cell of `rows` counts `cases` (both keys have a result), `both_ok` and `agree`; `fraction` is
    agree/cases (None without cases). On the diagonal a key agrees with itself exactly when it is ok.
    """

    def __init__(self) -> None:
        self.agree: Counter[tuple[str, str]] = Counter()
        self.patterns: Counter[tuple[frozenset[str], frozenset[str]]] = Counter()

    def add(self, case: dict[str, Any]) -> None:
        outcomes = case["results"]
        self.patterns[(frozenset(outcomes), frozenset(k for k, r in outcomes.items() if r["status"] == "ok"))] += 1
        self.agree.update((p["a"], p["b"]) for p in case.get("pairs", []) if p.get("agree"))

    def keys(self) -> list[str]:
        """Every result key that occurred, in the canonical order (each framework's default variant first)."""
        return order({key for present, _ in self.patterns for key in present})

    def rows(self, keys: list[str]) -> list[list[dict[str, Any]]]:
        """One row of cells per key of `keys`, one cell per pair."""
        rows = []
        for a in keys:
            row = []
            for b in keys:
                ran = sum(n for (present, _), n in self.patterns.items() if a in present and b in present)
                both_ok = sum(n for (_, ok), n in self.patterns.items() if a in ok and b in ok)
                agreeing = both_ok if a == b else self.agree[(a, b)] + self.agree[(b, a)]
                row.append(
                    {"a": a, "b": b, "cases": ran, "both_ok": both_ok, "agree": agreeing, "fraction": agreeing / ran if ran else None}
                )
            rows.append(row)
        return rows


class Digest:
    """What `summary.md` needs of the cases, added one at a time: the agreement counts and the first
    expectation failures (in results.json's order) with their number."""

    def __init__(self) -> None:
        self.agreement = PairAgreement()
        self.violated = 0
        self.failures: list[tuple[str, str, str]] = []

    def add(self, case: dict[str, Any]) -> None:
        self.agreement.add(case)
        if case["expectation"] == "violated":
            self.violated += 1
            if len(self.failures) < MAX_LISTED:
                self.failures.append((case["file"], case["id"], (case.get("expectation_message") or "")[:MESSAGE_CHARS]))


def percent(fraction: float) -> str:
    """Rounded down, so 100% means every case and never 99.6%."""
    return f"{math.floor(fraction * 100 + 1e-9):d}%"


def markdown(head: dict[str, Any], digest: Digest, report_link: str | None = None) -> str:
    """The Markdown summary of a document (its head and the digest of its cases): short, bounded whatever
    the number of cases."""
    s = head["summary"]
    e = s["expectations"]
    lines = [
        (
            f"## Conformance: {s['cases']} cases, {s['diverge']} diverge, "
            f"{e['violated']} expectation{'' if e['violated'] == 1 else 's'} violated"
        ),
        "",
        _escape(" · ".join(f"{name} {version}" for name, version in head.get("versions", {}).items())),
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
    lines += _failures(digest)
    lines += _matrix(digest.agreement)
    if head.get("baseline"):
        lines += _baseline(head["baseline"])
    if report_link:
        lines.append(f"Full report (every case, its values, native code and plots): [{_escape(report_link)}](<{report_link}>)")
    return "\n".join(lines).rstrip() + "\n"


def _failures(digest: Digest) -> list[str]:
    if not digest.violated:
        return []
    out = [f"### Expectation failures ({digest.violated})", ""]
    for file, case_id, message in digest.failures:
        out.append(f"- **{_escape(file)}::{_escape(case_id)}**: {_escape(message)}")
    if digest.violated > MAX_LISTED:
        out.append(f"- … and {digest.violated - MAX_LISTED} more (see the report)")
    return out + [""]


def _matrix(agreement: PairAgreement) -> list[str]:
    keys = default_keys(agreement.keys())
    if not keys:
        return []
    out = [
        "### Pair agreement (share of cases where both are ok and agree)",
        "",
        "| | " + " | ".join(keys) + " |",
        "|---|" + "---:|" * len(keys),
    ]
    for row in agreement.rows(keys):
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


def write(path: Path, results_path: Path, html_path: Path | None = None, digest: Digest | None = None) -> None:
    """Write `summary.md` from results.json in one streaming pass (memory flat in the number of cases),
    or from the `digest` of its cases made as they were written (no second read); it links to the HTML
    report (CONFORMANCE_REPORT_URL if set)."""
    if digest is None:
        digest = Digest()
        for case in results.cases(results_path):
            digest.add(case)
    link = os.environ.get(REPORT_URL_ENV) or (os.path.relpath(html_path, path.parent) if html_path else None)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(markdown(results.head(results_path), digest, link), encoding="utf-8")
