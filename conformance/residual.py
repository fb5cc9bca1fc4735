"""What the numbers say about a difference that no knob setting explains.

A user's function that no point of the knob model reproduces still differs from a documented formula
in ways its numbers show: values of another shape, labels shifted by one position, a constant factor
(and which count of the case it equals: N, C, N*C, the non-ignored positions, the sum of weights), a
constant offset, or a few positions only. Each test below reads b's loss and gradient against the
model's at a's documented point; a test that does not hold says nothing, so every sentence here is a
property of the numbers, and where none holds the caller says that the numbers do not tell.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from conformance import reference
from conformance.compare import difference

if TYPE_CHECKING:
    from conformance.cases import Case

COUNT_RTOL = 1e-4  # a factor "equals" a count within this: float32 values give ratios good to ~1e-6
SHOWN_POSITIONS = 4  # positions listed by index; more are counted


@dataclass(frozen=True)
class Residual:
    """Sentences about b's values against a's documented ones (each a property of the numbers), and the
    same facts as JSON-ready data for results.json (`fit.residual`)."""

    sentences: tuple[str, ...] = ()
    facts: dict[str, Any] = field(default_factory=dict)
    complete: bool = False
    """Whether the sentences account for every value (a factor, an offset, a shift, a reduction of another
    shape): then no knob setting is a further reason."""


def counts(case: Case) -> list[tuple[str, float]]:
    """The counts of a case a factor may equal, each with its name in the explanations' words."""
    x = case.predictions
    classes = case.num_classes
    out: list[tuple[str, float]] = []
    if x.ndim:
        out.append(("N (the batch size)", x.shape[0]))
    out.append(("C (the number of classes)", classes))
    if x.ndim == 2:
        out.append(("N*C (every element of the predictions)", x.size))
    elif x.ndim > 2:
        out.append(("N*C", x.shape[0] * classes))
        out.append(("every element of the predictions", x.size))
        if case.family.CLASS_AXIS is not None:
            out.append(("N*d1*... (the number of positions)", x.size // max(classes, 1)))
            out.extend((f"d{k - 1} (the size of the predictions' axis {k})", x.shape[k]) for k in range(2, x.ndim))
    labels = case.labels if case.family.INDEX_LABELS else None
    valid = None if labels is None else (labels != case.ignore_index if case.ignore_index is not None else np.ones(labels.shape, bool))
    if valid is not None and case.ignore_index is not None:
        out.append(("the number of non-ignored positions", int(valid.sum())))
    weight = case.weight
    if weight is not None and np.ndim(weight) == 1:
        if labels is not None and valid is not None:
            inside = valid & (labels >= 0) & (labels < weight.size)
            out.append(("the sum of target weights w[y]", float(weight[labels[inside]].sum())))
        out.append(("the sum of the class weights", float(weight.sum())))
    if case.sample_weight is not None:
        out.append(("the sum of the sample weights", float(np.sum(case.sample_weight))))
    return out


def equal_counts(case: Case, value: float, rtol: float = 0.0) -> list[tuple[str, float]]:
    """The case's counts equal to `value` (within COUNT_RTOL, or the case's `rtol` where wider: a ratio of
    float16 values is good to its rounding only), with their values."""
    if not np.isfinite(value) or value <= 0:
        return []
    within = max(COUNT_RTOL, rtol)
    return [(name, count) for name, count in counts(case) if count > 0 and abs(count - value) <= within * max(count, value)]


def _said(value: float, named: list[tuple[str, float]]) -> str:
    """`value`, and the counts it equals ("6 = N*C"); a measured value off its count by rounding shows both."""
    if not named:
        return f"{value:.6g}"
    exact = named[0][1]
    measured = "" if abs(exact - value) <= 1e-6 * exact else f" ({value:.6g} as measured)"
    return f"{exact:g}{measured} = " + " = ".join(name for name, _ in named)


def characterise(
    case: Case,
    loss: Any,
    grad: Any,
    base: reference.Outcome,
    knobs: reference.Knobs,
    names: tuple[str, str, str],
    tol: dict[str, float],
    denominator: str | None = None,
    closer: tuple[reference.Knobs, ...] = (),
) -> Residual:
    """What b's `loss` and `grad` are, measured against `base` (the model at a's documented `knobs`):
    the first of: another shape, shifted labels (possibly with a factor), a constant factor, a constant
    offset; then, where none holds, the positions that differ. `names`: (b, a, how a's values are named:
    "torch's", or "torch's documented" where a is off its documented formula); `denominator`: a's mean's
    denominator in words, where it has one; `closer`: other knob points (the fit's closest) at which a case
    parameter set otherwise is also tried."""
    b, a, theirs = names
    t_loss, m_loss = np.asarray(loss, dtype=np.float64), np.asarray(base.loss, dtype=np.float64)
    t_grad = None if grad is None else np.asarray(grad, dtype=np.float64)
    m_grad = np.asarray(base.grad, dtype=np.float64)
    if t_grad is not None and t_grad.size != m_grad.size:
        t_grad = None
    if t_loss.size != m_loss.size:
        return _shape(case, t_loss, m_loss, t_grad, m_grad, (b, a, theirs), tol)
    shifted = _shift(case, knobs, t_loss, t_grad, (b, a, theirs), tol, denominator)
    if shifted is not None:
        return shifted
    scaled = _factor_sentence(case, t_loss, m_loss, t_grad, m_grad, (b, a, theirs), tol, base.denominator, denominator)
    if scaled is not None:
        return scaled
    offset = _offset(t_loss, m_loss, t_grad, m_grad, tol)
    if offset is not None:
        why = "its gradient agrees" if t_loss.size == 1 else "the same at every position"
        return Residual((f"{b}'s loss is {theirs} plus a constant {offset:.6g} ({why})",), {"offset": offset}, complete=True)
    for point in (knobs, *closer):
        found = _parameter(case, point, knobs, t_loss, t_grad, (b, a, theirs), tol)
        if found is not None:
            return found
    return _positions(case, t_loss, m_loss, t_grad, m_grad, b, tol)


# ---------------------------------------------------------------- the tests


def _close(t: np.ndarray, m: np.ndarray, tol: dict[str, float]) -> np.ndarray:
    """Elementwise agreement as `compare.difference` has it (NaN with NaN, an infinity with its own sign)."""
    with np.errstate(invalid="ignore", over="ignore"):
        gap = np.abs(t - m)
        bound = tol.get("atol", 0.0) + tol.get("rtol", 0.0) * np.maximum(np.abs(t), np.abs(m))
        same = (np.isnan(t) & np.isnan(m)) | (np.isinf(t) & np.isinf(m) & (np.sign(t) == np.sign(m)))
        return same | (gap <= bound)  # type: ignore[no-any-return]


def _agree(t: np.ndarray, m: np.ndarray, tol: dict[str, float]) -> bool:
    return difference(t, m, **tol).agree


def _ratio(pairs: list[tuple[np.ndarray, np.ndarray]], tol: dict[str, float]) -> tuple[float, int] | None:
    """The constant factor r with t = r * m in every pair (least squares over the finite elements, then
    checked elementwise at the tolerance), and on how many non-zero elements it rests; None if none."""
    ts, ms = [], []
    for t, m in pairs:
        t, m = t.reshape(-1), m.reshape(-1)
        finite = np.isfinite(t) & np.isfinite(m)
        if not np.array_equal(~finite, ~np.isfinite(t)) or not _agree(t[~finite], m[~finite], tol):
            return None  # non-finite values in different places: no factor maps one onto the other
        ts.append(t[finite])
        ms.append(m[finite])
    t, m = np.concatenate(ts), np.concatenate(ms)
    informative = int(np.count_nonzero(m))
    if not informative or not np.dot(m, m):
        return None
    zero = np.zeros_like(t)
    if _agree(t, zero, tol) or _agree(m, zero, tol):
        return None  # values at rounding's distance from 0 fit any factor
    r = float(np.dot(t, m) / np.dot(m, m))
    if not np.isfinite(r) or r == 0 or abs(r - 1.0) <= 10 * tol.get("rtol", 0.0):
        return None
    return (r, informative) if _agree(t, r * m, tol) else None


def _factor_sentence(
    case: Case,
    t_loss: np.ndarray,
    m_loss: np.ndarray,
    t_grad: np.ndarray | None,
    m_grad: np.ndarray,
    names: tuple[str, str, str],
    tol: dict[str, float],
    base_denominator: float | None,
    denominator: str | None,
) -> Residual | None:
    """A constant factor between b's values and a's, with the count it equals; where a's is a mean, the
    denominator b's values divide by instead and the count that equals. A factor on one number alone is
    said only where it equals a count (one number has every ratio)."""
    b, a, theirs = names
    pairs = [(t_loss, m_loss)] + ([(t_grad, m_grad)] if t_grad is not None else [])
    found = _ratio(pairs, tol)
    if found is None:
        return None
    r, informative = found
    rtol = tol.get("rtol", 0.0)
    size = 1 / abs(r) if abs(r) < 1 else abs(r)
    named = equal_counts(case, size, rtol)
    facts: dict[str, Any] = {"factor": r, "factor_counts": [name for name, _ in named]}
    how = ("divided by " if abs(r) < 1 else "multiplied by ") + _said(size, named) + (" and negated" if r < 0 else "")
    what = "loss and gradient" if t_grad is not None else "loss"
    sentence = f"{b}'s {what} are {theirs} {how}"
    mean_named: list[tuple[str, float]] = []
    if base_denominator is not None and base_denominator > 0 and r > 0:
        own = base_denominator / r
        mean_named = equal_counts(case, own, rtol)
        facts.update(denominator=own, denominator_counts=[name for name, _ in mean_named])
        sentence += f": its mean divides by {_said(own, mean_named)}"
        if not mean_named:
            sentence += ", which equals no count of this case"
        sentence += f", where {a}'s divides by {denominator or 'its denominator'} = {base_denominator:g}"
    elif not named:
        sentence += ", which equals no count of this case"
    if informative < 2 and not named and not mean_named:
        return None
    return Residual((sentence,), facts, complete=True)


def _offset(t_loss: np.ndarray, m_loss: np.ndarray, t_grad: np.ndarray | None, m_grad: np.ndarray, tol: dict[str, float]) -> float | None:
    """A constant added to every value of the loss: over several values, their difference is constant;
    on one value, the gradient agrees (a constant does not move it)."""
    t, m = t_loss.reshape(-1), m_loss.reshape(-1)
    if not (np.isfinite(t).all() and np.isfinite(m).all()) or not t.size:
        return None
    if t.size == 1 and (t_grad is None or not _agree(t_grad, m_grad, tol)):
        return None
    offset = float(np.mean(t - m))
    if _agree(t, m, tol) or not _agree(t, m + offset, tol):
        return None
    return offset


def _shape(
    case: Case,
    t: np.ndarray,
    m: np.ndarray,
    t_grad: np.ndarray | None,
    m_grad: np.ndarray,
    names: tuple[str, str, str],
    tol: dict[str, float],
) -> Residual:
    """b returns another number of values than a: which reduction of b's gives a's, if one does."""
    b, a, theirs = names
    grad_note = ""
    if t_grad is not None:
        grad_note = "; its gradient agrees" if _agree(t_grad, m_grad, tol) else "; its gradient differs too"
    head = f"{b} returns {_shape_words(t.shape)} where {a} returns {_shape_words(m.shape)}"
    facts: dict[str, Any] = {"shape": list(t.shape), "expected_shape": list(m.shape)}
    for axis in range(t.ndim if t.size else 0):
        if tuple(np.delete(np.array(t.shape), axis)) != m.shape:
            continue
        for how, reduce in (("summed", np.sum), ("averaged", np.mean)):
            if _agree(reduce(t, axis=axis), m, tol):
                facts["reduced"] = {"axis": axis, "how": how}
                return Residual(
                    (f"{head}; {how} over its axis {axis}{_axis_role(case, t, axis)} they are {theirs} values{grad_note}",), facts, True
                )
    if m.size == 1 and t.size > 1:
        for how, value in (("sum", t.sum()), ("mean", t.mean())):
            if _agree(np.asarray(value), m, tol):
                facts["reduced"] = {"axis": None, "how": how}
                return Residual((f"{head}; their {how} is {theirs} value{grad_note}",), facts, True)
    total = float(m.sum()) if m.size > 1 and np.isfinite(m).all() else 0.0
    if t.size == 1 and total and np.isfinite(t).all():
        ratio = float(t.reshape(-1)[0]) / total
        named = equal_counts(case, 1 / ratio, tol.get("rtol", 0.0)) if ratio else []
        whole = _agree(t, np.asarray(total), tol)
        if whole or named:
            how = "sum" if whole or named[0][1] != m.size else "mean"
            divided = "" if whole or how == "mean" else f" divided by {_said(1 / ratio, named)}"
            facts["reduced"] = {"axis": None, "how": how, "of": "theirs", "divided_by": 1 / ratio}
            said = f"{head}, and it is the {how} of {theirs} values{divided} (the case's reduction is not applied){grad_note}"
            return Residual((said,), facts, True)
    return Residual((f"{head}{grad_note}",), facts)


def _shape_words(shape: tuple[int, ...]) -> str:
    return "one number" if not shape else f"values of shape {list(shape)}"


def _axis_role(case: Case, t: np.ndarray, axis: int) -> str:
    if t.shape == case.predictions.shape and axis == case.family.CLASS_AXIS:
        return " (the class axis)"
    return " (the batch axis)" if axis == 0 else ""


def _shift(
    case: Case,
    knobs: reference.Knobs,
    t_loss: np.ndarray,
    t_grad: np.ndarray | None,
    names: tuple[str, str, str],
    tol: dict[str, float],
    denominator: str | None,
) -> Residual | None:
    """Labels shifted by one position along an axis (the position left without a label ignored), as a
    language model's next-token loss has them: a's documented semantics on the shifted labels reproduce
    b's loss and gradient (or do so up to a constant factor)."""
    b, a, theirs = names
    labels = case.labels
    if labels is None or not case.family.INDEX_LABELS or case.family.CLASS_AXIS is None or not labels.ndim:
        return None
    ignore = case.ignore_index if case.ignore_index is not None else -100
    for axis in range(labels.ndim):
        if labels.shape[axis] < 2:
            continue
        for by in (1, -1):
            moved = np.full_like(labels, ignore)
            src = [slice(None)] * labels.ndim
            dst = [slice(None)] * labels.ndim
            src[axis], dst[axis] = (slice(1, None), slice(None, -1)) if by == 1 else (slice(None, -1), slice(1, None))
            moved[tuple(dst)] = labels[tuple(src)]
            try:
                with np.errstate(all="ignore"):
                    outcome = reference.evaluate(replace(case, labels=moved, ignore_index=ignore), knobs)
            except (ValueError, TypeError, IndexError):
                continue
            m_loss, m_grad = np.asarray(outcome.loss, dtype=np.float64), np.asarray(outcome.grad, dtype=np.float64)
            if m_loss.size != t_loss.size:
                continue
            later = "later" if by == 1 else "earlier"
            where = "last" if by == 1 else "first"
            words = (
                f"{b} scores each position against the label one position {later} along {_label_axis(axis)}, "
                f"the {where} position left without a label and ignored"
            )
            facts = {"shift": {"axis": axis, "by": by, "ignored": ignore}}
            grad_ok = t_grad is None or _agree(t_grad, m_grad, tol)
            if _agree(t_loss, m_loss, tol) and grad_ok:
                return Residual((f"{words}: {a}'s documented semantics on labels shifted so reproduce its loss and gradient",), facts, True)
            scaled = _factor_sentence(
                case, t_loss, m_loss, t_grad, m_grad, (b, a, f"{theirs} on the shifted labels"), tol, outcome.denominator, denominator
            )
            if scaled is not None:
                return Residual((words, *scaled.sentences), {**facts, **scaled.facts}, True)
    return None


PARAMETER_RANGE = (0.0, 5.0)  # where a case parameter is searched (smoothing, focal gamma and alpha lie in it)
PARAMETER_GRID = 21
PARAMETER_ELEMENTS = 1 << 14  # cases above this many prediction elements are not searched (each try is a model evaluation)


def _parameter(
    case: Case,
    knobs: reference.Knobs,
    documented: reference.Knobs,
    t_loss: np.ndarray,
    t_grad: np.ndarray | None,
    names: tuple[str, str, str],
    tol: dict[str, float],
) -> Residual | None:
    """A scalar case parameter (label smoothing, a family's own number such as focal gamma) set otherwise:
    a function that never receives the case's value and uses its own default shows so. The value is found
    on the loss's sum (a grid over PARAMETER_RANGE, then bisection on each sign change) and said only
    where a's documented semantics at it reproduce every value of the loss and the gradient (at `knobs`:
    a's `documented` point, or the fit's closest, whose knobs set otherwise are then named too)."""
    b, a, _ = names
    switched = {k: getattr(knobs, k) for k in reference.knob_names() if getattr(knobs, k) != getattr(documented, k)}
    also = "".join(f", {k} = {v!r}" for k, v in switched.items())
    if case.predictions.size > PARAMETER_ELEMENTS or not np.isfinite(t_loss).all():
        return None
    target = float(t_loss.sum())
    scalars = {"label_smoothing": case.label_smoothing} | {
        k: v for k, v in case.extra.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
    }
    for key, given in scalars.items():

        def at(value: float, key: str = key) -> reference.Outcome | None:
            moved = replace(case, label_smoothing=value) if key == "label_smoothing" else replace(case, extra={**case.extra, key: value})
            try:
                with np.errstate(all="ignore"):
                    return reference.evaluate(moved, knobs)
            except (ValueError, TypeError, ZeroDivisionError, IndexError):
                return None

        def gap(value: float) -> float:
            outcome = at(value)
            return float(np.sum(outcome.loss)) - target if outcome is not None else float("nan")

        def reproduces(value: float) -> bool:
            outcome = at(value)
            if outcome is None or not _agree(t_loss, np.asarray(outcome.loss, dtype=np.float64), tol):
                return False
            return t_grad is None or _agree(t_grad, np.asarray(outcome.grad, dtype=np.float64), tol)

        grid = np.linspace(*PARAMETER_RANGE, PARAMETER_GRID)
        gaps = [gap(v) for v in grid]
        found = [
            float(v) for v, g in zip(grid, gaps, strict=True) if abs(g) <= 10 * (tol.get("atol", 0.0) + tol.get("rtol", 0.0) * abs(target))
        ]
        for lo, hi, g_lo, g_hi in zip(grid[:-1], grid[1:], gaps[:-1], gaps[1:], strict=True):
            if not (np.isfinite(g_lo) and np.isfinite(g_hi)) or g_lo * g_hi >= 0:
                continue
            for _ in range(60):
                mid = (lo + hi) / 2
                g_mid = gap(mid)
                if not np.isfinite(g_mid):
                    break
                lo, hi, g_lo = (mid, hi, g_mid) if g_lo * g_mid > 0 else (lo, mid, g_lo)
            value = (lo + hi) / 2
            found.append(
                next(
                    (r for r in (round(value, k) for k in range(7)) if abs(r - value) <= 1e-3 * max(abs(value), 1e-3) and reproduces(r)),
                    value,
                )
            )
        for value in found:
            if abs(value - float(given)) <= 1e-9 * max(1.0, abs(float(given))) or not reproduces(value):
                continue
            shown = f"{value:.4g}"
            return Residual(
                (
                    f"{b} computes as if {key} were {shown} (the case sets {given!r}): {a}'s documented semantics at {key} = {shown}{also} "
                    "reproduce its loss and gradient (the case's value does not reach it, or it uses its own)",
                ),
                {"parameter": {"key": key, "value": value, "case": given, "knobs": switched}},
                True,
            )
    return None


def _label_axis(axis: int) -> str:
    return "the batch axis (N)" if axis == 0 else f"axis d{axis} (the predictions' axis {axis + 1})"


def _positions(
    case: Case, t_loss: np.ndarray, m_loss: np.ndarray, t_grad: np.ndarray | None, m_grad: np.ndarray, b: str, tol: dict[str, float]
) -> Residual:
    """Where b's values differ: per position where the loss has one value per position, else in the
    gradient; with the class their labels share, or the one index along an axis they share."""
    per_position = t_loss.size > 1 and t_loss.shape == m_loss.shape
    if per_position:
        t, m, what = t_loss, m_loss, "loss"
    elif t_grad is not None and t_grad.size > 1:
        t, m, what = t_grad.reshape(m_grad.shape), m_grad, "gradient"
    else:
        return Residual()
    differs = ~_close(t, m, tol)
    total, count = differs.size, int(differs.sum())
    if count == 0 or count == total:
        return Residual()
    where = np.argwhere(differs)
    facts: dict[str, Any] = {"differs": {"what": what, "count": count, "of": total}}
    if count <= SHOWN_POSITIONS:
        facts["differs"]["at"] = where.tolist()
        shown = ", ".join(str(tuple(int(i) for i in p)) if len(p) > 1 else str(int(p[0])) for p in where)
        said = [f"{b}'s {what} differs at {count} of {total} {'positions' if what == 'loss' else 'elements'} only ({shown})"]
    else:
        said = [f"{b}'s {what} differs at {count} of {total} {'positions' if what == 'loss' else 'elements'}"]
    labels = case.labels if case.family.INDEX_LABELS else None
    if what == "loss" and labels is not None and labels.shape == t.shape:
        classes = np.unique(labels[differs])
        if classes.size == 1:
            c = int(classes[0])
            every = bool(np.all(differs[labels == c]))
            facts["differs"]["class"] = c
            said.append(f"{'exactly the' if every else 'only'} positions labelled class {c}")
    for axis in range(t.ndim):
        along = np.unique(where[:, axis])
        if t.shape[axis] > 1 and along.size == 1:
            j = int(along[0])
            role = "the class axis" if what == "gradient" and axis == case.family.CLASS_AXIS else f"axis {axis}"
            place = "the last index" if j == t.shape[axis] - 1 else ("the first index" if j == 0 else f"index {j}")
            facts["differs"].setdefault("axes", {})[axis] = j
            said.append(f"all at {place} of {role}" + (f" (class {j})" if role == "the class axis" else ""))
    return Residual(("; ".join(said),), facts)
