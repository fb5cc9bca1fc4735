"""A framework is a plug-in: a fourth one, installed from its own package, gets everything with no edit.

`tests/plugins/numpy_framework` is a separate installable package whose only link to the suite is the
entry point `numpy = "numpy_framework"` in the group `conformance.frameworks`. The module fixture really
installs it with pip into a temporary folder and puts that on PYTHONPATH for the subprocesses, then runs
the real command line: groups, documented-formula checks, explanations and recipes, versions, the HTML
report, baselines and the fuzzer all have to include `numpy`. Expected numbers come from the formulas
written out here, not from the suite's model.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
PLUGIN = Path(__file__).resolve().parent / "plugins" / "numpy_framework"
FRAMEWORKS = "torch,tensorflow,numpy,reference"  # paddle adds nothing here but start-up time
LOGITS = [[0.05, 0.95, 0.0], [0.1, 0.8, 0.1]]
LABELS = [1, 2]
WEIGHT = [1.0, 2.0, 3.0]
CASES = """\
defaults:
  logits: [[0.05, 0.95, 0], [0.1, 0.8, 0.1]]
  labels: [1, 2]
cases:
  - id: plain
    matrix: {reduction: [none, mean, sum]}
    expect: {groups: [[torch, tensorflow, numpy, reference]]}
  - id: weighted
    weight: [1, 2, 3]
    matrix: {reduction: [mean, sum]}
    expect:
      - groups: [[torch, tensorflow, numpy, reference]]
      - when: {reduction: mean}
        groups: [[torch, reference], [tensorflow, numpy]]
  - id: smoothed
    weight: [1, 2, 3]
    label_smoothing: 0.1
    expect: {groups: [[torch, reference], [tensorflow, numpy]]}
  - id: ignored
    labels: [1, -100]
    ignore_index: -100
    expect: {groups: [[torch, tensorflow, numpy, reference]]}
  - id: kdim
    logits: [[[0.5, -1], [1.5, 0.2], [-0.3, 2]], [[2, 0.1], [0, -1.2], [0.7, 0.4]]]
    labels: [[0, 2], [1, 1]]
    weight: [1, 2, 3]
    expect: {groups: [[torch, reference], [tensorflow, numpy]]}
"""


class Env:
    """Where the plug-in is installed and how to run the suite's command line with it."""

    def __init__(self, work: Path, environ: dict[str, str]) -> None:
        self.work = work
        self.environ = environ

    def run(self, name: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """`python ARGS` in the work folder with the plug-in on PYTHONPATH (`name` says which in a failure)."""
        done = subprocess.run([sys.executable, *args], cwd=self.work, env=self.environ, capture_output=True, text=True, timeout=600)
        if check:
            assert done.returncode == 0, f"{name}: exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        return done

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """`conformance ARGS`, the real command line."""
        return self.run(f"conformance {args[0]}", "-m", "conformance", *args, check=check)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Env:
    """The plug-in installed by pip into a target folder (from a copy, so no build files land in the
    tree), on PYTHONPATH; and the case file in a work folder."""
    base = tmp_path_factory.mktemp("numpy_plugin")
    source = base / "src"
    shutil.copytree(PLUGIN, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = base / "site"
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--disable-pip-version-check", "--target", str(target)]
    if importlib.util.find_spec("setuptools") is not None:
        command.append("--no-build-isolation")  # build with the setuptools at hand: no download
    installed = subprocess.run([*command, str(source)], capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, f"pip install failed:\n{installed.stdout}\n{installed.stderr}"
    assert (target / "numpy_framework.py").is_file()
    environ = dict(os.environ)
    environ["PYTHONPATH"] = os.pathsep.join([str(target)] + ([environ["PYTHONPATH"]] if environ.get("PYTHONPATH") else []))
    work = base / "work"
    work.mkdir()
    (work / "plugin_cases.yaml").write_text(CASES, encoding="utf-8")
    return Env(work, environ)


class Fuzzing:
    """`conformance fuzz` running in the background: its budget is wall-clock time and it mostly waits
    on worker start-ups, so it overlaps the other runs (about 35 s of the module's 60 s otherwise)."""

    def __init__(self, env: Env) -> None:
        self.out = env.work / "fuzz.out"
        self.written = env.work / "fuzz"
        command = [sys.executable, "-m", "conformance", "fuzz", "--budget", "20", "--seed", "0", "--ignore-cases", "--out", "fuzz"]
        with self.out.open("w", encoding="utf-8") as sink:  # a file, not a pipe nobody reads while it runs
            self.process = subprocess.Popen(
                command, cwd=env.work, env=env.environ, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
            )

    def wait(self) -> str:
        """Its exit code checked; what it printed."""
        code = self.process.wait(timeout=600)
        text = self.out.read_text(encoding="utf-8")
        assert code == 0, f"conformance fuzz: exit {code}\n{text[-3000:]}"
        return text

    def stop(self) -> None:
        """End the fuzzer and its workers (its own session) if its test did not wait for it."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=60)


@pytest.fixture(scope="module")
def fuzzing(env: Env) -> Iterator[Fuzzing]:
    started = Fuzzing(env)
    yield started
    started.stop()


@pytest.fixture(scope="module")
def doc(env: Env, fuzzing: Fuzzing) -> dict[str, Any]:
    """results.json of `conformance run` on the case file with torch, tensorflow, numpy and the reference
    (the fuzzer is started first, to run meanwhile)."""
    env.cli("run", "plugin_cases.yaml", "--json", "results.json", "--html", "index.html", "--frameworks", FRAMEWORKS)
    return json.loads((env.work / "results.json").read_text(encoding="utf-8"))


def by_id(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {case["id"]: case for case in doc["cases"]}


def group_of(case: dict[str, Any], key: str) -> list[str]:
    return next(group for group in case["groups"] if key in group)


def test_the_plugin_is_registered_only_through_its_entry_point(env: Env) -> None:
    code = "import json; from conformance import registry; print(json.dumps(list(registry.frameworks())))"
    names = json.loads(env.run("registry", "-c", code).stdout)
    assert "numpy" in names
    assert names.index("tensorflow") < names.index("numpy") < names.index("reference")  # its ORDER 40
    found = subprocess.run([sys.executable, "-c", code], cwd=env.work, capture_output=True, text=True, timeout=120)
    assert found.returncode == 0 and "numpy" not in json.loads(found.stdout)  # not installed: not there


def test_numpy_runs_and_matches_its_documented_formula(doc: dict[str, Any], env: Env) -> None:
    assert doc["summary"]["expectations"]["violated"] == 0
    for case in doc["cases"]:
        result = case["results"]["numpy"]
        assert result["status"] == "ok", (case["id"], result.get("message"))
        assert result["documented"]["agrees"] is True, case["id"]
        assert result["code"].startswith("import numpy as np")  # the snippet runs on its own
    assert doc["versions"]["numpy-framework"] == "0.1.0"
    assert {"torch", "tensorflow", "keras"} <= set(doc["versions"])


def test_groups_put_numpy_with_keras_where_the_mean_is_weighted(doc: dict[str, Any]) -> None:
    cases = by_id(doc)
    for name in ("weighted[reduction=mean]", "smoothed", "kdim"):
        group = group_of(cases[name], "numpy")
        assert "tensorflow" in group and "torch" not in group, (name, cases[name]["groups"])
    for name in ("plain[reduction=none]", "plain[reduction=mean]", "plain[reduction=sum]", "weighted[reduction=sum]", "ignored"):
        assert {"torch", "tensorflow", "numpy", "reference"} <= set(group_of(cases[name], "numpy")), (name, cases[name]["groups"])


def test_losses_match_the_formulas_written_out_here(doc: dict[str, Any]) -> None:
    """Keras-style: sum_n w[y_n] * -log softmax(x_n)[y_n] / N; torch: the same sum / sum_n w[y_n]."""
    x = np.asarray(LOGITS, dtype=np.float32).astype(np.float64)  # the float32 inputs the frameworks see
    y, w = np.asarray(LABELS), np.asarray(WEIGHT)
    log_p = x - np.log(np.exp(x).sum(axis=1, keepdims=True))
    terms = w[y] * -log_p[np.arange(len(y)), y]
    case = by_id(doc)["weighted[reduction=mean]"]
    np.testing.assert_allclose(case["results"]["numpy"]["loss"], terms.sum() / len(y), rtol=1e-6)
    np.testing.assert_allclose(case["results"]["tensorflow"]["loss"], terms.sum() / len(y), rtol=1e-6)
    np.testing.assert_allclose(case["results"]["torch"]["loss"], terms.sum() / w[y].sum(), rtol=1e-6)
    onehot = np.eye(3)[y]
    grad = (np.exp(log_p) - onehot) * w[y][:, None] / len(y)
    np.testing.assert_allclose(case["results"]["numpy"]["grad"], grad, rtol=1e-5, atol=1e-7)


def test_explanation_names_the_denominator_and_numpy_reproduces_torch(doc: dict[str, Any]) -> None:
    cases = by_id(doc)
    for name, knobs in (("weighted[reduction=mean]", {"denominator"}), ("smoothed", {"denominator", "weight_mode"})):
        entry = next(e for e in cases[name]["explanation"] if (e["a"], e["b"]) == ("torch", "numpy"))
        assert {k["knob"] for k in entry["knobs"]} == knobs, (name, entry["knobs"])
        assert "numpy" in entry["text"] and "denominator" in entry["text"]
        recipe = entry["recipe"]
        assert recipe is not None and recipe["reproduces"] is True, (name, recipe)
        assert "np." in recipe["code"] and "log_p" in recipe["code"]  # the plug-in's own recipe ran
        np.testing.assert_allclose(recipe["result"], cases[name]["results"]["torch"]["loss"], rtol=1e-5)


def test_html_report_shows_numpy(doc: dict[str, Any], env: Env) -> None:
    html = (env.work / "index.html").read_text(encoding="utf-8")
    assert re.search(r"[>\"]numpy[<\"]", html), "the key numpy is not in the report"
    assert "numpy" in (env.work / "summary.md").read_text(encoding="utf-8")


def test_baseline_saves_numpy_and_replays(env: Env) -> None:
    """Also `--frameworks numpy,reference`: the plug-in runs without any of the built-in frameworks."""
    env.cli("baseline", "save", "plugin_cases.yaml", "--frameworks", "numpy,reference", "--out", "baseline.json")
    saved = json.loads((env.work / "baseline.json").read_text(encoding="utf-8"))
    text = json.dumps(saved)
    assert "numpy-framework" in text  # the versions that produced it
    entries = [v for v in _entries(saved) if "numpy" in v.get("results", {})]
    assert entries and all(e["results"]["numpy"]["status"] == "ok" and e["results"]["numpy"]["loss"] is not None for e in entries)
    replay = ["run", "plugin_cases.yaml", "--frameworks", "numpy,reference", "--baseline", "baseline.json", "--json", "replayed.json"]
    done = env.cli(*replay, "--html", "replayed.html", check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    replayed = json.loads((env.work / "replayed.json").read_text(encoding="utf-8"))
    assert "baseline" in replayed and {"numpy", "reference"} <= set(replayed["cases"][0]["results"])


def _entries(saved: Any) -> list[dict[str, Any]]:
    """Every per-case entry of a baseline document, wherever its layout keeps them."""
    if isinstance(saved, dict):
        if "results" in saved and isinstance(saved["results"], dict):
            return [saved]
        return [e for v in saved.values() for e in _entries(v)]
    if isinstance(saved, list):
        return [e for v in saved for e in _entries(v)]
    return []


def test_fuzzer_covers_numpy(env: Env, fuzzing: Fuzzing) -> None:
    """The fuzzer runs every registered framework: what it finds new involves numpy; if it found nothing
    in its budget, the coverage it predicts from the knobs alone still pairs numpy with the others."""
    printed = fuzzing.wait()
    written = [p.read_text(encoding="utf-8") for p in sorted(fuzzing.written.glob("*.yaml"))]
    if re.search(r"new: .*numpy", printed) or any("numpy" in text for text in written):
        return
    loaded = "cases.load_paths([pathlib.Path('plugin_cases.yaml')])"
    code = f"import json, pathlib; from conformance import cases, fuzz; print(json.dumps(sorted(fuzz.covered({loaded}))))"
    covered = json.loads(env.run("covered", "-c", code).stdout)
    assert ["torch", "numpy", "denominator"] in covered, (printed, covered)


def test_core_names_no_framework() -> None:
    """The core (conformance/*.py and the loss families' own modules) names no framework in code: only the
    framework modules (adapters/<framework>.py, losses/<family>/<framework>.py) do. Docstrings, comments,
    argparse help texts and the case keys' schema descriptions (documentation for users) aside."""
    names = re.compile(r"torch|paddle|tensorflow", re.IGNORECASE)
    found = []
    losses = ROOT / "conformance" / "losses"  # the families' own modules; losses/<family>/<framework>.py are framework code
    for path in sorted((ROOT / "conformance").glob("*.py")) + sorted(losses.glob("*.py")) + sorted(losses.glob("*/__init__.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skipped = _docstrings(tree) | _help_texts(tree)
        for node in ast.walk(tree):
            text = _name_or_text(node) if id(node) not in skipped else None
            if text and names.search(text):
                found.append(f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', '?')}: {text[:80]!r}")
    assert not found, "the core names a framework:\n" + "\n".join(found)


def _docstrings(tree: ast.AST) -> set[int]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                out.add(id(first.value))
    return out


def _help_texts(tree: ast.AST) -> set[int]:
    """argparse's `help=` and pydantic's `description=`: text for users, not code."""
    return {id(n) for k in ast.walk(tree) if isinstance(k, ast.keyword) and k.arg in ("help", "description") for n in ast.walk(k.value)}


def _name_or_text(node: ast.AST) -> str | None:
    """The text a node puts in the code: a string literal, or a name (variable, attribute, import, argument, definition)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.alias):
        return node.name
    if isinstance(node, ast.arg):
        return node.arg
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return node.name
    if isinstance(node, ast.ImportFrom):
        return node.module
    return None
