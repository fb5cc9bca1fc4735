"""`conformance.summary`: the Markdown job summary stays short, escaped, and links to the HTML report."""

from __future__ import annotations

from browser.documents import HOSTILE, case, matrix_cases, pair, result, sample_doc

from conformance import summary


def test_counts_failures_matrix_and_link():
    text = summary.markdown(sample_doc(), "index.html")
    assert text.startswith("## Conformance: 8 cases, 5 diverge, 1 expectation violated\n")
    assert "| 8 | 3 | 5 | 7 | 1 | 0 | 1 |" in text
    assert "### Expectation failures (1)" in text
    assert (
        "| **torch** | 87% (7/8) | 71% (5/7) | 16% (1/6) | 85% (6/7) |" in text
    )  # by hand: two_keys lacks paddle and tensorflow, nothing_ran tensorflow and reference
    assert text.rstrip().endswith("[index.html](<index.html>)")


def test_text_from_case_files_is_escaped():
    text = summary.markdown(sample_doc())
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
    text = summary.markdown(doc)
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
    text = summary.markdown(doc, "index.html")
    assert len(text.encode()) < 20_000  # a CI job summary over 1 MiB is dropped whole
    assert "… and 9980 more (see the report)" in text


def test_write_links_relative_to_the_summary(tmp_path, monkeypatch):
    monkeypatch.delenv(summary.REPORT_URL_ENV, raising=False)
    out = tmp_path / "reports" / "summary.md"
    summary.write(out, sample_doc(), tmp_path / "reports" / "html" / "index.html")
    assert "(<html/index.html>)" in out.read_text(encoding="utf-8")
    monkeypatch.setenv(summary.REPORT_URL_ENV, "https://ci.example/run/1/index.html")
    summary.write(out, sample_doc(), tmp_path / "reports" / "index.html")
    assert "(<https://ci.example/run/1/index.html>)" in out.read_text(encoding="utf-8")


def test_percent_rounds_down():
    assert [summary.percent(f) for f in (1.0, 0.999, 2 / 3, 0.0)] == ["100%", "99%", "66%", "0%"]
