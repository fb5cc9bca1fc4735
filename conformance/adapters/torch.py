"""torch adapter: what is torch's own, whatever the loss family.

Its setup, versions, tensor conversion, ops (`OPS`), the recipe reproducing another framework's
semantics, the body that runs a user's function, and the helpers its families' modules write their
calls with (`_head`, `_tail`: the leaf tracked for gradients, then per-sample weights and TensorFlow's
reductions by hand after `reduction='none'`, as torch has neither). The native calls of each family are
in that family's package (`conformance/losses/<family>/torch.py`).
"""

from __future__ import annotations

from collections.abc import Callable

from conformance.adapters import batch_shape, is_bfloat16, moved, native_reduction, squeezed_labels
from conformance.cases import Case
from conformance.reference import Knobs, recipe_source

ORDER = 10
REPOSITORIES = {"torch": "pytorch/pytorch", "pytorch": "pytorch/pytorch"}  # names written before an issue number (#123) -> GitHub
SETUP = "import numpy as np\nimport torch"


def version() -> dict[str, str]:
    import torch

    return {"torch": str(torch.__version__)}  # TorchVersion would make the parent import torch to unpickle it


def to_numpy(value: object) -> tuple[object, str]:
    return value.detach().double().numpy(), str(value.dtype).removeprefix("torch.")  # type: ignore[attr-defined]


def _tensor(name: str, case: Case) -> str:
    return f"torch.tensor({name}).to(torch.bfloat16)" if is_bfloat16(case, name) else f"torch.tensor({name})"


def _leaf(case: Case) -> str:
    return "logits" if case.from_logits else "probs"


def _head(case: Case, log_of_probs: bool = True) -> list[str]:
    """The prediction leaf (gradients are taken w.r.t. it) and, for probabilities, its log if wanted."""
    lines = squeezed_labels(case, "torch takes class indices without a trailing axis of 1")
    lines.append(f"{_leaf(case)} = {_tensor('x', case)}.requires_grad_()")
    if not case.from_logits and log_of_probs:
        lines.append("logits = torch.log(probs)  # CrossEntropyLoss(log p) = -log(p / sum p)")
    return lines


def _target(case: Case) -> str:
    if case.labels is not None:
        return "torch.tensor(y)" if case.family.INDEX_LABELS else _tensor("y", case)
    return _tensor("t", case)


REDUCE = {
    "sum": "loss = loss.sum()",
    "mean": "loss = loss.mean()",
    "sum_over_batch_size": "loss = loss.sum() / loss.numel()",
    "mean_with_sample_weight": "loss = loss.sum() / ({weights}).sum()",
    "sum_by_nonzero_weights": "loss = loss.sum() / torch.count_nonzero({weights})",
}


def _reduce(case: Case) -> list[str]:
    """The recipe after reduction='none': per-sample weights, then the reduction by hand."""
    if native_reduction(case) != "none":
        return []
    lines = []
    weights = "torch.ones_like(loss)"
    if case.sample_weight is not None:
        sw = _tensor(batch_shape(case), case)
        lines.append(f"loss = loss * {sw}  # per-sample weights, by hand")
        weights += f" * {sw}"
    if case.ignore_index is not None:  # only families with class indices take one
        weights += f" * (torch.tensor(y) != {case.ignore_index})"
    if case.reduction != "none":
        lines.append(REDUCE[case.reduction].format(weights=weights))
    return lines


def _tail(case: Case) -> list[str]:
    return _reduce(case) + [f"grad, = torch.autograd.grad(loss.sum(), {_leaf(case)})"]


# ---------------------------------------------------------------- recipes and a user's function


def recipe(case: Case, knobs: Knobs) -> str | None:
    """torch reproducing another framework's semantics: its target T and denominator D fed to
    cross_entropy with probability targets (sum of T * -log_softmax per position); on probabilities,
    sum of T * -log r with r formed as the other framework does (the family's `probability_recipe`, in `OPS`)."""
    source = recipe_source(case, knobs, probabilities=True)
    if source is None or case.dtype == "bfloat16":
        return None
    if not case.from_logits:
        return "\n".join(source + case.family.probability_recipe(OPS, case, knobs) + _recipe_reduction(case))
    lines = source + ["logits = torch.tensor(x).requires_grad_()"]
    inputs = "logits"
    if knobs.logit_floor:
        lines.append(
            f"shifted = torch.clamp(logits - logits.amax(dim=1, keepdim=True), min=-{knobs.logit_floor:g})  # paddle's softmax clip"
        )
        inputs = "shifted"
    lines.append(
        f"loss = torch.nn.functional.cross_entropy({inputs}, torch.tensor(np.moveaxis(T, -1, 1), dtype=logits.dtype), reduction='none')"
    )
    return "\n".join(lines + _recipe_reduction(case))


def _recipe_reduction(case: Case) -> list[str]:
    if case.reduction == "none":
        return []
    if case.reduction == "sum":
        return ["loss = loss.sum()"]
    return ["loss = loss.sum() / D"]


def user_body(case: Case, call: Callable[[str, str, Callable[[str], str]], str], class_axis: int = 1) -> str:
    """A user's function run as a variant (`conformance.user`): the predictions as the default variant
    gets them (class axis 1; `class_axis=-1`: moved last, as a channels-last function wants them), tracked
    for gradients (w.r.t. the case's layout); the targets (class indices, or probabilities / binary targets
    in the case dtype); `call` writes the import and the call; the gradient by autograd."""
    last = class_axis == -1 and moved(case)
    predictions = f"torch.movedim({_leaf(case)}, 1, -1).contiguous()" if last else _leaf(case)  # as a channels-last caller has them
    target = _tensor("np.moveaxis(t, 1, -1)", case) if last and case.labels is None else _target(case)
    return "\n".join(
        _head(case, log_of_probs=False)
        + [call(predictions, target, lambda name: _tensor(name, case)), f"grad, = torch.autograd.grad(loss.sum(), {_leaf(case)})"]
    )


OPS = {  # torch's ops, for the loss families that write their recipes in any framework's ops (`native_recipe`)
    "tensor": "torch.tensor({})",
    "bfloat16": "{}.to(torch.bfloat16)",
    "log": "torch.log({})",
    "log1p": "torch.log1p({})",
    "exp": "torch.exp({})",
    "abs": "torch.abs({})",
    "relu": "torch.relu({})",
    "sigmoid": "torch.sigmoid({})",
    "log_softmax": "torch.log_softmax({}, dim=1)",
    "max1": "{}.amax(dim=1, keepdim=True)",
    "clip": "torch.clamp({}, {}, {})",
    "at_least": "torch.clamp({}, min={})",
    "where": "torch.where({}, {}, {})",
    "ones_like": "torch.ones_like({})",
    "zeros_like": "torch.zeros_like({})",
    "sum1": "{}.sum(dim=1)",
    "sum1_keep": "{}.sum(dim=1, keepdim=True)",
    "mean_last": "{}.mean(dim=-1)",
    "sum": "{}.sum()",
}
