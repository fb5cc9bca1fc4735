"""`conformance run --source KEY`: checked before anything runs, recorded in results.json with the run's
details, and the report's initial source. Runs the float64 reference only (no framework is imported)."""

from __future__ import annotations

import json
import platform
import re
import textwrap

from conformance import cli

CASES = textwrap.dedent(
    """\
    cases:
      - id: plain
        logits: [[0.05, 0.95, 0], [0.1, 0.8, 0.1]]
        labels: [1, 2]
    """
)


def test_an_unknown_source_is_a_usage_error(tmp_path, capsys):
    path = tmp_path / "run.yaml"
    path.write_text(CASES, encoding="utf-8")
    assert cli.main(["run", str(path), "--frameworks", "reference", "--source", "torhc", "--json", str(tmp_path / "r.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --source: 'torhc' is not a result key this run computes") and "Traceback" not in err
    assert not (tmp_path / "r.json").exists()  # nothing ran


def test_the_source_and_the_run_details_are_recorded_and_shown(tmp_path, capsys):
    path = tmp_path / "run.yaml"
    path.write_text(CASES, encoding="utf-8")
    out = ["--json", str(tmp_path / "r.json"), "--html", str(tmp_path / "index.html")]
    assert cli.main(["run", str(path), "--frameworks", "reference", "--source", "reference", *out]) == 0
    doc = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    assert doc["source"] == "reference"
    run = doc["run"]
    assert run["python"] == platform.python_version() and run["os"] == platform.platform()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", run["date"]) and "logical CPUs" in run["cpu"]
    assert "commit" not in run  # tmp_path is in no git work tree
    page = (tmp_path / "index.html").read_text(encoding="utf-8")
    assert '"source":"reference"' in page and f"Python <b>{platform.python_version()}</b>" in page
    assert cli.main(["run", str(path), "--frameworks", "reference", *out]) == 0
    assert json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))["source"] is None  # none given: the reference


def test_the_commit_of_case_files_in_git():
    from pathlib import Path

    from conformance import results

    cases = Path(__file__).resolve().parent.parent / "cases"
    details = results.run_details([cases])
    if (cases.parent / ".git").exists():
        assert re.fullmatch(r"[0-9a-f]{40}", details["commit"]) and isinstance(details["modified"], bool)
