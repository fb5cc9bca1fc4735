"""A float64 NumPy model of classification losses with named semantic knobs.

Every framework variant declares the point of this knob space its documentation describes
(`Variant.knobs`); the model evaluated at that point is the variant's *documented formula*, so a
framework value that differs from it is either a false declaration or a framework bug. The textbook
point (`textbook`) is the `reference` result: for softmax cross-entropy ONNX `SoftmaxCrossEntropyLoss`
(opset 13), extended with smoothing and probability targets the way torch documents them.

This module holds what every loss family shares: the knobs, the outcome, rounding to the case dtype,
the reductions. Each family evaluates itself (`conformance.losses`: `evaluate`, `textbook`,
`recipe_source`); the functions here dispatch through the case's family and never name one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any, Literal, cast

import numpy as np

from conformance import losses

if TYPE_CHECKING:
    from conformance.cases import Case

WeightMode = Literal["per_class", "from_label", "from_hard_label"]
Denominator = Literal["target_weight", "label_weight", "valid_count", "positions", "applied_weight", "nonzero_weight"]
EmptyMean = Literal["nan", "zero"]
EmptyBatch = Literal["nan", "zero", "unreduced"]
ProbHandling = Literal["renormalise", "none", "renormalise_then_clip", "clip_then_renormalise", "clip"]


@dataclass(frozen=True)
class Knobs:
    """The semantic choices on which cross-entropy implementations differ.

    weight_mode: how class weights w enter a position's loss.
        per_class: sum_c w_c q_c (-lp_c) (torch: weight inside the smoothed sum);
        from_label: (w . q) * H(q, p) (paddle: weight computed from the smoothed/soft label);
        from_hard_label: w[y] * H(q, p) (Keras sample_weight = weight[label]; argmax for soft labels).
    denominator: what `mean` divides by.
        target_weight: sum of w[y] over non-ignored positions (count when unweighted);
        label_weight: sum of w . q over positions; valid_count: non-ignored positions;
        positions: every position N * d1 * ... * dk, ignored ones included (Keras: every per-sample value);
        applied_weight: sum of the weights applied per position (sample weights, and class weights where
        they are passed as sample weights), non-ignored only; nonzero_weight: how many of those are != 0.
    empty_mean: a mean whose denominator is 0 (all ignored, zero weights): 0/0 = NaN (its gradient NaN
        on the positions that were not ignored, as autograd gives 0 * (1/0)), or 0.
    empty_batch: a reduction over no positions at all: NaN (a mean; a sum is 0), 0, or the empty array
        returned unreduced (Keras).
    probabilities: for probability inputs, how log p is formed (renormalise: log(p / sum p);
        none: log p; renormalise_then_clip: Keras CCE; clip_then_renormalise: Keras SCCE;
        clip: Keras BCE, p clipped to [eps, 1-eps]).
    clip_eps: the clip of the *clip* modes (Keras epsilon).
    logit_floor: shifted logits x - max(x) are clipped at -logit_floor (paddle CPU: 64), None: exact.
    ignore_smoothed: whether ignored positions still contribute when smoothing is on.
    weights_as_sample_weights: class (or element) weights are handed to the API as its sample
        weights, so they count in the applied_weight / nonzero_weight denominators (TensorFlow).
    log_clamp: binary cross-entropy on probabilities clamps each log at -log_clamp (torch, paddle: 100).
    last_axis_mean: binary cross-entropy averages the last axis into one value per sample before
        weighting and reducing (Keras), instead of reducing elements directly.
    own: the knobs a loss family adds for itself (its `KNOBS`: name -> default, e.g. focal loss's
        class balancing), as sorted (name, value) pairs; read as attributes like the shared ones, a
        family knob not set here reads as its family's default. Build with `Knobs.of`.
    """

    weight_mode: WeightMode = "per_class"
    denominator: Denominator = "target_weight"
    empty_mean: EmptyMean = "nan"
    empty_batch: EmptyBatch = "nan"
    probabilities: ProbHandling = "renormalise"
    clip_eps: float = 1e-7
    logit_floor: float | None = None
    ignore_smoothed: bool = False
    weights_as_sample_weights: bool = False
    log_clamp: float | None = None
    last_axis_mean: bool = False
    own: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def of(cls, values: Mapping[str, Any] | None = None, **more: Any) -> Knobs:
        """Knobs from names and values, shared and family knobs alike (what `as_dict` gives back)."""
        given = {**(values or {}), **more}
        shared = {k: v for k, v in given.items() if k in _SHARED}
        unknown = set(given) - _SHARED - set(family_knobs())
        if unknown:
            raise TypeError(f"unknown knobs: {', '.join(sorted(unknown))}")
        return cls(**shared, own=tuple(sorted((k, v) for k, v in given.items() if k not in _SHARED)))

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "own":
            raise AttributeError(name)
        own = dict(self.own)
        if name in own:
            return own[name]
        defaults = family_knobs()
        if name in defaults:
            return defaults[name]
        raise AttributeError(f"no knob {name!r}")

    def as_dict(self) -> dict[str, object]:
        """Every knob set, shared and family knobs flat (`Knobs.of` reads it back)."""
        return {**{k: v for k, v in vars(self).items() if k != "own"}, **dict(self.own)}

    def switched(self, knob: str, value: Any) -> Knobs:
        """These knobs with one of them set otherwise."""
        if knob in _SHARED:
            return replace(self, **{knob: value})
        return Knobs.of(self.as_dict(), **{knob: value})


_SHARED = frozenset(f.name for f in fields(Knobs)) - {"own"}


def family_knobs() -> dict[str, Any]:
    """Every loss family's own knobs (`KNOBS`) and their defaults."""
    return losses.knobs()


def knob_names() -> list[str]:
    """The shared knobs, then every family's own, in the order explanations try them."""
    return [f.name for f in fields(Knobs) if f.name != "own"] + list(family_knobs())


# What a framework does at the values of the knobs every cross-entropy family reads, in the words of an
# explanation; each family adds the phrases of its own knobs (`PHRASES` of conformance/losses/*).
SHARED_PHRASES: dict[str, dict[Any, str]] = {
    "denominator": {
        "positions": "divides the mean by the number of positions",
        "applied_weight": "divides by the sum of the applied weights",
        "nonzero_weight": "divides by the number of non-zero weights",
    },
    "empty_mean": {"nan": "gives NaN for 0/0", "zero": "gives 0 for 0/0"},
    "empty_batch": {
        "nan": "gives NaN for an empty batch",
        "zero": "gives 0 for an empty batch",
        "unreduced": "returns an empty batch unreduced",
    },
    "weights_as_sample_weights": {
        True: "counts class weights among the applied weights",
        False: "does not count class weights among the applied weights",
    },
}

# Each knob's name in plain words, for readers who do not know the model (the report shows the internal
# name on hover); a family names its own knobs (`KNOB_LABELS` of conformance/losses/*).
SHARED_KNOB_LABELS: dict[str, str] = {
    "weight_mode": "how class weights meet the label",
    "denominator": "what the mean divides by",
    "empty_mean": "a mean of nothing (0/0)",
    "empty_batch": "an empty batch",
    "probabilities": "how probabilities become log-probabilities",
    "clip_eps": "the probability clip",
    "logit_floor": "the clip of shifted logits",
    "ignore_smoothed": "ignored positions under smoothing",
    "weights_as_sample_weights": "class weights passed as sample weights",
    "log_clamp": "the clamp of log p",
    "last_axis_mean": "averaging the last axis first",
}


def knob_labels() -> dict[str, str]:
    """knob -> its plain name: the shared knobs', then every family's own (`KNOB_LABELS`), first declaration kept."""
    out = dict(SHARED_KNOB_LABELS)
    for family in losses.families().values():
        for knob, label in family.KNOB_LABELS.items():
            out.setdefault(knob, label)
    return out


TEXTBOOK = Knobs()


def textbook(case: Case) -> Knobs:
    """The textbook point for a case, as its loss family defines it (softmax: class weight per class,
    mean / sum of target weights for class indices, / positions for probability targets or per-sample
    weights; binary: mean over all elements, no clamp)."""
    return case.family.textbook(case)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Outcome:
    """A float64 loss (scalar or per position) and its gradient w.r.t. the predictions.

    read: the knobs the evaluation looked at; the others cannot change this case's outcome (an
    explanation need not evaluate them to know their effect is nil).
    """

    loss: np.ndarray
    grad: np.ndarray
    denominator: float | None = None
    read: frozenset[str] = frozenset()


class _Reading:
    """Knobs that note which of them are read."""

    def __init__(self, knobs: Knobs) -> None:
        self.knobs = knobs
        self.read: set[str] = set()

    def __getattr__(self, name: str) -> object:
        self.read.add(name)
        return getattr(self.knobs, name)


def rounded(case: Case, array: np.ndarray, key: str | None = None) -> np.ndarray:
    """`array` rounded to its dtype and back, so the model sees what the frameworks see: the dtype of
    the case key `key` (`case.dtype_of`: an array `dtype:` maps has its own), by default the case's."""
    dtype = case.dtype_of(key)
    if dtype == "bfloat16":
        bits = np.asarray(array, dtype=np.float32).view(np.uint32)
        bits = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16 << 16).astype(np.uint32)
        return bits.view(np.float32).astype(np.float64)
    return np.asarray(array, dtype=dtype).astype(np.float64)


def mean_denominator(case: Case, own_mean: Denominator) -> Denominator:
    """The denominator for the case's reduction: the framework's own `mean`, or an explicit one."""
    return {
        "sum_over_batch_size": "positions",
        "mean_with_sample_weight": "applied_weight",
        "sum_by_nonzero_weights": "nonzero_weight",
    }.get(case.reduction, own_mean)  # type: ignore[return-value]


def evaluate(case: Case, knobs: Knobs = TEXTBOOK) -> Outcome:
    """The loss of `case` under `knobs`, in float64, by the case's loss family (noting the knobs it read)."""
    if not case.check_shapes:
        raise ValueError("the case's shapes are mismatched on purpose (check_shapes: false): no formula applies")
    reading = _Reading(knobs)
    outcome = case.family.evaluate(case, cast("Knobs", reading))  # it reads as Knobs do, and records which
    return replace(outcome, read=frozenset(reading.read))


def recipe_source(case: Case, knobs: Knobs, probabilities: bool = False) -> list[str] | None:
    """NumPy lines that build the target `T` (classes last) and the denominator `D` of `knobs`'
    semantics, so any framework's soft-label cross-entropy, sum(T * -log_softmax) / D, reproduces it;
    None where the case's family has no such recipe (binary cross-entropy) or the case has none.
    `probabilities`: the caller forms log p of probability inputs itself, as the family's
    `probability_steps(knobs)` says, so a family that has those steps gives T and D for them too."""
    source = case.family.recipe_source
    if source is None:
        return None
    if case.from_logits or not probabilities:
        return source(case, knobs)  # type: ignore[no-any-return]
    return source(case, knobs, probabilities=True) if case.family.probability_steps is not None else None


# ---------------------------------------------------------------- shared by the families' evaluations


def clip_bounds(case: Case, knobs: Knobs) -> tuple[float, float]:
    """[eps, 1-eps] as the framework holds them: in the case dtype (float32: 1-1e-7 is 1-1.19e-7)."""
    lo, hi = rounded(case, np.array([knobs.clip_eps, 1.0 - knobs.clip_eps]))
    return float(lo), float(hi)


def batch_aligned(weights: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    """Per-sample weights (N,) spread over an array of `shape` whose first axis is the batch (ones where
    there are none)."""
    if weights is None:
        return np.ones(shape)
    if not shape:
        raise ValueError("per-sample weights need a batch axis")
    return np.broadcast_to(weights.reshape((-1,) + (1,) * (len(shape) - 1)), shape)


def divided(total: float, denom: float, knobs: Knobs) -> tuple[np.ndarray, float]:
    """A mean-like reduction and the factor its gradient carries; 0/0 follows `empty_mean`."""
    if denom == 0:
        return (np.array(np.nan), np.nan) if knobs.empty_mean == "nan" else (np.array(0.0), 0.0)
    return np.array(total / denom), 1.0 / denom


def empty_batch(case: Case, knobs: Knobs) -> np.ndarray:
    """The reduction of no positions at all, as `knobs.empty_batch` says (a sum is 0)."""
    if knobs.empty_batch == "unreduced":
        return np.zeros((0,))
    if case.reduction == "sum" or knobs.empty_batch == "zero":
        return np.array(0.0)
    return np.array(np.nan)
