"""Hand-made results documents for the report tests: shaped like results.json, no framework needed.

`sample_doc()` holds four cases with known pairs (the agreement matrix is computed by hand in
tests/test_html.py), hostile text from case files, NaN and infinities, an off-documented-formula result,
an explanation with a recipe, and a diverging label-smoothing sweep.
"""

from __future__ import annotations

from itertools import combinations
from typing import Any

DEFAULT = ("torch", "paddle", "tensorflow", "reference")
HOSTILE = "<script>alert(1)</script>"
CODE = "import numpy as np\nimport torch\n\nx = np.array([[0.05, 0.95, 0.0]], dtype='float32')\nloss = torch.tensor(x).sum()\n"


def result(status: str = "ok", loss: Any = 1.0, **extra: Any) -> dict[str, Any]:
    documented = {"agrees": True, "loss": loss, "knobs": {"denominator": "target_weight", "clip_eps": 1e-07}}
    base = {
        "status": status,
        "api": "torch.nn.CrossEntropyLoss",
        "code": CODE,
        "message": None,
        "dtype": "float32",
        "loss": loss if status == "ok" else None,
        "grad": [[0.1, -0.2, 0.1]] if status == "ok" else None,
        "documented": documented if status == "ok" else None,
    }
    if status != "ok":
        base["message"] = f"{status}: because <b>reasons</b>"
    return {**base, **extra}


def case(case_id: str, results: dict[str, dict[str, Any]], agree: set[frozenset[str]], **extra: Any) -> dict[str, Any]:
    """A case record whose pairs agree exactly on `agree` (pairs of ok keys); groups formed greedily."""
    ok = [k for k, r in results.items() if r["status"] == "ok"]
    pairs = [
        {
            "a": a,
            "b": b,
            "agree": frozenset((a, b)) in agree,
            "loss_max_abs": 0.0 if frozenset((a, b)) in agree else 0.5,
            "loss_max_rel": 0.0,
            "grad_max_abs": 0.0,
            "grad_max_rel": 0.0,
        }
        for a, b in combinations(ok, 2)
    ]
    groups: list[list[str]] = []
    for key in ok:
        home = next((g for g in groups if all(frozenset((key, m)) in agree for m in g)), None)
        if home is None:
            groups.append([key])
        else:
            home.append(key)
    params = {
        "id": case_id.split("[")[0],
        "loss": "softmax_cross_entropy",
        "logits": [[0.05, 0.95, 0.0], [0.1, 0.8, 0.1]],
        "labels": [1, 2],
        "label_smoothing": 0.0,
        "reduction": "mean",
        "dtype": "float32",
    }
    record = {
        "id": case_id,
        "file": "cases/sample.yaml",
        "line": 3,
        "description": None,
        "params": params,
        "results": results,
        "groups": groups,
        "pairs": pairs,
        "tolerance": {"rtol": 1e-05, "atol": 1e-06},
        "expectation": "met",
        "expectation_message": None,
        "expected": None,
    }
    for key, value in extra.items():
        if key in params:
            params[key] = value
        else:
            record[key] = value
    return record


def pair(*keys: str) -> frozenset[str]:
    return frozenset(keys)


EXPLANATION = [
    {
        "a": "torch",
        "b": "tensorflow",
        "knobs": [
            {"knob": "denominator", "a": "target_weight", "b": "positions", "effect": 1.6011921},
            {"knob": "clip_eps", "a": 1e-07, "b": None, "effect": None},
        ],
        "recipe": {
            "code": "import numpy as np\nprint('recipe <ok>')\n",
            "result": 1.0674614,
            "target": 1.0674614,
            "reproduces": True,
            "change": {"code": "# the smallest change\nloss = loss / D\n", "result": 1.0674614, "target": 1.0674614, "reproduces": True},
        },
        "reverse": {"code": "print('torch as tensorflow')\n", "result": 2.6685, "target": 2.6685, "reproduces": True},
        "text": "Keras divides the weighted sum by N, torch by the sum of the target weights.",
    },
    {
        "a": "paddle",
        "b": "tensorflow",
        "knobs": [],
        "recipe": {"code": "raise TypeError\n", "result": None, "reproduces": False, "message": "TypeError: <no>"},
        "text": None,
    },
]


def matrix_cases() -> list[dict[str, Any]]:
    """Four cases with known pairs; expected agreement fractions are worked out in test_html.py."""
    cases = [
        case(
            f"hostile[reduction={HOSTILE}]",
            {k: result() for k in DEFAULT},
            {pair("torch", "paddle"), pair("torch", "reference"), pair("paddle", "reference")},
            description=f"A description with {HOSTILE} & <b>markup</b>.",
            expectation="violated",
            expectation_message=f"expected groups [[torch, tensorflow]], found {HOSTILE}",
            explanation=EXPLANATION,
        ),
        case(
            "unsupported_tf",
            {**{k: result() for k in DEFAULT}, "tensorflow": result("unsupported")},
            {pair("torch", "paddle"), pair("torch", "reference"), pair("paddle", "reference")},
        ),
        case(
            "paddle_error",
            {**{k: result() for k in DEFAULT}, "paddle": result("error")},
            {pair("torch", "reference"), pair("torch", "tensorflow"), pair("tensorflow", "reference")},
        ),
        case(
            "two_keys",
            {
                "torch": result(loss=float("nan"), grad=[[float("inf"), float("-inf"), 0.0]]),
                "reference": result(loss=1.0, documented={"agrees": False, "loss": 0.75, "knobs": {"denominator": "positions"}}),
            },
            set(),
        ),
    ]
    cases[3]["pairs"][0]["loss_max_abs"] = float("nan")
    return cases


def sweep_cases() -> list[dict[str, Any]]:
    """label_smoothing 0, 0.1, 0.2 (mean): tensorflow diverges; torch and reference share one curve."""
    out = []
    for i, smoothing in enumerate((0.0, 0.1, 0.2)):
        losses = {
            "torch": 1.0 + smoothing,
            "paddle": 1.0 + smoothing,
            "tensorflow": 2.0 + smoothing * 3,
            "reference": 1.0 + smoothing,
        }
        out.append(
            case(
                f"smooth[label_smoothing={smoothing}]",
                {k: result(loss=v) for k, v in losses.items()},
                {pair("torch", "paddle"), pair("torch", "reference"), pair("paddle", "reference")},
                label_smoothing=smoothing,
                line=10 + i,
            )
        )
    return out


def nothing_ran() -> dict[str, Any]:
    """No result is ok: no groups, no anchor, nothing to compare."""
    return case("nothing_ran", {"torch": result("error"), "paddle": result("unsupported")}, set())


def sample_doc(cases: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A results document around `cases` (default: the matrix cases, the sweep and nothing_ran)."""
    cases = matrix_cases() + sweep_cases() + [nothing_ran()] if cases is None else cases
    diverge = sum(1 for c in cases if len(c["groups"]) > 1)
    return {
        "schema_version": 1,
        "versions": {"torch": "2.13.0+cpu", "paddlepaddle": "3.3.1", "tensorflow": "2.21.0"},
        "summary": {
            "cases": len(cases),
            "agree": len(cases) - diverge,
            "diverge": diverge,
            "expectations": {v: sum(1 for c in cases if c["expectation"] == v) for v in ("met", "violated", "none")},
            "statuses": {"ok": 20, "error": 1, "unsupported": 1},
            "off_documented_formula": 1,
        },
        "cases": cases,
    }
