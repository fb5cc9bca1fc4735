"""Framework adapters: what every framework module shares (the `Variant` record, `Unsupported`, helpers).

Framework modules are found through the registry (`conformance.registry`, entry point group
`conformance.frameworks`); their frameworks are imported only inside workers.

A variant turns a `Case` into the exact native code it runs (`Variant.build`); the worker executes that
code and the same text, preceded by the arrays as literals, is the snippet shown to users. So what the
report shows is what ran. A variant that has no native way to express a case raises `Unsupported`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import replace

import numpy as np

from conformance import registry
from conformance.cases import Case
from conformance.contract import Unsupported as Unsupported
from conformance.contract import Variant
from conformance.records import CHANGE
from conformance.reference import Knobs, Outcome, evaluate

Model = Callable[[Knobs], Outcome]
GRADIENT_LINE = re.compile(r"^grad\b\s*,?\s*=")
"""A variant's line that takes the gradient (`grad, = torch.autograd.grad(...)`, `grad = tape.gradient(...)`)."""
"""The reference model of one case: knob point -> its float64 outcome (memoized by the caller)."""


def variants(framework: str) -> list[Variant]:
    """The variants of a framework, without importing the framework itself: its module's own (a
    framework from another package brings its calls there), then those each loss family brings for it,
    in the families' order (a shipped framework's calls for a family are the family's module
    `conformance/losses/<family>/<framework>.py`, returned by its `variants(framework)`)."""
    brought = [v for family in registry.losses().values() if family.variants is not None for v in family.variants(framework)]
    return list(registry.framework(framework).VARIANTS) + brought


def setup(framework: str) -> str:
    """The imports that open every snippet of a framework."""
    return str(registry.framework(framework).SETUP)


def framework_of(key: str) -> str:
    return key.split(":", 1)[0]


def storage_dtype(case: Case, key: str | None = None) -> str:
    """The NumPy dtype the array of case key `key` (default: the predictions) is handed over in (NumPy
    has no bfloat16: float32 holding bf16 values)."""
    dtype = case.dtype_of(key)
    return "float32" if dtype == "bfloat16" else dtype


def arrays(case: Case) -> dict[str, np.ndarray]:
    """The arrays a variant's code reads, each in its own dtype (`Case.dtype_of`): x (predictions), y
    (labels: class indices in `labels_dtype`, with the trailing axis of 1 the case gave them with, where
    the family's labels are indices, else targets) or t (soft targets), w (weights), the family's own
    arrays by their names (binary: pw, pos_weight), sw (per-sample weights)."""
    from conformance.reference import rounded

    family = case.family
    out = {"x": rounded(case, case.predictions).astype(storage_dtype(case))}
    if case.labels is not None and family.INDEX_LABELS:
        out["y"] = case.labels.astype(case.labels_dtype)[..., None] if case.trailing_label_axis else case.labels.astype(case.labels_dtype)
    elif case.labels is not None:
        out["y"] = rounded(case, case.labels, "labels").astype(storage_dtype(case, "labels"))
    else:
        out["t"] = rounded(case, case.targets, "soft_labels").astype(storage_dtype(case, "soft_labels"))
    own = [(name, key, case.extra.get(key)) for key, name in family.ARRAYS.items()]
    for name, key, value in [("w", "weight", case.weight), *own, ("sw", "sample_weight", case.sample_weight)]:
        if value is not None:
            out[name] = rounded(case, value, key).astype(storage_dtype(case, key))
    return out


ARRAY_KEYS = {"x": "predictions", "y": "labels", "t": "soft_labels", "w": "weight", "sw": "sample_weight"}


def is_bfloat16(case: Case, expression: str) -> bool:
    """Whether the array an expression reads (`x`, `np.moveaxis(t, 1, -1)`, `sw[:, None]`) is a bfloat16
    one, handed over as float32 for the framework to cast (each array has its own dtype: `dtype:`)."""
    names = {**ARRAY_KEYS, **{name: key for key, name in case.family.ARRAYS.items()}}
    read = next((names[word] for word in re.findall(r"[A-Za-z_]\w*", expression) if word in names), None)
    return case.dtype_of(read) == "bfloat16"


def squeezed_labels(case: Case, why: str) -> list[str]:
    """The line that drops the labels' trailing axis of 1 (a case that gives them as [N, ..., 1]), for an
    API whose users pass class indices without it; `why` says so in the snippet."""
    return [f"y = y.squeeze(-1)  # {why}"] if case.trailing_label_axis else []


def native_reduction(case: Case) -> str:
    """What torch's and paddle's loss modules are asked for: the case's reduction if they have it; with
    per-sample weights or a TensorFlow-style reduction, 'none' and the recipe by hand after it."""
    if case.sample_weight is None and case.reduction in ("none", "mean", "sum"):
        return case.reduction
    return "none"


def smallest_change(framework: str, case: Case, target: Knobs, model: Model | None = None) -> str | None:
    """The framework's default call, changed as little as the knobs that move the loss require, to give
    `target`'s semantics: the same call summed and divided by the target's denominator where only the
    denominator moves; where the weighting moves, the target built in NumPy (`t`) passed to the same
    call as probabilities, with no class weights or smoothing. The lines come from the case's loss
    family (`port`); the call is the default variant's own code for the changed case, so it is as
    idiomatic as the call the reader already has, less its gradient line: the change is to the loss,
    whose gradient the reader's autodiff takes (the call's own would be of the sum before the division).
    None where the family has no port for the case. `model` evaluates knob points (the explanation's, so
    both share each evaluation)."""
    default = [v for v in for_case(variants(framework), case) if v.key == framework]
    port = case.family.port
    try:
        own = default[0].knobs(case) if default else None
        plan = port(case, own, target, model or (lambda knobs: evaluate(case, knobs))) if port is not None and own is not None else None
        if plan is None:
            return None
        changed = case
        if plan["soft"]:
            soft = np.zeros(case.predictions.shape)  # its values are the snippet's `t`; the call only reads its kind
            changed = replace(case, labels=None, soft_labels=soft, weight=None, label_smoothing=0.0, ignore_index=None)
        call = default[0].build(replace(changed, reduction="sum" if plan["divide"] else case.reduction))
        call = "\n".join(line for line in call.splitlines() if not GRADIENT_LINE.match(line))
    except Exception:  # a change that cannot be written is left out: the general recipe stays
        return None
    head = f"# the smallest change: {plan['note']}"
    tail = (["loss = loss / D"] if plan["divide"] else []) + plan.get("after", [])  # `after`: lines on the call's loss
    return "\n".join([head, *plan["lines"], call, *tail])


def recipes(framework: str, case: Case, targets: Mapping[str, Knobs], model: Model) -> dict[str, str]:
    """The code `framework` runs to reproduce each target's documented semantics (`targets`: result key
    -> its knobs), built where the knobs are known (the parent) so the worker only runs it: under the
    target's key the general recipe (the family's `native_recipe`, else the framework module's
    `recipe`), under key + CHANGE the smallest change to the framework's own call, where there is one.
    A target without a general recipe is left out. A recipe whose writing fails (a plug-in's bug) is
    code that raises why, so the report shows it failing instead of the run stopping or hiding it."""
    module = registry.framework(framework)
    family_recipe = case.family.native_recipe  # a loss that is no soft-label cross-entropy writes its own
    out: dict[str, str] = {}
    for other, knobs in targets.items():
        try:
            if family_recipe is not None:
                general = family_recipe(framework, case, knobs)
            else:
                general = module.recipe(case, knobs) if module.recipe is not None else None
        except Exception as exc:
            general = f"raise RuntimeError({f'the recipe could not be written: {type(exc).__name__}: {exc}'!r})"
        if general is None:
            continue
        out[other] = general
        change = smallest_change(framework, case, knobs, model)
        if change is not None:
            out[other + CHANGE] = change
    return out


def for_case(variants: list[Variant], case: Case) -> list[Variant]:
    """The variants that compute the case's loss family."""
    return [v for v in variants if case.loss in v.losses]


def batch_shape(case: Case, name: str = "sw") -> str:
    """`sw` reshaped to broadcast over a sample's positions: sw[:, None, None] for (N, d1, d2) (the
    predictions without the batch axis and the family's class axis, if it has one)."""
    trailing = case.predictions.ndim - 1 - (0 if case.family.CLASS_AXIS is None else 1)
    return name + ("[:, " + ", ".join(["None"] * trailing) + "]" if trailing > 0 else "")


def array_source(case: Case) -> str:
    """The arrays, so a snippet runs on its own: a generated array regenerated from the case's seed (its
    family's `generated_source`), an empty one by its shape, any other as NumPy literals. Each ends in
    the dtype (and shape) the variants read it in."""
    generated = case.family.generated_source(case) if case.family.generated_source is not None else {}
    lines = []
    for name, value in arrays(case).items():
        if name in generated:
            lines += [*generated[name], f'{name} = {name}.reshape({value.shape}).astype("{value.dtype}")']
            if is_bfloat16(case, name):
                bits = f"{name}.view(np.uint32)"
                rounded_bits = f"(({bits} + 0x7FFF + (({bits} >> 16) & 1)) >> 16 << 16).astype(np.uint32)"
                lines.append(f"{name} = {rounded_bits}.view(np.float32)  # rounded to bfloat16")
        elif value.size == 0:
            lines.append(f'{name} = np.zeros({value.shape}, dtype="{value.dtype}")')
        else:
            dtype = "" if value.dtype == np.int64 else f', dtype="{value.dtype}"'
            lines.append(f"{name} = np.array({_literal(value)}{dtype})")
    return "\n".join(lines)


def moved(case: Case) -> bool:
    """Whether the case is K-dim with a class axis, so channels-last APIs need the class axis moved to
    the end (an elementwise family has none to move)."""
    return case.predictions.ndim > 2 and case.family.CLASS_AXIS is not None


def kwargs(*pairs: tuple[str, object | None]) -> str:
    """`name=value` arguments, leaving out those whose value is None."""
    return ", ".join(f"{k}={v}" for k, v in pairs if v is not None)


def _literal(value: np.ndarray) -> str:
    """Shortest text that reads back to exactly these values in their own dtype (0.05, not 0.0500000007)."""
    if value.ndim == 0:
        return repr(value.item()) if value.dtype == np.int64 else _number(value)
    return "[" + ", ".join(_literal(v) for v in value) + "]"


def _number(value: np.ndarray | np.generic) -> str:
    text = str(value)
    return {"nan": "np.nan", "inf": "np.inf", "-inf": "-np.inf"}.get(text, text)
