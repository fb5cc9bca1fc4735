"""`conformance.summary`: the Markdown job summary stays short, escaped, and links to the HTML report.

It is built from results.json as it streams (`summary.write`); `markdown` takes the document's head
and the digest of its cases, so the tests below that need no file digest a list in memory.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from browser.documents import HOSTILE, case, matrix_cases, pair, result, sample_doc

from conformance import results, summary


def markdown(doc: dict[str, Any], link: str | None = None) -> str:
    digest = summary.Digest()
    for c in doc["cases"]:
        digest.add(c)
    return summary.markdown(doc, digest, link)


def written(doc: dict[str, Any], folder: Path, html_path: Path | None = None) -> str:
    """summary.md as `Outputs.finish` writes it: from a results.json."""
    results.write(folder / "results.json", doc)
    summary.write(folder / "summary.md", folder / "results.json", html_path)
    return (folder / "summary.md").read_text(encoding="utf-8")


# summary.md of sample_doc() with a baseline, as the in-memory code wrote it before the reports streamed
# results.json (the streamed one must not differ by a character), with the sections issue 18 added.
SAMPLE_SUMMARY = "\n".join(
    [
        "## Conformance: 8 cases, 5 diverge, 1 expectation violated",
        "",
        "torch 2.13.0+cpu · paddlepaddle 3.3.1 · tensorflow 2.21.0",
        "",
        "| cases | all agree | diverge | expectations met | violated | no expectation | off documented formula |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        "| 8 | 3 | 5 | 7 | 1 | 0 | 1 |",
        "",
        "Results by status: error 2, ok 24, unsupported 2",
        "",
        "### Expectation failures (1)",
        "",
        r"- **cases/sample.yaml::hostile\[reduction=&lt;script&gt;alert(1)&lt;/script&gt;\]**"
        r": expected groups \[\[torch, tensorflow\]\], found &lt;script&gt;alert(1)&lt;/script&gt;",
        "",
        # by hand from sample_doc(): the five divergent cases, two groups each; 0.5 apart (documents.case), two_keys by NaN
        "### Most divergent cases (most groups, then the largest finite loss difference)",
        "",
        r"| case | groups | largest finite \|Δloss\| | between |",
        "|---|---:|---:|---|",
        r"| cases/sample.yaml::hostile\[reduction=&lt;script&gt;alert(1)&lt;/script&gt;\] | 2 | 0.5 | torch vs tensorflow |",
        r"| cases/sample.yaml::smooth\[label\_smoothing=0.0\] | 2 | 0.5 | torch vs tensorflow |",
        r"| cases/sample.yaml::smooth\[label\_smoothing=0.1\] | 2 | 0.5 | torch vs tensorflow |",
        r"| cases/sample.yaml::smooth\[label\_smoothing=0.2\] | 2 | 0.5 | torch vs tensorflow |",
        r"| cases/sample.yaml::two\_keys | 2 | – | (others by inf or NaN) |",
        "",
        "### Errors by framework",
        "",
        "| framework | error | crashed | first (case, result: message) |",
        "|---|---:|---:|---|",
        r"| torch | 1 | 0 | cases/sample.yaml::nothing\_ran, torch: error: because &lt;b&gt;reasons&lt;/b&gt; |",
        r"| paddle | 1 | 0 | cases/sample.yaml::paddle\_error, paddle: error: because &lt;b&gt;reasons&lt;/b&gt; |",
        "",
        "### Pair agreement (share of cases where both are ok and agree; diagonal: share ok)",
        "",
        "| | torch | paddle | tensorflow | reference |",
        "|---|---:|---:|---:|---:|",
        "| **torch** | 87% (7/8) |  |  |  |",  # one half of the symmetric matrix
        "| **paddle** | 71% (5/7) | 71% (5/7) |  |  |",
        "| **tensorflow** | 16% (1/6) | 0% (0/6) | 83% (5/6) |  |",
        "| **reference** | 85% (6/7) | 83% (5/6) | 16% (1/6) | 100% (7/7) |",
        "",
        "### Since the baseline",
        "",
        "cases/baselines/old.json: 3 values compared, **1** moved beyond tolerance, 1 within tolerance, **0** status changes.",
        "",
        "| case | result | what | baseline | this run |",
        "|---|---|---|---|---|",
        r"| cases/sample.yaml::two\_keys | torch | loss | 1.0 | nan |",
        "",
        "Full report (every case, its values, native code and plots): [{text}](<{link}>)",
        "",
    ]
)


def test_streamed_summary_unchanged(tmp_path, monkeypatch):
    monkeypatch.delenv(summary.REPORT_URL_ENV, raising=False)
    doc = sample_doc()
    doc["baseline"] = {
        "file": "cases/baselines/old.json",
        "old_versions": {},
        "new_versions": {},
        "compared": 3,
        "within_tolerance": 1,
        "moved": [{"case": "cases/sample.yaml::two_keys", "key": "torch", "what": "loss", "old": 1.0, "new": math.nan}],
        "status_changes": [],
    }
    for name in summary.GITHUB_RUN:
        monkeypatch.delenv(name, raising=False)
    link = (tmp_path / "index.html").resolve().as_uri()
    assert written(doc, tmp_path, tmp_path / "index.html") == SAMPLE_SUMMARY.replace("{text}", link.replace("_", r"\_")).replace(
        "{link}", link
    )


def test_counts_failures_matrix_and_link():
    text = markdown(sample_doc(), "index.html")
    assert text.startswith("## Conformance: 8 cases, 5 diverge, 1 expectation violated\n")
    assert "| 8 | 3 | 5 | 7 | 1 | 0 | 1 |" in text
    assert "### Expectation failures (1)" in text
    assert (
        "| **reference** | 85% (6/7) | 83% (5/6) | 16% (1/6) | 100% (7/7) |" in text
    )  # by hand: two_keys lacks paddle and tensorflow, nothing_ran tensorflow and reference
    assert text.rstrip().endswith("[index.html](<index.html>)")


def test_text_from_case_files_is_escaped():
    text = markdown(sample_doc())
    assert "<script>" not in text and HOSTILE not in text
    assert r"hostile\[reduction=&lt;script&gt;alert(1)&lt;/script&gt;\]" in text


def test_pipes_cannot_break_a_table():
    doc = sample_doc(matrix_cases())
    doc["baseline"] = {
        "file": "old.json",
        "old_versions": {},
        "new_versions": {},
        "compared": 1,
        "within_tolerance": 0,
        "moved": [],
        "status_changes": [{"case": "a|b", "key": "torch", "what": "status", "old": "ok", "new": "x|y"}],
    }
    text = markdown(doc)
    row = next(line for line in text.splitlines() if line.startswith("| a"))
    assert row == r"| a\|b | torch | status | ok | x\|y |"


def test_bounded_at_ten_thousand_failures():
    failing = case(
        "many",
        {"torch": result(), "reference": result()},
        {pair("torch", "reference")},
        expectation="violated",
        expectation_message="x" * 5000,
    )
    doc = sample_doc([dict(failing, id=f"many{i}") for i in range(10_000)])
    text = markdown(doc, "index.html")
    assert len(text.encode()) < 20_000  # a CI job summary over 1 MiB is dropped whole
    assert "… and 9980 more (see the report)" in text


def test_write_links_absolutely(tmp_path, monkeypatch):
    """A relative link is dead in a CI job summary: the URL given, the GitHub Actions run, or the file's URI."""
    for name in (summary.REPORT_URL_ENV, *summary.GITHUB_RUN):
        monkeypatch.delenv(name, raising=False)
    source = tmp_path / "results.json"
    results.write(source, sample_doc())
    out = tmp_path / "reports" / "summary.md"
    summary.write(out, source, tmp_path / "reports" / "html" / "index.html")
    assert f"(<file://{tmp_path.resolve()}/reports/html/index.html>)" in out.read_text(encoding="utf-8")
    for name, value in zip(summary.GITHUB_RUN, ("https://github.com", "me/conformance", "42"), strict=True):
        monkeypatch.setenv(name, value)
    summary.write(out, source, tmp_path / "reports" / "index.html")
    assert "(<https://github.com/me/conformance/actions/runs/42>)" in out.read_text(encoding="utf-8")
    monkeypatch.setenv(summary.REPORT_URL_ENV, "https://ci.example/run/1/index.html")
    summary.write(out, source, tmp_path / "reports" / "index.html")
    assert "(<https://ci.example/run/1/index.html>)" in out.read_text(encoding="utf-8")


def test_most_divergent_cases_are_bounded():
    cases = [case(f"d{i}", {"torch": result(), "reference": result()}, set()) for i in range(30)]
    for i, c in enumerate(cases):
        c["pairs"][0]["loss_max_abs"] = float(i)
    text = markdown(sample_doc(cases))
    listed = re.findall(r"::d(\d+) \| 2 \| ([\d.]+) \|", text)
    assert listed == [(str(i), f"{i:g}") for i in range(29, 29 - summary.MOST_DIVERGENT, -1)]


def test_percent_rounds_down():
    assert [summary.percent(f) for f in (1.0, 0.999, 2 / 3, 0.0)] == ["100%", "99%", "66%", "0%"]


def test_run_details_are_one_line():
    doc = sample_doc(matrix_cases())
    doc["run"] = {"python": "3.11.7", "os": "Linux", "cpu": "AMD EPYC, 2 logical CPUs", "date": "2026-11-29T07:00:00+00:00"}
    doc["run"].update(commit="0123456789abcdef0123", modified=True)
    line = (
        "2026-11-29T07:00:00+00:00 · Python 3.11.7 · Linux · AMD EPYC, 2 logical CPUs"
        " · case files at 0123456789ab (with uncommitted changes)"
    )
    assert f"\n{line}\n" in markdown(doc)
