"""paddle adapter: what is paddle's own, whatever the loss family.

Its setup, versions, tensor conversion, ops (`OPS`), the recipe reproducing another framework's
semantics, the body that runs a user's function, and the helpers its families' modules write their
calls with (`_head`: the leaf tracked for gradients, channels last; `_tail`: per-sample weights and
TensorFlow's reductions by hand after `reduction='none'`). The native calls of each family are in that
family's package (`conformance/losses/<family>/paddle.py`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from conformance.adapters import Unsupported, is_bfloat16, moved, native_reduction
from conformance.cases import Case
from conformance.reference import Knobs, recipe_source

ORDER = 20
REPOSITORIES = {
    "paddle": "PaddlePaddle/Paddle",
    "paddlepaddle": "PaddlePaddle/Paddle",
}  # names written before an issue number (#123) -> GitHub
SETUP = "import numpy as np\nimport paddle"


def version() -> dict[str, str]:
    import paddle

    return {"paddlepaddle": str(paddle.__version__)}


def to_numpy(value: object) -> tuple[object, str]:
    return value.astype("float64").numpy(), str(value.dtype).removeprefix("paddle.")  # type: ignore[attr-defined]


def _tensor(name: str, case: Case) -> str:
    cast = ".astype('bfloat16')" if is_bfloat16(case, name) else ""
    return f"paddle.to_tensor({name}){cast}"


def _leaf(case: Case) -> str:
    return "logits" if case.from_logits else "probs"


def _head(case: Case, move: bool = True, refuses_no_class: bool = False) -> list[str]:
    """The prediction leaf (tracked for gradients) and, where paddle wants classes last, `inputs`.

    An empty class axis (C = 0) with positions to fill: paddle 3.3.1's cross-entropy kernels on class
    indices return memory they never wrote (CrossEntropyLoss, cross_entropy(axis=1),
    softmax_with_cross_entropy with or without return_softmax: other values each run, measured here),
    so those are not run. Where paddle refuses the call first, it runs, and its error is the finding
    (`refuses_no_class`, measured on every reduction): nll_loss ("ValueError: Expected 1 or more
    classes"), and one_hot, which refuses a depth of 0 (the one_hot recipe, and label smoothing on class
    indices, which paddle's losses start with one_hot)."""
    axis = case.family.CLASS_AXIS
    refused = refuses_no_class or (case.labels is not None and bool(case.label_smoothing))
    positions = np.prod([n for i, n in enumerate(case.predictions.shape) if i != axis]) if axis is not None else 0
    if axis is not None and case.num_classes == 0 and positions > 0 and not refused:
        raise Unsupported(
            "not run: with an empty class axis (C = 0) and positions to fill, paddle 3.3.1 returns values read from memory it never "
            "wrote (they change from run to run, measured here), so there is nothing to compare"
        )
    lines = [f"{_leaf(case)} = {_tensor('x', case)}", f"{_leaf(case)}.stop_gradient = False"]
    if moved(case) and move:
        lines.append(f"inputs = paddle.moveaxis({_leaf(case)}, 1, -1)  # paddle smoothing needs classes last")
    return lines


def _inputs(case: Case) -> str:
    return "inputs" if moved(case) else _leaf(case)


def _soft_target(case: Case) -> str:
    return _tensor("np.moveaxis(t, 1, -1)" if moved(case) else "t", case)


REDUCE = {
    "sum": "loss = loss.sum()",
    "mean": "loss = loss.mean()",
    "sum_over_batch_size": "loss = loss.sum() / loss.numel()",
    "mean_with_sample_weight": "loss = loss.sum() / ({weights}).sum()",
    "sum_by_nonzero_weights": "loss = loss.sum() / paddle.count_nonzero({weights})",
}


def _reduce(case: Case, per_position_api: bool = False) -> list[str]:
    """After reduction='none' (or an API with no reduction at all): per-sample weights, then the
    reduction, by hand (paddle has neither)."""
    if not per_position_api and native_reduction(case) != "none":
        return []
    lines = []
    weights = "paddle.ones_like(loss)"
    if case.sample_weight is not None:
        sw = f"{_tensor('sw', case)}.reshape([-1] + [1] * (loss.ndim - 1))"
        lines.append(f"loss = loss * {sw}  # per-sample weights, by hand")
        weights += f" * {sw}"
    if case.ignore_index is not None:  # only families with class indices take one
        weights += f" * (paddle.to_tensor(y) != {case.ignore_index}).astype(loss.dtype).reshape(loss.shape)"
    if case.reduction != "none":
        lines.append(REDUCE[case.reduction].format(weights=weights))
    return lines


def _tail(case: Case, per_position_api: bool = False) -> list[str]:
    return _reduce(case, per_position_api) + [f"grad, = paddle.grad(loss.sum(), {_leaf(case)})"]


# ---------------------------------------------------------------- recipes and a user's function


def recipe(case: Case, knobs: Knobs) -> str | None:
    """paddle reproducing another framework's semantics: sum(T * -log_softmax) per position with the
    target T (classes last), divided by D by hand. Log-softmax is taken as x - logsumexp(x): paddle's
    cross_entropy and log_softmax both clip shifted logits at -64 on CPU, logsumexp does not. On
    probabilities, sum(T * -log r) with r formed as the other framework does (the family's
    `probability_recipe`, in `OPS`)."""
    source = recipe_source(case, knobs, probabilities=True)
    if source is None or case.dtype in ("float16", "bfloat16"):
        return None
    reduce = {"none": [], "sum": ["loss = loss.sum()"]}.get(case.reduction, ["loss = loss.sum() / D"])
    if not case.from_logits:
        return "\n".join(source + case.family.probability_recipe(OPS, case, knobs) + reduce)
    lines = source + ["logits = paddle.to_tensor(x)", "logits.stop_gradient = False"]
    inputs = "paddle.moveaxis(logits, 1, -1)" if moved(case) else "logits"
    if knobs.logit_floor:
        lines.append(f"inputs = paddle.clip({inputs} - {inputs}.max(axis=-1, keepdim=True), min=-{knobs.logit_floor:g})")
        inputs = "inputs"
    lines.append(f"log_p = {inputs} - paddle.logsumexp({inputs}, axis=-1, keepdim=True)  # exact, unlike log_softmax on CPU")
    lines.append("loss = -(paddle.to_tensor(T.astype(x.dtype)) * log_p).sum(axis=-1)")
    return "\n".join(lines + reduce)


def user_body(case: Case, call: Callable[[str, str, Callable[[str], str]], str], class_axis: int = -1) -> str:
    """A user's function run as a variant (`conformance.user`): the predictions as the default variant
    gets them (class axis last; `class_axis=1`: left second, as a function written for torch's layout
    wants them), tracked for gradients (w.r.t. the case's layout); the targets (class indices;
    probabilities in the same layout; binary targets); `call` writes the import and the call."""
    last = class_axis == -1
    if case.labels is not None:
        target = "paddle.to_tensor(y)" if case.family.INDEX_LABELS else _tensor("y", case)
    elif case.family.CLASS_AXIS is not None and last:
        target = _soft_target(case)
    else:
        target = _tensor("t", case)
    inputs = _inputs(case) if last else _leaf(case)
    return "\n".join(
        _head(case, move=last) + [call(inputs, target, lambda name: _tensor(name, case)), f"grad, = paddle.grad(loss.sum(), {_leaf(case)})"]
    )


OPS = {  # paddle's ops, for the loss families that write their recipes in any framework's ops (`native_recipe`)
    "tensor": "paddle.to_tensor({})",
    "bfloat16": "{}.astype('bfloat16')",
    "log": "paddle.log({})",
    "log1p": "paddle.log1p({})",
    "exp": "paddle.exp({})",
    "abs": "paddle.abs({})",
    "relu": "paddle.nn.functional.relu({})",
    "sigmoid": "paddle.nn.functional.sigmoid({})",
    "log_softmax": "{0} - paddle.logsumexp({0}, axis=1, keepdim=True)",  # exact: its log_softmax clips at -64 on CPU
    "max1": "{}.max(axis=1, keepdim=True)",
    "clip": "paddle.clip({}, {}, {})",
    "at_least": "paddle.clip({}, min={})",
    "where": "paddle.where({}, {}, {})",
    "ones_like": "paddle.ones_like({})",
    "zeros_like": "paddle.zeros_like({})",
    "sum1": "{}.sum(axis=1)",
    "sum1_keep": "{}.sum(axis=1, keepdim=True)",
    "mean_last": "{}.mean(axis=-1)",
    "sum": "{}.sum()",
}
