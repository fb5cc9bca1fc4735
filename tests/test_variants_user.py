"""A user's own loss function as a variant (`--variant KEY=MODULE:FUNCTION`): the example ports of
examples/ join torch or split from it exactly where they should, with the fitted explanation; mistakes
are exit 2 before any case runs; errors name the user's line; the pytest option fails an item."""

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from conformance import cli, user
from conformance.errors import UsageError

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
PORTS = ["--variant", "torch:mine=my_loss:cross_entropy", "--variant", "torch:slip=my_loss:cross_entropy_slip"]

pytest.importorskip("torch")


@pytest.fixture
def examples(tmp_path, monkeypatch):
    """A copy of examples/ as the current directory (the modules are imported from it)."""
    folder = tmp_path / "examples"
    shutil.copytree(EXAMPLES, folder, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.chdir(folder)
    return folder


def run(folder, *argv):
    out = folder / "out"
    chosen = [] if "--only" in argv else ["--frameworks", "torch,reference"]
    code = cli.main(["run", *map(str, argv), *chosen, "--json", str(out / "results.json"), "--html", str(out / "index.html")])
    return code, json.loads((out / "results.json").read_text()) if (out / "results.json").exists() else None


def test_parse_and_known_keys():
    with pytest.raises(UsageError, match="expected FRAMEWORK:NAME=MODULE:FUNCTION"):
        user.parse(["torch=my_loss:f"])
    with pytest.raises(UsageError, match="unknown framework 'torhc'"):
        user.parse(["torhc:mine=my_loss:f"])
    with pytest.raises(UsageError, match="is taken"):
        user.parse(["torch:nll=my_loss:f"])
    specs = user.parse(["torch:mine=pkg.my_loss:f"])
    assert specs == (user.Spec("torch:mine", "pkg.my_loss", "f"),)
    with user.activated(specs):
        assert "torch:mine" in user.known_keys()
        [sent] = json.loads(user.environment("torch")[user.ENV])
        assert user.Spec.from_json(sent) == specs[0]
        assert user.environment("paddle") == {}
    assert "torch:mine" not in user.known_keys()


def test_ports_the_readme_walkthrough(examples):
    """Done: the faithful port joins torch everywhere; the slipped one is apart exactly on weighted
    means, and its explanation names the mean's denominator (a fit of the knob model)."""
    code, doc = run(examples, "port.yaml", *PORTS)
    assert code == 0, [c["expectation_message"] for c in doc["cases"] if c["expectation"] == "violated"]
    by_id = {c["id"]: c for c in doc["cases"]}
    apart = set()
    for case_id, case in by_id.items():
        if "sample_weighted" in case_id:
            for key in ("torch:mine", "torch:slip"):
                assert case["results"][key]["status"] == "unsupported"
                assert "does not declare sample_weight" in case["results"][key]["message"]
            continue
        group = next(g for g in case["groups"] if "torch" in g)
        assert "torch:mine" in group, case_id
        if "torch:slip" not in group:
            apart.add(case_id)
            (entry,) = [e for e in case["explanation"] if e["b"] == "torch:slip"]
            assert entry["a"] == "torch" and entry["fit"]["exact"]
            assert set(entry["fit"]["knobs"]) == {"denominator"}
            assert "torch divides by the sum of target weights = 5" in entry["text"]
            assert entry["text"].startswith("torch:slip vs torch: torch:slip divides the mean by the number of")
            # no position is ignored, so the non-ignored positions are all of them: the fit names both
            assert {entry["fit"]["knobs"]["denominator"], *entry["fit"]["equivalent"]["denominator"]} >= {"valid_count", "positions"}
            assert "give the same on this case" in entry["text"]
    assert apart == {"weighted[reduction=mean]", "weighted_smoothed[reduction=mean]"}
    # the code shown is the real call: pasted next to the module, it gives the value
    case = by_id["weighted_smoothed[reduction=mean]"]
    snippet = case["results"]["torch:slip"]["code"]
    assert "from my_loss import cross_entropy_slip" in snippet
    assert "weight=torch.tensor(w), label_smoothing=0.1, reduction='mean'" in snippet
    (examples / "snippet.py").write_text(snippet + "print(repr(float(loss)))\n")
    shown = subprocess.run([sys.executable, "snippet.py"], capture_output=True, text=True, cwd=examples, check=True).stdout
    assert float(shown) == pytest.approx(case["results"]["torch:slip"]["loss"], rel=1e-6)


def test_error_names_the_users_line_and_mistakes_exit_2(examples, capsys):
    (examples / "bad_loss.py").write_text(
        textwrap.dedent(
            """\
            def broken(logits, target):
                scale = 1 / 0
                return logits.sum() * scale
            """
        )
    )
    (examples / "one.yaml").write_text(
        "cases:\n  - id: one\n    logits: [[0.1, 0.9]]\n    labels: [1]\n    expect: {status: {torch:bad: error}}\n"
    )
    code, doc = run(examples, "one.yaml", "--variant", "torch:bad=bad_loss:broken")
    assert code == 0
    message = doc["cases"][0]["results"]["torch:bad"]["message"]
    assert message.startswith("ZeroDivisionError: division by zero (at bad_loss.py:2 in broken: scale = 1 / 0)")
    capsys.readouterr()
    for spec, says in [
        ("torch:bad=bad_loss:missing", "module 'bad_loss'"),
        ("torch:bad=no_such_module:f", "cannot import module 'no_such_module'"),
    ]:
        code, _ = run(examples / "none", "one.yaml", "--variant", spec)
        assert code == 2
        err = capsys.readouterr().err
        assert says in err and spec in err
    assert not (examples / "none" / "out" / "results.json").exists()  # no case ran


def test_pytest_option_fails_an_item_naming_a_user_variant(examples):
    text = (
        (examples / "port.yaml")
        .read_text()
        .replace("[[torch, torch:mine, reference], [torch:slip]]", "[[torch, torch:mine, torch:slip, reference]]")
    )
    (examples / "port.yaml").write_text(text)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "port.yaml",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:hypothesispytest",
            "--rootdir",
            str(examples),
        ]
        + ["--conformance-frameworks", "torch,reference", "--conformance-json", "", "--conformance-html", ""]
        + [p.replace("--variant", "--conformance-variant") for p in PORTS],
        capture_output=True,
        text=True,
        cwd=examples,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "2 failed, 13 passed" in proc.stdout
    assert "found [[torch, torch:mine, reference], [torch:slip]]" in proc.stdout
    assert "from my_loss import cross_entropy_slip" in proc.stdout


PORTS_ELSEWHERE = {
    "paddle": """\
        import paddle
        import paddle.nn.functional as F


        def cross_entropy(logits, target, weight=None, label_smoothing=0.0, reduction="mean"):
            log_p = F.log_softmax(logits, axis=-1)
            classes = logits.shape[-1]
            w = paddle.ones([classes], dtype=logits.dtype) if weight is None else weight
            weighted = -log_p * w
            picked = (weighted * F.one_hot(target, classes)).sum(-1)
            loss = (1 - label_smoothing) * picked + label_smoothing * weighted.sum(-1) / classes
            return loss.sum() / (F.one_hot(target, classes) * w).sum()
        """,
    "tensorflow": """\
        import tensorflow as tf


        def cross_entropy(logits, target, weight=None, label_smoothing=0.0, reduction="mean"):
            log_p = tf.nn.log_softmax(logits, axis=-1)
            classes = logits.shape[-1]
            w = tf.ones([classes], dtype=logits.dtype) if weight is None else weight
            weighted = -log_p * w
            hot = tf.one_hot(target, classes, dtype=logits.dtype)
            picked = tf.reduce_sum(weighted * hot, -1)
            loss = (1 - label_smoothing) * picked + label_smoothing * tf.reduce_sum(weighted, -1) / classes
            return tf.reduce_sum(loss) / tf.reduce_sum(hot * w)
        """,
}


@pytest.mark.parametrize("framework", sorted(PORTS_ELSEWHERE))
def test_a_port_to_a_channels_last_framework(framework, tmp_path, monkeypatch):
    """The function gets the framework's tensors classes last (K-dim too) and joins torch; its gradient
    comes back in the case's layout."""
    pytest.importorskip(framework)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "port.py").write_text(textwrap.dedent(PORTS_ELSEWHERE[framework]))
    (tmp_path / "cases.yaml").write_text(
        textwrap.dedent(
            """\
            defaults: {weight: [1, 2, 3], label_smoothing: 0.1}
            cases:
              - id: flat
                logits: [[0.05, 0.95, 0], [0.1, 0.8, 0.1]]
                labels: [1, 2]
              - id: kdim
                random: {shape: [2, 3, 4], seed: 1}
                labels: [[0, 1, 2, 1], [2, 2, 0, 1]]
            """
        )
    )
    key = f"{framework}:mine"
    out = tmp_path / "out"
    argv = ["run", "cases.yaml", "--only", "torch", "--variant", f"{key}=port:cross_entropy", "--json", str(out / "r.json")]
    assert cli.main([*argv, "--html", str(out / "i.html")]) == 0
    doc = json.loads((out / "r.json").read_text())
    for case in doc["cases"]:
        assert case["results"][key]["status"] == "ok", case["results"][key]["message"]
        assert case["groups"] == [["torch", key]], case["id"]


JAX_PORT = """\
    import jax
    import jax.numpy as jnp


    def cross_entropy(logits, target, weight=None, label_smoothing=0.0, reduction="mean"):
        log_p = jax.nn.log_softmax(logits, axis=1)
        classes = logits.shape[1]
        w = jnp.ones([classes], dtype=logits.dtype) if weight is None else weight
        shape = [1, classes] + [1] * (logits.ndim - 2)
        weighted = -log_p * w.reshape(shape)
        hot = jnp.moveaxis(jax.nn.one_hot(target, classes, dtype=logits.dtype), -1, 1)
        picked = jnp.sum(weighted * hot, axis=1)
        loss = (1 - label_smoothing) * picked + label_smoothing * jnp.sum(weighted, axis=1) / classes
        return jnp.sum(loss) / jnp.sum(hot * w.reshape(shape))
    """


def test_a_port_to_jax_gets_the_class_axis_where_optax_gets_it(tmp_path, monkeypatch):
    """JAX runs a user's function under `jax.grad`: predictions with the class axis 1 (as the optax
    default variant gets them, K-dim too), class indices as given; a faithful port joins torch, and a
    sum divided by the number of positions (the classic slip) is apart on the weighted case only."""
    pytest.importorskip("jax")
    monkeypatch.chdir(tmp_path)
    slip = JAX_PORT.replace("return jnp.sum(loss) / jnp.sum(hot * w.reshape(shape))", "return jnp.mean(loss)")
    (tmp_path / "port.py").write_text(textwrap.dedent(JAX_PORT) + textwrap.dedent(slip).replace("def cross_entropy(", "def slip("))
    (tmp_path / "cases.yaml").write_text(
        textwrap.dedent(
            """\
            cases:
              - id: weighted
                logits: [[0.05, 0.95, 0], [0.1, 0.8, 0.1]]
                labels: [1, 2]
                weight: [1, 2, 3]
                label_smoothing: 0.1
              - id: kdim
                random: {shape: [2, 3, 4], seed: 1}
                labels: [[0, 1, 2, 1], [2, 2, 0, 1]]
            """
        )
    )
    out = tmp_path / "out"
    argv = ["run", "cases.yaml", "--only", "torch", "--variant", "jax:mine=port:cross_entropy", "--variant", "jax:slip=port:slip"]
    assert cli.main([*argv, "--json", str(out / "r.json"), "--html", str(out / "i.html")]) == 0
    cases = {c["id"]: c for c in json.loads((out / "r.json").read_text())["cases"]}
    for case in cases.values():
        assert case["results"]["jax:mine"]["status"] == "ok", case["results"]["jax:mine"]["message"]
        assert "from port import cross_entropy" in case["results"]["jax:mine"]["code"]
    assert cases["weighted"]["groups"] == [["torch", "jax:mine"], ["jax:slip"]]
    assert cases["kdim"]["groups"] == [["torch", "jax:mine", "jax:slip"]]
    [fit] = [e for e in cases["weighted"]["explanation"] if "jax:slip" in (e["a"], e["b"])]
    assert "denominator" in [k["knob"] for k in fit["knobs"]]


def test_baseline_save_keeps_the_users_key(examples):
    out = examples / "base.json"
    assert cli.main(["baseline", "save", "port.yaml", "--only", "torch", *PORTS, "--out", str(out)]) == 0
    assert '"torch:slip"' in out.read_text()
    # replayed against the same functions: nothing moved
    code, doc = run(examples, "port.yaml", "--only", "torch", *PORTS, "--baseline", str(out))
    assert code == 0, doc["baseline"]


def test_fuzz_keeps_the_users_keys_in_the_cases_it_writes(examples, tmp_path):
    """A case `fuzz --variant` writes names the user's functions in its expected groups (the slip apart on
    a weighted mean, as the walkthrough shows), says in its header which `--variant` options run it, and
    holds when run with them."""
    from conformance import explain, fuzz, runner
    from conformance.pipeline import Pipeline

    spec = {"id": "fuzz", "logits": [[0.05, 0.95, 0.0], [0.1, 0.8, 0.1]], "labels": [1, 2], "weight": [1.0, 2.0, 3.0]}
    with user.activated(user.parse(PORTS[1::2])):
        keys = ["torch", "reference"]
        with Pipeline(runner.plan(keys, keys + sorted(user.keys())), 120.0) as pipeline:
            record = pipeline.evaluate(fuzz.to_case(spec))
        path = fuzz.write_case(tmp_path, 0, 0, spec, record, explain.signature(record))
    text = path.read_text(encoding="utf-8")
    groups = yaml.safe_load(text)["cases"][0]["expect"]["groups"]
    assert sorted(map(sorted, groups)) == [["reference", "torch", "torch:mine"], ["torch:slip"]]
    assert "--variant torch:mine=my_loss:cross_entropy --variant torch:slip=my_loss:cross_entropy_slip" in text
    code, doc = run(examples, path, *PORTS)
    assert code == 0 and doc["cases"][0]["expectation"] == "met"
