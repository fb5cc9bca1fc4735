"""KL divergence in torch: `nn.KLDivLoss` (default), `nn.functional.kl_div`, and `KLDivLoss(log_target=True)`.

The input is `log_softmax(x, dim=1)` (or `log(p)` for probabilities), the target the soft labels; the
loss is elementwise `t (log t - input)`, measured to behave as `xlogy(t, t) - t * input`: 0 log 0 = 0, but a
zero target times a -inf input is NaN. torch has no per-sample weights: with `sample_weight` the
reduction is 'none', then the weights and the reduction by hand, shown in the snippet.
"""

from __future__ import annotations

from conformance.adapters import Variant, kwargs
from conformance.cases import Case
from conformance.losses.kl_divergence import NAME, documented, sample_axes
from conformance.reference import Knobs

KL = (NAME,)
BY_HAND = {"mean": "loss = loss.mean()", "sum": "loss = loss.sum()", "batchmean": "loss = loss.sum() / loss.shape[0]"}


def _tensor(name: str, case: Case) -> str:
    return f"torch.tensor({name}).to(torch.bfloat16)" if case.dtype == "bfloat16" else f"torch.tensor({name})"


def _leaf(case: Case) -> str:
    return "logits" if case.from_logits else "probs"


def _head(case: Case) -> list[str]:
    log_probs = "torch.log_softmax(logits, dim=1)" if case.from_logits else "torch.log(probs)"
    return [f"{_leaf(case)} = {_tensor('x', case)}.requires_grad_()", f"log_probs = {log_probs}"]


def _reduction(case: Case) -> str:
    return repr("none" if case.sample_weight is not None else case.reduction)


def _tail(case: Case) -> list[str]:
    lines = []
    if case.sample_weight is not None:
        lines.append(f"loss = loss * {_tensor(sample_axes(case, per_position=False), case)}  # per-sample weights, by hand")
        if case.reduction != "none":
            lines.append(BY_HAND[case.reduction])
    return lines + [f"grad, = torch.autograd.grad(loss.sum(), {_leaf(case)})"]


def module_api(case: Case) -> str:
    options = kwargs(("reduction", _reduction(case)))
    return "\n".join(_head(case) + [f"loss = torch.nn.KLDivLoss({options})(log_probs, {_tensor('t', case)})"] + _tail(case))


def functional_api(case: Case) -> str:
    options = kwargs(("reduction", _reduction(case)))
    return "\n".join(_head(case) + [f"loss = torch.nn.functional.kl_div(log_probs, {_tensor('t', case)}, {options})"] + _tail(case))


def log_target_api(case: Case) -> str:
    options = kwargs(("reduction", _reduction(case)), ("log_target", "True"))
    target = f"torch.log({_tensor('t', case)})"
    return "\n".join(_head(case) + [f"loss = torch.nn.KLDivLoss({options})(log_probs, {target})"] + _tail(case))


def module_documented(case: Case) -> Knobs:
    """torch docs: elementwise t (log t - input); `mean` averages every element (the docs warn it is not
    the KL value), `batchmean` divides the sum by N; 'none' keeps the input's shape; xlogy for 0 log 0."""
    return documented(case, mean="elements", batchmean="batch", zero_target="xlogy", unreduced="elements")


def log_target_documented(case: Case) -> Knobs:
    """log_target=True: exp(t') (t' - input) with t' = log t, so a zero target is NaN."""
    return documented(case, mean="elements", batchmean="batch", zero_target="log_target", unreduced="elements")


VARIANTS = [
    Variant("torch", "torch.nn.KLDivLoss(log_softmax(x))", module_api, module_documented, KL),
    Variant("torch:functional", "torch.nn.functional.kl_div", functional_api, module_documented, KL),
    Variant("torch:log_target", "torch.nn.KLDivLoss(log_target=True)", log_target_api, log_target_documented, KL),
]
