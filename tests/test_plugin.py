"""The pytest plugin, as a user meets it: `pytest cases/FILE.yaml` in a fresh process.

Every test writes case files into a pytester folder and runs pytest there in a subprocess, so the plugin
comes from its `pytest11` entry point exactly as in a user's checkout. The frameworks run only where the
behaviour needs two result keys (one torch run); everything else uses the NumPy-only `reference`.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from conformance import cli

pytest_plugins = ["pytester"]

ARTICLE = "[[0.05, 0.95, 0], [0.1, 0.8, 0.1]]"
CASES = f"""\
defaults:
  logits: {ARTICLE}
  labels: [1, 2]
cases:
  - id: weighted
    weight: [1, 2, 3]
    matrix: {{reduction: [mean, sum]}}
    expect:
      groups: [[torch, reference]]
  - id: smoothing
    label_smoothing: 0.1
    expect:
      status: {{reference: ok}}
  - id: plain
"""
NODE_IDS = [
    "cases.yaml::weighted[reduction=mean]",
    "cases.yaml::weighted[reduction=sum]",
    "cases.yaml::smoothing",
    "cases.yaml::plain",
]
MALFORMED = """\
cases:
  - id: broken
    logits: [[1, 2, 3]
    labels: [0]
"""
WRITE_LOG = """\
import os
from pathlib import Path

from conformance import html, pipeline, results, runner

LOG = Path(__file__).with_name("writes.log")


def logged(kind, write):
    def wrapper(path, doc):
        with LOG.open("a", encoding="utf-8") as log:
            log.write(f"{kind} {os.getpid()} {path}\\n")
        return write(path, doc)

    return wrapper


def finished(finish):
    def wrapper(self, head):
        with LOG.open("a", encoding="utf-8") as log:
            log.write(f"json {os.getpid()} {self.path}\\n")
        return finish(self, head)

    return wrapper


def counted(record):
    def wrapper(case, *args):
        with LOG.open("a", encoding="utf-8") as log:
            log.write(f"record {os.getpid()} {case.nodeid}\\n")
        return record(case, *args)

    return wrapper


def started(init):
    def wrapper(self, *args, **kwargs):
        with LOG.open("a", encoding="utf-8") as log:
            log.write(f"workers {os.getpid()} started\\n")
        return init(self, *args, **kwargs)

    return wrapper


results.Writer.finish = finished(results.Writer.finish)
html.write = logged("html", html.write)
pipeline.build = counted(pipeline.build)
runner.Workers.__init__ = started(runner.Workers.__init__)
"""


QUIET = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-p", "no:anyio")


def run(pytester: pytest.Pytester, *args: str, frameworks: str = "reference") -> pytest.RunResult:
    """pytest in a fresh process, reports inside the pytester folder; no cache, and no plugin the run
    does not use (hypothesis's alone doubles a subprocess's start-up)."""
    return pytester.runpytest_subprocess(
        *QUIET,
        "-o",
        "conformance_cases=.",
        "--conformance-frameworks",
        frameworks,
        "--conformance-json",
        str(pytester.path / "out" / "results.json"),
        "--conformance-html",
        str(pytester.path / "out" / "index.html"),
        *args,
    )


def logged(pytester: pytest.Pytester) -> dict[str, list[tuple[str, str]]]:
    """What the conftest WRITE_LOG saw: kind -> [(process id, path or case)]."""
    out: dict[str, list[tuple[str, str]]] = {}
    for line in (pytester.path / "writes.log").read_text(encoding="utf-8").splitlines():
        kind, pid, what = line.split(" ", 2)
        out.setdefault(kind, []).append((pid, what))
    return out


def collected(result: pytest.RunResult) -> list[str]:
    return [line for line in result.outlines if "::" in line]


def output(result: pytest.RunResult) -> str:
    return result.stdout.str() + result.stderr.str()


def assert_no_traceback(text: str) -> None:
    assert "Traceback" not in text
    assert "conformance/plugin.py" not in text
    assert "raise " not in text


def weighted_sum() -> float:
    """The weighted sum of the article case, from the formula (torch and reference both give it)."""
    x = np.array([[0.05, 0.95, 0.0], [0.1, 0.8, 0.1]])
    log_p = x - np.log(np.exp(x).sum(axis=1, keepdims=True))
    labels, weight = np.array([1, 2]), np.array([1.0, 2.0, 3.0])
    return float(-(weight[labels] * log_p[[0, 1], labels]).sum())


def test_each_expanded_case_is_one_item_named_file_id_and_parameters(pytester):
    pytester.makefile(".yaml", cases=CASES)
    result = run(pytester, "--collect-only", "-q")
    assert result.ret == 0
    assert collected(result) == NODE_IDS


ALIVE = """\
import gc
from pathlib import Path


def pytest_collection_finish(session):
    from conformance.cases import Case

    gc.collect()
    alive = sum(isinstance(o, Case) for o in gc.get_objects())
    Path(__file__).with_name("alive.txt").write_text(f"{len(session.items)} {alive}")
"""


def test_collected_items_hold_no_case_in_memory(pytester):
    """Issue 26: the items of a case file keep their cases in the session's spool on disk, not in memory
    (every collected case used to stay alive with its item, arrays and all, for the whole session)."""
    pytester.makefile(".yaml", cases=CASES)
    pytester.makeconftest(ALIVE)
    result = run(pytester, "-p", "no:xdist", "--collect-only", "-q")
    assert collected(result) == NODE_IDS
    assert (pytester.path / "alive.txt").read_text() == "4 0"


@pytest.mark.parametrize(
    "selection, selected",
    [
        (["-k", "sum"], ["cases.yaml::weighted[reduction=sum]"]),
        (["-m", "reference"], NODE_IDS[:3]),
    ],
    ids=["k-parameter-value", "m-reference"],
)
def test_k_and_m_select_cases_by_name_and_by_the_keys_their_expectation_names(pytester, selection, selected):
    pytester.makefile(".yaml", cases=CASES)
    result = run(pytester, "--collect-only", "-q", *selection)
    assert collected(result) == selected


@pytest.mark.parametrize("parallel", [["-p", "no:xdist"], ["-n", "2"]], ids=["serial", "xdist"])
def test_editing_one_expected_group_fails_exactly_that_item_with_a_readable_table(pytester, parallel):
    pytester.makefile(
        ".yaml",
        cases=f"""\
cases:
  - id: weighted
    logits: {ARTICLE}
    labels: [1, 2]
    weight: [1, 2, 3]
    matrix: {{reduction: [none, mean, sum]}}
    expect:
      - groups: [[torch, reference]]
      - when: {{reduction: sum}}
        groups: [[torch], [reference]]
""",
    )
    result = run(pytester, "-v", "--conformance-only", "torch,reference", *parallel, frameworks="torch,reference")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["FAILED cases.yaml::weighted?reduction=sum?*"])
    text = output(result)
    assert "expected groups [[torch], [reference]], found [[torch, reference]]" in text
    assert "groups found:    [['torch', 'reference']]" in text
    assert "groups expected: [['torch'], ['reference']]" in text
    value = f"{weighted_sum():.6f}"[:-1]
    assert re.search(rf"^\s+torch\s+ok\s+{re.escape(value)}", text, re.MULTILINE), text
    assert re.search(rf"^\s+reference\s+ok\s+{re.escape(value)}", text, re.MULTILINE), text
    assert "largest loss difference: torch vs reference" in text
    assert_no_traceback(text)


def test_a_malformed_case_file_is_one_collection_error_and_the_other_files_still_run(pytester):
    """With pytest's --continue-on-collection-errors; without it pytest stops after any collection error."""
    pytester.makefile(".yaml", cases=CASES, broken=MALFORMED)
    result = run(pytester, "--continue-on-collection-errors")
    result.assert_outcomes(passed=4, errors=1)
    text = output(result)
    assert text.count("ERROR collecting") == 1
    assert "broken.yaml:4: not valid YAML" in text
    assert_no_traceback(text)
    doc = json.loads((pytester.path / "out" / "results.json").read_text(encoding="utf-8"))
    assert [f"{c['file']}::{c['id']}" for c in doc["cases"]] == NODE_IDS


def test_junitxml_names_every_case_and_the_reports_are_written_once(pytester):
    """Reports: JUnit XML for CI, and results.json / index.html written once at the end of the session."""
    pytester.makefile(".yaml", cases=CASES)
    pytester.makeconftest(WRITE_LOG)
    result = run(pytester, "--junitxml", str(pytester.path / "out" / "junit.xml"))
    result.assert_outcomes(passed=4)
    tree = ET.parse(pytester.path / "out" / "junit.xml")
    names = [f"{t.get('classname')}::{t.get('name')}" for t in tree.iter("testcase")]
    assert names == NODE_IDS
    log = logged(pytester)
    assert [what for _, what in log["json"]] == [str(pytester.path / "out" / "results.json")]
    assert [what for _, what in log["html"]] == [str(pytester.path / "out" / "index.html")]
    assert sorted(what for _, what in log["record"]) == sorted(NODE_IDS), "each case evaluated once"
    doc = json.loads((pytester.path / "out" / "results.json").read_text(encoding="utf-8"))
    assert doc["runner"] == "pytest"
    assert [f"{c['file']}::{c['id']}" for c in doc["cases"]] == NODE_IDS
    assert (pytester.path / "out" / "index.html").is_file()


def test_under_xdist_the_controller_evaluates_every_case_once_and_writes_one_report(pytester):
    """Protects the shared evaluation: framework workers are started once, by the controller, which
    evaluates each case once and serves the records to the xdist workers running the items."""
    pytester.makefile(".yaml", cases=CASES)
    pytester.makeconftest(WRITE_LOG)
    result = run(pytester, "-n", "2", "-v")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["*[[]gw0[]]*PASSED*"])
    result.stdout.fnmatch_lines(["*[[]gw1[]]*PASSED*"])
    log = logged(pytester)
    controller = log["json"][0][0]
    assert log["json"] == [(controller, str(pytester.path / "out" / "results.json"))]
    assert log["html"] == [(controller, str(pytester.path / "out" / "index.html"))]
    assert log["workers"] == [(controller, "started")], "framework workers started once, by the controller"
    assert sorted(log["record"]) == sorted((controller, n) for n in NODE_IDS), "each case evaluated once"
    assert sorted(p.name for p in (pytester.path / "out").glob("*.json")) == ["results.json"]
    doc = json.loads((pytester.path / "out" / "results.json").read_text(encoding="utf-8"))
    assert [f"{c['file']}::{c['id']}" for c in doc["cases"]] == NODE_IDS
    assert "numpy" in doc["versions"]


def test_under_a_distribution_the_user_chose_each_case_is_still_evaluated_once(pytester):
    pytester.makefile(".yaml", cases=CASES, more=CASES)
    pytester.makeconftest(WRITE_LOG)
    result = run(pytester, "-n", "2", "--dist", "loadfile")
    result.assert_outcomes(passed=8)
    both = NODE_IDS + [n.replace("cases.yaml", "more.yaml") for n in NODE_IDS]
    assert sorted(what for _, what in logged(pytester)["record"]) == sorted(both)


REMOTE_WORKERS = """\
import pytest


@pytest.hookimpl(trylast=True)
def pytest_configure_node(node):
    node.workerinput.pop("conformance_service", None)  # as for an xdist worker on another machine
"""


def test_an_xdist_worker_that_cannot_reach_the_controller_fails_its_case_items_saying_why(pytester):
    pytester.makefile(".yaml", cases=CASES)
    pytester.makeconftest(REMOTE_WORKERS)
    result = run(pytester, "-n", "2")
    result.assert_outcomes(failed=4)
    text = output(result)
    assert text.count("this xdist worker is not on this machine: run case files with -n (local workers) or without xdist") == 4
    assert_no_traceback(text)


@pytest.mark.parametrize("parallel", [["-p", "no:xdist"], ["-n", "2"]], ids=["serial", "xdist"])
def test_a_value_moved_since_the_baseline_fails_that_item_naming_the_result_key(pytester, capsys, parallel):
    pytester.makefile(".yaml", cases=CASES)
    saved = pytester.path / "baseline.json"
    assert cli.main(["baseline", "save", "cases.yaml", "--frameworks", "reference", "--out", str(saved)]) == 0
    capsys.readouterr()
    data = json.loads(saved.read_text(encoding="utf-8"))
    moved = data["values"]["cases.yaml::weighted[reduction=sum]"]["results"]["reference"]
    now = moved["loss"]
    moved["loss"] = then = now + 1.0
    saved.write_text(json.dumps(data), encoding="utf-8")

    result = run(pytester, "-v", "--conformance-baseline", str(saved), *parallel)
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(["FAILED cases.yaml::weighted?reduction=sum?*"])
    text = output(result)
    assert "changed since the baseline" in text
    row = rf"^\s+reference\s+loss\s+{re.escape(json.dumps(then))} -> {re.escape(json.dumps(now))}$"
    assert re.search(row, text, re.MULTILINE), text
    assert_no_traceback(text)


def test_a_missing_baseline_file_is_a_usage_error(pytester):
    pytester.makefile(".yaml", cases=CASES)
    result = run(pytester, "--conformance-baseline", "missing.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR == 4
    text = output(result)
    assert "baseline missing.json: cannot read a baseline there" in text
    assert_no_traceback(text)


def test_the_plugin_works_without_xdist(pytester):
    pytester.makefile(".yaml", cases=CASES)
    result = run(pytester, "-p", "no:xdist")
    assert "INTERNALERROR" not in output(result)
    result.assert_outcomes(passed=4)


VALUES_ONLY = f"""\
cases:
  - id: printed
    logits: {ARTICLE}
    labels: [1, 2]
    expect:
      values: {{reference: 0.9868951}}
"""


def test_m_selects_a_case_whose_expectation_names_the_key_only_in_values(pytester):
    pytester.makefile(".yaml", cases=VALUES_ONLY)
    result = run(pytester, "--collect-only", "-q", "-m", "reference")
    assert collected(result) == ["cases.yaml::printed"]


def test_an_unknown_result_key_under_values_is_a_collection_error(pytester):
    pytester.makefile(".yaml", cases=VALUES_ONLY.replace("{reference:", "{referense:"))
    result = run(pytester, "--collect-only", "-q")
    assert "unknown result key 'referense'" in output(result)
    assert result.ret == pytest.ExitCode.INTERRUPTED


# ---------------------------------------------------------------- scope: only case files, only where there are some

FOREIGN_PROJECT_CONFTEST = """\
import sys


def pytest_sessionfinish(session):
    machinery = sorted(m for m in sys.modules if m.startswith("conformance.") and m != "conformance.plugin")
    print("conformance modules imported:", machinery or "none")
"""


def test_another_projects_yaml_files_are_not_collected_and_nothing_of_ours_runs(pytester):
    """Installing this package must not break another project's test run: its docker-compose.yml is not a
    case file, no framework worker starts, and none of the package's machinery is imported."""
    pytester.makefile(".yml", **{"docker-compose": "services:\n  web:\n    image: nginx\n"})
    pytester.makefile(".yaml", ci="jobs: [build]\n")
    pytester.makepyfile(test_ordinary="def test_one():\n    assert 1 + 1 == 2\n")
    pytester.makeconftest(FOREIGN_PROJECT_CONFTEST)
    for extra in ([], ["-n", "2"]):
        result = pytester.runpytest_subprocess(*QUIET, "-s", *extra)
        assert result.ret == 0, result.stdout.str()
        result.stdout.fnmatch_lines(["*1 passed*"])
        result.stdout.no_fnmatch_line("*ERROR*")
        result.stdout.fnmatch_lines(["*conformance modules imported: none"])


def test_a_case_file_named_on_the_command_line_or_under_the_case_folder_is_collected(pytester):
    """`pytest some/dir/x.yaml` and the default `cases/` folder keep working without any setting."""
    pytester.mkdir("cases")
    pytester.mkdir("some")
    (pytester.path / "cases" / "first.yaml").write_text(CASES, encoding="utf-8")
    (pytester.path / "some" / "second.yaml").write_text(CASES, encoding="utf-8")
    pytester.makefile(".yml", **{"docker-compose": "services: {}\n"})
    result = pytester.runpytest_subprocess(*QUIET, "--collect-only", "-q")
    assert result.ret == 0, result.stdout.str()
    collected = [line for line in result.stdout.lines if "::" in line]
    assert collected and all(line.startswith("cases/first.yaml::") for line in collected)
    result = pytester.runpytest_subprocess(*QUIET, "--collect-only", "-q", "some/second.yaml")
    collected = [line for line in result.stdout.lines if "::" in line]
    assert collected and all(line.startswith("some/second.yaml::") for line in collected)


@pytest.mark.parametrize("parallel", [["-p", "no:xdist"], ["-n", "2"]], ids=["serial", "xdist"])
def test_a_baselined_case_that_is_gone_fails_the_session_naming_it(pytester, capsys, parallel):
    """A renamed case has no item that could fail: the session fails and says which case is gone."""
    pytester.makefile(".yaml", cases=CASES)
    saved = pytester.path / "baseline.json"
    assert cli.main(["baseline", "save", "cases.yaml", "--frameworks", "reference", "--out", str(saved)]) == 0
    capsys.readouterr()
    data = json.loads(saved.read_text(encoding="utf-8"))
    data["values"]["cases.yaml::renamed_away"] = data["values"].pop("cases.yaml::plain")
    saved.write_text(json.dumps(data), encoding="utf-8")
    result = run(pytester, "--conformance-baseline", str(saved), *parallel)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["gone since the baseline: cases.yaml::renamed_away"])
    assert "failed" not in result.stdout.lines[-1], "no item failed: the session did"
