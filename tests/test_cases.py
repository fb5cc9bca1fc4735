"""Case files: what loads, how it expands, and how every bad input is reported (file, line, key)."""

import textwrap
from pathlib import Path

import numpy as np
import pytest

from conformance import cases
from conformance.errors import CaseError


def load(text):
    return cases.load_text(textwrap.dedent(text), "x.yaml")


def error(text):
    with pytest.raises(CaseError) as info:
        load(text)
    assert info.value.file == "x.yaml"
    return info.value


def by_id(loaded):
    return {case.id: case for case in loaded}


# ---------------------------------------------------------------- valid files


def test_minimal_case_becomes_float64_arrays_with_its_file_and_line():
    (case,) = load(
        """\
        cases:
          - id: plain
            logits: [[0.05, 0.95, 0], [0.1, 0.8, 0.1]]
            labels: [1, 2]
        """
    )
    assert (case.id, case.file, case.line, case.nodeid) == ("plain", "x.yaml", 2, "x.yaml::plain")
    assert case.predictions.dtype == np.float64
    np.testing.assert_array_equal(case.predictions, [[0.05, 0.95, 0], [0.1, 0.8, 0.1]])
    np.testing.assert_array_equal(case.labels, [1, 2])
    assert case.from_logits and case.soft_labels is None and case.weight is None
    assert (case.reduction, case.dtype, case.label_smoothing, case.ignore_index) == ("mean", "float32", 0.0, None)
    assert case.expect is None


def test_defaults_are_merged_under_each_case_and_the_case_wins():
    loaded = by_id(
        load(
            """\
            defaults:
              logits: [[1, 2, 3]]
              labels: [0]
              reduction: sum
            cases:
              - id: inherits
              - id: overrides
                reduction: none
                weight: [1, 2, 3]
            """
        )
    )
    assert loaded["inherits"].reduction == "sum"
    assert loaded["overrides"].reduction == "none"
    np.testing.assert_array_equal(loaded["overrides"].weight, [1, 2, 3])
    np.testing.assert_array_equal(loaded["inherits"].predictions, [[1, 2, 3]])
    assert loaded["inherits"].weight is None


def test_matrix_expands_to_one_case_per_value_in_order():
    loaded = load(
        """\
        defaults:
          logits: [[0.05, 0.95, 0], [0.1, 0.8, 0.1]]
          labels: [1, 2]
          matrix: {reduction: [none, mean, sum]}
        cases:
          - id: weighted
            weight: [1, 2, 3]
        """
    )
    assert [c.id for c in loaded] == ["weighted[reduction=none]", "weighted[reduction=mean]", "weighted[reduction=sum]"]
    assert [c.reduction for c in loaded] == ["none", "mean", "sum"]
    assert all(c.line == 6 for c in loaded)
    for case in loaded:
        np.testing.assert_array_equal(case.weight, [1, 2, 3])


def test_matrix_of_two_keys_is_the_cartesian_product_last_key_fastest():
    loaded = load(
        """\
        cases:
          - id: a
            logits: [[1, 2, 3]]
            labels: [0]
            matrix:
              reduction: [none, sum]
              label_smoothing: [0.0, 0.1, 0.2]
        """
    )
    assert [c.id for c in loaded] == [
        "a[reduction=none,label_smoothing=0.0]",
        "a[reduction=none,label_smoothing=0.1]",
        "a[reduction=none,label_smoothing=0.2]",
        "a[reduction=sum,label_smoothing=0.0]",
        "a[reduction=sum,label_smoothing=0.1]",
        "a[reduction=sum,label_smoothing=0.2]",
    ]
    assert [(c.reduction, c.label_smoothing) for c in loaded] == [
        ("none", 0.0),
        ("none", 0.1),
        ("none", 0.2),
        ("sum", 0.0),
        ("sum", 0.1),
        ("sum", 0.2),
    ]


def test_list_valued_matrix_values_appear_in_the_id_as_compact_json():
    loaded = load(
        """\
        cases:
          - id: w
            logits: [[1, 2, 3]]
            labels: [0]
            matrix:
              weight: [[1, 2, 3], [3, 2, 1]]
        """
    )
    assert [c.id for c in loaded] == ["w[weight=[1,2,3]]", "w[weight=[3,2,1]]"]
    np.testing.assert_array_equal(loaded[1].weight, [3, 2, 1])


def test_params_record_the_varied_and_the_fixed_values():
    loaded = load(
        """\
        cases:
          - id: a
            description: not a parameter
            logits: [[1, 2, 3]]
            labels: [0]
            ignore_index: -100
            matrix: {reduction: [none, sum]}
            expect: {groups: [[torch]]}
        """
    )
    assert [c.params["reduction"] for c in loaded] == ["none", "sum"]
    params = loaded[0].params
    assert params["ignore_index"] == -100
    assert params["labels"] == [0]
    assert not {"matrix", "expect", "description"} & set(params)


def test_single_expect_mapping_applies_to_every_expanded_case():
    loaded = load(
        """\
        cases:
          - id: a
            logits: [[1, 2, 3]]
            labels: [0]
            matrix: {reduction: [none, sum]}
            expect:
              groups: [[torch, paddle]]
              status: {tensorflow: error}
        """
    )
    for case in loaded:
        assert case.expect.groups == [["torch", "paddle"]]
        assert case.expect.status == {"tensorflow": "error"}


EXPECT_OVERRIDES = """\
    cases:
      - id: a
        logits: [[1, 2, 3]]
        labels: [0]
        matrix:
          reduction: [none, mean, sum]
          label_smoothing: [0.0, 0.1]
        expect:
          - groups: [[torch, paddle, tensorflow]]
            status: {tensorflow: ok}
          - when: {reduction: mean}
            groups: [[torch, paddle], [tensorflow]]
          - when: {reduction: [mean, sum], label_smoothing: 0.1}
            status: {tensorflow: error}
    """


def test_later_matching_expectation_overrides_only_the_fields_it_sets():
    loaded = by_id(load(EXPECT_OVERRIDES))
    plain = loaded["a[reduction=none,label_smoothing=0.0]"].expect
    assert plain.groups == [["torch", "paddle", "tensorflow"]]
    assert plain.status == {"tensorflow": "ok"}
    mean = loaded["a[reduction=mean,label_smoothing=0.0]"].expect
    assert mean.groups == [["torch", "paddle"], ["tensorflow"]]
    assert mean.status == {"tensorflow": "ok"}
    both = loaded["a[reduction=mean,label_smoothing=0.1]"].expect
    assert both.groups == [["torch", "paddle"], ["tensorflow"]]
    assert both.status == {"tensorflow": "error"}


def test_list_valued_when_matches_any_listed_value_and_all_keys_must_match():
    loaded = by_id(load(EXPECT_OVERRIDES))
    assert loaded["a[reduction=sum,label_smoothing=0.1]"].expect.status == {"tensorflow": "error"}
    assert loaded["a[reduction=sum,label_smoothing=0.0]"].expect.status == {"tensorflow": "ok"}
    assert loaded["a[reduction=none,label_smoothing=0.1]"].expect.status == {"tensorflow": "ok"}


def test_when_on_a_list_valued_parameter_compares_the_whole_list():
    loaded = load(
        """\
        cases:
          - id: w
            logits: [[1, 2, 3]]
            labels: [0]
            matrix:
              weight: [[1, 2, 3], [3, 2, 1], [1, 1, 1]]
            expect:
              - groups: [[torch]]
              - when: {weight: [3, 2, 1]}
                groups: [[paddle]]
              - when: {weight: [[1, 1, 1], [9, 9, 9]]}
                groups: [[tensorflow]]
        """
    )
    assert [c.expect.groups for c in loaded] == [[["torch"]], [["paddle"]], [["tensorflow"]]]


def test_case_that_no_expectation_entry_matches_has_no_expectation():
    loaded = load(
        """\
        cases:
          - id: a
            logits: [[1, 2, 3]]
            labels: [0]
            matrix: {reduction: [none, sum]}
            expect:
              when: {reduction: sum}
              groups: [[torch]]
        """
    )
    assert loaded[0].expect is None
    assert loaded[1].expect.groups == [["torch"]]


def test_when_matches_a_parameter_left_at_its_default():
    (case,) = load(
        """\
        cases:
          - id: a
            logits: [[1, 2, 3]]
            labels: [0]
            expect:
              - groups: [[torch]]
              - when: {reduction: mean}
                groups: [[paddle]]
        """
    )
    assert case.reduction == "mean"
    assert case.expect.groups == [["paddle"]]


def test_when_naming_an_unknown_key_is_rejected():
    err = error(
        """\
        cases:
          - id: a
            logits: [[1, 2, 3]]
            labels: [0]
            matrix: {reduction: [mean, sum]}
            expect:
              - groups: [[torch]]
              - when: {reductoin: mean}
                groups: [[paddle]]
        """
    )
    assert err.line == 8
    assert "reductoin" in err.message


RANDOM = """\
    cases:
      - id: r
        random: {shape: [4, 3, 2], seed: %d, scale: %s}
        labels: random
    """


def test_random_predictions_are_reproducible_from_the_seed():
    (first,) = load(RANDOM % (7, 1.0))
    (again,) = load(RANDOM % (7, 1.0))
    (other,) = load(RANDOM % (8, 1.0))
    assert first.predictions.shape == (4, 3, 2)
    assert first.from_logits
    np.testing.assert_array_equal(first.predictions, again.predictions)
    np.testing.assert_array_equal(first.labels, again.labels)
    assert not np.array_equal(first.predictions, other.predictions)


def test_random_scale_multiplies_the_same_draw():
    (unit,) = load(RANDOM % (7, 1.0))
    (scaled,) = load(RANDOM % (7, 2.5))
    np.testing.assert_allclose(scaled.predictions, 2.5 * unit.predictions)


def test_random_labels_are_class_indices_in_range():
    (case,) = load(
        """\
        cases:
          - id: r
            random: {shape: [200, 5, 3], seed: 1}
            labels: random
        """
    )
    assert case.labels.shape == (200, 3)
    assert np.issubdtype(case.labels.dtype, np.integer)
    assert case.labels.min() >= 0 and case.labels.max() < 5
    assert set(np.unique(case.labels)) == {0, 1, 2, 3, 4}


def test_random_soft_labels_are_distributions_over_the_class_axis():
    (case,) = load(
        """\
        cases:
          - id: r
            random: {shape: [4, 3, 2], seed: 1}
            soft_labels: random
        """
    )
    assert case.labels is None
    assert case.soft_labels.shape == (4, 3, 2)
    np.testing.assert_allclose(case.soft_labels.sum(axis=1), 1.0)


def test_k_dim_labels_are_the_prediction_shape_without_the_class_axis():
    (case,) = load(
        """\
        cases:
          - id: kdim
            logits: [[[1, 2], [3, 4], [5, 6]], [[0, 0], [1, 1], [2, 2]]]
            labels: [[0, 2], [1, 1]]
        """
    )
    assert case.predictions.shape == (2, 3, 2)
    assert case.num_classes == 3
    np.testing.assert_array_equal(case.labels, [[0, 2], [1, 1]])


def test_label_equal_to_the_ignore_index_is_accepted_even_outside_the_classes():
    (case,) = load(
        """\
        cases:
          - id: a
            logits: [[1, 2, 3], [1, 2, 3]]
            labels: [-100, 2]
            ignore_index: -100
        """
    )
    np.testing.assert_array_equal(case.labels, [-100, 2])
    assert case.ignore_index == -100


def test_probabilities_and_soft_labels_are_accepted_in_range():
    (case,) = load(
        """\
        cases:
          - id: p
            probs: [[0.2, 0.3, 0.5]]
            soft_labels: [[0, 1, 0]]
        """
    )
    assert not case.from_logits
    assert case.labels is None
    np.testing.assert_array_equal(case.soft_labels, [[0, 1, 0]])


# ---------------------------------------------------------------- rejected files


def test_error_text_is_file_line_key_then_message():
    err = error(
        """\
        cases:
          - id: a
            logits: [[1, 2, 3]]
            labels: [5]
        """
    )
    assert str(err) == "x.yaml:4 (key 'labels'): case 'a': label 5 is outside [0, 3) and there is no ignore_index"


def test_label_out_of_range_without_ignore_index_is_rejected():
    err = error(
        """\
        cases:
          - id: a
            logits: [[1, 2, 3], [1, 2, 3]]
            labels: [0, 3]
        """
    )
    assert (err.line, err.key) == (4, "labels")
    assert "label 3 is outside [0, 3)" in err.message


def test_label_out_of_range_that_is_not_the_ignore_index_is_rejected():
    err = error(
        """\
        cases:
          - id: a
            logits: [[1, 2, 3]]
            labels: [-100]
            ignore_index: -1
        """
    )
    assert (err.line, err.key) == (4, "labels")
    assert "label -100 is outside [0, 3) and is not the ignore_index -1" in err.message


def test_non_integer_labels_are_rejected():
    err = error(
        """\
        cases:
          - id: a
            logits: [[1, 2, 3]]
            labels: [0.5]
        """
    )
    assert (err.line, err.key) == (4, "labels")
    assert "integer class indices" in err.message


def test_weight_of_the_wrong_length_is_rejected():
    err = error(
        """\
        cases:
          - id: a
            logits: [[1, 2, 3]]
            labels: [0]
            weight: [1, 2]
        """
    )
    assert (err.line, err.key) == (5, "weight")
    assert "weight has 2 entries but the predictions have C=3 classes" in err.message


def test_weight_error_from_defaults_points_at_the_defaults_line():
    err = error(
        """\
        defaults:
          weight: [1, 2, 3, 4]
        cases:
          - id: a
            logits: [[1, 2, 3]]
            labels: [0]
        """
    )
    assert (err.line, err.key) == (2, "weight")
    assert "4 entries" in err.message


def test_error_in_a_matrix_value_names_the_expanded_case_and_the_matrix_line():
    err = error(
        """\
        cases:
          - id: a
            logits: [[1, 2, 3]]
            labels: [0]
            matrix:
              weight: [[1, 2, 3], [1, 2]]
        """
    )
    assert (err.line, err.key) == (6, "weight")
    assert "case 'a[weight=[1,2]]'" in err.message


@pytest.mark.parametrize(
    "key, line",
    [("logits", "logits: [[1, 2, 3], [1, 2]]"), ("soft_labels", "soft_labels: [[0, 1, 0], [1, 0]]")],
)
def test_ragged_arrays_are_rejected(key, line):
    other = "labels: [0, 1]" if key == "logits" else "logits: [[1, 2, 3], [1, 2, 3]]"
    err = error(f"cases:\n  - id: a\n    {other}\n    {line}\n")
    assert (err.line, err.key) == (4, key)
    assert "ragged" in err.message


def test_ragged_k_dim_labels_are_rejected():
    err = error(
        """\
        cases:
          - id: a
            logits: [[[1, 2], [3, 4], [5, 6]], [[1, 2], [3, 4], [5, 6]]]
            labels: [[0, 1], [0]]
        """
    )
    assert (err.line, err.key) == (4, "labels")
    assert "ragged" in err.message


@pytest.mark.parametrize("value, fragment", [("1.0", "less than 1"), ("-0.1", "greater than or equal to 0")], ids=["one", "negative"])
def test_label_smoothing_outside_zero_one_is_rejected(value, fragment):
    err = error(
        f"""\
        cases:
          - id: a
            logits: [[1, 2, 3]]
            labels: [0]
            label_smoothing: {value}
        """
    )
    assert (err.line, err.key) == (5, "label_smoothing")
    assert fragment in err.message


def test_duplicate_case_ids_are_rejected_at_the_second_one():
    err = error(
        """\
        cases:
          - id: a
            logits: [[1, 2, 3]]
            labels: [0]
          - id: a
            logits: [[1, 2, 3]]
            labels: [1]
        """
    )
    assert (err.line, err.key) == (5, "id")
    assert "duplicate case id 'a' (first used on line 2)" in err.message


DUPLICATE_AFTER_EXPANSION = """\
    cases:
      - id: a
        logits: [[1, 2, 3]]
        labels: [0]
        matrix:
          label_smoothing: [0.1, 0.10]
    """


def test_ids_that_collide_only_after_matrix_expansion_are_rejected():
    err = error(DUPLICATE_AFTER_EXPANSION)
    assert "expand to the same case id 'a[label_smoothing=0.1]'" in err.message


def test_ids_that_collide_after_expansion_are_reported_at_the_case():
    err = error(DUPLICATE_AFTER_EXPANSION)
    assert err.line in (2, 6)
    assert err.key is not None


def test_unknown_key_is_rejected_with_a_close_match():
    err = error(
        """\
        cases:
          - id: a
            logits: [[1, 2, 3]]
            labels: [0]
            wieght: [1, 2, 3]
        """
    )
    assert (err.line, err.key) == (5, "wieght")
    assert "unknown key 'wieght'; did you mean 'weight'?" in err.message


def test_unknown_key_without_a_close_match_lists_the_known_keys():
    err = error(
        """\
        cases:
          - id: a
            logits: [[1, 2, 3]]
            labels: [0]
            zzzzzz: 1
        """
    )
    assert (err.line, err.key) == (5, "zzzzzz")
    assert "known keys: id, description" in err.message


def test_unknown_top_level_key_is_rejected_with_a_close_match():
    err = error(
        """\
        defaults: {labels: [0]}
        case: []
        """
    )
    assert (err.line, err.key) == (2, "case")
    assert "did you mean 'cases'?" in err.message


def test_unknown_key_with_a_block_value_is_reported_at_the_key_line():
    err = error(
        """\
        cases:
          - id: a
            logits: [[1, 2, 3]]
            labels: [0]
            wieght:
              - 1
              - 2
              - 3
        """
    )
    assert (err.line, err.key) == (5, "wieght")


def test_case_without_id_is_rejected():
    err = error(
        """\
        cases:
          - description: no id here
            logits: [[1, 2, 3]]
            labels: [0]
        """
    )
    assert (err.line, err.key) == (2, "id")
    assert "needs an 'id'" in err.message


def test_id_with_forbidden_characters_is_rejected():
    err = error(
        """\
        cases:
          - id: "a b"
            logits: [[1, 2, 3]]
            labels: [0]
        """
    )
    assert (err.line, err.key) == (2, "id")
    assert "'a b'" in err.message


BOTH_PREDICTIONS = """\
    cases:
      - id: a
        logits: [[1, 2, 3]]
        probs: [[0.2, 0.3, 0.5]]
        labels: [0]
    """

NO_TARGETS = """\
    cases:
      - id: a
        logits: [[1, 2, 3]]
    """


def test_both_logits_and_probs_is_rejected():
    err = error(BOTH_PREDICTIONS)
    assert (err.line, err.key) == (4, "probs")
    assert "exactly one of logits, probs, random (got logits and probs)" in err.message


def test_neither_labels_nor_soft_labels_is_rejected():
    err = error(NO_TARGETS)
    assert err.line == 2
    assert "exactly one of labels, soft_labels (got none)" in err.message


@pytest.mark.parametrize(
    "text, keys",
    [(BOTH_PREDICTIONS, {"logits", "probs"}), (NO_TARGETS, {"labels", "soft_labels"})],
    ids=["both", "neither"],
)
def test_exactly_one_of_errors_name_a_key(text, keys):
    assert error(text).key in keys


def test_probs_outside_zero_one_are_rejected():
    err = error(
        """\
        cases:
          - id: a
            probs: [[1.2, 0.3, 0.5]]
            labels: [0]
        """
    )
    assert (err.line, err.key) == (3, "probs")
    assert "probs must lie in [0, 1]" in err.message


def test_soft_labels_outside_zero_one_are_rejected():
    err = error(
        """\
        cases:
          - id: a
            logits: [[1, 2, 3]]
            soft_labels: [[0.5, 1.5, 0]]
        """
    )
    assert (err.line, err.key) == (4, "soft_labels")
    assert "must lie in [0, 1]" in err.message


def test_soft_labels_of_the_wrong_shape_are_rejected():
    err = error(
        """\
        cases:
          - id: a
            logits: [[1, 2, 3]]
            soft_labels: [[0.2, 0.8]]
        """
    )
    assert (err.line, err.key) == (4, "soft_labels")
    assert "soft_labels have shape [1, 2], expected the predictions' [1, 3]" in err.message


def test_labels_of_the_wrong_shape_are_rejected():
    err = error(
        """\
        cases:
          - id: a
            logits: [[1, 2, 3]]
            labels: [0, 1]
        """
    )
    assert (err.line, err.key) == (4, "labels")
    assert "labels have shape [2], expected [1]" in err.message


def test_k_dim_labels_of_the_wrong_shape_are_rejected():
    err = error(
        """\
        cases:
          - id: a
            logits: [[[1, 2], [3, 4], [5, 6]]]
            labels: [0, 2]
        """
    )
    assert (err.line, err.key) == (4, "labels")
    assert "labels have shape [2], expected [1, 2]" in err.message


def test_predictions_without_a_class_axis_are_rejected():
    err = error(
        """\
        cases:
          - id: a
            logits: [1, 2, 3]
            labels: [0]
        """
    )
    assert (err.line, err.key) == (3, "logits")
    assert "(N, C)" in err.message


def test_random_shape_without_a_class_axis_is_rejected():
    err = error(
        """\
        cases:
          - id: a
            random: {shape: [4]}
            labels: random
        """
    )
    assert (err.line, err.key) == (3, "random")
    assert "(N, C, d1, ...)" in err.message  # an empty class axis, shape [2, 0], is a case of its own (C = 0)


@pytest.mark.parametrize(
    "expect, line, key",
    [
        ("expect:\n      statuss: {torch: ok}", 6, "expect.0.statuss"),
        (
            "expect:\n      - groups: [[torch]]\n      - when: {reduction: sum}\n        statuss: {torch: ok}",
            8,
            "expect.1.statuss",
        ),
    ],
    ids=["mapping", "second-entry"],
)
def test_unknown_key_inside_expect_is_rejected_with_a_close_match(expect, line, key):
    err = error(f"cases:\n  - id: a\n    logits: [[1, 2, 3]]\n    labels: [0]\n    {expect}\n")
    assert (err.line, err.key) == (line, key)
    assert "unknown key 'statuss'; did you mean 'status'?" in err.message


def test_unknown_status_value_inside_expect_is_rejected():
    err = error(
        """\
        cases:
          - id: a
            logits: [[1, 2, 3]]
            labels: [0]
            expect:
              status: {torch: okay}
        """
    )
    assert (err.line, err.key) == (6, "expect.0.status.torch")
    assert "'okay'" in err.message


def test_unknown_matrix_key_is_rejected_with_a_close_match():
    err = error(
        """\
        cases:
          - id: a
            logits: [[1, 2, 3]]
            labels: [0]
            matrix:
              reductoin: [none, sum]
        """
    )
    assert (err.line, err.key) == (6, "matrix.reductoin")
    assert "did you mean 'reduction'?" in err.message


@pytest.mark.parametrize(
    "entry, fragment",
    [("id: [b, c]", "'id' cannot vary in a matrix"), ("reduction: sum", "must be a non-empty list")],
    ids=["id", "scalar"],
)
def test_bad_matrix_entries_are_rejected(entry, fragment):
    err = error(f"cases:\n  - id: a\n    logits: [[1, 2, 3]]\n    labels: [0]\n    matrix:\n      {entry}\n")
    assert err.line == 6
    assert err.key.startswith("matrix.")
    assert fragment in err.message


def test_bad_reduction_value_is_rejected():
    err = error(
        """\
        cases:
          - id: a
            logits: [[1, 2, 3]]
            labels: [0]
            reduction: average
        """
    )
    assert (err.line, err.key) == (5, "reduction")
    assert "'none', 'mean', 'sum'" in err.message
    assert "'average'" in err.message


def test_bad_reduction_value_inside_a_matrix_points_at_the_matrix_line():
    err = error(
        """\
        cases:
          - id: a
            logits: [[1, 2, 3]]
            labels: [0]
            matrix:
              reduction: [sum, average]
        """
    )
    assert (err.line, err.key) == (6, "reduction")
    assert "'average'" in err.message


def test_bad_nested_value_names_the_dotted_key():
    err = error(
        """\
        cases:
          - id: a
            logits: [[1, 2, 3]]
            labels: [0]
            tolerance: {rtol: -1}
        """
    )
    assert (err.line, err.key) == (5, "tolerance.rtol")
    assert "greater than or equal to 0" in err.message


@pytest.mark.parametrize(
    "text, line, key, fragment",
    [
        ("- id: a\n", 1, None, "a case file is a mapping"),
        ("cases: []\n", 1, "cases", "non-empty list"),
        ("defaults: [1]\ncases:\n  - id: a\n", 1, "defaults", "'defaults:' must be a mapping"),
        ("cases:\n  - just a string\n", 2, None, "each case is a mapping"),
    ],
    ids=["not-a-mapping", "no-cases", "defaults-not-a-mapping", "case-not-a-mapping"],
)
def test_wrong_file_structure_is_rejected(text, line, key, fragment):
    err = error(text)
    assert (err.line, err.key) == (line, key)
    assert fragment in err.message


# ---------------------------------------------------------------- files on disk


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")


def one_case(case_id):
    return f"cases:\n  - id: {case_id}\n    logits: [[1, 2, 3]]\n    labels: [0]\n"


def test_load_paths_reads_yaml_and_yml_recursively_in_sorted_order(tmp_path, monkeypatch):
    root = tmp_path / "cases"
    write(root / "z.yaml", one_case("z"))
    write(root / "m" / "inner.yml", one_case("inner"))
    write(root / "a.yaml", one_case("a"))
    write(root / "notes.txt", "not a case file")
    write(root / "schema.json", "{}")
    monkeypatch.chdir(tmp_path)
    loaded = cases.load_paths([Path("cases")])
    assert [(c.file, c.id) for c in loaded] == [
        ("cases/a.yaml", "a"),
        ("cases/m/inner.yml", "inner"),
        ("cases/z.yaml", "z"),
    ]


def test_load_paths_reports_the_bad_file_by_its_path(tmp_path, monkeypatch):
    write(tmp_path / "cases" / "good.yaml", one_case("good"))
    write(tmp_path / "cases" / "sub" / "bad.yaml", one_case("bad") + "    weight: [1]\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CaseError) as info:
        cases.load_paths([Path("cases")])
    assert (info.value.file, info.value.line, info.value.key) == ("cases/sub/bad.yaml", 5, "weight")


def test_load_paths_rejects_a_missing_path(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(CaseError) as info:
        cases.load_paths([missing])
    assert info.value.file == str(missing)
    assert "no such file or directory" in info.value.message


# ---------------------------------------------------------------- the forms users pass (issue 19)

ARTICLE = "[[0.05, 0.95, 0], [0.1, 0.8, 0.1]]"


def test_dtype_mapping_gives_each_array_its_own_dtype_and_the_rest_the_predictions():
    (case,) = load(
        f"""\
        cases:
          - id: amp
            logits: {ARTICLE}
            labels: [1, 2]
            weight: [1, 2, 3]
            sample_weight: [1, 2]
            dtype: {{logits: float16, weight: float32}}
        """
    )
    assert case.dtype == "float16" and case.params["dtype"] == {"logits": "float16", "weight": "float32"}
    assert [case.dtype_of(k) for k in ("predictions", "weight", "sample_weight")] == ["float16", "float32", "float16"]


def test_dtype_mapping_without_the_predictions_leaves_them_float32():
    (case,) = load(f"cases:\n  - {{id: a, logits: {ARTICLE}, labels: [1, 2], weight: [1, 2, 3], dtype: {{weight: float64}}}}\n")
    assert (case.dtype, case.dtype_of("weight")) == ("float32", "float64")


@pytest.mark.parametrize(
    "mapping, key, words",
    [
        ("{logits: float16, wieght: float32}", "dtype.wieght", "did you mean 'weight'"),
        ("{probs: float16}", "dtype.probs", "gives its predictions as logits"),
        ("{labels: float32}", "dtype.labels", "labels_dtype"),
    ],
    ids=["typo", "other-predictions-key", "index-labels"],
)
def test_a_bad_dtype_mapping_names_its_line_and_inner_key(mapping, key, words):
    info = error(
        f"""\
        cases:
          - id: amp
            logits: {ARTICLE}
            labels: [1, 2]
            dtype:
              {mapping[1:-1].replace(", ", chr(10) + "              ")}
        """
    )
    assert info.key == key and words in info.message
    assert info.line == 6 + next(i for i, part in enumerate(mapping[1:-1].split(", ")) if part.startswith(key.split(".")[1]))


def test_a_bad_dtype_value_inside_the_mapping_is_a_validation_error_naming_it():
    info = error(f"cases:\n  - id: a\n    logits: {ARTICLE}\n    labels: [1, 2]\n    dtype: {{logits: float8}}\n")
    assert info.line == 5 and info.key.startswith("dtype")


def test_labels_dtype_int32_is_kept_and_checked():
    (case,) = load(f"cases:\n  - {{id: a, logits: {ARTICLE}, labels: [1, 2], labels_dtype: int32}}\n")
    assert case.labels_dtype == "int32" and case.params["labels_dtype"] == "int32"
    info = error(f"cases:\n  - id: a\n    logits: {ARTICLE}\n    labels: [1, 2]\n    labels_dtype: int16\n")
    assert (info.line, info.key) == (5, "labels_dtype")


def test_labels_dtype_on_binary_targets_says_to_give_their_dtype():
    info = error("cases:\n  - id: a\n    loss: binary_cross_entropy\n    logits: [0.5, 1]\n    labels: [0, 1]\n    labels_dtype: int32\n")
    assert (info.line, info.key) == (6, "labels_dtype") and "dtype: {labels" in info.message


def test_labels_with_a_trailing_axis_of_one_are_kept_without_it_and_flagged():
    loaded = load(
        """\
        cases:
          - {id: flat, logits: [[0.05, 0.95, 0], [0.1, 0.8, 0.1]], labels: [[1], [2]]}
          - {id: kdim, random: {shape: [2, 3, 2]}, labels: [[[0], [1]], [[2], [0]]]}
          - {id: plain, logits: [[0.05, 0.95, 0], [0.1, 0.8, 0.1]], labels: [1, 2]}
        """
    )
    flat, kdim, plain = loaded
    assert flat.trailing_label_axis and flat.labels.tolist() == [1, 2]
    assert kdim.trailing_label_axis and kdim.labels.shape == (2, 2)
    assert not plain.trailing_label_axis


def test_labels_of_another_shape_name_both_accepted_forms():
    info = error(f"cases:\n  - id: a\n    logits: {ARTICLE}\n    labels: [[1, 2]]\n")
    assert (info.line, info.key) == (4, "labels") and "[2]" in info.message and "[2, 1]" in info.message


def test_random_weights_are_positive_seeded_and_per_class_or_per_element():
    soft, binary = load(
        """\
        cases:
          - {id: soft, random: {shape: [4, 3], seed: 5}, labels: random, weight: random}
          - {id: bce, loss: binary_cross_entropy, random: {shape: [4, 3], seed: 5}, labels: random, weight: random, pos_weight: random}
        """
    )
    assert soft.weight.shape == (3,) and binary.weight.shape == (4, 3) and binary.pos_weight.shape == (3,)
    for arr in (soft.weight, binary.weight, binary.pos_weight):
        assert np.all((arr >= 0.5) & (arr < 2.0))
    # the documented draw: numpy's default_rng(seed + 2) (weight) / (seed + 3) (pos_weight), uniform in [0.5, 2)
    np.testing.assert_array_equal(soft.weight, np.random.default_rng(7).uniform(0.5, 2.0, 3))
    np.testing.assert_array_equal(binary.pos_weight, np.random.default_rng(8).uniform(0.5, 2.0, 3))
    again = load("cases:\n  - {id: soft, random: {shape: [4, 3], seed: 5}, labels: random, weight: random}\n")[0]
    np.testing.assert_array_equal(again.weight, soft.weight)


def test_a_bad_random_weight_word_names_the_key():
    info = error(f"cases:\n  - id: a\n    logits: {ARTICLE}\n    labels: [1, 2]\n    weight: randum\n")
    assert (info.line, info.key.split(".")[0]) == (5, "weight")


def test_generated_probabilities_are_a_softmax_over_classes_or_a_sigmoid():
    soft, binary = load(
        """\
        cases:
          - {id: soft, random: {shape: [3, 4, 2], seed: 1, probabilities: true}, labels: random}
          - {id: bce, loss: binary_cross_entropy, random: {shape: [3, 4], seed: 1, probabilities: true}, labels: random}
        """
    )
    logits = np.random.default_rng(1).standard_normal((3, 4, 2))  # the same draw as random logits
    assert not soft.from_logits and not binary.from_logits
    np.testing.assert_allclose(soft.predictions, np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True), rtol=1e-14)
    flat = np.random.default_rng(1).standard_normal((3, 4))
    np.testing.assert_allclose(binary.predictions, 1 / (1 + np.exp(-flat)), rtol=1e-14)


def test_a_bad_probabilities_flag_names_random():
    info = error("cases:\n  - id: a\n    random: {shape: [2, 3], probabilities: maybe}\n    labels: random\n")
    assert info.line == 3 and info.key == "random.probabilities"


def test_an_empty_class_axis_and_an_empty_batch_load():
    loaded = load(
        """\
        cases:
          - {id: c0, logits: [[], []], labels: [0, 0]}
          - {id: c0_random, random: {shape: [2, 0]}, labels: random}
          - {id: n0, random: {shape: [0, 3, 2]}, labels: random, weight: random}
          - {id: c0_soft, logits: [[], []], soft_labels: [[], []]}
        """
    )
    assert [case.predictions.shape for case in loaded] == [(2, 0), (2, 0), (0, 3, 2), (2, 0)]
    assert loaded[0].num_classes == 0 and loaded[1].labels.tolist() == [0, 0]


def test_check_shapes_false_keeps_mismatched_shapes_and_expects_every_result_to_raise():
    (case,) = load(
        f"""\
        cases:
          - id: batch
            logits: {ARTICLE}
            labels: [1, 2, 0]
            check_shapes: false
            expect: {{status: {{jax: ok}}}}
        """
    )
    assert not case.check_shapes and case.labels.shape == (3,)
    assert case.expect.status == {"*": "error", "jax": "ok"}
    wanted = case.expect.statuses({"torch": "error", "jax": "ok", "tensorflow": "ok", "paddle:nll": "unsupported"})
    assert wanted == {"jax": "ok", "torch": "error", "tensorflow": "error"}


def test_check_shapes_false_on_fitting_shapes_names_the_key():
    info = error(f"cases:\n  - id: a\n    logits: {ARTICLE}\n    labels: [1, 2]\n    check_shapes: false\n")
    assert (info.line, info.key) == (5, "check_shapes") and "every shape of this case fits" in info.message


def test_check_shapes_takes_a_boolean():
    info = error(f"cases:\n  - id: a\n    logits: {ARTICLE}\n    labels: [1, 2]\n    check_shapes: sometimes\n")
    assert (info.line, info.key) == (5, "check_shapes")


def test_a_mismatched_sample_weight_or_binary_target_counts_as_a_mismatch():
    loaded = load(
        f"""\
        cases:
          - {{id: sw, logits: {ARTICLE}, labels: [1, 2], sample_weight: [1, 2, 3], check_shapes: false}}
          - {{id: bce, loss: binary_cross_entropy, logits: [0.5, 1], labels: [[0], [1]], check_shapes: false}}
          - {{id: weight, logits: {ARTICLE}, labels: [1, 2], weight: [1, 2], check_shapes: false}}
        """
    )
    assert [case.check_shapes for case in loaded] == [False, False, False]


def test_the_status_wildcard_is_not_an_unknown_result_key():
    from conformance import cli

    loaded = load(f"cases:\n  - {{id: a, logits: {ARTICLE}, labels: [1, 2, 0], check_shapes: false, expect: {{status: {{'*': error}}}}}}\n")
    cli.check_keys(loaded)


# ---------------------------------------------------------------- large files, read case by case (issue 26)


def exported(count, bad_at=None):
    """A case file as a data set export writes one: `count` cases, every array written out (float32
    values printed in full); the case at index `bad_at` misspells `weight`. Returns the text and the
    line of the misspelt key."""
    rng = np.random.default_rng(0)
    lines = ["cases:"]
    bad_line = None
    for i in range(count):
        lines.append(f"- id: export_{i}")
        lines.append("  logits:")
        lines += [f"  - [{', '.join(f'{x:.9g}' for x in row)}]" for row in rng.normal(0, 2, (6, 5)).astype(np.float32)]
        lines.append(f"  labels: {rng.integers(0, 5, 6).tolist()}")
        if i == bad_at:
            lines.append("  wieght: [1, 2, 3, 4, 5]")
            bad_line = len(lines)
    return "\n".join(lines) + "\n", bad_line


def test_a_long_file_is_read_in_memory_that_does_not_grow_with_it(tmp_path):
    """Issue 26: a 2,000-case export (0.9 MB) took a 58 MB peak to load on 1ecca7c (the whole file's node
    tree, about 100x the text, then every case in a list); read case by case it takes under 2 MB
    (tracemalloc). The bound leaves room for the cases of one item and the ids kept for duplicates."""
    import tracemalloc

    path = tmp_path / "export.yaml"
    path.write_text(exported(2000)[0], encoding="utf-8")
    tracemalloc.start()
    try:
        count = sum(1 for _ in cases.read([path]))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert count == 2000
    assert peak < 15e6, f"loading a 2,000-case file peaked at {peak / 1e6:.1f} MB"


def test_cases_come_out_as_they_are_read(tmp_path):
    """A case is validated and handed on before the next is read: the first cases of a file come out
    before a bad one further on is reached (`conformance run` reads them all before running any)."""
    text, line = exported(50, bad_at=40)
    path = tmp_path / "export.yaml"
    path.write_text(text, encoding="utf-8")
    stream = cases.read([path])
    assert [next(stream).id for _ in range(40)] == [f"export_{i}" for i in range(40)]
    with pytest.raises(CaseError) as info:
        list(stream)
    assert (info.value.file, info.value.line, info.value.key) == (str(path), line, "wieght")


def test_a_bad_case_in_the_middle_of_a_long_file_names_its_file_line_and_key(tmp_path):
    text, line = exported(1000, bad_at=500)
    path = tmp_path / "export.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CaseError) as info:
        cases.load_paths([path])
    assert (info.value.file, info.value.line, info.value.key) == (str(path), line, "wieght")
    assert "did you mean 'weight'?" in info.value.message


def test_defaults_after_the_cases_apply_as_before_them():
    """`defaults:` may come after `cases:` (a second reader finds it before the first case needs it)."""
    body = "cases:\n  - id: a\n    labels: [1]\n  - id: b\n    labels: [0]\n    weight: [1, 2]\n"
    defaults = "defaults:\n  logits: [[0.5, 1.5]]\n  weight: [2, 1]\n"
    before, after = load(defaults + body), load(body + defaults)
    assert [c.id for c in after] == ["a", "b"]
    for first, second in zip(before, after, strict=True):
        assert np.array_equal(first.predictions, second.predictions)
        assert np.array_equal(first.weight, second.weight)
        assert first.params == second.params
    assert list(after[0].weight) == [2, 1]  # from the defaults
    assert list(after[1].weight) == [1, 2]  # the case's own


def test_an_error_in_defaults_after_the_cases_names_its_line():
    err = error("cases:\n  - id: a\n    labels: [1]\ndefaults:\n  logits: [[0.5, 1.5]]\n  wieght: [2, 1]\n")
    assert (err.line, err.key) == (6, "wieght")


def test_a_file_without_cases_or_with_a_second_cases_key_is_rejected():
    assert error("defaults: {labels: [0]}\n").key == "cases"
    err = error("cases:\n  - {id: a, logits: [[1, 2]], labels: [0]}\ncases: []\n")
    assert (err.line, err.key) == (3, "cases")


def test_a_file_that_is_not_utf8_is_an_error_naming_it_even_read_as_a_stream(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b'cases:\n  - id: a\n    description: "caf\xe9"\n')
    with pytest.raises(CaseError) as info:
        cases.load_paths([path])
    assert info.value.file == str(path)
    assert info.value.message.startswith("cannot read the file: 'utf-8' codec can't decode")


# ---------------------------------------------------------------- timeout


def test_a_case_s_own_timeout_is_kept_as_seconds():
    (case,) = load("cases:\n  - {id: big, logits: [[1, 2]], labels: [0], timeout: 1e3}\n")
    assert case.timeout == 1000.0


@pytest.mark.parametrize("value", ["0", "-1", ".inf", ".nan", "soon", "no"])
def test_a_timeout_that_is_no_finite_number_of_seconds_names_the_key(value):
    """Protects the bound on every wait: `timeout: .inf` would let a hung case hold the run for ever."""
    bad = error(f"cases:\n  - id: a\n    logits: [[1, 2]]\n    labels: [0]\n    timeout: {value}\n")
    assert (bad.line, bad.key) == (5, "timeout")
    assert "expected a" in str(bad)
