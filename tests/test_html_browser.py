"""The report in a real browser: Debian's headless Chromium, driven over the DevTools protocol.

No browser is downloaded: the test uses /usr/bin/chromium (`apt-get install -y chromium`) and skips,
saying so, where it is missing. The page is rendered from a hand-made document (no framework runs);
the test types, clicks and reads the page as a person would, then keeps a screenshot in tmp_path
(pytest's temporary folder: a test writes nothing into the working tree).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from browser.documents import CODE, HOSTILE, sample_doc

from conformance import html, results

CHROMIUM = Path("/usr/bin/chromium")

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (as root: apt-get install -y chromium)")


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    pytest.importorskip("websocket", reason="the test extra's websocket-client drives Chromium")
    from browser.cdp import Browser

    folder = tmp_path_factory.mktemp("report")
    target = folder / "index.html"
    results.write(folder / "results.json", sample_doc())
    html.write(target, folder / "results.json")
    with Browser(folder / "profile") as browser:
        browser.open(target.as_uri())
        yield browser


@pytest.fixture(autouse=True)
def fresh(page):
    """Each test starts from the unfiltered page."""
    page.evaluate(
        "location.hash = ''; document.getElementById('q').value = '';"
        "document.querySelectorAll('#filters select').forEach(function (s) { s.selectedIndex = 0; });"
        "document.querySelectorAll('#filters input[type=checkbox]').forEach(function (c) { c.checked = false; });"
        "document.getElementById('q').dispatchEvent(new Event('input'))"
    )


def shown_ids(page) -> list[str]:
    return page.evaluate("Array.from(document.querySelectorAll('#cases > details.case')).map(function (d) { return d.id; })")


def test_loads_without_errors(page):
    assert page.errors() == []
    assert page.dialogs() == []
    assert len(shown_ids(page)) == 8
    assert page.evaluate("document.getElementById('count').textContent") == "8 cases"


def test_typing_a_filter_hides_other_cases(page):
    page.type("#q", "smooth[")  # the ids of the sweep (every case has label_smoothing=...)
    ids = shown_ids(page)
    assert len(ids) == 3 and all(i.startswith("cases/sample.yaml::smooth[") for i in ids)
    assert page.evaluate("document.getElementById('count').textContent") == "showing 3 of 8 cases"
    page.type("#q", " 0.2")
    assert shown_ids(page) == ["cases/sample.yaml::smooth[label_smoothing=0.2]"]


def test_divergent_only(page):
    page.click("#f-divergent")
    assert page.evaluate("document.getElementById('f-divergent').checked") is True
    ids = shown_ids(page)
    assert len(ids) == 5
    assert not any(i.endswith(("unsupported_tf", "paddle_error", "nothing_ran")) for i in ids)


def test_case_where_nothing_ran_opens(page):
    page.click("details.case[id$='nothing_ran'] > summary")
    body = "document.querySelector(\"details.case[id$='nothing_ran'] .body\")"
    assert page.wait_until(f"{body}.firstChild !== null")
    assert page.evaluate(f"{body}.querySelector('.results tbody').rows.length") == 1  # the error; unsupported listed below
    assert "paddle" in page.evaluate(f"{body}.querySelector('.unsupported').textContent")
    assert page.evaluate("document.querySelector(\"details.case[id$='nothing_ran'] .verdict\").textContent") == "nothing ran"
    assert page.errors() == []


def test_summary_card_shows_its_cases(page):
    page.click("a.card[data-show='off-doc']")
    assert page.wait_until("document.getElementById('f-status').value === 'off-doc'")
    assert shown_ids(page) == ["cases/sample.yaml::two_keys"]


def test_result_and_status_filter(page):
    page.evaluate(
        "var k = document.getElementById('f-key'); k.value = 'paddle'; k.dispatchEvent(new Event('change'));"
        "var s = document.getElementById('f-status'); s.value = 'error'; s.dispatchEvent(new Event('change'))"
    )
    assert shown_ids(page) == ["cases/sample.yaml::paddle_error"]


def test_opened_case_shows_text_explanation_and_code(page, tmp_path):
    page.click("#cases > details.case > summary")
    body = "document.querySelector('#cases > details.case[open] .body')"
    assert page.wait_until(f"{body} && {body}.firstChild !== null"), "opening a case builds its details"
    assert page.evaluate(f"{body}.querySelector('.description').textContent") == f"A description with {HOSTILE} & <b>markup</b>."
    assert page.evaluate(f"{body}.querySelectorAll('script, b').length") == 0
    reproduced, failed = page.evaluate(f"Array.from({body}.querySelectorAll('.explanation')).map(e => e.innerText)")
    assert "Why torch and tensorflow differ" in reproduced
    assert "denominator\ttarget_weight\tpositions\t1.601" in reproduced
    assert "tensorflow's native code made to compute torch's loss gives 1.0674614 (torch gave 1.0674614)" in reproduced
    assert "reproduces it" in reproduced
    recipe = page.evaluate(f"{body}.querySelector('.explanation pre').textContent")
    assert recipe == "import numpy as np\nprint('recipe <ok>')\n"
    assert "does not reproduce" in failed and "TypeError: <no>" in failed and "knob" not in failed
    page.click("#cases > details.case[open] .body button")
    assert page.evaluate(f"{body}.querySelector('.codebox pre').textContent") == CODE
    assert page.errors() == [] and page.dialogs() == []
    page.screenshot(tmp_path / "case.png")
    assert (tmp_path / "case.png").stat().st_size > 10_000


def test_sweep_point_opens_its_case(page):
    page.click("figure.chart circle")
    opened = page.wait_until("Array.from(document.querySelectorAll('details.case[open]')).map(function (d) { return d.id; })")
    assert opened and opened[0].startswith("cases/sample.yaml::smooth[")
    assert page.evaluate("decodeURIComponent(location.hash.slice(1))") == opened[0]


def test_screenshot(page, tmp_path):
    page.evaluate("window.scrollTo(0, 0)")
    shot = tmp_path / "report.png"
    page.screenshot(shot, full_page=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
