"""The self-contained HTML report, built from results.json as it streams by.

Python computes what the page shows: the pair agreement heat map, the geometry of the sweep charts and,
per case, its values already formatted. The templates in `templates/` hold all markup (autoescape on);
CSS and JS are included inline, so the file opens from disk with no network.

The case list must stay usable at 10,000 cases, where one server-rendered block per case makes a 70 MB
page that takes half a minute to open. So the cases travel as one JSON document (repeated texts such as
code lines stored once) and the script builds a case's rows from `<template>` elements in the page when
they are shown: text is only ever set as text, never parsed as markup.

Differences are measured in the page against a *source* the reader picks (the run's `--source`, else
the reference), so each case carries every pair's differences (to 3 digits, with which part is beyond
tolerance), each result's documented knobs, and the knobs' words (`_vocabulary`); the source, search,
filters and open case live in the URL hash, so a link reproduces a view.

The parent's memory must stay flat in the number of cases, so no case is held longer than it takes to
read it: one pass over results.json keeps aggregates and spools each case's page data to a scratch
file, and the page is written from them in chunks. Past DETAILED cases the agreeing ones are only
listed, which keeps a 100,000-case page openable.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import math
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, NamedTuple
from urllib.parse import quote

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from conformance import compact, losses, reference, registry, results, summary

LARGE_INPUT = 30
MESSAGE_CHARS = 300
MAX_SWEEPS = 40
MAX_FILTER_VALUES = 40
LABEL_CHARS = 60
FAILURES_SHOWN = 100
CHUNK_BYTES = 1 << 16
DETAILED = 10_000
"""Up to this many cases the page holds every case in full. Above it, a case that agrees, meets its
expectation (or has none) and has no error, crash or off-documented result is only listed (id, place,
statuses, the default variants' losses, what the search reads): a 100,000-case page stays a size a browser opens, and
results.json has the details. Violated, divergent and failing cases are always in full."""
STATUS_FILTERS = ("ok", "error", "crashed", "unsupported", "off-doc", "differs")
PALETTE = ("#d62728", "#1f5fd6", "#e08a00", "#2a9d4b", "#8e44ad", "#555555")
CHART = {"width": 560, "height": 270, "left": 70, "right": 16, "top": 14, "bottom": 42}


def _fmt(value: Any, digits: int = 8) -> str:
    """Numbers as people read them: 8 significant digits, nan/inf spelled out, arrays flattened."""
    if value is None:
        return "–"
    if isinstance(value, list):
        flat = list(_flatten(value))
        shown = ", ".join(_fmt(v, digits) for v in flat[:12])
        return f"[{shown}{', …' if len(flat) > 12 else ''}]"
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return str(value)
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def _flatten(value: Any) -> Any:
    for v in value:
        if isinstance(v, list):
            yield from _flatten(v)
        else:
            yield v


def _literal(value: Any) -> str:
    """A parameter as written in a case file (compact JSON for lists and mappings, NaN spelled out)."""
    if isinstance(value, str):
        return value
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, (int, float)) and math.isfinite(value):
        return repr(value)
    return json.dumps(value, allow_nan=True)


def _count(value: Any) -> int:
    """How many numbers a (nested) list holds."""
    if not isinstance(value, list):
        return 0
    return sum(_count(v) for v in value) if value and isinstance(value[0], list) else len(value)


def _shape(value: Any) -> str:
    dims = []
    while isinstance(value, list):
        dims.append(len(value))
        value = value[0] if value else None
    return "×".join(map(str, dims))


def script_json(value: Any) -> Markup:
    """JSON safe inside a <script> element: NaN/±inf as the strings "NaN"/"Infinity"/"-Infinity"
    (JSON.parse rejects the bare words), and no `<`, `>` or `&`, so no `</script>` ends it early."""
    try:
        text = json.dumps(value, separators=(",", ":"), allow_nan=False)
    except ValueError:
        text = json.dumps(_finite(value), separators=(",", ":"), allow_nan=False)
    for char, escaped in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, escaped)
    return Markup(text)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


class _Strings:
    """Each distinct text stored once (code lines, knobs, APIs, descriptions, inputs): the variants of
    thousands of cases share most of them. The texts wait in `spool`, a file, as the page's JSON, found
    again by their digest: the array literals of a large file of literal cases are distinct in every
    case (57 MB of text at 10,000 exported cases), so holding them would grow with the run."""

    def __init__(self, spool: IO[bytes]) -> None:
        self.spool = spool
        self._index: dict[bytes, int] = {}

    def add(self, text: str) -> int:
        key = _digest(text)
        if key not in self._index:
            self.spool.write((b"," if self._index else b"") + str(script_json(text)).encode())
            self._index[key] = len(self._index)
        return self._index[key]

    def table(self) -> Iterator[Markup]:
        """The texts as the elements of a JSON array, comma-separated, in chunks."""
        self.spool.seek(0)
        while chunk := self.spool.read(CHUNK_BYTES):
            yield Markup(chunk.decode("utf-8"))

    def lines(self, code: str) -> list[int]:
        return [self.add(line) for line in code.split("\n")]


def _default_source(keys: list[str]) -> str | None:
    """The source the page starts from when the run names none: the float64 reference if it ran."""
    oracles = [k for k in keys if k in registry.oracles()]
    return oracles[0] if oracles else (keys[0] if keys else None)


def _compact(record: dict[str, Any]) -> dict[str, Any]:
    """Leave out what is absent: at 10,000 cases every omitted key counts."""
    return {k: v for k, v in record.items() if v is not None and v is not False and v != ""}


def _short(value: float | None) -> float | None:
    """A difference to 3 significant digits: what the page shows, and a tenth of the bytes."""
    if value is None or not math.isfinite(value):
        return value
    return float(f"{value:.3g}")


def _beyond(max_abs: float | None, max_rel: float | None, tol: dict[str, float]) -> bool:
    """Whether a difference exceeds the tolerance |a-b| <= atol + rtol*max(|a|,|b|). The record keeps the
    largest absolute and relative gaps, not their element: within atol, or within rtol, is within; a
    difference neither settles counts as beyond (the pair's own verdict then decides)."""
    if max_abs is None:
        return False
    if math.isnan(max_abs):
        return True
    return not (max_abs <= tol.get("atol", 0.0) or (max_rel is not None and max_rel <= tol.get("rtol", 0.0)))


def _pair_data(p: dict[str, Any], index: dict[str, int], tol: dict[str, float]) -> list[Any]:
    """[a, b (indexes of the case's results), |Δloss|, |Δgrad|, flags]: 1 the pair agrees, 2 its loss
    differs beyond tolerance, 4 its gradient does. A disagreeing pair always marks at least one part."""
    agree = bool(p.get("agree"))
    loss = not agree and _beyond(p.get("loss_max_abs"), p.get("loss_max_rel"), tol)
    grad = not agree and _beyond(p.get("grad_max_abs"), p.get("grad_max_rel"), tol)
    if not agree and not loss and not grad:  # the verdict says no: mark what moved, else the loss
        grad = bool(p.get("grad_max_abs"))
        loss = bool(p.get("loss_max_abs")) or not grad
    flags = agree * 1 + loss * 2 + grad * 4
    return [index[p["a"]], index[p["b"]], _short(p.get("loss_max_abs")), _short(p.get("grad_max_abs")), flags]


def _case_data(case: dict[str, Any], strings: _Strings, refs: _References) -> dict[str, Any]:
    """One case as the page's script shows it: numbers already formatted (so NaN and inf are words),
    repeated texts as indexes into `strings`, every pair's differences (the page measures against the
    source the reader picks), and the tokens the filters match on."""
    group_of = {key: i for i, group in enumerate(case["groups"]) for key in group}
    index = {key: i for i, key in enumerate(case["results"])}
    tol = case.get("tolerance") or {}
    rows, statuses = [], []
    for key, r in case["results"].items():
        off_doc = (r.get("documented") or {}).get("agrees") is False
        statuses += [f"{key}={r['status']}"] + [f"{key}=off-doc"] * off_doc
        rows.append(_result_data(key, r, group_of.get(key), strings))
    pairs = [_pair_data(p, index, tol) for p in case.get("pairs", []) if p["a"] in index and p["b"] in index]
    params = [(n, v) for n, v in case["params"].items() if n != "id"]
    expected = case.get("expected") or {}
    description = case.get("description") or ""
    return _compact(
        {
            "id": case["id"],
            "file": case["file"],
            "line": case.get("line"),
            "expect": case["expectation"],
            "message": case.get("expectation_message"),
            "groups": case["groups"],
            "description": strings.add(description) if description else None,
            "refs": refs.find(description) or None,
            "expected": _groups_text(expected.get("groups")),
            "expected_status": ", ".join(f"{k}={v}" for k, v in (expected.get("status") or {}).items()),
            "tolerance": ", ".join(f"{k} {v}" for k, v in tol.items()),
            "loss": str(case["params"].get("loss", "")),
            "params": [_param_data(n, v, strings) for n, v in params],
            "tokens": _tokens(params),
            "statuses": " ".join(statuses),
            "results": rows,
            "pairs": pairs or None,
            "explanation": [_explanation_data(e, case, strings) for e in case.get("explanation") or []] or None,
            "timeline": _timeline_data(case.get("timeline")),
        }
    )


def _tokens(params: list[tuple[str, Any]]) -> str:
    """`name=value` of the scalar parameters, which the parameter filter matches."""
    return " ".join(f"{n}={_literal(v)}" for n, v in params if not isinstance(v, (list, dict)))


def _timeline_data(points: list[dict[str, Any]] | None) -> dict[str, Any] | None:
    """The case's losses under each saved baseline, oldest first, then this run: a table as text."""
    if not points:
        return None
    keys = sorted({k for p in points for k in p["results"]})
    rows = []
    for point in points:
        versions = ", ".join(f"{k} {v}" for k, v in point["versions"].items() if k != "numpy")
        label = ("this run: " if point.get("current") else "") + versions
        rows.append([label] + [_value_text(point["results"].get(k)) for k in keys])
    return {"keys": keys, "rows": rows}


def _seconds(value: float | None) -> str | None:
    if value is None:
        return None
    return f"{value * 1000:.3g} ms" if value < 1 else f"{value:.3g} s"


def _result_data(key: str, r: dict[str, Any], group: int | None, strings: _Strings) -> dict[str, Any]:
    documented = r.get("documented") or {}
    knobs = {k: _literal(v) for k, v in (documented.get("knobs") or {}).items()}
    grad, count = r.get("grad"), _count(r.get("grad"))
    off = documented.get("agrees") is False
    arrays = [_array_data(what, r[what]) for what in ("loss", "grad") if compact.is_compact(r.get(what))]
    return _compact(
        {
            "key": key,
            "status": r["status"],
            "group": group,
            "dtype": r.get("dtype"),
            "message": strings.add(r["message"][:MESSAGE_CHARS]) if r.get("message") else None,
            "loss": _value_text(r.get("loss"), below=True),
            "grad": _value_text(grad, below=True) if compact.is_compact(grad) else f"{count} values" if count > 12 else _fmt(grad, 5),
            "arrays": arrays or None,
            "seconds": _seconds(r.get("seconds")),
            "documented": None if documented.get("agrees") is None else ("no" if off else "yes"),
            "documented_loss": _value_text(documented.get("loss")) if off else None,
            "documented_dloss": _fmt(documented.get("loss_max_abs"), 3) if off else None,
            "documented_dgrad": _fmt(documented.get("grad_max_abs"), 3) if off and documented.get("grad_max_abs") is not None else None,
            "knobs": strings.add(json.dumps(knobs, separators=(",", ":"))) if knobs else None,
            "api": strings.add(r.get("api") or ""),
            "code": strings.lines(r["code"]) if r.get("code") else None,
        }
    )


def _value_text(value: Any, below: bool = False) -> str:
    """A loss as the page writes it: the number(s), or for a large value (`compact`) its shape and dtype
    (`below`: a result's own value, whose statistics the case's table of large values shows)."""
    if compact.is_compact(value):
        return f"{_dims(value['shape'])} {value.get('dtype') or 'float64'} array" + (" (statistics below)" if below else "")
    return _fmt(value)


def _dims(shape: list[int]) -> str:
    return "×".join(map(str, shape)) or "scalar"


def _array_data(what: str, value: dict[str, Any]) -> dict[str, Any]:
    """A large value (`compact.form`) as a reader needs it: shape, dtype, the statistics of its finite
    elements and how many are not finite, a short digest, and its largest differences from the oracle's
    value with their indexes (those that are differences: a value equal to the oracle's has none)."""
    s = value["stats"]
    nonfinite = ", ".join(f"{s[k]} {label}" for k, label in (("nan", "NaN"), ("posinf", "+inf"), ("neginf", "-inf")) if s.get(k))
    largest = value.get("largest_differences")
    rows = None
    if largest:
        rows = [
            ["[" + ", ".join(map(str, index)) + "]", _fmt(mine), _fmt(other), _fmt(gap, 3)]
            for index, mine, other, gap in zip(largest["index"], largest["value"], largest["other"], largest["abs"], strict=True)
            if gap != 0
        ]
    return _compact(
        {
            "what": what,
            "shape": _dims(value["shape"]),
            "dtype": value.get("dtype") or "float64",
            "size": f"{value['size']:,}",
            "stats": [_fmt(s[k], 6) for k in ("min", "max", "mean", "std")],
            "nonfinite": nonfinite,
            "digest": str(value.get("digest", ""))[:12],
            "against": largest.get("against") if largest else None,
            "largest": rows,
        }
    )


def _summary(value: Any) -> str:
    """An array parameter over LARGE_INPUT numbers, by its shape."""
    return f"{_shape(value)} ({_count(value)} numbers)"


def _param_word(name: str, value: Any) -> str:
    """A parameter as the search reads it: `name=value`, a large array by its shape (`_summary`)."""
    return f"{name}={_summary(value) if _count(value) > LARGE_INPUT else _literal(value)}"


def _param_data(name: str, value: Any, strings: _Strings) -> dict[str, Any]:
    large = _count(value) > LARGE_INPUT
    return _compact(
        {
            "name": name,
            "text": strings.add(_literal(value)),
            "large": large,
            "summary": _summary(value) if large else None,
        }
    )


def _gap(a: Any, b: Any) -> float | None:
    """The largest |a - b| of two documented losses (NaN where both are NaN counts as equal; None where
    the shapes differ or a value is not finite)."""
    x, y = list(_flatten(a)) if isinstance(a, list) else [a], list(_flatten(b)) if isinstance(b, list) else [b]
    if len(x) != len(y) or not all(_numeric(v) for v in x + y):
        return None
    gaps = [0.0 if math.isnan(u) and math.isnan(v) else abs(u - v) for u, v in zip(x, y, strict=True)]
    return max(gaps, default=0.0) if all(math.isfinite(g) for g in gaps) else None


def _additivity(item: dict[str, Any], case: dict[str, Any]) -> dict[str, Any]:
    """Whether the knobs' effects, each measured alone, add up to the difference of the two documented
    formulas. They need not: one knob can change what another weighs or counts (the weights change
    the denominator's sum), or two can pull the loss in opposite directions."""
    effects = [k.get("effect") for k in item.get("knobs") or [] if k.get("effect")]
    documented = [(case["results"].get(key) or {}).get("documented") or {} for key in (item.get("a"), item.get("b"))]
    if not effects or any(e is None for e in effects) or not all("loss" in d for d in documented):
        return {}
    total = _gap(documented[0]["loss"], documented[1]["loss"])
    if total is None:
        return {}
    together = sum(effects)
    adds = abs(together - total) <= max(1e-9, 1e-3 * abs(total))
    return {"sum": _fmt(together, 4), "total": _fmt(total, 4), "additive": adds, "several": len(effects) > 1}


def _recipe_data(recipe: dict[str, Any], a: str, strings: _Strings) -> dict[str, Any]:
    """A recipe as run (its code stored line by line, ending in a line that prints the value), its value and verdict."""
    code = recipe.get("code") or ""
    target = _fmt(recipe["target"]) if "target" in recipe else None
    if code and target is not None:
        code = code.rstrip("\n") + f"\nprint(loss)  # {a} gave {target}"
    return _compact(
        {
            "code": strings.lines(code),
            "result": _fmt(recipe.get("result")),
            "target": target,
            "reproduces": bool(recipe.get("reproduces")),
            "message": strings.add(recipe["message"][:MESSAGE_CHARS]) if recipe.get("message") else None,
        }
    )


def _explanation_data(item: dict[str, Any], case: dict[str, Any], strings: _Strings) -> dict[str, Any]:
    """A diverging pair's explanation with its values as text: the knobs that differ (internal names and
    values; the page words them), whether their effects add up, and the recipe (its code stored line by
    line, since recipes of a matrix share most lines), ending in a line that prints the value."""
    shown = {}
    for field, target in (("recipe", item.get("a")), ("reverse", item.get("b"))):  # b reproducing a; a reproducing b
        recipe = item.get(field)
        if recipe:
            shown[field] = _recipe_data(recipe, str(target), strings)
            if recipe.get("change"):
                shown[field]["change"] = _recipe_data(recipe["change"], str(target), strings)
    return _compact(
        {
            "a": item.get("a"),
            "b": item.get("b"),
            "text": strings.add(item["text"]) if item.get("text") else None,
            "knobs": [
                [str(k.get("knob")), _literal(k.get("a")), _literal(k.get("b")), _fmt(k.get("effect"), 4)] for k in item.get("knobs") or []
            ]
            or None,
            **_additivity(item, case),
            "recipe": shown.get("recipe"),
            "reverse": shown.get("reverse"),
            "no_recipe": strings.add(item["no_recipe"]) if item.get("no_recipe") else None,
            "fit": _fit_data(item.get("fit")),
        }
    )


def _fit_data(fit: dict[str, Any] | None) -> dict[str, Any] | None:
    """A user's function's fit (`explain.fitted`): the knob settings that reproduce it, or the closest
    with the share of the difference it explains (shown only where the explanation names it: `closest_named`),
    and the settings this case cannot tell apart from them."""
    if not fit:
        return None
    exact = bool(fit.get("exact"))
    return _compact(
        {
            "exact": exact,
            "knobs": [[str(k), _literal(v)] for k, v in (fit.get("knobs") or {}).items()] or None,
            "distance": None if exact else _fmt(fit.get("distance"), 4),
            "share": None if exact or fit.get("share") is None else f"{fit['share']:.0%}",
            "most": bool(fit.get("closest_named")),
            "equivalent": [[str(k), [_literal(v) for v in values]] for k, values in (fit.get("equivalent") or {}).items()] or None,
        }
    )


class _References:
    """Upstream issue and pull-request references in case descriptions, as links: `owner/repo#123`,
    GitHub URLs, and `NAME #123` / `NAME issue #123` / `PR #123`, where NAME is a name a framework module
    lists in its optional `REPOSITORIES` (e.g. `{"paddle": "PaddlePaddle/Paddle"}`); a bare `PR #123`
    or `issue #123` belongs to the last such name written before it. Found once per distinct text."""

    URL = re.compile(r"https://github\.com/[\w.-]+/[\w.-]+/(?:issues|pull)/\d+")
    QUALIFIED = re.compile(r"\b([\w.-]+/[\w.-]+)#(\d+)")
    NUMBERED = re.compile(r"(?:\b(?:issue|PR|pull request)\s+)?#(\d+)", re.IGNORECASE)

    def __init__(self, repositories: dict[str, str]) -> None:
        self.repositories = {name.lower(): repo for name, repo in repositories.items()}
        names = sorted(self.repositories, key=len, reverse=True)
        self.names = re.compile(r"\b(" + "|".join(map(re.escape, names)) + r")\b", re.IGNORECASE) if names else None
        self.found: dict[str, list[list[Any]]] = {}

    def find(self, text: str) -> list[list[Any]]:
        """[start, end, url] of each reference in `text`, in order."""
        if text not in self.found:
            self.found[text] = self._scan(text) if "#" in text or "github.com" in text else []
        return self.found[text]

    def _scan(self, text: str) -> list[list[Any]]:
        spans: list[list[Any]] = [[m.start(), m.end(), m.group(0)] for m in self.URL.finditer(text)]
        taken = lambda start, end: any(s < end and start < e for s, e, _ in spans)  # noqa: E731
        for m in self.QUALIFIED.finditer(text):
            if not taken(m.start(), m.end()):
                spans.append([m.start(), m.end(), f"https://github.com/{m.group(1)}/issues/{m.group(2)}"])
        for m in self.NUMBERED.finditer(text):
            named = [n for n in self.names.finditer(text, 0, m.start())] if self.names else []
            if taken(m.start(), m.end()) or not named:
                continue
            adjacent = text[named[-1].end() : m.start()].strip().lower() in ("", "issue", "pr")
            if not adjacent and m.group(0).startswith("#"):  # a bare #12 far from any name: not a reference
                continue
            start = named[-1].start() if adjacent else m.start()
            repo = self.repositories[named[-1].group(1).lower()]
            spans.append([start, m.end(), f"https://github.com/{repo}/issues/{m.group(1)}"])
        return sorted(spans)


def _repositories() -> dict[str, str]:
    """Every framework module's `REPOSITORIES` (names written before an issue number -> GitHub repository)."""
    found: dict[str, str] = {}
    for name in registry.frameworks():
        for alias, repo in registry.framework(name).REPOSITORIES.items():
            found.setdefault(alias, repo)
    return found


def _groups_text(groups: list[list[str]] | None) -> str | None:
    return " ".join("[" + ", ".join(g) + "]" for g in groups) if groups else None


def _heat(rows: list[list[dict[str, Any]]]) -> list[list[dict[str, Any]]]:
    """Cells with a background from red (0) through orange and yellow to green (1), on a square scale so
    that 60% agreement already looks like a problem; grey where no case ran both."""
    for row in rows:
        for cell in row:
            f = cell["fraction"]
            cell["color"] = "#eceff1" if f is None else f"hsl({f * f * 120:.0f}, 70%, {86 - 8 * f:.0f}%)"
    return rows


class _Filters:
    """The choices of the filter bar: losses, `name=value` of scalar parameters with few values, keys.
    A parameter's values are collected up to one more than MAX_FILTER_VALUES: beyond that it offers none."""

    def __init__(self) -> None:
        self.values: dict[str, set[str]] = {}
        self.losses: set[str] = set()

    def add(self, case: dict[str, Any]) -> None:
        for name, value in case["params"].items():
            if name not in ("id", "loss") and not isinstance(value, (list, dict)):
                seen = self.values.setdefault(name, set())
                if len(seen) <= MAX_FILTER_VALUES:
                    seen.add(_literal(value))
        self.losses.add(str(case["params"].get("loss", "")))

    def choices(self, keys: list[str]) -> dict[str, Any]:
        params = [
            f"{n}={v}"
            for n in sorted(self.values)
            if 1 < len(self.values[n]) <= MAX_FILTER_VALUES
            for v in sorted(self.values[n], key=natural)
        ]
        return {"losses": sorted(self.losses - {""}), "params": params, "results": keys, "statuses": STATUS_FILTERS}


def _base_id(case: dict[str, Any]) -> str:
    return str(case["params"].get("id") or case["id"].split("[")[0])


def _numeric(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode(), digest_size=16).digest()


class _Point(NamedTuple):
    """One case of a possible sweep: what its chart needs and nothing else."""

    x: float
    losses: dict[str, float]  # the finite scalar losses of the default variants
    id: str
    diverges: bool
    violated: bool

    def rank(self, file: str) -> tuple[bool, bool, str, str]:
        """Its place in the page's case order, which also orders the sweeps and a sweep's equal x."""
        return (not self.violated, not self.diverges, file, self.id)


class Sweeps:
    """Diverging parameter sweeps, found as cases stream by: cases of one file and base id equal but for one
    numeric parameter that takes at least 3 values, one of them diverging. Each becomes a chart of the
    scalar loss of the default keys.

    Per case only a point is kept, under a digest of its other parameters; per candidate sweep, the
    literals of its first case's parameters for the chart's label (cut to LABEL_CHARS); per file and
    base id, whether each parameter varies.
    """

    def __init__(self) -> None:
        self.found: dict[tuple[str, str, str, bytes], tuple[tuple[tuple[str, str], ...], list[_Point]]] = {}
        self.first: dict[tuple[str, str], dict[str, bytes | None]] = {}  # a parameter's first value; None once it varies
        self.texts: dict[Any, Any] = {}  # repeated literals and label tuples stored once

    def add(self, case: dict[str, Any]) -> None:
        if "[" not in case["id"]:  # no matrix: the only case of its base id in its file (ids are unique there)
            return  # so never a sweep; a large file of such cases would otherwise fill `first` and `found`
        params, where = case["params"], (case["file"], _base_id(case))
        first = self.first.setdefault(where, {})
        numeric = [n for n, v in params.items() if _numeric(v) and n != "id"]
        labels: tuple[tuple[str, str], ...] = ()
        for name, value in params.items():
            literal = _literal(value)
            digest = _digest(literal)
            if first.setdefault(name, digest) not in (digest, None):
                first[name] = None
            if numeric:
                short = literal if len(literal) <= LABEL_CHARS else literal[: LABEL_CHARS - 1] + "…"
                labels += (self._once((name, self._once(short))),)
        if not numeric:
            return
        labels = self._once(labels)
        point = (
            {k: y for k, r in case["results"].items() if ":" not in k and (y := _scalar(r)) is not None},
            case["id"],
            len(case["groups"]) > 1,
            case["expectation"] == "violated",
        )
        for name in numeric:
            rest = _digest(json.dumps({k: v for k, v in params.items() if k != name}, sort_keys=True, default=str))
            found = self.found.setdefault((*where, name, rest), (labels, []))
            found[1].append(_Point(float(params[name]), *point))

    def _once(self, value: Any) -> Any:
        return self.texts.setdefault(value, value)

    def charts(self, keys: list[str]) -> list[dict[str, Any]]:
        """The first MAX_SWEEPS sweeps as chart geometry, in the page's order of their first case."""
        candidates = [
            (min(p.rank(where[0]) for p in points), where, labels, points)
            for where, (labels, points) in self.found.items()
            if len({p.x for p in points}) >= 3 and any(p.diverges for p in points)
        ]
        charts = []
        for _, (file, base, name, _), labels, points in sorted(candidates, key=lambda c: c[0]):
            varying = self.first[(file, base)]
            label = ", ".join(f"{n}={text}" for n, text in labels if varying.get(n, b"") is None and n != name)
            chart = _chart(file, sorted(points, key=lambda p: (p.x, p.rank(file))), name, keys)
            if chart:
                charts.append({"file": file, "base": base, "param": name, "label": label, **chart})
                if len(charts) == MAX_SWEEPS:
                    break
        return charts


def _chart(file: str, points: list[_Point], name: str, keys: list[str]) -> dict[str, Any] | None:
    """SVG geometry of one sweep: one line per distinct curve (keys with the same values share a line)."""
    curves: list[dict[str, Any]] = []
    for i, key in enumerate(keys):
        line = [(p.x, p.losses[key], p.id) for p in points if key in p.losses]
        if not line:
            continue
        same = next((cv for cv in curves if _same_curve(cv["points"], line)), None)
        if same:
            same["keys"].append(key)
        else:
            curves.append({"keys": [key], "points": line, "color": PALETTE[i % len(PALETTE)]})
    if not curves:
        return None
    xs = [p.x for p in points]
    ys = [y for cv in curves for _, y, _ in cv["points"]]
    x_ticks, y_ticks = _ticks(min(xs), max(xs)), _ticks(min(ys), max(ys))
    sx = _scale(x_ticks[0], x_ticks[-1], CHART["left"], CHART["width"] - CHART["right"])
    sy = _scale(y_ticks[0], y_ticks[-1], CHART["height"] - CHART["bottom"], CHART["top"])
    for cv in curves:
        cv["label"] = " = ".join(cv["keys"])
        cv["dots"] = [
            {"x": sx(x), "y": sy(y), "title": f"{cv['label']}: {name}={x:g}, loss {_fmt(y)}", "href": f"#{file}::{case_id}"}
            for x, y, case_id in cv["points"]
        ]
        cv["polyline"] = " ".join(f"{d['x']:.1f},{d['y']:.1f}" for d in cv["dots"])
    return {
        "curves": curves,
        **CHART,
        "x_ticks": [{"at": sx(v), "label": f"{v:.4g}"} for v in x_ticks],
        "y_ticks": [{"at": sy(v), "label": f"{v:.4g}"} for v in y_ticks],
    }


def _scalar(result: dict[str, Any] | None) -> float | None:
    if not result or result["status"] != "ok" or not _numeric(result.get("loss")):
        return None
    return float(result["loss"]) if math.isfinite(result["loss"]) else None


def _same_curve(a: list[tuple[float, float, Any]], b: list[tuple[float, float, Any]]) -> bool:
    return len(a) == len(b) and all(
        xa == xb and abs(ya - yb) <= 1e-6 * max(1.0, abs(ya)) for (xa, ya, _), (xb, yb, _) in zip(a, b, strict=True)
    )


def _ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering [lo, hi] (1, 2 or 5 times a power of ten apart)."""
    if hi - lo < 1e-12 * max(1.0, abs(hi)):
        lo, hi = lo - max(abs(lo) * 0.1, 0.5), hi + max(abs(hi) * 0.1, 0.5)
    raw = (hi - lo) / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    start = math.floor(lo / step + 1e-9) * step
    return [start + i * step for i in range(math.ceil((hi - start) / step - 1e-9) + 1)]


def _scale(lo: float, hi: float, out_lo: float, out_hi: float) -> Callable[[float], float]:
    return lambda v: out_lo + (v - lo) * (out_hi - out_lo) / (hi - lo)


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("conformance", "templates"),
        autoescape=select_autoescape(["html", "j2"], default_for_string=True, default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(fmt=_fmt, percent=summary.percent, script_json=script_json)
    return env


class _Report:
    """What the page needs, gathered in one pass over results.json: the aggregates (agreement counts,
    filter values, sweep points, the first failures) in memory, and each case's page data as JSON in
    `spool`, a file, with only its sort key and place kept here. Memory grows with the distinct texts of
    the strings table and a short index entry per case, not with the cases' data."""

    def __init__(self, spool: IO[bytes], detailed: bool, texts: IO[bytes]) -> None:
        self.spool = spool
        self.detailed = detailed
        self.strings = _Strings(texts)
        self.agreement = summary.PairAgreement()
        self.filters = _Filters()
        self.sweeps = Sweeps()
        self.failures: list[dict[str, Any]] = []  # the first FAILURES_SHOWN, by file then id
        self.index: list[tuple[bool, bool, str, tuple[Any, ...], int, int]] = []
        self.brief = 0
        self.refs = _References(_repositories())
        self.files: set[str] = set()

    def add(self, case: dict[str, Any]) -> None:
        self.agreement.add(case)
        self.filters.add(case)
        self.sweeps.add(case)
        violated = case["expectation"] == "violated"
        if violated:
            failure = {"id": case["id"], "file": case["file"], "line": case.get("line"), "message": case.get("expectation_message")}
            bisect.insort(self.failures, failure, key=lambda f: (f["file"], f["id"]))
            del self.failures[FAILURES_SHOWN:]
        brief = not self.detailed and not violated and _agrees_plainly(case)
        self.brief += brief
        self.files.add(case["file"])
        text = str(script_json(_brief_data(case, self.strings) if brief else _case_data(case, self.strings, self.refs))).encode()
        self.index.append((not violated, len(case["groups"]) <= 1, case["file"], natural(case["id"]), self.spool.tell(), len(text)))
        self.spool.write(text)

    def cases(self) -> Iterator[Markup]:
        """The cases' JSON, comma-separated, in chunks: violated first, then divergent, then the rest;
        within each by file, then id (its numbers as numbers: 0.0 before 0.05)."""
        self.index.sort()
        chunk: list[bytes] = []
        size = 0
        for n, (*_, offset, length) in enumerate(self.index):
            self.spool.seek(offset)
            chunk += [b"," if n else b"", self.spool.read(length)]
            size += length
            if size >= CHUNK_BYTES:
                yield Markup(b"".join(chunk).decode("ascii"))
                chunk, size = [], 0
        yield Markup(b"".join(chunk).decode("ascii"))


NUMBER = re.compile(r"((?<![\w.])-?\d+(?:\.\d+)?(?:e[-+]?\d+)?)")


def natural(text: str) -> tuple[Any, ...]:
    """A sort key that reads the numbers in a text as numbers: `s[x=0.0]` < `s[x=0.05]` < `s[x=0.1]`
    (as text, 0.05 sorts before 0.0 and 0.1 before 0.05). Texts alternate with numbers in the key."""
    return tuple(float(part) if i % 2 else part for i, part in enumerate(NUMBER.split(text)))


def links(files: set[str], page: Path) -> dict[str, str]:
    """Each case file as a link relative to the page (case files are named as given on the command
    line, relative to the directory the run started in, which is this process's too)."""
    base = os.path.abspath(page.parent)
    return {f: quote(Path(os.path.relpath(os.path.abspath(f), base)).as_posix()) for f in files}


def _vocabulary() -> dict[str, Any]:
    """The knobs in words, for the page: per knob its plain name (`reference.knob_labels`) and what a
    framework does at each value (the families' PHRASES), values keyed as the page shows them."""
    labels, phrases = reference.knob_labels(), losses.phrases()
    return {
        knob: {"label": labels.get(knob, knob.replace("_", " ")), "values": {_literal(v): p for v, p in phrases.get(knob, {}).items()}}
        for knob in sorted(set(labels) | set(phrases))
    }


def _agrees_plainly(case: dict[str, Any]) -> bool:
    """One group at most, and no result that errs, crashes or is off its documented formula: a case of
    a large run that the page may list without its details."""
    return len(case["groups"]) <= 1 and not any(
        r["status"] in ("error", "crashed") or (r.get("documented") or {}).get("agrees") is False for r in case["results"].values()
    )


def _brief_data(case: dict[str, Any], strings: _Strings) -> dict[str, Any]:
    """An agreeing case of a run over DETAILED cases: what its row, the filters and the search need, and
    the default variants' losses. The script builds its results (and its one group, of the ok ones) from
    `statuses`; the rest of the case is in results.json. What the search reads beyond the scalar
    parameters (`tokens`) travels as `words`, indexes into the strings table: the API names that ran, as
    one text per distinct set (a few dozen sets repeat over any number of cases), and each array
    parameter as the full form's search reads it."""
    params = [(n, v) for n, v in case["params"].items() if n != "id"]
    outcomes = case["results"]
    apis = sorted({r["api"] for r in outcomes.values() if r.get("api") and r["status"] != "unsupported"})
    words = [strings.add("\n".join(apis))] if apis else []
    words += [strings.add(_param_word(n, v)) for n, v in params if isinstance(v, (list, dict))]
    return _compact(
        {
            "id": case["id"],
            "file": case["file"],
            "line": case.get("line"),
            "expect": case["expectation"],
            "brief": True,
            "description": strings.add(case["description"]) if case.get("description") else None,
            "loss": str(case["params"].get("loss", "")),
            "tokens": _tokens(params),
            "words": words or None,
            "statuses": " ".join(f"{key}={r['status']}" for key, r in outcomes.items()),
            "losses": {key: _value_text(r.get("loss")) for key, r in outcomes.items() if ":" not in key and r["status"] == "ok"} or None,
        }
    )


def write(path: Path, results_path: Path, detailed: int | None = None) -> None:
    """The report of results.json, read in one streaming pass and written in chunks (Jinja2's `stream`),
    so neither the cases nor the page are ever whole in memory. Above `detailed` cases (default
    DETAILED), agreeing cases are listed briefly (`_brief_data`); violated, divergent and failing ones
    always in full."""
    detailed = DETAILED if detailed is None else detailed
    head = results.head(results_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # beside the report rather than in /tmp, which may be memory (tmpfs)
    with tempfile.TemporaryFile(dir=path.parent) as spool, tempfile.TemporaryFile(dir=path.parent) as texts:
        report = _Report(spool, head["summary"]["cases"] <= detailed, texts)
        for case in results.cases(results_path):
            report.add(case)
        keys = report.agreement.keys()
        defaults = summary.default_keys(keys)
        source = head.get("source") if head.get("source") in keys else _default_source(defaults or keys)
        page = (
            _environment()
            .get_template("report.html.j2")
            .stream(
                doc=head,
                failures=report.failures,
                matrix=_heat(report.agreement.rows(defaults)),
                matrix_all=_heat(report.agreement.rows(keys)) if len(keys) > len(defaults) else None,
                sweeps=report.sweeps.charts(defaults),
                filters=report.filters.choices(keys),
                keys=keys,
                sources=defaults + [k for k in [source] if k and k not in defaults],
                source=source,
                links=links(report.files, path),
                vocabulary=_vocabulary(),
                strings=report.strings.table(),
                cases=report.cases(),
                brief=report.brief,
                detailed=detailed,
                compact_above=compact.COMPACT_ABOVE,
            )
        )
        partial = path.with_name(path.name + ".part")
        page.dump(str(partial), encoding="utf-8")
        partial.replace(path)
