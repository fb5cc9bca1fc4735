"""The report of a large run in a real browser (Debian's headless Chromium, as tests/test_html_browser.py):
the search finds brief entries (agreeing cases of a run over `html.DETAILED` cases, listed without their
details) by the API names and array parameters their records mention, and a value over
`compact.COMPACT_ABOVE` elements is shown as a table of statistics and its largest differences.

The threshold is lowered through `html.write(..., detailed=...)`, so 26 hand-made cases stand for a run of
10,001. Expected sets come from the records by hand (`mentions`), expected statistics from the arrays by
hand (plain Python sums), not from the page builder.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from browser.documents import case, pair, result, sample_doc
from test_html_browser import CHROMIUM, mentions, reopen, shown_ids

from conformance import compact, html, results

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (as root: apt-get install -y chromium)")

APIS = {
    "torch": "torch.nn.CrossEntropyLoss",
    "torch:nll": "torch.nn.NLLLoss",
    "paddle": "paddle.nn.CrossEntropyLoss",
    "tensorflow": "tf.keras.losses.SparseCategoricalCrossentropy",
    "reference": "float64 NumPy (textbook formula)",
}


def agreeing(i: int) -> dict:
    """Case i of a large run, all results agreeing: which APIs ran, its parameters and words vary with i."""
    keys = ["torch", "paddle", "reference"] + ["tensorflow"] * (i % 3 == 0)
    outcomes = {k: result(api=APIS[k]) for k in keys}
    if i % 4 in (0, 1):  # NLLLoss: unsupported (its API did not run, so it is not searched) or ok
        outcomes["torch:nll"] = result("unsupported" if i % 4 == 0 else "ok", api=APIS["torch:nll"])
    ok = [k for k, r in outcomes.items() if r["status"] == "ok"]
    name = "skip_ignore_index" if i == 11 else f"plain{i}"
    record = case(name, outcomes, {pair(a, b) for a in ok for b in ok if a < b}, line=i + 1)
    if i % 5 == 0:
        record["params"]["weight"] = [1.0, 2.0, 3.0]
    if i % 6 == 0:
        record["params"]["ignore_index"] = -100
    if i == 7:
        record["description"] = "Labels equal to ignore_index are skipped."
    return record


GRAD = np.zeros((64, 100))
GRAD[3, 7], GRAD[60, 99], GRAD[0, 0] = 0.5, -0.25, 1e-3  # torch's gradient: the reference's (zeros) but at three places


def large_value_case() -> dict:
    """torch's [64, 100] gradient differs from the reference's at three elements; paddle's equals it."""
    zeros = np.zeros((64, 100))
    outcomes = {
        "torch": result(grad=compact.form(GRAD, "float32", ("reference", zeros))),
        "paddle": result(api=APIS["paddle"], grad=compact.form(zeros, "float32", ("reference", zeros))),
        "reference": result(api=APIS["reference"], grad=compact.form(zeros, "float64")),
    }
    record = case("large_grad", outcomes, {pair("paddle", "reference")}, description="A [64, 100] gradient.")
    for p in record["pairs"]:
        if "torch" in (p["a"], p["b"]):  # torch apart in the gradient only
            p.update(loss_max_abs=0.0, grad_max_abs=0.5, grad_max_rel=1.0)
    return record


def large_doc() -> dict:
    divergent = case("apart", {"torch": result(), "reference": result(loss=2.0, api=APIS["reference"])}, set())
    return sample_doc([agreeing(i) for i in range(24)] + [divergent, large_value_case()])


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    pytest.importorskip("websocket", reason="the test extra's websocket-client drives Chromium")
    from browser.cdp import Browser

    folder = tmp_path_factory.mktemp("large")
    results.write(folder / "results.json", large_doc())
    html.write(folder / "index.html", folder / "results.json", detailed=5)
    with Browser(folder / "profile") as browser:
        browser.open((folder / "index.html").as_uri())
        yield browser


def test_the_page_lists_agreeing_cases_briefly(page):
    assert page.evaluate("JSON.parse(document.getElementById('report-data').textContent).cases.filter(c => c.brief).length") == 24
    assert page.errors() == []


@pytest.mark.parametrize("term", ["SparseCategorical", "nllloss", "weight=[1", "ignore_index", "CrossEntropyLoss", "textbook"])
def test_search_finds_brief_entries_by_what_their_records_mention(page, term):
    page.evaluate(f"location.hash = {'q=' + term!r}")
    expected = sorted(f"{c['file']}::{c['id']}" for c in large_doc()["cases"] if mentions(c, term))
    assert page.wait_until(f"document.getElementById('q').value === {term!r}")
    assert any("::plain" in name for name in expected)  # brief entries among them: the test can fail
    assert sorted(shown_ids(page)) == expected


def test_a_link_with_a_source_and_a_search_lists_exactly_the_cases_that_mention_it(page):
    base = page.evaluate("location.href.split('#')[0]")
    reopen(page, base + "#source=torch&q=ignore_index")
    expected = sorted(f"{c['file']}::{c['id']}" for c in large_doc()["cases"] if mentions(c, "ignore_index"))
    assert len(expected) == 6  # 4 by the parameter, 1 by the description, 1 by the id
    assert page.evaluate("document.getElementById('f-source').value") == "torch"
    assert sorted(shown_ids(page)) == expected
    assert page.errors() == []


def test_a_large_value_shows_its_statistics_and_largest_differences(page):
    reopen(page, page.evaluate("location.href.split('#')[0]") + "#case=cases/sample.yaml::large_grad")
    body = "document.querySelector('details.case[open] .body')"
    assert page.wait_until(f"{body} && {body}.querySelector('.arrays') !== null")
    rows = page.evaluate(f"Array.from({body}.querySelectorAll('.array-stats tbody tr')).map(r => r.innerText.split('\\t'))")
    assert [r[0].replace("≠ ", "").strip() for r in rows] == ["torch", "paddle", "reference"]
    values = GRAD.reshape(-1).tolist()  # statistics by hand: sums over the 6,400 elements
    mean = sum(values) / len(values)
    std = math.sqrt(sum(v * v for v in values) / len(values) - mean * mean)
    assert rows[0][1:9] == ["gradient", "64×100 (6,400)", "float32", "-0.25", "0.5", f"{mean:.6g}", f"{std:.6g}", "none"]
    assert rows[1][4:9] == ["0", "0", "0", "0", "none"]
    cells = page.evaluate(f"Array.from({body}.querySelectorAll('.results tbody tr')).map(r => r.cells[5].innerText)")
    assert cells[0] == "64×100 float32 array (statistics below)"
    opened = f"{body}.querySelector('.arrays details.largest[open]')"
    assert page.evaluate(f"{opened}.querySelector('summary').innerText") == (
        "torch's gradient: its 3 largest differences from reference (beyond tolerance)"  # the other elements are equal
    )
    table = page.evaluate(f"Array.from({opened}.querySelectorAll('tr')).map(r => r.innerText.split('\\t'))")
    assert table == [
        ["index", "torch", "reference", "|difference|"],
        ["[3, 7]", "0.5", "0", "0.5"],
        ["[60, 99]", "-0.25", "0", "0.25"],
        ["[0, 0]", "0.001", "0", "0.001"],
    ]
    within = f"{body}.querySelector('.arrays details.largest-within')"
    page.evaluate(f"{within}.open = true")
    assert page.evaluate(f"{within}.innerText").split("\n") == [
        "largest differences of the 1 value within tolerance of reference",
        "paddle's gradient: no element differs from reference",
    ]
    assert page.errors() == []


def test_the_threshold_is_a_parameter(tmp_path):
    """Without the lowered threshold the same run is in full (a default of 10,000 cases)."""
    results.write(tmp_path / "results.json", large_doc())
    html.write(tmp_path / "index.html", tmp_path / "results.json")
    assert '"brief":true' not in Path(tmp_path / "index.html").read_text(encoding="utf-8")
