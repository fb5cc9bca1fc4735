"""The smallest change to a framework's own call (`adapters.smallest_change`, the family's `port`), as
the report shows it first: written from the knobs that move the loss, and, run in the framework, the
value of the other framework's documented formula.

Expected values: torch's documented formula for class weights with label smoothing (torch.nn.CrossEntropyLoss
docs: per position sum_c w_c q_c (-log_softmax_c), mean divided by the sum of w[y]), written below in
float64 NumPy; on `cases/article.yaml`'s inputs the README prints torch's value 1.0553335.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from conformance import adapters, cases, explain, registry

ARTICLE = Path(__file__).resolve().parent.parent / "cases" / "article.yaml"


def article(case_id: str) -> cases.Case:
    return next(c for c in cases.load_paths([ARTICLE]) if c.id == case_id)


def documented(framework: str, case: cases.Case):
    (default,) = [v for v in adapters.for_case(adapters.variants(framework), case) if v.key == framework]
    return default.knobs(case)


def torch_formula(x: np.ndarray, y: np.ndarray, w: np.ndarray, eps: float) -> float:
    """torch's documented weighted, smoothed mean, by hand."""
    lp = x - np.log(np.exp(x).sum(1, keepdims=True))
    q = np.eye(x.shape[1])[y] * (1 - eps) + eps / x.shape[1]
    return float((-(q * w * lp).sum(1)).sum() / w[y].sum())


def test_torch_to_paddle_with_weights_and_smoothing_passes_the_target_and_divides():
    case = article("weighted_smoothing[reduction=mean]")
    code = adapters.smallest_change("paddle", case, documented("torch", case))
    assert code is not None
    lines = code.splitlines()
    assert lines[0].startswith("# the smallest change: weighs each class's term inside the smoothed sum")
    assert "q = np.eye(3)[y] * (1 - 0.1) + 0.1 / 3" in lines[1] and lines[2].startswith("T = q * w")
    assert any(line.startswith("D = w[y].sum()") for line in lines)
    call = next(line for line in lines if "CrossEntropyLoss(" in line)
    assert "soft_label=True" in call and "reduction='sum'" in call and "weight" not in call and "label_smoothing" not in call
    assert lines[-1] == "loss = loss / D"


@pytest.mark.parametrize("framework", ["torch", "paddle", "tensorflow", "jax"])
def test_the_change_is_to_the_loss_and_takes_no_gradient_of_the_sum(framework):
    """The call summed with reduction='sum' and divided after: a gradient taken inside the call would be of
    the sum, not of the changed loss, so the change leaves the call's gradient line out."""
    case = article("weighted_smoothing[reduction=mean]")
    target = documented("paddle" if framework == "torch" else "torch", case)
    code = adapters.smallest_change(framework, case, target)
    assert code is not None and code.endswith("loss = loss / D")
    assert not [line for line in code.splitlines() if line.startswith("grad")]


def test_a_recipe_that_cannot_be_written_is_code_that_says_why(monkeypatch):
    """A plug-in's recipe writer that raises: the parent writes it (adapters.recipes) and must neither stop
    the run nor hide it; the recipe is code that raises the reason, so the report shows it failing."""
    case = article("weighted_smoothing[reduction=mean]")

    def broken(case, knobs):
        raise ValueError("no such op")

    real = registry.framework
    paddle = replace(real("paddle"), recipe=broken)
    monkeypatch.setattr(registry, "framework", lambda name, path=None: paddle if name == "paddle" else real(name, path))
    bodies = adapters.recipes("paddle", case, {"torch": documented("torch", case)}, explain.Model(case))
    with pytest.raises(RuntimeError, match="the recipe could not be written: ValueError: no such op"):
        exec(bodies["torch"], {})


def test_only_the_denominator_keeps_the_call_and_divides():
    case = article("weighted[reduction=mean]")  # no smoothing: Keras's hard-label weight is torch's per-class weight
    code = adapters.smallest_change("tensorflow", case, documented("torch", case))
    assert code is not None and 'SparseCategoricalCrossentropy(from_logits=True, reduction="sum")' in code
    assert "np.eye" not in code and "D = w[y].sum()" in code and code.endswith("loss = loss / D")


def test_no_change_where_nothing_moves_or_a_clip_moves():
    case = article("plain[reduction=mean]")
    assert adapters.smallest_change("paddle", case, documented("torch", case)) is None  # they agree: nothing to change


@pytest.mark.slow
@pytest.mark.parametrize("framework", ["paddle", "tensorflow", "jax"])
def test_the_change_gives_torchs_documented_value(framework):
    """Run in the framework's own process (one framework per process)."""
    case = article("weighted_smoothing[reduction=mean]")
    body = adapters.smallest_change(framework, case, documented("torch", case))
    snippet = f"{adapters.setup(framework)}\n\n{adapters.array_source(case)}\n\n{body}\nprint('LOSS', float(np.asarray(loss)))\n"
    done = subprocess.run([sys.executable, "-c", snippet], capture_output=True, text=True, timeout=300, check=True)
    value = float(done.stdout.split("LOSS")[-1])
    expected = torch_formula(case.predictions, case.labels, case.weight, case.label_smoothing)
    assert expected == pytest.approx(1.0553335, abs=1e-7)  # the README's printed torch value
    assert value == pytest.approx(expected, rel=1e-6)
