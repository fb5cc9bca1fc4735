"""Recipes for softmax cross-entropy on probability inputs (from_logits false), run in the real workers.

Each framework's general recipe (its module's `recipe`) and its smallest change (`adapters.smallest_change`)
for every other framework's documented semantics run in that framework's worker, on probability cases that
are not in cases/: class weights, smoothing, ignore_index, per-sample weights, a K-dim map with soft labels,
rows that do not sum to 1, a zero probability, and probabilities the Keras clip (1e-7) changes. One
`runner.run` of the four default variants (module fixture); this process imports no framework.

Expected values are the other frameworks' native losses from the same run (what a recipe must reproduce),
never a recipe's own output. The smallest changes are checked without workers where only the code they
write is in question, and the off-formula message with hand-made worker answers.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from conformance import adapters, cases, pipeline, registry, runner
from conformance.records import CHANGE
from conformance.reference import Knobs

FRAMEWORKS = ["torch", "paddle", "tensorflow", "jax"]
PROBS = [[0.2, 0.7, 0.1], [0.1, 0.6, 0.3], [0.5, 0.25, 0.25], [0.3, 0.3, 0.4]]
KDIM = [[[0.2, 0.5], [0.7, 0.25], [0.1, 0.25]], [[0.6, 0.1], [0.3, 0.1], [0.1, 0.8]]]  # (2, 3, 2): classes on axis 1
KDIM_T = [[[0.0, 1.0], [1.0, 0.0], [0.0, 0.0]], [[0.2, 0.3], [0.3, 0.3], [0.5, 0.4]]]
SPECS = [
    {"id": "weighted_smoothing", "probs": PROBS, "labels": [1, 2, 0, 2], "weight": [0.5, 2.0, 1.5], "label_smoothing": 0.1},
    {"id": "ignored", "probs": PROBS, "labels": [1, -100, 0, 2], "ignore_index": -100, "weight": [0.5, 2.0, 1.5]},
    {
        "id": "sample_weighted",
        "probs": PROBS,
        "labels": [1, 2, 0, 2],
        "weight": [0.5, 2.0, 1.5],
        "label_smoothing": 0.2,
        "sample_weight": [0.5, 2.0, 1.0, 0.25],
    },
    {"id": "kdim_soft", "probs": KDIM, "soft_labels": KDIM_T, "weight": [0.5, 2.0, 1.5]},
    {"id": "unnormalised", "probs": [[0.2, 0.5, 0.1], [0.1, 0.6, 0.6]], "soft_labels": [[0.1, 0.8, 0.1], [0.0, 0.5, 0.5]]},
    {"id": "zero", "probs": [[0.05, 0.95, 0.0], [0.1, 0.8, 0.1]], "labels": [1, 2], "weight": [1.0, 2.0, 3.0]},
    {"id": "clipped", "probs": [[1.0, 0.0, 0.0], [1e-9, 0.5, 0.499999999]], "labels": [0, 0], "reduction": "none"},
]
CASES = cases.load_text(
    json.dumps({"cases": [{**s, "matrix": {"dtype": ["float32", "float64"]}} for s in SPECS]}), "test_recipes_probabilities.yaml"
)
# The suite's documented default tolerances (docs/comparison.md), |a - b| <= atol + rtol * max(|a|, |b|).
TOLERANCE = {"float32": {"rtol": 1e-5, "atol": 1e-6}, "float64": {"rtol": 1e-7, "atol": 1e-8}}


def documented(framework: str, case: cases.Case) -> Knobs | None:
    (default,) = [v for v in adapters.for_case(adapters.variants(framework), case) if v.key == framework]
    return default.knobs(case)


def every_recipe(case: cases.Case, answers: dict) -> dict[str, dict[str, str]]:
    """Every framework's general recipe and smallest change for every other framework's documented
    semantics, whatever the comparison says (the pipeline asks only for the pairs it separates)."""
    asked: dict[str, dict[str, str]] = {}
    for porter in FRAMEWORKS:
        for target in FRAMEWORKS:
            knobs = documented(target, case)
            if target == porter or knobs is None:
                continue
            general = registry.framework(porter).recipe(case, knobs)
            change = adapters.smallest_change(porter, case, knobs)
            bodies = {target: general, target + CHANGE: change}
            asked.setdefault(porter, {}).update({name: body for name, body in bodies.items() if body is not None})
    return asked


@pytest.fixture(scope="module")
def runs() -> dict[str, dict]:
    """case id -> result key -> result (default variants only), with every recipe each framework ran."""
    return {case.id: results for case, results in runner.run(CASES, runner.plan(FRAMEWORKS, FRAMEWORKS), recipes=every_recipe)}


def close(value, expected, dtype: str) -> bool:
    a, b = np.asarray(value, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    tol = TOLERANCE[dtype]
    with np.errstate(invalid="ignore"):
        near = np.abs(a - b) <= tol["atol"] + tol["rtol"] * np.maximum(np.abs(a), np.abs(b))
    return a.shape == b.shape and bool(np.all(near | (a == b) | (np.isnan(a) & np.isnan(b))))


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_every_frameworks_recipe_reproduces_every_other_frameworks_native_loss(runs, case):
    results = runs[case.id]
    misses = []
    for porter in FRAMEWORKS:
        recipes = results[porter]["recipes"]
        for target in FRAMEWORKS:
            if target == porter:
                continue
            assert results[target]["status"] == "ok", (target, results[target].get("message"))
            recipe = recipes.get(target)
            assert recipe is not None and recipe["loss"] is not None, (porter, target, recipe)
            if not close(recipe["loss"], results[target]["loss"], case.dtype):
                misses.append((porter, target, recipe["loss"], results[target]["loss"]))
    assert not misses, misses


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_every_smallest_change_reproduces_the_other_frameworks_native_loss(runs, case):
    results = runs[case.id]
    changes = {(p, name): r for p in FRAMEWORKS for name, r in results[p]["recipes"].items() if name.endswith(CHANGE)}
    for (porter, name), change in changes.items():
        target = name.removesuffix(CHANGE)
        assert change["loss"] is not None, (porter, name, change.get("message"))
        assert close(change["loss"], results[target]["loss"], case.dtype), (porter, target, change["loss"], results[target]["loss"])


def changes_with(runs, marker: str) -> set[tuple[str, str, str]]:
    """(case, porting framework, target) of each smallest change that ran and whose code holds `marker`."""
    return {
        (case_id, porter, name.removesuffix(CHANGE))
        for case_id, results in runs.items()
        for porter in FRAMEWORKS
        for name, recipe in results[porter]["recipes"].items()
        if name.endswith(CHANGE) and marker in recipe["code"]
    }


def test_the_probability_changes_ran_where_a_port_renormalises_or_clips(runs):
    """The changes that pass the probabilities as the target forms them ran and so were checked above."""
    ran = changes_with(runs, "yourself")
    assert ("unnormalised[dtype=float32]", "paddle", "torch") in ran  # renormalised
    assert ("zero[dtype=float64]", "torch", "tensorflow") in ran  # clipped
    assert ("clipped[dtype=float32]", "paddle", "tensorflow") in ran  # clipped, then renormalised


def test_the_weighting_changes_ran_on_soft_labels_and_with_per_sample_weights(runs):
    """The changes that pass a weighted target T as probabilities ran there and so were checked above."""
    ran = changes_with(runs, "\nT = ")
    assert ("sample_weighted[dtype=float64]", "paddle", "torch") in ran
    assert ("kdim_soft[dtype=float32]", "paddle", "torch") in ran and ("kdim_soft[dtype=float32]", "jax", "tensorflow") in ran


# ---------------------------------------------------------------- the smallest change's code


def case_of(case_id: str) -> cases.Case:
    return next(c for c in CASES if c.id == case_id)


def test_a_call_that_takes_log_p_as_given_is_passed_the_probabilities_renormalised():
    """paddle's use_softmax=False takes log p as given, torch's CrossEntropyLoss(log p) renormalises
    (torch docs: log_softmax of its input): on rows that do not sum to 1 paddle gets them renormalised."""
    case = case_of("unnormalised[dtype=float32]")
    code = adapters.smallest_change("paddle", case, documented("torch", case))
    assert code is not None and code.splitlines()[0] == "# the smallest change: renormalises probabilities"
    assert "x = x / x.sum(axis=1, keepdims=True)" in code and "use_softmax=False" in code and "loss / D" not in code


def test_a_call_that_renormalises_is_passed_the_probabilities_clipped_for_keras_sparse():
    """Keras's SparseCategoricalCrossentropy on probabilities clips to [1e-7, 1 - 1e-7], then renormalises:
    torch's own renormalisation does the second step, so its change clips only."""
    case = case_of("clipped[dtype=float32]")
    code = adapters.smallest_change("torch", case, documented("tensorflow", case))
    assert code is not None and "x = np.clip(x, 1e-07, 1 - 1e-07)" in code
    assert "x.sum(axis=1" not in code and "CrossEntropyLoss(reduction='none')" in code


def test_no_change_where_the_own_call_would_undo_the_targets_probabilities():
    """Keras's CategoricalCrossentropy renormalises, then clips: torch's call renormalises what it is
    given, which would undo the clip; torch's general recipe stays (and the case still gets one)."""
    spec = {"id": "z", "probs": [[0.0, 0.5, 0.5], [0.1, 0.6, 0.3]], "soft_labels": [[0.1, 0.8, 0.1], [0.0, 0.5, 0.5]]}
    (zero,) = cases.load_text(json.dumps({"cases": [spec]}), "z.yaml")
    knobs = documented("tensorflow", zero)
    assert knobs is not None and knobs.probabilities == "renormalise_then_clip"
    assert adapters.smallest_change("torch", zero, knobs) is None
    assert registry.framework("torch").recipe(zero, knobs) is not None


def test_rows_that_sum_to_one_up_to_float32_rounding_need_no_renormalising():
    """The float32 rows of PROBS sum to 1 only within a few ulps: renormalising them moves the loss by
    ~1e-8, no reason for a change to say 'renormalises'; the weights and the denominator still move."""
    case = case_of("weighted_smoothing[dtype=float32]")
    code = adapters.smallest_change("paddle", case, documented("torch", case))
    assert code is not None and "renormalis" not in code
    assert code.splitlines()[0] == (
        "# the smallest change: weighs each class's term inside the smoothed sum; divides the mean by the sum of target weights"
    )


def test_soft_labels_are_weighed_in_numpy_and_passed_as_the_soft_target():
    """torch weighs each class's term (w_c t_c), paddle the position by w.t: paddle's call gets torch's
    target T = t * w (classes last, back on axis 1) with no weight, summed and divided by the positions."""
    case = case_of("kdim_soft[dtype=float64]")
    code = adapters.smallest_change("paddle", case, documented("torch", case))
    assert code is not None
    lines = code.splitlines()
    assert lines[1:5] == [
        "q = np.moveaxis(t, 1, -1)  # the soft labels, classes last",
        "T = q * w  # weighs each class's term inside the smoothed sum",
        "t = np.moveaxis(T, -1, 1).astype(x.dtype)  # as probabilities, class axis 1",
        "D = t[:, 0].size  # divides the mean by the number of positions",
    ]
    call = next(line for line in lines if "CrossEntropyLoss(" in line)
    assert "soft_label=True" in call and "reduction='sum'" in call and "weight=" not in call
    assert lines[-1] == "loss = loss / D"


def test_per_sample_weights_keep_a_change_only_where_the_mean_divides_by_the_positions():
    """With per-sample weights every default mean divides by the positions (torch and paddle by hand):
    the smoothed weighting changes, the per-sample weights stay in the call. Keras's
    mean_with_sample_weight divides by the applied weights, which the port does not rebuild."""
    case = case_of("sample_weighted[dtype=float32]")
    code = adapters.smallest_change("paddle", case, documented("torch", case))
    assert code is not None and "D = y.size" in code and "per-sample weights, by hand" in code
    (explicit,) = cases.load_text(json.dumps({"cases": [{**SPECS[2], "reduction": "mean_with_sample_weight"}]}), "e.yaml")
    assert adapters.smallest_change("paddle", explicit, documented("tensorflow", explicit)) is None


# ---------------------------------------------------------------- a recipe whose target is off its own formula


ONE_CASE = "cases:\n  - id: w\n    logits: [[0.05, 0.95, 0], [0.1, 0.8, 0.1]]\n    labels: [1, 2]\n    weight: [1, 2, 3]\n"


def answer(loss: float, documented_loss: float, knobs: Knobs, recipes: dict | None = None) -> dict:
    """A worker's answer in its wire form, its documented value given separately from its own."""
    return {
        "api": "api",
        "status": "ok",
        "loss": loss,
        "grad": None,
        "documented": {"knobs": knobs.as_dict(), "loss": documented_loss},
        "recipes": recipes,
    }


def test_a_recipe_that_gives_the_documented_value_of_a_target_off_it_says_so():
    """torch gives 3.0 where its documented formula gives 1.0 (off-doc); tensorflow's recipe gives 1.0:
    it does not reproduce torch, and the explanation says it gives torch's documented formula."""
    (case,) = cases.load_text(ONE_CASE, "w.yaml")
    answers = {
        "torch": answer(3.0, 1.0, Knobs()),
        "tensorflow": answer(2.0, 2.0, Knobs(denominator="positions"), {"torch": {"code": "loss = 1.0", "loss": 1.0}}),
    }
    [entry] = pipeline.build(case, answers).explanation
    assert entry.recipe is not None and entry.recipe.reproduces is False
    assert entry.recipe.message is not None and entry.recipe.message.startswith("this gives torch's documented formula; torch itself")
    answers["tensorflow"]["recipes"]["torch"]["loss"] = 1.5  # neither torch's value nor its documented one
    [entry] = pipeline.build(case, answers).explanation
    assert entry.recipe.reproduces is False and entry.recipe.message is None
