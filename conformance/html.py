"""The self-contained HTML report, rendered from the same document as results.json.

Markup lives in `templates/report.html.j2` (autoescape on); CSS and JS are inlined so the file opens
from disk with no network.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape


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


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("conformance", "templates"),
        autoescape=select_autoescape(["html", "j2"], default_for_string=True, default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["fmt"] = _fmt
    return env


def render(doc: dict[str, Any]) -> str:
    cases = sorted(doc["cases"], key=lambda c: (c["expectation"] != "violated", len(c["groups"]) <= 1, c["file"], c["id"]))
    return _environment().get_template("report.html.j2").render(doc=doc, cases=cases)


def write(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(doc), encoding="utf-8")
