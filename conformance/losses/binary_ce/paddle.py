"""Binary cross-entropy in paddle: `nn.BCEWithLogitsLoss` / `nn.BCELoss` (default) and `BCELoss(sigmoid(x))`.
paddle has no binary label smoothing: Keras's transform of the targets, by hand.
"""

from __future__ import annotations

from conformance.adapters import Unsupported, Variant, kwargs, native_reduction
from conformance.adapters.paddle import _head, _leaf, _tail, _tensor
from conformance.cases import Case
from conformance.losses.binary_ce import NAME
from conformance.reference import Knobs, mean_denominator

BCE = (NAME,)


def _smoothed_binary(case: Case) -> list[str]:
    if not case.label_smoothing:
        return []
    eps = case.label_smoothing
    return [f"target = target * (1 - {eps!r}) + 0.5 * {eps!r}  # paddle has no binary smoothing: Keras's transform"]


def _bce_head(case: Case) -> list[str]:
    if case.pos_weight is not None and not case.from_logits:
        raise Unsupported("paddle.nn.BCELoss has no pos_weight (BCEWithLogitsLoss has); give logits")
    target = _tensor("y" if case.labels is not None else "t", case)
    return _head(case) + [f"target = {target}"] + _smoothed_binary(case)


def binary_module_api(case: Case) -> str:
    cls = "BCEWithLogitsLoss" if case.from_logits else "BCELoss"
    options = kwargs(
        ("weight", _tensor("w", case) if case.weight is not None else None),
        ("reduction", repr(native_reduction(case))),
        ("pos_weight", _tensor("pw", case) if case.pos_weight is not None else None),
    )
    return "\n".join(_bce_head(case) + [f"loss = paddle.nn.{cls}({options})({_leaf(case)}, target)"] + _tail(case))


def sigmoid_then_bce(case: Case) -> str:
    if not case.from_logits:
        raise Unsupported("sigmoid + BCELoss starts from logits; the case gives probabilities")
    if case.pos_weight is not None:
        raise Unsupported("paddle.nn.BCELoss has no pos_weight")
    options = kwargs(("weight", _tensor("w", case) if case.weight is not None else None), ("reduction", repr(native_reduction(case))))
    return "\n".join(_bce_head(case) + [f"loss = paddle.nn.BCELoss({options})(paddle.nn.functional.sigmoid(logits), target)"] + _tail(case))


def binary_documented(case: Case) -> Knobs:
    """paddle docs: the same formulas as torch (elementwise weight, mean over elements, log clamp -100)."""
    return Knobs(denominator=mean_denominator(case, "positions"), empty_mean="nan", probabilities="none", log_clamp=100.0)  # type: ignore[arg-type]


def no_formula(case: Case) -> None:
    return None


VARIANTS = [
    Variant("paddle", "paddle.nn.BCEWithLogitsLoss / paddle.nn.BCELoss", binary_module_api, binary_documented, BCE),
    Variant("paddle:sigmoid_bce", "paddle.nn.BCELoss(paddle.nn.functional.sigmoid(x))", sigmoid_then_bce, no_formula, BCE),
]
