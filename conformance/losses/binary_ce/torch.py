"""Binary cross-entropy in torch: `nn.BCEWithLogitsLoss` / `nn.BCELoss` (default), their functional forms,
and `BCELoss(sigmoid(x))`. torch has no binary label smoothing: Keras's transform of the targets, by hand.
"""

from __future__ import annotations

from conformance.adapters import Unsupported, Variant, kwargs, native_reduction
from conformance.adapters.torch import _head, _leaf, _tail, _target, _tensor
from conformance.cases import Case
from conformance.losses.binary_ce import NAME
from conformance.reference import Knobs, mean_denominator

BCE = (NAME,)


def _smoothed_binary(case: Case) -> list[str]:
    if not case.label_smoothing:
        return []
    eps = case.label_smoothing
    return [f"target = target * (1 - {eps!r}) + 0.5 * {eps!r}  # torch has no binary smoothing: Keras's transform"]


def _bce_options(case: Case) -> str:
    return kwargs(
        ("weight", _tensor("w", case) if case.weight is not None else None),
        ("pos_weight", _tensor("pw", case) if case.pos_weight is not None and case.from_logits else None),
        ("reduction", repr(native_reduction(case))),
    )


def _bce_head(case: Case) -> list[str]:
    if case.pos_weight is not None and not case.from_logits:
        raise Unsupported("torch.nn.BCELoss has no pos_weight (BCEWithLogitsLoss has); give logits")
    return _head(case, log_of_probs=False) + [f"target = {_target(case)}"] + _smoothed_binary(case)


def binary_module_api(case: Case) -> str:
    cls = "BCEWithLogitsLoss" if case.from_logits else "BCELoss"
    return "\n".join(_bce_head(case) + [f"loss = torch.nn.{cls}({_bce_options(case)})({_leaf(case)}, target)"] + _tail(case))


def binary_functional_api(case: Case) -> str:
    fn = "binary_cross_entropy_with_logits" if case.from_logits else "binary_cross_entropy"
    return "\n".join(_bce_head(case) + [f"loss = torch.nn.functional.{fn}({_leaf(case)}, target, {_bce_options(case)})"] + _tail(case))


def sigmoid_then_bce(case: Case) -> str:
    """The common hand-written form: sigmoid, then BCELoss (log clamped at -100, unlike the logits API)."""
    if not case.from_logits:
        raise Unsupported("sigmoid + BCELoss starts from logits; the case gives probabilities")
    if case.pos_weight is not None:
        raise Unsupported("torch.nn.BCELoss has no pos_weight")
    options = kwargs(("weight", _tensor("w", case) if case.weight is not None else None), ("reduction", repr(native_reduction(case))))
    return "\n".join(
        _head(case, log_of_probs=False)
        + [f"target = {_target(case)}"]
        + _smoothed_binary(case)
        + [f"loss = torch.nn.BCELoss({options})(torch.sigmoid(logits), target)"]
        + _tail(case)
    )


def binary_documented(case: Case) -> Knobs:
    """torch docs: elementwise weight; mean over all elements (weights not in the denominator); BCELoss
    clamps each log at -100."""
    return Knobs(
        denominator=mean_denominator(case, "positions"),  # type: ignore[arg-type]
        empty_mean="nan",
        probabilities="none",
        log_clamp=100.0,
    )


def sigmoid_documented(case: Case) -> None:
    """No formula of its own: a probability computed in float32 from a logit; the clamp shows at extremes."""
    return None


VARIANTS = [
    Variant("torch", "torch.nn.BCEWithLogitsLoss / torch.nn.BCELoss", binary_module_api, binary_documented, BCE),
    Variant(
        "torch:functional",
        "torch.nn.functional.binary_cross_entropy_with_logits / binary_cross_entropy",
        binary_functional_api,
        binary_documented,
        BCE,
    ),
    Variant("torch:sigmoid_bce", "torch.nn.BCELoss(torch.sigmoid(x))", sigmoid_then_bce, sigmoid_documented, BCE),
]
