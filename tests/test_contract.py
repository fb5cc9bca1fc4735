"""The plug-in contract (conformance/contract.py) and docs/extending.md say the same, and what the
registry hands out is the checked record with every optional member at its declared default."""

from __future__ import annotations

import re
import types
from dataclasses import MISSING, fields
from pathlib import Path

import pytest

from conformance import contract, registry
from conformance.contract import Framework, LossFamily, Variant

DOC = Path(__file__).resolve().parent.parent / "docs" / "extending.md"
ROW = re.compile(r"^\| `(\w+)(?:\([^)]*\))?` \| ([^|]+) \|")


def section(title: str) -> str:
    text = DOC.read_text(encoding="utf-8")
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end >= 0 else None]


def documented(title: str) -> list[tuple[str, str]]:
    """(member, default column) of every row of the members table under `title`."""
    return [(m[1], m[2].strip()) for line in section(title).splitlines() if (m := ROW.match(line))]


def shown(default: object) -> str:
    """A default as the table writes it: `required`, a value in backticks, or for a function default
    (a member given together with another) the words `with ...`."""
    if default is MISSING:
        return "required"
    return "with" if isinstance(default, types.FunctionType) else f"`{default!r}`"


@pytest.mark.parametrize("kind, title", [(Framework, "Adding a framework"), (LossFamily, "Adding a loss family")])
def test_every_member_of_the_contract_is_documented_with_its_default_and_nothing_else(kind, title):
    declared = [(name, shown(default)) for name, _, _, default in contract.members(kind)]
    table = [(name, "with" if column.startswith("with ") else column) for name, column in documented(title)]
    assert [name for name, _ in table] == [name for name, _ in declared], "the same members, in the contract's order"
    assert table == declared


def test_the_variant_record_is_documented_field_by_field():
    text = section("Adding a framework")
    start = text.index("A `Variant(")
    bullets = re.findall(r"^- `(\w+)[^`]*`:", text[start:], re.M)
    assert bullets == [f.name for f in fields(Variant)]
    assert text[start:].startswith(f"A `Variant({', '.join(f.name for f in fields(Variant))})`")


def test_the_counts_the_issue_gives():
    """26 family members (15 optional: the 25 the issue counted and #25's PARAMETERS) and 11 framework
    members (8 optional: with the JAX worker's Runner, and VARIANTS since the families carry the shipped
    frameworks' calls), each read through the contract."""
    family = list(contract.members(LossFamily))
    framework = list(contract.members(Framework))
    assert (len(family), sum(d is not MISSING for *_, d in family)) == (26, 15)
    assert (len(framework), sum(d is not MISSING for *_, d in framework)) == (11, 8)


def test_every_shipped_plugin_fits_and_reads_back_its_own_members():
    for name in registry.frameworks():
        plugin = registry.framework(name)
        assert contract.check(Framework, plugin.module) == []
        assert plugin.VARIANTS is getattr(plugin.module, "VARIANTS", ()) and plugin.SETUP == plugin.module.SETUP
    for name, family in registry.losses().items():
        assert contract.check(LossFamily, family.module) == []
        assert family.NAME == name and family.evaluate is family.module.evaluate


def test_an_optional_member_a_module_lacks_reads_as_its_default():
    """The reference framework has no `recipe`, `OPS`, `REPOSITORIES` or `user_body`; torch no `VARIANTS`
    (its calls are in the families' packages); softmax cross-entropy no `native_recipe`, binary
    cross-entropy no `KNOBS`: each reads as the contract's default."""
    reference = registry.framework("reference")
    assert not {"recipe", "OPS", "REPOSITORIES", "user_body"} & set(vars(reference.module))
    assert (reference.recipe, reference.OPS, reference.REPOSITORIES, reference.user_body) == (None, None, {}, None)
    torch = registry.framework("torch")
    assert "VARIANTS" not in vars(torch.module) and torch.VARIANTS == ()
    softmax = registry.loss("softmax_cross_entropy")
    assert "native_recipe" not in vars(softmax.module) and softmax.native_recipe is None
    binary = registry.loss("binary_cross_entropy")
    assert "KNOBS" not in vars(binary.module) and binary.KNOBS == {}
    assert not hasattr(binary.module, "probability_recipe")
    with pytest.raises(TypeError, match="has no probability_steps"):
        binary.probability_recipe({}, types.SimpleNamespace(loss="binary_cross_entropy"), None)


def test_a_class_or_an_imported_name_is_never_taken_for_a_misspelling():
    """`Knobs` (a class every family imports) is no misspelt `KNOBS`; a family's own `knobs` dict is."""
    module = types.ModuleType("family")
    module.Knobs = type("Knobs", (), {})
    assert not [p for p in contract.check(LossFamily, module) if "KNOBS" in p]
    module.knobs = {}
    assert "knobs is no member of the contract (did you mean KNOBS?)" in contract.check(LossFamily, module)
