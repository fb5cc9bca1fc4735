"""NumPy as a fourth conformance framework: softmax cross-entropy written from scratch, Keras-style.

Registered only through the entry point group `conformance.frameworks` (see pyproject.toml), so it
shows that a framework is a plug-in: the suite runs it, groups it, checks it against its documented
formula, explains and reproduces it, fuzzes and baselines it, with no edit to the suite.

Its semantics are those a Keras-style implementation has: class weights are per-sample weights
`weight[label]` (the argmax class of a soft label), `mean` divides by the number of positions (by the
non-ignored ones with `ignore_index`, as Keras's `ignore_class`), and a 0/0 mean is 0 (divide_no_nan).
The gradient w.r.t. the logits is analytic. Like every framework module it imports its framework
(NumPy) only in the functions the worker calls.
"""

from __future__ import annotations

from conformance.adapters import Unsupported, Variant, moved
from conformance.cases import Case
from conformance.reference import Denominator, Knobs, mean_denominator, recipe_source

ORDER = 40  # after torch (10), paddle (20), tensorflow (30); before the reference (1000)
SETUP = "import numpy as np"
DISTRIBUTION = "conformance-numpy-framework"
CE = ("softmax_cross_entropy",)
REDUCTIONS = ("none", "mean", "sum")
LOG_SOFTMAX = [
    "shifted = z - z.max(axis=-1, keepdims=True)  # stable log-softmax over the class axis",
    "log_p = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))",
]


def version() -> dict[str, str]:
    """The plug-in's own version (the reference already reports NumPy's)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return {"numpy-framework": installed(DISTRIBUTION)}
    except PackageNotFoundError:  # imported from a bare path, without its metadata
        return {"numpy-framework": "unknown"}


def to_numpy(value: object) -> tuple[object, str]:
    import numpy as np

    array = np.asarray(value)
    return array.astype(np.float64), array.dtype.name


def _check(case: Case) -> None:
    """What this implementation does not do: said, not approximated."""
    if not case.from_logits:
        raise Unsupported("numpy_framework takes logits only, not probabilities")
    if case.sample_weight is not None:
        raise Unsupported("numpy_framework has no per-sample weights (class weights become its only sample weights)")
    if case.reduction not in REDUCTIONS:
        raise Unsupported(f"numpy_framework reduces with none, mean or sum only, not {case.reduction}")
    if case.dtype == "bfloat16":
        raise Unsupported("NumPy has no bfloat16")
    if case.labels is None and case.ignore_index is not None:
        raise Unsupported("numpy_framework ignores class indices only; soft labels have none")


def _target(case: Case) -> list[str]:
    """The target q (classes last) and the per-position weight `sw` (weight[label], 0 where ignored)."""
    c = case.num_classes
    ignore = _ignoring(case)
    if case.labels is None:
        lines = ["q = np.moveaxis(t, 1, -1)  # classes last" if moved(case) else "q = t"]
        label = "q.argmax(axis=-1)"  # Keras's class_weight takes the argmax class of a soft label
    elif ignore:
        lines = [
            f"keep = y != {case.ignore_index}  # ignored positions weigh 0",
            "label = np.where(keep, y, 0)",
            f"q = np.eye({c}, dtype=z.dtype)[label]  # one-hot, classes last",
        ]
        label = "label"
    else:
        lines = [f"q = np.eye({c}, dtype=z.dtype)[y]  # one-hot, classes last"]
        label = "y"
    if case.weight is not None:
        lines.append(f"sw = w[{label}]  # class weights as per-sample weights: weight[label]")
        if ignore:
            lines.append("sw = sw * keep")
    elif ignore:
        lines.append("sw = keep.astype(z.dtype)")
    if case.label_smoothing:
        eps = case.label_smoothing
        lines.append(f"q = q * (1 - {eps!r}) + {eps!r} / {c}  # label smoothing")
    return lines


def _ignoring(case: Case) -> bool:
    return case.labels is not None and case.ignore_index is not None


def _weighted(case: Case) -> bool:
    """Whether positions carry a weight `sw` (class weights, or 0 for the ignored ones)."""
    return case.weight is not None or _ignoring(case)


def _reduce(case: Case) -> list[str]:
    """The reduction and the coefficient `coef` each position's loss carries in it (for the gradient)."""
    coef = "sw" if _weighted(case) else "np.ones(per_position.shape, z.dtype)"
    if case.reduction == "none":
        return ["loss = per_position", f"coef = {coef}"]
    if case.reduction == "sum":
        return ["loss = per_position.sum()", f"coef = {coef}"]
    count = "int(keep.sum())  # the non-ignored positions" if _ignoring(case) else "per_position.size"
    return [
        f"count = {count}",
        "loss = per_position.sum() / count if count else np.zeros((), per_position.dtype)  # divide_no_nan: 0/0 is 0",
        f"coef = {coef} / count if count else np.zeros(per_position.shape, z.dtype)",
    ]


def cross_entropy(case: Case) -> str:
    """The code body: reads x, y / t, w; sets loss and grad (w.r.t. x; for `none`, of the sum)."""
    _check(case)
    lines = ["z = np.moveaxis(x, 1, -1)  # classes last, as Keras has them" if moved(case) else "z = x"]
    lines += _target(case) + LOG_SOFTMAX
    lines.append("per_position = -(q * log_p).sum(axis=-1)")
    if _weighted(case):
        lines.append("per_position = per_position * sw")
    lines += _reduce(case)
    lines.append("grad = (np.exp(log_p) * q.sum(axis=-1, keepdims=True) - q) * coef[..., None]  # d loss / d logits, analytic")
    if moved(case):
        lines.append("grad = np.moveaxis(grad, -1, 1)")
    return "\n".join(lines)


def documented(case: Case) -> Knobs:
    """Keras's point of the model: weight of the hard label, passed as a sample weight; mean over the
    positions (the non-ignored ones with ignore_index); 0/0 and an empty batch give 0."""
    own: Denominator = "valid_count" if _ignoring(case) else "positions"
    return Knobs(
        weight_mode="from_hard_label",
        weights_as_sample_weights=True,
        denominator=mean_denominator(case, own),
        empty_mean="zero",
        empty_batch="zero",
    )


def recipe(case: Case, knobs: Knobs) -> str | None:
    """NumPy reproducing another framework's documented semantics: its target T and denominator D
    (`recipe_source`), then sum(T * -log_softmax(x)) / D."""
    source = recipe_source(case, knobs)
    if source is None or case.dtype == "bfloat16":
        return None
    lines = source + ["z = np.moveaxis(x, 1, -1)  # classes last" if moved(case) else "z = x"]
    if knobs.logit_floor:
        lines.append(f"z = np.maximum(z - z.max(axis=-1, keepdims=True), -{knobs.logit_floor:g})  # paddle's softmax clip")
    lines += LOG_SOFTMAX + ["loss = -(T.astype(z.dtype) * log_p).sum(axis=-1)"]
    if case.reduction == "sum":
        lines.append("loss = loss.sum()")
    elif case.reduction != "none":
        lines.append("loss = loss.sum() / D")
    return "\n".join(lines)


VARIANTS = [Variant("numpy", "NumPy softmax cross-entropy from scratch (Keras-style weights and mean)", cross_entropy, documented, CE)]
