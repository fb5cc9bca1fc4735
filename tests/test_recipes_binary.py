"""Native recipes and smallest changes of the elementwise families (binary cross-entropy, sigmoid focal
loss) and the KL divergence's Keras recipe in float16, run in the real worker processes.

Two runs, none of them in this process's frameworks: one pipeline run of the four frameworks on cases
that are not in cases/ (module-scoped), whose explained pairs must each carry a recipe in both
directions that reproduces the other framework's own loss (the target is the framework's native result,
not the model); and, for what no explained pair reaches (pos_weight and alpha agree in every framework
that takes them), one run of the four workers asked for their recipes of torch's documented point, compared
with float64 loops written here from the documentation: torch's BCEWithLogitsLoss formula
(l = w [pw y log sigmoid(x) + (1 - y) log(1 - sigmoid(x))], mean over the elements) and torchvision's
published sigmoid_focal_loss (alpha_t (1 - p_t)^gamma BCE-with-logits per element, then the reduction).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from conformance import adapters, cases, pipeline, registry, runner
from conformance.cases import Case
from conformance.reference import Knobs

FRAMEWORKS = ["torch", "paddle", "tensorflow", "jax"]
CLIPPED_PROBS = [[0.0, 1.0, 0.3], [1e-9, 0.999999999, 0.5]]  # Keras clips these to [1e-7, 1 - 1e-7]; torch clamps log p at -100
CLIPPED_LABELS = [[1, 0, 1], [1, 0, 0]]
SPECS = [
    {
        "id": "bce_weighted",
        "loss": "binary_cross_entropy",
        "random": {"shape": [3, 4], "seed": 11, "scale": 2.0},
        "labels": "random",
        "sample_weight": [0.5, 2.0, 1.0],
        "matrix": {"reduction": ["none", "mean", "sum"]},
    },
    {
        "id": "bce_kdim_smoothed",
        "loss": "binary_cross_entropy",
        "random": {"shape": [2, 3, 2], "seed": 7},
        "soft_labels": "random",
        "label_smoothing": 0.2,
        "dtype": "float64",
        "matrix": {"reduction": ["none", "sum"]},
    },
    {
        "id": "bce_clipped",
        "loss": "binary_cross_entropy",
        "probs": CLIPPED_PROBS,
        "labels": CLIPPED_LABELS,
        "matrix": {"reduction": ["mean", "sum"]},
    },
    {
        "id": "focal_alpha",
        "loss": "sigmoid_focal",
        "random": {"shape": [2, 3, 2], "seed": 4, "scale": 3.0},
        "soft_labels": "random",
        "alpha": 0.25,
        "gamma": 1.5,
        "label_smoothing": 0.1,
        "matrix": {"reduction": ["none", "mean", "sum"]},
    },
    {
        "id": "focal_normalized",
        "loss": "sigmoid_focal",
        "random": {"shape": [3, 2], "seed": 9, "scale": 2.0},
        "labels": "random",
        "normalizer": 4.0,
        "sample_weight": [1.0, 0.0, 2.0],
        "dtype": "float64",
        "reduction": "sum",
    },
    {  # Keras's KL computes t log(t / p): exp(-11.5) ~ 1e-5, so 1 / p passes float16's 65504 and overflows
        "id": "kl_ratio_float16",
        "loss": "kl_divergence",
        "logits": [[0.0, 11.5, 0.0], [0.5, 0.0, -1.0]],
        "soft_labels": [[1.0, 0.0, 0.0], [0.2, 0.3, 0.5]],
        "dtype": "float16",
        "reduction": "mean",
    },
]
CASES = cases.load_text(json.dumps({"cases": SPECS}), "test_recipes_binary.yaml")


@pytest.fixture(scope="module")
def records() -> dict[str, dict]:
    """case id -> its record as results.json has it (results, explanations, the recipes the workers ran)."""
    with pipeline.Pipeline(runner.plan(FRAMEWORKS, None)) as evaluation:
        return {case.id: record.to_json() for case, record in evaluation.records(CASES)}


def entries(record: dict) -> list[tuple[str, str, dict | None]]:
    """(who runs it, whose loss it reproduces, the recipe) for both directions of every explained pair."""
    out = []
    for entry in record.get("explanation") or []:
        out += [(entry["b"], entry["a"], entry.get("recipe")), (entry["a"], entry["b"], entry.get("reverse"))]
    return out


def test_every_explained_pair_carries_a_reproducing_recipe(records: dict[str, dict]) -> None:
    """Both directions of every explained pair: the general recipe, run in the framework's worker, gives
    the other framework's native loss; so does the smallest change wherever one is shown."""
    seen = 0
    for case_id, record in records.items():
        for runs, target, recipe in entries(record):
            where = f"{runs} as {target} on {case_id}"
            assert recipe is not None, f"{where}: no recipe"
            assert recipe["reproduces"], f"{where}: {recipe['result']} vs {recipe['target']} ({recipe.get('message')})\n{recipe['code']}"
            change = recipe.get("change")
            if change is not None:
                assert change["reproduces"], f"{where}, smallest change: {change['result']} vs {change['target']}\n{change['code']}"
            seen += 1
    assert seen >= 40, f"only {seen} recipes: the cases no longer diverge as written"


def test_every_framework_runs_recipes_of_each_family(records: dict[str, dict]) -> None:
    """Each framework reproduces another in each family (paddle's focal and BCE included)."""
    ran = {(case_id.split("[")[0].split("_")[0], runs) for case_id, record in records.items() for runs, _, _ in entries(record)}
    for family in ("bce", "focal"):
        assert {runs for f, runs in ran if f == family} == set(FRAMEWORKS), family


def test_keras_clip_is_reproduced(records: dict[str, dict]) -> None:
    """Probabilities of 0, 1, 1e-9: torch clamps each log at -100, Keras clips p to [1e-7, 1 - 1e-7]; the
    losses differ by far more than the tolerance, and each framework reproduces the other's."""
    record = records["bce_clipped[reduction=mean]"]
    torch_loss, keras_loss = record["results"]["torch"]["loss"], record["results"]["tensorflow"]["loss"]
    assert torch_loss > keras_loss + 10  # 100-ish terms against 16-ish ones
    pairs = {(runs, target): recipe for runs, target, recipe in entries(record)}
    assert pairs[("tensorflow", "torch")]["result"] == pytest.approx(torch_loss, rel=1e-6)
    assert pairs[("torch", "tensorflow")]["result"] == pytest.approx(keras_loss, rel=1e-6)
    assert "clip" in pairs[("torch", "tensorflow")]["code"]


@pytest.mark.parametrize("case_id", ["bce_weighted[reduction=sum]", "bce_kdim_smoothed[reduction=sum]", "focal_alpha[reduction=sum]"])
def test_smallest_change_where_only_the_denominator_moves(records: dict[str, dict], case_id: str) -> None:
    """A sum where Keras averages the last axis first: only the divisor moves (C), so every pair with
    Keras shows the reader's own call summed and divided, and it reproduces."""
    shown = [(runs, target, recipe.get("change")) for runs, target, recipe in entries(records[case_id]) if "tensorflow" in (runs, target)]
    assert shown
    for runs, target, change in shown:
        assert change is not None, f"{runs} as {target}: no smallest change"
        assert "loss = loss / D" in change["code"] and change["reproduces"]


def test_smallest_change_averages_an_elementwise_none(records: dict[str, dict]) -> None:
    """reduction 'none': torch's elementwise values averaged over the last axis are Keras's per-sample
    values; the other way Keras has no elementwise values, so only the general recipe is shown."""
    pairs = {(runs, target): recipe for runs, target, recipe in entries(records["bce_weighted[reduction=none]"])}
    assert "loss = loss.mean(axis=-1)" in pairs[("torch", "tensorflow")]["change"]["code"]
    assert pairs[("tensorflow", "torch")].get("change") is None


def test_keras_kl_ratio_overflows_in_float16_and_its_recipe_too(records: dict[str, dict]) -> None:
    """Keras's KL is inf here (t / p overflows float16), torch's finite; the recipes reproduce both."""
    record = records["kl_ratio_float16"]
    assert np.isinf(record["results"]["tensorflow"]["loss"]) and np.isfinite(record["results"]["torch"]["loss"])
    recipes = entries(record)
    assert recipes and all(recipe is not None and recipe["reproduces"] for _, _, recipe in recipes)


# ---------------------------------------------------------------- pos_weight and alpha, against float64 loops


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


POS_WEIGHT = {
    "id": "pos_weight",
    "loss": "binary_cross_entropy",
    "logits": [[0.5, -1.0, 2.0], [0.1, 1.5, -0.7]],
    "labels": [[1, 0, 1], [0, 1, 1]],
    "pos_weight": [2.0, 0.5, 3.0],
    "weight": [1.0, 2.0, 0.5],
    "dtype": "float64",
}
ALPHA = {
    "id": "alpha",
    "loss": "sigmoid_focal",
    "logits": [[0.5, -1.0, 2.0], [0.1, 1.5, -0.7]],
    "labels": [[1, 0, 0], [0, 1, 1]],
    "alpha": 0.75,
    "gamma": 2.0,
    "dtype": "float64",
    "reduction": "sum",
}


def torch_bce_with_pos_weight(spec: dict) -> float:
    """torch docs, BCEWithLogitsLoss: l = -w [pw y log sigmoid(x) + (1 - y) log(1 - sigmoid(x))], mean."""
    x, y = np.array(spec["logits"]), np.array(spec["labels"], dtype=float)
    pw, w = np.array(spec["pos_weight"]), np.array(spec["weight"])
    return float(np.mean(-w * (pw * y * np.log(sigmoid(x)) + (1 - y) * np.log(1 - sigmoid(x)))))


def torchvision_focal(spec: dict) -> float:
    """torchvision's published sigmoid_focal_loss: alpha_t (1 - p_t)^gamma BCE-with-logits, summed."""
    x, y = np.array(spec["logits"]), np.array(spec["labels"], dtype=float)
    p = sigmoid(x)
    bce = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    p_t = p * y + (1 - p) * (1 - y)
    alpha_t = spec["alpha"] * y + (1 - spec["alpha"]) * (1 - y)
    return float(np.sum(alpha_t * (1 - p_t) ** spec["gamma"] * bce))


def torch_point(case: Case) -> Knobs:
    knobs = next(v for v in adapters.variants("torch") if v.key == "torch" and case.loss in v.losses).knobs(case)
    assert knobs is not None
    return knobs


LOOP_CASES = cases.load_text(json.dumps({"cases": [POS_WEIGHT, ALPHA]}), "test_recipes_binary_loops.yaml")
EXPECTED = {"pos_weight": torch_bce_with_pos_weight(POS_WEIGHT), "alpha": torchvision_focal(ALPHA)}


@pytest.fixture(scope="module")
def loop_runs() -> dict[str, dict[str, dict]]:
    """case id -> framework -> its default result, with the recipe of torch's documented point that its
    worker ran (one run of the four workers, each asked for its recipe of every case)."""

    def ask(case: Case, results: dict) -> dict[str, dict[str, str]]:
        return {fw: {"torch": code} for fw in FRAMEWORKS if (code := case.family.native_recipe(fw, case, torch_point(case))) is not None}

    keys: dict[str, set[str] | None] = {fw: {fw} for fw in FRAMEWORKS}
    return {case.id: results for case, results in runner.run(LOOP_CASES, keys, recipes=ask)}


@pytest.mark.parametrize("case_id", list(EXPECTED))
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_recipes_of_pos_weight_and_alpha_match_the_documented_formulas(framework: str, case_id: str, loop_runs: dict) -> None:
    """torch's documented point (pos_weight with element weights; focal alpha 0.75), written in each
    framework's ops and run in its worker, gives the float64 loop's value."""
    recipe = loop_runs[case_id][framework]["recipes"]["torch"]
    assert recipe.get("message") is None, recipe["message"]
    assert float(recipe["loss"]) == pytest.approx(EXPECTED[case_id], rel=1e-9), recipe["body"]


def test_no_recipe_without_an_ops_table() -> None:
    """A framework module without `OPS` (the reference) gets no recipe of these families."""
    assert "OPS" not in vars(registry.framework("reference").module) and registry.framework("reference").OPS is None
    for case in LOOP_CASES:
        assert case.family.native_recipe("reference", case, torch_point(case)) is None
