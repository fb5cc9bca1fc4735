"""Safe YAML loading with line numbers, duplicate-key rejection, and the YAML 1.1 pitfalls of case files."""

import contextlib
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from conformance import cases, yamlfile
from conformance.errors import CaseError


def load(text):
    return yamlfile.load(textwrap.dedent(text), "y.yaml")


def error(text):
    with pytest.raises(CaseError) as info:
        load(text)
    assert info.value.file == "y.yaml"
    return info.value


def test_document_matches_safe_load():
    text = """\
        cases:
          - id: a
            logits: [[1, 2.5, -3]]
            labels: [0]
            description: text
        """
    doc, _ = load(text)
    assert doc == yaml.safe_load(textwrap.dedent(text))


def test_lines_are_recorded_for_nested_values():
    _, lines = load(
        """\
        cases:
          - id: a
            logits:
              - [1, 2, 3]
              - [4, 5, 6]
            expect:
              groups: [[torch, paddle], [tensorflow]]
        """
    )
    assert lines[("cases", 0)] == 2
    assert lines[("cases", 0, "id")] == 2
    assert lines[("cases", 0, "logits", 0)] == 4
    assert lines[("cases", 0, "logits", 1, 2)] == 5
    assert lines[("cases", 0, "expect", "groups", 1, 0)] == 7


def test_empty_document_is_none():
    assert yamlfile.load("", "y.yaml") == (None, {})


def test_duplicate_key_is_rejected_naming_the_key_and_its_second_line():
    err = error(
        """\
        cases:
          - id: a
            weight: [1, 2]
            id: b
        """
    )
    assert (err.line, err.key) == (4, "id")
    assert "duplicate key 'id'" in err.message


def test_duplicate_top_level_key_is_rejected():
    err = error(
        """\
        cases:
          - id: a
        cases:
          - id: b
        """
    )
    assert (err.line, err.key) == (3, "cases")


def test_duplicate_key_is_rejected_through_the_case_loader():
    with pytest.raises(CaseError) as info:
        cases.load_text("cases:\n  - id: a\n    labels: [0]\n    labels: [1]\n", "x.yaml")
    assert (info.value.file, info.value.line, info.value.key) == ("x.yaml", 4, "labels")


@pytest.mark.parametrize(
    "tagged",
    ["!!python/object/apply:os.system 'echo hi'", "!!python/name:os.system ''"],
    ids=["apply-scalar", "name"],
)
def test_python_tags_on_scalars_are_rejected_with_the_line(tagged):
    err = error(f"a: 1\nb: {tagged}\n")
    assert err.line == 2
    assert "python/" in err.message


def test_python_tags_never_run_code(tmp_path):
    marker = tmp_path / "ran"
    with contextlib.suppress(CaseError):
        yamlfile.load(f"a: !!python/object/apply:os.system ['touch {marker}']\n", "y.yaml")
    assert not marker.exists()


@pytest.mark.parametrize(
    "tagged",
    ["!!python/object/apply:os.system ['echo hi']", "!!python/object:collections.OrderedDict {}"],
    ids=["apply-sequence", "object-mapping"],
)
def test_python_tags_on_collections_are_rejected(tagged):
    err = error(f"a: 1\nb: {tagged}\n")
    assert err.line == 2


@pytest.mark.parametrize(
    "text, line",
    [("a: 1\nb: [1, 2\nc: 3\n", 3), ("a: 1\n  b: 2\n", 2), ("a: 1\n---\nb: 2\n", 2)],
    ids=["unclosed-flow", "bad-indent", "two-documents"],
)
def test_invalid_yaml_is_reported_with_its_line(text, line):
    err = error(text)
    assert err.line == line
    assert err.message.startswith("not valid YAML:")


def test_non_scalar_mapping_key_is_rejected():
    err = error("? [a, b]\n: 1\n")
    assert err.line == 1
    assert "plain scalar" in err.message


def test_recursive_alias_is_a_case_error():
    error("cases: &loop\n  - *loop\n")


ALIAS_BOMB = """\
a: &a [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g, *g]
cases: *h
"""


def test_alias_bomb_is_a_case_error_naming_the_alias_within_a_second():
    """Protects the loader against an alias bomb: 8 lines of 10 aliases each reach 10^8 numbers (line 8
    alone holds 10 * 10^7); it used to hang. Counted by hand: line 2 reaches 10 * 11 values (each `*a`
    is the list and its 10 numbers), line 3 10 * 111, line 4 10 * 1,111, line 5 10 * 11,111 (123,440 in
    all), and on line 6 each `*e` adds 111,111: the 8th one passes 1,000,000."""
    started = time.monotonic()
    with pytest.raises(CaseError) as info:
        yamlfile.load(ALIAS_BOMB, "bomb.yaml")
    assert time.monotonic() - started < 1.0
    assert (info.value.file, info.value.line) == ("bomb.yaml", 6)
    assert "more than 1,000,000 values" in info.value.message
    assert str(info.value).startswith("bomb.yaml:6: the aliases up to this one reach more than 1,000,000 values")
    with pytest.raises(CaseError):  # the case loader (the CLI's exit-2 path) gets the same error
        cases.load_text(ALIAS_BOMB, "bomb.yaml")
    assert time.monotonic() - started < 1.0


def test_alias_limit_counts_only_values_reached_through_aliases(monkeypatch):
    """Protects ordinary files from the alias limit: a long list written out counts nothing, an alias
    counts its whole expansion, and the error names the alias that crosses the limit (line 3 here:
    `*a` is 1 + 4 values, so the third alias reaches 15 > 12)."""
    monkeypatch.setattr(yamlfile, "ALIAS_LIMIT", 12)
    doc, _ = yamlfile.load(f"note: a * b\nlong: {list(range(40))}\n", "y.yaml")  # a '*' but no alias
    assert doc == {"note": "a * b", "long": list(range(40))}
    doc, _ = yamlfile.load("a: &a [1, 2, 3, 4]\nb: [*a, *a]\n", "y.yaml")
    assert doc == {"a": [1, 2, 3, 4], "b": [[1, 2, 3, 4], [1, 2, 3, 4]]}
    with pytest.raises(CaseError) as info:
        yamlfile.load("a: &a [1, 2, 3, 4]\nb: [*a, *a]\nc: {x: 1, y: *a}\n", "y.yaml")
    assert info.value.line == 3


def test_merge_keys_load_like_safe_load():
    text = """\
        cases:
          - &base
            id: a
            logits: [[1, 2, 3]]
            labels: [0]
          - <<: *base
            id: b
        """
    doc, _ = load(text)
    assert doc == yaml.safe_load(textwrap.dedent(text))


# ---------------------------------------------------------------- YAML 1.1 pitfalls


def test_exponent_without_a_dot_is_a_string_in_yaml_1_1():
    doc, _ = yamlfile.load("a: 1e-5\nb: 1.0e-5\n", "y.yaml")
    assert doc == {"a": "1e-5", "b": 1e-5}


def test_exponent_strings_are_accepted_where_numbers_are_expected():
    (case,) = cases.load_text(
        textwrap.dedent(
            """\
            cases:
              - id: a
                logits: [[1e-5, 2, 3]]
                labels: [0]
                weight: [1e-1, 1, 1]
                label_smoothing: 1e-5
                tolerance: {rtol: 1e-5, atol: 1e-7}
            """
        ),
        "x.yaml",
    )
    assert case.predictions[0, 0] == 1e-5
    assert case.weight[0] == 0.1
    assert case.label_smoothing == 1e-5
    assert case.tolerance == {"rtol": 1e-5, "atol": 1e-7}


def case_error(line):
    """The CaseError of a one-case file whose fifth line is `line`."""
    with pytest.raises(CaseError) as info:
        cases.load_text(f"cases:\n  - id: a\n    logits: [[1, 2, 3]]\n    labels: [0]\n    {line}\n", "x.yaml")
    return info.value


def test_word_that_is_not_a_number_is_rejected():
    err = case_error("label_smoothing: small")
    assert (err.line, err.key) == (5, "label_smoothing")
    assert "'small'" in err.message


@pytest.mark.parametrize(
    "line, key",
    [
        ("label_smoothing: no", "label_smoothing"),
        ("weight: [1, off, 3]", "weight"),
        ("tolerance: {rtol: yes}", "tolerance.rtol"),
    ],
    ids=["scalar", "in-list", "nested"],
)
def test_yes_no_on_off_where_a_number_is_expected_is_rejected_as_a_boolean(line, key):
    err = case_error(line)
    assert (err.line, err.key) == (5, key)
    assert "boolean" in err.message
    assert "no/off/yes/on" in err.message


def test_boolean_inside_logits_is_rejected():
    with pytest.raises(CaseError) as info:
        cases.load_text("cases:\n  - id: a\n    logits: [[1, no, 3]]\n    labels: [0]\n", "x.yaml")
    assert (info.value.line, info.value.key) == (3, "logits")
    assert "boolean" in info.value.message


# ---------------------------------------------------------------- one value at a time (issue 26)

SHIPPED = sorted((Path(__file__).parent.parent / "cases").glob("*.yaml"))


def streamed(text, file="y.yaml"):
    """What `Document` reads of a file: {key: value} with the cases list item by item, and every line."""
    doc, lines = {}, {}
    with yamlfile.Document(text, file) as reader:
        assert reader.mapping()
        for key, line in reader.keys():
            items = reader.items((key,)) if key == "cases" else None
            if items is None:
                doc[key], found = reader.value((key,), line)
                lines.update(found)
                continue
            lines[(key,)] = line
            doc[key] = []
            for value, found in items:
                doc[key].append(value)
                lines.update(found)
    return doc, lines


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_a_shipped_case_file_read_one_case_at_a_time_is_the_whole_document(path):
    """Every value and every line of each shipped case file, read item by item, as the whole document gives
    them (and as `yaml.safe_load` gives the values)."""
    text = path.read_text(encoding="utf-8")
    whole, whole_lines = yamlfile.load(text, "y.yaml")
    doc, lines = streamed(text)
    assert doc == whole == yaml.safe_load(text)
    assert lines == {p: n for p, n in whole_lines.items() if p}  # the root's own line () aside


def test_skip_passes_over_a_value_and_its_anchors_are_not_kept():
    with yamlfile.Document("a: &x [1, {b: [2, 3]}]\nc: {d: 4}\ne: 5\n", "y.yaml") as reader:
        assert reader.mapping()
        keys = reader.keys()
        assert next(keys) == ("a", 1)
        reader.skip()
        assert next(keys) == ("c", 2)
        assert reader.value(("c",), 2) == ({"d": 4}, {("c",): 2, ("c", "d"): 2})
        assert next(keys) == ("e", 3)
        reader.skip()
        assert list(keys) == []


def test_an_alias_bomb_inside_a_list_read_item_by_item_is_stopped_at_its_alias():
    """The limit holds for a document read one item at a time: the same bomb as `ALIAS_BOMB`, one item
    per line after `cases:`, stops at the same alias (line 6 there, line 7 here)."""
    bomb = "cases:\n" + "".join(f"- {line.split(': ', 1)[1]}\n" for line in ALIAS_BOMB.splitlines()[:-1])
    started = time.process_time()  # CPU time: the machine may be shared
    with pytest.raises(CaseError) as info:
        streamed(bomb, "bomb.yaml")
    assert time.process_time() - started < 1.0
    assert (info.value.file, info.value.line) == ("bomb.yaml", 7)
    assert "more than 1,000,000 values" in info.value.message


def test_a_second_document_after_the_root_mapping_is_an_error_with_its_line():
    with pytest.raises(CaseError) as info:
        streamed("a: 1\n---\nb: 2\n")
    assert info.value.line == 2
    assert info.value.message.startswith("not valid YAML:")
