"""The one pipeline: `conformance run` and pytest (serial and under xdist) write the same document.

The same case file and the same baseline go through the command line and through pytest with and
without `-n 2`; the three results.json files must be equal but for what the contract lets differ
(timings, worker statistics and the `runner` field). The baseline is edited the way an upgrade moves a
value, so the baseline's findings (with their knob attribution) and each case's timeline are compared
too: before the pipeline was shared, the pytest document lacked both.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conformance import results

CASES = """\
defaults:
  logits: [[0.05, 0.95, 0], [0.1, 0.8, 0.1]]
  labels: [1, 2]
cases:
  - id: weighted
    weight: [1, 2, 3]
    matrix: {reduction: [mean, sum]}
  - id: smoothing
    label_smoothing: 0.1
    expect: {groups: [[torch, reference]]}
"""
FRAMEWORKS = "torch,reference"
VARYING = {"seconds", "workers", "runner", "startup_seconds", "run"}  # `run`: the date, and the commit the CLI adds


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def comparable(value: Any) -> Any:
    """The document without what may differ between runners (timings, worker statistics, run details, `runner`)."""
    if isinstance(value, dict):
        return {k: comparable(v) for k, v in value.items() if k not in VARYING}
    if isinstance(value, list):
        return [comparable(v) for v in value]
    return value


@pytest.fixture(scope="module")
def documents(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    root = tmp_path_factory.mktemp("pipeline")
    (root / "cases").mkdir()
    (root / "cases" / "small.yaml").write_text(CASES, encoding="utf-8")
    saved = root / "baselines" / "saved.json"
    done = run(["-m", "conformance", "baseline", "save", "cases", "--frameworks", FRAMEWORKS, "--out", str(saved)], root)
    assert done.returncode == 0, done.stderr
    data = json.loads(saved.read_text(encoding="utf-8"))
    data["values"]["cases/small.yaml::weighted[reduction=mean]"]["results"]["torch"]["loss"] = 1.0  # an upgrade moved it
    saved.write_text(json.dumps(data), encoding="utf-8")
    out: dict[str, dict[str, Any]] = {}
    done = run(["-m", "conformance", "run", "cases", "--frameworks", FRAMEWORKS, "--baseline", str(saved), "--json", "cli.json"], root)
    assert done.returncode == 1, done.stdout + done.stderr  # the moved value fails the run
    out["cli"] = results.read(root / "cli.json")
    for name, extra in (("serial", ["-p", "no:xdist"]), ("xdist", ["-n", "2"])):
        options = ["--conformance-frameworks", FRAMEWORKS, "--conformance-baseline", str(saved), "--conformance-json", f"{name}.json"]
        done = run(["-m", "pytest", "-p", "no:cacheprovider", "cases", *options, *extra], root)
        assert done.returncode == 1, done.stdout + done.stderr
        out[name] = results.read(root / f"{name}.json")
    return out


def test_run_and_pytest_with_and_without_xdist_write_the_same_document(documents):
    cli = comparable(documents["cli"])
    for name in ("serial", "xdist"):
        assert comparable(documents[name]) == cli, name
    assert documents["serial"]["runner"] == documents["xdist"]["runner"] == "pytest"
    assert "runner" not in documents["cli"]


def test_every_runner_attributes_the_moved_value_to_a_knob_and_keeps_the_timeline(documents):
    for name, doc in documents.items():
        # torch:functional and torch:nll were saved as "=torch" (equal values), so they moved with it
        assert {m["key"] for m in doc["baseline"]["moved"]} == {"torch", "torch:functional", "torch:nll"}, name
        [moved] = [m for m in doc["baseline"]["moved"] if m["key"] == "torch"]
        assert (moved["case"], moved["key"], moved["what"]) == ("cases/small.yaml::weighted[reduction=mean]", "torch", "loss"), name
        assert moved["old"] == 1.0
        assert "knobs" in moved, name
        timelines = [case.get("timeline") for case in doc["cases"]]
        assert all(timelines), name


def test_every_result_carries_the_snippet_that_ran(documents):
    """The comparison is made before the snippets are assembled: the record must still carry them (a
    cached comparison once dropped every result's `code`)."""
    for name, doc in documents.items():
        for case in doc["cases"]:
            for key, result in case["results"].items():
                if result["status"] == "ok":
                    assert result["code"] and result["code"].startswith("import numpy as np"), (name, case["id"], key)
