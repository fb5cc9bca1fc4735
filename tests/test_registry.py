"""The registry checks every plug-in against the contract when it loads it.

Each fake below is registered the way a plug-in package does (a distribution on the path declaring an
entry point) and gets one member wrong: the load must fail as a usage error naming the plug-in, its
entry point and the member (with the member it was probably meant to be), never an AttributeError at
first use nor a silent default; from the command line that is exit 2, from pytest a usage error.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from conformance import cli, registry
from conformance.errors import UsageError

ROOT = Path(__file__).resolve().parent.parent

FRAMEWORK = """
from conformance.adapters import Variant

SETUP = "import numpy as np"


def version():
    return {"numpy": "any"}


def to_numpy(value):
    return value, "float64"


VARIANTS = [Variant("{name}", "fake.loss", lambda case: "loss = np.float64(0.0)", lambda case: None)]
"""

FAMILY = """
from conformance.reference import Outcome

NAME = "{name}"
FIELDS = {}
ARRAYS = {}
CLASS_AXIS = 1
INDEX_LABELS = True
PHRASES = {}
ALTERNATIVES = {}


def build(spec, fail):
    return {}


def textbook(case):
    return None


def evaluate(case, knobs):
    return Outcome(0.0, None)


def strategy():
    return None
"""


def register(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, group: str, source: str) -> tuple[str, str]:
    """A plug-in module of `source` registered in `group`: (its entry point's name, the module's name)."""
    name = f"fake_{uuid.uuid4().hex[:8]}"
    module = f"{name}_plugin"
    (tmp_path / f"{module}.py").write_text(source.replace("{name}", name), encoding="utf-8")
    info = tmp_path / f"{name}-0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0\n", encoding="utf-8")
    (info / "entry_points.txt").write_text(f"[{group}]\n{name} = {module}\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    inherited = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path)] + ([inherited] if inherited else [])))
    registry.refresh()
    return name, module


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """Registers a fake plug-in; the registry forgets it afterwards."""
    yield lambda group, source: register(tmp_path, monkeypatch, group, source)
    monkeypatch.undo()
    registry.refresh()


def load_error(group: str) -> str:
    """The message of the usage error loading every plug-in of `group` raises."""
    with pytest.raises(UsageError) as caught:
        registry.frameworks() if group == registry.FRAMEWORKS_GROUP else registry.losses()
    return str(caught.value)


def test_the_fakes_fit_as_written(plugin):
    """The fakes below differ from these by one member each: as written they load."""
    name, _ = plugin(registry.FRAMEWORKS_GROUP, FRAMEWORK)
    assert registry.framework(name).ORDER == 500 and registry.framework(name).recipe is None
    family, _ = plugin(registry.LOSSES_GROUP, FAMILY)
    assert registry.loss(family).KNOBS == {} and registry.loss(family).REDUCTIONS == ()


@pytest.mark.parametrize(
    "group, source, member, said",
    [
        (
            registry.FRAMEWORKS_GROUP,
            FRAMEWORK.replace("VARIANTS =", "VARIANT ="),
            "VARIANTS",
            "VARIANT is no member of the contract (did you mean VARIANTS?)",
        ),
        (
            registry.FRAMEWORKS_GROUP,
            FRAMEWORK + "\nrepositories = {}\n",
            "REPOSITORIES",
            "repositories is no member of the contract (did you mean REPOSITORIES?)",
        ),
        (registry.LOSSES_GROUP, FAMILY + "\nknob = {'gamma': 2.0}\n", "KNOBS", "knob is no member of the contract (did you mean KNOBS?)"),
        (
            registry.LOSSES_GROUP,
            FAMILY + "\ndef native_recipes(framework, case, knobs):\n    return None\n",
            "native_recipe",
            "did you mean native_recipe?",
        ),
    ],
    ids=["VARIANT", "repositories", "knob", "native_recipes"],
)
def test_a_misspelt_member_fails_at_load_naming_the_plugin_and_the_member(plugin, group, source, member, said):
    name, module = plugin(group, source)
    message = load_error(group)
    assert f"'{name}' (entry point '{name} = {module}' in the group '{group}'" in message
    assert said in message and member in message


@pytest.mark.parametrize(
    "group, source, said",
    [
        (registry.FRAMEWORKS_GROUP, FRAMEWORK.replace("def to_numpy", "def _to_numpy"), "it has no to_numpy"),
        (registry.LOSSES_GROUP, FAMILY.replace("def evaluate", "def _evaluate"), "it has no evaluate"),
        (registry.LOSSES_GROUP, FAMILY.replace("PHRASES = {}\n", ""), "it has no PHRASES"),
    ],
    ids=["to_numpy", "evaluate", "PHRASES"],
)
def test_a_missing_member_fails_at_load(plugin, group, source, said):
    name, module = plugin(group, source)
    message = load_error(group)
    assert f"'{name}' (entry point '{name} = {module}'" in message and said in message


@pytest.mark.parametrize(
    "group, source, said",
    [
        (registry.FRAMEWORKS_GROUP, FRAMEWORK + "\nORDER = '40'\n", "ORDER is str '40', expected int"),
        (registry.FRAMEWORKS_GROUP, FRAMEWORK + "\nORDER = True\n", "ORDER is bool True, expected int"),
        (registry.FRAMEWORKS_GROUP, FRAMEWORK + "\nVARIANTS = ['torch']\n", "VARIANTS[0] is str 'torch', expected a Variant"),
        (registry.FRAMEWORKS_GROUP, FRAMEWORK + "\nrecipe = 'torch'\n", "recipe is str 'torch', expected a function or None"),
        (registry.LOSSES_GROUP, FAMILY + "\nCLASS_AXIS = '1'\n", "CLASS_AXIS is str '1', expected int or None"),
        (registry.LOSSES_GROUP, FAMILY + "\nKNOBS = ['gamma']\n", "KNOBS is list ['gamma'], expected dict"),
        (
            registry.LOSSES_GROUP,
            FAMILY.replace('NAME = "{name}"', 'NAME = "focal"'),
            "NAME is 'focal', but a family's NAME is its entry point's name",
        ),
        (
            registry.LOSSES_GROUP,
            FAMILY + "\ndef probability_steps(knobs):\n    return ()\n",
            "probability_steps and probability_recipe come together",
        ),
    ],
    ids=["ORDER-str", "ORDER-bool", "VARIANTS-item", "recipe", "CLASS_AXIS", "KNOBS", "NAME", "probability_steps"],
)
def test_a_member_of_the_wrong_type_fails_at_load(plugin, group, source, said):
    name, _ = plugin(group, source)
    message = load_error(group)
    assert f"'{name}'" in message and said in message


def test_the_command_line_says_it_in_one_paragraph_with_exit_2(plugin, tmp_path, capsys):
    name, module = plugin(registry.FRAMEWORKS_GROUP, FRAMEWORK.replace("VARIANTS =", "VARIANT ="))
    argv = ["run", str(ROOT / "cases" / "article.yaml"), "--frameworks", "reference", "--json", str(tmp_path / "r.json")]
    assert cli.main([*argv, "--html", str(tmp_path / "r.html")]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert "Traceback" not in err and f"'{name} = {module}'" in err and "did you mean VARIANTS?" in err


def test_pytest_reports_it_as_a_usage_error_before_running_a_case(plugin, tmp_path):
    name, module = plugin(registry.LOSSES_GROUP, FAMILY + "\nknob = {}\n")
    (tmp_path / "test_one.yaml").write_text("cases:\n  - id: one\n    logits: [[0, 1]]\n    labels: [0]\n", encoding="utf-8")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:xdist",
            "test_one.yaml",
            "--conformance-frameworks",
            "reference",
            "--conformance-json=",
            "--conformance-html=",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = done.stdout + done.stderr
    assert done.returncode != 0 and "1 passed" not in output
    assert f"'{name} = {module}'" in output and "knob is no member of the contract (did you mean KNOBS?)" in output
