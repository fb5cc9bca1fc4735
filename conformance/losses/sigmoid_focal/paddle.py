"""Sigmoid focal loss in paddle: `paddle.nn.functional.sigmoid_focal_loss(logit, label, normalizer, alpha,
gamma, reduction)`. Its defaults are alpha=0.25 and reduction='sum' (what users get when they omit them):
the default variant always passes the case's values, and its code says so; `paddle:defaults` is the call
with both left out. paddle has no switch that turns class balancing off: for `alpha: null` the default
variant runs the recipe alpha=0.5, times 2 (alpha_t is then 0.5 for every element). The normalizer is
native; per-sample weights and smoothing are by hand. Logits only.
"""

from __future__ import annotations

from conformance.adapters import Unsupported, Variant
from conformance.cases import Case
from conformance.losses import sigmoid_focal as family
from conformance.reference import Knobs

API = "paddle.nn.functional.sigmoid_focal_loss"


def _tensor(name: str, case: Case) -> str:
    cast = ".astype('bfloat16')" if case.dtype == "bfloat16" else ""
    return f"paddle.to_tensor({name}){cast}"


def _head(case: Case) -> list[str]:
    if not case.from_logits:
        raise Unsupported(f"{API} takes logits, not probabilities")
    lines = [
        f"logits = {_tensor('x', case)}",
        "logits.stop_gradient = False",
        f"target = {_tensor('y' if case.labels is not None else 't', case)}",
    ]
    if case.label_smoothing:
        eps = case.label_smoothing
        lines.append(f"target = target * (1 - {eps!r}) + 0.5 * {eps!r}  # paddle has no smoothing here: Keras's transform")
    return lines


def _normalizer(case: Case) -> list[str]:
    return [] if case.normalizer is None else [f"normalizer=paddle.to_tensor({case.normalizer!r}, dtype=logits.dtype)"]


def focal(case: Case) -> str:
    lines = _head(case)
    by_hand = case.sample_weight is not None
    options = [*_normalizer(case), f"alpha={0.5 if case.alpha is None else case.alpha!r}", f"gamma={case.gamma!r}"]
    options.append(f"reduction={'none' if by_hand else case.reduction!r}")
    lines.append("# alpha and reduction passed explicitly: paddle's defaults are alpha=0.25, reduction='sum'")
    call = f"paddle.nn.functional.sigmoid_focal_loss(logits, target, {', '.join(options)})"
    if case.alpha is None:
        lines.append(f"loss = 2 * {call}  # no switch turns balancing off: alpha=0.5 weighs both classes by 0.5, times 2")
    else:
        lines.append(f"loss = {call}")
    if by_hand:
        lines.append(f"loss = loss * {_tensor('sw', case)}.reshape([-1] + [1] * (loss.ndim - 1))  # per-sample weights, by hand")
        lines += {"mean": ["loss = loss.mean()"], "sum": ["loss = loss.sum()"]}.get(case.reduction, [])
    lines.append("grad, = paddle.grad(loss.sum(), logits)")
    return "\n".join(lines)


def documented(case: Case) -> Knobs:
    """paddle's formula: alpha_t (1 - p_t)^gamma BCE-with-logits / normalizer; mean over every element."""
    return family.documented(case)


def defaults(case: Case) -> str:
    """The call as users write it when they leave alpha and reduction out: paddle's defaults apply."""
    if case.sample_weight is not None:
        raise Unsupported("per-sample weights need reduction='none', and this variant leaves the reduction at its default")
    lines = _head(case)
    options = [*_normalizer(case), f"gamma={case.gamma!r}"]
    lines.append("# alpha and reduction left out: paddle applies alpha=0.25 and reduction='sum'")
    lines.append(f"loss = paddle.nn.functional.sigmoid_focal_loss(logits, target, {', '.join(options)})")
    lines.append("grad, = paddle.grad(loss.sum(), logits)")
    return "\n".join(lines)


def defaults_documented(case: Case) -> Knobs:
    """paddle's docstring: alpha defaults to 0.25 and reduction to 'sum'."""
    return family.documented(case, balancing=0.25, sums=True)


VARIANTS = [
    Variant("paddle", API, focal, documented, (family.NAME,)),
    Variant("paddle:defaults", f"{API}, alpha and reduction left out (0.25, 'sum')", defaults, defaults_documented, (family.NAME,)),
]
