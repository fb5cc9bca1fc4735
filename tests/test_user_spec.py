"""Variant specs as given (`conformance.user_spec`): the YAML file of `--variants`, the `[tool.conformance]`
table of the user's pyproject.toml and the short `--variant` form; every mistake names the file, the
line (YAML) or the table (TOML) and the key, with a did-you-mean, and is exit 2 before anything runs."""

import textwrap

import pytest

from conformance import cli, user, user_spec
from conformance.errors import CaseError, UsageError

SPEC = """\
variants:
  "torch:kornia":
    call: kornia.losses:FocalLoss
    arguments: [{logits: predictions}, targets]
    params: {label_smoothing: epsilon, num_classes: vocab_size}
    fixed: {gamma: 0.0, alpha: null}
    layout: {class_axis: -1}
    against: torch
    loss: softmax_cross_entropy
  "paddle:mine":
    call: my_loss:cross_entropy
"""


def write(folder, name, text):
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def test_a_yaml_file_gives_every_key(tmp_path):
    first, second = user_spec.from_file(write(tmp_path, "v.yaml", SPEC))
    assert first == user_spec.Spec(
        "torch:kornia",
        "kornia.losses",
        "FocalLoss",
        arguments=((("logits", "predictions"),), "targets"),
        params=(("label_smoothing", "epsilon"), ("num_classes", "vocab_size")),
        fixed=(("gamma", 0.0), ("alpha", None)),
        class_axis=-1,
        against="torch",
        losses=("softmax_cross_entropy",),
    )
    assert second == user_spec.Spec("paddle:mine", "my_loss", "cross_entropy")  # the short form's defaults
    assert first.where == f"{tmp_path / 'v.yaml'}:2" and first.option == f"--variants {tmp_path / 'v.yaml'}"
    assert user_spec.Spec.from_json(first.to_json()) == first
    assert user_spec.checked([first, second]) == (first, second)


HEAD = "variants:\n  torch:a:\n    call: m:f\n"


@pytest.mark.parametrize(
    ("text", "line", "key", "says"),
    [
        (
            HEAD + "    argument: [targets, predictions]\n",
            4,
            "variants.torch:a.argument",
            "did you mean 'arguments'?",
        ),
        (
            HEAD + "    params: {label_smothing: epsilon}\n",
            4,
            "variants.torch:a.params",
            "did you mean 'label_smoothing'?",
        ),
        (HEAD + "    arguments: [predictions, predictions]\n", 4, "variants.torch:a.arguments", "once each"),
        ("variants:\n  torch:a:\n    call: my_loss.f\n", 3, "variants.torch:a.call", "should match pattern"),
        (HEAD + "    layout: {class_axis: 2}\n", 4, "variants.torch:a.layout.class_axis", "1 or -1"),
        (
            HEAD + "    layout: {axis: -1}\n",
            4,
            "variants.torch:a.layout.axis",
            "unknown key 'axis'; known: class_axis",
        ),
        (
            HEAD + "    fixed: {epsilon: 0.1}\n    params: {label_smoothing: epsilon}\n",
            2,
            "variants.torch:a",
            "under fixed and filled by params",
        ),
        ("variant:\n  torch:a: {call: m:f}\n", 1, "variant", "did you mean 'variants'?"),
    ],
)
def test_a_mistake_names_the_file_line_and_key(tmp_path, text, line, key, says):
    with pytest.raises(CaseError) as caught:
        user_spec.from_file(write(tmp_path, "v.yaml", text))
    assert (caught.value.line, caught.value.key) == (line, key)
    assert says in caught.value.message and str(tmp_path / "v.yaml") in str(caught.value)


def test_the_pyproject_table(tmp_path):
    assert user_spec.from_pyproject(tmp_path) == []  # no file
    write(tmp_path, "pyproject.toml", '[project]\nname = "mine"\n')
    assert user_spec.from_pyproject(tmp_path) == []  # no table
    write(
        tmp_path,
        "pyproject.toml",
        """\
        [tool.conformance.variants."torch:smoother"]
        call = "transformers.trainer_pt_utils:LabelSmoother"
        arguments = [{logits = "predictions"}, "targets"]
        params = {label_smoothing = "epsilon"}
        against = "torch"
        """,
    )
    [spec] = user_spec.from_pyproject(tmp_path)
    assert spec.function == "LabelSmoother" and spec.params == (("label_smoothing", "epsilon"),) and spec.against == "torch"
    assert spec.where == 'pyproject.toml [tool.conformance.variants."torch:smoother"]'
    write(tmp_path, "pyproject.toml", '[tool.conformance.variants."torch:x"]\ncall = "m:f"\nagainst_key = "torch"\n')
    with pytest.raises(CaseError, match=r"pyproject.toml:3 \(key 'tool.conformance.variants.torch:x.against_key'\): unknown key"):
        user_spec.from_pyproject(tmp_path)


def test_the_run_combines_the_three_forms_and_checks_the_keys(tmp_path):
    write(tmp_path, "pyproject.toml", '[tool.conformance.variants."torch:a"]\ncall = "m:f"\n')
    spec_file = write(tmp_path, "v.yaml", "variants:\n  torch:b: {call: m:g, against: torch}\n")
    got = user.specs(["torch:c=m:h"], [spec_file], tmp_path)
    assert [s.key for s in got] == ["torch:a", "torch:b", "torch:c"]
    with pytest.raises(UsageError, match=r"the result key 'torch:a' is taken \(also given by pyproject.toml"):
        user.specs(["torch:a=m:h"], [], tmp_path)
    for text, says in [
        ("variants:\n  torch:b: {call: m:g, against: torhc}\n", "against: unknown result key 'torhc'; did you mean 'torch'?"),
        ("variants:\n  torch:b: {call: m:g, loss: focal}\n", "loss: unknown loss family 'focal'"),
        ("variants:\n  torch:nll: {call: m:g}\n", "the result key 'torch:nll' is taken"),
        ("variants:\n  jaxx:b: {call: m:g}\n", "unknown framework 'jaxx'"),
    ]:
        with pytest.raises(UsageError, match=says.replace("(", r"\(").replace("?", r"\?")):
            user.specs([], [write(tmp_path, "w.yaml", text)], tmp_path / "none")


def test_cli_exit_2_on_a_bad_spec_before_anything_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "one.yaml", "cases:\n  - id: one\n    logits: [[0.1, 0.9]]\n    labels: [1]\n")
    write(tmp_path, "v.yaml", HEAD + "    parms: {}\n")
    assert cli.main(["run", "one.yaml", "--variants", "v.yaml", "--json", str(tmp_path / "r.json")]) == 2
    err = capsys.readouterr().err
    assert "v.yaml:4 (key 'variants.torch:a.parms'): unknown key 'parms'; did you mean 'params'?" in err
    assert not (tmp_path / "r.json").exists()


def test_what_a_variant_ports_runs_with_it():
    """`against: torch` on a paddle port: --only paddle runs torch too; --frameworks without torch is a
    usage error (the expectation could not be checked)."""
    spec = user_spec.Spec("paddle:mine", "m", "f", against="torch")
    with user.activated(user_spec.checked([spec])):
        keys = cli.selection(None, "paddle")
        assert "torch" in (keys["torch"] or set()) and "paddle:mine" in (keys["paddle"] or set())
        with pytest.raises(UsageError, match="against: torch, but --frameworks paddle does not run it"):
            cli.selection("paddle", None)
