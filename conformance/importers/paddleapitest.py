"""PaddleAPITest's configuration lines -> case files that run the eight paddle loss APIs as written.

PaddleAPITest (PFCCLab/PaddleAPITest, Paddle's own API checker) keeps recorded calls one per line,
in Python call syntax with tensors given by shape and dtype:

    paddle.nn.functional.cross_entropy(Tensor([8, 10],"float32"), Tensor([8, 1],"int64"), reduction="none", )

A line is parsed with `ast` (never evaluated) and bound to the API's signature (paddle 3.3.1's), so
lines that differ only in spelling (positional or keyword, defaults written out or not, `name=None`)
are one configuration. Each configuration becomes one case whose arrays are generated at the line's
shapes and dtypes with the peer's value ranges, and whose paddle variant is that API in that form
(`variant`; `cross_entropy(axis=1)` on a K-dim input is `paddle:axis1`, `nll_loss` is `paddle:nll`...).

The peer's value ranges (tester/api_config/config_analyzer.py and input_generation's rules): inputs
uniform in [-0.6, 0.6) (`(random - 0.5) * 1.2`), class indices in [0, C), soft labels uniform in [0, 1)
normalised over the classes, 0/1 focal labels, `binary_cross_entropy` inputs, labels and weights
uniform in [0, 1), class weights uniform in [0, 1) (the peer divides them by their sum too, which only
a 'sum' or 'none' reduction sees; `Generated` has no such step). Where the peer's own draw is no valid input of the
suite, the case says what it takes instead: probabilities (`use_softmax=False`) are normalised uniform
draws, binary targets of `binary_cross_entropy_with_logits` lie in [0, 1) and its weights in [0, 1)
(the peer's default range would make them negative), a focal `normalizer` tensor is the number 1.5
(the suite's must be > 0), `kl_div`'s input is log_softmax of uniform logits (the peer's raw [0.5, 1.5)
values are no log-probabilities), and `label_smooth`'s label and `prior_dist` are normalised uniform
draws (the case smooths soft labels, through paddle:label_smooth, towards that prior).

A line the suite cannot express is kept with why (`Import.skipped`); a line that does not parse is a
`BadLine` with its file and line; lines of other APIs are only counted.
"""

from __future__ import annotations

import ast
import json
import math
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conformance import cases
from conformance.errors import UsageError

HELP = "PaddleAPITest's configuration lines (tester/api_config/*.txt) of the paddle loss APIs, run as written"
FILES_HELP = "configuration files, or folders of them (their .txt files)"
DEFAULT_OUT = Path("cases/paddleapitest.yaml")
PREFIX = "paddle.nn.functional."
# paddle 3.3.1's signatures (inspect.signature) but `name`, which every API takes last (`NAME`) and which
# changes nothing: it is bound, then left out of the configuration.
SIGNATURES: dict[str, tuple[tuple[str, Any], ...]] = {
    "cross_entropy": (
        ("input", ...),
        ("label", ...),
        ("weight", None),
        ("ignore_index", -100),
        ("reduction", "mean"),
        ("soft_label", False),
        ("axis", -1),
        ("use_softmax", True),
        ("label_smoothing", 0.0),
    ),
    "softmax_with_cross_entropy": (
        ("logits", ...),
        ("label", ...),
        ("soft_label", False),
        ("ignore_index", -100),
        ("numeric_stable_mode", True),
        ("return_softmax", False),
        ("axis", -1),
    ),
    "nll_loss": (("input", ...), ("label", ...), ("weight", None), ("ignore_index", -100), ("reduction", "mean")),
    "binary_cross_entropy": (("input", ...), ("label", ...), ("weight", None), ("reduction", "mean")),
    "binary_cross_entropy_with_logits": (("logit", ...), ("label", ...), ("weight", None), ("reduction", "mean"), ("pos_weight", None)),
    "sigmoid_focal_loss": (("logit", ...), ("label", ...), ("normalizer", None), ("alpha", 0.25), ("gamma", 2.0), ("reduction", "sum")),
    "kl_div": (("input", ...), ("label", ...), ("reduction", "mean"), ("log_target", False)),
    "label_smooth": (("label", ...), ("prior_dist", None), ("epsilon", 0.1)),
}
APIS = tuple(SIGNATURES)
NAME = ("name", None)
INPUTS = (-0.6, 0.6)  # the peer's default draw, (random - 0.5) * 1.2
UNIT = (0.0, 1.0)
FOCAL_NORMALIZER = 1.5
HALF = ("float16", "bfloat16")  # no paddle CPU kernel for the losses (docs/peer-coverage.md)
CPU_ELEMENTS = 2**31  # beyond this one tensor cannot be held on these machines (docs/peer-coverage.md)


@dataclass(frozen=True)
class Tensor:
    shape: tuple[int, ...]
    dtype: str

    @property
    def size(self) -> int:
        return math.prod(max(s, 0) for s in self.shape)

    def __str__(self) -> str:
        return f'Tensor({list(self.shape)},"{self.dtype}")'


class BadLine(ValueError):
    """A line that is no call this module can read (why, in words)."""


class Unexpressible(ValueError):
    """A loss configuration the suite has no case or variant for (why, in words)."""


@dataclass(frozen=True)
class Source:
    file: str
    line: int

    @property
    def id(self) -> str:
        stem = "".join(c if c.isalnum() or c in "_.-" else "_" for c in str(Path(self.file).with_suffix("")).replace("/", "."))
        return f"{stem}.L{self.line}"

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class Call:
    """One line bound to its API's signature (defaults filled in)."""

    api: str
    args: tuple[tuple[str, Any], ...]
    text: str

    def __getitem__(self, key: str) -> Any:
        return dict(self.args)[key]

    @property
    def tensors(self) -> list[Tensor]:
        return [v for _, v in self.args if isinstance(v, Tensor)]


@dataclass(frozen=True)
class Written:
    """A configuration as a case: its YAML mapping, the paddle variant that is the API in the line's form."""

    source: Source
    call: Call
    case: dict[str, Any]
    variant: str
    also: int = 0  # further lines with the same configuration

    @property
    def cpu_runnable(self) -> bool:
        return cpu_blocker(self.call) is None

    @property
    def largest(self) -> int:
        return max((t.size for t in self.call.tensors), default=0)


@dataclass(frozen=True)
class Skipped:
    source: Source
    call: Call
    why: str


@dataclass
class Import:
    """What the files held: cases written, loss configurations not expressible, bad lines, other APIs."""

    files: list[str] = field(default_factory=list)
    written: list[Written] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    bad: list[tuple[Source, str]] = field(default_factory=list)
    other: int = 0
    lines: int = 0


# ---------------------------------------------------------------- parsing


def parse(text: str) -> Call | None:
    """The call of one line, bound to its API's signature; None for an API other than the eight loss APIs."""
    head = text.split("(", 1)[0].strip()
    if not head.startswith(PREFIX) or head[len(PREFIX) :] not in SIGNATURES:
        return None
    try:
        node = ast.parse(text.strip(), mode="eval").body
    except SyntaxError as exc:
        raise BadLine(f"not Python call syntax ({exc.msg}, column {exc.offset})") from None
    if not isinstance(node, ast.Call):
        raise BadLine("not a call")
    api = head[len(PREFIX) :]
    signature = (*SIGNATURES[api], NAME)
    names = [name for name, _ in signature]
    given: dict[str, Any] = {}
    if len(node.args) > len(names):
        raise BadLine(f"{api} takes at most {len(names)} positional arguments, the line passes {len(node.args)}")
    for name, arg in zip(names, node.args, strict=False):
        given[name] = _value(arg)
    for keyword in node.keywords:
        if keyword.arg is None:
            raise BadLine("**kwargs cannot be read")
        if keyword.arg not in names:
            raise BadLine(f"{api} has no argument '{keyword.arg}'")
        if keyword.arg in given:
            raise BadLine(f"argument '{keyword.arg}' given twice")
        given[keyword.arg] = _value(keyword.value)
    args = []
    for name, default in signature[:-1]:
        if name not in given and default is ...:
            raise BadLine(f"{api} needs '{name}'")
        args.append((name, given.get(name, default)))
    return Call(api, tuple(args), text.strip())


def _value(node: ast.expr) -> Any:
    if isinstance(node, ast.Constant) and (node.value is None or isinstance(node.value, (bool, int, float, str))):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)) and isinstance(node.operand, ast.Constant):
        value = _value(node.operand)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "Tensor" and len(node.args) == 2:
        shape, dtype = node.args
        dims = [e.value for e in shape.elts if isinstance(e, ast.Constant) and type(e.value) is int] if isinstance(shape, ast.List) else []
        if isinstance(shape, ast.List) and len(dims) == len(shape.elts):
            if isinstance(dtype, ast.Constant) and isinstance(dtype.value, str):
                return Tensor(tuple(dims), dtype.value)
        raise BadLine(f'cannot read {ast.unparse(node)}: expected Tensor([d1, ...], "dtype")')
    if isinstance(node, (ast.List, ast.Tuple)):
        return tuple(_value(e) for e in node.elts)
    raise BadLine(f"cannot read the argument {ast.unparse(node)}")


# ---------------------------------------------------------------- configurations -> cases


def cpu_blocker(call: Call) -> str | None:
    """Why no CPU runs the configuration as written (None: one can)."""
    half = sorted({t.dtype for t in call.tensors if t.dtype in HALF})
    if half:
        return f"{' and '.join(half)}: paddle's CPU build has no loss kernels for it"
    if any(t.size > CPU_ELEMENTS for t in call.tensors):
        return "a tensor of more than 2^31 elements"
    return None


def to_case(call: Call, source: Source) -> tuple[dict[str, Any], str]:
    """The case of one configuration and the paddle variant that runs it as written, or Unexpressible."""
    case: dict[str, Any] = {"id": source.id}
    variant = MAPPERS[call.api](call, case)
    case["description"] = f"PaddleAPITest {source}, run by {variant}: {call.text}"
    order = ["id", "description", "loss", "logits", "probs", "labels", "soft_labels", "weight", "pos_weight", "prior_dist"]
    order += ["gamma", "alpha", "normalizer", "label_smoothing", "ignore_index", "reduction", "dtype", "labels_dtype", "check_shapes"]
    return {key: case[key] for key in order if key in case}, variant


def _float(tensor: Any, what: str) -> Tensor:
    if not isinstance(tensor, Tensor):
        raise Unexpressible(f"{what} is {tensor!r}, not a tensor")
    if tensor.dtype not in ("float16", "bfloat16", "float32", "float64"):
        raise Unexpressible(f"{what} of dtype {tensor.dtype}: the suite takes float16, bfloat16, float32, float64 there")
    return tensor


def _spec(shape: Iterable[int], low_high: tuple[float, float] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"shape": list(shape)}
    if low_high is not None:
        spec["low"], spec["high"] = low_high
    return spec


def _dtypes(case: dict[str, Any], predictions: str, pairs: list[tuple[str, Tensor | None]]) -> None:
    """`dtype:` one name, or a mapping where an array's dtype differs from the predictions'."""
    main = next(t for k, t in pairs if k == predictions)
    assert main is not None
    others = {k: t.dtype for k, t in pairs if t is not None and k != predictions and t.dtype != main.dtype}
    case["dtype"] = {predictions: main.dtype, **others} if others else main.dtype


def _labels_dtype(case: dict[str, Any], label: Tensor) -> None:
    if label.dtype not in ("int32", "int64"):
        raise Unexpressible(f"class indices of dtype {label.dtype}: the suite hands them over as int32 or int64")
    if label.dtype == "int32":
        case["labels_dtype"] = "int32"


def _reduction(case: dict[str, Any], reduction: Any, takes: tuple[str, ...] = ("none", "mean", "sum")) -> None:
    if reduction not in takes:
        raise Unexpressible(f"reduction {reduction!r}: the API takes {', '.join(takes)}")
    case["reduction"] = reduction


def _class_last(shape: tuple[int, ...]) -> list[int]:
    """A classes-last shape (paddle's default axis=-1) in the suite's layout, class axis 1."""
    return [shape[0], shape[-1], *shape[1:-1]] if len(shape) > 2 else list(shape)


def _hard_labels(case: dict[str, Any], label: Tensor, expected: tuple[int, ...]) -> None:
    """Class indices of the expected shape, with paddle's trailing axis of 1, or mismatched on purpose."""
    _labels_dtype(case, label)
    case["labels"] = _spec(label.shape)
    if label.shape not in (expected, expected + (1,)):
        case["check_shapes"] = False


def _cross_entropy(call: Call, case: dict[str, Any]) -> str:
    x = _float(call["input"], "input")
    ndim = len(x.shape)
    if ndim < 2:
        raise Unexpressible(f"input of shape {list(x.shape)}: the suite's softmax cases have a batch axis, (N, C, ...)")
    axis = call["axis"] + ndim if call["axis"] < 0 else call["axis"]
    if axis == ndim - 1:
        variant, layout, classes = "paddle", _class_last(x.shape), x.shape[-1]
        without = x.shape[:-1]
    elif axis == 1:
        variant, layout, classes = "paddle:axis1", list(x.shape), x.shape[1]
        without = x.shape[:1] + x.shape[2:]
    else:
        raise Unexpressible(f"axis={call['axis']} on a {ndim}-D input: the suite's variants take the classes last or at axis 1")
    key = "logits" if call["use_softmax"] else "probs"
    case[key] = _spec(layout, INPUTS if key == "logits" else UNIT)
    label = call["label"]
    if not isinstance(label, Tensor):
        raise Unexpressible(f"label is {label!r}, not a tensor")
    soft = call["soft_label"] or (call["label_smoothing"] > 0 and label.shape == x.shape)
    if call["soft_label"] and label.dtype.startswith("int"):
        raise Unexpressible(f"soft_label=True with class indices ({label}): the suite's soft labels are probabilities")
    arrays: list[tuple[str, Tensor | None]] = [(key, x)]
    if soft:
        _float(label, "a soft label")
        case["soft_labels"] = _spec(_class_last(label.shape) if variant == "paddle" else label.shape)
        if label.shape != x.shape:
            case["check_shapes"] = False
        arrays.append(("soft_labels", label))
        if call["ignore_index"] >= 0:
            raise Unexpressible("soft labels with an ignore_index >= 0: paddle's documented semantics leave it undefined")
    elif variant == "paddle:axis1" and label.shape != without and label.shape in (without + (1,), x.shape[:1] + (1,) + x.shape[2:]):
        raise Unexpressible(f"labels {list(label.shape)} with axis=1: paddle:axis1 hands cross_entropy labels [N, d1, ...]")
    else:
        _hard_labels(case, label, without)
    weight = call["weight"]
    if weight is not None:
        case["weight"] = _spec(_float(weight, "weight").shape, UNIT)
        if weight.shape != (classes,):
            case["check_shapes"] = False
        arrays.append(("weight", weight))
    if not 0 <= call["label_smoothing"] < 1:
        raise Unexpressible(f"label_smoothing={call['label_smoothing']}: the suite takes 0 <= x < 1")
    if call["label_smoothing"]:
        case["label_smoothing"] = call["label_smoothing"]
    if call["ignore_index"] != -100:
        case["ignore_index"] = call["ignore_index"]
    _reduction(case, call["reduction"])
    _dtypes(case, key, arrays)
    return variant


def _softmax_with_cross_entropy(call: Call, case: dict[str, Any]) -> str:
    x = _float(call["logits"], "logits")
    ndim = len(x.shape)
    if ndim < 2:
        raise Unexpressible(f"logits of shape {list(x.shape)}: the suite's softmax cases have a batch axis, (N, C, ...)")
    if call["axis"] not in (-1, ndim - 1):
        raise Unexpressible(f"axis={call['axis']}: the suite's softmax_with_cross_entropy variants take the classes last")
    case["logits"] = _spec(_class_last(x.shape), INPUTS)
    label = call["label"]
    arrays: list[tuple[str, Tensor | None]] = [("logits", x)]
    if call["soft_label"]:
        case["soft_labels"] = _spec(_class_last(_float(label, "a soft label").shape))
        if label.shape != x.shape:
            raise Unexpressible(f"soft labels {list(label.shape)} for logits {list(x.shape)}: shapes that do not fit")
        arrays.append(("soft_labels", label))
    else:
        if not isinstance(label, Tensor) or label.shape != x.shape[:-1] + (1,):
            raise Unexpressible(f"labels {label}: the suite hands this API class indices [N, ..., 1], the form it documents")
        _labels_dtype(case, label)
        case["labels"] = _spec(label.shape)
    if call["ignore_index"] != -100:
        case["ignore_index"] = call["ignore_index"]
    case["reduction"] = "none"  # the API has no reduction: the loss per position
    _dtypes(case, "logits", arrays)
    return "paddle:return_softmax" if call["return_softmax"] else "paddle:softmax_with_ce"


def _nll_loss(call: Call, case: dict[str, Any]) -> str:
    x = _float(call["input"], "input")
    if len(x.shape) < 2:
        raise Unexpressible(f"input of shape {list(x.shape)}: the suite's softmax cases have a batch axis, (N, C, ...)")
    case["logits"] = _spec(x.shape, INPUTS)  # paddle:nll passes log_softmax(logits, axis=1): the log-probabilities it takes
    label = call["label"]
    if not isinstance(label, Tensor):
        raise Unexpressible(f"label is {label!r}, not a tensor")
    _hard_labels(case, label, x.shape[:1] + x.shape[2:])
    if label.shape == x.shape[:1] + x.shape[2:] + (1,):
        raise Unexpressible(f"labels {list(label.shape)}: paddle:nll hands nll_loss labels [N, d1, ...], not with a trailing 1")
    arrays: list[tuple[str, Tensor | None]] = [("logits", x)]
    if call["weight"] is not None:
        case["weight"] = _spec(_float(call["weight"], "weight").shape, UNIT)
        if call["weight"].shape != (x.shape[1],):
            case["check_shapes"] = False
        arrays.append(("weight", call["weight"]))
    if call["ignore_index"] != -100:
        case["ignore_index"] = call["ignore_index"]
    _reduction(case, call["reduction"])
    _dtypes(case, "logits", arrays)
    return "paddle:nll"


def _binary(call: Call, case: dict[str, Any], logits: bool) -> str:
    x = _float(call["logit" if logits else "input"], "input")
    case["loss"] = "binary_cross_entropy"
    key = "logits" if logits else "probs"
    case[key] = _spec(x.shape, INPUTS if logits else UNIT)
    label = _float(call["label"], "label")
    case["soft_labels"] = _spec(label.shape, UNIT)
    arrays: list[tuple[str, Tensor | None]] = [(key, x), ("soft_labels", label)]
    for name in ("weight", "pos_weight") if logits else ("weight",):
        value = call[name]
        if value is not None:
            case[name] = _spec(_float(value, name).shape, UNIT)
            arrays.append((name, value))
    _reduction(case, call["reduction"])
    _dtypes(case, key, arrays)
    if any(_broadcast(t.shape, x.shape) != x.shape for _, t in arrays if t is not None):
        case["check_shapes"] = False
    return "paddle"


def _broadcast(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...] | None:
    out = []
    for i in range(max(len(a), len(b))):
        p = a[-1 - i] if i < len(a) else 1
        q = b[-1 - i] if i < len(b) else 1
        if p != q and 1 not in (p, q):
            return None
        out.append(q if p == 1 else p)
    return tuple(reversed(out))


def _sigmoid_focal_loss(call: Call, case: dict[str, Any]) -> str:
    x = _float(call["logit"], "logit")
    label = _float(call["label"], "label")
    case["loss"] = "sigmoid_focal"
    case["logits"] = _spec(x.shape, INPUTS)
    case["labels"] = _spec(label.shape)
    if label.shape != x.shape:
        case["check_shapes"] = False
    normalizer = call["normalizer"]
    if normalizer is not None:
        if not isinstance(normalizer, Tensor) or normalizer.size != 1:
            raise Unexpressible(f"normalizer {normalizer}: the suite's normalizer is one number")
        case["normalizer"] = FOCAL_NORMALIZER
    case["gamma"], case["alpha"] = float(call["gamma"]), float(call["alpha"])
    if not 0 <= case["alpha"] <= 1 or case["gamma"] < 0:
        raise Unexpressible(f"alpha={call['alpha']}, gamma={call['gamma']}: the suite takes alpha in [0, 1], gamma >= 0")
    _reduction(case, call["reduction"])
    _dtypes(case, "logits", [("logits", x), ("labels", label)])
    return "paddle"


def _kl_div(call: Call, case: dict[str, Any]) -> str:
    x = _float(call["input"], "input")
    label = _float(call["label"], "label")
    if len(x.shape) < 2:
        raise Unexpressible(f"input of shape {list(x.shape)}: the suite's KL cases have a batch axis, (N, C, ...)")
    case["loss"] = "kl_divergence"
    case["logits"] = _spec(_class_last(x.shape), INPUTS)
    case["soft_labels"] = _spec(_class_last(label.shape))  # paddle's variant moves the classes back last: the line's shape
    if label.shape != x.shape:
        case["check_shapes"] = False
    _reduction(case, call["reduction"], ("none", "mean", "sum", "batchmean"))
    _dtypes(case, "logits", [("logits", x), ("soft_labels", label)])
    return "paddle:log_target" if call["log_target"] else "paddle:functional"


def _label_smooth(call: Call, case: dict[str, Any]) -> str:
    label = _float(call["label"], "label")
    if len(label.shape) < 2:
        raise Unexpressible(f"label of shape {list(label.shape)}: the suite's smoothing runs on (N, ..., C) labels")
    prior = call["prior_dist"]
    if prior is not None:  # paddle:label_smooth smooths towards it, the others towards 1/C
        case["prior_dist"] = _spec(_float(prior, "prior_dist").shape)
        if prior.shape not in ((label.shape[-1],), (1, label.shape[-1])):
            case["check_shapes"] = False
    epsilon = call["epsilon"]
    if not isinstance(epsilon, (int, float)) or not 0 < epsilon < 1:
        raise Unexpressible(f"epsilon={epsilon!r}: the suite smooths with 0 < label_smoothing < 1")
    case["logits"] = _spec(_class_last(label.shape), INPUTS)
    case["soft_labels"] = _spec(_class_last(label.shape))
    case["label_smoothing"] = float(epsilon)
    _dtypes(case, "logits", [("logits", label), ("prior_dist", prior)])
    return "paddle:label_smooth"


MAPPERS = {
    "cross_entropy": _cross_entropy,
    "softmax_with_cross_entropy": _softmax_with_cross_entropy,
    "nll_loss": _nll_loss,
    "binary_cross_entropy": lambda call, case: _binary(call, case, logits=False),
    "binary_cross_entropy_with_logits": lambda call, case: _binary(call, case, logits=True),
    "sigmoid_focal_loss": _sigmoid_focal_loss,
    "kl_div": _kl_div,
    "label_smooth": _label_smooth,
}


# ---------------------------------------------------------------- files


def config_files(paths: Iterable[Path]) -> list[tuple[Path, str]]:
    """The files named and every .txt under a folder named, each with the name its ids use (a folder's
    files relative to it, a file by its name; a name two files share gets their parent folder's in front);
    a path that is neither is a UsageError."""
    found: list[tuple[Path, str]] = []
    for path in paths:
        if path.is_dir():
            found += [(p, str(p.relative_to(path))) for p in sorted(path.rglob("*.txt")) if p.is_file()]
        elif path.is_file():
            found.append((path, path.name))
        else:
            raise UsageError(
                f"conformance import paddleapitest: {path} is no file or folder. Give PaddleAPITest's configuration files "
                "(tester/api_config/*.txt, one call per line) or folders holding them."
            )
    names = Counter(name for _, name in found)
    return [(p, f"{p.parent.name}/{name}" if names[name] > 1 else name) for p, name in found]


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    try:
        with path.open("rb") as handle:
            for number, raw in enumerate(handle, 1):
                yield number, raw.decode("utf-8", errors="replace")
    except OSError as exc:
        raise UsageError(f"conformance import paddleapitest: cannot read {path} ({exc.strerror}).") from None


def read(paths: Iterable[Path]) -> Import:
    """Every configuration of the eight loss APIs in the files: the first line of each becomes a case
    (its id names that line), or is skipped with why; unreadable lines are `bad`."""
    result = Import()
    first: dict[tuple[str, tuple[tuple[str, Any], ...]], int] = {}
    repeats: Counter[int] = Counter()
    written: list[Written | Skipped] = []
    for path, name in config_files(paths):
        result.files.append(name)
        for number, text in _lines(path):
            if not text.strip() or text.lstrip().startswith("#"):
                continue
            result.lines += 1
            source = Source(name, number)
            try:
                call = parse(text)
            except BadLine as exc:
                result.bad.append((source, str(exc)))
                continue
            if call is None:
                result.other += 1
                continue
            key = (call.api, call.args)
            if key in first:
                repeats[first[key]] += 1
                continue
            first[key] = len(written)
            try:
                case, variant = to_case(call, source)
                written.append(Written(source, call, case, variant))
            except Unexpressible as exc:
                written.append(Skipped(source, call, str(exc)))
    for index, entry in enumerate(written):
        if isinstance(entry, Written):
            result.written.append(Written(entry.source, entry.call, entry.case, entry.variant, repeats[index]))
        else:
            result.skipped.append(entry)
    return result


# ---------------------------------------------------------------- writing


def outputs(out: Path) -> tuple[Path, Path]:
    """The case file, and its sibling for configurations with an array above `cases.MAX_ELEMENTS`."""
    return out, out.with_name(out.stem + "-large" + (out.suffix or ".yaml"))


def write(imported: Import, out: Path) -> list[Path]:
    """The case files (the large sibling only if there is a large configuration); returns those written."""
    small = [w for w in imported.written if w.largest <= cases.MAX_ELEMENTS]
    large = [w for w in imported.written if w.largest > cases.MAX_ELEMENTS]
    paths = []
    for path, group, note in zip(outputs(out), (small, large), ("", "large"), strict=True):
        if not group and note:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_document(imported, group, note), encoding="utf-8")
        paths.append(path)
    return paths


def _document(imported: Import, group: list[Written], note: str) -> str:
    head = [
        "# Imported from PaddleAPITest (PFCCLab/PaddleAPITest) by `conformance import paddleapitest`, from",
        *[f"#   {name}" for name in imported.files],
        "# One case per distinct configuration of the eight paddle loss APIs, its id naming the first line that has it",
        "# (FILE.L<line>), its description the variant that runs the call as written. Arrays are generated at the line's",
        "# shapes and dtypes with the peer's value ranges (conformance/importers/paddleapitest.py says which).",
    ]
    if note:
        most = max(w.largest for w in group)
        head.append(f"# Arrays above {cases.MAX_ELEMENTS:,} elements: run with --max-elements {most} (a CPU may lack the memory).")
    body = [f"  - {_yaml(w.case)}" for w in group]
    return "\n".join([*head, "cases:" if body else "cases: []", *body]) + "\n"


def _yaml(case: dict[str, Any]) -> str:
    """One case as YAML lines (JSON values are YAML flow values)."""
    return "\n    ".join(f"{key}: {json.dumps(value)}" for key, value in case.items())


# ---------------------------------------------------------------- the summary


def summary(imported: Import) -> list[str]:
    """What was imported, by API, what could not be expressed and why, and the bad lines: the lines the
    command prints."""
    lines = [
        f"{imported.lines:,} lines in {len(imported.files)} files: {imported.other:,} of other APIs, {len(imported.bad)} unreadable, "
        f"{len(imported.written) + len(imported.skipped):,} distinct loss configurations"
    ]
    lines.append(f"{'API':<34} {'configs':>8} {'written':>8} {'CPU':>6} {'not expressible':>16}")
    for api in APIS:
        mine = [w for w in imported.written if w.call.api == api]
        skipped = sum(1 for s in imported.skipped if s.call.api == api)
        cpu = sum(1 for w in mine if w.cpu_runnable) + sum(1 for s in imported.skipped if s.call.api == api and cpu_blocker(s.call) is None)
        if mine or skipped:
            lines.append(f"{api:<34} {len(mine) + skipped:>8} {len(mine):>8} {cpu:>6} {skipped:>16}")
    blocked = Counter(b for w in imported.written if (b := cpu_blocker(w.call)) is not None)
    for why, count in blocked.most_common():
        lines.append(f"written but not CPU-runnable: {count} ({why})")
    if imported.skipped:
        lines.append("not expressible:")
        lines += [f"  {s.source}: {s.why}" for s in imported.skipped]
    if imported.bad:
        lines.append("unreadable lines:")
        lines += [f"  {source}: {why}" for source, why in imported.bad]
    return lines
