"""Native recipes of the elementwise binary losses (binary cross-entropy, sigmoid focal loss).

A recipe is another framework's documented semantics (a knob point of the float64 model) written in a
framework's own ops, so that framework reproduces it: the ops are the `OPS` table of its framework module
(`conformance/adapters/<framework>.py`; a framework without one has no recipes here). Both families
build their per-element loss from the same pieces, in the order their `evaluate` takes them: the targets
(smoothed towards 0.5), the logs (Keras's clip of p, torch's and paddle's clamp of log p), per-sample
weights, Keras's mean over the last axis, and the reduction with the target's denominator computed in
NumPy. Their smallest change (`port`) is here too: where only the denominator or Keras's last-axis mean
moves the loss, the reader's own call, summed and divided, or averaged over its last axis.

NumPy only at module level, as every family module (the framework is imported by the worker that runs
the code).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from conformance import registry
from conformance.reference import Knobs, Outcome, knob_names

if TYPE_CHECKING:
    from conformance.cases import Case

# The knobs a smallest change can move: what the mean divides by, and Keras's mean over the last axis.
PORTABLE = frozenset({"denominator", "weights_as_sample_weights", "empty_mean", "last_axis_mean"})


class Ops:
    """A framework's `OPS` table applied to one case: expressions in its ops, and its tensors of the
    case's arrays (cast where the case's array is bfloat16, handed over as float32)."""

    def __init__(self, table: dict[str, str], case: Case) -> None:
        self.table = table
        self.case = case

    def __call__(self, op: str, *args: Any) -> str:
        return self.table[op].format(*args)

    def tensor(self, name: str, key: str | None = None, expression: str | None = None) -> str:
        """A tensor of the array `name` (the case key `key` gives its dtype), or of a NumPy `expression` of it."""
        text = self("tensor", expression or name)
        return self("bfloat16", text) if self.case.dtype_of(key) == "bfloat16" else text


def ops(framework: str, case: Case) -> Ops | None:
    """The framework's ops for the case, or None where no recipe is written: a framework without an
    `OPS` table, or an empty batch (its value is a convention of the API, not a formula)."""
    table = registry.framework(framework).OPS
    if table is None or case.predictions.size == 0:
        return None
    return Ops(table, case)


def targets(op: Ops) -> list[str]:
    """`target`: the labels or soft targets, smoothed towards 0.5 as Keras does (z = y (1 - eps) + eps / 2)."""
    case = op.case
    name, key = ("y", "labels") if case.labels is not None else ("t", "soft_labels")
    lines = [f"target = {op.tensor(name, key)}"]
    if case.label_smoothing:
        eps = case.label_smoothing
        lines.append(f"target = target * (1 - {eps!r}) + 0.5 * {eps!r}  # smoothed towards 0.5")
    return lines


def softplus_of_negative(op: Ops, x: str) -> str:
    """-log sigmoid(x) = log(1 + exp(-x)) without overflow: relu(-x) + log1p(exp(-|x|))."""
    return f"{op('relu', '-' + x)} + {op('log1p', op('exp', '-' + op('abs', x)))}"


def probability_logs(op: Ops, knobs: Knobs, p: str) -> tuple[list[str], str, str]:
    """Lines and the expressions of log p and log(1 - p) for probabilities `p` as `knobs` take them:
    Keras clips p to [eps, 1 - eps] (the bounds in the case dtype), torch and paddle clamp each log at
    -log_clamp, else the plain logs (a 0 log 0 term is masked by the caller)."""
    if knobs.probabilities == "clip":
        eps = knobs.clip_eps
        line = f"p = {op('clip', p, repr(eps), f'1 - {eps!r}')}  # p clipped to [eps, 1 - eps]"
        return [line], op("log", "p"), op("log", "1 - p")
    log_p, log_q = op("log", p), op("log", f"1 - {p}")
    if knobs.log_clamp is not None:
        floor = repr(-float(knobs.log_clamp))
        return [], op("at_least", log_p, floor), op("at_least", log_q, floor)
    return [], log_p, log_q


def xlog(op: Ops, knobs: Knobs, coefficient: str, log: str) -> str:
    """coefficient * log, with 0 * log 0 = 0 where the logs are neither clipped nor clamped."""
    if knobs.probabilities == "clip" or knobs.log_clamp is not None:
        return f"{coefficient} * {log}"
    return op("where", f"{coefficient} != 0", f"{coefficient} * {log}", op("zeros_like", "target"))


def reduced(op: Ops, knobs: Knobs, per_sample: bool, reduction: str) -> list[str] | None:
    """From `element` (one loss per element) to `loss`: Keras's mean over the last axis (`per_sample`),
    per-sample weights, then the reduction; a mean divides by the target's denominator, computed in
    NumPy from the case's arrays. None where the model has no value (per-sample weights on a scalar)."""
    case = op.case
    ndim = case.predictions.ndim - (1 if per_sample else 0)
    lines = [f"values = {op('mean_last', 'element')}  # one value per sample: the last axis averaged" if per_sample else "values = element"]
    if case.sample_weight is not None:
        if ndim == 0:
            return None
        lines.append(f"values = values * {op.tensor('sw', 'sample_weight', _aligned(ndim))}  # per-sample weights")
    if reduction == "none":
        return [*lines, "loss = values"]
    if reduction == "sum":
        return [*lines, f"loss = {op('sum', 'values')}"]
    return [*lines, *denominator(case, knobs, per_sample), f"loss = {op('sum', 'values')} / D"]


def _aligned(ndim: int) -> str:
    """`sw` (N,) reshaped to broadcast over values of `ndim` axes, batch first."""
    return "sw" + (f".reshape((-1{', 1' * (ndim - 1)}))" if ndim > 1 else "")


def denominator(case: Case, knobs: Knobs, per_sample: bool) -> list[str]:
    """NumPy lines computing `D`, what the mean of `knobs` divides by (a 0/0 as `empty_mean` says)."""
    size = "x.size // x.shape[-1]" if per_sample else "x.size"
    if knobs.denominator not in ("applied_weight", "nonzero_weight"):
        lines = [f"D = {size}  # the number of {'samples (positions without the last axis)' if per_sample else 'elements'}"]
    else:
        shape = "x.shape[:-1]" if per_sample else "x.shape"
        ndim = case.predictions.ndim - (1 if per_sample else 0)
        applied = f"np.ones({shape})"
        if case.sample_weight is not None:
            applied = f"np.broadcast_to({_aligned(ndim)}.astype(np.float64), {shape})"
        lines = [f"applied = {applied}  # the weights the reduction sees"]
        if knobs.weights_as_sample_weights and not per_sample and case.weight is not None:
            lines.append("applied = applied * np.broadcast_to(w, x.shape)  # element weights passed as sample weights")
        if knobs.denominator == "applied_weight":
            lines.append("D = float(applied.sum())  # the sum of the applied weights")
        else:
            lines.append("D = float(np.count_nonzero(applied))  # the number of non-zero applied weights")
    if knobs.empty_mean == "zero":
        lines.append("D = D or np.inf  # 0/0 is taken as 0")
    return lines


# ---------------------------------------------------------------- the smallest change


def port(case: Case, own: Knobs, target: Knobs, model: Callable[[Knobs], Outcome]) -> dict[str, Any] | None:
    """The smallest change to a framework's own call (documented at `own`) giving `target`'s loss, for
    `adapters.smallest_change`: where only the denominator moves, the same call summed and divided by
    the target's `D` (counted in the call's own values: per sample where it averages the last axis);
    where only Keras's mean over the last axis moves, a sum divided by C (or multiplied by it) and an
    elementwise `none` averaged over its last axis. None where another knob moves the loss (a clip, a
    clamp, class balancing): the general recipe covers it."""
    if case.predictions.size == 0:
        return None
    base = model(own).loss

    def moves(knob: str) -> bool:
        switched = model(own.switched(knob, getattr(target, knob))).loss
        return np.shape(switched) != np.shape(base) or not np.allclose(switched, base, rtol=1e-9, atol=0, equal_nan=True)

    moving = [k for k in knob_names() if getattr(own, k) != getattr(target, k) and moves(k)]
    if not moving or set(moving) - PORTABLE:
        return None
    if "last_axis_mean" in moving:
        return _per_sample(case, own, target, moving)
    if case.reduction in ("none", "sum"):
        return None
    at = target.switched("last_axis_mean", own.last_axis_mean)  # the target's divisor, in the call's own values
    note = "; ".join(_said(k, getattr(target, k)) for k in moving)
    return {"soft": False, "lines": denominator(case, at, own.last_axis_mean), "divide": True, "note": note}


def _per_sample(case: Case, own: Knobs, target: Knobs, moving: list[str]) -> dict[str, Any] | None:
    """Keras's mean over the last axis, alone: a sum is the elementwise sum / C; `none` the elementwise
    values averaged over the last axis (the other way, Keras has no elementwise values to give)."""
    if moving != ["last_axis_mean"] or case.reduction not in ("none", "sum"):
        return None
    c = case.predictions.shape[-1]
    if case.reduction == "none":
        if own.last_axis_mean:
            return None
        return {"soft": False, "lines": [], "divide": False, "after": ["loss = loss.mean(axis=-1)"], "note": _said("last_axis_mean", True)}
    if target.last_axis_mean:
        lines = [f"D = x.shape[-1]  # C = {c}: the sum of per-sample means is the elementwise sum / C"]
    else:
        lines = [f"D = 1 / x.shape[-1]  # C = {c}: the elementwise sum is C times the sum of per-sample means"]
    return {"soft": False, "lines": lines, "divide": True, "note": _said("last_axis_mean", target.last_axis_mean)}


def _said(knob: str, value: Any) -> str:
    from conformance import losses

    return losses.phrases().get(knob, {}).get(value, f"{knob} = {value}")
