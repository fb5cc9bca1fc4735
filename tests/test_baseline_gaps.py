"""What a baseline no longer finds, through `conformance run --baseline` and `pytest --conformance-baseline`.

The README promises (Baselines): a baselined case that is gone - removed from a case file that ran, or
its whole file deleted - and a baselined result key gone from a framework that ran fail the run (exit 1;
pytest: the session fails naming it), while a case file that still exists but was not named, and a
framework that did not run, are not gone. Each scenario copies two tiny case files and one baseline
(saved once, NumPy `reference` only) into a folder of its own, changes what an upgrade of the case files
or of the frameworks would change, and replays the baseline. Only the reference runs: a few seconds each.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from conformance import cli

pytest_plugins = ["pytester"]

A = """\
cases:
  - id: one
    logits: [[0.05, 0.95, 0]]
    labels: [1]
  - id: two
    logits: [[0.1, 0.8, 0.1]]
    labels: [2]
"""
A_WITHOUT_TWO = A[: A.index("  - id: two")]
B = """\
cases:
  - id: three
    logits: [[1, 2, 3]]
    labels: [0]
"""
QUIET = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-p", "no:anyio", "-p", "no:xdist")


def main(root: Path, *argv: str) -> tuple[int, str]:
    """`conformance ARGV` run in `root`, wide enough that rich does not fold names; exit code and output."""
    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
        mp.chdir(root)
        mp.setenv("COLUMNS", "250")
        code = cli.main(list(argv))
    return code, printed.getvalue()


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    """A folder with a.yaml (cases one, two), b.yaml (case three) and their baseline, saved.json."""
    root = tmp_path_factory.mktemp("saved")
    (root / "a.yaml").write_text(A, encoding="utf-8")
    (root / "b.yaml").write_text(B, encoding="utf-8")
    code, printed = main(root, "baseline", "save", "a.yaml", "b.yaml", "--frameworks", "reference", "--out", "saved.json")
    assert code == 0, printed
    assert "saved 6 values of 3 cases" in printed  # hand count: 3 cases, one result each, a loss and a gradient
    return root


def delete_case_two(root: Path) -> None:
    (root / "a.yaml").write_text(A_WITHOUT_TWO, encoding="utf-8")


def delete_file_b(root: Path) -> None:
    (root / "b.yaml").unlink()


def edit_baseline(edit: Callable[[dict], None]) -> Callable[[Path], None]:
    def change(root: Path) -> None:
        path = root / "saved.json"
        data = json.loads(path.read_text(encoding="utf-8"))
        edit(data["values"]["a.yaml::one"]["results"])
        path.write_text(json.dumps(data), encoding="utf-8")

    return change


# A result key the baseline has and this run does not: `reference:retired` (a variant of a framework that
# runs, since dropped from its adapter), `torch:functional` (a framework this run does not start).
retire_a_reference_key = edit_baseline(lambda results: results.update({"reference:retired": dict(results["reference"])}))
baseline_also_ran_torch = edit_baseline(lambda results: results.update({"torch:functional": dict(results["reference"])}))


def untouched(root: Path) -> None:
    return None


@pytest.fixture
def scenario(saved, tmp_path) -> Callable[[Callable[[Path], None]], Path]:
    """A copy of the saved folder changed by `change`."""

    def make(change: Callable[[Path], None]) -> Path:
        root = tmp_path / "run"
        shutil.copytree(saved, root)
        change(root)
        return root

    return make


@dataclass(frozen=True)
class Gap:
    change: Callable[[Path], None]
    named: tuple[str, ...]  # the case files named on the command line
    code: int  # the exit code the README promises
    gone_cases: tuple[str, ...] = ()
    gone_keys: tuple[tuple[str, str], ...] = ()
    only: bool = False  # the run asks for exactly the result key `reference` (--only / --conformance-only)


BOTH = ("a.yaml", "b.yaml")
GAPS = {
    "case_deleted_from_a_file": Gap(delete_case_two, BOTH, 1, gone_cases=("a.yaml::two",)),
    "case_file_deleted": Gap(delete_file_b, ("a.yaml",), 1, gone_cases=("b.yaml::three",)),
    "file_not_named_is_not_gone": Gap(untouched, ("a.yaml",), 0),
    "key_gone_of_a_framework_that_ran": Gap(retire_a_reference_key, BOTH, 1, gone_keys=(("a.yaml::one", "reference:retired"),)),
    "framework_not_run_is_not_gone": Gap(baseline_also_ran_torch, BOTH, 0),
    "key_not_asked_for_is_not_gone": Gap(retire_a_reference_key, BOTH, 0, only=True),
}


@pytest.mark.parametrize("gap", GAPS)
def test_conformance_run_reports_exactly_what_is_gone(scenario, gap):
    g = GAPS[gap]
    root = scenario(g.change)
    only = ["--only", "reference"] if g.only else []
    code, printed = main(
        root, "run", *g.named, "--frameworks", "reference", *only, "--baseline", "saved.json", "--json", "r.json", "--html", "r.html"
    )
    assert code == g.code, printed
    report = json.loads((root / "r.json").read_text(encoding="utf-8"))["baseline"]
    assert report["gone_cases"] == list(g.gone_cases)
    assert [(row["case"], row["key"]) for row in report["gone_keys"]] == list(g.gone_keys)
    assert (report["moved"], report["status_changes"], report["new_cases"]) == ([], [], [])
    lines = printed.splitlines()
    for name in g.gone_cases:
        assert f"  gone: {name}" in lines
    for case, key in g.gone_keys:
        assert f"  gone: {case} {key}" in lines
    if g.gone_cases:
        assert f"{len(g.gone_cases)} baselined cases are gone (renamed or removed; the run fails):" in lines
    if g.gone_keys:
        assert f"{len(g.gone_keys)} baselined results are gone (a variant dropped; the run fails):" in lines
    if not g.gone_cases and not g.gone_keys:
        assert not [line for line in lines if "gone" in line], printed


def pytest_in(pytester: pytest.Pytester, root: Path, *args: str) -> tuple[pytest.RunResult, list[str], str]:
    """pytest in a fresh process in the folder `root` (moved into pytester's): the result, the lines that
    say what is gone, and everything it printed."""
    for path in root.iterdir():
        shutil.move(path, pytester.path / path.name)
    result = pytester.runpytest_subprocess(
        *QUIET, "-o", "conformance_cases=.", "--conformance-frameworks", "reference", "--conformance-baseline", "saved.json",
        "--conformance-json", "out/r.json", "--conformance-html", "out/r.html", *args,
    )  # fmt: skip
    gone = [line for line in result.stdout.lines if line.startswith("gone since the baseline")]
    text = result.stdout.str() + result.stderr.str()
    assert "Traceback" not in text
    return result, gone, text


@pytest.mark.parametrize("gap", GAPS)
def test_pytest_fails_the_session_exactly_for_what_is_gone(scenario, pytester, gap):
    """No item can fail for a case that is gone: the session fails and its last section names each one;
    the items themselves pass. Both files named: the whole folder is collected (conformance_cases=.)."""
    g = GAPS[gap]
    named = list(g.named) if g.named != BOTH else []
    only = ["--conformance-only", "reference"] if g.only else []
    result, gone, text = pytest_in(pytester, scenario(g.change), *only, *named)
    expected = [f"gone since the baseline: {name}" for name in g.gone_cases] + [f"gone since the baseline: {c} {k}" for c, k in g.gone_keys]
    assert gone == expected, text
    assert result.ret == (pytest.ExitCode.TESTS_FAILED if g.code else pytest.ExitCode.OK), text
    ran = 3 - (gap == "case_deleted_from_a_file") - (g.named == ("a.yaml",))  # hand count: a.yaml has 2 cases, b.yaml 1
    result.assert_outcomes(passed=ran)


def test_pytest_k_deselecting_a_case_does_not_make_it_gone(scenario, pytester):
    """`pytest -k one` runs a.yaml::one only; a.yaml::two is still in the file: not gone (before, the
    session failed saying it was). Deleted from the file, it is gone whatever -k selects."""
    result, gone, text = pytest_in(pytester, scenario(untouched), "-k", "one", "a.yaml")
    assert (result.ret, gone) == (pytest.ExitCode.OK, []), text
    result.assert_outcomes(passed=1, deselected=1)
