"""`conformance.summary`: the Markdown job summary stays short, escaped, and links to the HTML report.

It is built from results.json as it streams (`summary.write`); `markdown` takes the document's head
and the digest of its cases, so the tests below that need no file digest a list in memory.
"""

from __future__ import annotations

import math
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
# results.json: the streamed one must not differ by a character.
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
        "### Pair agreement (share of cases where both are ok and agree)",
        "",
        "| | torch | paddle | tensorflow | reference |",
        "|---|---:|---:|---:|---:|",
        "| **torch** | 87% (7/8) | 71% (5/7) | 16% (1/6) | 85% (6/7) |",
        "| **paddle** | 71% (5/7) | 71% (5/7) | 0% (0/6) | 83% (5/6) |",
        "| **tensorflow** | 16% (1/6) | 0% (0/6) | 83% (5/6) | 16% (1/6) |",
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
        "Full report (every case, its values, native code and plots): [index.html](<index.html>)",
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
    assert written(doc, tmp_path, tmp_path / "index.html") == SAMPLE_SUMMARY


def test_counts_failures_matrix_and_link():
    text = markdown(sample_doc(), "index.html")
    assert text.startswith("## Conformance: 8 cases, 5 diverge, 1 expectation violated\n")
    assert "| 8 | 3 | 5 | 7 | 1 | 0 | 1 |" in text
    assert "### Expectation failures (1)" in text
    assert (
        "| **torch** | 87% (7/8) | 71% (5/7) | 16% (1/6) | 85% (6/7) |" in text
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


def test_write_links_relative_to_the_summary(tmp_path, monkeypatch):
    monkeypatch.delenv(summary.REPORT_URL_ENV, raising=False)
    source = tmp_path / "results.json"
    results.write(source, sample_doc())
    out = tmp_path / "reports" / "summary.md"
    summary.write(out, source, tmp_path / "reports" / "html" / "index.html")
    assert "(<html/index.html>)" in out.read_text(encoding="utf-8")
    monkeypatch.setenv(summary.REPORT_URL_ENV, "https://ci.example/run/1/index.html")
    summary.write(out, source, tmp_path / "reports" / "index.html")
    assert "(<https://ci.example/run/1/index.html>)" in out.read_text(encoding="utf-8")


def test_percent_rounds_down():
    assert [summary.percent(f) for f in (1.0, 0.999, 2 / 3, 0.0)] == ["100%", "99%", "66%", "0%"]
