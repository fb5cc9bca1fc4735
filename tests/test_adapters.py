"""The adapters through the real worker processes, against published and documented numbers.

Every framework runs once, in its own worker process, on one batch of cases (module-scoped fixture):
never import torch, paddle or tensorflow here (two of them in one process segfault). Expected values
come from outside the package: the cross-framework article's table (float32 prints, checked to rtol
1e-6) and the documentation examples listed in docs/semantics.md section 7 (checked to one unit of their
last printed digit).
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from fakes import fake_cases, register_fake

from conformance import adapters, budget, cases, registry, runner

FRAMEWORKS = ("torch", "paddle", "tensorflow")
ARTICLE = "[[0.05, 0.95, 0], [0.1, 0.8, 0.1]]"

# (N, C, d1, d2) = (2, 3, 2, 2), every value distinct and d1 != d2 in role, so a class axis moved to the
# wrong place (transposing d1 and d2, or taking d1 for the classes) changes every loss.
FOUR_D = np.arange(24, dtype=np.float64).reshape(2, 3, 2, 2) * 0.37 % 2.3 - np.array([0.0, 0.5, 1.0]).reshape(1, 3, 1, 1)
FOUR_D_LABELS = np.array([[[0, 1], [2, 0]], [[1, 2], [0, 2]]])
CASES_YAML = f"""
cases:
  - id: plain
    logits: {ARTICLE}
    labels: [1, 2]
    matrix: {{reduction: [none, mean, sum]}}
  - id: smoothing
    logits: {ARTICLE}
    labels: [1, 2]
    label_smoothing: 0.1
    matrix: {{reduction: [none, mean, sum]}}
  - id: weighted
    logits: {ARTICLE}
    labels: [1, 2]
    weight: [1, 2, 3]
    matrix: {{reduction: [none, mean, sum]}}
  - id: weighted_smoothing
    logits: {ARTICLE}
    labels: [1, 2]
    weight: [1, 2, 3]
    label_smoothing: 0.1
    matrix: {{reduction: [none, mean, sum]}}

  - id: keras_sparse_probs
    probs: {ARTICLE}
    labels: [1, 2]
    matrix: {{reduction: [none, mean, sum]}}
  - id: keras_categorical_probs
    probs: {ARTICLE}
    soft_labels: [[0, 1, 0], [0, 0, 1]]
    matrix: {{reduction: [none, mean, sum]}}
  - id: keras_sample_weight
    probs: {ARTICLE}
    labels: [1, 2]
    weight: [1, 0.3, 0.7]
  - id: keras_smoothing_sample_weight
    logits: {ARTICLE}
    labels: [1, 2]
    weight: [1, 0.3, 0.7]
    label_smoothing: 0.2
  - id: tf_nn_soft
    logits: [[4, 2, 1], [0, 5, 1]]
    soft_labels: [[1, 0, 0], [0, 0.8, 0.2]]
    reduction: none
  - id: tf_nn_sparse
    logits: [[2, -5, 0.5, -0.1], [0, 0, 1.9, 1.4], [-100, 100, -100, -100]]
    labels: [0, 3, 1]
    reduction: none
  - id: tf_nn_sparse_binary
    logits: [[1, 0], [-1, 0], [0, 0]]
    labels: [0, 0, 1]
    reduction: none
  - id: paddle_softmax_with_ce
    logits: [[0.4, 0.6, 0.9]]
    labels: [1]
    reduction: none
  - id: optax_integer_labels
    logits: [[1.2, -0.8, -0.5], [0.9, -1.2, 1.1]]
    labels: [0, 1]
    reduction: none
  - id: paddle_issue_47813
    logits: [[[0, 1], [0, 0], [0, 1]]]
    labels: [[0, 1]]
    weight: [1, 2, 3]
    label_smoothing: 0.1

  - id: plain_float64
    logits: {ARTICLE}
    labels: [1, 2]
    dtype: float64
  - id: extreme_logits
    logits: [[10000, -10000, 0]]
    labels: [1]
  - id: all_ignored
    logits: {ARTICLE}
    labels: [-100, -100]
    ignore_index: -100
  - id: paddle_mean_counts_ignored
    logits: [[0.05, 0.95, 0], [0.1, 0.8, 0.1], [0.3, 0.2, 0.5]]
    labels: [1, 2, -100]
    ignore_index: -100
  - id: soft_targets
    logits: {ARTICLE}
    soft_labels: [[0.2, 0.7, 0.1], [0.1, 0.1, 0.8]]
  - id: half_precision
    logits: {ARTICLE}
    labels: [1, 2]
    dtype: float16
  - id: four_d
    logits: {FOUR_D.tolist()}
    labels: {FOUR_D_LABELS.tolist()}
    weight: [1, 2, 3]
    reduction: none
    dtype: float64
"""
CASES = cases.load_text(CASES_YAML, "test_adapters.yaml")


@pytest.fixture(scope="module")
def runs() -> dict[str, dict[str, dict]]:
    """case id -> result key -> result, from one runner.run with one worker per framework."""
    return {case.id: results for case, results in runner.run(CASES, runner.plan(list(FRAMEWORKS), None))}


def printed(*values: str) -> tuple[np.ndarray, np.ndarray]:
    """Documented values as printed, each with a tolerance of one unit of its last printed digit."""
    numbers = np.array([float(v) for v in values])
    units = np.array([10.0 ** -len(v.split(".")[1]) if "." in v else 1.0 for v in values])
    return numbers, units


def assert_printed(result: dict, *values: str) -> None:
    assert result["status"] == "ok", result["message"]
    expected, units = printed(*values)
    got = np.asarray(result["loss"], dtype=np.float64).reshape(-1)
    assert got.shape == expected.shape
    assert np.all(np.abs(got - expected) <= units), (got, expected)


def loss_of(result: dict) -> np.ndarray:
    assert result["status"] == "ok", result["message"]
    return np.asarray(result["loss"], dtype=np.float64).reshape(-1)


# ---------------------------------------------------------------- the published article table

PUBLISHED_NONE = {
    "plain": {key: [0.5840635, 1.3897266] for key in FRAMEWORKS},
    "smoothing": {key: [0.64573014, 1.3663933] for key in FRAMEWORKS},
    "weighted": {key: [1.168127, 4.16918] for key in FRAMEWORKS},
    "weighted_smoothing": {
        "torch": [1.293127, 3.9835405],
        "paddle": [1.2914604, 3.9625409],
        "tensorflow": [1.2914603, 4.09918],
    },
}
PUBLISHED_MEAN = {
    "plain": dict.fromkeys(FRAMEWORKS, 0.9868951),
    "smoothing": dict.fromkeys(FRAMEWORKS, 1.0060617),
    "weighted": {"torch": 1.0674614, "paddle": 1.0674614, "tensorflow": 2.6686535},
    "weighted_smoothing": {"torch": 1.0553335, "paddle": 1.0722452, "tensorflow": 2.6953201},
}


def published(scenario: str, framework: str, reduction: str) -> np.ndarray:
    """The article's value; `sum` is the sum of its printed per-sample values."""
    per_sample = PUBLISHED_NONE[scenario][framework]
    return np.array({"none": per_sample, "sum": [sum(per_sample)], "mean": [PUBLISHED_MEAN[scenario][framework]]}[reduction])


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("scenario", list(PUBLISHED_MEAN))
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_default_variant_reproduces_the_published_article_table(runs, framework, scenario, reduction):
    """Protects each default adapter (weights, smoothing, reductions, Keras's sample_weight = w[y] and
    sum_over_batch_size) against the article's published numbers."""
    result = runs[f"{scenario}[reduction={reduction}]"][framework]
    np.testing.assert_allclose(loss_of(result), published(scenario, framework, reduction), rtol=1e-6)


# ---------------------------------------------------------------- documented examples (docs/semantics.md section 7)


@pytest.mark.parametrize("case_id", ["keras_sparse_probs", "keras_categorical_probs"])
def test_keras_probability_examples(runs, case_id):
    """Protects the tensorflow adapter's probability path (SCCE / CCE, from_logits=False) against the Keras
    docs: y_pred=[[.05,.95,0],[.1,.8,.1]], labels [1,2] -> 1.1769392 mean, 2.3538785 sum, [0.0513, 2.303]."""
    np.testing.assert_allclose(loss_of(runs[f"{case_id}[reduction=mean]"]["tensorflow"]), [1.1769392], rtol=1e-6)
    np.testing.assert_allclose(loss_of(runs[f"{case_id}[reduction=sum]"]["tensorflow"]), [2.3538785], rtol=1e-6)
    assert_printed(runs[f"{case_id}[reduction=none]"]["tensorflow"], "0.0513", "2.303")


def test_keras_sample_weight_examples(runs):
    """Protects the class weight -> sample_weight = w[y] mapping against the Keras docs' sample_weight=[0.3, 0.7]
    examples: SCCE on probabilities 0.814; CCE from logits with label_smoothing=0.2 0.57618 (TF2 migration)."""
    assert_printed(runs["keras_sample_weight"]["tensorflow"], "0.814")
    assert_printed(runs["keras_smoothing_sample_weight"]["tensorflow"], "0.57618")


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize(
    "case_id, values",
    [
        ("tf_nn_soft", ("0.169846", "0.824745")),
        ("tf_nn_sparse", ("0.297508", "1.14483", "0.000000")),
        ("tf_nn_sparse_binary", ("0.313262", "1.31326", "0.693147")),
        ("paddle_softmax_with_ce", ("1.15329",)),
        ("optax_integer_labels", ("0.2761", "2.9518")),
    ],
)
def test_documented_per_sample_examples(runs, framework, case_id, values):
    """Protects plain softmax cross-entropy (hard and soft targets, `none`) in every default variant against
    documented examples of tf.nn, paddle softmax_with_cross_entropy and optax (the third tf.nn row's 0 is
    exp(-200), zero to the printed precision)."""
    assert_printed(runs[case_id][framework], *values)


def test_tf_nn_variant_on_its_docs_example(runs):
    """Protects the tensorflow:nn variant against tf.nn.softmax_cross_entropy_with_logits's docs example."""
    assert_printed(runs["tf_nn_soft"]["tensorflow:nn"], "0.169846", "0.824745")


@pytest.mark.parametrize("key", ["paddle", "paddle:smooth_recipe"])
def test_paddle_kdim_weight_and_smoothing_issue_47813(runs, key):
    """Protects the paddle K-dim path (classes moved last) with weights and smoothing against Paddle issue
    #47813: x=[0,1,0,0,0,1].view(1,3,2), t=[[0,1]], weight [1,2,3], smoothing 0.1 -> 1.5481."""
    assert_printed(runs["paddle_issue_47813"][key], "1.5481")


def test_kdim_weight_and_smoothing_by_hand_for_torch_and_keras(runs):
    """Protects the torch and Keras K-dim paths (class axis 1, Keras's axis moved last, sample_weight per
    position) on the issue #47813 inputs, against the two formulas worked by hand: position 0 has logits
    [0,0,0], label 0; position 1 has [1,0,1], label 1; q = 0.9 one-hot + 0.1/3."""
    log_z0, log_z1 = math.log(3.0), math.log(2.0 * math.e + 1.0)
    q0 = [0.9 + 0.1 / 3, 0.1 / 3, 0.1 / 3]
    q1 = [0.1 / 3, 0.9 + 0.1 / 3, 0.1 / 3]
    minus_lp0 = [log_z0, log_z0, log_z0]
    minus_lp1 = [log_z1 - 1.0, log_z1, log_z1 - 1.0]
    weight = [1.0, 2.0, 3.0]
    torch_sum = sum(weight[c] * q0[c] * minus_lp0[c] + weight[c] * q1[c] * minus_lp1[c] for c in range(3))
    torch_mean = torch_sum / (weight[0] + weight[1])
    keras_mean = (
        weight[0] * sum(q * m for q, m in zip(q0, minus_lp0, strict=True))
        + weight[1] * sum(q * m for q, m in zip(q1, minus_lp1, strict=True))
    ) / 2
    assert torch_mean == pytest.approx(1.59971, abs=1e-5)
    np.testing.assert_allclose(loss_of(runs["paddle_issue_47813"]["torch"]), [torch_mean], rtol=1e-6)
    np.testing.assert_allclose(loss_of(runs["paddle_issue_47813"]["tensorflow"]), [keras_mean], rtol=1e-6)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_float64_cases_are_computed_in_float64(runs, framework):
    """Protects dtype handling: a float64 case is computed in float64 by every framework (Keras needs
    dtype='float64', else it casts to float32 and is off by ~1e-7), to 1e-12 of the hand-worked mean of
    -log softmax over the article's logits."""
    first = math.log(math.exp(0.05) + math.exp(0.95) + 1.0) - 0.95
    second = math.log(2.0 * math.exp(0.1) + math.exp(0.8)) - 0.1
    result = runs["plain_float64"][framework]
    assert result["dtype"] == "float64"
    np.testing.assert_allclose(loss_of(result), [(first + second) / 2], rtol=1e-12)


def test_paddle_clips_extreme_logits_at_64_while_torch_and_tensorflow_do_not(runs):
    """Protects docs/semantics.md D6 through the adapters: logits [1e4,-1e4,0], label 1 -> paddle 64, torch and
    Keras 20000."""
    results = runs["extreme_logits"]
    np.testing.assert_allclose(loss_of(results["paddle"]), [64.0], rtol=1e-6)
    np.testing.assert_allclose(loss_of(results["torch"]), [20000.0], rtol=1e-6)
    np.testing.assert_allclose(loss_of(results["tensorflow"]), [20000.0], rtol=1e-6)


def test_all_ignored_mean_is_nan_in_torch_and_zero_in_paddle_and_tensorflow(runs):
    """Protects docs/semantics.md D4 through the adapters: every label ignored -> torch NaN (0/0), paddle 0, Keras 0."""
    results = runs["all_ignored"]
    assert math.isnan(float(loss_of(results["torch"])[0]))
    assert float(loss_of(results["paddle"])[0]) == 0.0
    assert float(loss_of(results["tensorflow"])[0]) == 0.0


def test_paddle_unweighted_mean_divides_by_all_positions_with_negative_ignore_index(runs):
    """Protects docs/semantics.md D3 through the adapters: labels [1, 2, -100], ignore_index -100, no weight: paddle
    divides the two published per-sample losses by 3 positions, torch and Keras ignore_class by 2."""
    results = runs["paddle_mean_counts_ignored"]
    kept = sum(PUBLISHED_NONE["plain"]["torch"])
    np.testing.assert_allclose(loss_of(results["paddle"]), [kept / 3], rtol=1e-6)
    np.testing.assert_allclose(loss_of(results["torch"]), [kept / 2], rtol=1e-6)
    np.testing.assert_allclose(loss_of(results["tensorflow"]), [kept / 2], rtol=1e-6)


# ---------------------------------------------------------------- statuses


def test_unsupported_variants_say_why_and_run_nothing(runs):
    """Protects `unsupported`: a variant with no native way to express the case gives a reason, no code,
    no loss (torch:nll and the paddle recipe take class indices; tf.nn takes logits, not probabilities)."""
    expectations = {
        ("soft_targets", "torch:nll"): "class indices",
        ("soft_targets", "paddle:smooth_recipe"): "class indices",
        ("keras_sparse_probs[reduction=mean]", "tensorflow:nn"): "logits",
        ("all_ignored", "paddle:smooth_recipe"): "ignore_index",
    }
    for (case_id, key), reason in expectations.items():
        result = runs[case_id][key]
        assert result["status"] == "unsupported"
        assert reason in result["message"]
        assert result["loss"] is None and result["code"] is None


def test_paddle_half_precision_is_an_error_carrying_paddles_message(runs):
    """Protects `error`: paddle has no float16 CPU kernel for cross-entropy; the result keeps paddle's own
    message (NotFound ... float16), and torch runs the same case."""
    result = runs["half_precision"]["paddle"]
    assert result["status"] == "error"
    assert "NotFound" in result["message"] and "float16" in result["message"]
    assert result["loss"] is None
    assert result["code"] is not None
    assert runs["half_precision"]["torch"]["status"] == "ok"


def test_every_ok_result_carries_its_snippet(runs):
    """Protects the report's promise that each result shows the code that ran: every ok result has a
    snippet with its framework's import and the case's arrays as literals."""
    for case in CASES:
        for key, result in runs[case.id].items():
            if result["status"] != "ok":
                continue
            code = result["code"]
            assert isinstance(code, str)
            assert f"import {adapters.framework_of(key)}" in code
            assert "x = np.array(" in code


SNIPPET_CASE = "weighted_smoothing[reduction=mean]"


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_snippet_reproduces_the_reported_loss_in_a_fresh_process(runs, framework):
    """Protects 'what the report shows is what ran': the snippet, executed alone by the venv's Python (one
    framework per process), prints the loss the worker reported (and the published value)."""
    result = runs[SNIPPET_CASE][framework]
    assert result["status"] == "ok"
    program = result["code"] + "\nprint(repr(float(loss)))\n"
    done = subprocess.run(
        [sys.executable, "-c", program],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **runner.WORKER_ENV},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    value = float(done.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(value, float(loss_of(result)[0]), rtol=1e-7)
    np.testing.assert_allclose(value, PUBLISHED_MEAN["weighted_smoothing"][framework], rtol=1e-6)


# ---------------------------------------------------------------- crashes and hangs


def run_fake(batch: list, frameworks: list[str], timeout: float = 120.0, most: int = 1) -> tuple[dict[str, dict[str, dict]], dict]:
    """case id -> result key -> result, and the workers' stats."""
    with runner.Workers(runner.plan(frameworks, None), timeout, most) as workers:
        return {case.id: results for case, results in workers.stream(batch)}, workers.stats


def test_worker_crash_is_recorded_and_the_run_continues(fake_framework):
    """Protects crash isolation: a worker that exits or is killed mid-case records that case as `crashed`
    (with how it died), a fresh worker runs the remaining cases, and another framework is unaffected."""
    batch = fake_cases("first", "exit", "after_exit", "kill", "after_kill")
    found, stats = run_fake(batch, [fake_framework, "reference"])
    assert list(found) == ["first", "exit", "after_exit", "kill", "after_kill"]
    for case in batch:
        assert found[case.id]["reference"]["status"] == "ok"
        if case.id in ("exit", "kill"):
            continue
        assert found[case.id][fake_framework]["status"] == "ok", found[case.id][fake_framework]["message"]
        assert float(found[case.id][fake_framework]["loss"]) == pytest.approx(float(case.predictions.sum()))
    exited, killed = found["exit"][fake_framework], found["kill"][fake_framework]
    assert exited["status"] == "crashed" and "exited with code 3" in exited["message"]
    assert killed["status"] == "crashed" and "died with signal SIGKILL" in killed["message"]
    assert killed["loss"] is None and killed["api"] == "fake.cross_entropy"
    assert stats[fake_framework].restarts == 2
    assert len(stats[fake_framework].startup_seconds) == 3
    assert stats[fake_framework].versions == {"fake": "0"}


def test_hanging_case_times_out_as_crashed_and_the_run_continues(fake_framework, monkeypatch):
    """Protects the per-case timeout of a case that makes no progress (it sleeps, spending no CPU time,
    as a deadlock or a C call that never returns does): past the wall-clock bound of its budget it is
    `crashed`, saying so, its worker is killed, and the next case still runs. The bound is lowered
    here to 3 times the budget, whatever the load, so the test takes seconds."""
    monkeypatch.setattr(budget, "WALL_FACTOR", 3.0)
    monkeypatch.setattr(budget, "LOAD_MARGIN", 0.0)
    batch = fake_cases("hang", "after_hang")
    started = time.monotonic()
    found, _ = run_fake(batch, [fake_framework], timeout=0.5)
    assert time.monotonic() - started < 60  # the hang sleeps 120 s
    assert found["hang"][fake_framework]["status"] == "crashed"
    message = found["hang"][fake_framework]["message"]
    named = re.fullmatch(
        rf"the {fake_framework} worker timed out after (\d+) s of wall time with ([\d.]+) s of CPU time "
        r"\(no progress; its budget: 0.5 s of CPU time\) while running this case",
        message,
    )
    assert named, message
    assert int(named[1]) >= 1 and float(named[2]) < 0.5
    assert found["after_hang"][fake_framework]["status"] == "ok"
    assert float(found["after_hang"][fake_framework]["loss"]) == pytest.approx(float(batch[1].predictions.sum()))


def test_worker_reports_errors_unsupported_and_survives_stdout_noise(fake_framework):
    """Protects the worker's per-variant outcomes: an exception is `error` with its type and message (long
    messages cut to their first 4 and last 6 lines), `Unsupported` is `unsupported` with its reason, and
    printing to stdout (Python or fd 1) cannot corrupt the result stream."""
    batch = fake_cases("raise", "long_error", "unsupported", "noisy", "last")
    found = {k: v[fake_framework] for k, v in run_fake(batch, [fake_framework])[0].items()}
    assert found["raise"]["status"] == "error"
    assert found["raise"]["message"] == "ValueError: bad input"
    assert "raise ValueError('bad input')" in found["raise"]["code"]
    lines = found["long_error"]["message"].splitlines()
    assert lines == ["ValueError: line 0", "line 1", "line 2", "line 3", "..."] + [f"line {i}" for i in range(14, 20)]
    assert found["unsupported"]["status"] == "unsupported"
    assert found["unsupported"]["message"] == "fake has no way to express this case"
    assert found["noisy"]["status"] == "ok"
    assert float(found["noisy"]["loss"]) == pytest.approx(float(batch[3].predictions.sum()))
    assert found["last"]["status"] == "ok"


def test_worker_that_cannot_start_marks_every_case_crashed(tmp_path, monkeypatch, request):
    """Protects start-up failures: every case is `crashed` with 'did not start' and the worker's last
    stderr lines, instead of a hang or an exception in the runner."""
    request.addfinalizer(registry.refresh)
    name = register_fake(tmp_path, monkeypatch, broken=True)
    found, _ = run_fake(fake_cases("a", "b"), [name])
    for results in found.values():
        assert results[name]["status"] == "crashed"
        assert f"the {name} worker did not start" in results[name]["message"]
        assert "fake framework failed to initialise" in results[name]["message"]


def test_a_framework_that_holds_the_others_back_gets_another_worker(fake_framework, monkeypatch):
    """Protects elastic workers: the reference answers at once while the fake takes 20 ms a case, so
    the reference waits at AHEAD; with most=2 the fake gets a second worker, and every case still comes
    back once, in order, with its own value (a case sent to both workers, or to none, would show)."""
    monkeypatch.setattr(runner, "AHEAD", 16)
    batch = fake_cases(*(f"slow{i}" for i in range(160)))
    found, stats = run_fake(batch, [fake_framework, "reference"], most=2)
    assert list(found) == [case.id for case in batch]
    for case in batch:
        result = found[case.id][fake_framework]
        assert result["status"] == "ok", result["message"]
        assert float(result["loss"]) == pytest.approx(float(case.predictions.sum()))
    assert len(stats[fake_framework].startup_seconds) == 2 and stats[fake_framework].restarts == 0


def test_cancel_from_another_thread_ends_the_stream_and_wakes_its_waiting_consumer(fake_framework):
    """Protects `Workers.cancel`, which the xdist controller uses on Ctrl-C or an early stop: a consumer
    blocked waiting for the next case gets the end of the stream, and the workers can be closed."""
    batch = fake_cases(*(f"slow{i}" for i in range(100)))  # 20 ms a case: 2 s in all
    taken: list[str] = []
    with runner.Workers(runner.plan([fake_framework], None)) as workers:

        def consume() -> None:
            for case, _ in workers.stream(batch):
                taken.append(case.id)

        consumer = threading.Thread(target=consume)
        consumer.start()
        while not taken:
            time.sleep(0.01)
        workers.cancel()
        consumer.join(timeout=30)
        assert not consumer.is_alive()
    assert 1 <= len(taken) < len(batch)
    assert taken == [case.id for case in batch[: len(taken)]]


def test_a_shipped_frameworks_calls_for_every_family_live_in_the_familys_package():
    """One rule for every family (docs/extending.md): torch's, paddle's, TensorFlow's and JAX's native
    calls for a family are the `VARIANTS` of conformance/losses/<family>/<framework>.py, which the family's
    `variants` returns; the framework module brings none of its own. Each family's first key in a
    framework is its default variant (the key the explanations' smallest change starts from)."""
    for name in ("torch", "paddle", "tensorflow", "jax"):
        assert registry.framework(name).VARIANTS == ()
        brought = adapters.variants(name)
        assert {loss for v in brought for loss in v.losses} == set(registry.losses())
        for v in brought:
            (loss,) = v.losses
            assert v.build.__module__ == f"{registry.loss(loss).module.__name__}.{name}", v.key
        for loss in registry.losses():
            assert [v.key for v in brought if loss in v.losses][0] == name, (name, loss)
    assert all(family.variants is not None and family.variants("numpy") == [] for family in registry.losses().values())


def test_plan_selects_frameworks_or_exact_result_keys():
    """Protects `plan`: every variant of each framework by default; with `only`, exactly the keys named,
    grouped by framework."""
    assert runner.plan(["torch", "paddle"], None) == {"torch": None, "paddle": None}
    assert runner.plan(["torch"], ["torch:nll", "torch", "tensorflow:nn"]) == {
        "torch": {"torch:nll", "torch"},
        "tensorflow": {"tensorflow:nn"},
    }


def test_reference_snippet_reproduces_the_reported_loss_in_a_fresh_process():
    """Protects 'what the report shows is what ran' for the `reference` result too: its snippet, run
    alone, prints the reported loss (the published plain mean 0.9868951)."""
    batch = cases.load_text(f"cases:\n  - id: plain\n    logits: {ARTICLE}\n    labels: [1, 2]\n", "ref.yaml")
    [(_, results)] = list(runner.run(batch, runner.plan(["reference"], None)))
    result = results["reference"]
    assert result["status"] == "ok"
    np.testing.assert_allclose(float(result["loss"]), 0.9868951, rtol=1e-6)
    done = subprocess.run(
        [sys.executable, "-c", result["code"] + "\nprint(repr(float(loss)))\n"],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    np.testing.assert_allclose(float(done.stdout.strip().splitlines()[-1]), float(result["loss"]), rtol=1e-12)


@pytest.mark.parametrize("framework", FRAMEWORKS + ("paddle:smooth_recipe", "tensorflow:nn"))
def test_four_d_inputs_keep_the_class_axis_and_every_position_in_place(runs, framework):
    """Protects the class-axis move of 4-D inputs (N, C, d1, d2): each position's weighted loss
    w[y] * (log sum_c exp x[n, c, i, j] - x[n, y, i, j]) at its own (n, i, j), and the gradient
    w[y] * (softmax - onehot) in the input's (N, C, d1, d2) layout, both written out here in float64 loops."""
    weight = [1.0, 2.0, 3.0]
    loss = np.zeros((2, 2, 2))
    grad = np.zeros((2, 3, 2, 2))
    for n in range(2):
        for i in range(2):
            for j in range(2):
                column = [FOUR_D[n, c, i, j] for c in range(3)]
                top = max(column)
                total = sum(math.exp(v - top) for v in column)
                y = int(FOUR_D_LABELS[n, i, j])
                loss[n, i, j] = weight[y] * (top + math.log(total) - column[y])
                for c in range(3):
                    grad[n, c, i, j] = weight[y] * (math.exp(column[c] - top) / total - (c == y))
    result = runs["four_d"][framework]
    assert result["status"] == "ok", result["message"]
    np.testing.assert_allclose(np.asarray(result["loss"]).reshape(2, 2, 2), loss, rtol=1e-12)
    np.testing.assert_allclose(result["grad"], grad, rtol=1e-12, atol=1e-15)
