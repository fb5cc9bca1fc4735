"""KL divergence in paddle: `nn.KLDivLoss` (default), `nn.functional.kl_div`, `KLDivLoss(log_target=True)`.

Classes last, as paddle users write it: `log_softmax(x, -1)` (or `log(p)`) and the soft labels moved
to the end for K-dim cases; a 'none' result is moved back to the case's layout (class axis 1) so it
is compared element by element. The kernel returns 0 where the target is 0, whatever the input
(measured: against log p = -inf too); `batchmean` divides the sum by input.shape[0]. Per-sample weights: reduction
'none', then the weights and the reduction by hand.
"""

from __future__ import annotations

from conformance.adapters import Variant, kwargs, moved
from conformance.cases import Case
from conformance.losses.kl_divergence import NAME, documented
from conformance.reference import Knobs

KL = (NAME,)
BY_HAND = {"mean": "loss = loss.mean()", "sum": "loss = loss.sum()", "batchmean": "loss = loss.sum() / loss.shape[0]"}


def _tensor(name: str, case: Case) -> str:
    cast = ".astype('bfloat16')" if case.dtype == "bfloat16" else ""
    return f"paddle.to_tensor({name}){cast}"


def _leaf(case: Case) -> str:
    return "logits" if case.from_logits else "probs"


def _head(case: Case) -> list[str]:
    leaf = _leaf(case)
    lines = [f"{leaf} = {_tensor('x', case)}", f"{leaf}.stop_gradient = False"]
    inputs = leaf
    if moved(case):
        lines.append(f"inputs = paddle.moveaxis({leaf}, 1, -1)  # classes last")
        inputs = "inputs"
    log_probs = f"paddle.nn.functional.log_softmax({inputs}, axis=-1)" if case.from_logits else f"paddle.log({inputs})"
    return lines + [f"log_probs = {log_probs}", f"target = {_tensor('np.moveaxis(t, 1, -1)' if moved(case) else 't', case)}"]


def _reduction(case: Case) -> str:
    return repr("none" if case.sample_weight is not None else case.reduction)


def _tail(case: Case) -> list[str]:
    lines = []
    if case.reduction == "none" and moved(case):
        lines.append("loss = paddle.moveaxis(loss, -1, 1)  # back to class axis 1, to compare element by element")
    if case.sample_weight is not None:
        sw = f"{_tensor('sw', case)}.reshape([-1] + [1] * (loss.ndim - 1))"
        lines.append(f"loss = loss * {sw}  # per-sample weights, by hand")
        if case.reduction != "none":
            lines.append(BY_HAND[case.reduction])
    return lines + [f"grad, = paddle.grad(loss.sum(), {_leaf(case)})"]


def module_api(case: Case) -> str:
    options = kwargs(("reduction", _reduction(case)))
    return "\n".join(_head(case) + [f"loss = paddle.nn.KLDivLoss({options})(log_probs, target)"] + _tail(case))


def functional_api(case: Case) -> str:
    options = kwargs(("reduction", _reduction(case)))
    return "\n".join(_head(case) + [f"loss = paddle.nn.functional.kl_div(log_probs, target, {options})"] + _tail(case))


def log_target_api(case: Case) -> str:
    options = kwargs(("reduction", _reduction(case)), ("log_target", "True"))
    return "\n".join(_head(case) + [f"loss = paddle.nn.KLDivLoss({options})(log_probs, paddle.log(target))"] + _tail(case))


def module_documented(case: Case) -> Knobs:
    """paddle docs: l = y (log y - x) elementwise; `mean` averages all elements, `batchmean` divides the
    sum by the batch size, 'none' keeps the input's shape. The docs are silent on y = 0; the kernel
    counts it as 0 (measured), so the autograd through log(p) at p = 0 is the only NaN. Its CPU
    log_softmax clips the shifted logits at -64, as its softmax cross-entropy does."""
    return documented(case, mean="elements", batchmean="batch", zero_target="masked", unreduced="elements", logit_floor=64.0)


def log_target_documented(case: Case) -> Knobs:
    """log_target=True: l = exp(y) (y - x) with y = log t, so a zero target is NaN."""
    return documented(case, mean="elements", batchmean="batch", zero_target="log_target", unreduced="elements", logit_floor=64.0)


VARIANTS = [
    Variant("paddle", "paddle.nn.KLDivLoss(log_softmax(x))", module_api, module_documented, KL),
    Variant("paddle:functional", "paddle.nn.functional.kl_div", functional_api, module_documented, KL),
    Variant("paddle:log_target", "paddle.nn.KLDivLoss(log_target=True)", log_target_api, log_target_documented, KL),
]
