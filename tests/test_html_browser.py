"""The report in a real browser: Debian's headless Chromium, driven over the DevTools protocol.

No browser is downloaded: the test uses /usr/bin/chromium (`apt-get install -y chromium`) and skips,
saying so, where it is missing. The page is rendered from a hand-made document (no framework runs);
the test types, clicks and reads the page as a person would, then keeps a screenshot in tmp_path
(pytest's temporary folder: a test writes nothing into the working tree).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from browser.documents import CODE, HOSTILE, case, pair, result, sample_doc

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
    """Each test starts from the unfiltered page: an empty hash, applied as the page applies any hash."""
    page.evaluate("history.replaceState(null, '', location.pathname); window.dispatchEvent(new HashChangeEvent('hashchange'))")


def shown_ids(page) -> list[str]:
    return page.evaluate("Array.from(document.querySelectorAll('#cases > details.case')).map(function (d) { return d.id; })")


def test_loads_without_errors(page):
    assert page.errors() == []
    assert page.dialogs() == []
    assert len(shown_ids(page)) == 8
    assert page.evaluate("document.getElementById('count').textContent") == "8 cases"


def count(page) -> str:
    return page.evaluate("document.getElementById('count').textContent")


def test_typing_a_filter_hides_other_cases(page):
    page.type("#q", "smooth[")  # the ids of the sweep (every case has label_smoothing=...)
    assert page.wait_until("document.getElementById('count').textContent === 'showing 3 of 8 cases'")  # debounced
    ids = shown_ids(page)
    assert len(ids) == 3 and all(i.startswith("cases/sample.yaml::smooth[") for i in ids)
    page.type("#q", " label_smoothing=0.2")
    assert page.wait_until("document.getElementById('count').textContent === 'showing 1 of 8 cases'")
    assert shown_ids(page) == ["cases/sample.yaml::smooth[label_smoothing=0.2]"]
    assert page.wait_until("location.hash === '#q=smooth%5B+label_smoothing%3D0.2'")  # once the typing pauses


def test_the_link_to_the_view_is_current_while_its_writing_waits(page):
    page.type("#q", "two_keys")
    assert page.wait_until("document.getElementById('count').textContent === 'showing 1 of 8 cases'")
    page.click("#permalink")  # at once, before the URL is written: the link is still this view
    assert page.wait_until("location.hash === '#q=two_keys'")
    assert page.evaluate("document.getElementById('q').value") == "two_keys"
    assert shown_ids(page) == ["cases/sample.yaml::two_keys"]


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


def set_hash(page, state: str) -> None:
    """Go to a hash as a link does (the page applies it on hashchange)."""
    page.evaluate(f"location.hash = {state!r}")
    page.wait_until(f"location.hash === {('#' + state)!r} || location.hash.indexOf('case=') >= 0")


def hash_state(page) -> dict:
    return page.evaluate("Object.fromEntries(new URLSearchParams(location.hash.slice(1)))")


def test_opened_case_explains_the_difference_from_the_source(page, tmp_path):
    set_hash(page, "source=torch")
    page.click("#cases > details.case > summary")
    body = "document.querySelector('#cases > details.case[open] .body')"
    assert page.wait_until(f"{body} && {body}.firstChild !== null"), "opening a case builds its details"
    assert page.evaluate(f"{body}.querySelector('.description').textContent") == f"A description with {HOSTILE} & <b>markup</b>."
    assert page.evaluate(f"{body}.querySelectorAll('script, b').length") == 0
    shown = page.evaluate(f"Array.from({body}.querySelectorAll('.explanation')).map(e => e.innerText)")
    explained = shown[0]
    assert "Why tensorflow differs from torch" in explained
    # plain words, the internal name on hover (title), the effect alone; documents.EXPLANATION's numbers
    assert (
        "what the mean divides by\tdivides the mean by the sum of target weights\tdivides the mean by the number of positions\t1.601"
        in explained
    )
    assert page.evaluate(f"{body}.querySelector('.knob-diff td[title]').title") == "knob denominator"
    assert "General recipe: tensorflow's native code computing torch's loss gives 1.0674614 (torch gave 1.0674614)" in explained
    assert "reproduces it" in explained
    change, recipe = page.evaluate(
        f"Array.from({body}.querySelectorAll('.explanation')[0].querySelectorAll('pre')).map(p => p.textContent)"
    )
    assert change == "# the smallest change\nloss = loss / D\nprint(loss)  # torch gave 1.0674614"  # first, then the general one
    assert recipe == "import numpy as np\nprint('recipe <ok>')\nprint(loss)  # torch gave 1.0674614"
    assert "Smallest change to tensorflow's own call, giving torch's loss: 1.0674614 reproduces it" in explained
    assert page.evaluate(f"Array.from({body}.querySelectorAll('.explanation')[0].querySelectorAll('details')).map(d => d.open)") == [
        True,
        True,
    ]
    page.click("#cases > details.case[open] .explanation button.copy")  # the pair looked at: open, with copy buttons
    assert page.wait_until("document.querySelector('#cases > details.case[open] .explanation button.copy').textContent === 'copied'")
    other = page.evaluate(f"{body}.querySelector('.other-pairs').textContent")
    assert "1 other explained pair" in other and "does not reproduce" in other and "TypeError: <no>" in other
    page.click("#cases > details.case[open] .body button[data-slot='code']")
    assert page.evaluate(f"{body}.querySelector('.codebox pre').textContent") == CODE
    assert page.errors() == [] and page.dialogs() == []
    page.screenshot(tmp_path / "case.png")
    assert (tmp_path / "case.png").stat().st_size > 10_000


def test_a_pair_no_knob_explains_says_so_with_its_numbers(page):
    set_hash(page, "source=reference")  # reference vs tensorflow: no explanation entry, same documented knobs
    page.click("#cases > details.case > summary")
    body = "document.querySelector('#cases > details.case[open] .body')"
    assert page.wait_until(f"{body} && {body}.firstChild !== null")
    text = page.evaluate(f"{body}.querySelector('.explanation.unexplained').innerText")
    assert "Why tensorflow differs from reference" in text
    assert "No knob explains this: both document the same formula." in text and "|Δloss| 0.5" in text


def test_sweep_point_opens_its_case(page):
    page.click("figure.chart circle")
    opened = page.wait_until("Array.from(document.querySelectorAll('details.case[open]')).map(function (d) { return d.id; })")
    assert opened and opened[0].startswith("cases/sample.yaml::smooth[")
    assert hash_state(page)["case"] == opened[0]


# ---------------------------------------------------------------- the source, the URL, the search


def differing(doc: dict, source: str, key: str) -> list[str]:
    """By hand from the document's pairs: the cases where `key` and `source` are both ok and do not agree."""
    out = []
    for c in doc["cases"]:
        ok = {k for k, r in c["results"].items() if r["status"] == "ok"}
        if {source, key} <= ok and any({p["a"], p["b"]} == {source, key} and not p["agree"] for p in c["pairs"]):
            out.append(f"{c['file']}::{c['id']}")
    return sorted(out)


def test_switching_the_source_measures_from_it(page):
    doc = sample_doc()
    page.evaluate(
        "var f = document.getElementById('f-source'); f.value = 'tensorflow'; f.dispatchEvent(new Event('change'));"
        "var k = document.getElementById('f-key'); k.value = 'torch'; k.dispatchEvent(new Event('change'));"
        "var s = document.getElementById('f-status'); s.value = 'differs'; s.dispatchEvent(new Event('change'))"
    )
    assert sorted(shown_ids(page)) == differing(doc, "tensorflow", "torch")
    assert hash_state(page) == {"source": "tensorflow", "key": "torch", "status": "differs"}
    page.click("#cases > details.case > summary")  # the hostile case: torch vs tensorflow 0.5 apart
    body = "document.querySelector('#cases > details.case[open] .body')"
    assert page.wait_until(f"{body} && {body}.firstChild !== null")
    rows = page.evaluate(f"Array.from({body}.querySelectorAll('.results tbody tr')).map(r => r.innerText.split('\\t'))")
    by_key = {r[0].replace("≠ ", "").strip(): r for r in rows}
    assert by_key["tensorflow"][3] == "source" and by_key["torch"][3] == "0.5"
    assert page.evaluate(f"{body}.querySelector('.results tr.differs td.bad-text') !== null")
    assert page.evaluate("document.querySelector('#cases > details.case[open] .chip.source').textContent") == "tensorflow"
    page.evaluate("var f = document.getElementById('f-source'); f.value = 'torch'; f.dispatchEvent(new Event('change'))")
    assert sorted(shown_ids(page)) == differing(doc, "torch", "torch") == []
    assert page.evaluate("document.getElementById('empty').hidden") is False


def reopen(page, url: str) -> None:
    """Load a link afresh (a new document, not a hash change)."""
    page.open("about:blank")
    page.open(url)


def test_a_link_reproduces_the_view(page):
    base = page.evaluate("location.href.split('#')[0]")
    reopen(page, base + "#source=torch&q=smooth%5B&key=tensorflow&status=differs")
    assert page.evaluate("document.getElementById('f-source').value") == "torch"
    assert page.evaluate("document.getElementById('q').value") == "smooth["
    assert sorted(shown_ids(page)) == [i for i in differing(sample_doc(), "torch", "tensorflow") if "::smooth[" in i]
    page.click("#cases > details.case > summary")
    assert page.wait_until("location.hash.indexOf('case=') >= 0")
    state = hash_state(page)
    assert state["source"] == "torch" and state["q"] == "smooth[" and state["case"] == shown_ids(page)[0]
    assert page.evaluate("document.getElementById('permalink').getAttribute('href')") == "#" + page.evaluate("location.hash.slice(1)")
    link = page.evaluate("location.href")
    reopen(page, link)
    opened = page.wait_until("Array.from(document.querySelectorAll('details.case[open]')).map(function (d) { return d.id; })")
    assert opened == [state["case"]] and page.evaluate("document.getElementById('q').value") == "smooth["
    assert page.errors() == []


def mentions(c: dict, term: str) -> bool:
    """By hand, from the record: whether its id, file, description, parameters, the API names that ran, or
    its explanations (texts, knob names) mention `term`."""
    texts = [c["id"], c["file"], c.get("description") or ""]
    texts += [f"{n}={v if isinstance(v, str) else json.dumps(v)}" for n, v in c["params"].items() if n != "id"]
    texts += [r["api"] for r in c["results"].values() if r["status"] != "unsupported"]
    for e in c.get("explanation") or []:
        texts += [e.get("text") or "", e.get("no_recipe") or ""] + [k["knob"] for k in e["knobs"]]
    return term.lower() in "\n".join(texts).lower()


@pytest.mark.parametrize("term", ["denominator", "keras", "description", "CrossEntropyLoss", "label_smoothing=0.1", "two_keys", "nllloss"])
def test_search_finds_what_the_record_mentions_and_nothing_else(page, term):
    set_hash(page, "q=" + term)
    expected = sorted(f"{c['file']}::{c['id']}" for c in sample_doc()["cases"] if mentions(c, term))
    assert sorted(shown_ids(page)) == expected
    assert page.evaluate("document.getElementById('q').value") == term


def test_a_heat_map_cell_lists_its_cases(page):
    page.click("#matrix-default td[data-a='paddle'][data-b='tensorflow']")
    assert page.wait_until("!document.getElementById('f-pair').hidden")
    expected = []
    for c in sample_doc()["cases"]:
        r = c["results"]
        if "paddle" in r and "tensorflow" in r:
            ok = r["paddle"]["status"] == r["tensorflow"]["status"] == "ok"
            agree = any({p["a"], p["b"]} == {"paddle", "tensorflow"} and p["agree"] for p in c["pairs"])
            if not (ok and agree):
                expected.append(f"{c['file']}::{c['id']}")
    assert sorted(shown_ids(page)) == sorted(expected)
    assert hash_state(page) == {"pair": "paddle,tensorflow"}
    page.click("#f-pair button")
    assert len(shown_ids(page)) == 8


def test_screenshot(page, tmp_path):
    page.evaluate("window.scrollTo(0, 0)")
    shot = tmp_path / "report.png"
    page.screenshot(shot, full_page=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


# ---------------------------------------------------------------- 1,000 cases: a keystroke stays cheap

VARIANTS = (
    "torch",
    "torch:functional",
    "torch:nll",
    "paddle",
    "paddle:smooth_recipe",
    "tensorflow",
    "tensorflow:cce",
    "tensorflow:v1",
    "jax",
    "jax:keras",
    "reference",
)


def thousand_cases() -> dict:
    """1,000 cases of 11 results each (55 pairs), half of them divergent, with explanations."""
    from browser.documents import EXPLANATION, case, pair, result

    cases = []
    for i in range(1000):
        apart = {"tensorflow", "tensorflow:cce", "tensorflow:v1"} if i % 2 else set()
        agree = {pair(a, b) for a in VARIANTS for b in VARIANTS if a < b and (a in apart) == (b in apart)}
        extra = {"explanation": EXPLANATION[:1]} if apart else {}
        cases.append(
            case(f"case{i}[reduction=mean,weight={i % 7}]", {k: result(loss=1.0 + (k in apart)) for k in VARIANTS}, agree, **extra)
        )
    return sample_doc(cases)


def test_a_keystroke_at_a_thousand_cases_stays_under_50_ms(tmp_path):
    """Per key (after the debounce): the page's own timings of the redraw's script and of the time until the
    browser drew its frame (style, layout and paint included), medians over the keys of `weight=3`."""
    pytest.importorskip("websocket", reason="the test extra's websocket-client drives Chromium")
    from browser.cdp import Browser

    results.write(tmp_path / "results.json", thousand_cases())
    html.write(tmp_path / "index.html", tmp_path / "results.json")
    with Browser(tmp_path / "profile") as browser:
        browser.open((tmp_path / "index.html").as_uri())
        browser.click("#q")
        handler = browser.evaluate(  # the input handler alone: it only (re)starts the debounce timer
            "(function () { var q = document.getElementById('q'), t = performance.now();"
            " for (var i = 0; i < 100; i += 1) { q.value = 'x' + i; q.dispatchEvent(new Event('input')); }"
            " return (performance.now() - t) / 100; })()"
        )
        browser.evaluate("document.getElementById('q').value = ''; window.reportTimings = []; window.reportFrames = []")
        for n, char in enumerate("weight=3"):  # each key after the debounce: the list is filtered and redrawn
            browser.send("Input.insertText", text=char)
            browser.wait_until(f"window.reportFrames.length > {n}")  # until the browser drew the frame
        redraws = sorted(browser.evaluate("window.reportTimings"))
        frames = sorted(browser.evaluate("window.reportFrames"))
        assert browser.evaluate("document.getElementById('count').textContent") == "showing 143 of 1000 cases"
        assert browser.errors() == []
    print(
        f"input handler {handler:.3f} ms; redraw per keystroke: script median {redraws[len(redraws) // 2]:.1f} ms,"
        f" max {redraws[-1]:.1f} ms; until drawn median {frames[len(frames) // 2]:.1f} ms, max {frames[-1]:.1f} ms"
    )
    assert handler < 5
    assert redraws[len(redraws) // 2] < 50
    assert frames[len(frames) // 2] < 50  # with style, layout and the wait for the next frame


def test_the_recipe_shown_ports_from_the_source(page):
    """Source tensorflow: torch's code giving tensorflow's loss (the explanation's `reverse`), not the other way."""
    set_hash(page, "source=tensorflow")
    page.click("#cases > details.case > summary")  # the hostile case: torch and paddle differ from tensorflow
    body = "document.querySelector('#cases > details.case[open] .body')"
    assert page.wait_until(f"{body} && {body}.firstChild !== null")
    torch, paddle = page.evaluate(f"Array.from({body}.querySelectorAll('.explanation')).slice(0, 2).map(e => e.innerText)")
    assert "Why torch differs from tensorflow" in torch
    assert "Recipe: torch's native code computing tensorflow's loss gives 2.6685 (tensorflow gave 2.6685)" in torch
    assert "print('torch as tensorflow')\nprint(loss)  # tensorflow gave 2.6685" in torch
    assert "Why paddle differs from tensorflow" in paddle and "does not reproduce" not in paddle  # paddle has no reverse recipe
    assert "no recipe: paddle has no native recipe for tensorflow's semantics on this case" in paddle


def test_a_users_function_shows_its_fit(tmp_path):
    """A user's function (`--variant`) apart from torch: its explanation carries the fit, which the page
    words with the knobs' plain names, and the settings the case cannot tell apart."""
    pytest.importorskip("websocket", reason="the test extra's websocket-client drives Chromium")
    from browser.cdp import Browser

    fit = {
        "a": "torch",
        "b": "torch:slip",
        "knobs": [{"knob": "denominator", "a": "target_weight", "b": "valid_count", "effect": 0.7}],
        "text": "torch:slip vs torch: torch:slip divides the mean by the number of non-ignored positions = 2.",
        "fit": {"knobs": {"denominator": "valid_count"}, "exact": True, "equivalent": {"denominator": ["positions"]}},
    }
    outcomes = {"torch": result(), "torch:slip": result(loss=1.7), "reference": result()}
    doc = sample_doc([case("slip", outcomes, {pair("torch", "reference")}, explanation=[fit])])
    results.write(tmp_path / "results.json", doc)
    html.write(tmp_path / "index.html", tmp_path / "results.json")
    with Browser(tmp_path / "profile") as browser:
        browser.open((tmp_path / "index.html").as_uri() + "#source=torch")
        browser.click("#cases > details.case > summary")
        found = "document.querySelector('#cases > details.case[open] .fit')"
        assert browser.wait_until(f"{found} !== null")
        text = browser.evaluate(f"{found}.innerText")
        assert browser.errors() == []
    assert text.startswith("Fit of torch:slip: the knob model with ")
    assert "reproduces its loss and gradient on this case" in text
    assert "non-ignored positions" in text and "the case cannot tell them apart" in text and "number of positions" in text
