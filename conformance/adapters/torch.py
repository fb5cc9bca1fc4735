"""torch adapter: `torch.nn.CrossEntropyLoss` (default), `F.cross_entropy`, `NLLLoss` over `log_softmax`."""

from __future__ import annotations

from conformance.adapters import Unsupported, Variant, kwargs
from conformance.cases import Case
from conformance.reference import Knobs

SETUP = "import numpy as np\nimport torch"


def version() -> dict[str, str]:
    import torch

    return {"torch": torch.__version__}


def _tensor(name: str, case: Case) -> str:
    return f"torch.tensor({name}).to(torch.bfloat16)" if case.dtype == "bfloat16" else f"torch.tensor({name})"


def _head(case: Case) -> list[str]:
    """The prediction leaf (gradients are taken w.r.t. it) and, for probabilities, its log."""
    source = _tensor("x", case) + ".requires_grad_()"
    if case.from_logits:
        return [f"logits = {source}"]
    return [f"probs = {source}", "logits = torch.log(probs)  # CrossEntropyLoss(log p) = -log(p / sum p)"]


def _leaf(case: Case) -> str:
    return "logits" if case.from_logits else "probs"


def _target(case: Case) -> str:
    return "torch.tensor(y)" if case.labels is not None else _tensor("t", case)


def _options(case: Case) -> str:
    return kwargs(
        ("weight", _tensor("w", case) if case.weight is not None else None),
        ("ignore_index", case.ignore_index),
        ("label_smoothing", case.label_smoothing or None),
        ("reduction", repr(case.reduction)),
    )


def _tail(case: Case) -> list[str]:
    return [f"grad, = torch.autograd.grad(loss.sum(), {_leaf(case)})"]


def module_api(case: Case) -> str:
    return "\n".join(
        _head(case)
        + [f"loss_fn = torch.nn.CrossEntropyLoss({_options(case)})", f"loss = loss_fn(logits, {_target(case)})"]
        + _tail(case)
    )


def functional_api(case: Case) -> str:
    return "\n".join(
        _head(case)
        + [f"loss = torch.nn.functional.cross_entropy(logits, {_target(case)}, {_options(case)})"]
        + _tail(case)
    )


def nll_api(case: Case) -> str:
    if case.labels is None:
        raise Unsupported("torch.nn.NLLLoss takes class indices only, not probability targets")
    if case.label_smoothing:
        raise Unsupported("torch.nn.NLLLoss has no label_smoothing (CrossEntropyLoss has)")
    options = kwargs(
        ("weight", _tensor("w", case) if case.weight is not None else None),
        ("ignore_index", case.ignore_index),
        ("reduction", repr(case.reduction)),
    )
    log_probs = "torch.log_softmax(logits, dim=1)" if case.from_logits else "torch.log(probs)"
    head = [f"logits = {_tensor('x', case)}.requires_grad_()"] if case.from_logits else [
        f"probs = {_tensor('x', case)}.requires_grad_()"
    ]
    return "\n".join(
        head + [f"loss = torch.nn.NLLLoss({options})({log_probs}, {_target(case)})"] + _tail(case)
    )


def documented(case: Case) -> Knobs:
    """torch docs: weight per class inside the smoothed sum; mean / sum of target weights (index
    targets) or / number of positions (probability targets); 0/0 -> NaN."""
    return Knobs(
        weight_mode="per_class",
        denominator="target_weight" if case.labels is not None else "positions",
        empty_mean="nan",
        probabilities="renormalise",
    )


def nll_documented(case: Case) -> Knobs:
    return Knobs(denominator="target_weight", probabilities="none")


VARIANTS = [
    Variant("torch", "torch.nn.CrossEntropyLoss", module_api, documented),
    Variant("torch:functional", "torch.nn.functional.cross_entropy", functional_api, documented),
    Variant("torch:nll", "torch.nn.NLLLoss", nll_api, nll_documented),
]


def to_numpy(value: object) -> tuple[object, str]:
    return value.detach().double().numpy(), str(value.dtype).removeprefix("torch.")  # type: ignore[attr-defined]
