"""Loss families are plug-ins: the registry finds them, each provides the protocol written in
`conformance/contract.py` (`LossFamily`), the core dispatches through it (schema, loading, the model, the
fuzzer), and a family registered at run time adds its own keys without an edit of the core. Also the
bound on the size of a case's arrays (`cases.MAX_ELEMENTS`)."""

from __future__ import annotations

import json
import textwrap
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from conformance import adapters, cases, cli, explain, losses, reference, registry
from conformance.errors import CaseError

SOFTMAX, BINARY = "softmax_cross_entropy", "binary_cross_entropy"
PROTOCOL = ("NAME", "FIELDS", "ARRAYS", "CLASS_AXIS", "INDEX_LABELS", "PHRASES", "ALTERNATIVES")
FUNCTIONS = ("build", "textbook", "evaluate", "strategy")


def load(text: str) -> list[cases.Case]:
    return cases.load_text(textwrap.dedent(text), "t.yaml")


def error(text: str) -> CaseError:
    with pytest.raises(CaseError) as info:
        load(text)
    return info.value


# ---------------------------------------------------------------- the registry and the protocol


def test_the_registry_finds_both_shipped_families_in_order():
    assert list(registry.losses())[:2] == [SOFTMAX, BINARY]  # first; families other packages (or this one) add follow
    assert cases.LOSSES[:2] == (SOFTMAX, BINARY)
    assert registry.loss(BINARY).module.__name__ == "conformance.losses.binary_ce"


@pytest.mark.parametrize("name", [SOFTMAX, BINARY])
def test_each_family_provides_the_protocol(name):
    family = registry.loss(name)
    missing = [a for a in PROTOCOL if not hasattr(family, a)] + [f for f in FUNCTIONS if not callable(getattr(family, f, None))]
    assert not missing
    assert family.NAME == name
    assert set(family.ARRAYS) <= set(family.FIELDS)
    assert family.CLASS_AXIS in (None, 1)


def test_a_case_without_loss_is_of_the_one_default_family():
    assert [name for name, family in registry.losses().items() if getattr(family, "DEFAULT", False)] == [SOFTMAX]
    (case,) = load("cases:\n  - id: a\n    logits: [[0, 1]]\n    labels: [1]\n")
    assert case.loss == SOFTMAX and case.family is registry.loss(SOFTMAX)


def test_the_layout_attributes_drive_the_generic_helpers():
    """Protects what replaced the `binary` branches: C, the arrays handed over, sw's broadcast, moved."""
    softmax, binary = load(
        """
        cases:
          - id: s
            logits: [[[0, 1], [1, 0], [2, 2]]]
            labels: [[0, 2]]
            sample_weight: [2]
          - id: b
            loss: binary_cross_entropy
            logits: [[[0, 1], [1, 0], [2, 2]]]
            labels: [[[0, 1], [1, 0], [1, 1]]]
            pos_weight: [2, 3]
            sample_weight: [2]
        """
    )
    assert (softmax.num_classes, binary.num_classes) == (3, 2)
    assert adapters.arrays(softmax)["y"].dtype == np.int64
    assert adapters.arrays(binary)["y"].dtype == np.float32
    assert list(adapters.arrays(binary)) == ["x", "y", "pw", "sw"]
    assert "pw" not in adapters.arrays(softmax)
    assert (adapters.batch_shape(softmax), adapters.batch_shape(binary)) == ("sw[:, None]", "sw[:, None, None]")
    assert (adapters.moved(softmax), adapters.moved(binary)) == (True, False)
    assert binary.pos_weight.tolist() == [2.0, 3.0] and softmax.pos_weight is None


def test_the_model_dispatches_through_the_family():
    softmax, binary = load(
        """
        cases:
          - id: s
            logits: [[0.5, -1]]
            labels: [0]
          - id: b
            loss: binary_cross_entropy
            logits: [0.5]
            labels: [1]
        """
    )
    log_sigmoid = np.log1p(np.exp(-0.5))
    np.testing.assert_allclose(reference.evaluate(binary, reference.textbook(binary)).loss, log_sigmoid, rtol=1e-7)
    np.testing.assert_allclose(reference.evaluate(softmax).loss, np.log1p(np.exp(-1.5)), rtol=1e-7)
    assert reference.recipe_source(binary, reference.textbook(binary)) is None
    assert reference.recipe_source(softmax, reference.textbook(softmax))


def test_phrases_and_alternatives_are_merged_from_the_families():
    assert losses.phrases()["log_clamp"] == registry.loss(BINARY).PHRASES["log_clamp"]
    assert losses.phrases()["logit_floor"].items() >= registry.loss(SOFTMAX).PHRASES["logit_floor"].items()  # others add values
    assert losses.alternatives()["probabilities"] == ["renormalise", "none", "renormalise_then_clip", "clip_then_renormalise", "clip"]
    assert explain._alternatives("log_clamp", None) == [100.0]


# ---------------------------------------------------------------- each family's fuzzer strategy


@pytest.mark.parametrize("name", [SOFTMAX, BINARY])
def test_each_familys_strategy_generates_cases_the_loader_accepts(name):
    @settings(max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(registry.loss(name).strategy())
    def check(spec):
        (case,) = cases.load_text(json.dumps({"cases": [spec]}), "fuzz.yaml")
        assert case.loss == name and case.id == "fuzz"
        with np.errstate(all="ignore"):  # inf * 0 where a weight is 0 at a clamped log: NaN, as frameworks give
            outcome = reference.evaluate(case, reference.textbook(case))
        assert outcome.grad.shape == case.predictions.shape

    check()


def test_the_binary_strategy_shrinks_to_the_simplest_case():
    from hypothesis import find

    spec = find(registry.loss(BINARY).strategy(), lambda s: True, settings=settings(database=None))
    assert spec == {"id": "fuzz", "loss": BINARY, "logits": [0.0], "labels": [0], "reduction": "mean"}


# ---------------------------------------------------------------- keys of one family on a case of another


def test_a_binary_key_on_a_softmax_case_names_the_key():
    err = error("cases:\n  - id: a\n    logits: [[0, 1]]\n    labels: [1]\n    pos_weight: [2]\n")
    assert err.key == "pos_weight" and err.line == 5
    assert err.message == "case 'a': pos_weight is for binary_cross_entropy; softmax cross-entropy takes class `weight`"


def test_binary_cross_entropy_refuses_ignore_index():
    err = error("cases:\n  - id: a\n    loss: binary_cross_entropy\n    logits: [0, 1]\n    labels: [1, 0]\n    ignore_index: 0\n")
    assert (err.key, err.line) == ("ignore_index", 6)
    assert "binary_cross_entropy has no ignore_index (use a zero weight)" in err.message


def test_an_unknown_loss_lists_the_registered_families():
    err = error("cases:\n  - id: a\n    loss: focal\n    logits: [[0, 1]]\n    labels: [1]\n")
    assert err.key == "loss"
    assert "Input should be 'softmax_cross_entropy', 'binary_cross_entropy'" in err.message
    assert all(f"'{name}'" in err.message for name in registry.losses())


FAKE_FAMILY = '''
"""A loss family registered at run time: softmax cross-entropy with a key of its own, `gamma`."""
from typing import Any

from conformance.losses import softmax_ce

NAME = "{name}"
ORDER = 900
FIELDS: dict[str, Any] = {"gamma": (float | None, None)}
ARRAYS: dict[str, str] = {}
CLASS_AXIS = 1
INDEX_LABELS = True
PHRASES: dict[str, Any] = {}
ALTERNATIVES: dict[str, Any] = {}
textbook = softmax_ce.textbook


def build(spec, fail):
    if spec.gamma is not None and spec.gamma < 0:
        raise fail("gamma must be >= 0", "gamma")
    return {**softmax_ce.build(spec, fail), "gamma": spec.gamma}


def evaluate(case, knobs):
    return softmax_ce.evaluate(case, knobs)


def strategy():
    from hypothesis import strategies as st

    return st.just({"id": "fuzz", "loss": NAME, "logits": [[0.0, 1.0]], "labels": [0], "gamma": 2.0})
'''


@pytest.fixture
def fake_family(tmp_path, monkeypatch):
    """A family registered the way a plug-in package does: a distribution declaring an entry point."""
    name = f"fake_focal_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(FAKE_FAMILY.replace("{name}", name), encoding="utf-8")
    info = tmp_path / f"{name}-0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0\n", encoding="utf-8")
    (info / "entry_points.txt").write_text(f"[{registry.LOSSES_GROUP}]\n{name} = {name}\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.refresh()
    yield name
    monkeypatch.undo()
    registry.refresh()


def test_a_family_registered_at_run_time_adds_its_own_keys(fake_family):
    """Protects the plug-in point: no edit of cases.py, and the key works in the schema, a matrix,
    `case.<key>`, the model and the fuzzer; other families refuse it by name."""
    assert list(registry.losses())[-1] == fake_family
    assert "gamma" in cases.schema()["properties"]["cases"]["items"]["properties"]
    loaded = load(f"cases:\n  - id: f\n    loss: {fake_family}\n    logits: [[0, 1]]\n    labels: [0]\n    matrix: {{gamma: [0.5, 2]}}\n")
    assert [(c.id, c.gamma, c.extra) for c in loaded] == [("f[gamma=0.5]", 0.5, {"gamma": 0.5}), ("f[gamma=2]", 2.0, {"gamma": 2.0})]
    assert float(reference.evaluate(loaded[0]).loss) == pytest.approx(np.log1p(np.e))
    err = error("cases:\n  - id: s\n    logits: [[0, 1]]\n    labels: [0]\n    gamma: 2\n")
    assert (err.key, err.line) == ("gamma", 5)
    assert err.message == f"case 's': gamma is for {' and '.join(losses.owners('gamma'))}; softmax_cross_entropy has no gamma"
    assert fake_family in losses.owners("gamma")
    err = error(f"cases:\n  - id: f\n    loss: {fake_family}\n    logits: [[0, 1]]\n    labels: [0]\n    gamma: -1\n")
    assert (err.key, err.message) == ("gamma", "case 'f': gamma must be >= 0")
    from hypothesis import find

    from conformance import fuzz

    spec = find(fuzz.case_specs(), lambda s: s.get("loss") == fake_family, settings=settings(database=None))
    assert fuzz.to_case(spec).gamma == 2.0


# ---------------------------------------------------------------- the bound on a case's arrays


def test_a_huge_random_shape_is_a_case_error_naming_random_before_anything_is_generated():
    started = time.perf_counter()
    err = error("cases:\n  - id: big\n    random: {shape: [200000, 100000]}\n    labels: random\n")
    assert time.perf_counter() - started < 1.0
    assert (err.key, err.line) == ("random", 3)
    assert "20,000,000,000 numbers" in err.message and f"{cases.MAX_ELEMENTS:,}" in err.message


def test_the_default_bound_is_two_to_the_24_numbers():
    assert cases.MAX_ELEMENTS == 16_777_216  # a [256, 50000] language-model head (12.8 million) fits


def test_the_bound_applies_to_written_arrays_and_is_a_module_setting(monkeypatch):
    text = "cases:\n  - id: a\n    logits: [[0, 1, 2], [1, 2, 3]]\n    labels: [0, 1]\n"
    monkeypatch.setattr(cases, "MAX_ELEMENTS", 5)
    err = error(text)
    assert (err.key, err.line) == ("logits", 3)
    assert "logits holds 6 numbers; a case array holds at most 5" in err.message
    err = error("cases:\n  - id: r\n    random: {shape: [2, 3]}\n    labels: random\n")
    assert err.key == "random"
    monkeypatch.setattr(cases, "MAX_ELEMENTS", 6)
    assert load(text)[0].predictions.shape == (2, 3)


def test_a_huge_random_shape_exits_2_with_one_paragraph(tmp_path: Path, capsys):
    bad = tmp_path / "big.yaml"
    bad.write_text("cases:\n  - id: big\n    random: {shape: [200000, 100000]}\n    labels: random\n", encoding="utf-8")
    started = time.perf_counter()
    code = cli.main(["run", str(bad), "--frameworks", "reference", "--json", str(tmp_path / "r.json"), "--html", str(tmp_path / "i.html")])
    captured = capsys.readouterr()
    assert code == 2
    assert time.perf_counter() - started < 10.0
    message = captured.err.strip()
    assert f"{bad}:3 (key 'random')" in message
    assert "\n\n" not in message and "Traceback" not in captured.err + captured.out


# ---------------------------------------------------------------- the model on the forms of issue 19


def test_the_model_on_an_empty_class_axis_sums_over_no_class():
    """C = 0: each position's cross-entropy is a sum over no classes, 0; the mean divides 0 by the sum of
    the target weights, which no label can carry (every label is outside [0, C)): 0/0, NaN."""
    none, mean = load(
        "cases:\n  - {id: n, logits: [[], []], labels: [0, 0], reduction: none}\n  - {id: m, logits: [[], []], labels: [0, 0]}\n"
    )
    out = reference.evaluate(none)
    np.testing.assert_array_equal(out.loss, [0.0, 0.0])
    assert out.grad.shape == (2, 0)
    assert np.isnan(reference.evaluate(mean).loss)


def test_the_model_rounds_each_array_to_its_own_dtype():
    """{logits: float16, weight: float32}: the reference sees float16 logits and float32 weights; the
    expected value is torch's documented weighted mean, sum w[y] (-log softmax(x)[y]) / sum w[y]."""
    weight = [1.0, 0.1, 3.0]
    (case,) = load(
        f"cases:\n  - {{id: a, logits: [[0.05, 0.95, 0.0], [0.1, 0.8, 0.1]], labels: [1, 2], weight: {weight}, "
        "dtype: {logits: float16, weight: float32}}\n"
    )
    x = np.array([[0.05, 0.95, 0.0], [0.1, 0.8, 0.1]], dtype=np.float16).astype(np.float64)
    w = np.array(weight, dtype=np.float32).astype(np.float64)
    lp = x - np.log(np.exp(x).sum(axis=1, keepdims=True))
    y = np.array([1, 2])
    expected = -(w[y] * lp[[0, 1], y]).sum() / w[y].sum()
    assert float(reference.evaluate(case).loss) == pytest.approx(expected, rel=1e-14)
    w16 = np.array(weight, dtype=np.float16).astype(np.float64)  # what one dtype for every array would give
    assert float(reference.evaluate(case).loss) != pytest.approx(-(w16[y] * lp[[0, 1], y]).sum() / w16[y].sum(), rel=1e-9)


def test_the_model_refuses_a_case_whose_shapes_are_mismatched_on_purpose():
    (case,) = load("cases:\n  - {id: a, logits: [[0.05, 0.95, 0.0], [0.1, 0.8, 0.1]], labels: [1, 2, 0], check_shapes: false}\n")
    with pytest.raises(ValueError, match="check_shapes"):
        reference.evaluate(case)


def test_trailing_axis_labels_give_the_same_model_value_and_recipe_target():
    given, plain = load(
        "cases:\n  - {id: a, logits: [[0.05, 0.95, 0.0], [0.1, 0.8, 0.1]], labels: [[1], [2]], weight: [1, 2, 3]}\n"
        "  - {id: b, logits: [[0.05, 0.95, 0.0], [0.1, 0.8, 0.1]], labels: [1, 2], weight: [1, 2, 3]}\n"
    )
    assert float(reference.evaluate(given).loss) == float(reference.evaluate(plain).loss)
    knobs = reference.Knobs(denominator="positions")
    source = reference.recipe_source(given, knobs)
    assert source[0].startswith("y = y.squeeze(-1)") and source[1:] == reference.recipe_source(plain, knobs)


# ---------------------------------------------------------------- arrays generated at a given shape


def test_generated_labels_of_a_given_shape_carry_paddles_trailing_axis():
    (case,) = load("""
        cases:
          - id: g
            logits: {shape: [6, 4], low: -0.6, high: 0.6}
            labels: {shape: [6, 1], seed: 3}
            weight: {shape: [4], low: 0, high: 1}
        """)
    assert case.trailing_label_axis and case.labels.shape == (6,)
    # the documented draws: default_rng(seed + stream), uniform in [low, high), class indices in [0, C)
    assert np.array_equal(case.labels, np.random.default_rng(3 + 1).integers(0, 4, size=(6, 1))[:, 0])
    assert np.array_equal(case.predictions, np.random.default_rng(0).uniform(-0.6, 0.6, size=(6, 4)))
    assert np.array_equal(case.weight, np.random.default_rng(2).uniform(0.0, 1.0, size=(4,)))


def test_generated_probabilities_and_soft_labels_are_normalised_over_the_class_axis():
    (case,) = load("""
        cases:
          - id: g
            probs: {shape: [3, 5, 2]}
            soft_labels: {shape: [3, 5, 2]}
        """)
    assert np.allclose(case.predictions.sum(axis=1), 1.0) and np.allclose(case.soft_labels.sum(axis=1), 1.0)
    (binary,) = load("""
        cases:
          - id: b
            loss: binary_cross_entropy
            logits: {shape: [4, 3]}
            soft_labels: {shape: [4, 3], low: 0.25, high: 0.5}
            weight: {shape: [4, 1, 1]}
            check_shapes: false
        """)
    assert binary.soft_labels.min() >= 0.25 and binary.soft_labels.max() < 0.5
    assert binary.weight.shape == (4, 1, 1)


def test_generated_arrays_are_regenerated_by_the_snippet_from_their_seed():
    (case,) = load("""
        cases:
          - id: g
            logits: {shape: [2, 3, 4], low: -2, high: 2, seed: 7}
            labels: {shape: [2, 4, 1], seed: 7}
            weight: {shape: [3], seed: 7}
        """)
    source = adapters.array_source(case)
    assert "default_rng(7)" in source and "np.array([" not in source  # drawn again, not written out
    names: dict = {"np": np}
    exec(source, names)
    for name, value in adapters.arrays(case).items():
        assert np.array_equal(names[name], value), name


def test_generated_arrays_are_checked_before_they_are_drawn(monkeypatch):
    assert (
        error("""
        cases:
          - id: g
            logits: {shape: [4, 3]}
            labels: {shape: [4], low: 0, high: 2}
        """).key
        == "labels"
    )
    assert (
        error("""
        cases:
          - id: g
            logits: {shape: [4, 3]}
            labels: {shape: [5]}
        """).key
        == "labels"
    )  # a shape that does not fit, unless check_shapes: false
    monkeypatch.setattr(cases, "MAX_ELEMENTS", 100)
    too_big = error("""
        cases:
          - id: g
            logits: {shape: [4, 3]}
            labels: {shape: [4]}
            weight: {shape: [1000]}
        """)
    assert too_big.key == "weight" and "1,000 numbers" in str(too_big)


def test_a_mistake_inside_a_generated_array_is_named_as_one():
    err = error("""
        cases:
          - id: g
            logits: {shape: [4, 3]}
            labels: {shap: [4]}
        """)
    assert err.key == "labels" and "unknown key 'shap' (a generated array takes shape, seed, low, high)" in err.message
