"""Softmax cross-entropy: predictions (N, C, d1, ..., dk) with the class axis 1, as in torch and ONNX;
class indices or per-class probabilities as targets; class weights, label smoothing, ignore_index.

Its reference evaluation has the form L = sum_{n,c} A[n,c] * (-lp[n,c]) with coefficients A that do not
depend on the predictions, so the gradient is analytic (see `_grad`), not a finite difference. The
textbook point is ONNX `SoftmaxCrossEntropyLoss` (opset 13), extended with smoothing and probability
targets the way torch documents them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
from pydantic import BeforeValidator, Field

from conformance import registry
from conformance.losses import (
    ARRAY,
    COMMON_PARAMETERS,
    GENERATED,
    OPTIONAL,
    Fail,
    Generated,
    array,
    as_generated,
    deep_numbers,
    defaulted,
    generated,
    generated_predictions,
    generated_sources,
    given_predictions,
    nested,
    package_variants,
    probabilities,
    probability_lines,
    random_weights,
    seed_of,
    size,
    weights_line,
)
from conformance.reference import (
    SHARED_PHRASES,
    Denominator,
    Knobs,
    Outcome,
    clip_bounds,
    divided,
    empty_batch,
    knob_names,
    mean_denominator,
    rounded,
)

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy

    from conformance.cases import Case
    from conformance.contract import Variant

NAME = "softmax_cross_entropy"
ORDER = 10
DEFAULT = True  # a case without `loss:` is softmax cross-entropy
FIELDS: dict[str, tuple[Any, Any]] = {
    "prior_dist": (
        Annotated[list[Any] | Generated | None, BeforeValidator(as_generated)],
        Field(
            default=None,
            description=(
                "softmax_cross_entropy only, with label_smoothing: a prior over the classes, C numbers (or [1, C]), that an API "
                "taking one (label_smooth(prior_dist=...)) smooths towards; the others' smoothing goes towards 1/C. "
                f"Or {GENERATED}: uniform, normalised to sum 1"
            ),
        ),
    )
}
INSTEAD = {"pos_weight": "softmax cross-entropy takes class `weight`"}
ARRAYS: dict[str, str] = {"prior_dist": "prior"}
KNOBS: dict[str, Any] = {"smoothing_prior": "uniform"}
KNOB_LABELS = {"smoothing_prior": "what smoothing moves the labels towards"}
CLASS_AXIS = 1
INDEX_LABELS = True
# What reaches a user's loss function (`--variant`): torch's keyword arguments, by their names.
PARAMETERS = {**COMMON_PARAMETERS, "weight": ARRAY, "ignore_index": OPTIONAL, "label_smoothing": defaulted(0.0)}


# ---------------------------------------------------------------- the case's arrays


def build(spec: Any, fail: Fail) -> dict[str, Any]:
    """Predictions with a class axis 1 (C may be 0), class-index or probability targets, class weights
    (C,). Class indices may carry a trailing axis of 1 ([N, d1, ..., 1], paddle's form): kept here
    without it, handed over with it. With `check_shapes: false` a shape that does not fit is kept and
    named in `mismatched` instead of failing."""
    predictions, from_logits = _predictions(spec, fail)
    mismatched: list[str] = []

    def misfit(message: str, key: str) -> None:
        if spec.check_shapes is not False:
            raise fail(message, key)
        mismatched.append(key)

    labels, soft, trailing = _targets(spec, predictions, fail, misfit)
    weight = _weight(spec, predictions, fail, misfit)
    built = {"predictions": predictions, "from_logits": from_logits, "labels": labels, "soft_labels": soft, "weight": weight}
    if "prior_dist" in registry.loss(spec.loss).FIELDS:  # a family reusing this build without the key gets none
        built["prior_dist"] = _prior(spec, predictions.shape[1], fail, misfit)
    if trailing:
        built["trailing_label_axis"] = True
    if spec.check_shapes is False:
        built["mismatched"] = mismatched
    return built


def _predictions(spec: Any, fail: Fail) -> tuple[np.ndarray, bool]:
    arr, key = given_predictions(spec, fail, lambda shape: len(shape) >= 2)
    if key is None:
        return arr, True
    if arr.ndim < 2:
        raise fail(f"{key} must be (N, C) or (N, C, d1, ..., dk), class axis 1; got shape {list(arr.shape)}", key)
    return arr, key == "logits"


def _targets(
    spec: Any, predictions: np.ndarray, fail: Fail, misfit: Callable[[str, str], None]
) -> tuple[np.ndarray | None, np.ndarray | None, bool]:
    """Class indices (and whether they carry a trailing axis of 1), or per-class probabilities."""
    num_classes = predictions.shape[1]
    label_shape = predictions.shape[:1] + predictions.shape[2:]
    seed = spec.random.seed if spec.random else 0
    if spec.labels is not None:
        if spec.labels == "random":  # with C = 0 there is no class to draw: 0, outside [0, C) like any label
            return np.random.default_rng(seed + 1).integers(0, max(num_classes, 1), size=label_shape), None, False
        if isinstance(spec.labels, Generated):  # any shape: [N, ..., 1] and mismatched ones too
            arr = generated("y", "labels", spec.labels, fail, classes=num_classes)[0]
        else:
            arr = array(deep_numbers(spec.labels, fail, "labels"), "labels", fail, "labels")
        if arr.size and not np.all(np.isfinite(arr) & (arr == np.round(arr))):
            raise fail("labels must be integer class indices", "labels")
        if spec.labels_dtype == "int32" and arr.size and np.abs(arr).max() >= 2**31:
            raise fail("labels do not fit labels_dtype int32", "labels")
        arr = arr.astype(np.int64)
        trailing = arr.shape != label_shape and arr.shape == label_shape + (1,)
        if trailing:
            arr = arr[..., 0]
        if arr.shape != label_shape:
            misfit(
                f"labels have shape {list(arr.shape)}, expected {list(label_shape)} (predictions without the class axis), "
                f"or {list(label_shape + (1,))} (with a trailing axis of 1)",
                "labels",
            )
        ignore = spec.ignore_index
        bad = arr[((arr < 0) | (arr >= num_classes)) & (arr != (ignore if ignore is not None else arr + 1))]
        if bad.size and num_classes:  # with C = 0 every label is outside [0, C): that is what such a case tests
            raise fail(
                f"label {int(bad.flat[0])} is outside [0, {num_classes}) and "
                + ("there is no ignore_index" if ignore is None else f"is not the ignore_index {ignore}"),
                "labels",
            )
        return arr, None, trailing
    if spec.soft_labels == "random":
        return None, probabilities(np.random.default_rng(seed + 1).standard_normal(predictions.shape), 1), False
    if isinstance(spec.soft_labels, Generated):
        arr = generated("t", "soft_labels", spec.soft_labels, fail, normalise=1)[0]
    else:
        arr = array(deep_numbers(spec.soft_labels, fail, "soft_labels"), "soft_labels", fail, "soft_labels")
    if arr.shape != predictions.shape:
        misfit(f"soft_labels have shape {list(arr.shape)}, expected the predictions' {list(predictions.shape)}", "soft_labels")
    if np.any((arr < 0) | (arr > 1)) or not np.all(np.isfinite(arr)):
        raise fail("soft_labels are per-class probabilities and must lie in [0, 1]", "soft_labels")
    return None, arr, False


def _prior(spec: Any, num_classes: int, fail: Fail, misfit: Callable[[str, str], None]) -> np.ndarray | None:
    """paddle's label_smooth prior: C numbers ([C] or [1, C]), kept as (C,); only with smoothing."""
    if spec.prior_dist is None:
        return None
    if not spec.label_smoothing:
        raise fail("prior_dist is the distribution smoothing moves the labels towards: give label_smoothing > 0", "prior_dist")
    if isinstance(spec.prior_dist, Generated):
        arr = generated("prior", "prior_dist", spec.prior_dist, fail, normalise=len(spec.prior_dist.shape) - 1)[0]
    else:
        arr = array(deep_numbers(spec.prior_dist, fail, "prior_dist"), "prior_dist", fail, "prior_dist")
    if not np.all(np.isfinite(arr)):
        raise fail("prior_dist must be finite", "prior_dist")
    if arr.shape not in ((num_classes,), (1, num_classes)):
        misfit(f"prior_dist has shape {list(arr.shape)}; a prior over the classes is [C] or [1, C], C={num_classes}", "prior_dist")
        return arr
    return arr.reshape(num_classes)


def _weight(spec: Any, predictions: np.ndarray, fail: Fail, misfit: Callable[[str, str], None]) -> np.ndarray | None:
    """Class weights: one per class (C,); `random`: positive, seeded."""
    num_classes = predictions.shape[1]
    if spec.weight is None:
        return None
    if spec.weight == "random":
        return random_weights(spec, (num_classes,), 2)
    if isinstance(spec.weight, Generated):
        arr = generated("w", "weight", spec.weight, fail)[0]
    else:
        arr = array(deep_numbers(spec.weight, fail, "weight"), "weight", fail, "weight")
    if not np.all(np.isfinite(arr)):
        raise fail("weight must be finite", "weight")
    if arr.shape != (num_classes,):
        misfit(f"weight has {arr.size} entries but the predictions have C={num_classes} classes", "weight")
    return arr


def generated_source(case: Case) -> dict[str, list[str]]:
    """NumPy lines regenerating the case's generated arrays (float64, before their dtype) by the names
    the variants read them by, as `build` drew them: a snippet regenerates them from the seed instead of
    writing every element."""
    seed, shape = seed_of(case), case.predictions.shape
    out = generated_sources(case, {"labels": ("y", {"classes": shape[1]}), "soft_labels": ("t", {"normalise": 1}), "weight": ("w", {})})
    if isinstance(prior := case.params.get("prior_dist"), dict):
        out["prior"] = generated("prior", "prior_dist", prior, normalise=len(prior["shape"]) - 1)[1]
    if (x := generated_predictions(case)) is not None:
        out["x"] = x
    if case.params.get("labels") == "random":
        out["y"] = [f"y = np.random.default_rng({seed + 1}).integers(0, {max(shape[1], 1)}, size={shape[:1] + shape[2:]})"]
    if case.params.get("soft_labels") == "random":
        out["t"] = [f"t = np.random.default_rng({seed + 1}).standard_normal({shape})", *probability_lines("t", shape, 1)]
    if case.params.get("weight") == "random":
        out["w"] = weights_line("w", case, shape[1:2], 2)
    return out


# ---------------------------------------------------------------- the float64 model


def textbook(case: Case) -> Knobs:
    """Class weight per class, mean / sum of target weights for class indices, / positions for
    probability targets or per-sample weights."""
    own: Denominator = "target_weight" if case.labels is not None and case.sample_weight is None else "positions"
    return Knobs(denominator=mean_denominator(case, own))


def evaluate(case: Case, knobs: Knobs) -> Outcome:
    """Softmax cross-entropy under `knobs`, with its analytic gradient."""
    x = _channels_last(rounded(case, case.predictions))
    num_classes = x.shape[-1]
    spatial = x.shape[:-1]
    flat = x.reshape(int(np.prod(spatial)), num_classes)  # (positions, C), C = 0 included
    eps = case.label_smoothing
    weight = np.ones(num_classes) if case.weight is None else rounded(case, case.weight, "weight")

    if case.labels is not None:
        labels = case.labels.reshape(-1)
        valid = np.ones(labels.shape, bool) if case.ignore_index is None else labels != case.ignore_index
        onehot = np.zeros_like(flat)
        inside = valid & (labels >= 0) & (labels < num_classes)
        onehot[np.flatnonzero(inside), labels[inside]] = 1.0
        hard_weight = np.where(inside, weight[np.clip(labels, 0, num_classes - 1)], 0.0) if num_classes else np.zeros(len(flat))
    else:
        onehot = _channels_last(rounded(case, case.targets, "soft_labels")).reshape(flat.shape)
        valid = np.ones(onehot.shape[0], bool)
        hard_weight = weight[onehot.argmax(axis=1)] if num_classes else np.zeros(len(flat))
    towards = eps / num_classes if num_classes else 0.0  # C = 0: no class to smooth towards
    if knobs.smoothing_prior == "given" and case.prior_dist is not None:  # paddle's label_smooth(prior_dist=...)
        towards = eps * rounded(case, case.prior_dist, "prior_dist")
    q = onehot * (1.0 - eps) + towards
    mask = valid.astype(np.float64)
    if eps > 0 and knobs.ignore_smoothed:
        mask = np.ones_like(mask)

    if case.weight is None or knobs.weight_mode == "per_class":  # without weights nothing is weighed
        coef = q * weight
        sample = np.ones(len(q))
    elif knobs.weight_mode == "from_label":
        coef = q
        sample = q @ weight
    else:
        coef = q
        sample = hard_weight
    per_sample = _per_position(case, len(q))
    coef = coef * (sample * mask * per_sample)[:, None]

    def applied() -> np.ndarray:  # only the applied_weight / nonzero_weight denominators read these knobs
        if case.weight is not None and knobs.weights_as_sample_weights:
            return mask * per_sample * (q @ weight if knobs.weight_mode == "from_label" else hard_weight)
        return mask * per_sample

    bounds = (0.0, 1.0) if case.from_logits else clip_bounds(case, knobs)
    lp = _log_probs(flat, case.from_logits, knobs, bounds)
    with np.errstate(invalid="ignore", over="ignore"):
        per_position = np.where(coef != 0, coef * -lp, 0.0).sum(axis=1)

    if case.reduction == "none":
        scale = np.ones(len(q))
        loss = per_position.reshape(spatial)
    elif len(q) == 0:
        return Outcome(loss=empty_batch(case, knobs), grad=np.zeros(case.predictions.shape))
    else:
        denom = 1.0
        if case.reduction != "sum":
            denom = _denominator(knobs.denominator, mask, hard_weight, q @ weight, applied, case)
        loss, factor = divided(per_position.sum(), denom, knobs)
        scale = np.where(mask > 0, factor, 0.0) if np.isnan(factor) else np.full(len(q), factor)
    grad = _grad(flat, coef * scale[:, None], case.from_logits, knobs, bounds).reshape(x.shape)
    denominator = None if case.reduction in ("none", "sum") else float(denom)
    return Outcome(loss=np.asarray(loss, dtype=np.float64), grad=np.moveaxis(grad, -1, 1), denominator=denominator)


def _per_position(case: Case, positions: int) -> np.ndarray:
    """The per-sample weight of each position (a sample's weight applies to all its positions)."""
    if case.sample_weight is None:
        return np.ones(positions)
    weights = rounded(case, case.sample_weight, "sample_weight")
    return np.repeat(weights, positions // max(len(weights), 1)) if len(weights) else np.ones(positions)


def _channels_last(values: np.ndarray) -> np.ndarray:
    return np.moveaxis(values, 1, -1)


def _denominator(
    kind: Denominator, mask: np.ndarray, hard_weight: np.ndarray, label_weight: np.ndarray, applied: Callable[[], np.ndarray], case: Case
) -> float:
    if kind == "applied_weight":
        return float(applied().sum())
    if kind == "nonzero_weight":
        return float(np.count_nonzero(applied()))
    if kind == "target_weight":
        return float((hard_weight * mask).sum() if case.labels is not None else len(mask))
    if kind == "label_weight":
        return float((label_weight * mask).sum())
    if kind == "valid_count":
        return float(mask.sum())
    return float(len(mask))


def _log_probs(flat: np.ndarray, from_logits: bool, knobs: Knobs, bounds: tuple[float, float]) -> np.ndarray:
    if flat.shape[1] == 0:  # an empty class axis: no log-probability to form
        return flat.copy()
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if from_logits:
            z = flat - flat.max(axis=1, keepdims=True)
            if knobs.logit_floor is not None:
                z = np.maximum(z, -knobs.logit_floor)
            return z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        p = flat
        lo, hi = bounds
        if knobs.probabilities == "none":
            return np.log(p)
        if knobs.probabilities == "renormalise":
            return np.log(p) - np.log(p.sum(axis=1, keepdims=True))
        if knobs.probabilities == "renormalise_then_clip":
            return np.log(np.clip(p / p.sum(axis=1, keepdims=True), lo, hi))
        c = np.clip(p, lo, hi)
        return np.log(c) - np.log(c.sum(axis=1, keepdims=True))


def _grad(flat: np.ndarray, coef: np.ndarray, from_logits: bool, knobs: Knobs, bounds: tuple[float, float]) -> np.ndarray:
    """d/dpred of sum A * (-lp), for each way lp is formed from the predictions."""
    total = coef.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if from_logits:
            p = np.exp(_log_probs(flat, True, knobs, bounds))
            return p * total - coef
        p = flat
        lo, hi = bounds
        s = p.sum(axis=1, keepdims=True)
        own = np.where(coef != 0, -coef / np.where(coef != 0, p, 1.0), 0.0)  # a class with no weight adds 0
        if knobs.probabilities == "none":
            return own
        if knobs.probabilities == "renormalise":
            return own + total / s
        if knobs.probabilities == "renormalise_then_clip":
            r = p / s
            live = (r > lo) & (r < hi)
            g_r = np.where(live, -coef / np.where(live, r, 1.0), 0.0)
            return (g_r - (g_r * r).sum(axis=1, keepdims=True)) / s
        c = np.clip(p, lo, hi)
        live = (p > lo) & (p < hi)
        return np.where(live, -coef / c + total / c.sum(axis=1, keepdims=True), 0.0)


# ---------------------------------------------------------------- recipes


def recipe_source(case: Case, knobs: Knobs, probabilities: bool = False) -> list[str] | None:
    """NumPy lines that build the target `T` (classes last) and the denominator `D` of `knobs`'
    semantics, so any framework's soft-label cross-entropy, sum(T * -log_softmax) / D, reproduces it.
    On probability inputs the same T and D give sum(T * -log r) / D, with r formed from the
    probabilities as `probability_steps(knobs)` says; only a caller that forms r so asks for them
    (`probabilities=True`): log_softmax of probabilities would be wrong. None where no such recipe
    exists (probabilities unasked, paddle's ignore quirk, an empty batch)."""
    if (not case.from_logits and not probabilities) or knobs.ignore_smoothed or case.predictions.size == 0:
        return None
    c = case.num_classes
    hard = case.labels is not None
    ignore = hard and case.ignore_index is not None
    lines = ["y = y.squeeze(-1)  # the labels' trailing axis of 1"] if case.trailing_label_axis else []
    if hard:
        safe = f"np.where(y != {case.ignore_index}, y, 0)" if ignore else "y"
        lines.append(f"q = {_one_hot(c, safe)}  # one-hot, classes last")
    else:
        lines.append("q = np.moveaxis(t, 1, -1)  # classes last")
    lines.append("hard = q.argmax(-1)  # the class whose weight Keras-style sample weights use")
    if case.label_smoothing and knobs.smoothing_prior == "given" and case.prior_dist is not None:
        lines.append(f"q = q * (1 - {case.label_smoothing!r}) + {case.label_smoothing!r} * prior.reshape(-1)  # towards prior_dist")
    elif case.label_smoothing:
        lines.append(f"q = q * (1 - {case.label_smoothing!r}) + {case.label_smoothing!r} / {c}")
    weight = "w" if case.weight is not None else f"np.ones({c})"
    lines.append(f"mask = {'(y != ' + str(case.ignore_index) + ').astype(float)' if ignore else 'np.ones(q.shape[:-1])'}")
    per_position = {
        "per_class": f"T = q * {weight}  # each class's term weighed",
        "from_label": f"T = q * (q @ {weight})[..., None]  # weight of the (smoothed) label",
        "from_hard_label": f"T = q * {weight}[hard][..., None]  # weight of the hard label",
    }[knobs.weight_mode]
    lines.append(per_position)
    sample = "np.ones(q.shape[:-1])"
    if case.sample_weight is not None:
        sample = "np.broadcast_to(sw.reshape((-1,) + (1,) * (q.ndim - 2)), q.shape[:-1])"
    lines.append(f"s = {sample} * mask")
    lines.append("T = T * s[..., None]")
    if case.reduction in ("none", "sum"):
        return lines
    applied = "s"
    if knobs.weights_as_sample_weights:
        applied = "s * (q @ " + weight + ")" if knobs.weight_mode == "from_label" else f"s * {weight}[hard]"
    denominator = {
        "target_weight": f"(mask * {weight}[hard]).sum()" if hard and case.sample_weight is None else "mask.size",
        "label_weight": f"(mask * (q @ {weight})).sum()",
        "valid_count": "mask.sum()",
        "positions": "mask.size",
        "applied_weight": f"({applied}).sum()",
        "nonzero_weight": f"np.count_nonzero({applied})",
    }[knobs.denominator]
    if knobs.denominator == "target_weight" and not hard:
        denominator = "mask.size"
    lines.append(f"D = {denominator}")
    if knobs.empty_mean == "zero":
        lines.append("D = D if D else np.inf  # 0/0 is taken as 0")
    return lines


def probability_steps(knobs: Knobs) -> tuple[str, ...]:
    """How `knobs` form, from probability inputs, the probabilities r whose log the loss takes, step by
    step in order: "renormalise" (p / sum_c p over the class axis), "clip" (to [clip_eps, 1 - clip_eps]
    in the predictions' dtype). `_log_probs` in recipe form; a recipe then takes sum(T * -log r) with
    0 log 0 = 0 (a class no target weighs adds nothing, as in the model)."""
    steps: dict[str, tuple[str, ...]] = {"none": (), "renormalise": ("renormalise",), "renormalise_then_clip": ("renormalise", "clip")}
    return steps.get(knobs.probabilities, ("clip", "renormalise"))


def probability_recipe(ops: Mapping[str, str], case: Case, knobs: Knobs) -> list[str]:
    """A framework's lines, in its `OPS`, for the per-position loss sum_c T * -log r on probability inputs
    (class axis 1, as the predictions come): r formed as `probability_steps(knobs)` says, T from
    `recipe_source` moved to the class axis 1 in the predictions' dtype, and 0 log 0 = 0 (the log of 1
    where T is 0), so a zero probability no target weighs adds nothing, as in the model."""
    lines, r = [f"probs = {ops['tensor'].format('x')}"], "probs"
    eps = knobs.clip_eps
    for step in probability_steps(knobs):
        if step == "renormalise":
            lines.append(f"p = {r} / {ops['sum1_keep'].format(r)}  # renormalised over the classes")
        else:
            lines.append(f"p = {ops['clip'].format(r, repr(eps), f'1 - {eps!r}')}  # clipped to [eps, 1 - eps]")
        r = "p"
    log_r = ops["log"].format(ops["where"].format("weights != 0", r, ops["ones_like"].format(r)))
    weights = ops["tensor"].format("np.moveaxis(T, -1, 1).astype(x.dtype)")
    return lines + [f"weights = {weights}  # T, class axis 1", f"loss = -{ops['sum1'].format(f'(weights * {log_r})')}  # 0 log 0 = 0"]


RECIPES = (
    "recipes cover cross-entropy on logits and on probabilities, but not an empty batch, ignored positions that "
    "smoothing still counts, or a dtype the framework's recipe does not take (bfloat16; float16 without CPU kernels)"
)
PORTABLE = frozenset({"weight_mode", "denominator", "weights_as_sample_weights", "empty_mean"})


def port(case: Case, own: Knobs, target: Knobs, model: Callable[[Knobs], Outcome]) -> dict[str, Any] | None:
    """The smallest change to a framework's own call (documented at `own`) that gives `target`'s
    semantics, for `adapters.smallest_change`: `soft` (pass NumPy's target `t`, class axis 1, as
    probabilities instead of the labels, weights and smoothing), the NumPy `lines` that build it and
    `D`, whether to `divide` the summed loss by `D`, and a `note` in the words of the explanations. Only
    the knobs that move the loss on this case count (`_moving`); on probability inputs the call is given
    them renormalised and clipped as the target forms them (`_passed`). None where another knob moves it
    (ignored positions under smoothing), where the call would undo the target's probabilities, or where
    per-sample weights meet a denominator of weights: the general recipe covers those. `model`
    evaluates a knob point on this case (memoized by the caller, shared with the explanation)."""
    if case.predictions.size == 0:
        return None
    moving = _moving(case, own, target, model)
    rest = [k for k in moving if k not in PROBABILITY_KNOBS]
    passed = _passed(case, own, target) if len(rest) < len(moving) else []
    if not moving or set(rest) - PORTABLE or passed is None:
        return None
    soft = "weight_mode" in rest
    if soft and not case.from_logits and not _clip_idle(case, own, target if passed else None):
        return None  # the call on soft targets may clip otherwise (Keras: CategoricalCrossentropy, not Sparse...)
    divide = bool(rest) and case.reduction not in ("none", "sum")
    denominator = mean_denominator(case, target.denominator)
    if divide and case.sample_weight is not None and denominator != "positions":
        return None  # the per-sample weights would enter the denominator too
    labels = _Labels(case)
    lines = labels.target(target) if soft else []
    if divide:
        lines += labels.denominator(target, denominator, "empty_mean" in moving, have_q=soft)
    said = {"denominator": labels.said(denominator)}
    note = "; ".join(_phrase(k, said.get(k, getattr(target, k))) for k in moving)
    return {"soft": soft, "lines": passed + lines, "divide": divide, "note": note}


def _moving(case: Case, own: Knobs, target: Knobs, model: Callable[[Knobs], Outcome]) -> list[str]:
    """The knobs on which own and target differ that move the loss on this case (switched alone); where
    none does alone but together they do, the denominator's and 0/0's. On probability inputs a knob of
    how log p is formed moves only where the probabilities it forms differ beyond their dtype's rounding."""
    outcome = model(own)
    base = outcome.loss

    def moves(knob: str) -> bool:
        if knob not in outcome.read:  # a knob the evaluation never read cannot change it
            return False
        switched = own.switched(knob, getattr(target, knob))
        if not case.from_logits and knob in PROBABILITY_KNOBS and not _formed_differently(case, own, switched):
            return False  # the rows differ from normalised or clipped ones by their dtype's rounding only
        return not np.allclose(model(switched).loss, base, rtol=1e-9, atol=0, equal_nan=True)

    differing = [k for k in knob_names() if getattr(own, k) != getattr(target, k)]
    moving = [k for k in differing if moves(k)]
    aligned = target
    for knob in (k for k in differing if k in PROBABILITY_KNOBS and k not in moving):  # their effect is rounding only
        aligned = aligned.switched(knob, getattr(own, knob))
    if not moving and not np.allclose(model(aligned).loss, base, rtol=1e-9, atol=0, equal_nan=True):
        moving = [k for k in differing if k in PORTABLE - {"weight_mode"}]  # none moves alone, together they do
    return moving


class _Labels:
    """The NumPy expressions a port writes for the case's targets: class indices `y` (with their ignored
    positions) or soft labels `t`, smoothed as the case says, classes last."""

    def __init__(self, case: Case) -> None:
        c, eps, ii = case.num_classes, case.label_smoothing, case.ignore_index
        self.hard, self.weighted = case.labels is not None, case.weight is not None
        smoothed = f" * (1 - {eps!r}) + {eps!r} / {c}" if eps else ""
        safe = f"np.where(y != {ii}, y, 0)" if ii is not None else "y"
        self.mask = f"(y != {ii})" if self.hard and ii is not None else None
        self.index = safe if self.hard else "q.argmax(-1)"  # the hard label (of a soft label: its largest class)
        self.positions = "y.size" if self.hard else "t[:, 0].size"
        self.count = f"{self.mask}.sum()" if self.mask else self.positions
        what = f"the {'smoothed ' if eps else ''}{'one-hot' if self.hard else 'soft'} labels, classes last"
        self.q = f"q = {_one_hot(c, safe) if self.hard else 'np.moveaxis(t, 1, -1)'}{smoothed}  # {what}"
        self.ones = f"np.ones({c})"

    def masked(self, values: str) -> str:
        return f"({values} * {self.mask})" if self.mask else values

    def target(self, target: Knobs) -> list[str]:
        """q, the target T weighed as `target` weighs it, and `t`: T as probabilities, class axis 1."""
        weighing = {"per_class": "q * w", "from_label": "q * (q @ w)[..., None]", "from_hard_label": f"q * w[{self.index}][..., None]"}
        lines = [self.q, f"T = {weighing[target.weight_mode] if self.weighted else 'q'}  # {_phrase('weight_mode', target.weight_mode)}"]
        lines += [f"T = T * {self.mask}[..., None]  # ignored positions count for nothing"] if self.mask else []
        return lines + ["t = np.moveaxis(T, -1, 1).astype(x.dtype)  # as probabilities, class axis 1"]

    def denominator(self, target: Knobs, denominator: str, empty_mean: bool, have_q: bool) -> list[str]:
        """`D` of `target`'s mean (`denominator`, resolved for the case's reduction), and 0/0 = 0 where
        that moves the loss (`empty_mean`); q first where D needs it and `have_q` says it is not there."""
        label_weight = f"q @ {'w' if self.weighted else self.ones}"
        own_weight = f"({label_weight})" if target.weight_mode == "from_label" else f"w[{self.index}]"  # as a sample weight
        sample = target.weights_as_sample_weights and self.weighted
        expressions = {
            "target_weight": f"{self.masked(f'w[{self.index}]')}.sum()" if self.hard and self.weighted else self.count,
            "label_weight": f"{self.masked(f'({label_weight})')}.sum()" if self.weighted or not self.hard else self.count,
            "valid_count": self.count,
            "positions": self.positions,
            "applied_weight": f"{self.masked(own_weight)}.sum()" if sample else self.count,
            "nonzero_weight": f"np.count_nonzero({self.masked(own_weight)})" if sample else self.count,
        }
        expression = expressions[denominator]
        lines = [self.q] if not have_q and "q" in re.findall(r"[A-Za-z_]\w*", expression) else []
        lines.append(f"D = {expression}  # {_phrase('denominator', self.said(denominator))}")
        return lines + (["D = D or np.inf  # 0/0 is taken as 0"] if empty_mean and target.empty_mean == "zero" else [])

    def said(self, denominator: str) -> str:
        """The denominator as the note words it: the sum of target weights is the number of positions for
        soft labels, and a count of the non-ignored ones without class weights."""
        if denominator != "target_weight" or (self.hard and self.weighted):
            return denominator
        return "valid_count" if self.hard else "positions"


PROBABILITY_KNOBS = frozenset({"probabilities", "clip_eps"})
# Unit roundoff of each dtype: probabilities stored in it sum to 1 only within about C of these.
ROUNDOFF = {"float64": 2.0**-53, "float32": 2.0**-24, "float16": 2.0**-11, "bfloat16": 2.0**-8}


def _formed(case: Case, knobs: Knobs) -> np.ndarray:
    """The probabilities whose log `knobs` take, float64, (positions, C): `probability_steps` on the
    case's probabilities as its dtype holds them."""
    p = _channels_last(rounded(case, case.predictions)).reshape(-1, case.num_classes)
    lo, hi = clip_bounds(case, knobs)
    with np.errstate(divide="ignore", invalid="ignore"):
        for step in probability_steps(knobs):
            p = p / p.sum(axis=1, keepdims=True) if step == "renormalise" else np.clip(p, lo, hi)
    return p


def _formed_differently(case: Case, a: Knobs, b: Knobs) -> bool:
    """Whether a and b form probabilities that differ by more than the rounding of the case's dtype
    (rows of float32 probabilities sum to 1 within a few ulps, so renormalising them moves the loss a
    little, but no port needs to say so)."""
    ra, rb = _formed(case, a), _formed(case, b)
    bound = 4 * case.num_classes * ROUNDOFF.get(case.dtype, 2.0**-8)
    with np.errstate(invalid="ignore"):
        gap = np.abs(ra - rb) > bound * np.maximum(np.abs(ra), np.abs(rb))
    return bool(np.any(gap | (np.isnan(ra) != np.isnan(rb))))


def _clip_idle(case: Case, own: Knobs, passed: Knobs | None) -> bool:
    """Whether the probabilities the call is given (the case's, or as `passed` forms them) lie inside
    own's clip both as they are and renormalised, so clipping before or after renormalising does
    nothing: a change to soft targets may switch the call's probability handling between the two."""
    if "clip" not in probability_steps(own):
        return True
    lo, hi = clip_bounds(case, own)
    given = _formed(case, passed) if passed is not None else _formed(case, own.switched("probabilities", "none"))
    with np.errstate(divide="ignore", invalid="ignore"):
        both = np.concatenate([given, given / given.sum(axis=1, keepdims=True)])
    return bool(np.all((both >= lo) & (both <= hi)))


def _passed(case: Case, own: Knobs, target: Knobs) -> list[str] | None:
    """NumPy lines that renormalise and clip `x` as the target forms its probabilities, so that the own
    call, given them, takes the log of the target's: where the own call forms them as given (log p), or
    where what it does (renormalise, clip) leaves the target's as they are (rows that sum to 1, inside
    its clip). None where it would undo them (torch's renormalisation of Keras's clipped rows)."""
    steps, own_steps = probability_steps(target), probability_steps(own)
    if own_steps and (not steps or steps[-1] != "renormalise"):
        return None  # the own call renormalises: only rows that sum to 1 pass through it unchanged
    if "clip" in own_steps:
        lo, hi = clip_bounds(case, own)
        formed = _formed(case, target)
        if np.any((formed < lo) | (formed > hi)):
            return None
    if own_steps == ("renormalise",):
        steps = steps[:-1]  # the own call renormalises last itself
    eps = target.clip_eps
    return [
        "x = x / x.sum(axis=1, keepdims=True)  # renormalised over the classes, yourself"
        if step == "renormalise"
        else f"x = np.clip(x, {eps!r}, 1 - {eps!r})  # clipped to [eps, 1 - eps], yourself"
        for step in steps
    ]


def _phrase(knob: str, value: Any) -> str:
    return PHRASES.get(knob, {}).get(value, f"{knob} = {value}")


def _one_hot(classes: int, labels: str) -> str:
    """NumPy for one-hot rows of `labels` (classes last): `np.eye(C)[y]`, the idiom, where C is small;
    above 4,096 classes a comparison, since np.eye(C) holds C^2 numbers (8 GB at C = 32,000)."""
    if classes <= 4096:
        return f"np.eye({classes})[{labels}]"
    return f"np.equal.outer({labels}, np.arange({classes})) * 1.0"


# ---------------------------------------------------------------- explanations

PHRASES: dict[str, dict[Any, str]] = {
    **SHARED_PHRASES,
    "weight_mode": {
        "per_class": "weighs each class's term inside the smoothed sum",
        "from_label": "weighs the loss by w.q of the smoothed (or soft) label",
        "from_hard_label": "weighs the loss by the hard label's class weight (sample_weight = weight[label])",
    },
    "denominator": {
        "target_weight": "divides the mean by the sum of target weights",
        "label_weight": "divides the mean by the sum of w.q",
        "valid_count": "divides the mean by the number of non-ignored positions",
        **SHARED_PHRASES["denominator"],
    },
    "probabilities": {
        "renormalise": "renormalises probabilities",
        "none": "takes log p as given",
        "renormalise_then_clip": "renormalises, then clips p to [eps, 1-eps]",
        "clip_then_renormalise": "clips p to [eps, 1-eps], then renormalises",
    },
    "logit_floor": {None: "computes softmax exactly"},
    "smoothing_prior": {
        "uniform": "smooths towards the uniform distribution (eps / C)",
        "given": "smooths towards the case's prior_dist",
    },
}

ALTERNATIVES: dict[str, list[Any]] = {
    "weight_mode": ["per_class", "from_label", "from_hard_label"],
    "denominator": ["target_weight", "label_weight", "valid_count", "positions", "applied_weight", "nonzero_weight"],
    "empty_mean": ["nan", "zero"],
    "empty_batch": ["nan", "zero", "unreduced"],
    "probabilities": ["renormalise", "none", "renormalise_then_clip", "clip_then_renormalise"],
    "logit_floor": [None, 64.0],
    "ignore_smoothed": [False, True],
    "weights_as_sample_weights": [False, True],
    "smoothing_prior": ["uniform", "given"],
}


# ---------------------------------------------------------------- the native calls, one module per framework


def variants(framework: str) -> list[Variant]:
    """The family's native calls in `framework` (`losses.package_variants`)."""
    return package_variants(__name__, framework)


# ---------------------------------------------------------------- the fuzzer's cases

LOGITS = [0.0, 1.0, -1.0, 2.0, 0.5, -2.0, 3.0, 80.0]
WEIGHTS = [1.0, 2.0, 0.5, 3.0, 0.0]
SMOOTHING = [0.0, 0.1, 0.2, 0.5]


def strategy() -> SearchStrategy[dict[str, Any]]:
    """Softmax cross-entropy cases as they would be written in YAML; simplest values come first, so
    shrinking moves towards one sample, two classes, small logits and no options."""
    from hypothesis import strategies as st

    @st.composite
    def case_specs(draw: Callable[..., Any]) -> dict[str, Any]:
        n = draw(st.integers(1, 4))
        c = draw(st.integers(2, 4))
        spatial = draw(st.sampled_from([[], [2]]))
        grid = st.sampled_from(LOGITS)
        logits = draw(nested(grid, [n, c, *spatial]))
        spec: dict[str, Any] = {"id": "fuzz", "logits": logits, "reduction": draw(st.sampled_from(["mean", "sum", "none"]))}
        if draw(st.booleans()):
            spec["soft_labels"] = draw(nested(st.sampled_from([0.0, 1.0, 0.5, 0.25]), [n, c, *spatial]))
        else:
            labels = draw(nested(st.integers(0, c - 1), [n, *spatial]))
            ignore = draw(st.sampled_from([None, -100, 0]))
            if ignore == -100:
                labels = _replace(labels, draw(st.lists(st.booleans(), min_size=size([n, *spatial]), max_size=size([n, *spatial]))))
            if ignore is not None:
                spec["ignore_index"] = ignore
            spec["labels"] = labels
        if draw(st.booleans()):
            spec["weight"] = draw(st.lists(st.sampled_from(WEIGHTS), min_size=c, max_size=c))
        smoothing = draw(st.sampled_from(SMOOTHING))
        if smoothing:
            spec["label_smoothing"] = smoothing
        if draw(st.booleans()):
            spec["sample_weight"] = draw(st.lists(st.sampled_from([1.0, 0.5, 2.0, 0.0]), min_size=n, max_size=n))
        if draw(st.booleans()):
            spec["dtype"] = "float64"
        return spec

    return case_specs()


def _replace(labels: Any, ignored: list[bool]) -> Any:
    """`labels` with the positions flagged in `ignored` (flat order) set to the ignore_index -100."""
    flat = iter(ignored)

    def walk(value: Any) -> Any:
        return [walk(v) for v in value] if isinstance(value, list) else (-100 if next(flat) else value)

    return walk(labels)
