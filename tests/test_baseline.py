"""Baselines through the `conformance` command: save, replay, what moved, the version-step table.

One baseline is saved from a reference-only run (module fixture); each scenario edits a copy of it the
way a framework upgrade would move a value, replays it with `conformance run --baseline`, and keeps the
exit code, the printed output and results.json. Only the NumPy `reference` runs, so no framework starts.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from conformance import baseline, cli
from conformance.records import Baseline, BaselineReport, SavedResult

CASES = """\
defaults:
  logits: [[0.05, 0.95, 0], [0.1, 0.8, 0.1]]
  labels: [1, 2]
cases:
  - id: weighted
    weight: [1, 2, 3]
    matrix: {reduction: [mean, sum]}
  - id: plain
  - id: large
    logits: [[0, 50, 0]]
    labels: [0]
"""
MEAN, SUM, PLAIN = "cases.yaml::weighted[reduction=mean]", "cases.yaml::weighted[reduction=sum]", "cases.yaml::plain"
LARGE = "cases.yaml::large"  # loss = 50 + log(2 + e^-50) ~ 50.69: far from 1, where rtol and atol give different bounds
OLD_VERSIONS = {"paddlepaddle": "2.6.2", "numpy": "1.26.0"}


def main(root: Path, *argv: str) -> tuple[int, str]:
    """`conformance ARGV` run in `root` (so case files are named `cases.yaml`), wide enough that rich
    tables do not fold names; its exit code and everything it printed."""
    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
        mp.chdir(root)
        mp.setenv("COLUMNS", "250")
        code = cli.main(list(argv))
    return code, printed.getvalue()


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("baseline")
    (root / "cases.yaml").write_text(CASES, encoding="utf-8")
    code, printed = main(root, "baseline", "save", "--frameworks", "reference", "--out", "saved.json", "cases.yaml")
    assert code == 0, printed
    assert "saved 8 values of 4 cases" in printed
    return root, json.loads((root / "saved.json").read_text(encoding="utf-8"))


Edit = Callable[[dict], None]


def reference_of(data: dict, case: str) -> dict:
    return data["values"][case]["results"]["reference"]


def move_mean(data: dict) -> None:
    data["versions"] = OLD_VERSIONS
    reference_of(data, MEAN)["loss"] += 0.5


def change_status_and_dtype(data: dict) -> None:
    reference_of(data, SUM).update(status="error", loss=None, grad=None, message="RuntimeError: boom")
    reference_of(data, PLAIN)["dtype"] = "float32"


def move_within_tolerance(data: dict) -> None:
    reference_of(data, SUM)["loss"] *= 1 + 1e-6  # float32 cases: rtol 1e-5


def move_large_within_rtol(data: dict) -> None:
    """2e-4 on a loss of ~50.69: inside |a-b| <= atol + rtol*max = 1e-6 + 1e-5 * 50.69 = 5.1e-4, outside
    the bound with rtol and atol swapped (1e-5 + 1e-6 * 50.69 = 6.1e-5)."""
    reference_of(data, LARGE)["loss"] += 2e-4


def rename_and_drop(data: dict) -> None:
    """An upgrade of the case files: `plain` renamed to `plain_renamed` in the baseline's view (so the
    baselined `plain` is gone from the file that still runs), a result key the run no longer has, and
    the `large` case new (not in the baseline)."""
    data["values"]["cases.yaml::plain_renamed"] = data["values"].pop(PLAIN)
    data["values"][SUM]["results"]["reference:dropped"] = reference_of(data, SUM)
    del data["values"][LARGE]


def gap_before_a_move(data: dict) -> None:
    """A result key gone, listed before a key whose loss moved: both are reported (the gone key does not
    end the case's check)."""
    results = data["values"][MEAN]["results"]
    moved = results.pop("reference")
    moved["loss"] += 0.5
    results.update({"reference:dropped": dict(moved), "reference": moved})


def mean_over_positions(data: dict) -> None:
    """The weighted mean's old loss divided by the 2 positions instead of the sum of their target weights
    (weight [1, 2, 3], labels [1, 2]: 2 + 3 = 5): the weighted sum, which the `sum` case holds, over 2."""
    reference_of(data, MEAN)["loss"] = reference_of(data, SUM)["loss"] / 2


def results_loss(data: dict, case: str) -> float:
    return data["values"][case]["results"]["reference"]["loss"]


SCENARIOS: dict[str, Edit] = {
    "unchanged": lambda data: None,
    "moved": move_mean,
    "status": change_status_and_dtype,
    "within": move_within_tolerance,
    "large": move_large_within_rtol,
    "gaps": rename_and_drop,
    "gap_first": gap_before_a_move,
    "denominator": mean_over_positions,
}


@pytest.fixture(scope="module")
def replay(saved) -> Callable[[str], tuple[int, str, dict]]:
    """Scenario name -> (exit code, printed output, results.json) of `run --baseline` on the edited
    baseline; each scenario runs once per module."""
    root, data = saved
    done: dict[str, tuple[int, str, dict]] = {}

    def get(name: str) -> tuple[int, str, dict]:
        if name not in done:
            edited = copy.deepcopy(data)
            SCENARIOS[name](edited)
            (root / f"{name}-baseline.json").write_text(json.dumps(edited), encoding="utf-8")
            code, printed = main(
                root, "run", "cases.yaml", "--frameworks", "reference", "--baseline", f"{name}-baseline.json",
                "--json", f"{name}.json", "--html", f"{name}.html",
            )  # fmt: skip
            done[name] = code, printed, json.loads((root / f"{name}.json").read_text(encoding="utf-8"))
        return done[name]

    return get


def test_replaying_an_unchanged_baseline_exits_0_with_nothing_moved(replay):
    code, printed, doc = replay("unchanged")
    assert code == 0, printed
    report = doc["baseline"]
    assert (report["compared"], report["moved"], report["within_tolerance"], report["status_changes"]) == (8, [], 0, [])
    assert (report["gone_cases"], report["gone_keys"], report["new_cases"]) == ([], [], [])
    assert "8 values compared, 0 moved beyond tolerance" in printed


def test_a_moved_value_exits_1_naming_the_case_and_the_result_key(replay, saved):
    code, printed, doc = replay("moved")
    assert code == 1
    assert "1 moved beyond tolerance" in printed
    row = next(line for line in printed.splitlines() if MEAN in line)
    assert "reference" in row and "loss" in row
    assert SUM not in printed and PLAIN not in printed


def test_results_json_lists_the_moved_value_with_old_and_new_values_and_versions(replay, saved):
    _, data = saved
    code, _, doc = replay("moved")
    report = doc["baseline"]
    old = reference_of(data, MEAN)["loss"] + 0.5
    new = next(c for c in doc["cases"] if c["id"] == "weighted[reduction=mean]")["results"]["reference"]["loss"]
    assert [(m["case"], m["key"], m["what"]) for m in report["moved"]] == [(MEAN, "reference", "loss")]
    moved = report["moved"][0]
    assert (moved["old"], moved["new"]) == (old, new)
    assert moved["max_abs"] == pytest.approx(0.5)
    assert report["old_versions"] == OLD_VERSIONS
    assert report["new_versions"] == doc["versions"] == data["versions"]
    assert report["file"] == "moved-baseline.json"


def test_a_status_change_and_an_output_dtype_change_are_listed_as_status_changes(replay):
    code, printed, doc = replay("status")
    assert code == 1
    changes = {(c["case"], c["key"], c["what"]): (c["old"], c["new"]) for c in doc["baseline"]["status_changes"]}
    assert changes == {
        (SUM, "reference", "status"): ("error", "ok"),
        (PLAIN, "reference", "dtype"): ("float32", "float64"),
    }
    assert doc["baseline"]["moved"] == []
    assert "2 status changes" in printed


def test_a_value_moved_less_than_the_tolerance_is_counted_and_does_not_fail(replay):
    code, printed, doc = replay("within")
    assert code == 0, printed
    report = doc["baseline"]
    assert (report["within_tolerance"], report["moved"], report["status_changes"]) == (1, [], [])
    assert "1 moved within tolerance" in printed


def test_baseline_table_prints_one_markdown_row_per_results_file_with_the_counts(replay, saved):
    root, _ = saved
    replay("moved")
    replay("status")
    code, printed = main(root, "baseline", "table", "moved.json", "status.json")
    assert code == 0, printed
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in printed.splitlines() if line.startswith("| ")]
    assert rows[0][3:] == ["values compared", "moved beyond tolerance", "moved within tolerance", "status changes"]
    by_step = {row[0]: row for row in rows[1:]}
    assert set(by_step) == {"moved", "status"}
    assert by_step["moved"][1:] == ["paddlepaddle 2.6.2", "", "8", "1", "0", "0"]  # numpy is never a step
    assert by_step["status"][3:] == ["6", "0", "0", "2"]
    assert f"- moved: `reference` loss moved: {MEAN}" in printed
    assert f"- status: `reference` status error -> ok: {SUM}" in printed


def error_message(code: int, printed: str) -> str:
    assert code == 2
    assert "Traceback" not in printed
    assert printed.startswith("error: ")
    return printed


def test_replaying_a_file_that_is_not_a_baseline_is_a_usage_error(saved):
    root, _ = saved
    (root / "not-a-baseline.json").write_text(json.dumps({"cases": []}), encoding="utf-8")
    message = error_message(*main(root, "run", "cases.yaml", "--frameworks", "reference", "--baseline", "not-a-baseline.json"))
    assert "baseline not-a-baseline.json: not a baseline file" in message
    message = error_message(*main(root, "run", "cases.yaml", "--frameworks", "reference", "--baseline", "cases.yaml"))
    assert "baseline cases.yaml: cannot read a baseline there" in message


def test_baseline_table_of_a_run_without_baseline_is_a_usage_error(saved):
    root, _ = saved
    (root / "plain-results.json").write_text(json.dumps({"cases": []}), encoding="utf-8")
    message = error_message(*main(root, "baseline", "table", "plain-results.json"))
    assert "plain-results.json: not a results.json of a run with --baseline" in message


def test_a_value_far_from_1_is_checked_with_rtol_scaled_by_its_size(replay):
    code, printed, doc = replay("large")
    assert code == 0, printed
    assert (doc["baseline"]["within_tolerance"], doc["baseline"]["moved"]) == (1, [])


def test_a_renamed_case_or_dropped_result_fails_the_run_and_a_new_case_is_listed(replay):
    """Before, cases and keys on one side only were skipped silently: renaming a case passed CI."""
    code, printed, doc = replay("gaps")
    assert code == 1, printed
    report = doc["baseline"]
    assert report["gone_cases"] == ["cases.yaml::plain_renamed"]
    assert report["gone_keys"] == [{"case": SUM, "key": "reference:dropped"}]
    assert report["new_cases"] == [PLAIN, LARGE]
    lines = printed.splitlines()
    assert "  gone: cases.yaml::plain_renamed" in lines
    assert f"  gone: {SUM} reference:dropped" in lines
    assert f"  new: {LARGE}" in lines


def test_a_gone_key_does_not_end_the_check_of_the_keys_after_it(replay):
    code, printed, doc = replay("gap_first")
    assert code == 1, printed
    report = doc["baseline"]
    assert report["gone_keys"] == [{"case": MEAN, "key": "reference:dropped"}]
    assert [(m["case"], m["key"], m["what"]) for m in report["moved"]] == [(MEAN, "reference", "loss")]


def test_a_moved_loss_names_the_knob_setting_that_gives_the_old_value(replay):
    """README (Baselines): "denominator: the baseline's mean divided by the number of non-ignored positions
    = N; this run's by the sum of target weights = W". Here N = 2 positions, W = 2 + 3 = 5."""
    code, printed, doc = replay("denominator")
    assert code == 1, printed
    [moved] = doc["baseline"]["moved"]
    [knob] = moved["knobs"]
    assert knob.startswith("denominator: the baseline's mean divided by ")
    assert knob.endswith(" = 2; this run's by the sum of target weights = 5")


def test_a_status_change_records_the_dtype_of_the_result_now(replay):
    code, printed, doc = replay("status")
    change = next(c for c in doc["baseline"]["status_changes"] if c["what"] == "status")
    assert change == {"case": SUM, "key": "reference", "what": "status", "old": "error", "new": "ok", "dtype": "float64", "message": None}


def test_each_case_carries_its_loss_under_every_baseline_saved_next_to_the_replayed_one(saved, tmp_path):
    """The timeline: every baseline in the replayed one's folder, oldest versions first, then this run."""
    root, data = saved
    folder = tmp_path / "baselines"
    folder.mkdir()
    old = copy.deepcopy(data)
    move_mean(old)  # OLD_VERSIONS, numpy 1.26.0: older than the saved run's numpy 2.x
    del old["values"][LARGE]  # new to the replayed baseline, not to the one saved next to it
    (folder / "now.json").write_text(json.dumps(data), encoding="utf-8")
    (folder / "old.json").write_text(json.dumps(old), encoding="utf-8")
    (folder / "notes.json").write_text("{}", encoding="utf-8")  # not a baseline: skipped
    code, printed = main(root, "run", "cases.yaml", "--frameworks", "reference", "--baseline", str(folder / "old.json"), "--json", "t.json")
    assert code == 1, printed
    doc = json.loads((root / "t.json").read_text(encoding="utf-8"))
    mean = next(c for c in doc["cases"] if c["id"] == "weighted[reduction=mean]")
    loss = results_loss(data, MEAN)
    assert mean["timeline"] == [
        {"versions": OLD_VERSIONS, "results": {"reference": loss + 0.5}},
        {"versions": data["versions"], "results": {"reference": loss}},
        {"versions": doc["versions"], "results": {"reference": mean["results"]["reference"]["loss"]}, "current": True},
    ]
    large = next(c for c in doc["cases"] if c["id"] == "large")
    assert [point["versions"] for point in large["timeline"]] == [data["versions"], doc["versions"]]


def test_the_report_lists_what_is_gone_and_what_is_new(replay, saved):
    root, _ = saved
    replay("gaps")
    page = (root / "gaps.html").read_text(encoding="utf-8")
    assert "Gone since the baseline" in page
    assert "<code>cases.yaml::plain_renamed</code>" in page
    assert "<code>cases.yaml::weighted[reduction=sum]</code> result <code>reference:dropped</code>" in page
    assert "2 new cases, not in the baseline" in page


def test_a_value_equal_to_another_results_is_written_once_and_read_back_whole(tmp_path):
    """Variants of one framework often agree digit for digit: the baseline writes such a value as a
    reference to the first result that has it, and loading gives every result its value back."""
    from conformance import baseline

    ok = {"status": "ok", "dtype": "float32"}
    record = {
        "file": "cases.yaml",
        "id": "c",
        "tolerance": {"rtol": 1e-5, "atol": 1e-6},
        "results": {
            "torch": {**ok, "loss": 0.10000000149011612, "grad": [[1.0, -1.0]]},
            "torch:functional": {**ok, "loss": 0.10000000149011612, "grad": [[1.0, -1.0]]},
            "paddle": {**ok, "loss": 0.2, "grad": [[1.0, -1.0]]},
            "tensorflow": {"status": "error", "message": "boom"},
        },
    }
    kept = baseline.entry(record)["results"]
    assert kept["torch"] == {**ok, "loss": 0.1, "grad": [[1.0, -1.0]]}  # float32 0.1 at its own digits
    assert kept["torch:functional"] == {**ok, "loss": "=torch", "grad": "=torch"}
    assert kept["paddle"] == {**ok, "loss": 0.2, "grad": "=torch"}
    assert kept["tensorflow"] == {"status": "error"}
    path = tmp_path / "b.json"
    baseline.save({"versions": {"torch": "2"}, "cases": [record]}, path)
    loaded = baseline.load(path).values["cases.yaml::c"].results  # read back typed, every "=KEY" expanded
    assert loaded["torch:functional"] == SavedResult.from_json({**ok, "loss": 0.1, "grad": [[1.0, -1.0]]})
    assert loaded["paddle"].grad == [[1.0, -1.0]] and loaded["tensorflow"] == SavedResult("error")
    assert path.read_text(encoding="utf-8").count("\n") == 3  # the head line, one case per line, the closing line


# ---------------------------------------------------------------- compact values (more than compact.COMPACT_ABOVE elements)

COMPACT_CASES = """\
cases:
  - id: big
    random: {shape: [8, 1000], seed: 2}
    labels: random
"""
BIG = "cases.yaml::big"


@pytest.fixture(scope="module")
def compact_saved(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("compact")
    (root / "cases.yaml").write_text(COMPACT_CASES, encoding="utf-8")
    code, printed = main(root, "baseline", "save", "--frameworks", "reference", "--out", "saved.json", "cases.yaml")
    assert code == 0, printed
    return root, json.loads((root / "saved.json").read_text(encoding="utf-8"))


def replay_compact(root: Path, data: dict, edit: Edit) -> tuple[int, dict]:
    edited = copy.deepcopy(data)
    edit(reference_of(edited, BIG)["grad"])
    (root / "edited.json").write_text(json.dumps(edited), encoding="utf-8")
    code, printed = main(
        root, "run", "cases.yaml", "--frameworks", "reference", "--baseline", "edited.json", "--json", "r.json", "--html", "r.html"
    )
    return code, json.loads((root / "r.json").read_text(encoding="utf-8"))["baseline"]


def test_a_large_gradient_is_baselined_in_its_compact_form(compact_saved):
    _, data = compact_saved
    grad = reference_of(data, BIG)["grad"]
    assert grad["form"] == "compact" and grad["shape"] == [8, 1000] and grad["size"] == 8000
    assert "largest_differences" not in grad
    assert isinstance(reference_of(data, BIG)["loss"], float)


def test_an_unchanged_compact_value_replays_exactly(compact_saved):
    code, report = replay_compact(*compact_saved, lambda grad: None)
    assert code == 0 and (report["compared"], report["moved"], report["within_tolerance"], report["within_tolerance_compact"]) == (
        2,
        [],
        0,
        0,
    )


def test_a_compact_value_that_moved_at_a_sampled_position_is_a_finding(compact_saved):
    def move(grad: dict) -> None:
        grad["samples"]["value"][3] += 0.01  # the gradient's elements are ~1e-4: far beyond rtol 1e-5
        grad["digest"] = "0" * 32  # another value has another digest

    code, report = replay_compact(*compact_saved, move)
    assert code == 1 and [(m["key"], m["what"]) for m in report["moved"]] == [("reference", "grad")]
    assert report["moved"][0]["old"]["form"] == "compact" and report["moved"][0]["new"]["form"] == "compact"
    assert report["moved"][0]["max_abs"] == pytest.approx(0.01)


def test_a_compact_value_changed_only_in_its_digest_counts_within_tolerance_unsettled(compact_saved):
    """The values changed (digest) but no check the compact form allows fails: within tolerance, and
    counted apart as not settled element by element."""

    def touch(grad: dict) -> None:
        grad["digest"] = "0" * 32

    code, report = replay_compact(*compact_saved, touch)
    assert code == 0 and report["moved"] == []
    assert (report["within_tolerance"], report["within_tolerance_compact"]) == (1, 1)


def test_the_default_baseline_is_named_after_every_version_but_numpys(tmp_path):
    path = baseline.default_path({"torch": "2.13.0+cpu", "numpy": "2.4.6", "keras": "3.15.1", "jax": "0.10.2 RC/1"})
    assert path == Path("cases/baselines/jax-0.10.2-RC-1_keras-3.15.1_torch-2.13.0+cpu.json")


def test_a_baseline_is_one_case_per_line_at_shortest_digits_without_what_can_be_recomputed(tmp_path):
    """The format the README promises (Baselines), written by hand: one case per line, a float32 loss at
    its own digits (float32 0.1 travels as 0.10000000149011612), a value equal to an earlier result's of
    the case as "=KEY", a compact value without its differences from the oracle, no code or message; the
    folder is made, and nothing but the baseline is left in it."""
    tenth = float(np.float32(0.1))
    big = {"form": "compact", "shape": [5000], "digest": "ab", "largest_differences": [{"at": [0]}]}
    ok = {"status": "ok", "dtype": "float32", "code": "loss = f(x)", "message": None}
    doc = {
        "versions": {"torch": "2.13.0+cpu"},
        "cases": [
            {
                "file": "a.yaml",
                "id": "one",
                "tolerance": {"rtol": 1e-05, "atol": 1e-06},
                "results": {
                    "torch": {**ok, "loss": tenth, "grad": [[0.5, -0.5]]},
                    "torch:nll": {**ok, "loss": tenth, "grad": [[0.25, -0.5]]},
                    "paddle": {"status": "error", "message": "ValueError: no", "loss": None, "grad": None},
                },
            },
            {
                "file": "a.yaml",
                "id": "two",
                "tolerance": {"rtol": 0.001, "atol": 0.0},
                "results": {"torch": {**ok, "loss": 2.0, "grad": big}},
            },
        ],
    }
    path = tmp_path / "new" / "folder" / "b.json"
    baseline.save(doc, path)
    assert path.read_text(encoding="utf-8").splitlines() == [
        '{"schema_version":2,"versions":{"torch":"2.13.0+cpu"},"values":{',
        '"a.yaml::one":{"tolerance":{"rtol":1e-05,"atol":1e-06},"results":{'
        '"torch":{"status":"ok","dtype":"float32","loss":0.1,"grad":[[0.5,-0.5]]},'
        '"torch:nll":{"status":"ok","dtype":"float32","loss":"=torch","grad":[[0.25,-0.5]]},'
        '"paddle":{"status":"error"}}},',
        '"a.yaml::two":{"tolerance":{"rtol":0.001,"atol":0.0},"results":{'
        '"torch":{"status":"ok","dtype":"float32","loss":2.0,"grad":{"form":"compact","shape":[5000],"digest":"ab"}}}}',
        "}}",
    ]
    assert [p.name for p in path.parent.iterdir()] == ["b.json"]
    loaded = baseline.load(path)
    assert loaded.versions == {"torch": "2.13.0+cpu"}
    assert loaded.values["a.yaml::one"].results["torch:nll"].loss == 0.1  # "=torch" read back whole


def test_table_shows_six_cases_of_a_change_then_how_many_and_says_when_nothing_moved():
    """`baseline table` text written by hand: one row per step (the new versions of what the step
    changed only, never numpy), then one line per (key, what, change) with at most six cases."""
    header = [
        "| step | old versions | new versions | values compared | moved beyond tolerance | moved within tolerance | status changes |",
        "|---|---|---|---|---|---|---|",
    ]
    moved = [{"case": f"c.yaml::c{i}", "key": "torch", "what": "loss", "old": 1.0, "new": 2.0} for i in range(7)]
    six = [{"case": f"c.yaml::c{i}", "key": "torch:nll", "what": "grad", "old": [1.0], "new": [2.0]} for i in range(6)]
    status = [{"case": "c.yaml::c0", "key": "torch", "what": "status", "old": "ok", "new": "error"}]
    stepped = {
        "file": "torch-2.12.json",
        "old_versions": {"torch": "2.12.0", "numpy": "1.26.0"},
        "new_versions": {"torch": "2.13.0", "paddlepaddle": "3.3.1", "numpy": "2.4.6"},
        "compared": 14,
        "moved": moved + six,
        "within_tolerance": 3,
        "status_changes": status,
    }
    quiet = {
        "file": "tf-2.19.json",
        "old_versions": {"tensorflow": "2.19.1", "keras": "3.9.2"},
        "new_versions": {"torch": "2.13.0", "tensorflow": "2.21.0", "keras": "3.15.1"},
        "compared": 2,
        "moved": [],
        "within_tolerance": 0,
        "status_changes": [],
    }
    first6 = ", ".join(f"c.yaml::c{i}" for i in range(6))
    steps = [("torch-2.12", BaselineReport.from_json(stepped)), ("tf-2.19", BaselineReport.from_json(quiet))]
    assert baseline.table(steps) == "\n".join(
        header
        + [
            "| torch-2.12 | torch 2.12.0 | torch 2.13.0 | 14 | 13 | 3 | 1 |",
            "| tf-2.19 | tensorflow 2.19.1, keras 3.9.2 | tensorflow 2.21.0, keras 3.15.1 | 2 | 0 | 0 | 0 |",
            "",
            "- torch-2.12: `torch` status ok -> error: c.yaml::c0",
            f"- torch-2.12: `torch` loss moved: {first6}, ... (7 cases)",
            f"- torch-2.12: `torch:nll` grad moved: {first6}",
        ]
    )
    quiet_row = "| tf-2.19 | tensorflow 2.19.1, keras 3.9.2 | tensorflow 2.21.0, keras 3.15.1 | 2 | 0 | 0 | 0 |"
    assert baseline.table([steps[1]]) == "\n".join(header + [quiet_row, "", "- nothing moved in any step"])


def test_replay_checks_every_key_of_a_case_after_a_status_change_or_a_failed_result():
    """Replay.check on a hand-made record of four results (no worker runs): `a` newly fails (a status
    change carrying the new message and dtype), `b` failed both times (nothing to compare), `c` moved by
    0.5 (beyond rtol 1e-5 of ~1), `d` changed its output dtype: the first two must not stop the check of
    the others. e, f, g: values saved without a loss or a gradient, moved within tolerance, or equal at
    their dtype's digits."""
    from conformance.records import CaseRecord, Comparison, Result

    then = {"status": "ok", "dtype": "float64", "loss": 1.0, "grad": None}
    old = {
        "versions": {},
        "values": {
            "f.yaml::c": {
                "tolerance": {},
                "results": {
                    "a": dict(then),
                    "b": {"status": "error"},
                    "c": dict(then),
                    "d": dict(then, dtype="float32"),
                    "e": dict(then),
                    "f": dict(then, loss=None, grad=[0.5]),
                    "g": dict(then, dtype="float32", loss=0.1),
                },
            }
        },
    }
    results = {
        "a": Result("a", "api", "error", message="ValueError: no", dtype="float64"),
        "b": Result("b", "api", "error", message="still no"),
        "c": Result("c", "api", "ok", loss=1.5, dtype="float64"),
        "d": Result("d", "api", "ok", loss=1.0, dtype="float64"),
        "e": Result("e", "api", "ok", loss=1.0 + 1e-7, grad=[1.0], dtype="float64"),  # no gradient saved: not compared
        "f": Result("f", "api", "ok", loss=1.0, grad=[0.5 + 1e-7], dtype="float64"),  # no loss saved: the gradient is
        "g": Result("g", "api", "ok", loss=float(np.float32(0.1)), dtype="float32"),  # float32 0.1 is the saved 0.1
    }
    record = CaseRecord("c", "f.yaml", 1, None, {}, results, Comparison((), (), {"rtol": 1e-05, "atol": 1e-06}, "none"), None)
    replay = baseline.Replay(Baseline.from_json(old), "old.json")
    checked = replay.check(None, record, dict.fromkeys(results), {})  # type: ignore[arg-type]
    assert [(f.key, f.what, f.old, f.new, f.message, f.dtype) for f in checked.findings] == [
        ("a", "status", "ok", "error", "ValueError: no", "float64"),
        ("c", "loss", 1.0, 1.5, None, "float64"),
        ("d", "dtype", "float32", "float64", None, "float64"),
    ]
    moved = checked.findings[1]
    assert (moved.max_abs, moved.max_rel) == (0.5, pytest.approx(0.5 / 1.5))  # relative to the larger: symmetric
    # compared: the losses of c, d, e, g and the gradient of f; within tolerance (|d| <= 1e-6 + 1e-5 * 1): e, f
    assert (checked.compared, replay.compared, checked.within_tolerance, replay.within) == (5, 5, 2, 2)
