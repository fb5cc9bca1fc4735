"""The `conformance` command: user mistakes exit 2 with one paragraph, the schema, and a fast end-to-end run."""

import json
import textwrap

import jsonschema
import pytest
import yaml

from conformance import cases, cli
from conformance.errors import CaseError, UsageError

GOOD = textwrap.dedent(
    """\
    cases:
      - id: plain
        logits: [[0.05, 0.95, 0], [0.1, 0.8, 0.1]]
        labels: [1, 2]
    """
)


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def fails(capsys, *argv):
    """Run the CLI, expect exit code 2, and return its one-paragraph stderr message."""
    assert cli.main([str(a) for a in argv]) == 2
    captured = capsys.readouterr()
    message = captured.err.strip()
    assert message.startswith("error: ")
    assert "Traceback" not in captured.err + captured.out
    assert "\n\n" not in message
    return message


# ---------------------------------------------------------------- user mistakes exit 2


def test_malformed_yaml_names_the_file_and_line(tmp_path, capsys):
    bad = write(tmp_path / "bad.yaml", "cases:\n  - id: a\n    logits: [[1, 2, 3]\n    labels: [0]\n")
    message = fails(capsys, "run", bad, "--frameworks", "reference")
    assert f"{bad}:4" in message
    assert "not valid YAML" in message


def test_invalid_case_names_the_file_line_and_key(tmp_path, capsys):
    bad = write(tmp_path / "bad.yaml", "cases:\n  - id: a\n    logits: [[1, 2, 3]]\n    labels: [7]\n")
    message = fails(capsys, "run", bad, "--frameworks", "reference")
    assert f"{bad}:4 (key 'labels')" in message
    assert "label 7 is outside [0, 3)" in message


def test_a_bad_case_in_the_middle_of_a_long_file_exits_2_before_any_case_runs(tmp_path, monkeypatch, capsys):
    """Cases are read one at a time (issue 26), but every one is validated before the first runs: a bad
    case halfway through a 600-case file is exit 2 naming its file, line and key, and no case was sent."""
    good = "".join(f"  - id: c{i}\n    logits: [[0.5, 1.5, -1.0]]\n    labels: [1]\n" for i in range(300))
    bad = write(tmp_path / "long.yaml", "cases:\n" + good + "  - id: bad\n    labels: [0]\n    wieght: [1, 2, 3]\n" + good)
    sent = []
    monkeypatch.setattr(cli.Pipeline, "records", lambda self, loaded: sent.append(len(loaded)) or iter(()))
    message = fails(capsys, "run", bad, "--frameworks", "reference", "--json", tmp_path / "r.json", "--html", tmp_path / "r.html")
    assert f"{bad}:{1 + 3 * 300 + 3} (key 'wieght')" in message
    assert sent == []
    assert not (tmp_path / "r.json").exists()


def test_unknown_framework_is_a_usage_error_with_a_suggestion(tmp_path, capsys):
    good = write(tmp_path / "good.yaml", GOOD)
    message = fails(capsys, "run", good, "--frameworks", "reference,torhc")
    assert "--frameworks: unknown framework 'torhc'; did you mean 'torch'?" in message


def test_unknown_only_key_is_a_usage_error_with_a_suggestion(tmp_path, capsys):
    good = write(tmp_path / "good.yaml", GOOD)
    message = fails(capsys, "run", good, "--only", "torch:nlll")
    assert "--only: unknown result key 'torch:nlll'; did you mean 'torch:nll'?" in message


@pytest.mark.parametrize("value", ["inf", "0", "-5", "nan", "soon"])
def test_a_timeout_that_is_no_finite_budget_is_a_usage_error(tmp_path, capsys, value):
    """Protects the run's bound: `--timeout inf` (or nan) would let a hung case hold the run for ever."""
    good = write(tmp_path / "good.yaml", GOOD)
    message = fails(capsys, "run", good, "--frameworks", "reference", f"--timeout={value}")
    assert "argument --timeout: expected a" in message and repr(value) in message


def test_bad_option_is_a_usage_error_not_a_system_exit(capsys):
    message = fails(capsys, "run", "--no-such-option")
    assert "--no-such-option" in message


@pytest.mark.parametrize("expect", ["groups: [[torhc, reference]]", "status: {torhc: ok}"], ids=["groups", "status"])
def test_expectation_naming_an_unknown_result_key_is_rejected(tmp_path, capsys, expect):
    path = write(tmp_path / "typo.yaml", GOOD + f"    expect:\n      {expect}\n")
    message = fails(capsys, "run", path, "--frameworks", "reference")
    assert f"{path}:2 (key 'expect')" in message
    assert "unknown result key 'torhc'; did you mean 'torch'?" in message


def test_check_keys_accepts_every_known_result_key():
    loaded = cases.load_text(
        GOOD + "    expect:\n      groups: [[torch, torch:nll, paddle:smooth_recipe, tensorflow:nn, reference]]\n",
        "x.yaml",
    )
    cli.check_keys(loaded)


def test_check_keys_rejects_an_unknown_key_with_file_line_and_key():
    loaded = cases.load_text(GOOD + "    expect:\n      status: {tensorflow:keras: ok}\n", "x.yaml")
    with pytest.raises(CaseError) as info:
        cli.check_keys(loaded)
    assert (info.value.file, info.value.line, info.value.key) == ("x.yaml", 2, "expect")
    assert "case 'plain': expect names unknown result key 'tensorflow:keras'" in info.value.message


def test_path_without_yaml_files_is_a_usage_error(tmp_path, capsys):
    empty = tmp_path / "empty"
    write(empty / "notes.txt", "no cases here")
    message = fails(capsys, "run", empty, "--frameworks", "reference")
    assert f"no case files (*.yaml) under {empty}" in message


def test_nonexistent_path_is_named(tmp_path, capsys):
    missing = tmp_path / "missing.yaml"
    message = fails(capsys, "run", missing, "--frameworks", "reference")
    assert f"{missing}: no such file or directory" in message


def test_only_selects_exactly_the_named_keys():
    assert cli.selection("torch,reference", "torch:nll") == {"torch": {"torch:nll"}}


@pytest.mark.parametrize("frameworks, only", [("reference", "torch"), ("torch", "reference")])
def test_only_naming_no_key_of_the_chosen_frameworks_is_a_usage_error(frameworks, only):
    with pytest.raises(UsageError):
        cli.selection(frameworks, only)


# ---------------------------------------------------------------- schema


VALID_FILE = """\
    defaults:
      matrix: {reduction: [none, mean, sum]}
    cases:
      - id: plain
        logits: [[0.05, 0.95, 0], [0.1, 0.8, 0.1]]
        labels: [1, 2]
        weight: [1, 2, 3]
        expect:
          - groups: [[torch, reference]]
          - when: {reduction: mean}
            status: {tensorflow: ok}
      - id: generated
        random: {shape: [4, 3, 2], seed: 3, scale: 2.0}
        labels: random
        label_smoothing: 0.1
        tolerance: {rtol: 1.0e-5}
    """


@pytest.fixture
def schema(tmp_path, capsys):
    out = tmp_path / "sub" / "schema.json"
    assert cli.main(["schema", "--out", str(out)]) == 0
    capsys.readouterr()
    document = json.loads(out.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(document)
    return document


def test_schema_accepts_a_valid_case_file(schema):
    cases.load_text(textwrap.dedent(VALID_FILE), "x.yaml")
    jsonschema.validate(yaml.safe_load(textwrap.dedent(VALID_FILE)), schema)


@pytest.mark.parametrize(
    "edit",
    [
        lambda doc: doc["cases"][0].update(wieght=[1, 2, 3]),
        lambda doc: doc["defaults"].update(reductoin="sum"),
        lambda doc: doc.update(case=[]),
        lambda doc: doc["cases"][0].update(reduction="average"),
    ],
    ids=["case-key", "defaults-key", "top-level-key", "reduction-value"],
)
def test_schema_rejects_what_the_loader_rejects(schema, edit):
    doc = yaml.safe_load(textwrap.dedent(VALID_FILE))
    edit(doc)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, schema)


def test_schema_accepts_a_single_expect_mapping(schema):
    text = GOOD + "    expect:\n      groups: [[torch, reference]]\n"
    cases.load_text(text, "x.yaml")
    jsonschema.validate(yaml.safe_load(text), schema)


# ---------------------------------------------------------------- end to end (reference only)


def run(tmp_path, capsys, text):
    path = write(tmp_path / "cases" / "run.yaml", text)
    report = tmp_path / "out" / "results.json"
    html = tmp_path / "out" / "index.html"
    code = cli.main(["run", str(path), "--json", str(report), "--html", str(html), "--frameworks", "reference"])
    capsys.readouterr()
    return code, json.loads(report.read_text(encoding="utf-8")), html.read_text(encoding="utf-8")


MET = GOOD + "    expect:\n      groups: [[reference]]\n      status: {reference: ok}\n"
VIOLATED = GOOD + "    expect:\n      status: {reference: error}\n"


def test_run_exits_0_when_every_expectation_is_met(tmp_path, capsys):
    code, doc, _ = run(tmp_path, capsys, MET)
    assert code == 0
    assert doc["cases"][0]["expectation"] == "met"


def test_run_exits_1_when_an_expectation_is_violated(tmp_path, capsys):
    code, doc, _ = run(tmp_path, capsys, VIOLATED)
    assert code == 1
    assert doc["cases"][0]["expectation"] == "violated"


def test_results_json_has_the_contract_keys(tmp_path, capsys):
    code, doc, html = run(tmp_path, capsys, MET + "    matrix: {reduction: [none, sum]}\n")
    assert code == 0
    assert {"versions", "cases"} <= set(doc)
    assert "numpy" in doc["versions"]
    assert [c["id"] for c in doc["cases"]] == ["plain[reduction=none]", "plain[reduction=sum]"]
    for case in doc["cases"]:
        assert {"id", "file", "params", "results", "groups", "expectation"} <= set(case)
        assert case["file"].endswith("run.yaml")
        assert case["groups"] == [["reference"]]
        result = case["results"]["reference"]
        assert {"status", "loss", "grad", "api", "code", "message"} <= set(result)
        assert result["status"] == "ok"
    assert doc["cases"][0]["params"]["reduction"] == "none"
    assert len(doc["cases"][0]["results"]["reference"]["loss"]) == 2
    assert "plain[reduction=sum]" in html


# ---------------------------------------------------------------- fuzz: where coverage comes from


@pytest.fixture
def fuzz_calls(monkeypatch):
    """`fuzz.run` replaced by a recorder of what it was told was covered (no framework starts)."""
    from conformance import fuzz

    calls = []

    def recorded(budget, seed, out, known, timeout=120.0):
        calls.append(set(known))
        return {"seed": seed, "evaluations": 0, "seconds": 0.0, "per_second": 0.0, "new_signatures": [], "written": []}

    monkeypatch.setattr(fuzz, "run", recorded)
    return calls


def test_fuzz_in_a_folder_without_cases_starts_from_nothing_and_says_so(tmp_path, monkeypatch, capsys, fuzz_calls):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["fuzz", "--budget", "1"]) == 0
    assert fuzz_calls == [set()]
    assert "no cases/ folder here: fuzzing with no divergence counted as covered" in capsys.readouterr().out


def test_fuzz_counts_the_default_cases_as_covered_and_a_named_missing_path_is_an_error(tmp_path, monkeypatch, capsys, fuzz_calls):
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "cases" / "weighted.yaml", GOOD.replace("labels: [1, 2]", "labels: [1, 2]\n    weight: [1, 2, 3]"))
    assert cli.main(["fuzz", "--budget", "1"]) == 0
    assert ("torch", "tensorflow", "denominator") in fuzz_calls[0]  # the weighted mean's known divergence
    assert "does/not/exist: no such file or directory" in fails(capsys, "fuzz", "--cases", "does/not/exist")


# ---------------------------------------------------------------- huge input: refused before anything is allocated


def test_a_huge_random_shape_is_refused_at_once_and_the_limit_is_an_option(tmp_path, monkeypatch, capsys):
    import time

    monkeypatch.setattr(cases, "MAX_ELEMENTS", cases.MAX_ELEMENTS)  # restored after the options set it
    huge = write(tmp_path / "huge.yaml", "cases:\n  - id: lm_head\n    random: {shape: [200000, 100000]}\n    labels: random\n")
    started = time.monotonic()
    message = fails(capsys, "run", huge, "--frameworks", "reference", "--json", tmp_path / "r.json", "--html", tmp_path / "r.html")
    assert time.monotonic() - started < 30
    assert "huge.yaml:3" in message and "random" in message and "20,000,000,000 numbers" in message
    assert "16,777,216" in message and "--max-elements" in message
    small = write(tmp_path / "small.yaml", "cases:\n  - id: twelve\n    random: {shape: [3, 4]}\n    labels: random\n")
    assert "at most 10" in fails(capsys, "run", small, "--frameworks", "reference", "--max-elements", "10")
    argv = ["run", str(small), "--frameworks", "reference", "--max-elements", "12", "--json", str(tmp_path / "r.json")]
    argv += ["--html", str(tmp_path / "r.html")]
    assert cli.main(argv) == 0
