"""The case-key reference written from a JSON schema: each key's type, default, allowed values and
description, nested mappings in their own sections, and each family's own keys and reductions.

The schema below is written by hand in the shape pydantic gives (anyOf with null for optional keys, $ref
for nested models, additionalProperties for mappings); the expected rows are worked out by hand from it.
"""

from __future__ import annotations

from types import ModuleType, SimpleNamespace
from typing import Any

from conformance import casekeys

SCHEMA = {
    "properties": {
        "cases": {
            "items": {
                "required": ["id"],
                "properties": {
                    "id": {"type": "string", "pattern": "^[a-z]+$", "description": "the id"},
                    "smoothing": {"type": "number", "default": 0.0, "minimum": 0.0, "exclusiveMaximum": 1.0, "description": "a | b"},
                    "labels": {
                        "anyOf": [{"type": "array", "items": {}}, {"const": "random", "type": "string"}, {"type": "null"}],
                        "default": None,
                    },
                    "dtype": {
                        "anyOf": [
                            {"enum": ["f32", "f64"], "type": "string"},
                            {"type": "object", "additionalProperties": {"enum": ["f32", "f64"], "type": "string"}},
                        ],
                        "default": "f32",
                    },
                    "random": {
                        "anyOf": [{"$ref": "#/$defs/Spec"}, {"type": "null"}],
                        "default": None,
                        "description": "generated\n  values",
                    },
                },
            }
        }
    },
    "$defs": {
        "Spec": {
            "description": "A spec.\n    Two lines.",
            "required": ["shape"],
            "properties": {"shape": {"type": "array", "items": {"type": "integer"}, "minItems": 1, "description": "its shape"}},
        }
    },
}


def family() -> Any:
    """What the page reads of a loss family's record (`contract.LossFamily`): its module's docstring, FIELDS, REDUCTIONS."""
    module = ModuleType("fam", "Fam loss: what it computes.\n\nMore.")
    return SimpleNamespace(module=module, FIELDS={"smoothing": None}, REDUCTIONS=("mean", "batchmean"))


def test_rows_give_type_default_allowed_values_and_description():
    lines = casekeys.markdown(SCHEMA, {"fam": family()}).splitlines()
    assert "| `id` | string | required | matches `^[a-z]+$` | the id |" in lines
    assert "| `smoothing` | number | `0.0` | >= 0.0, < 1.0 | a \\| b |" in lines  # a pipe would split the cell
    assert "| `labels` | list or `random` or null | `null` |  |  |" in lines
    assert "| `dtype` | string or mapping to string | `f32` | `f32`, `f64` |  |" in lines  # the mapping's values said once
    assert "| `random` | mapping or null ([its keys](#keys-of-random)) | `null` |  | generated values |" in lines


def test_a_nested_mapping_gets_its_section_under_its_key():
    lines = casekeys.markdown(SCHEMA, {"fam": family()}).splitlines()
    at = lines.index("## Keys of `random`")
    assert lines[at + 2] == "A spec. Two lines."
    assert "| `shape` | list of integer | required | at least 1 item(s) | its shape |" in lines[at:]


def test_families_list_their_own_keys_and_only_the_reductions_they_add():
    lines = casekeys.markdown(SCHEMA, {"fam": family()}).splitlines()
    assert lines[-1] == "| `fam` | Fam loss | `smoothing` | `batchmean` |"  # mean is shared, not the family's
