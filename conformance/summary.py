"""What a reader wants first, from a results document: the pair agreement matrix, and `summary.md`.

Both are built from results.json as it streams by (`results.cases`), through accumulators that keep
counts and a bounded list, so a run of any size is summarised in flat memory.

`summary.md` is written for a CI job summary (GitHub drops one over 1 MiB whole), so it stays short:
the counts, the expectation failures and the most divergent cases (bounded lists), errors by framework,
the agreement of the default variants (one half of the symmetric matrix), what moved since a baseline,
and an absolute link to the HTML report that has everything else (a relative link is dead in a job summary).
"""

from __future__ import annotations

import heapq
import math
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

from conformance import results
from conformance.compare import order
from conformance.records import BaselineReport

MAX_LISTED = 20
MOST_DIVERGENT = 10
MESSAGE_CHARS = 300
REPORT_URL_ENV = "CONFORMANCE_REPORT_URL"
GITHUB_RUN = ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID")


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
    """What `summary.md` needs of the cases, added one at a time: the agreement counts, the first
    expectation failures (in results.json's order) with their number, the MAX_LISTED most divergent
    cases (a bounded heap), and errors and crashes per framework with the first of each."""

    def __init__(self) -> None:
        self.agreement = PairAgreement()
        self.violated = 0
        self.failures: list[tuple[str, str, str]] = []
        self.divergent: list[tuple[int, float, int, str, str, str]] = []  # (groups, spread, arrival, file, id, pair): a min-heap
        self.arrived = 0
        self.errors: dict[str, Counter[str]] = {}
        self.first_error: dict[str, tuple[str, str, str]] = {}

    def add(self, case: dict[str, Any]) -> None:
        self.agreement.add(case)
        if case["expectation"] == "violated":
            self.violated += 1
            if len(self.failures) < MAX_LISTED:
                self.failures.append((case["file"], case["id"], (case.get("expectation_message") or "")[:MESSAGE_CHARS]))
        if len(case["groups"]) > 1:
            finite = [p for p in case.get("pairs", []) if not p.get("agree") and math.isfinite(p.get("loss_max_abs", math.nan))]
            widest = max(finite, key=lambda p: p["loss_max_abs"], default=None)
            spread, between = (widest["loss_max_abs"], f"{widest['a']} vs {widest['b']}") if widest else (-1.0, "")
            if len(finite) < sum(1 for p in case.get("pairs", []) if not p.get("agree")):
                between += (" " if between else "") + "(others by inf or NaN)"
            self.arrived += 1
            entry = (len(case["groups"]), spread, -self.arrived, case["file"], case["id"], between)
            (heapq.heappush if len(self.divergent) < MOST_DIVERGENT else heapq.heappushpop)(self.divergent, entry)
        for key, result in case["results"].items():
            if result["status"] in ("error", "crashed"):
                framework = key.split(":")[0]
                self.errors.setdefault(framework, Counter())[result["status"]] += 1
                message = (result.get("message") or "").splitlines()[0][:MESSAGE_CHARS] if result.get("message") else ""
                self.first_error.setdefault(framework, (f"{case['file']}::{case['id']}", key, message))


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
        *_run(head.get("run")),
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
    lines += _divergent(digest)
    lines += _errors(digest)
    lines += _matrix(digest.agreement)
    if head.get("baseline"):
        lines += _baseline(BaselineReport.from_json(head["baseline"]))
    if report_link:
        lines.append(f"Full report (every case, its values, native code and plots): [{_escape(report_link)}](<{report_link}>)")
    return "\n".join(lines).rstrip() + "\n"


def _run(run: dict[str, Any] | None) -> list[str]:
    """When and where the run happened, and the commit of its case files."""
    if not run:
        return []
    parts = [run.get("date"), f"Python {run['python']}" if run.get("python") else None, run.get("os"), run.get("cpu")]
    if run.get("commit"):
        parts.append(f"case files at {run['commit'][:12]}" + (" (with uncommitted changes)" if run.get("modified") else ""))
    return [_escape(" · ".join(p for p in parts if p)), ""]


def _failures(digest: Digest) -> list[str]:
    if not digest.violated:
        return []
    out = [f"### Expectation failures ({digest.violated})", ""]
    for file, case_id, message in digest.failures:
        out.append(f"- **{_escape(file)}::{_escape(case_id)}**: {_escape(message)}")
    if digest.violated > MAX_LISTED:
        out.append(f"- … and {digest.violated - MAX_LISTED} more (see the report)")
    return out + [""]


def _divergent(digest: Digest) -> list[str]:
    if not digest.divergent:
        return []
    out = [
        "### Most divergent cases (most groups, then the largest finite loss difference)",
        "",
        "| case | groups | largest finite \\|Δloss\\| | between |",
        "|---|---:|---:|---|",
    ]
    for groups, spread, _, file, case_id, between in sorted(digest.divergent, reverse=True):
        shown = f"{spread:.3g}" if spread >= 0 else "–"
        out.append(f"| {_escape(file)}::{_escape(case_id)} | {groups} | {shown} | {_escape(between)} |")
    return out + [""]


def _errors(digest: Digest) -> list[str]:
    if not digest.errors:
        return []
    out = ["### Errors by framework", "", "| framework | error | crashed | first (case, result: message) |", "|---|---:|---:|---|"]
    for framework in order(digest.errors):
        counts, (where, key, message) = digest.errors[framework], digest.first_error[framework]
        first = f"{_escape(where)}, {_escape(key)}: {_escape(message)}"
        out.append(f"| {_escape(framework)} | {counts['error']} | {counts['crashed']} | {first} |")
    return out + [""]


def _matrix(agreement: PairAgreement) -> list[str]:
    """The lower half of the symmetric matrix and its diagonal (the share of cases a result is ok)."""
    keys = default_keys(agreement.keys())
    if not keys:
        return []
    out = [
        "### Pair agreement (share of cases where both are ok and agree; diagonal: share ok)",
        "",
        "| | " + " | ".join(keys) + " |",
        "|---|" + "---:|" * len(keys),
    ]
    for i, row in enumerate(agreement.rows(keys)):
        cells = [
            "" if j > i else f"{percent(c['fraction'])} ({c['agree']}/{c['cases']})" if c["fraction"] is not None else "–"
            for j, c in enumerate(row)
        ]
        out.append(f"| **{row[0]['a']}** | " + " | ".join(cells) + " |")
    return out + [""]


def _baseline(report: BaselineReport) -> list[str]:
    moved, changes = report.moved, report.status_changes
    out = [
        "### Since the baseline",
        "",
        (
            f"{_escape(report.file)}: {report.compared} values compared, "
            f"**{len(moved)}** moved beyond tolerance, {report.within_tolerance} within tolerance, "
            f"**{len(changes)}** status changes."
        ),
        "",
    ]
    rows = changes + moved
    if rows:
        out += ["| case | result | what | baseline | this run |", "|---|---|---|---|---|"]
        for row in rows[:MAX_LISTED]:
            out.append(
                f"| {_escape(row.case)} | {_escape(row.key)} | {row.what} | {_escape(_short(row.old))} | {_escape(_short(row.new))} |"
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


def report_link(html_path: Path | None) -> str | None:
    """Where a reader of the job summary finds the HTML report: CONFORMANCE_REPORT_URL if set; in a
    GitHub Actions run, that run's page (the report is among its artifacts); else the file's absolute
    file:// URI (a relative link is dead in a job summary)."""
    if os.environ.get(REPORT_URL_ENV):
        return os.environ[REPORT_URL_ENV]
    if html_path is None:
        return None
    if all(os.environ.get(name) for name in GITHUB_RUN):
        server, repository, run = (os.environ[name] for name in GITHUB_RUN)
        return f"{server}/{repository}/actions/runs/{run}"
    return html_path.resolve().as_uri()


def write(path: Path, results_path: Path, html_path: Path | None = None, digest: Digest | None = None) -> None:
    """Write `summary.md` from results.json in one streaming pass (memory flat in the number of cases),
    or from the `digest` of its cases made as they were written (no second read); it links to the HTML
    report (`report_link`)."""
    if digest is None:
        digest = Digest()
        for case in results.cases(results_path):
            digest.add(case)
    link = report_link(html_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(markdown(results.head(results_path), digest, link), encoding="utf-8")
