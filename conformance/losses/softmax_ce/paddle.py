"""Softmax cross-entropy in paddle: `nn.CrossEntropyLoss` (default), the `one_hot` + `label_smooth` +
`soft_label=True` recipe, `nn.functional.softmax_with_cross_entropy` (also with `return_softmax=True`, its
softmax checked), `nn.functional.nll_loss` over `log_softmax`, `label_smooth` with `prior_dist` feeding soft
labels, and `cross_entropy(axis=1)` on channels-first inputs. Class indices given with a trailing axis of 1
reach paddle's own losses as given (their documented form); `one_hot` gets them squeezed. Per-sample
weights and TensorFlow's reductions run as the `reduction='none'` recipe (the adapter's `_tail`).
"""

from __future__ import annotations

import numpy as np

from conformance.adapters import Unsupported, Variant, kwargs, moved, native_reduction, squeezed_labels
from conformance.adapters.paddle import _head, _inputs, _leaf, _soft_target, _tail, _tensor
from conformance.cases import Case
from conformance.losses.softmax_ce import NAME
from conformance.reference import Knobs, mean_denominator

CE = (NAME,)


def _ce_options(case: Case, axis: str | None = None) -> str:
    """The keyword arguments paddle's cross-entropy (module or functional) takes for the case."""
    return kwargs(
        ("weight", _tensor("w", case) if case.weight is not None else None),
        ("ignore_index", case.ignore_index),
        ("reduction", repr(native_reduction(case))),
        ("soft_label", "True" if case.soft_labels is not None else None),
        ("axis", axis),
        ("label_smoothing", case.label_smoothing or None),
        ("use_softmax", None if case.from_logits else "False"),
    )


def module_api(case: Case) -> str:
    soft = case.soft_labels is not None
    options = _ce_options(case)
    target = _soft_target(case) if soft else "paddle.to_tensor(y)"
    return "\n".join(
        _head(case) + [f"loss_fn = paddle.nn.CrossEntropyLoss({options})", f"loss = loss_fn({_inputs(case)}, {target})"] + _tail(case)
    )


def smooth_recipe(case: Case) -> str:
    """paddle's documented way to smooth before `label_smoothing` existed: one_hot, label_smooth, soft_label."""
    if case.labels is None:
        raise Unsupported("the one_hot + label_smooth recipe starts from class indices")
    if case.ignore_index is not None:
        raise Unsupported("one_hot has no ignore_index: an ignored label cannot be one-hot encoded")
    options = kwargs(
        ("weight", _tensor("w", case) if case.weight is not None else None),
        ("reduction", repr(native_reduction(case))),
        ("soft_label", "True"),
        ("use_softmax", None if case.from_logits else "False"),
    )
    dtype = "float32" if case.dtype == "bfloat16" else case.dtype
    lines = squeezed_labels(case, ONE_HOT_SQUEEZE) + _head(case, refuses_no_class=True)  # one_hot refuses C = 0
    lines.append(f"label = paddle.nn.functional.one_hot(paddle.to_tensor(y), {case.num_classes}).astype('{dtype}')")
    if case.label_smoothing:
        lines.append(f"label = paddle.nn.functional.label_smooth(label, epsilon={case.label_smoothing!r})")
    lines += [f"loss = paddle.nn.CrossEntropyLoss({options})({_inputs(case)}, label)"] + _tail(case)
    return "\n".join(lines)


def softmax_with_ce(case: Case, return_softmax: bool = False) -> str:
    """The deprecated per-position API: no weights, no reduction; those by hand. `return_softmax`: it
    also returns the softmax, which the code checks against the float64 softmax of the inputs (the
    result's note says by how much they differ; beyond the dtype's bound it is an error)."""
    if not case.from_logits:
        raise Unsupported("softmax_with_cross_entropy takes logits, not probabilities")
    if case.weight is not None:
        raise Unsupported("softmax_with_cross_entropy has no class weights")
    soft = case.soft_labels is not None or case.label_smoothing > 0
    lines = _head(case)
    if case.labels is not None and case.label_smoothing:
        if case.ignore_index is not None:
            raise Unsupported("smoothing needs one_hot labels, which cannot carry an ignore_index")
        lines = squeezed_labels(case, ONE_HOT_SQUEEZE) + lines
        lines.append(f"label = paddle.nn.functional.one_hot(paddle.to_tensor(y), {case.num_classes}).astype(logits.dtype)")
        lines.append(f"label = paddle.nn.functional.label_smooth(label, epsilon={case.label_smoothing!r})")
    elif case.labels is not None and case.trailing_label_axis:
        lines.append("label = paddle.to_tensor(y)  # as given: [N, ..., 1], the form this API takes")
    elif case.labels is not None:
        lines.append("label = paddle.to_tensor(y).unsqueeze(-1)")
    else:
        lines.append(f"label = {_soft_target(case)}")
        if case.label_smoothing:
            lines.append(f"label = paddle.nn.functional.label_smooth(label, epsilon={case.label_smoothing!r})")
    options = kwargs(("soft_label", "True" if soft else None), ("ignore_index", case.ignore_index))
    if not return_softmax:
        lines.append(f"loss = paddle.nn.functional.softmax_with_cross_entropy({_inputs(case)}, label, {options}).squeeze(-1)")
        return "\n".join(lines + _tail(case, per_position_api=True))
    options = kwargs(("soft_label", "True" if soft else None), ("ignore_index", case.ignore_index), ("return_softmax", "True"))
    lines.append(f"loss, softmax = paddle.nn.functional.softmax_with_cross_entropy({_inputs(case)}, label, {options})")
    lines.append("loss = loss.squeeze(-1)")
    return "\n".join(lines + _softmax_check(case) + _tail(case, per_position_api=True))


SOFTMAX_BOUND = {"float64": 1e-12, "float32": 1e-6}  # |softmax - exact| allowed: a few ulps of values <= 1


def _softmax_check(case: Case) -> list[str]:
    """The returned softmax against the float64 softmax of the same inputs (classes last), as a note."""
    z = "np.moveaxis(x, 1, -1).astype(np.float64)" if moved(case) else "x.astype(np.float64)"
    bound = SOFTMAX_BOUND.get(case.dtype, 1e-3)
    return [
        f"z = {z}",
        "exact = np.exp(z - z.max(axis=-1, keepdims=True)) if z.size else z",
        "exact = exact / exact.sum(axis=-1, keepdims=True) if z.size else z",
        "gap = float(np.abs(softmax.astype('float64').numpy() - exact).max()) if z.size else 0.0",
        f"if gap > {bound!r}:",
        "    raise ValueError(f'return_softmax gives a softmax {gap:.3g} off the float64 softmax of the inputs')",
        "note = f'return_softmax: the softmax is within {gap:.3g} of the float64 softmax of the inputs'",
    ]


def return_softmax_api(case: Case) -> str:
    return softmax_with_ce(case, return_softmax=True)


ONE_HOT_SQUEEZE = "one_hot takes [N, ...] (it would put the classes after the axis of 1)"


def nll_api(case: Case) -> str:
    """nll_loss over log_softmax along axis 1: paddle's torch-layout API, no class axis to move."""
    if case.labels is None:
        raise Unsupported("paddle.nn.functional.nll_loss takes class indices only, not probability targets")
    if case.label_smoothing:
        raise Unsupported("paddle.nn.functional.nll_loss has no label_smoothing (cross_entropy has)")
    if case.ignore_index is not None and np.any(case.targets == case.ignore_index):
        raise Unsupported(
            "not run: paddle 3.3.1's nll_loss corrupts the heap on CPU when a label equals ignore_index (any value; "
            "glibc 'malloc assertion failure', then SIGABRT or a hang a few calls later, measured here), which would "
            "take the worker and every other paddle result of the run with it"
        )
    options = kwargs(
        ("weight", _tensor("w", case) if case.weight is not None else None),
        ("ignore_index", case.ignore_index),
        ("reduction", repr(native_reduction(case))),
    )
    log_probs = "paddle.nn.functional.log_softmax(logits, axis=1)" if case.from_logits else "paddle.log(probs)"
    call = f"loss = paddle.nn.functional.nll_loss({log_probs}, paddle.to_tensor(y), {options})"
    return "\n".join(_head(case, move=False, refuses_no_class=True) + [call] + _tail(case))


def nll_documented(case: Case) -> Knobs:
    """paddle docs: -w[y] log p[y]; mean / the sum of w[y] over non-ignored labels; 0/0 -> 0; log_softmax
    clips shifted logits at -64 on CPU; on probabilities log p as given."""
    return Knobs(
        denominator=mean_denominator(case, "positions" if case.sample_weight is not None else "target_weight"),  # type: ignore[arg-type]
        empty_mean="zero" if native_reduction(case) != "none" else "nan",
        empty_batch="zero",  # its mean divides by the weight sum: 0/0 is 0 there too
        probabilities="none",
        logit_floor=64.0,
    )


def label_smooth_api(case: Case) -> str:
    """Smoothed targets made by `label_smooth` with an explicit `prior_dist` (the case's `prior_dist`, else
    uniform, 1/C: its `(1-eps) label + eps prior` path, not the eps/C one), fed to cross_entropy as soft
    labels: the targets of paddle's standalone smoothing compared through the loss with every framework's
    own smoothing (towards 1/C, so a non-uniform prior parts paddle:label_smooth from them)."""
    if not case.label_smoothing:
        raise Unsupported("no label_smoothing: nothing for label_smooth to do")
    if case.labels is not None and case.ignore_index is not None:
        raise Unsupported("one_hot has no ignore_index: an ignored label cannot be one-hot encoded")
    dtype = "float32" if case.dtype == "bfloat16" else case.dtype
    c = case.num_classes
    lines = squeezed_labels(case, ONE_HOT_SQUEEZE) + _head(case)
    if case.labels is not None:
        lines.append(f"label = paddle.nn.functional.one_hot(paddle.to_tensor(y), {c}).astype('{dtype}')")
    else:
        lines.append(f"label = {_soft_target(case)}")
    if case.prior_dist is not None:
        lines.append(f"prior = paddle.to_tensor(prior.reshape(1, {c})).astype('{dtype}')  # the case's prior_dist")
    else:
        lines.append(f"prior = paddle.full([1, {c}], 1 / {c}, dtype='{dtype}')  # uniform: the smoothing the others apply")
    lines.append(f"label = paddle.nn.functional.label_smooth(label, prior_dist=prior, epsilon={case.label_smoothing!r})")
    options = kwargs(
        ("weight", _tensor("w", case) if case.weight is not None else None),
        ("reduction", repr(native_reduction(case))),
        ("soft_label", "True"),
        ("use_softmax", None if case.from_logits else "False"),
    )
    lines.append(f"loss = paddle.nn.functional.cross_entropy({_inputs(case)}, label, {options})")
    return "\n".join(lines + _tail(case))


def label_smooth_documented(case: Case) -> Knobs:
    """As paddle's soft labels: the weight w.q of the smoothed label; mean / the sum of w.q (weighted) or
    / positions; 0/0 -> 0; shifted logits clipped at -64; probabilities: log p as given."""
    own = "positions" if case.sample_weight is not None or case.weight is None else "label_weight"
    knobs = Knobs(
        weight_mode="from_label",
        denominator=mean_denominator(case, own),  # type: ignore[arg-type]
        empty_mean="zero" if native_reduction(case) != "none" else "nan",
        probabilities="none",
        logit_floor=64.0,
    )
    return knobs.switched("smoothing_prior", "given") if case.prior_dist is not None else knobs


def axis_api(case: Case) -> str:
    """cross_entropy with `axis=1` on the (N, C, d1, ...) inputs as they are, instead of moving the class
    axis last (on (N, C) axis 1 is the last axis)."""
    soft = case.soft_labels is not None
    options = _ce_options(case, axis="1")
    lines = (squeezed_labels(case, "with axis=1 the labels are [N, d1, ...]") if moved(case) else []) + _head(case, move=False)
    target = _tensor("t", case) if soft else "paddle.to_tensor(y)"
    lines.append(f"loss = paddle.nn.functional.cross_entropy({_leaf(case)}, {target}, {options})")
    return "\n".join(lines + _tail(case))


def _own_mean(case: Case) -> str | None:
    """paddle's mean (source): with weight, / sum of the applied class weights; without, / all positions
    when ignore_index < 0 (ignored ones included), / non-ignored positions when >= 0."""
    soft = case.soft_labels is not None or case.label_smoothing > 0
    if case.sample_weight is not None:
        return "positions"
    if case.weight is not None:
        return "label_weight" if soft else "target_weight"
    if not soft and case.ignore_index is not None and case.ignore_index >= 0:
        return "valid_count"
    return "positions"


def documented(case: Case) -> Knobs | None:
    """paddle docs and source: the weight is computed from the (soft or smoothed) label; 0/0 -> 0; CPU
    softmax clips shifted logits at -64; use_softmax=False takes log p as it is."""
    soft = case.soft_labels is not None or case.label_smoothing > 0
    if soft and case.ignore_index is not None and case.ignore_index >= 0:
        return None
    return Knobs(
        weight_mode="from_label",
        denominator=mean_denominator(case, _own_mean(case)),  # type: ignore[arg-type]
        empty_mean="zero" if native_reduction(case) != "none" else "nan",  # a by-hand recipe divides 0 by 0
        probabilities="none",
        logit_floor=64.0,
    )


def recipe_documented(case: Case) -> Knobs | None:
    if case.labels is None or case.ignore_index is not None:
        return None
    own = "positions" if case.sample_weight is not None or case.weight is None else "label_weight"
    return Knobs(
        weight_mode="from_label",
        denominator=mean_denominator(case, own),  # type: ignore[arg-type]
        empty_mean="zero" if native_reduction(case) != "none" else "nan",  # a by-hand recipe divides 0 by 0
        probabilities="none",
        logit_floor=64.0,
    )


def softmax_with_ce_documented(case: Case) -> Knobs:
    """Per position -sum q log softmax (clipped at -64); mean by hand over all positions."""
    return Knobs(denominator=mean_denominator(case, "positions"), empty_mean="nan", logit_floor=64.0)  # type: ignore[arg-type]


VARIANTS = [
    Variant("paddle", "paddle.nn.CrossEntropyLoss", module_api, documented, CE),
    Variant(
        "paddle:smooth_recipe",
        "paddle.nn.functional.one_hot + label_smooth + CrossEntropyLoss(soft_label=True)",
        smooth_recipe,
        recipe_documented,
        CE,
    ),
    Variant(
        "paddle:softmax_with_ce",
        "paddle.nn.functional.softmax_with_cross_entropy",
        softmax_with_ce,
        softmax_with_ce_documented,
        CE,
    ),
    Variant(
        "paddle:return_softmax",
        "paddle.nn.functional.softmax_with_cross_entropy(return_softmax=True), its softmax checked",
        return_softmax_api,
        softmax_with_ce_documented,
        CE,
    ),
    Variant("paddle:nll", "paddle.nn.functional.nll_loss(log_softmax(x, axis=1))", nll_api, nll_documented, CE),
    Variant(
        "paddle:label_smooth",
        "paddle.nn.functional.label_smooth(prior_dist=...) + cross_entropy(soft_label=True)",
        label_smooth_api,
        label_smooth_documented,
        CE,
    ),
    Variant("paddle:axis1", "paddle.nn.functional.cross_entropy(axis=1)", axis_api, documented, CE),
]
