"""`conformance fuzz`: generated specs are valid cases, coverage is predicted without frameworks, and a
fuzz run writes committable, reproducible cases for divergences nobody has shown yet.

The generator and `covered` are pure NumPy. The fuzz runs start every framework's worker and spend a
wall-clock budget, so they are marked `slow`; they share one first run (module fixture).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings

from conformance import cases, cli, fuzz, registry

FRAMEWORKS = ("torch", "paddle", "tensorflow")
NATIVE = registry.native()  # canonical order: torch, paddle, tensorflow, then any registered plug-in
ORIENTED = {(a, b) for i, a in enumerate(NATIVE) for b in NATIVE[i + 1 :]}
BUDGET = 25.0
SLOW = pytest.mark.slow  # not registered in pyproject.toml: taken once here, so pytest warns once


# ---------------------------------------------------------------- the generator, no frameworks


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
@given(fuzz.case_specs())
def test_every_generated_spec_is_a_case_file_the_loader_accepts(spec):
    for text in (json.dumps({"cases": [spec]}), yaml.safe_dump({"cases": [spec]}, sort_keys=False)):
        (case,) = cases.load_text(text, "fuzz.yaml")
        assert case.id == "fuzz"
        assert case.loss == spec.get("loss", "softmax_cross_entropy")
        assert case.predictions.shape[0] == len(spec["logits"] if "logits" in spec else spec["probs"])
    assert fuzz.to_case(spec) is not None


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(fuzz.case_specs())
def test_the_fuzzer_draws_every_registered_loss_family(spec):
    """Protects the plug-in draw: specs come from each family's own strategy, the loader accepts them."""
    assert spec.get("loss", "softmax_cross_entropy") in registry.losses()
    assert fuzz.to_case(spec) is not None


def test_the_generator_draws_both_shipped_families():
    from hypothesis import find

    for loss in registry.losses():
        spec = find(
            fuzz.case_specs(), lambda s, loss=loss: s.get("loss", "softmax_cross_entropy") == loss, settings=settings(database=None)
        )
        assert fuzz.to_case(spec).loss == loss


# ---------------------------------------------------------------- coverage predicted from the knob model


@pytest.fixture(scope="module")
def shipped() -> set[tuple[str, str, str]]:
    return fuzz.covered(cases.load_paths([Path(__file__).parents[1] / "cases"]))


def test_the_shipped_cases_cover_the_article_divergences(shipped):
    assert {
        ("torch", "paddle", "weight_mode"),
        ("torch", "tensorflow", "denominator"),
        ("torch", "tensorflow", "weight_mode"),
        ("paddle", "tensorflow", "weight_mode"),
        ("paddle", "tensorflow", "denominator"),
        ("torch", "paddle", "logit_floor"),
    } <= shipped


def test_coverage_pairs_frameworks_in_canonical_order_as_explanations_do(shipped):
    assert {(a, b) for a, b, _ in shipped} <= ORIENTED


def test_coverage_is_predicted_without_importing_any_framework():
    before = set(sys.modules)
    assert fuzz.covered(cases.load_paths([Path(__file__).parents[1] / "cases" / "article.yaml"]))
    imported = {name.split(".")[0] for name in set(sys.modules) - before}
    assert not imported & set(FRAMEWORKS)


def test_cases_where_the_frameworks_agree_cover_nothing():
    agreeing = cases.load_text(
        "cases:\n"
        "  - id: plain\n    logits: [[0.05, 0.95, 0], [0.1, 0.8, 0.1]]\n    labels: [1, 2]\n"
        "    matrix: {reduction: [none, mean, sum]}\n"
        "  - id: binary\n    loss: binary_cross_entropy\n    logits: [[0.5, -1]]\n    labels: [[1, 0]]\n    weight: [[1, 2]]\n",
        "agree.yaml",
    )
    assert fuzz.covered(agreeing) == set()


# ---------------------------------------------------------------- fuzz runs (every framework, wall-clock budget)


@pytest.fixture(scope="module")
def first(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("fuzz") / "first"
    return fuzz.run(budget=BUDGET, seed=0, out=out, known=set()) | {"out": out}


@SLOW
def test_a_fuzz_run_writes_case_files_whose_expectations_hold(first, tmp_path, capsys):
    assert first["written"], first
    loaded = cases.load_paths([first["out"]])
    assert sorted(c.id for c in loaded) == sorted(Path(p).stem for p in first["written"])
    for case in loaded:
        assert case.expect is not None and case.expect.groups, case.id
        assert len(case.expect.groups) > 1, case.id
    code = cli.main(["run", str(first["out"]), "--json", str(tmp_path / "results.json"), "--html", str(tmp_path / "index.html")])
    capsys.readouterr()
    doc = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    assert code == 0, [(c["id"], c["expectation_message"]) for c in doc["cases"] if c["expectation"] != "met"]
    assert {c["expectation"] for c in doc["cases"]} == {"met"}


@SLOW
def test_each_new_signature_is_written_once_in_a_file_header(first):
    headers = [Path(p).read_text(encoding="utf-8").splitlines()[0] for p in first["written"]]
    for signature in first["new_signatures"]:
        assert sum(repr(tuple(signature)) in header for header in headers) == 1, signature


@SLOW
def test_the_same_seed_writes_the_same_first_case(first, tmp_path):
    again = fuzz.run(budget=BUDGET, seed=0, out=tmp_path, known=set())
    assert again["written"], again
    assert Path(again["written"][0]).name == Path(first["written"][0]).name
    assert Path(again["written"][0]).read_text(encoding="utf-8") == Path(first["written"][0]).read_text(encoding="utf-8")


@SLOW
def test_known_signatures_are_not_reported_again(first, tmp_path):
    known = {tuple(s) for s in first["new_signatures"]}
    assert known
    later = fuzz.run(budget=10.0, seed=1, out=tmp_path, known=known)
    assert not known & {tuple(s) for s in later["new_signatures"]}
    for path in later["written"]:
        header = Path(path).read_text(encoding="utf-8").splitlines()[0]
        assert not any(repr(signature) in header for signature in known), header
