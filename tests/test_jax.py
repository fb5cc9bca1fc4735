"""The jax framework module (optax, optax's one-hot form, Keras 3 on the JAX backend) through its real worker.

Every case of this module runs in one `runner.run` with only the jax worker (module-scoped fixture): never
import jax, optax or keras here. Expected values are float64 formulas written below from optax's and
Keras's documentation, never from the adapter or the reference model; gradients are checked against a
central finite difference of the same formula.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pytest

from conformance import cases, runner
from conformance.cases import Case

pytest.importorskip("jax")
pytest.importorskip("optax")

ARTICLE = [[0.05, 0.95, 0.0], [0.1, 0.8, 0.1], [1.0, -0.5, 0.3]]
KDIM = (np.arange(24, dtype=np.float64).reshape(2, 3, 2, 2) * 0.37 % 2.3 - np.array([0.0, 0.5, 1.0]).reshape(1, 3, 1, 1)).tolist()
KDIM_LABELS = [[[0, 1], [2, -1]], [[1, 2], [0, 2]]]
# Keras 3.15.1's `ops.mean` on the JAX backend computes a float64 mean in float32 (compute dtype
# result_type(x, "float32")): BinaryCrossentropy's mean over the last axis is off by up to ~6e-8 relative.
KERAS_JAX_MEAN = {"rtol": 2e-7, "atol": 1e-9}
TOLERANCE = {"float32": {"rtol": 1e-5, "atol": 1e-6}, "float64": {"rtol": 1e-9, "atol": 1e-10}}

SPECS: list[dict] = [
    {"id": "plain", "logits": ARTICLE, "labels": [1, 2, 0], "matrix": {"reduction": ["none", "mean", "sum"]}},
    {"id": "plain64", "logits": ARTICLE, "labels": [1, 2, 0], "dtype": "float64"},
    {"id": "weighted", "logits": ARTICLE, "labels": [1, 2, 0], "weight": [1, 2, 3], "matrix": {"reduction": ["mean", "sum"]}},
    {"id": "weighted64", "logits": ARTICLE, "labels": [1, 2, 0], "weight": [1, 2, 3], "dtype": "float64"},
    {"id": "smoothing", "logits": ARTICLE, "labels": [1, 2, 0], "label_smoothing": 0.1, "weight": [1, 2, 3]},
    {"id": "ignore", "logits": ARTICLE, "labels": [1, -100, 0], "ignore_index": -100, "matrix": {"label_smoothing": [0.0, 0.2]}},
    {"id": "ignore_class", "logits": ARTICLE, "labels": [1, 2, 0], "ignore_index": 2, "weight": [1, 2, 3], "sample_weight": [1, 0.5, 2]},
    {"id": "all_ignored", "logits": ARTICLE, "labels": [-100, -100, -100], "ignore_index": -100},
    {"id": "soft", "logits": ARTICLE, "soft_labels": [[0.2, 0.8, 0], [0, 0.3, 0.7], [1, 0, 0]], "dtype": "float64"},
    {"id": "kdim", "logits": KDIM, "labels": KDIM_LABELS, "ignore_index": -1, "weight": [1, 2, 3], "dtype": "float64"},
    {
        "id": "explicit",
        "logits": ARTICLE,
        "labels": [1, 2, 0],
        "weight": [1, 2, 3],
        "sample_weight": [1, 0, 2],
        "matrix": {"reduction": ["sum_over_batch_size", "mean_with_sample_weight", "sum_by_nonzero_weights"]},
    },
    {
        "id": "binary",
        "loss": "binary_cross_entropy",
        "logits": [[0.5, -1.0], [2.0, 0.0]],
        "labels": [[1, 0], [0, 1]],
        "dtype": "float64",
        "matrix": {"reduction": ["none", "mean", "sum"]},
    },
    {
        "id": "binary_weighted",
        "loss": "binary_cross_entropy",
        "logits": [[0.5, -1.0], [2.0, 0.0]],
        "labels": [[1, 0], [0, 1]],
        "weight": [2.0, 0.5],
        "label_smoothing": 0.2,
        "dtype": "float64",
    },
    {
        "id": "binary_pos_weight",
        "loss": "binary_cross_entropy",
        "logits": [[0.5, -1.0], [2.0, 0.0]],
        "labels": [[1, 0], [0, 1]],
        "pos_weight": [2.0, 1.0],
    },
]
SPECS.append({"id": "probs_zero", "probs": [[0.05, 0.95, 0.0], [0.1, 0.8, 0.1]], "labels": [1, 2]})  # its own test
CASES = cases.load_text(json.dumps({"cases": SPECS}), "test_jax.yaml")
BY_ID = {case.id: case for case in CASES}


@pytest.fixture(scope="module")
def runs() -> dict[str, dict[str, dict]]:
    """case id -> result key -> result, from one runner.run with the jax worker alone."""
    return {case.id: results for case, results in runner.run(CASES, runner.plan(["jax"], None))}


# ---------------------------------------------------------------- independent float64 formulas


def seen(case: Case) -> Case:
    def cast(array: np.ndarray | None) -> np.ndarray | None:
        return None if array is None else np.asarray(array, dtype=case.dtype).astype(np.float64)

    return replace(case, predictions=cast(case.predictions), soft_labels=cast(case.soft_labels), weight=cast(case.weight))


def _log_softmax(x: np.ndarray) -> np.ndarray:
    shifted = x - x.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def _softmax_parts(case: Case) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-position cross-entropy (optax: -sum q log_softmax, q = (1-a) onehot + a/C for smoothing), the
    per-position class weight w[y] (w . t for soft labels; 1 without weights) and the non-ignored mask."""
    x = case.predictions
    c = x.shape[1]
    lp = _log_softmax(x)
    if case.labels is None:
        q = np.asarray(case.soft_labels)
        mask = np.ones(x.shape[:1] + x.shape[2:], dtype=bool)
        weight = np.ones(mask.shape) if case.weight is None else np.tensordot(case.weight, q, axes=([0], [1]))
    else:
        y = np.asarray(case.labels)
        mask = np.ones(y.shape, dtype=bool) if case.ignore_index is None else y != case.ignore_index
        safe = np.where(mask, y, 0)
        q = np.moveaxis(np.eye(c)[safe], -1, 1)
        q = q * (1 - case.label_smoothing) + case.label_smoothing / c
        weight = np.ones(y.shape) if case.weight is None else np.asarray(case.weight)[safe]
    per = np.where(mask, -(q * lp).sum(axis=1), 0.0)
    return per, weight, mask


def _sample(case: Case, shape: tuple[int, ...]) -> np.ndarray:
    if case.sample_weight is None:
        return np.ones(shape)
    sw = np.asarray(case.sample_weight, dtype=np.float64)
    return np.broadcast_to(sw.reshape((-1,) + (1,) * (len(shape) - 1)), shape)


def _reduced(case: Case, values: np.ndarray, applied: np.ndarray, count: float) -> np.ndarray:
    """The reduction of weighted per-position values: `count` is what `mean` divides by."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return {
            "none": lambda: values,
            "sum": lambda: np.array(values.sum()),
            "mean": lambda: np.array(values.sum() / count),
            "sum_over_batch_size": lambda: np.array(values.sum() / values.size),
            "mean_with_sample_weight": lambda: np.array(values.sum() / applied.sum()),
            "sum_by_nonzero_weights": lambda: np.array(values.sum() / np.count_nonzero(applied)),
        }[case.reduction]()


def optax_loss(case: Case) -> np.ndarray:
    """`jax`: weights by hand, jnp.mean over the positions (over the non-ignored ones with where=)."""
    per, weight, mask = _softmax_parts(case)
    applied = weight * _sample(case, per.shape) * mask
    return _reduced(case, per * applied, applied, float(mask.sum()))


def generic_loss(case: Case) -> np.ndarray:
    """`jax:optax_generic`: the mask is a weight, so jnp.mean divides by every position."""
    per, weight, mask = _softmax_parts(case)
    applied = weight * _sample(case, per.shape) * mask
    return _reduced(case, per * applied, applied, float(per.size))


def keras_loss(case: Case) -> np.ndarray:
    """Keras: sample_weight = w[y] (argmax for soft labels); sum_over_batch_size divides by every position,
    by the unmasked ones with SparseCategoricalCrossentropy(ignore_class=); an empty mean is 0."""
    per, weight, mask = _softmax_parts(case)
    if case.labels is None and case.weight is not None:
        weight = np.asarray(case.weight)[np.argmax(case.soft_labels, axis=1)]
    applied = weight * _sample(case, per.shape) * mask
    sparse = case.labels is not None and not case.label_smoothing and case.ignore_index is not None
    count = float(mask.sum()) if sparse else float(per.size)
    if count == 0:
        return np.array(0.0)
    return _reduced(case, per * applied, applied, count)


def _bce(case: Case) -> np.ndarray:
    x = case.predictions
    z = np.asarray(case.targets, dtype=np.float64) * (1 - case.label_smoothing) + 0.5 * case.label_smoothing
    return np.maximum(x, 0) - x * z + np.log1p(np.exp(-np.abs(x)))


def optax_binary_loss(case: Case) -> np.ndarray:
    element = _bce(case) * (1.0 if case.weight is None else np.asarray(case.weight))
    return _reduced(case, element, np.ones(element.shape), float(element.size))


def keras_binary_loss(case: Case) -> np.ndarray:
    """Keras BinaryCrossentropy: the last axis averaged into one value per sample, then reduced."""
    values = _bce(case).mean(axis=-1)
    return _reduced(case, values, np.ones(values.shape), float(values.size))


def finite_difference(case: Case, formula: Callable[[Case], np.ndarray], h: float = 1e-5) -> np.ndarray:
    x = case.predictions
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        total = []
        for step in (h, -h):
            moved = x.copy()
            moved[index] += step
            total.append(float(np.sum(formula(replace(case, predictions=moved)))))
        grad[index] = (total[0] - total[1]) / (2 * h)
    return grad


SOFTMAX = {"jax": optax_loss, "jax:optax_generic": generic_loss, "jax:keras": keras_loss}
BINARY = {"jax": optax_binary_loss, "jax:keras": keras_binary_loss}
UNSUPPORTED = {
    ("binary_pos_weight", "jax"): "pos_weight",
    ("binary_pos_weight", "jax:keras"): "pos_weight",
    ("binary_weighted", "jax:keras"): "per-element weight",
}


def items() -> list:
    out = []
    for case in CASES:
        if case.id == "probs_zero":
            continue
        for key in BINARY if case.loss == "binary_cross_entropy" else SOFTMAX:
            out.append(pytest.param(case.id, key, id=f"{case.id}-{key}"))
    return out


@pytest.mark.parametrize("case_id, key", items())
def test_every_jax_variant_equals_its_documented_formula(runs, case_id, key):
    """Protects the loss and the jax.grad gradient of each variant: plain, weighted mean (/ positions),
    smoothing (optax.smooth_labels), ignore_index (where=: / non-ignored positions), ignore_class with
    sample weights, an all-ignored mean, soft labels, K-dim, the explicit reductions, binary, float64."""
    case, result = BY_ID[case_id], runs[case_id][key]
    base = case_id.split("[")[0]
    if (base, key) in UNSUPPORTED:
        assert result["status"] == "unsupported" and UNSUPPORTED[base, key] in result["message"]
        return
    assert result["status"] == "ok", result["message"]
    assert result["dtype"] == case.dtype
    formula = (BINARY if case.loss == "binary_cross_entropy" else SOFTMAX)[key]
    expected = formula(seen(case))
    got = np.asarray(result["loss"], dtype=np.float64)
    tolerance = TOLERANCE[case.dtype]
    if (key, case.loss, case.dtype) == ("jax:keras", "binary_cross_entropy", "float64"):
        tolerance = KERAS_JAX_MEAN  # Keras's ops.mean on JAX computes in float32 (pinned below)
    np.testing.assert_allclose(got.reshape(expected.shape), expected, **tolerance)
    if np.all(np.isfinite(expected)) and base != "all_ignored":
        grad = finite_difference(seen(case), formula)
        np.testing.assert_allclose(np.asarray(result["grad"], dtype=np.float64), grad, rtol=1e-5, atol=1e-6)


def test_mean_divides_by_positions_not_by_the_target_weights(runs):
    """Protects docs/jax.md's numbers: weighted mean = sum w[y] l / N (2x torch's weighted mean here)."""
    loss = float(runs["weighted[reduction=mean]"]["jax"]["loss"])
    total = float(runs["weighted[reduction=sum]"]["jax"]["loss"])
    assert loss == pytest.approx(total / 3, rel=1e-6)
    assert loss == pytest.approx(1.959822, rel=1e-6)


def test_where_mean_of_nothing_is_nan_and_the_masked_forms_give_zero(runs):
    """Protects the empty-mean conventions: jnp.mean(where=all False) is NaN (as torch), optax's
    one-hot form masked by hand divides 0 by N = 0, Keras's divide_no_nan gives 0."""
    results = runs["all_ignored"]
    assert np.isnan(results["jax"]["loss"])
    assert results["jax:optax_generic"]["loss"] == 0.0 and results["jax:keras"]["loss"] == 0.0


def test_declared_knobs_give_the_native_values(runs):
    """Protects the declared knob points: on these cases each ok result equals the reference model at
    its variant's knobs (what the documented-formula check and the explanations rely on)."""
    for case_id, results in runs.items():
        case = BY_ID[case_id]
        for key, result in results.items():
            if result["status"] != "ok" or case_id == "probs_zero":
                continue
            tolerance = TOLERANCE[case.dtype]
            if (key, case.loss, case.dtype) == ("jax:keras", "binary_cross_entropy", "float64"):
                tolerance = KERAS_JAX_MEAN
            got = np.asarray(result["loss"], dtype=np.float64)
            documented = np.asarray(result["documented"]["loss"], dtype=np.float64)
            np.testing.assert_allclose(got.reshape(documented.shape), documented, **tolerance, err_msg=f"{case_id} {key}")


def _fresh(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **runner.WORKER_ENV, "KERAS_BACKEND": "tensorflow"},
    )


@pytest.mark.parametrize("key", ["jax", "jax:keras"])
def test_snippet_runs_alone_and_imports_no_other_framework(runs, key):
    """Protects the shown code: pasted alone (even where KERAS_BACKEND says tensorflow) it gives the same
    loss, bit for bit (the same jitted program), and neither optax nor Keras on JAX imports tensorflow or
    torch into the process."""
    result = runs["ignore_class"][key]
    check = "\nimport sys\nprint(repr(float(loss)), 'tensorflow' in sys.modules, 'torch' in sys.modules)\n"
    done = _fresh(result["code"] + check)
    assert done.returncode == 0, done.stderr[-2000:]
    value, tf_loaded, torch_loaded = done.stdout.split()[-3:]
    assert float(value) == float(result["loss"])
    assert (tf_loaded, torch_loaded) == ("False", "False")


def test_run_torch_jax_reference_explains_the_denominator(tmp_path):
    """Protects the end-to-end path through the registry: `--frameworks torch,jax,reference` exits 0, jax
    is ok, and the explanation of jax against torch names the mean's denominator, with a recipe."""
    case_file = tmp_path / "weighted.yaml"
    case_file.write_text(
        "cases:\n  - id: weighted\n    logits: [[0.05, 0.95, 0], [0.1, 0.8, 0.1]]\n    labels: [1, 2]\n    weight: [1, 2, 3]\n"
        "    expect:\n      groups: [[torch, reference], [jax]]\n"
    )
    out = tmp_path / "results.json"
    done = subprocess.run(
        [sys.executable, "-m", "conformance", "run", str(case_file), "--frameworks", "torch,jax,reference", "--json", str(out)]
        + ["--html", str(tmp_path / "index.html")],
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    document = json.loads(out.read_text())
    assert {"jax", "jaxlib", "optax"} <= set(document["versions"])
    (case,) = document["cases"]
    assert case["results"]["jax"]["status"] == "ok"
    text = json.dumps(case["explanation"])
    assert "denominator" in text and "jax" in text and "torch" in text


def test_keras_on_jax_averages_binary_float64_in_float32(runs):
    """Protects docs/jax.md's Keras-on-JAX finding: BinaryCrossentropy(dtype="float64") is off by about
    3e-8 relative (a float32 mean over the last axis), where Keras on TensorFlow is exact to 1e-15."""
    case = BY_ID["binary[reduction=none]"]
    got = np.asarray(runs[case.id]["jax:keras"]["loss"], dtype=np.float64)
    expected = keras_binary_loss(seen(case))
    relative = np.max(np.abs(got - expected) / np.abs(expected))
    assert 1e-9 < relative < 2e-7, relative


def test_zero_probability_findings(runs):
    """Protects docs/jax.md's probability findings: Keras's SCCE on JAX renormalises then clips (gradient
    0.5 at the zero probability, where Keras on TensorFlow gives 0); jnp.log(p) into optax gives a NaN
    gradient there; optax.softmax_cross_entropy on one-hot labels, jitted, gives the finite loss of the
    Keras documentation's example (mean of -log 0.95 and -log 0.1 = 1.1769392): XLA computes
    `one_hot * log_softmax` as a select, so the 0 * -inf (NaN) of op-by-op dispatch never happens."""
    results = runs["probs_zero"]
    keras = results["jax:keras"]
    assert float(keras["loss"]) == pytest.approx(1.1769392, rel=1e-6)
    np.testing.assert_allclose(keras["grad"], [[0.5, (1 - 1 / 0.95) / 2, 0.5], [0.5, 0.5, -4.5]], rtol=1e-5)
    assert float(results["jax"]["loss"]) == pytest.approx(1.1769392, rel=1e-6) and np.isnan(results["jax"]["grad"][0][2])
    generic = float(results["jax:optax_generic"]["loss"])
    assert generic == pytest.approx((-np.log(0.95) - np.log(0.1)) / 2, rel=1e-6) and np.isnan(results["jax:optax_generic"]["grad"]).any()


COMPILES = """
import json, sys
import jax
from conformance import cases
from conformance.worker import Worker

compiles = []
def count(event, *args, **kwargs):
    if event.endswith("backend_compile_duration"):
        compiles.append(1)
jax.monitoring.register_event_duration_secs_listener(count)
worker = Worker("jax")
out = []
for i, case in enumerate(cases.load_text(sys.argv[1], "shapes.yaml")):
    if i == 8:
        worker.run.__self__.LIMIT = 5
    before = len(compiles)
    worker.answer(("case", i, case, ["jax", "jax:optax_generic"]))
    out.append([len(compiles) - before, worker.run.__self__.programs])
print(json.dumps(out))
"""


def test_a_shape_compiles_once_per_variant_and_the_programs_stay_bounded():
    """Protects the worker against compiling per case (issue 26: about 30 programs per case when the code
    ran op by op, a new jitted function per case compiles every case; memory grew with every shape). Counted
    by JAX's own compile events: a case of a new shape compiles one program per variant (the loss and its
    gradient), a case of a shape seen before (other values, the same knobs) compiles none; then, with the
    runner's limit at 5 programs, 6 more shapes x 2 variants never hold more than that."""
    rows = [f"- {{id: s{n}_{seed}, random: {{shape: [{n}, 4], seed: {seed}}}}}" for n in range(2, 6) for seed in range(2)]
    rows += [f"- {{id: s{n}, random: {{shape: [{n}, 4]}}}}" for n in range(6, 12)]
    spec = "defaults: {labels: random, weight: random, reduction: sum}\ncases:\n" + "\n".join(rows) + "\n"
    environment = {**os.environ, **runner.WORKER_ENV}
    done = subprocess.run([sys.executable, "-c", COMPILES, spec], check=False, capture_output=True, text=True, timeout=300, env=environment)
    assert done.returncode == 0, done.stderr[-2000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert [compiles for compiles, _ in seen] == [2, 0] * 4 + [2] * 6
    assert max(programs for _, programs in seen[8:]) <= 5
