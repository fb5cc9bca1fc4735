"""The forms users pass (issue 19) through every framework's real workers, against independent formulas.

One `Pipeline` (one worker per framework, module-scoped fixture) runs every case below; never import a
framework here (two of them in one process segfault). Expected values are float64 formulas written
here from each API's documentation (torch: the weighted mean divides by the sum of w[y]; Keras and
optax: by the number of positions; paddle's soft labels: the weight w.q of the smoothed label), on the
inputs rounded to their dtype, never taken from the package. The errors asserted are the frameworks'
own messages, as measured on the pinned versions (torch 2.13.0, paddlepaddle 3.3.1, tensorflow 2.21.0,
jax 0.10.2 / optax 0.2.8). The snippets of the new forms are run again, each alone in a fresh
namespace of one interpreter per framework, and must give the same loss.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conformance import adapters, cases, runner
from conformance.pipeline import Pipeline

# Every framework (torch, paddle, tensorflow, jax, reference), each variant whose form or value a test
# below reads (a JAX variant costs its tracing on every new case: the ones no test reads stay out, and
# tests/test_adapters_variants.py covers them).
PADDLE = [
    "paddle",
    "paddle:nll",
    "paddle:axis1",
    "paddle:label_smooth",
    "paddle:return_softmax",
    "paddle:smooth_recipe",
    "paddle:softmax_with_ce",
]
KEYS = ["torch", "torch:functional", "torch:nll", *PADDLE, "tensorflow", "tensorflow:cce", "tensorflow:nn", "tensorflow:nn_sparse"]
KEYS += ["tensorflow:v1", "jax", "jax:keras", "reference"]
ARTICLE = [[0.05, 0.95, 0.0], [0.1, 0.8, 0.1]]
KDIM = [[[0.1, 1.2], [0.5, -0.3], [2.0, 0.7]], [[-1.0, 0.4], [0.3, 0.9], [1.1, -0.6]]]  # (N, C, d1) = (2, 3, 2)
KDIM_LABELS = [[0, 1], [2, 0]]
CASES_YAML = f"""
cases:
  - id: trailing
    logits: {ARTICLE}
    labels: [[1], [2]]
    weight: [1, 2, 3]
    matrix: {{reduction: [none, mean]}}
  - id: trailing_kdim
    logits: {KDIM}
    labels: {[[[v] for v in row] for row in KDIM_LABELS]}
  - id: trailing_smoothing
    logits: {ARTICLE}
    labels: [[1], [2]]
    label_smoothing: 0.1
  - id: int32
    logits: {ARTICLE}
    labels: [1, 2]
    labels_dtype: int32
  - id: amp16
    logits: {ARTICLE}
    labels: [1, 2]
    weight: [1, 2, 3]
    dtype: {{logits: float16, weight: float32}}
  - id: amp64
    logits: {ARTICLE}
    labels: [1, 2]
    weight: [1, 2, 3]
    dtype: {{logits: float32, weight: float64}}
  - id: generated_probs
    random: {{shape: [4, 3], seed: 1, probabilities: true}}
    labels: random
    weight: random
  - id: bce_generated_probs
    loss: binary_cross_entropy
    random: {{shape: [4, 3], seed: 2, probabilities: true}}
    labels: random
    weight: random
  - id: bce_random_pos_weight
    loss: binary_cross_entropy
    random: {{shape: [4, 3], seed: 3}}
    labels: random
    pos_weight: random
  - id: empty_classes
    logits: [[], []]
    labels: [0, 0]
    reduction: none
  - id: empty_everything
    random: {{shape: [0, 0]}}
    labels: random
  - id: batch_mismatch
    logits: {ARTICLE}
    labels: [1, 2, 0]
    check_shapes: false
  - id: bce_rank_mismatch
    loss: binary_cross_entropy
    logits: [0.5, -1.0, 2.0, 0.0]
    labels: [[0], [1], [1], [0]]
    check_shapes: false
  - id: smoothing_weighted
    logits: {ARTICLE}
    labels: [1, 2]
    weight: [1, 2, 3]
    label_smoothing: 0.1
  - id: plain
    logits: {ARTICLE}
    labels: [1, 2]
    reduction: none
  - id: kdim_weighted
    logits: {KDIM}
    labels: {KDIM_LABELS}
    weight: [1, 2, 3]
  - id: kdim_smoothing
    logits: {KDIM}
    labels: {KDIM_LABELS}
    label_smoothing: 0.2
"""
CASES = {case.id: case for case in cases.load_text(CASES_YAML, "forms.yaml")}


@pytest.fixture(scope="module")
def records() -> dict[str, dict]:
    """case id -> its record as results.json writes it (results with their snippets, groups, expectation)."""
    with Pipeline(runner.plan([], KEYS)) as pipeline:
        return {case.id: record.to_json() for case, record in pipeline.records(list(CASES.values()))}


def result(records: dict, case_id: str, key: str) -> dict:
    return records[case_id]["results"][key]


def loss(records: dict, case_id: str, key: str) -> np.ndarray:
    found = result(records, case_id, key)
    assert found["status"] == "ok", f"{case_id} {key}: {found['message']}"
    return np.asarray(found["loss"], dtype=np.float64).reshape(-1)


# ---------------------------------------------------------------- independent float64 formulas


def f32(values: object) -> np.ndarray:
    return np.asarray(values, dtype=np.float32).astype(np.float64)


def log_softmax(x: np.ndarray) -> np.ndarray:
    """Along axis 1 (the class axis of the cases)."""
    z = x - x.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def per_position(x: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """-log softmax(x)[y] per position, (N, d1, ...) flattened."""
    lp = np.moveaxis(log_softmax(x), 1, -1).reshape(-1, x.shape[1])
    return -lp[np.arange(lp.shape[0]), np.asarray(labels).reshape(-1)]


def smoothed(x: np.ndarray, labels: np.ndarray, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """Per position H(q, p) with q = (1 - eps) onehot + eps / C (every framework's documented smoothing),
    and q itself (positions, C)."""
    c = x.shape[1]
    lp = np.moveaxis(log_softmax(x), 1, -1).reshape(-1, c)
    q = np.eye(c)[np.asarray(labels).reshape(-1)] * (1 - eps) + eps / c
    return -(q * lp).sum(axis=1), q


TORCH_MEAN = ("torch", "torch:functional", "torch:nll")  # / sum of w[y] (docs of CrossEntropyLoss, NLLLoss)
PADDLE_HARD = ("paddle", "paddle:axis1", "paddle:nll", "paddle:smooth_recipe")  # hard labels: torch's mean
POSITION_MEAN = ("tensorflow", "tensorflow:cce", "tensorflow:v1", "jax", "jax:keras")  # / N


# ---------------------------------------------------------------- labels with a trailing axis of 1


def test_trailing_axis_labels_reach_every_framework_and_give_each_its_documented_value(records):
    x, y, w = f32(ARTICLE), np.array([1, 2]), np.array([1.0, 2.0, 3.0])
    losses = per_position(x, y) * w[y]
    for key in TORCH_MEAN + PADDLE_HARD:
        np.testing.assert_allclose(loss(records, "trailing[reduction=mean]", key), losses.sum() / w[y].sum(), rtol=1e-6, err_msg=key)
    for key in POSITION_MEAN:
        np.testing.assert_allclose(loss(records, "trailing[reduction=mean]", key), losses.mean(), rtol=1e-6, err_msg=key)
    for key in TORCH_MEAN + PADDLE_HARD + ("tensorflow:nn", "jax"):
        np.testing.assert_allclose(loss(records, "trailing[reduction=none]", key), losses, rtol=1e-6, err_msg=key)


def test_trailing_axis_kdim_labels_give_the_plain_mean_everywhere(records):
    expected = per_position(f32(KDIM), np.array(KDIM_LABELS)).mean()
    ok = [k for k, r in records["trailing_kdim"]["results"].items() if r["status"] == "ok"]
    assert len(ok) == len(KEYS) - 1, ok  # all but label_smooth (no smoothing here)
    for key in ok:
        np.testing.assert_allclose(loss(records, "trailing_kdim", key), expected, rtol=1e-6, err_msg=key)


def test_each_framework_gets_trailing_axis_labels_as_its_users_pass_them(records):
    code = {k: r["code"] for k, r in records["trailing[reduction=mean]"]["results"].items()}
    assert "y = y.squeeze(-1)  # torch takes class indices without a trailing axis of 1" in code["torch"]
    assert "squeeze" not in code["paddle"] and "paddle.to_tensor(y)" in code["paddle"]  # paddle's own form, as given
    assert "labels = y  # as given" in code["tensorflow"] and "loss_fn(labels, inputs" in code["tensorflow"].replace("logits", "inputs")
    assert "y = y.squeeze(-1)" in code["tensorflow:nn"] and "y = y.squeeze(-1)" in code["jax"]
    assert "y = np.array([[1], [2]])" in code["paddle"]  # the snippet shows the labels as the case gives them


def test_paddle_smoothing_with_trailing_axis_labels_is_an_error_while_the_others_smooth(records):
    """paddle 3.3.1 smooths [N, 1] labels with label_smooth on the int64 labels and has no such kernel;
    [N] labels smooth fine (its one_hot path). A finding: the form paddle documents fails with smoothing."""
    for key in ("paddle", "paddle:axis1"):
        found = result(records, "trailing_smoothing", key)
        assert found["status"] == "error" and "label_smooth" in found["message"] and "int64" in found["message"], found
    per, _ = smoothed(f32(ARTICLE), np.array([1, 2]), 0.1)
    for key in ("torch", "paddle:smooth_recipe", "paddle:label_smooth", "tensorflow", "jax"):
        np.testing.assert_allclose(loss(records, "trailing_smoothing", key), per.mean(), rtol=1e-6, err_msg=key)


# ---------------------------------------------------------------- dtypes


def test_int32_labels_torch_refuses_them_and_the_others_take_them(records):
    for key in TORCH_MEAN:
        assert "expected target dtype to be Long" in result(records, "int32", key)["message"]
    assert "int32" in result(records, "int32", "paddle:nll")["message"]  # nll_loss reads its labels as int64
    expected = per_position(f32(ARTICLE), np.array([1, 2])).mean()
    for key in ("paddle", "paddle:axis1", "tensorflow", "tensorflow:nn_sparse", "jax", "jax:keras"):
        np.testing.assert_allclose(loss(records, "int32", key), expected, rtol=1e-6, err_msg=key)
    assert 'dtype="int32"' in result(records, "int32", "tensorflow")["code"]


def test_amp_float16_logits_with_float32_weights(records):
    """torch and paddle CPU raise (torch: mixed dtypes; paddle: no float16 kernel on CPU); Keras casts to
    its loss dtype (float16); optax promotes to float32; tf.nn's weights by hand raise on the mix."""
    assert "expected scalar type Half but found Float" in result(records, "amp16", "torch")["message"]
    assert "float16" in result(records, "amp16", "paddle")["message"] and "NotFound" in result(records, "amp16", "paddle")["message"]
    assert result(records, "amp16", "tensorflow:nn")["status"] == "error"
    x16 = np.asarray(ARTICLE, dtype=np.float16).astype(np.float64)
    y, w = np.array([1, 2]), np.array([1.0, 2.0, 3.0])
    expected = (per_position(x16, y) * w[y]).mean()  # Keras and optax: / the number of positions
    np.testing.assert_allclose(loss(records, "amp16", "tensorflow"), expected, rtol=1e-2)
    np.testing.assert_allclose(loss(records, "amp16", "jax"), expected, rtol=1e-3)
    assert result(records, "amp16", "tensorflow")["dtype"] == "float16"
    assert result(records, "amp16", "jax")["dtype"] == "float32"


def test_amp_float32_logits_with_float64_weights(records):
    assert "expected scalar type Float but found Double" in result(records, "amp64", "torch")["message"]
    y, w = np.array([1, 2]), np.array([1.0, 2.0, 3.0])
    losses = per_position(f32(ARTICLE), y) * w[y]
    np.testing.assert_allclose(loss(records, "amp64", "paddle"), losses.sum() / w[y].sum(), rtol=1e-6)
    assert result(records, "amp64", "paddle")["dtype"] == "float64"  # paddle promotes to the weight's dtype
    assert result(records, "amp64", "jax")["dtype"] == "float64" and result(records, "amp64", "tensorflow")["dtype"] == "float32"
    for key in ("tensorflow", "jax", "jax:keras"):
        np.testing.assert_allclose(loss(records, "amp64", key), losses.mean(), rtol=1e-6, err_msg=key)


# ---------------------------------------------------------------- generated weights and probabilities


def test_generated_probabilities_and_weights_match_the_formula_on_log_p(records):
    case = CASES["generated_probs"]
    logits = np.random.default_rng(1).standard_normal((4, 3))  # the documented draw of `random`
    p = f32(np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True))
    y = np.random.default_rng(2).integers(0, 3, 4)  # labels: random draws from seed + 1
    w = f32(np.random.default_rng(3).uniform(0.5, 2.0, 3))  # weight: random draws from seed + 2
    np.testing.assert_array_equal(case.labels, y)
    per = -np.log(p[np.arange(4), y]) * w[y]  # log p as given (the rows sum to 1: renormalising changes nothing)
    for key in ("torch", "torch:nll", "paddle", "paddle:nll", "reference"):  # / the sum of w[y]
        np.testing.assert_allclose(loss(records, "generated_probs", key), per.sum() / w[y].sum(), rtol=1e-6, err_msg=key)
    for key in ("tensorflow", "jax", "jax:keras"):  # Keras's sample_weight = w[y] and optax: / N
        np.testing.assert_allclose(loss(records, "generated_probs", key), per.mean(), rtol=1e-6, err_msg=key)


def test_generated_binary_probabilities_and_element_weights(records):
    logits = np.random.default_rng(2).standard_normal((4, 3))
    p = f32(1 / (1 + np.exp(-logits)))
    y = np.random.default_rng(3).integers(0, 2, (4, 3)).astype(np.float64)
    w = f32(np.random.default_rng(4).uniform(0.5, 2.0, (4, 3)))
    expected = (w * -(y * np.log(p) + (1 - y) * np.log(1 - p))).mean()  # torch BCELoss: mean over elements
    for key in ("torch", "torch:functional", "paddle", "reference"):
        np.testing.assert_allclose(loss(records, "bce_generated_probs", key), expected, rtol=1e-6, err_msg=key)


def test_generated_pos_weight_per_class(records):
    x = f32(np.random.default_rng(3).standard_normal((4, 3)))
    y = np.random.default_rng(4).integers(0, 2, (4, 3)).astype(np.float64)
    pw = f32(np.random.default_rng(6).uniform(0.5, 2.0, 3))
    softplus = np.log1p(np.exp(-np.abs(x))) + np.maximum(-x, 0)
    expected = ((1 - y) * x + (1 + (pw - 1) * y) * softplus).mean()  # torch BCEWithLogitsLoss docs, mean over elements
    for key in ("torch", "paddle", "tensorflow:nn", "reference"):
        np.testing.assert_allclose(loss(records, "bce_random_pos_weight", key), expected, rtol=1e-6, err_msg=key)


# ---------------------------------------------------------------- empty class axis, empty batch


def test_an_empty_class_axis(records):
    """C = 0: no class, so every label is out of range. torch raises; Keras's categorical form and the
    model give per-position sums over nothing (0); optax's integer-label form gives -inf (a finding)."""
    assert "Target 0 is out of bounds" in result(records, "empty_classes", "torch")["message"]
    for key in ("tensorflow:cce", "tensorflow:nn", "jax:keras", "reference"):
        np.testing.assert_array_equal(loss(records, "empty_classes", key), [0.0, 0.0], err_msg=key)
    np.testing.assert_array_equal(loss(records, "empty_classes", "jax"), [-np.inf, -np.inf])
    assert "Must have at least one class" in result(records, "empty_classes", "tensorflow")["message"]
    paddle = result(records, "empty_classes", "paddle")  # its values would be memory it never wrote: not run, saying so
    assert paddle["status"] == "unsupported" and "memory it never wrote" in paddle["message"]
    nll = result(records, "empty_classes", "paddle:nll")  # nll_loss refuses the call: its own error is the finding
    assert nll["status"] == "error" and nll["message"].startswith("ValueError: Expected 1 or more classes"), nll["message"]


MEMORY_READERS = {"paddle", "paddle:axis1", "paddle:softmax_with_ce", "paddle:return_softmax"}


@pytest.mark.parametrize(
    ("text", "guarded"),
    [
        ("labels: [0, 0]", MEMORY_READERS),
        ("labels: [0, 0], label_smoothing: 0.1", set()),
        ("soft_labels: [[], []]", MEMORY_READERS),
    ],
    ids=["class-indices", "smoothed", "soft-labels"],
)
def test_at_no_class_paddle_runs_the_calls_that_refuse_it_and_not_those_that_read_memory(text, guarded):
    """Protects the C = 0 guard's reach (measured on paddle 3.3.1, every reduction, 3 runs each): nll_loss
    raises "Expected 1 or more classes" and one_hot refuses a depth of 0 (the one_hot recipe; label
    smoothing on class indices starts with it), so those run and their errors are the finding;
    CrossEntropyLoss, cross_entropy(axis=1) and softmax_with_cross_entropy on class indices return memory
    they never wrote (other values each run): those, and soft labels as before, say so and do not run."""
    [case] = cases.load_text(f"cases:\n  - {{id: c0, logits: [[], []], {text}, reduction: none}}\n", "c0.yaml")
    not_run: set[str] = set()
    for variant in adapters.for_case(adapters.variants("paddle"), case):
        try:
            variant.build(case)
        except adapters.Unsupported as exc:
            if "memory it never wrote" in str(exc):
                not_run.add(variant.key)
    assert not_run == guarded


def test_an_empty_batch_of_no_classes_is_nan_in_torch_as_an_empty_mean(records):
    for key in ("torch", "paddle", "jax", "reference"):
        assert np.isnan(loss(records, "empty_everything", key)).all(), key


# ---------------------------------------------------------------- shapes mismatched on purpose


def test_mismatched_batch_every_framework_raises_and_the_expectation_holds(records):
    record = records["batch_mismatch"]
    assert record["expectation"] == "met", record["expectation_message"]
    statuses = {k: r["status"] for k, r in record["results"].items()}
    assert set(statuses.values()) <= {"error", "unsupported"} and statuses["torch"] == "error"
    assert "batch_size" in record["results"]["torch"]["message"]
    assert "documented" not in record["results"]["torch"] and record["groups"] == []


def test_a_framework_that_broadcasts_mismatched_shapes_is_the_finding(records):
    """BCE on logits (4,) and targets (4, 1): torch, paddle and tf.nn raise; optax broadcasts silently to
    (4, 4), and Keras's BinaryCrossentropy takes it: status ok where the others raise."""
    record = records["bce_rank_mismatch"]
    assert record["expectation"] == "violated"
    message = record["expectation_message"]
    assert "jax is ok, expected error" in message and "tensorflow is ok, expected error" in message
    assert "torch" not in message.replace("torch:", "") and "paddle is" not in message
    assert np.asarray(result(records, "bce_rank_mismatch", "jax")["loss"]).shape == ()
    assert result(records, "bce_rank_mismatch", "tensorflow:nn")["status"] == "error"


# ---------------------------------------------------------------- paddle's variants


def test_paddle_nll_loss_over_log_softmax(records):
    x, w = f32(KDIM), np.array([1.0, 2.0, 3.0])
    y = np.array(KDIM_LABELS).reshape(-1)
    losses = per_position(x, y) * w[y]
    np.testing.assert_allclose(loss(records, "kdim_weighted", "paddle:nll"), losses.sum() / w[y].sum(), rtol=1e-6)
    np.testing.assert_allclose(loss(records, "plain", "paddle:nll"), per_position(f32(ARTICLE), np.array([1, 2])), rtol=1e-6)
    assert (
        "paddle.nn.functional.nll_loss(paddle.nn.functional.log_softmax(logits, axis=1)" in result(records, "plain", "paddle:nll")["code"]
    )


def test_paddle_axis_1_on_channels_first_inputs(records):
    x, w = f32(KDIM), np.array([1.0, 2.0, 3.0])
    y = np.array(KDIM_LABELS).reshape(-1)
    losses = per_position(x, y) * w[y]
    np.testing.assert_allclose(loss(records, "kdim_weighted", "paddle:axis1"), losses.sum() / w[y].sum(), rtol=1e-6)
    code = result(records, "kdim_weighted", "paddle:axis1")["code"]
    assert "axis=1" in code and "moveaxis" not in code
    found = result(records, "kdim_smoothing", "paddle:axis1")  # smoothing with axis=1: paddle's one_hot takes the wrong axis
    assert found["status"] == "error" and "Illegal index value" in found["message"]


def test_paddle_return_softmax_checks_the_softmax_and_notes_it(records):
    found = result(records, "plain", "paddle:return_softmax")
    np.testing.assert_allclose(loss(records, "plain", "paddle:return_softmax"), per_position(f32(ARTICLE), np.array([1, 2])), rtol=1e-6)
    assert found["message"].startswith("return_softmax: the softmax is within ")
    assert float(found["message"].split("within ")[1].split()[0]) <= 1e-6
    assert "return_softmax=True" in found["code"]


def test_paddle_label_smooth_with_prior_dist_gives_the_smoothed_targets_of_the_others(records):
    """Unweighted, every framework's smoothing is (1 - eps) onehot + eps / C: paddle's label_smooth with a
    uniform prior_dist agrees with torch and Keras. Weighted, paddle weighs by w.q of the smoothed label."""
    per, q = smoothed(f32(ARTICLE), np.array([1, 2]), 0.1)
    np.testing.assert_allclose(loss(records, "trailing_smoothing", "paddle:label_smooth"), per.mean(), rtol=1e-6)
    w = np.array([1.0, 2.0, 3.0])
    expected = (per * (q @ w)).sum() / (q @ w).sum()
    for key in ("paddle", "paddle:smooth_recipe", "paddle:label_smooth"):
        np.testing.assert_allclose(loss(records, "smoothing_weighted", key), expected, rtol=1e-6, err_msg=key)
    assert "prior_dist=prior" in result(records, "smoothing_weighted", "paddle:label_smooth")["code"]


def test_the_new_variants_agree_with_their_documented_formulas(records):
    for case_id, keys in {
        "kdim_weighted": ("paddle:nll", "paddle:axis1"),
        "plain": ("paddle:return_softmax", "paddle:nll"),
        "smoothing_weighted": ("paddle:label_smooth",),
    }.items():
        for key in keys:
            assert result(records, case_id, key)["documented"]["agrees"], (case_id, key)


# ---------------------------------------------------------------- snippets of the new forms, on their own

SNIPPETS = {
    "torch": [
        ("trailing[reduction=mean]", "torch"),
        ("generated_probs", "torch:nll"),
        ("bce_random_pos_weight", "torch"),
        ("empty_everything", "torch"),
    ],
    "paddle": [
        ("trailing[reduction=mean]", "paddle"),
        ("kdim_weighted", "paddle:nll"),
        ("kdim_weighted", "paddle:axis1"),
        ("plain", "paddle:return_softmax"),
        ("smoothing_weighted", "paddle:label_smooth"),
        ("amp64", "paddle"),
    ],
    "tensorflow": [("trailing[reduction=mean]", "tensorflow"), ("int32", "tensorflow:nn_sparse"), ("empty_classes", "tensorflow:cce")],
    "jax": [("trailing[reduction=mean]", "jax"), ("amp16", "jax"), ("empty_classes", "jax")],
}
RUN_EACH = """
import json, sys
import numpy as np
out = []
for code in json.load(sys.stdin):
    scope = {}
    exec(code, scope)
    value = scope["loss"].detach() if hasattr(scope["loss"], "detach") else scope["loss"]
    out.append(np.asarray(value.numpy() if hasattr(value, "numpy") else value, dtype=np.float64).tolist())
print(json.dumps(out))
"""


@pytest.mark.parametrize("framework", list(SNIPPETS))
def test_snippets_of_the_new_forms_reproduce_their_values(records, framework):
    """Each snippet in a fresh namespace (one interpreter per framework, so one import of it)."""
    chosen = SNIPPETS[framework]
    codes = [result(records, case_id, key)["code"] for case_id, key in chosen]
    done = subprocess.run(
        [sys.executable, "-c", RUN_EACH],
        input=json.dumps(codes),
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **runner.WORKER_ENV},
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    values = json.loads(done.stdout.strip().splitlines()[-1])
    for (case_id, key), value in zip(chosen, values, strict=True):
        np.testing.assert_allclose(np.asarray(value).reshape(-1), loss(records, case_id, key), rtol=1e-6, err_msg=f"{case_id} {key}")


def test_arrays_are_handed_over_in_their_own_dtypes():
    amp = adapters.arrays(CASES["amp16"])
    assert (amp["x"].dtype, amp["w"].dtype, amp["y"].dtype) == (np.float16, np.float32, np.int64)
    assert adapters.arrays(CASES["int32"])["y"].dtype == np.int32
    assert adapters.arrays(CASES["trailing[reduction=mean]"])["y"].shape == (2, 1)
