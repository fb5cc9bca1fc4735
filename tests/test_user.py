"""Users' objects run through a spec (`conformance.user`), end to end through the CLI and pytest: the
checks before any case runs (exit 2 naming the object and the parameter), `against` making a run exit 1
and a pytest item fail with the pair's one-line explanation, classes constructed in torch, paddle and
Keras (called in Keras's (y_true, y_pred) order), and real third-party losses (kornia's binary focal
loss, transformers' fixed_cross_entropy) joining torch with values checked against float64 formulas."""

import importlib.util
import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from conformance import cli

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def needs(*packages):
    """Skip unless `packages` are installed, without importing them: a framework is imported only by
    its worker (two frameworks in one process can segfault)."""
    missing = [p for p in packages if importlib.util.find_spec(p) is None]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)}")


pytestmark = pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch is not installed")


def write(folder, name, text):
    (folder / name).write_text(textwrap.dedent(text))
    return folder / name


def run(folder, *argv, frameworks="torch,reference"):
    out = folder / "out"
    code = cli.main(["run", *map(str, argv), "--frameworks", frameworks, "--json", str(out / "r.json"), "--html", str(out / "i.html")])
    doc = json.loads((out / "r.json").read_text()) if (out / "r.json").exists() else None
    return code, doc


@pytest.fixture
def here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shutil.copy(EXAMPLES / "my_loss.py", tmp_path / "my_loss.py")
    write(
        tmp_path,
        "weighted.yaml",
        """\
        defaults: {logits: [[0.05, 0.95, 0], [0.1, 0.8, 0.1]], labels: [1, 2], weight: [1, 2, 3]}
        cases:
          - id: summed
            reduction: sum
          - id: averaged
          - id: named
            description: the slip's own expectation says where it is, and `against` leaves it to it
            expect: {groups: [[torch], [torch:slip]]}
        """,
    )
    return tmp_path


def test_checked_before_any_case_runs(here, capsys):
    """A required parameter nothing fills, a class its cases cannot construct, a name the object does not
    take, a non-callable: exit 2 naming the object and the parameter, no results written."""
    write(
        here,
        "objects.py",
        """\
        class Focal:
            def __init__(self, alpha, gamma=2.0):
                pass

            def __call__(self, predictions, targets):
                pass


        def lm_loss(logits, labels, vocab_size, ignore_index=-100, **kwargs):
            pass


        NOT_CALLABLE = 3
        """,
    )
    write(
        here,
        "bad.yaml",
        """\
        variants:
          torch:focal: {call: "objects:Focal"}
          torch:lm: {call: "objects:lm_loss", params: {label_smoothing: epsilon}}
          torch:three: {call: "objects:NOT_CALLABLE"}
        """,
    )
    code, doc = run(here, "weighted.yaml", "--variants", "bad.yaml")
    err = capsys.readouterr().err.replace("\n", " ")
    assert code == 2 and doc is None
    assert "objects:Focal requires 'alpha' (its constructor), which not every softmax_cross_entropy case gives" in err
    assert "objects:lm_loss takes no parameter 'epsilon' (params: label_smoothing: epsilon)" in err
    assert "objects:lm_loss requires 'vocab_size' (its call)" in err
    assert "objects:NOT_CALLABLE is a int, not a function or a class" in err


def test_against_fails_the_run_and_the_pytest_item_with_the_explanation(here, capsys):
    """The slip is apart from torch on the weighted mean only: run exits 1 naming the case and the
    pair's explanation; where the case's expectation names it, that expectation decides (met)."""
    write(here, "ports.yaml", 'variants:\n  "torch:slip": {call: "my_loss:cross_entropy_slip", against: torch}\n')
    code, doc = run(here, "weighted.yaml", "--variants", "ports.yaml")
    out = capsys.readouterr().out.replace("\n", " ")
    assert code == 1
    verdicts = {c["id"]: (c["expectation"], c["expectation_message"]) for c in doc["cases"]}
    assert verdicts["summed"] == ("none", None) and verdicts["named"] == ("met", None)
    expectation, message = verdicts["averaged"]
    [entry] = [e for c in doc["cases"] if c["id"] == "averaged" for e in c["explanation"] if e["b"] == "torch:slip"]
    assert expectation == "violated"
    assert message == f"torch:slip (against: torch) is apart from torch: {entry['text'].splitlines()[0]}"
    assert "VIOLATED weighted.yaml::averaged: torch:slip (against: torch) is apart from torch: torch:slip vs torch" in out
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "weighted.yaml", "-q", "-p", "no:cacheprovider", "--rootdir", str(here)]
        + ["--conformance-frameworks", "torch,reference", "--conformance-json", "", "--conformance-html", ""]
        + ["--conformance-variants", "ports.yaml"],
        capture_output=True,
        text=True,
        cwd=here,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "1 failed, 2 passed" in proc.stdout
    assert "weighted.yaml::averaged: torch:slip (against: torch) is apart from torch: torch:slip vs torch" in proc.stdout


def test_an_error_against_its_key_fails_and_unsupported_does_not(here):
    write(here, "broken.py", "def loss(logits, target, reduction='mean'):\n    return logits.sum() / 0 + undefined\n")
    write(here, "ports.yaml", 'variants:\n  "torch:broken": {call: "broken:loss", against: torch}\n')
    write(
        here,
        "two.yaml",
        "defaults: {logits: [[0.1, 0.9]], labels: [1]}\ncases:\n  - id: plain\n  - id: smoothed\n    label_smoothing: 0.1\n",
    )
    code, doc = run(here, "two.yaml", "--variants", "ports.yaml")
    cases = {c["id"]: c for c in doc["cases"]}
    assert code == 1
    assert cases["plain"]["expectation_message"].startswith("torch:broken (against: torch) is error: NameError")
    assert cases["smoothed"]["results"]["torch:broken"]["status"] == "unsupported"
    assert cases["smoothed"]["expectation"] == "none"


def test_torch_modules_as_classes_join_torch(here):
    """torch.nn.CrossEntropyLoss given as a class: built with weight, ignore_index, label_smoothing and
    reduction as the case sets them (ignore_index only where it does), then called."""
    write(here, "ports.yaml", 'variants:\n  "torch:module": {call: "torch.nn:CrossEntropyLoss", against: torch}\n')
    write(
        here,
        "many.yaml",
        """\
        defaults: {logits: [[0.05, 0.95, 0], [0.1, 0.8, 0.1], [1, 0, -1]], labels: [1, 2, -100]}
        cases:
          - id: everything
            weight: [1, 2, 3]
            ignore_index: -100
            label_smoothing: 0.1
            matrix: {reduction: [none, mean, sum]}
          - id: kdim
            logits: null
            random: {shape: [2, 3, 4], seed: 1}
            labels: [[0, 1, 2, 1], [2, 2, 0, 1]]
        """,
    )
    code, doc = run(here, "many.yaml", "--variants", "ports.yaml")
    assert code == 0, [c["expectation_message"] for c in doc["cases"]]
    for case in doc["cases"]:
        assert any({"torch", "torch:module"} <= set(g) for g in case["groups"]), case["id"]
    code_shown = doc["cases"][1]["results"]["torch:module"]["code"]
    assert "loss_fn = CrossEntropyLoss(weight=torch.tensor(w), ignore_index=-100, reduction='mean', label_smoothing=0.1)" in code_shown
    assert "ignore_index" not in doc["cases"][-1]["results"]["torch:module"]["code"]


def test_keras_losses_are_called_targets_first(tmp_path, monkeypatch):
    """keras.losses.SparseCategoricalCrossentropy in the TensorFlow worker: built with from_logits and
    the case's reduction, called (y_true, y_pred, sample_weight=...); it joins TensorFlow's own variant,
    also with per-sample weights, which reach its __call__."""
    needs("tensorflow")
    monkeypatch.chdir(tmp_path)
    write(
        tmp_path,
        "ports.yaml",
        """\
        variants:
          "tensorflow:sparse":
            call: "keras.losses:SparseCategoricalCrossentropy"
            arguments: [targets, predictions]
            against: tensorflow
        """,
    )
    write(
        tmp_path,
        "k.yaml",
        """\
        defaults: {logits: [[0.05, 0.95, 0], [0.1, 0.8, 0.1]], labels: [1, 2]}
        cases:
          - id: plain
            matrix: {reduction: [none, sum, sum_over_batch_size]}
          - id: weighted_samples
            sample_weight: [2, 0.5]
            reduction: sum
        """,
    )
    code, doc = run(tmp_path, "k.yaml", "--variants", "ports.yaml", frameworks="tensorflow")
    assert code == 0, [c["expectation_message"] for c in doc["cases"]]
    for case in doc["cases"]:
        result = case["results"]["tensorflow:sparse"]
        assert result["status"] == "ok", result["message"]
        assert "loss = loss_fn(tf.constant(y), logits" in result["code"] and "from_logits=True" in result["code"]
    assert "sample_weight=tf.constant(sw)" in doc["cases"][-1]["results"]["tensorflow:sparse"]["code"]


def test_a_paddle_layer_as_a_class(tmp_path, monkeypatch):
    needs("paddle")
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "ports.yaml", 'variants:\n  "paddle:layer": {call: "paddle.nn:CrossEntropyLoss", against: paddle}\n')
    write(
        tmp_path,
        "p.yaml",
        "cases:\n  - id: weighted\n    logits: [[0.05, 0.95, 0], [0.1, 0.8, 0.1]]\n    labels: [1, 2]\n    weight: [1, 2, 3]\n",
    )
    code, doc = run(tmp_path, "p.yaml", "--variants", "ports.yaml", frameworks="paddle")
    assert code == 0, doc["cases"][0]["expectation_message"]
    assert (
        "loss_fn = CrossEntropyLoss(weight=paddle.to_tensor(w), reduction='mean', label_smoothing=0.0)"
        in doc["cases"][0]["results"]["paddle:layer"]["code"]
    )


def sigmoid_focal(x, z, alpha, gamma):
    """Lin et al. 2017 (RetinaNet), eq. 5 with alpha_t, in float64: alpha_t (1 - p_t)^gamma (-log p_t)."""
    p = 1 / (1 + np.exp(-x))
    p_t = np.where(z == 1, p, 1 - p)
    alpha_t = np.ones_like(x) if alpha is None else np.where(z == 1, alpha, 1 - alpha)
    return alpha_t * (1 - p_t) ** gamma * -np.log(p_t)


def test_real_ports_kornia_and_transformers_join_torch(tmp_path, monkeypatch):
    """Done for #25: kornia's binary focal loss gets the case's alpha and gamma (not its own defaults
    0.25 and 2) and transformers' fixed_cross_entropy gets no ignore_index=None; both join torch, at
    the float64 values of the published formulas."""
    needs("kornia", "transformers")
    monkeypatch.chdir(tmp_path)
    write(
        tmp_path,
        "ports.yaml",
        """\
        variants:
          torch:kornia: {call: "kornia.losses:binary_focal_loss_with_logits", loss: sigmoid_focal, against: torch}
          torch:hf: {call: "transformers.loss.loss_utils:fixed_cross_entropy", loss: softmax_cross_entropy, against: torch}
        """,
    )
    x = [[0.5, -1.0, 2.0], [-0.3, 1.5, 0.0]]
    write(
        tmp_path,
        "c.yaml",
        f"""\
        cases:
          - id: focal
            loss: sigmoid_focal
            dtype: float64
            logits: {x}
            labels: [[1, 0, 1], [0, 1, 0]]
            matrix: {{alpha: [null, 0.5], gamma: [0.0, 1.5]}}
          - id: ce
            dtype: float64
            logits: {x}
            labels: [2, -100]
            ignore_index: -100
        """,
    )
    code, doc = run(tmp_path, "c.yaml", "--variants", "ports.yaml")
    assert code == 0, [c["expectation_message"] for c in doc["cases"]]
    logits, labels = np.array(x), np.array([[1, 0, 1], [0, 1, 0]])
    for case in doc["cases"][:-1]:
        kornia = case["results"]["torch:kornia"]
        assert kornia["status"] == "ok", kornia["message"]
        assert any({"torch", "torch:kornia"} <= set(g) for g in case["groups"]), case["id"]
        alpha, gamma = case["params"].get("alpha"), case["params"]["gamma"]
        assert kornia["loss"] == pytest.approx(sigmoid_focal(logits, labels, alpha, gamma).mean(), rel=1e-12)
    hf = doc["cases"][-1]["results"]["torch:hf"]
    assert "ignore_index=-100" in hf["code"] and "None" not in hf["code"].split("fixed_cross_entropy(")[-1]
    # -log softmax(x_0)[2] alone: the second position is ignored
    expected = -(logits[0, 2] - np.log(np.exp(logits[0]).sum()))
    assert hf["loss"] == pytest.approx(expected, rel=1e-12)
    assert any({"torch", "torch:hf"} <= set(g) for g in doc["cases"][-1]["groups"])


@pytest.mark.slow
def test_the_ports_example(tmp_path):
    """examples/ports (tox -e ports): every expectation holds, and the differences it records are the
    ones kornia's and transformers' sources describe: kornia's softmax focal mean is its sum over N*C,
    the label smoother joins torch with smoothing, the causal-LM loss is apart (its labels shift)."""
    needs("kornia", "transformers")
    root = EXAMPLES.parent
    out = tmp_path / "r.json"
    argv = ["run", str(root / "examples/ports/cases"), "--variants", str(root / "examples/ports/variants.yaml")]
    assert cli.main([*argv, "--frameworks", "torch,reference", "--json", str(out), "--html", str(tmp_path / "i.html")]) == 0
    cases = {(Path(c["file"]).stem, c["id"]): c for c in json.loads(out.read_text())["cases"]}
    plain, summed = cases[("cross_entropy", "plain[reduction=mean]")], cases[("cross_entropy", "plain[reduction=sum]")]
    n, c = 4, 3
    assert plain["results"]["torch:kornia_focal"]["loss"] == pytest.approx(summed["results"]["torch"]["loss"] / (n * c), rel=1e-6)
    smoothed = cases[("cross_entropy", "smoothed[reduction=mean]")]
    assert any({"torch", "torch:hf_label_smoother"} <= set(g) for g in smoothed["groups"])
    assert not any({"torch", "torch:hf_causal_lm"} <= set(g) for g in plain["groups"])
