"""The sigmoid focal loss family (`conformance/losses/sigmoid_focal/`): its float64 model, its case keys,
and every variant through the real worker processes.

Expected values come from plain float64 loops written here from each API's documentation, never from the
family's model or its variants: torchvision's `sigmoid_focal_loss` source (its published formula; paddle's
and optax's docstrings give the same one: alpha_t (1 - p_t)^gamma BCE-with-logits per element, optax with
alpha None for no balancing, paddle dividing by `normalizer`), and Keras's `binary_focal_crossentropy`
source (p_t from sigmoid(x), BCE of p clipped to [epsilon, 1 - epsilon] for probabilities, the mean over
the last axis, then sample_weight and the reduction). Gradients are checked against a central finite
difference of the same loop. The documented examples are the numbers printed in Keras's
BinaryFocalCrossentropy docstring and in paddle's sigmoid_focal_loss docstring.

Never import torch, paddle, tensorflow or jax here: the frameworks run in their workers (one runner.run,
module-scoped fixture).
"""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
from test_reference_binary import as_seen, finite_difference, indices, keras_bounds, sigmoid

from conformance import cases, cli, explain, reference, runner
from conformance.cases import Case
from conformance.errors import CaseError
from conformance.losses import sigmoid_focal as family
from conformance.losses.sigmoid_focal import jax as jax_variants
from conformance.losses.sigmoid_focal import paddle as paddle_variants
from conformance.losses.sigmoid_focal import tensorflow as tf_variants
from conformance.losses.sigmoid_focal import torch as torch_variants

FOCAL = "sigmoid_focal"
LOGITS = [[0.5, -1.0, 2.0], [0.1, 1.5, -0.7]]
LABELS = [[1, 0, 0], [0, 1, 1]]
KDIM = [[[0.5, -1.0], [2.0, 0.1], [1.5, -0.7]], [[-0.3, 0.8], [1.1, -2.0], [0.4, 0.9]]]
KDIM_LABELS = [[[1, 0], [0, 1], [1, 1]], [[0, 0], [1, 0], [0, 1]]]
SATURATED = [[-30.0, 30.0, 100.0, -100.0], [20.0, -20.0, 0.5, -1.0]]
SATURATED_LABELS = [[1, 0, 0, 1], [1, 0, 1, 0]]
KERAS_EXAMPLE = [[-18.6, 0.51], [2.94, -12.8]]
KERAS_EXAMPLE_LABELS = [[0, 1], [0, 0]]
TOLERANCE = {"float32": {"rtol": 1e-5, "atol": 1e-6}, "float64": {"rtol": 1e-7, "atol": 1e-8}}


def make(**spec: object) -> Case:
    """One focal case through the real case-file loader (JSON is YAML)."""
    spec = {"id": "c", "loss": FOCAL, "dtype": "float64", **spec}
    return cases.load_text(json.dumps({"cases": [spec]}), "focal.yaml")[0]


# ---------------------------------------------------------------- the APIs' formulas, as plain loops


def target(case: Case, i: tuple[int, ...]) -> float:
    """Keras's smoothing towards 0.5 (the others apply the same transform by hand)."""
    eps = case.label_smoothing
    return float(case.targets[i]) * (1.0 - eps) + 0.5 * eps


def bce_with_logits(x: float, z: float) -> float:
    return max(x, 0.0) - x * z + math.log1p(math.exp(-abs(x)))


def torchvision_element(case: Case, i: tuple[int, ...]) -> float:
    """torchvision/ops/focal_loss.py: p = sigmoid(x); ce = BCE-with-logits; p_t = p z + (1 - p)(1 - z);
    loss = ce (1 - p_t)^gamma; alpha >= 0: times alpha z + (1 - alpha)(1 - z)."""
    x, z = float(case.predictions[i]), target(case, i)
    p = sigmoid(x)
    p_t = p * z + (1 - p) * (1 - z)
    loss = bce_with_logits(x, z) * (1 - p_t) ** case.gamma
    if case.alpha is not None:
        loss *= case.alpha * z + (1 - case.alpha) * (1 - z)
    return loss


def elementwise_loop(case: Case) -> np.ndarray:
    """torch (torchvision), paddle (normalizer native) and optax: one value per element; per-sample
    weights by hand; `mean` over every element."""
    shape = case.predictions.shape
    values = {}
    for i in indices(shape):
        weight = 1.0 if case.sample_weight is None else float(case.sample_weight[i[0]])
        values[i] = torchvision_element(case, i) * weight / (case.normalizer or 1.0)
    if case.reduction == "none":
        return np.array([values[i] for i in indices(shape)]).reshape(shape)
    total = math.fsum(values.values())
    return np.array(total / len(values) if case.reduction == "mean" else total)


def keras_loop(case: Case, clip_logits: bool) -> np.ndarray:
    """keras/src/losses/losses.py binary_focal_crossentropy: y_pred = sigmoid(x) from logits; bce =
    backend binary_crossentropy(z, y_pred) (p clipped to [epsilon, 1 - epsilon]; on the TensorFlow backend
    from logits, the logits behind the sigmoid: no clip); p_t from the unclipped y_pred; focal factor;
    class balancing; mean over the last axis; then sample_weight and sum_over_batch_size / sum / none."""
    lo, hi = keras_bounds(case.dtype)
    shape = case.predictions.shape
    per_sample = {}
    for row in indices(shape[:-1]):
        terms = []
        for last in range(shape[-1]):
            i = (*row, last)
            v, z = float(case.predictions[i]), target(case, i)
            p = sigmoid(v) if case.from_logits else v
            if case.from_logits and not clip_logits:
                bce = bce_with_logits(v, z)
            else:
                c = min(max(p, lo), hi)
                bce = -(z * math.log(c) + (1 - z) * math.log(1 - c))
            p_t = z * p + (1 - z) * (1 - p)
            term = (1 - p_t) ** case.gamma * bce
            if case.alpha is not None:
                term *= z * case.alpha + (1 - z) * (1 - case.alpha)
            terms.append(term)
        weight = 1.0 if case.sample_weight is None else float(case.sample_weight[row[0]])
        per_sample[row] = math.fsum(terms) / len(terms) * weight / (case.normalizer or 1.0)
    if case.reduction == "none":
        return np.array([per_sample[r] for r in indices(shape[:-1])]).reshape(shape[:-1])
    total = math.fsum(per_sample.values())
    return np.array(total / len(per_sample) if case.reduction == "mean" else total)


def paddle_defaults_loop(case: Case) -> np.ndarray:
    """paddle's docstring defaults, alpha 0.25 and reduction 'sum', whatever the case asks."""
    return elementwise_loop(replace(case, reduction="sum", extra={**case.extra, "alpha": 0.25}))


def keras_alpha_alone_loop(case: Case) -> np.ndarray:
    """Keras's docstring: without apply_class_balancing=True alpha is not used."""
    return keras_loop(replace(case, extra={**case.extra, "alpha": None}), clip_logits=False)


LOOPS = {
    "torch": elementwise_loop,
    "paddle": elementwise_loop,
    "paddle:defaults": paddle_defaults_loop,
    "tensorflow": lambda case: keras_loop(case, clip_logits=False),
    "tensorflow:functional": lambda case: keras_loop(case, clip_logits=False),
    "tensorflow:alpha_alone": keras_alpha_alone_loop,
    "jax": elementwise_loop,
    "jax:keras": lambda case: keras_loop(case, clip_logits=True),
}
DOCUMENTED = {
    "torch": torch_variants.documented,
    "paddle": paddle_variants.documented,
    "paddle:defaults": paddle_variants.defaults_documented,
    "tensorflow": tf_variants.keras_documented,
    "tensorflow:functional": tf_variants.keras_documented,
    "tensorflow:alpha_alone": tf_variants.alpha_alone_documented,
    "jax": jax_variants.optax_documented,
    "jax:keras": jax_variants.keras_jax_documented,
}
LOGITS_ONLY = ("torch", "paddle", "paddle:defaults", "jax")

SPECS: list[dict] = [
    {"id": "plain", "logits": LOGITS, "labels": LABELS, "matrix": {"reduction": ["none", "mean", "sum"], "alpha": [None, 0.25]}},
    {"id": "gamma", "logits": LOGITS, "labels": LABELS, "alpha": 0.75, "matrix": {"gamma": [0, 0.5, 3]}},
    {"id": "soft", "logits": LOGITS, "soft_labels": [[0.0, 0.3, 1.0], [0.5, 0.9, 0.05]], "alpha": 0.25, "gamma": 1.5, "reduction": "sum"},
    {
        "id": "options",
        "logits": LOGITS,
        "labels": LABELS,
        "sample_weight": [1.0, 2.0],
        "normalizer": 2,
        "label_smoothing": 0.1,
        "alpha": 0.75,
        "matrix": {"reduction": ["none", "mean", "sum"]},
    },
    {"id": "kdim", "logits": KDIM, "labels": KDIM_LABELS, "sample_weight": [0.5, 2.0], "alpha": 0.25, "reduction": "none"},
    {"id": "one_d", "logits": [0.5, -1.0, 2.0, -0.3], "labels": [1, 0, 0, 1], "matrix": {"reduction": ["none", "sum"]}},
    {"id": "saturated", "logits": SATURATED, "labels": SATURATED_LABELS, "alpha": 0.25, "reduction": "sum"},
    {"id": "probs", "probs": [[0.3, 0.6, 0.9], [0.2, 0.5, 0.75]], "labels": LABELS, "alpha": 0.25, "reduction": "none"},
    {"id": "probs_edges", "probs": [[0.0, 1.0, 0.3], [1.0, 0.0, 0.2]], "labels": [[0, 1, 0], [1, 0, 1]]},
]


def model_cases() -> list[Case]:
    out = []
    for spec in SPECS:
        out += cases.load_text(json.dumps({"cases": [{"loss": FOCAL, "dtype": "float64", **spec}]}), "focal.yaml")
    return out


MODEL_CASES = model_cases()


def unsupported(key: str, case: Case) -> str | None:
    """What the variant's `unsupported` message says for the case, if it cannot take it."""
    if key in LOGITS_ONLY and not case.from_logits:
        return "takes logits"
    if key == "paddle:defaults" and case.sample_weight is not None:
        return "per-sample weights"
    if key == "tensorflow:alpha_alone" and case.alpha is None:
        return "no alpha"
    return None


def paddle_raises(key: str, case: Case) -> bool:
    """paddle reads its input as [N, *]: a 1-D batch raises ValueError (a finding)."""
    return key.startswith("paddle") and case.predictions.ndim < 2


def applicable(key: str, case: Case) -> bool:
    return unsupported(key, case) is None and not paddle_raises(key, case)


# ---------------------------------------------------------------- the model against the loops


@pytest.mark.parametrize("key", list(LOOPS))
@pytest.mark.parametrize("case", MODEL_CASES, ids=lambda c: c.id)
def test_model_at_each_documented_point_equals_the_apis_loop(case, key):
    """Protects the knob model and each variant's declared point: the float64 model at the point a
    variant declares gives its API's loop, and the model's analytic gradient the loop's finite
    difference (smooth points: not where Keras clips or at the edges of probabilities)."""
    if not applicable(key, case):
        pytest.skip("the API does not take this case")
    outcome = reference.evaluate(case, DOCUMENTED[key](case))
    loop = LOOPS[key]
    expected = loop(case)
    np.testing.assert_allclose(np.asarray(outcome.loss).reshape(expected.shape), expected, rtol=1e-12, atol=1e-13)
    if case.id.startswith(("saturated", "probs_edges")):
        return
    np.testing.assert_allclose(outcome.grad, finite_difference(case, loop), rtol=1e-6, atol=1e-9)


def test_textbook_point_is_the_published_formula_with_the_cases_alpha():
    case = make(logits=LOGITS, labels=LABELS, alpha=0.25, gamma=3)
    np.testing.assert_allclose(reference.evaluate(case, reference.textbook(case)).loss, elementwise_loop(case), rtol=1e-13)


@pytest.mark.parametrize(
    "inputs",
    [
        {"logits": SATURATED, "labels": SATURATED_LABELS},
        {"logits": LOGITS, "soft_labels": [[0.0, 0.3, 1.0], [0.5, 0.9, 0.05]], "label_smoothing": 0.2},
        {"probs": [[0.3, 0.6, 0.9], [0.2, 0.5, 0.75]], "labels": LABELS, "sample_weight": [0.5, 2.0]},
        {"logits": KDIM, "labels": KDIM_LABELS, "reduction": "none"},
    ],
)
def test_gamma_zero_without_alpha_is_the_binary_cross_entropy_reference(inputs):
    """Protects the family's reduction to binary cross-entropy: gamma 0, no alpha gives the binary family's
    textbook loss and gradient (its own module, its own formula) on the same inputs."""
    focal = make(**inputs, gamma=0)
    spec = {"id": "b", "loss": "binary_cross_entropy", "dtype": "float64", **inputs}
    binary = cases.load_text(json.dumps({"cases": [spec]}), "b.yaml")[0]
    mine, theirs = reference.evaluate(focal, reference.textbook(focal)), reference.evaluate(binary, reference.textbook(binary))
    np.testing.assert_allclose(mine.loss, theirs.loss, rtol=1e-13, atol=0)
    np.testing.assert_allclose(mine.grad, theirs.grad, rtol=1e-12, atol=1e-300)


# Keras's BinaryFocalCrossentropy docstring (keras 3.15.1): (alpha, gamma, reduction, sample_weight, printed).
KERAS_PRINTED = [
    (None, 3, "mean", None, "0.647"),
    (0.25, 3, "mean", None, "0.482"),
    (None, 3, "mean", [0.8, 0.2], "0.133"),
    (0.25, 3, "mean", [0.8, 0.2], "0.097"),
    (None, 4, "sum", None, "1.222"),
    (0.25, 4, "sum", None, "0.914"),
    (None, 5, "none", None, ["0.0017", "1.1561"]),
    (0.25, 5, "none", None, ["0.0004", "0.8670"]),
]


def assert_printed(got: np.ndarray, printed: str | list[str]) -> None:
    """Each value within one unit of the last printed digit."""
    for value, text in zip(np.ravel(got), [printed] if isinstance(printed, str) else printed, strict=True):
        unit = 10.0 ** -len(text.split(".")[1])
        assert abs(value - float(text)) <= unit, (value, text)


@pytest.mark.parametrize("alpha, gamma, reduction, weights, printed", KERAS_PRINTED)
def test_keras_point_reproduces_the_keras_docstring_example(alpha, gamma, reduction, weights, printed):
    spec = {"logits": KERAS_EXAMPLE, "labels": KERAS_EXAMPLE_LABELS, "gamma": gamma, "reduction": reduction, "dtype": "float32"}
    case = make(**spec, **({"alpha": alpha} if alpha is not None else {}), **({"sample_weight": weights} if weights else {}))
    assert_printed(reference.evaluate(case, tf_variants.keras_documented(case)).loss, printed)


def test_keras_1d_example_and_paddle_example_at_their_points():
    """Keras example 1 (a batch of 4, 1-D: Keras averages it into one value) and paddle's example
    (its defaults alpha 0.25, 'sum', normalizer = 2 positives: 0.65782464)."""
    keras = {"logits": [-18.6, 0.51, 2.94, -12.8], "labels": [0, 1, 0, 0], "dtype": "float32"}
    for extra, printed in (({}, "0.691"), ({"alpha": 0.25}, "0.51")):
        case = make(**keras, **extra)
        assert_printed(reference.evaluate(case, tf_variants.keras_documented(case)).loss, printed)
    case = make(logits=[[0.97, 0.91, 0.03], [0.55, 0.43, 0.71]], labels=[[1, 0, 0], [0, 1, 0]], alpha=0.25, normalizer=2, reduction="sum")
    assert abs(float(reference.evaluate(case, paddle_variants.documented(case)).loss) - 0.65782464) < 4 * 6e-8


def test_knobs_name_the_keras_backends_clip_and_the_balancing():
    """Protects the explanations: Keras on JAX against Keras on TensorFlow differs by `sigmoid_clip` alone
    on saturated logits (-log(1e-7) = 16.1 instead of 30 for a logit of -30 at label 1); an API that drops
    alpha differs by `balancing`."""
    case = make(logits=SATURATED, labels=SATURATED_LABELS, dtype="float32")
    tf_point, jax_point = tf_variants.keras_documented(case), jax_variants.keras_jax_documented(case)
    found = explain.knob_differences(case, tf_point, jax_point)
    assert [(k.knob, k.a, k.b) for k in found] == [("sigmoid_clip", False, True)]
    assert found[0].effect > 1.0
    balanced = make(logits=LOGITS, labels=LABELS, alpha=0.25)
    point = torch_variants.documented(balanced)
    dropped = explain.knob_differences(balanced, point, point.switched("balancing", None))
    assert [(k.knob, k.a, k.b) for k in dropped] == [("balancing", 0.25, None)] and dropped[0].effect > 0
    assert "no class balancing" in explain._phrase("balancing", None)


@pytest.mark.parametrize("reduction, moves", [("mean", False), ("sum", True), ("none", None)])
def test_averaging_the_last_axis_moves_only_sum_and_none(reduction, moves):
    """Protects the explanations of mean cases: Keras's mean of per-sample means is the elementwise mean,
    so `last_axis_mean` has no effect there (an explanation then points at the off-doc result instead of a
    knob); on `sum` it has, and on `none` the shapes differ (no effect to measure)."""
    case = make(logits=LOGITS, labels=LABELS, alpha=0.25, sample_weight=[0.5, 2.0], reduction=reduction)
    found = explain.knob_differences(case, torch_variants.documented(case), tf_variants.keras_documented(case))
    (axis,) = [k for k in found if k.knob == "last_axis_mean"]
    assert axis.effect is None if moves is None else (axis.effect > 0) is moves


# ---------------------------------------------------------------- case keys


@pytest.mark.parametrize(
    "extra, key, words",
    [
        ({"gamma": -1}, "gamma", "gamma must be a finite number >= 0"),
        ({"alpha": 1.5}, "alpha", "alpha must be a number in [0, 1]"),
        ({"alpha": False}, "alpha", "boolean"),
        ({"normalizer": 0}, "normalizer", "normalizer must be a finite number > 0"),
        ({"weight": [1, 2, 3]}, "weight", "sample_weight"),
        ({"ignore_index": 0}, "ignore_index", "no ignore_index"),
        ({"reduction": "sum_over_batch_size"}, "reduction", "none, mean or sum"),
        ({"labels": [[1, 0, 2], [0, 1, 1]]}, "labels", "0 or 1"),
        ({"labels": [[1, 0], [0, 1]]}, "labels", "shape"),
        ({"pos_weight": [1, 2, 3]}, "pos_weight", "alpha"),
    ],
)
def test_a_bad_key_is_a_case_error_naming_it(extra, key, words):
    text = json.dumps({"cases": [{"id": "c", "loss": FOCAL, "logits": LOGITS, "labels": LABELS, **extra}]})
    with pytest.raises(CaseError) as err:
        cases.load_text(text, "focal.yaml")
    assert err.value.key.startswith(key) and words in err.value.message, err.value.message


def test_another_familys_case_with_gamma_names_the_key():
    text = json.dumps({"cases": [{"id": "c", "loss": "binary_cross_entropy", "logits": LOGITS, "labels": LABELS, "gamma": 2}]})
    with pytest.raises(CaseError) as err:
        cases.load_text(text, "b.yaml")
    assert err.value.key == "gamma" and FOCAL in err.value.message


def test_cli_exits_2_with_one_paragraph_for_a_bad_focal_case(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(f"cases:\n  - id: c\n    loss: {FOCAL}\n    logits: [[0.5]]\n    labels: [[1]]\n    alpha: 2\n", encoding="utf-8")
    assert cli.main(["run", str(path), "--json", str(tmp_path / "r.json"), "--html", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml:6" in err and "alpha" in err and "Traceback" not in err


def test_defaults_and_variants_per_framework():
    case = make(logits=LOGITS, labels=LABELS)
    assert (case.gamma, case.alpha, case.normalizer) == (2.0, None, None)
    assert [v.key for v in family.variants("jax")] == ["jax", "jax:keras"]
    assert family.variants("numpy") == []  # a framework this package has no module for


def test_generated_source_regenerates_the_generated_arrays():
    """A `random` case's snippet rebuilds its arrays from the seed: the lines give what `build` drew."""
    case = make(random={"shape": [2, 3, 2], "seed": 4, "scale": 2.0}, labels="random")
    scope: dict = {"np": np}
    for lines in family.generated_source(case).values():
        exec("\n".join(lines), scope)
    np.testing.assert_array_equal(scope["x"], case.predictions)
    np.testing.assert_array_equal(scope["y"], case.labels)


def test_the_fuzzer_strategy_draws_loadable_cases():
    from hypothesis import HealthCheck, given, settings

    @settings(max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(family.strategy())
    def loads(spec):
        (case,) = cases.load_text(json.dumps({"cases": [spec]}), "fuzz.yaml")
        assert case.loss == FOCAL
        reference.evaluate(case, reference.textbook(case))

    loads()


# ---------------------------------------------------------------- the real frameworks


WORKER_SPECS: list[dict] = [
    {"id": "w_plain", "logits": LOGITS, "labels": LABELS, "matrix": {"reduction": ["none", "mean", "sum"], "alpha": [None, 0.25]}},
    {
        "id": "w_options",
        "logits": LOGITS,
        "soft_labels": [[0.0, 0.3, 1.0], [0.5, 0.9, 0.05]],
        "sample_weight": [1.0, 2.0],
        "normalizer": 2,
        "label_smoothing": 0.1,
        "gamma": 1.5,
        "alpha": 0.75,
        "matrix": {"dtype": ["float32", "float64"]},
    },
    {"id": "w_kdim", "logits": KDIM, "labels": KDIM_LABELS, "alpha": 0.25, "gamma": 0.5, "reduction": "sum"},
    {"id": "w_one_d", "logits": [0.5, -1.0, 2.0, -0.3], "labels": [1, 0, 0, 1], "reduction": "none"},
    {"id": "w_saturated", "logits": SATURATED, "labels": SATURATED_LABELS, "reduction": "sum"},
    {"id": "w_probs", "probs": [[0.3, 0.6, 0.9], [0.2, 0.5, 0.75]], "labels": LABELS, "alpha": 0.25},
    {
        "id": "w_paddle_example",
        "logits": [[0.97, 0.91, 0.03], [0.55, 0.43, 0.71]],
        "labels": [[1, 0, 0], [0, 1, 0]],
        "alpha": 0.25,
        "normalizer": 2,
        "reduction": "sum",
    },
]
WORKER_CASES = cases.load_text(json.dumps({"cases": [{"loss": FOCAL, **s} for s in WORKER_SPECS]}), "focal_workers.yaml")
BY_ID = {case.id: case for case in WORKER_CASES}


@pytest.fixture(scope="module")
def runs() -> dict[str, dict[str, dict]]:
    plan = runner.plan(["torch", "paddle", "tensorflow", "jax"], list(LOOPS))
    return {case.id: answer for case, answer in runner.run(WORKER_CASES, plan)}


def worker_items() -> list:
    return [pytest.param(case.id, key, id=f"{case.id}-{key}") for case in WORKER_CASES for key in LOOPS]


@pytest.mark.parametrize("case_id, key", worker_items())
def test_every_variant_equals_its_apis_loop_or_says_why_not(runs, case_id, key):
    """Protects each native call: its loss equals its API's float64 loop on the inputs it received, and its
    gradient the loop's finite difference; logits-only APIs say `unsupported` for probabilities; paddle
    raises on a 1-D batch (a finding: it reads [N, *])."""
    case, result = BY_ID[case_id], runs[case_id][key]
    if reason := unsupported(key, case):
        assert result["status"] == "unsupported" and reason in result["message"], result["message"]
        return
    if paddle_raises(key, case):
        assert result["status"] == "error" and "ValueError" in result["message"]
        return
    assert result["status"] == "ok", result["message"]
    seen = as_seen(case)
    expected = LOOPS[key](seen)
    tol = TOLERANCE[case.dtype]
    np.testing.assert_allclose(np.asarray(result["loss"], dtype=np.float64).reshape(expected.shape), expected, **tol)
    if case_id == "w_saturated":  # float32 sigmoid saturates: the gradients are checked by the case file
        return
    grad = finite_difference(seen, LOOPS[key])
    np.testing.assert_allclose(np.asarray(result["grad"], dtype=np.float64), grad, **tol)


def test_paddle_reproduces_its_docstring_example_and_passes_its_defaults_explicitly(runs):
    result = runs["w_paddle_example"]["paddle"]
    assert abs(float(result["loss"]) - 0.65782464) <= 4 * 6e-8
    assert "alpha=0.25" in result["code"] and "reduction='sum'" in result["code"]
    plain = runs["w_plain[reduction=mean,alpha=null]"]["paddle"]["code"]
    assert "alpha=0.5" in plain and "2 * " in plain and "reduction='mean'" in plain


def test_torch_code_says_which_torchvision_ran(runs):
    code = runs["w_plain[reduction=mean,alpha=null]"]["torch"]["code"]
    assert "from torchvision.ops import sigmoid_focal_loss" in code or "published formula" in code
    assert "alpha=-1" in code


def test_labels_of_another_shape_are_kept_under_check_shapes_false():
    """PaddleAPITest calls sigmoid_focal_loss with labels that do not fit the logits: with `check_shapes:
    false` such a case loads (every framework is expected to raise), without it the loader refuses it."""
    case = make(logits={"shape": [5, 2]}, labels={"shape": [5, 1]}, check_shapes=False)
    assert case.labels.shape == (5, 1) and not case.check_shapes
    assert case.expect is not None and case.expect.status == {"*": "error"}
    with pytest.raises(CaseError) as info:
        make(logits={"shape": [5, 2]}, labels={"shape": [5, 1]})
    assert info.value.key == "labels"
