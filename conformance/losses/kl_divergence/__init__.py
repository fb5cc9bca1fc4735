"""KL divergence (knowledge distillation): predictions (N, C, d1, ..., dk) with the class axis 1, as in
torch and ONNX; targets `soft_labels`, a distribution over the class axis. Logits are turned into
log-probabilities by log_softmax over the classes (softmax for Keras); probabilities are taken as given
(`log p` for torch, paddle and optax, `p` for Keras).

    KL(t || p) = sum_c t_c (log t_c - log p_c), one value per position (a sample and its d1...dk)

The frameworks agree on that sum and differ in what surrounds it (the knobs):
- the denominator of `mean`: torch and paddle average every element, classes included (their docs say
  `mean` is not the KL value; `batchmean` is); Keras and optax's `jnp.mean` average per-position sums;
  `batchmean` divides by the batch size N (Keras has none: its default `sum_over_batch_size` divides by
  the positions N x d1 ... dk, the same on (N, C));
- `clip_predictions`: Keras clips the predictions to [epsilon, 1] before the log (no inf; a clipped
  prediction has no gradient);
- `zero_target`: what a target of exactly 0 contributes: torch's `xlogy` (0 log 0 = 0, but 0 times the
  -inf log of a zero probability is NaN), paddle's kernel returns 0 for it whatever the prediction, the
  log-target forms give NaN (exp(-inf) * (-inf - log p)), and Keras clips the targets to [epsilon, 1]
  too, so a zero target weighs epsilon (`clipped`);
- `unreduced`: `reduction='none'` returns every element (torch, paddle) or the per-position sums
  (Keras, optax).
- `logit_floor` (shared with cross-entropy): paddle's CPU log_softmax clips the shifted logits at -64;
- `empty_batch` (shared): N = 0 gives NaN for a mean, 0 for a sum, and Keras its empty batch unreduced.

No API takes class weights (torch and paddle `KLDivLoss`, Keras `KLDivergence`, optax `kl_divergence`
have none), so `weight` is refused; `sample_weight` is Keras's per-sample weight, the reduction='none'
recipe elsewhere. The model's gradient is analytic (w.r.t. the logits through log_softmax or softmax,
w.r.t. probabilities directly), not a finite difference.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from conformance import registry
from conformance.losses import (
    COMMON_PARAMETERS,
    Fail,
    Generated,
    array,
    deep_numbers,
    generated,
    generated_predictions,
    generated_sources,
    given_predictions,
    nested,
    package_variants,
    probabilities,
    probability_lines,
    seed_of,
)
from conformance.reference import SHARED_PHRASES, Knobs, Outcome, batch_aligned, clip_bounds, divided, empty_batch, rounded

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy

    from conformance.adapters import Variant
    from conformance.cases import Case

NAME = "kl_divergence"
ORDER = 30
FIELDS: dict[str, tuple[Any, Any]] = {}
REDUCTIONS = ("batchmean",)
ARRAYS: dict[str, str] = {}
CLASS_AXIS = 1
RECIPES = "recipes cover every case but an empty batch and bfloat16"
INDEX_LABELS = False
PARAMETERS = dict(COMMON_PARAMETERS)  # what reaches a user's loss function (`--variant`): the reduction, sample weights
TAKES = ("none", "mean", "sum", "batchmean")
KNOBS: dict[str, Any] = {"clip_predictions": False, "zero_target": "xlogy", "unreduced": "positions"}
KNOB_LABELS = {
    "clip_predictions": "the clip of the predictions",
    "zero_target": "what a zero target contributes",
    "unreduced": "what reduction 'none' returns",
}


# ---------------------------------------------------------------- the case's arrays


def build(spec: Any, fail: Fail) -> dict[str, Any]:
    """Predictions with a class axis 1 and soft targets of their shape; no class weights (no API has any)."""
    predictions, key = given_predictions(spec, fail, lambda shape: len(shape) >= 2 and shape[1] >= 1)
    if key is not None and (predictions.ndim < 2 or predictions.shape[1] < 1):
        raise fail(f"{key} must be (N, C) or (N, C, d1, ..., dk), class axis 1; got shape {list(predictions.shape)}", key)
    if spec.labels is not None:
        raise fail("kl_divergence compares distributions: give soft_labels (per-class probabilities), not labels", "labels")
    for key_, given, why in (
        (
            "weight",
            spec.weight is not None,
            "no KL divergence API takes class weights (KLDivLoss, KLDivergence, kl_divergence: none of them); "
            "per-sample weights are sample_weight",
        ),
        ("label_smoothing", bool(spec.label_smoothing), "kl_divergence has no label_smoothing (smooth the soft_labels)"),
        ("ignore_index", spec.ignore_index is not None, "kl_divergence has no ignore_index (its targets are distributions)"),
    ):
        if given:
            raise fail(why, key_)
    if spec.reduction not in TAKES:
        raise fail(f"kl_divergence takes the reductions {', '.join(TAKES)}; got '{spec.reduction}'", "reduction")
    soft = _targets(spec, predictions, fail)
    built = {"predictions": predictions, "from_logits": key != "probs", "labels": None, "soft_labels": soft, "weight": None}
    if spec.check_shapes is False:  # targets of another shape on purpose: kept, every framework expected to raise
        built["mismatched"] = ["soft_labels"] if soft.shape != predictions.shape else []
    return built


def _targets(spec: Any, predictions: np.ndarray, fail: Fail) -> np.ndarray:
    if spec.soft_labels == "random":  # as softmax cross-entropy draws them: a softmax over the classes
        seed = spec.random.seed if spec.random else 0
        return probabilities(np.random.default_rng(seed + 1).standard_normal(predictions.shape), CLASS_AXIS)
    if isinstance(spec.soft_labels, Generated):
        arr = generated("t", "soft_labels", spec.soft_labels, fail, normalise=CLASS_AXIS)[0]
    else:
        arr = array(deep_numbers(spec.soft_labels, fail, "soft_labels"), "soft_labels", fail, "soft_labels")
    if arr.shape != predictions.shape and spec.check_shapes is not False:
        raise fail(f"soft_labels have shape {list(arr.shape)}, expected the predictions' {list(predictions.shape)}", "soft_labels")
    if not np.all(np.isfinite(arr)) or np.any((arr < 0) | (arr > 1)):
        raise fail("soft_labels are per-class probabilities and must lie in [0, 1]", "soft_labels")
    return arr


def generated_source(case: Case) -> dict[str, list[str]]:
    """NumPy lines regenerating the generated arrays (`random` logits, `soft_labels: random`) as
    `build` drew them, so snippets need not write every element."""
    out = generated_sources(case, {"soft_labels": ("t", {"normalise": CLASS_AXIS})})
    if (x := generated_predictions(case)) is not None:
        out["x"] = x
    if case.params.get("soft_labels") == "random":
        shape = case.predictions.shape
        out["t"] = [f"t = np.random.default_rng({seed_of(case) + 1}).standard_normal({shape})", *probability_lines("t", shape, CLASS_AXIS)]
    return out


# ---------------------------------------------------------------- the float64 model


def textbook(case: Case) -> Knobs:
    """The KL divergence per distribution: `mean` averages the per-position sums, `batchmean` divides
    the sum by N (its definition in torch and paddle), 0 log 0 = 0, no clip, `none` per position."""
    return Knobs.of(denominator="batch" if case.reduction == "batchmean" else "positions", zero_target="masked")


def evaluate(case: Case, knobs: Knobs) -> Outcome:
    """sum_c t_c (log t_c - log p_c) per position under `knobs`, reduced; the analytic gradient."""
    x = rounded(case, case.predictions)
    t = rounded(case, case.targets, "soft_labels")
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if case.from_logits:
            z = x - x.max(axis=1, keepdims=True)
            if knobs.logit_floor is not None:  # paddle's CPU log_softmax clips the shifted logits
                z = np.maximum(z, -knobs.logit_floor)
            lp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
            p = np.exp(lp)
        else:
            p, lp = x, np.log(x)
        if knobs.zero_target == "clipped":  # Keras clips y_true to [eps, 1]: a zero target counts as eps
            t = np.maximum(t, clip_bounds(case, knobs)[0])
        if knobs.clip_predictions:
            element, upstream = _clipped(case, knobs, t, p, lp)
            from_lp = False
        else:
            element, upstream = _exact(knobs, t, lp)
            from_lp = case.from_logits
            if not case.from_logits:  # d/dp of -t log p; a term that is 0 whatever p has no gradient
                upstream = np.where(upstream == 0, 0.0, upstream / p)
    weights = batch_aligned(None if case.sample_weight is None else rounded(case, case.sample_weight, "sample_weight"), element.shape)
    with np.errstate(invalid="ignore", over="ignore"):  # inf * a zero weight is NaN, as in the frameworks
        scale, loss, denominator = _reduced(case, knobs, element * weights)
        grad = _to_predictions(case, p, upstream * weights * scale, from_lp)
    return Outcome(loss=loss, grad=grad, denominator=denominator)


def _exact(knobs: Knobs, t: np.ndarray, lp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """t (log t - lp) and its derivative w.r.t. lp (-t); a zero target as `zero_target` says."""
    positive = t > 0
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        element = np.where(positive, t * (np.log(np.where(positive, t, 1.0)) - lp), 0.0)
        d_lp = -t
        if knobs.zero_target in ("xlogy", "log_target"):  # 0 * (-inf): NaN, and so is its derivative 0 * (1 / 0)
            d_lp = np.where(positive | ~np.isinf(lp), d_lp, np.nan)
        if knobs.zero_target == "xlogy":  # xlogy(t, t) - t * lp: 0 for a finite lp
            element = np.where(positive | ~np.isinf(lp), element, np.nan)
        elif knobs.zero_target == "log_target":  # exp(log 0) * (log 0 - lp) = 0 * -inf, whatever lp
            element = np.where(positive, element, np.nan)
    return element, d_lp


def _clipped(case: Case, knobs: Knobs, t: np.ndarray, p: np.ndarray, lp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Keras: p clipped to [eps, 1] (eps in the case dtype) before the log, a clipped p passing no
    gradient; the upstream gradient is w.r.t. p. Unclipped values keep their exact logs, so where
    nothing is clipped this is `_exact` to the bit."""
    lo, _ = clip_bounds(case, knobs)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_p = np.where(p >= lo, np.minimum(lp, 0.0), np.log(lo))
        element, d_lp = _exact(knobs, t, log_p)
        live = (p >= lo) & (p <= 1.0)
        return element, np.where(live, d_lp / np.clip(p, lo, 1.0), 0.0)


def _reduced(case: Case, knobs: Knobs, element: np.ndarray) -> tuple[float, np.ndarray, float | None]:
    """The gradient's factor, the loss and the mean's denominator (None for none and sum)."""
    if case.reduction == "none":
        per = element if knobs.unreduced == "elements" else element.sum(axis=1)
        return 1.0, np.asarray(per, dtype=np.float64), None
    if element.shape[0] == 0:  # no sample: NaN for a mean, 0 for a sum, or Keras's empty array
        return 0.0, empty_batch(case, knobs), None
    if case.reduction == "sum":
        return 1.0, np.asarray(element.sum(), dtype=np.float64), None
    counts = {"elements": element.size, "batch": element.shape[0], "positions": element.size // element.shape[1]}
    if knobs.denominator not in counts:  # another family's denominator (an explanation trying it): no KL meaning
        raise ValueError(f"the denominator {knobs.denominator!r} has no meaning for kl_divergence")
    denom = float(counts[knobs.denominator])
    loss, factor = divided(float(element.sum()), denom, knobs)
    return factor, loss, denom


def _to_predictions(case: Case, p: np.ndarray, upstream: np.ndarray, from_lp: bool) -> np.ndarray:
    """The gradient w.r.t. what the case gives: through log_softmax (upstream w.r.t. lp) or softmax
    (upstream w.r.t. p) for logits; as is for probabilities."""
    if not case.from_logits:
        return np.asarray(upstream, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        if from_lp:
            return np.asarray(upstream - p * upstream.sum(axis=1, keepdims=True))
        return np.asarray(p * (upstream - (upstream * p).sum(axis=1, keepdims=True)))


# ---------------------------------------------------------------- the native calls, per framework


def variants(framework: str) -> list[Variant]:
    """The family's native calls in `framework` (`losses.package_variants`)."""
    return package_variants(__name__, framework)


# ---------------------------------------------------------------- shared by the framework modules


def documented(case: Case, mean: str, batchmean: str, **more: Any) -> Knobs:
    """A documented point: what `mean` and `batchmean` divide by (read for the case's reduction), and
    the other knobs the API's documentation gives."""
    return Knobs.of(denominator=batchmean if case.reduction == "batchmean" else mean, **more)


def sample_axes(case: Case, per_position: bool) -> str:
    """`sw` indexed to broadcast over a sample's values: its elements (N, C, d1, ...) or its positions
    (N, d1, ...), e.g. `sw[:, None, None]`."""
    trailing = case.predictions.ndim - (2 if per_position else 1)
    return "sw" + ("[:, " + ", ".join(["None"] * trailing) + "]" if trailing > 0 else "")


# ---------------------------------------------------------------- recipes

COUNTS = {"elements": "x.size", "batch": "x.shape[0]", "positions": "x.size // x.shape[1]"}


def native_recipe(framework: str, case: Case, knobs: Knobs) -> str | None:
    """`framework`'s code reproducing the KL semantics of `knobs` (another framework's documented point),
    in its own ops (`OPS` of its framework module), in the case's layout: the log-probabilities (paddle's
    logit floor, Keras's clip of p), the targets (Keras's clip), the elements as the target treats a zero
    target, per-sample weights, and the reduction with the target's denominator. The cross-entropy
    recipes do not apply: KL is a cross-entropy minus the targets' entropy. Keras's point (both clips) is
    written as Keras computes it, t log(t / p): in float16 the ratio overflows (t / p > 65504 gives inf,
    `kl_divergence.yaml` `kl_float16_ratio`) where t (log t - log p) does not, and the recipe must give
    Keras's value. None for an empty batch, bfloat16 (no NumPy literal), or a framework without an ops table."""
    op = registry.framework(framework).OPS
    if op is None or case.dtype == "bfloat16" or case.predictions.shape[0] == 0:
        return None
    eps = repr(knobs.clip_eps)
    lines = []
    if case.from_logits:
        lines.append(f"z = {op['tensor'].format('x')}")
        if knobs.logit_floor is not None:
            shifted = op["clip"].format("z - " + op["max1"].format("z"), -knobs.logit_floor, 0.0)
            lines.append(f"z = {shifted}  # shifted logits clipped at the floor")
        lines.append(f"log_probs = {op['log_softmax'].format('z')}")
    else:
        lines.append(f"log_probs = {op['log'].format(op['tensor'].format('x'))}")
    keras = knobs.clip_predictions and knobs.zero_target == "clipped"
    if keras:
        probs = op["exp"].format("log_probs") if case.from_logits else op["tensor"].format("x")
        lines.append(f"probs = {op['clip'].format(probs, eps, 1.0)}  # p clipped to [eps, 1]")
    elif knobs.clip_predictions:
        clipped = op["clip"].format(op["exp"].format("log_probs"), eps, 1.0)
        lines.append(f"log_probs = {op['log'].format(clipped)}  # p clipped to [eps, 1]")
    lines.append(f"target = {op['tensor'].format('t')}")
    if knobs.zero_target == "clipped":
        lines.append(f"target = {op['clip'].format('target', eps, 1.0)}  # targets clipped to [eps, 1]")
    safe_log = op["log"].format(op["where"].format("target > 0", "target", op["ones_like"].format("target")))
    elements = f"target * ({safe_log} - log_probs)"  # xlogy(t, t) - t log p: 0 * -inf is NaN
    if keras:
        elements = f"target * {op['log'].format('target / probs')}  # Keras's form: the ratio, which can overflow"
    elif knobs.zero_target == "masked":
        elements = op["where"].format("target > 0", elements, op["zeros_like"].format("target"))
    elif knobs.zero_target == "log_target":
        log_t = op["log"].format("target")
        elements = f"{op['exp'].format(log_t)} * ({log_t} - log_probs)"
    lines.append(f"elements = {elements}")
    if case.sample_weight is not None:
        lines.append(f"elements = elements * {op['tensor'].format(sample_axes(case, per_position=False))}")
    if case.reduction == "none":
        lines.append("loss = elements" if knobs.unreduced == "elements" else f"loss = {op['sum1'].format('elements')}")
    elif case.reduction == "sum":
        lines.append(f"loss = {op['sum'].format('elements')}")
    else:
        if knobs.denominator not in COUNTS:
            return None
        lines.append(f"D = {COUNTS[knobs.denominator]}  # {PHRASES['denominator'][knobs.denominator]}")
        lines.append(f"loss = {op['sum'].format('elements')} / D")
    return "\n".join(lines)


# ---------------------------------------------------------------- explanations

PHRASES: dict[str, dict[Any, str]] = {
    "denominator": {
        "elements": "divides the mean by the number of elements (N x C x d1 ...)",
        "batch": "divides by the batch size N",
        **SHARED_PHRASES["denominator"],
    },
    "clip_predictions": {True: "clips predictions to [eps, 1] before the log", False: "takes the log of the predictions unclipped"},
    "zero_target": {
        "xlogy": "computes 0 log 0 = 0 by xlogy, but 0 times the log of a zero probability is NaN",
        "masked": "counts a zero target as 0, whatever the prediction",
        "log_target": "takes log targets: a zero target is exp(-inf) * (-inf - log p) = NaN",
        "clipped": "clips targets to [eps, 1]: a zero target counts as eps",
    },
    "logit_floor": {64.0: "clips the shifted logits at -64 in log_softmax (its CPU kernel)"},
    "unreduced": {"elements": "returns every element for reduction 'none'", "positions": "returns per-position sums for reduction 'none'"},
    **{knob: SHARED_PHRASES[knob] for knob in ("empty_batch",)},
}

ALTERNATIVES: dict[str, list[Any]] = {
    "denominator": ["positions", "elements", "batch"],
    "clip_predictions": [False, True],
    "zero_target": ["masked", "xlogy", "log_target", "clipped"],
    "unreduced": ["positions", "elements"],
    "logit_floor": [None, 64.0],
    "empty_batch": ["nan", "zero", "unreduced"],
}


# ---------------------------------------------------------------- the fuzzer's cases

LOGITS = [0.0, 1.0, -1.0, 2.0, 0.5, -3.0, 20.0, -40.0]
PROBS = [0.5, 0.25, 0.125, 0.0, 1.0]
TARGETS = [0.5, 0.25, 0.0, 1.0]
SAMPLE_WEIGHTS = [1.0, 0.5, 2.0, 0.0]


def strategy() -> SearchStrategy[dict[str, Any]]:
    """KL divergence cases as written in YAML: logits or probabilities of (N, C) or (N, C, 2), targets
    from a small grid (not normalised: the formula does not need it), each option from a small set.
    Simplest values first, so shrinking moves towards one sample of two classes, logits 0, targets 0.5."""
    from hypothesis import strategies as st

    @st.composite
    def case_specs(draw: Callable[..., Any]) -> dict[str, Any]:
        n, c = draw(st.integers(1, 4)), draw(st.integers(2, 4))
        shape = [n, c, *draw(st.sampled_from([[], [2]]))]
        spec: dict[str, Any] = {"id": "fuzz", "loss": NAME, "reduction": draw(st.sampled_from(["mean", "batchmean", "sum", "none"]))}
        if draw(st.booleans()):
            spec["probs"] = draw(nested(st.sampled_from(PROBS), shape))
        else:
            spec["logits"] = draw(nested(st.sampled_from(LOGITS), shape))
        spec["soft_labels"] = draw(nested(st.sampled_from(TARGETS), shape))
        if draw(st.booleans()):
            spec["sample_weight"] = draw(st.lists(st.sampled_from(SAMPLE_WEIGHTS), min_size=n, max_size=n))
        if draw(st.booleans()):
            spec["dtype"] = "float64"
        return spec

    return case_specs()
