"""Real sizes: snippets of generated and empty inputs, the tolerance a size allows, large cases end to end.

Expected arrays come from NumPy run on the spec's seed here (the loaders' draws are not read back);
expected tolerances from the formula docs/comparison.md states, rtol = 4 * 2^-23 * sqrt(C + P) for float32,
written out here; torch's float32 error at C = 32,000 from bench/accumulation.py's measurement
(3.8e-5 to 4.9e-5 relative, depending on the logits), which the test only bounds from below by the
float32 tolerance it must exceed (1e-5).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from conformance import adapters, cases, reference, results, runner, worker
from conformance.pipeline import Outputs, Pipeline

ROOT = Path(__file__).resolve().parent.parent


def load(spec: dict) -> cases.Case:
    return cases.load_text(json.dumps({"cases": [{"id": "c", **spec}]}), "x.yaml")[0]


def regenerated(case: cases.Case) -> dict[str, np.ndarray]:
    """The arrays the snippet's array lines make, run on their own."""
    scope: dict = {"np": np}
    exec(adapters.array_source(case), scope)
    return {name: scope[name] for name in adapters.arrays(case)}


# ---------------------------------------------------------------- snippets of generated and empty inputs

GENERATED = {
    "logits and labels": {"random": {"shape": [4, 5], "seed": 3, "scale": 2.5}, "labels": "random"},
    "k-dim soft labels, bfloat16": {"random": {"shape": [4, 5, 2], "seed": 3}, "soft_labels": "random", "dtype": "bfloat16"},
    "float64": {"random": {"shape": [3, 7], "seed": 9}, "labels": "random", "dtype": "float64"},
    "binary, float16": {
        "loss": "binary_cross_entropy",
        "random": {"shape": [6, 3], "seed": 1},
        "soft_labels": "random",
        "dtype": "float16",
    },
    "binary labels": {"loss": "binary_cross_entropy", "random": {"shape": [6, 3], "seed": 4}, "labels": "random"},
}


@pytest.mark.parametrize("spec", list(GENERATED.values()), ids=list(GENERATED))
def test_generated_inputs_are_regenerated_from_the_seed(spec):
    """The snippet of a generated case draws its arrays from the seed (a few lines, no literals) and they
    equal, bit for bit and in dtype and shape, the arrays the variants ran on."""
    case = load(spec)
    source = adapters.array_source(case)
    assert "np.array(" not in source and f"default_rng({spec['random']['seed']})" in source
    for name, value in regenerated(case).items():
        expected = adapters.arrays(case)[name]
        assert value.dtype == expected.dtype and value.shape == expected.shape, name
        assert np.array_equal(value, expected, equal_nan=True), name


def test_generated_logits_are_the_seeded_normal_draws():
    """Independently of the loader: logits = standard normal from default_rng(seed) times scale, labels
    from default_rng(seed + 1) (docs/case-files.md's `random`)."""
    case = load({"random": {"shape": [4, 5], "seed": 3, "scale": 2.5}, "labels": "random"})
    arrays = regenerated(case)
    np.testing.assert_array_equal(arrays["x"], (np.random.default_rng(3).standard_normal((4, 5)) * 2.5).astype(np.float32))
    np.testing.assert_array_equal(arrays["y"], np.random.default_rng(4).integers(0, 5, size=4))


def test_a_large_generated_case_has_a_short_snippet():
    source = adapters.array_source(load({"random": {"shape": [64, 4096], "seed": 0}, "labels": "random"}))
    assert len(source) < 400


def test_empty_arrays_keep_their_shape_and_dtype():
    """`np.array([])` would be a float64 vector of shape (0,): an empty batch keeps (0, C) and int64 labels."""
    written = load({"logits": [[0.1, 0.2, 0.3]], "labels": [1]})
    case = replace(written, predictions=np.zeros((0, 3)), labels=np.zeros((0,), dtype=np.int64))
    source = adapters.array_source(case)
    assert 'x = np.zeros((0, 3), dtype="float32")' in source and 'y = np.zeros((0,), dtype="int64")' in source
    arrays = regenerated(case)
    assert (arrays["x"].shape, arrays["x"].dtype, arrays["y"].shape, arrays["y"].dtype) == ((0, 3), np.float32, (0,), np.int64)


def test_empty_batch_snippets_run_alone_and_reproduce_the_values():
    """cases/edge_cases.yaml::empty_batch: each reduction's torch snippet, run in a fresh process (each in
    a fresh namespace), gives the value the worker reported: an empty (0,) loss, NaN, 0."""
    batch = [c for c in cases.load_file(ROOT / "cases" / "edge_cases.yaml") if c.id.startswith("empty_batch[")]
    assert len(batch) == 3
    reported = {case.id: found["torch"] for case, found in runner.run(batch, {"torch": {"torch"}})}
    program = ["import json, math, numpy as np", "out = {}"]
    for name, result in reported.items():
        assert result["status"] == "ok" and "np.zeros((0, 3)" not in result["code"]  # generated: regenerated from the seed
        program += [f"scope = {{}}; exec({result['code']!r}, scope)", f"out[{name!r}] = np.asarray(scope['loss'].detach()).tolist()"]
    program.append("print(json.dumps(out, allow_nan=True))")
    done = subprocess.run(
        [sys.executable, "-c", "\n".join(program)], capture_output=True, text=True, timeout=300, env={**os.environ, **runner.WORKER_ENV}
    )
    assert done.returncode == 0, done.stderr[-2000:]
    values = json.loads(done.stdout.strip().splitlines()[-1])
    for name, result in reported.items():
        np.testing.assert_array_equal(np.asarray(values[name]), np.asarray(result["loss"]))
    assert values["empty_batch[reduction=none]"] == [] and math.isnan(values["empty_batch[reduction=mean]"])
    assert values["empty_batch[reduction=sum]"] == 0.0


def test_recipes_build_one_hot_rows_without_a_c_by_c_identity():
    """A recipe's one-hot labels at C = 32,000 are a comparison, not np.eye(C) (8 GB): the same rows as
    ones placed by hand; small C keeps the idiom."""
    from conformance.losses import softmax_ce

    labels = np.array([[3, 31999], [0, 17]])
    code = softmax_ce._one_hot(32000, "y")
    assert "np.eye" not in code and softmax_ce._one_hot(3, "y") == "np.eye(3)[y]"
    built = eval(code, {"np": np, "y": labels})
    expected = np.zeros((2, 2, 32000))
    for (i, j), label in np.ndenumerate(labels):
        expected[i, j, label] = 1.0
    assert built.dtype == np.float64 and np.array_equal(built, expected)


# ---------------------------------------------------------------- how values travel from the workers


def test_large_values_travel_as_float32_only_where_that_is_exact():
    """A float32 gradient (held as float64 after `to_numpy`) goes to the parent as float32, the same
    numbers; a float64 one, or a small one, stays float64."""
    float32_values = np.random.default_rng(0).standard_normal(5000).astype(np.float32).astype(np.float64)
    narrowed = worker.carried(float32_values)
    assert narrowed.dtype == np.float32 and np.array_equal(narrowed, float32_values)
    assert worker.carried(np.random.default_rng(0).standard_normal(5000)).dtype == np.float64
    assert worker.carried(float32_values[:100]).dtype == np.float64
    assert worker.carried(np.full(5000, 1e300)).dtype == np.float64


def test_the_documented_gradient_travels_as_float32_only_beside_a_float32_result():
    case = load({"random": {"shape": [4, 2000], "seed": 0}, "labels": "random"})
    per_case = worker._PerCase(case)
    knobs = reference.textbook(case)
    exact = per_case.documented(knobs).grad
    narrow = per_case.documented_grad(knobs, "float32", np.zeros(8000, dtype=np.float32))
    assert narrow.dtype == np.float32 and np.array_equal(narrow, exact.astype(np.float32))
    assert per_case.documented_grad(knobs, "float32", np.zeros(8000, dtype=np.float32)) is narrow  # once per knob point
    assert per_case.documented_grad(knobs, "float64", np.zeros(8000, dtype=np.float32)) is exact
    assert per_case.documented_grad(knobs, "float32", np.zeros(8000)) is exact


def test_frameworks_run_fewer_large_cases_ahead():
    """No framework runs more than AHEAD cases ahead of the slowest, nor more than ELEMENTS_AHEAD numbers
    of predictions (always at least one case): answers to large cases stay few in memory."""
    small = [SimpleNamespace(predictions=np.empty(10))] * 300
    assert runner._ahead(small, 0) == runner.AHEAD and runner._ahead(small, 100) == 100 + runner.AHEAD
    huge = [SimpleNamespace(predictions=np.empty(runner.ELEMENTS_AHEAD // 3 + 1))] * 10
    assert runner._ahead(huge, 0) == 2 and runner._ahead(huge, 5) == 7
    assert runner._ahead([SimpleNamespace(predictions=np.empty(runner.ELEMENTS_AHEAD * 2))] * 3, 0) == 1


# ---------------------------------------------------------------- tolerance at size, at a real size


@pytest.fixture(scope="module")
def smoothed_32k(tmp_path_factory) -> dict:
    """[16, 32000] smoothed sum through torch and the reference: the record as results.json holds it."""
    case = load({"random": {"shape": [16, 32000], "seed": 0, "scale": 3}, "labels": "random", "label_smoothing": 0.1, "reduction": "sum"})
    folder = tmp_path_factory.mktemp("large")
    outputs = Outputs(folder / "results.json")
    with Pipeline({"torch": {"torch"}, "reference": None}) as pipeline:
        for _, record in pipeline.records([case]):
            outputs.add(record)
        head = outputs.finish(pipeline.head())
    return {"head": head, "case": next(results.cases(folder / "results.json")), "size": (folder / "results.json").stat().st_size}


def test_float32_rounding_at_size_is_a_note_not_a_divergence(smoothed_32k):
    """torch's gradient over 32,000 classes is beyond rtol 1e-5 of the float64 value, within the allowance
    4 * 2^-23 * sqrt(32,000 + 16): one group, and a numerical note on torch saying how far."""
    record = smoothed_32k["case"]
    assert record["groups"] == [["torch", "reference"]]
    allowed = 4 * 2.0**-23 * math.sqrt(32000 + 16)
    assert record["allowance"]["rtol"] == pytest.approx(allowed) and record["tolerance"]["rtol"] == 1e-5
    note = record["results"]["torch"]["numerical"]
    assert 1e-5 < note["rtol_needed"]["grad"] <= allowed
    assert note["text"].startswith(f"torch's gradient is {note['rtol_needed']['grad']:.2g} off the float64 value here")
    assert record["pairs"][0]["within_allowance"] is True
    assert record["results"]["torch"]["documented"]["agrees"] is True
    assert smoothed_32k["head"]["summary"]["numerical_notes"] == 1


def test_large_values_are_written_compact_with_their_differences_from_the_reference(smoothed_32k):
    record = smoothed_32k["case"]
    grad = record["results"]["torch"]["grad"]
    assert grad["form"] == "compact" and grad["shape"] == [16, 32000] and grad["dtype"] == "float32"
    largest = grad["largest_differences"]
    assert largest["against"] == "reference" and len(largest["index"]) == 8
    assert largest["abs"][0] == pytest.approx(max(p["grad_max_abs"] for p in record["pairs"]))
    assert "largest_differences" not in record["results"]["reference"]["grad"]
    assert smoothed_32k["size"] < 60_000  # 512,000 gradient elements each, about 20 bytes per element in full


def test_float64_smoothing_from_float32_constants_is_not_split():
    """Issue 19: in float64, paddle's smoothed targets come from float32 constants, so its gradient is off
    by up to ~6e-8 (smoothing 0.09, 0.29, 0.46 here), beyond atol 1e-8 + rtol 1e-7. The allowance's 2^-23
    of the largest element keeps torch, paddle and the reference (the same documented formula without
    class weights) in one group at every smoothing, with a note on paddle where it needs it."""
    spec = {
        "logits": [[0.05, 0.95, 0], [0.1, 0.8, 0.1]],
        "labels": [1, 2],
        "dtype": "float64",
        "matrix": {"label_smoothing": [0.09, 0.29, 0.46, 0.73], "reduction": ["mean", "sum"]},
    }
    batch = cases.load_text(json.dumps({"cases": [{"id": "s", **spec}]}), "x.yaml")
    with Pipeline({"torch": {"torch"}, "paddle": {"paddle"}, "reference": None}) as pipeline:
        records = {case.id: record for case, record in pipeline.records(batch)}
    for name, record in records.items():
        assert [list(g) for g in record.groups] == [["torch", "paddle", "reference"]], name
        assert record.comparison.allowance == {"rtol": 1e-7, "atol": 1e-8, "norm": 2.0**-23}
        assert record.results["torch"].numerical is None
    joined = [name for name, record in records.items() if any(pair.allowance for pair in record.comparison.pairs)]
    assert "s[label_smoothing=0.09,reduction=mean]" in joined  # apart under the dtype's tolerance alone
    assert all(records[name].results["paddle"].numerical is not None for name in joined)


# ---------------------------------------------------------------- the sizes, every default variant (minutes)


@pytest.mark.slow
def test_large_case_file_meets_its_expectations(tmp_path):
    """cases/large.yaml through every variant: groups as expected (all together at C = 32,000 in spite of
    torch's rounding; paddle apart where its logit floor applies)."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "conformance",
            "run",
            "cases/large.yaml",
            "--json",
            str(tmp_path / "r.json"),
            "--html",
            str(tmp_path / "r.html"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    head = results.head(tmp_path / "r.json")
    assert head["summary"]["expectations"]["violated"] == 0 and head["summary"]["numerical_notes"] >= 2


@pytest.mark.slow
def test_language_model_head_of_12_million_logits(tmp_path):
    """[256, 50000] logits with random labels through the default variants: one group, a results.json of
    kilobytes, not gigabytes."""
    spec = {"cases": [{"id": "lm_head", "random": {"shape": [256, 50000], "seed": 0}, "labels": "random"}]}
    (tmp_path / "lm.yaml").write_text(json.dumps(spec), encoding="utf-8")
    only = "torch,paddle,tensorflow,jax,reference"
    args = ["run", str(tmp_path / "lm.yaml"), "--only", only, "--json", str(tmp_path / "r.json")]
    done = subprocess.run([sys.executable, "-m", "conformance", *args], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    record = next(results.cases(tmp_path / "r.json"))
    assert record["groups"] == [only.split(",")]
    assert all(r["status"] == "ok" for r in record["results"].values())
    assert (tmp_path / "r.json").stat().st_size < 200_000
