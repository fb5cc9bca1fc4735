"""Softmax cross-entropy in torch: `nn.CrossEntropyLoss` (default), `nn.functional.cross_entropy`, and
`nn.NLLLoss` over `log_softmax`. torch has no per-sample weights and none of TensorFlow's reductions:
those run as `reduction='none'`, multiplied and reduced by hand (the adapter's `_tail`), shown in the snippet.
"""

from __future__ import annotations

from conformance.adapters import Unsupported, Variant, kwargs, native_reduction
from conformance.adapters.torch import _head, _tail, _target, _tensor
from conformance.cases import Case
from conformance.losses.softmax_ce import NAME
from conformance.reference import Knobs, mean_denominator

CE = (NAME,)


def _ce_options(case: Case) -> str:
    return kwargs(
        ("weight", _tensor("w", case) if case.weight is not None else None),
        ("ignore_index", case.ignore_index),
        ("label_smoothing", case.label_smoothing or None),
        ("reduction", repr(native_reduction(case))),
    )


def module_api(case: Case) -> str:
    return "\n".join(
        _head(case)
        + [f"loss_fn = torch.nn.CrossEntropyLoss({_ce_options(case)})", f"loss = loss_fn(logits, {_target(case)})"]
        + _tail(case)
    )


def functional_api(case: Case) -> str:
    return "\n".join(
        _head(case) + [f"loss = torch.nn.functional.cross_entropy(logits, {_target(case)}, {_ce_options(case)})"] + _tail(case)
    )


def nll_api(case: Case) -> str:
    if case.labels is None:
        raise Unsupported("torch.nn.NLLLoss takes class indices only, not probability targets")
    if case.label_smoothing:
        raise Unsupported("torch.nn.NLLLoss has no label_smoothing (CrossEntropyLoss has)")
    options = kwargs(
        ("weight", _tensor("w", case) if case.weight is not None else None),
        ("ignore_index", case.ignore_index),
        ("reduction", repr(native_reduction(case))),
    )
    log_probs = "torch.log_softmax(logits, dim=1)" if case.from_logits else "torch.log(probs)"
    return "\n".join(_head(case, log_of_probs=False) + [f"loss = torch.nn.NLLLoss({options})({log_probs}, {_target(case)})"] + _tail(case))


def _own_mean(case: Case) -> str:
    """torch's mean: / sum of target weights (index targets), / positions (probability targets); a
    per-sample-weighted recipe uses .mean(), / positions."""
    if case.sample_weight is not None or case.labels is None:
        return "positions"
    return "target_weight"


def documented(case: Case) -> Knobs:
    """torch docs: weight per class inside the smoothed sum; mean / sum of target weights (index
    targets) or / number of positions (probability targets); 0/0 -> NaN."""
    return Knobs(
        weight_mode="per_class",
        denominator=mean_denominator(case, _own_mean(case)),  # type: ignore[arg-type]
        empty_mean="nan",
        probabilities="renormalise",
    )


def nll_documented(case: Case) -> Knobs:
    return Knobs(denominator=mean_denominator(case, _own_mean(case)), probabilities="none")  # type: ignore[arg-type]


VARIANTS = [
    Variant("torch", "torch.nn.CrossEntropyLoss", module_api, documented, CE),
    Variant("torch:functional", "torch.nn.functional.cross_entropy", functional_api, documented, CE),
    Variant("torch:nll", "torch.nn.NLLLoss", nll_api, nll_documented, CE),
]
