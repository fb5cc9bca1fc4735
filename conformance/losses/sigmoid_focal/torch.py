"""Sigmoid focal loss in torch: `torchvision.ops.sigmoid_focal_loss`, which torch users call (torch itself
has none). Where torchvision does not import (the only release for torch 2.13.0, 0.28.0, is a CUDA build
whose extension fails against the CPU torch: `operator torchvision::nms does not exist`), the variant runs
torchvision's published formula (torchvision/ops/focal_loss.py) written out in torch ops, and its code
says so. torchvision takes logits only; alpha -1 switches balancing off; its reduction is 'none' by
default. Per-sample weights, smoothing and the normalizer are the idiomatic recipe by hand.
"""

from __future__ import annotations

import functools

from conformance.adapters import Unsupported, Variant, batch_shape
from conformance.cases import Case
from conformance.losses import sigmoid_focal as family
from conformance.reference import Knobs

API = "torchvision.ops.sigmoid_focal_loss (its published formula in torch ops where torchvision does not import)"

# torchvision/ops/focal_loss.py, as published (BSD-3-Clause), in the names of the generated code.
FORMULA = [
    "def sigmoid_focal_loss(inputs, targets, alpha=0.25, gamma=2, reduction='none'):",
    "    p = torch.sigmoid(inputs)",
    "    ce_loss = torch.nn.functional.binary_cross_entropy_with_logits(inputs, targets, reduction='none')",
    "    p_t = p * targets + (1 - p) * (1 - targets)",
    "    loss = ce_loss * ((1 - p_t) ** gamma)",
    "    if alpha >= 0:",
    "        alpha_t = alpha * targets + (1 - alpha) * (1 - targets)",
    "        loss = alpha_t * loss",
    "    if reduction == 'mean':",
    "        loss = loss.mean()",
    "    elif reduction == 'sum':",
    "        loss = loss.sum()",
    "    return loss",
]


@functools.cache
def torchvision_failure() -> str | None:
    """Why torchvision does not import in this (torch) worker, or None where it does."""
    try:
        import torchvision.ops  # noqa: F401
    except Exception as exc:  # ImportError, or the CUDA build's RuntimeError
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".strip()
    return None


def _tensor(name: str, case: Case) -> str:
    return f"torch.tensor({name}).to(torch.bfloat16)" if case.dtype == "bfloat16" else f"torch.tensor({name})"


def focal(case: Case) -> str:
    if not case.from_logits:
        raise Unsupported("torchvision.ops.sigmoid_focal_loss takes logits, not probabilities")
    failure = torchvision_failure()
    if failure is None:
        lines = ["from torchvision.ops import sigmoid_focal_loss"]
    else:
        lines = [f"# torchvision does not import here ({failure}): its published formula, in torch ops", *FORMULA, ""]
    lines += [f"logits = {_tensor('x', case)}.requires_grad_()", f"target = {_tensor('y' if case.labels is not None else 't', case)}"]
    if case.label_smoothing:
        eps = case.label_smoothing
        lines.append(f"target = target * (1 - {eps!r}) + 0.5 * {eps!r}  # torchvision has no smoothing: Keras's transform")
    alpha = -1 if case.alpha is None else case.alpha
    by_hand = case.sample_weight is not None
    reduction = "none" if by_hand else case.reduction
    off = "  # alpha=-1: no class balancing" if case.alpha is None else ""
    lines.append(f"loss = sigmoid_focal_loss(logits, target, alpha={alpha!r}, gamma={case.gamma!r}, reduction={reduction!r}){off}")
    if by_hand:
        lines.append(f"loss = loss * {_tensor(batch_shape(case), case)}  # per-sample weights, by hand")
        lines += {"mean": ["loss = loss.mean()"], "sum": ["loss = loss.sum()"]}.get(case.reduction, [])
    if case.normalizer is not None:
        lines.append(f"loss = loss / {case.normalizer!r}  # the normalizer, by hand")
    lines.append("grad, = torch.autograd.grad(loss.sum(), logits)")
    return "\n".join(lines)


def documented(case: Case) -> Knobs:
    """torchvision's formula: alpha_t (q)^gamma BCE-with-logits per element; mean over every element."""
    return family.documented(case)


VARIANTS = [Variant("torch", API, focal, documented, (family.NAME,))]
