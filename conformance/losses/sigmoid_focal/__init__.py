"""Sigmoid focal loss (Lin et al. 2017, RetinaNet): binary cross-entropy per element, scaled by the
focal factor (1 - p_t)^gamma and, when `alpha` is given, by the class-balancing weight alpha_t.

    p = sigmoid(x), q = 1 - p_t = z (1 - p) + (1 - z) p,  alpha_t = alpha z + (1 - alpha) (1 - z)
    FL = alpha_t * q^gamma * BCE(x, z)

Like binary cross-entropy, every element of the predictions (any shape) is its own binary problem: 0/1
`labels` or soft targets in [0, 1] of the predictions' shape. Own keys: `gamma` (default 2.0),
`alpha` (default null: no class balancing), `normalizer` (a positive number every element is divided
by, as paddle's `normalizer` argument and RetinaNet's division by the number of foreground anchors).
Per-sample weights and Keras's label smoothing towards 0.5 are shared keys; there are no element
weights (no focal API takes them).

The family's own knobs of the reference model: `balancing` (the alpha an API applies, None for none),
`sigmoid_clip` (whether sigmoid(x) is clipped to [eps, 1-eps] before its logs are taken), `sums` (a sum
whatever reduction the case asks for: paddle's default reduction, when a call omits it). The shared
knobs it reads: `denominator`, `last_axis_mean` (Keras averages the last axis first), `probabilities`
(clip or not, for probability inputs), `clip_eps`, `empty_mean`, `empty_batch`. The textbook point
applies the case's alpha, takes the logs exactly, and averages over every element.

The native calls live in this package, one module per framework (`variants`); this module is NumPy only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
from pydantic import BeforeValidator, Field

from conformance.losses import (
    COMMON_PARAMETERS,
    Fail,
    Generated,
    array,
    deep_numbers,
    defaulted,
    elementwise,
    elementwise_inputs,
    generated,
    generated_predictions,
    generated_sources,
    given_predictions,
    number,
    package_variants,
    seed_of,
)
from conformance.reference import (
    SHARED_PHRASES,
    Knobs,
    Outcome,
    batch_aligned,
    clip_bounds,
    divided,
    empty_batch,
    mean_denominator,
    rounded,
)

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy

    from conformance.adapters import Variant
    from conformance.cases import Case

NAME = "sigmoid_focal"
ORDER = 40
_Number = Annotated[float, BeforeValidator(number)]  # booleans refused, YAML 1.1's `1e-5` strings read
FIELDS: dict[str, tuple[Any, Any]] = {
    "gamma": (
        _Number | None,
        Field(default=None, description="sigmoid_focal only: the focusing exponent of (1 - p_t), >= 0 (default 2.0)"),
    ),
    "alpha": (
        _Number | None,
        Field(
            default=None,
            description=(
                "sigmoid_focal only: class balancing, alpha for positives and 1 - alpha for negatives, in [0, 1]; null (default): none"
            ),
        ),
    ),
    "normalizer": (
        _Number | None,
        Field(
            default=None,
            description="sigmoid_focal only: a number > 0 every element's loss is divided by (paddle's normalizer; by hand elsewhere)",
        ),
    ),
}
INSTEAD = {
    "pos_weight": "sigmoid_focal weighs positives with `alpha`",
}
ARRAYS: dict[str, str] = {}
CLASS_AXIS = None  # elementwise, as binary cross-entropy
RECIPES = "recipes cover logits and probabilities, but not an empty batch or per-sample weights on a 1-D batch"
INDEX_LABELS = False
DEFAULT_GAMMA = 2.0
REDUCTIONS = ("none", "mean", "sum")
KNOBS: dict[str, Any] = {"balancing": None, "sigmoid_clip": False, "sums": False}
# What reaches a user's loss function (`--variant`): each key always, at the case's value (alpha None: no balancing).
PARAMETERS = {
    **COMMON_PARAMETERS,
    "label_smoothing": defaulted(0.0),
    "gamma": defaulted(DEFAULT_GAMMA),
    "alpha": defaulted(None),
    "normalizer": defaulted(None),
}


# ---------------------------------------------------------------- the case's arrays


def build(spec: Any, fail: Fail) -> dict[str, Any]:
    """Predictions of any shape, targets of the same shape; gamma, alpha and normalizer checked."""
    predictions, key = given_predictions(spec, fail, lambda shape: True)
    if key is not None and predictions.ndim < 1:
        raise fail(f"{key} must be an array (any shape) for {NAME}", key)
    if spec.weight is not None:
        raise fail(f"{NAME} takes no element weights (no focal API has them); give per-sample `sample_weight`", "weight")
    if spec.ignore_index is not None:
        raise fail(f"{NAME} has no ignore_index (give the sample a zero sample_weight)", "ignore_index")
    if spec.reduction not in REDUCTIONS:
        raise fail(f"{NAME} takes reduction none, mean or sum, got {spec.reduction!r}", "reduction")
    labels, soft = _targets(spec, predictions, fail)
    targets = labels if labels is not None else soft
    fits = targets is None or targets.shape == predictions.shape
    misfit = {"mismatched": [] if fits else ["labels" if labels is not None else "soft_labels"]}
    return {
        **(misfit if spec.check_shapes is False else {}),  # targets of another shape on purpose: every framework should raise
        "predictions": predictions,
        "from_logits": key != "probs",
        "labels": labels,
        "soft_labels": soft,
        "weight": None,
        "gamma": _checked(spec.gamma, DEFAULT_GAMMA, "gamma", "a finite number >= 0", lambda v: v >= 0, fail),
        "alpha": _checked(spec.alpha, None, "alpha", "a number in [0, 1] (or null: no class balancing)", lambda v: 0 <= v <= 1, fail),
        "normalizer": _checked(spec.normalizer, None, "normalizer", "a finite number > 0", lambda v: v > 0, fail),
    }


def _checked(value: float | None, default: float | None, key: str, wanted: str, ok: Callable[[float], bool], fail: Fail) -> float | None:
    if value is None:
        return default
    if not np.isfinite(value) or not ok(value):
        raise fail(f"{key} must be {wanted}, got {value!r}", key)
    return float(value)


def _targets(spec: Any, predictions: np.ndarray, fail: Fail) -> tuple[np.ndarray | None, np.ndarray | None]:
    """0/1 `labels` or soft `soft_labels` in [0, 1], of the predictions' shape (or `random`)."""
    key = "labels" if spec.labels is not None else "soft_labels"
    value = getattr(spec, key)
    if value == "random":
        rng = np.random.default_rng((spec.random.seed if spec.random else 0) + 1)
        drawn = rng.integers(0, 2, predictions.shape).astype(np.float64) if key == "labels" else rng.random(predictions.shape)
        return (drawn, None) if key == "labels" else (None, drawn)
    if isinstance(value, Generated):
        arr = generated("y" if key == "labels" else "t", key, value, fail, **({"classes": 2} if key == "labels" else {}))[0]
    else:
        arr = array(deep_numbers(value, fail, key), key, fail, key)
    if arr.shape != predictions.shape and spec.check_shapes is not False:
        raise fail(f"{key} have shape {list(arr.shape)}, expected the predictions' {list(predictions.shape)}", key)
    if key == "labels" and not np.all((arr == 0) | (arr == 1)):
        raise fail("binary labels must be 0 or 1 (give soft_labels for values in between)", key)
    if not np.all((arr >= 0) & (arr <= 1)):
        raise fail("soft_labels must lie in [0, 1]", key)
    return (arr, None) if key == "labels" else (None, arr)


def generated_source(case: Case) -> dict[str, list[str]]:
    """NumPy lines regenerating the case's generated arrays (float64, before their dtype) by the names the
    variants read them by, as `build` drew them: a snippet of a `random` case stays short."""
    seed, shape = seed_of(case), case.predictions.shape
    out = generated_sources(case, {"labels": ("y", {"classes": 2}), "soft_labels": ("t", {})})
    if (x := generated_predictions(case)) is not None:
        out["x"] = x
    if case.params.get("labels") == "random":
        out["y"] = [f"y = np.random.default_rng({seed + 1}).integers(0, 2, {shape}).astype(np.float64)"]
    if case.params.get("soft_labels") == "random":
        out["t"] = [f"t = np.random.default_rng({seed + 1}).random({shape})"]
    return out


# ---------------------------------------------------------------- the float64 model


def textbook(case: Case) -> Knobs:
    """The published formula: the case's alpha, exact logs, mean over every element."""
    return documented(case)


def documented(case: Case, **knobs: Any) -> Knobs:
    """The point of an API that applies the case's alpha and averages over every element, with `knobs`
    set otherwise (the framework modules' documented points start here)."""
    point: dict[str, Any] = {
        "denominator": mean_denominator(case, "positions"),
        "probabilities": "none",
        "empty_mean": "nan",
        "empty_batch": "nan",
        "balancing": case.alpha,
    }
    return Knobs.of(point, **knobs)


def evaluate(case: Case, knobs: Knobs) -> Outcome:
    """The focal loss per element and its analytic gradient, then sample weights and the reduction."""
    element, d_element = _elementwise(case, knobs)
    if case.normalizer is not None:
        element, d_element = element / case.normalizer, d_element / case.normalizer
    return _reduced(case, knobs, element, d_element)


def _elementwise(case: Case, knobs: Knobs) -> tuple[np.ndarray, np.ndarray]:
    """loss = a * q^gamma * bce and its derivative a * (gamma q^(gamma-1) q' bce + q^gamma bce')."""
    x = rounded(case, case.predictions)
    eps = case.label_smoothing
    z = rounded(case, case.targets) * (1.0 - eps) + 0.5 * eps
    gamma = case.gamma
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if case.from_logits:
            p, p_bar = _sigmoid(x), _sigmoid(-x)  # 1 - p without cancellation
            q, dq = z * p_bar + (1.0 - z) * p, (1.0 - 2.0 * z) * p * p_bar
            if knobs.sigmoid_clip:
                bce, d_bce = _clipped_bce(case, knobs, p, z)
                d_bce = d_bce * p * p_bar
            else:
                bce = np.maximum(x, 0.0) - z * x + np.log1p(np.exp(-np.abs(x)))
                d_bce = p - z
        else:
            p = x
            q, dq = z * (1.0 - p) + (1.0 - z) * p, 1.0 - 2.0 * z
            if knobs.probabilities == "clip":
                bce, d_bce = _clipped_bce(case, knobs, p, z)
            else:
                bce = -(_xlog(z, p) + _xlog(1.0 - z, 1.0 - p))
                d_bce = (p - z) / np.maximum(p * (1.0 - p), 1e-12)
        focal = q**gamma
        d_focal = np.zeros_like(q) if gamma == 0 else gamma * q ** (gamma - 1.0) * dq
        alpha = knobs.balancing
        balance = np.ones_like(z) if alpha is None else alpha * z + (1.0 - alpha) * (1.0 - z)
        element = balance * focal * bce
        d_element = balance * (d_focal * bce + focal * d_bce)
    return element, d_element


def _sigmoid(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return np.where(x >= 0, 1.0 / (1.0 + np.exp(-np.abs(x))), np.exp(-np.abs(x)) / (1.0 + np.exp(-np.abs(x))))


def _clipped_bce(case: Case, knobs: Knobs, p: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """BCE on p clipped to [eps, 1-eps] (in the case dtype), and its derivative w.r.t. p: 0 where clipped."""
    lo, hi = clip_bounds(case, knobs)
    clipped = np.clip(p, lo, hi)
    live = (p > lo) & (p < hi)
    bce = -(_xlog(z, clipped) + _xlog(1.0 - z, 1.0 - clipped))
    return bce, np.where(live, -z / clipped + (1.0 - z) / (1.0 - clipped), 0.0)


def _xlog(coefficient: np.ndarray, p: np.ndarray) -> np.ndarray:
    """coefficient * log p, with 0 * log 0 = 0 (the limit, as the formula means it)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(coefficient != 0, coefficient * np.log(p), 0.0)


def _reduced(case: Case, knobs: Knobs, element: np.ndarray, d_element: np.ndarray) -> Outcome:
    """Per-sample weights and the reduction (a sum whatever the case asks, with `sums`). With
    `last_axis_mean` (Keras) the last axis is averaged into one value per sample first, so `sum` and
    `none` see those means; a mean of those means is the mean over every element whatever the
    denominator (its numerator and denominator both shrink by C), so a mean is taken elementwise and
    does not read the knob: an explanation then finds no effect where there is none."""
    reduction = "sum" if knobs.sums else case.reduction
    sw = None if case.sample_weight is None else rounded(case, case.sample_weight)
    if element.size == 0 and reduction != "none":
        return Outcome(loss=empty_batch(case, knobs), grad=np.zeros(element.shape))
    if reduction != "mean" and knobs.last_axis_mean:
        values, d_values = element.mean(axis=-1), d_element / max(element.shape[-1], 1)
        sample = batch_aligned(sw, values.shape)
        d_sample = sample[..., None]
    else:
        values, d_values = element, d_element
        sample = d_sample = batch_aligned(sw, element.shape)
    with np.errstate(invalid="ignore"):
        values = values * sample
        d_values = d_values * d_sample
    if reduction == "none":
        return Outcome(loss=np.asarray(values, dtype=np.float64), grad=np.asarray(d_values))
    denom = 1.0
    if reduction == "mean":
        applied = np.broadcast_to(sample, np.shape(values))
        denom = {
            "applied_weight": float(np.sum(applied)),
            "nonzero_weight": float(np.count_nonzero(applied)),
        }.get(knobs.denominator, float(np.size(values)))
    loss, factor = divided(float(np.sum(values)), denom, knobs)
    return Outcome(loss=loss, grad=np.asarray(d_values * factor), denominator=denom if reduction == "mean" else None)


# ---------------------------------------------------------------- recipes


def native_recipe(framework: str, case: Case, knobs: Knobs) -> str | None:
    """`framework`'s code reproducing the focal loss of `knobs` (another framework's documented point), in
    its own ops (`elementwise`), as `evaluate` computes it: q = 1 - p_t from sigmoid(x) and
    sigmoid(-x), the BCE from the logits (or of sigmoid(x) clipped, Keras on JAX) or of the
    probabilities (clipped: Keras), q^gamma, alpha_t where the point balances, the normalizer, then
    per-sample weights and the reduction (a mean elementwise, `sum` and `none` per sample where Keras
    averages the last axis; a sum whatever was asked with `sums`). None where the framework has no ops
    table, the batch is empty or per-sample weights meet a scalar."""
    op = elementwise.ops(framework, case)
    if op is None:
        return None
    lines = elementwise.targets(op)
    if case.from_logits:
        lines += [f"logits = {op.tensor('x')}", f"p = {op('sigmoid', 'logits')}"]
        lines.append(f"q = target * {op('sigmoid', '-logits')} + (1 - target) * p  # 1 - p_t")
        if knobs.sigmoid_clip:  # Keras on JAX: the BCE of sigmoid(x) clipped, as of probabilities
            clip, bce = _bce_of_p(op, knobs.switched("probabilities", "clip"))
        else:
            clip, bce = [], f"{op('relu', 'logits')} - target * logits + {op('log1p', op('exp', '-' + op('abs', 'logits')))}"
    else:
        lines += [f"p = {op.tensor('x')}", "q = target * (1 - p) + (1 - target) * p  # 1 - p_t"]
        clip, bce = _bce_of_p(op, knobs)
    lines += [*clip, f"bce = {bce}"]
    factor = f"q ** {case.gamma!r} * bce"
    if knobs.balancing is not None:
        alpha = knobs.balancing
        factor = f"({alpha!r} * target + {1 - alpha!r} * (1 - target)) * {factor}"
    lines.append(f"element = {factor}")
    if case.normalizer is not None:
        lines.append(f"element = element / {case.normalizer!r}  # the normalizer")
    reduction = "sum" if knobs.sums else case.reduction
    reduced = elementwise.reduced(op, knobs, knobs.last_axis_mean and reduction != "mean", reduction)
    return None if reduced is None else "\n".join(lines + reduced)


def _bce_of_p(op: elementwise.Ops, knobs: Knobs) -> tuple[list[str], str]:
    """The BCE of `p` as `knobs` take probabilities (Keras clips them to [eps, 1 - eps]): its lines and expression."""
    clip, log_p, log_q = elementwise.probability_logs(op, knobs, "p")
    return clip, f"-({elementwise.xlog(op, knobs, 'target', log_p)} + {elementwise.xlog(op, knobs, '(1 - target)', log_q)})"


def port(case: Case, own: Knobs, target: Knobs, model: Callable[[Knobs], Outcome]) -> dict[str, Any] | None:
    """The smallest change to a framework's own call: where only the denominator or Keras's last-axis
    mean moves the loss (`elementwise.port`)."""
    return elementwise.port(case, own, target, model)


# ---------------------------------------------------------------- explanations

PHRASES: dict[str, dict[Any, str]] = {
    **SHARED_PHRASES,
    "balancing": {
        None: "applies no class balancing",
        0.25: "weighs positives by alpha = 0.25, negatives by 0.75",
        0.5: "weighs both classes by 0.5 (alpha = 0.5)",
        0.75: "weighs positives by alpha = 0.75, negatives by 0.25",
    },
    "sigmoid_clip": {
        True: "clips sigmoid(x) to [eps, 1-eps] before its logs (a saturated logit's loss stops at -log eps)",
        False: "takes the logs of sigmoid(x) from the logits, unclipped",
    },
    "sums": {True: "sums whatever reduction is asked for", False: "reduces as asked"},
    "probabilities": {"none": "takes log p as given", "clip": "clips p to [eps, 1-eps]"},
    "last_axis_mean": {True: "averages the last axis into one value per sample", False: "keeps one value per element"},
}

KNOB_LABELS: dict[str, str] = {
    "balancing": "the class-balancing alpha applied",
    "sigmoid_clip": "the clip of sigmoid(x) before its logs",
    "sums": "a sum in place of the reduction asked for",
}

ALTERNATIVES: dict[str, list[Any]] = {
    "denominator": ["positions"],
    "empty_mean": ["nan", "zero"],
    "empty_batch": ["nan", "zero", "unreduced"],
    "probabilities": ["none", "clip"],
    "last_axis_mean": [False, True],
    "balancing": [None, 0.25, 0.5, 0.75],
    "sigmoid_clip": [False, True],
    "sums": [False, True],
}


# ---------------------------------------------------------------- the native calls, one module per framework


def variants(framework: str) -> list[Variant]:
    """The family's native calls in `framework` (`losses.package_variants`)."""
    return package_variants(__name__, framework)


# ---------------------------------------------------------------- the fuzzer's cases

LOGITS = [0.0, 1.0, -1.0, 2.0, 0.5, -3.0, 20.0, -30.0]
PROBS = [0.5, 0.25, 0.75, 0.1, 0.9, 0.0, 1.0]
TARGETS = [0.0, 1.0, 0.5, 0.25]
GAMMAS = [2.0, 0.0, 1.0, 0.5, 3.0]
ALPHAS = [None, 0.25, 0.5, 0.75, 0.0, 1.0]
SAMPLE_WEIGHTS = [1.0, 0.5, 2.0, 0.0]
SMOOTHING = [0.0, 0.1, 0.2]


def strategy() -> SearchStrategy[dict[str, Any]]:
    """Sigmoid focal cases as they would be written in YAML: logits or probabilities of small shapes
    (N, N x C, N x C x d), 0/1 labels or soft targets, gamma, alpha and each option from a small set.
    Simplest values first, so shrinking moves towards one sample of one logit 0, label 0, gamma 2."""
    from hypothesis import strategies as st

    @st.composite
    def case_specs(draw: Callable[..., Any]) -> dict[str, Any]:
        n = draw(st.integers(1, 4))
        shape = [n, *draw(st.sampled_from([[2], [3], [2, 2], []]))]
        spec: dict[str, Any] = {"id": "fuzz", "loss": NAME, **elementwise_inputs(draw, shape, LOGITS, PROBS, TARGETS)}
        spec["reduction"] = draw(st.sampled_from(["mean", "sum", "none"]))
        spec["gamma"] = draw(st.sampled_from(GAMMAS))
        alpha = draw(st.sampled_from(ALPHAS))
        if alpha is not None:
            spec["alpha"] = alpha
        smoothing = draw(st.sampled_from(SMOOTHING))
        if smoothing:
            spec["label_smoothing"] = smoothing
        if draw(st.booleans()) and len(shape) > 1:
            spec["sample_weight"] = draw(st.lists(st.sampled_from(SAMPLE_WEIGHTS), min_size=n, max_size=n))
        if draw(st.booleans()):
            spec["normalizer"] = draw(st.sampled_from([2.0, 0.5]))
        if draw(st.booleans()):
            spec["dtype"] = "float64"
        return spec

    return case_specs()
