"""paddle adapter: `paddle.nn.CrossEntropyLoss` (default) and the one_hot + label_smooth recipe."""

from __future__ import annotations

from conformance.adapters import Unsupported, Variant, kwargs, moved
from conformance.cases import Case
from conformance.reference import Knobs

SETUP = "import numpy as np\nimport paddle"


def version() -> dict[str, str]:
    import paddle

    return {"paddlepaddle": paddle.__version__}


def _tensor(name: str, case: Case) -> str:
    cast = ".astype('bfloat16')" if case.dtype == "bfloat16" else ""
    return f"paddle.to_tensor({name}){cast}"


def _head(case: Case) -> list[str]:
    leaf = "logits" if case.from_logits else "probs"
    lines = [f"{leaf} = {_tensor('x', case)}", f"{leaf}.stop_gradient = False"]
    if moved(case):
        lines.append(f"inputs = paddle.moveaxis({leaf}, 1, -1)  # paddle smoothing needs classes last")
    return lines


def _inputs(case: Case) -> str:
    return "inputs" if moved(case) else ("logits" if case.from_logits else "probs")


def _soft_target(case: Case) -> str:
    return _tensor("np.moveaxis(t, 1, -1)" if moved(case) else "t", case)


def _tail(case: Case) -> list[str]:
    return [f"grad, = paddle.grad(loss.sum(), {'logits' if case.from_logits else 'probs'})"]


def module_api(case: Case) -> str:
    soft = case.soft_labels is not None
    options = kwargs(
        ("weight", _tensor("w", case) if case.weight is not None else None),
        ("ignore_index", case.ignore_index),
        ("reduction", repr(case.reduction)),
        ("soft_label", "True" if soft else None),
        ("label_smoothing", case.label_smoothing or None),
        ("use_softmax", None if case.from_logits else "False"),
    )
    target = _soft_target(case) if soft else "paddle.to_tensor(y)"
    return "\n".join(
        _head(case)
        + [f"loss_fn = paddle.nn.CrossEntropyLoss({options})", f"loss = loss_fn({_inputs(case)}, {target})"]
        + _tail(case)
    )


def smooth_recipe(case: Case) -> str:
    """paddle's documented way to smooth before `label_smoothing` existed: one_hot, label_smooth, soft_label."""
    if case.labels is None:
        raise Unsupported("the one_hot + label_smooth recipe starts from class indices")
    if case.ignore_index is not None:
        raise Unsupported("one_hot has no ignore_index: an ignored label cannot be one-hot encoded")
    options = kwargs(
        ("weight", _tensor("w", case) if case.weight is not None else None),
        ("reduction", repr(case.reduction)),
        ("soft_label", "True"),
        ("use_softmax", None if case.from_logits else "False"),
    )
    dtype = "float32" if case.dtype == "bfloat16" else case.dtype
    lines = _head(case) + [
        f"label = paddle.nn.functional.one_hot(paddle.to_tensor(y), {case.num_classes}).astype('{dtype}')",
    ]
    if case.label_smoothing:
        lines.append(f"label = paddle.nn.functional.label_smooth(label, epsilon={case.label_smoothing!r})")
    lines += [f"loss = paddle.nn.CrossEntropyLoss({options})({_inputs(case)}, label)"] + _tail(case)
    return "\n".join(lines)


def documented(case: Case) -> Knobs | None:
    """paddle docs and source: the weight is computed from the (soft or smoothed) label; mean / sum of
    those weights, or, unweighted, / all positions when ignore_index < 0 (ignored ones included) and /
    non-ignored positions otherwise; 0/0 -> 0; CPU softmax clips shifted logits at -64."""
    soft = case.soft_labels is not None or case.label_smoothing > 0
    if soft and case.ignore_index is not None and case.ignore_index >= 0:
        return None
    if case.weight is not None:
        denominator = "label_weight" if soft else "target_weight"
    elif not soft and case.ignore_index is not None and case.ignore_index >= 0:
        denominator = "valid_count"
    else:
        denominator = "positions"
    return Knobs(
        weight_mode="from_label",
        denominator=denominator,
        empty_mean="zero",
        probabilities="none",
        logit_floor=64.0,
    )


def recipe_documented(case: Case) -> Knobs | None:
    if case.labels is None or case.ignore_index is not None:
        return None
    return Knobs(
        weight_mode="from_label",
        denominator="label_weight" if case.weight is not None else "positions",
        empty_mean="zero",
        probabilities="none",
        logit_floor=64.0,
    )


VARIANTS = [
    Variant("paddle", "paddle.nn.CrossEntropyLoss", module_api, documented),
    Variant(
        "paddle:smooth_recipe",
        "paddle.nn.functional.one_hot + label_smooth + CrossEntropyLoss(soft_label=True)",
        smooth_recipe,
        recipe_documented,
    ),
]


def to_numpy(value: object) -> tuple[object, str]:
    return value.astype("float64").numpy(), str(value.dtype).removeprefix("paddle.")  # type: ignore[attr-defined]
