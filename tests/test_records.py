"""Records read back typed: `X.from_json(x.to_json())` is `x` again (for what the JSON form keeps), so
the package reads its own documents (results.json, baselines) as records, never as dicts."""

from __future__ import annotations

import json

from conformance.records import (
    Baseline,
    BaselineReport,
    CaseRecord,
    Comparison,
    Documented,
    Explanation,
    Finding,
    KnobDifference,
    Pair,
    Result,
    SavedResult,
    ShownRecipe,
)

DOCUMENTED = Documented({"denominator": "positions"}, 0.25, None, False, 1e-3, None)
TORCH = Result("torch", "torch.nn.CrossEntropyLoss", "ok", None, 0.5, [[0.1, -0.1]], "float32", 0.01, "loss = ...", DOCUMENTED)
PADDLE = Result("paddle", "paddle.nn.CrossEntropyLoss", "error", "ValueError: bad input", code="loss = ...")
REFERENCE = Result("reference", "conformance.reference.evaluate (float64 NumPy)", "ok", loss=0.5, grad=[[0.1, -0.1]], dtype="float64")
CHANGE = ShownRecipe("loss = loss / D", 0.5, 0.5, True)
EXPLANATION = Explanation(
    "torch",
    "tensorflow",
    (KnobDifference("denominator", "target_weight", "positions", 0.125), KnobDifference("empty_mean", "nan", "zero", None)),
    "tensorflow divides by every position",
    ShownRecipe("t = ...", 0.5, 0.5, True, change=CHANGE),
    fit={"knobs": {"denominator": "positions"}, "exact": True},
    reverse=ShownRecipe(None, None, 0.5, False, message="no recipe"),
)
COMPARISON = Comparison(
    (("torch", "reference"), ("paddle",)),
    (Pair("torch", "reference", True, 0.0, 0.0, 1e-9, 2e-9), Pair("torch", "tensorflow", False, 0.1, 0.2, reason="loss", allowance=True)),
    {"rtol": 1e-5, "atol": 1e-6},
    "violated",
    "expected [[torch, reference]]",
    {"rtol": 2e-5, "atol": 1e-6},
)
RECORD = CaseRecord(
    "weighted[reduction=mean]",
    "cases/article.yaml",
    12,
    "a weighted mean",
    {"reduction": "mean", "weight": [1.0, 2.0, 3.0]},
    {"torch": TORCH, "paddle": PADDLE, "reference": REFERENCE},
    COMPARISON,
    {"groups": [["torch", "reference"]]},
    (EXPLANATION,),
    ({"versions": {"torch": "2.13.0"}, "results": {"torch": 0.5}, "current": True},),
)
MOVED = Finding("cases/a.yaml::c", "torch", "loss", 0.5, 0.6, 0.1, 0.2, knobs=("denominator=positions",), dtype="float32")
STATUS = Finding("cases/a.yaml::c", "paddle", "status", "ok", "error", message="ValueError: bad input")


def through_json(value: object) -> object:
    """As written to a file and read back by `json`."""
    return json.loads(json.dumps(value))


def test_a_case_record_reads_back_as_the_record_it_was():
    back = CaseRecord.from_json(through_json(RECORD.to_json()))
    assert back == RECORD
    assert back.to_json() == RECORD.to_json()


def test_each_record_reads_back_as_written():
    assert Result.from_json("torch", through_json(TORCH.to_json())) == TORCH
    assert Comparison.from_json(through_json(COMPARISON.to_json())) == COMPARISON
    assert Explanation.from_json(through_json(EXPLANATION.to_json())) == EXPLANATION
    assert [Finding.from_json(through_json(f.to_json())) for f in (MOVED, STATUS)] == [MOVED, STATUS]


def test_what_json_does_not_keep_reads_back_empty():
    """results.json keeps no documented gradient and no recipe runs (the explanations show those)."""
    kept = Documented({"denominator": "positions"}, 0.25, [[1.0]])
    assert Documented.from_json(through_json(kept.to_json())) == Documented({"denominator": "positions"}, 0.25)


def test_a_baseline_report_reads_back_its_findings_typed():
    written = {
        "file": "cases/baselines/old.json",
        "old_versions": {"torch": "2.12.0"},
        "new_versions": {"torch": "2.13.0"},
        "compared": 4,
        "moved": [MOVED.to_json()],
        "within_tolerance": 1,
        "within_tolerance_compact": 0,
        "status_changes": [STATUS.to_json()],
        "gone_cases": ["cases/a.yaml::gone"],
        "gone_keys": [{"case": "cases/a.yaml::c", "key": "torch:nll"}],
        "new_cases": [],
    }
    report = BaselineReport.from_json(through_json(written))
    assert report.moved == (MOVED,) and report.status_changes == (STATUS,)
    assert (report.compared, report.gone_cases, report.new_cases) == (4, ("cases/a.yaml::gone",), ())


def test_a_baseline_reads_back_per_case_and_key():
    written = {
        "versions": {"torch": "2.13.0"},
        "values": {"a.yaml::c": {"tolerance": {"rtol": 1e-5}, "results": {"torch": {"status": "ok", "dtype": "float32", "loss": 0.5}}}},
    }
    saved = Baseline.from_json(through_json(written)).values["a.yaml::c"]
    assert saved.tolerance == {"rtol": 1e-5}
    assert saved.results["torch"] == SavedResult("ok", "float32", 0.5) and saved.results["torch"].value("grad") is None
