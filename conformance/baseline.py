"""Baselines: every value of a run, saved with the versions that produced it, and the check that
reports what moved since.

A baseline is plain JSON meant to be committed (default folder `cases/baselines/`, named after the
versions). Replaying it against a new run compares, per case and result key, the status, the loss and
the gradient under the case's tolerance, and counts separately the values that moved only within it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from conformance.compare import difference
from conformance.errors import UsageError

FOLDER = Path("cases/baselines")
SCHEMA_VERSION = 1


def default_path(versions: dict[str, str]) -> Path:
    """`cases/baselines/torch-2.13.0+cpu_paddlepaddle-3.3.1_....json`: the versions name the file."""
    slug = "_".join(f"{k}-{v}" for k, v in sorted(versions.items()) if k != "numpy")
    return FOLDER / (re.sub(r"[^A-Za-z0-9_.+-]", "-", slug) + ".json")


def snapshot(doc: dict[str, Any]) -> dict[str, Any]:
    """The baseline of a results document: values only, keyed by `file::id` and result key."""
    values: dict[str, dict[str, Any]] = {}
    for case in doc["cases"]:
        values[f"{case['file']}::{case['id']}"] = {
            "tolerance": case["tolerance"],
            "results": {key: {k: r.get(k) for k in ("status", "loss", "grad", "dtype", "message")} for key, r in case["results"].items()},
        }
    return {"schema_version": SCHEMA_VERSION, "versions": doc["versions"], "values": values}


def save(doc: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(snapshot(doc), indent=1, allow_nan=True) + "\n", encoding="utf-8")


def load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"baseline {path}: cannot read a baseline there ({exc})") from None
    if not isinstance(data, dict) or "values" not in data or "versions" not in data:
        raise UsageError(f"baseline {path}: not a baseline file (no 'versions'/'values'; save one with `conformance baseline save`)")
    return data


def replay(doc: dict[str, Any], old: dict[str, Any], source: str) -> dict[str, Any]:
    """What moved between the baseline `old` and the results document `doc`.

    moved: values beyond tolerance (case, key, loss/grad, old and new values);
    within_tolerance: values that changed but stay inside the tolerance (count);
    status_changes: a status that changed (e.g. an error that appeared) or an output dtype that changed.
    """
    moved: list[dict[str, Any]] = []
    changes: list[dict[str, Any]] = []
    compared = within = 0
    for case in doc["cases"]:
        name = f"{case['file']}::{case['id']}"
        before = old["values"].get(name)
        if before is None:
            continue
        tol = case["tolerance"]
        for key, now in case["results"].items():
            then = before["results"].get(key)
            if then is None:
                continue
            base = {"case": name, "key": key}
            if then["status"] != now["status"]:
                changes.append({**base, "what": "status", "old": then["status"], "new": now["status"], "message": now.get("message")})
                continue
            if then.get("dtype") != now.get("dtype") and now["status"] == "ok":
                changes.append({**base, "what": "dtype", "old": then.get("dtype"), "new": now.get("dtype")})
            if now["status"] != "ok":
                continue
            for what in ("loss", "grad"):
                if then.get(what) is None or now.get(what) is None:
                    continue
                compared += 1
                found = difference(then[what], now[what], **tol)
                if not found.agree:
                    moved.append(
                        {**base, "what": what, "old": then[what], "new": now[what], "max_abs": found.max_abs, "max_rel": found.max_rel}
                    )
                elif found.max_abs > 0:
                    within += 1
    return {
        "file": source,
        "old_versions": old["versions"],
        "new_versions": doc["versions"],
        "compared": compared,
        "moved": moved,
        "within_tolerance": within,
        "status_changes": changes,
    }


def has_changes(report: dict[str, Any]) -> bool:
    return bool(report["moved"] or report["status_changes"])


def table(reports: list[tuple[str, dict[str, Any]]]) -> str:
    """A Markdown table of version steps (one row per replayed baseline), then one line per change:
    the result key, what changed and the cases that show it."""
    rows = [
        "| step | old versions | new versions | values compared | moved beyond tolerance | moved within tolerance | status changes |",
        "|---|---|---|---|---|---|---|",
    ]
    changes: list[str] = []
    for name, report in reports:
        old, new = report["old_versions"], report["new_versions"]
        rows.append(
            f"| {name} | {_versions(old)} | {_versions({k: new[k] for k in new if k in old})} | {report['compared']} "
            f"| {len(report['moved'])} | {report['within_tolerance']} | {len(report['status_changes'])} |"
        )
        grouped: dict[tuple[str, str, str], list[str]] = {}
        for row in report["status_changes"]:
            grouped.setdefault((row["key"], row["what"], f"{row['old']} -> {row['new']}"), []).append(row["case"])
        for row in report["moved"]:
            grouped.setdefault((row["key"], row["what"], "moved"), []).append(row["case"])
        for (key, what, how), names in grouped.items():
            shown = ", ".join(names[:6]) + (f", ... ({len(names)} cases)" if len(names) > 6 else "")
            changes.append(f"- {name}: `{key}` {what} {how}: {shown}")
    if not changes:
        changes.append("- nothing moved in any step")
    return "\n".join(rows + [""] + changes)


def _versions(versions: dict[str, str]) -> str:
    return ", ".join(f"{k} {v}" for k, v in versions.items() if k != "numpy")


def timeline(doc: dict[str, Any], folder: Path) -> None:
    """Each case's loss under every baseline saved in `folder`, oldest versions first, then this run:
    stored per case as `timeline` = [{"versions", "results": {key: loss}}]."""
    saved = []
    for path in sorted(folder.glob("*.json")):
        try:
            saved.append(load(path))
        except UsageError:
            continue
    saved.sort(key=lambda b: tuple(_version_key(v) for _, v in sorted(b["versions"].items())))
    for case in doc["cases"]:
        name = f"{case['file']}::{case['id']}"
        points = []
        for old in saved:
            before = old["values"].get(name)
            if before:
                losses = {k: r.get("loss") if r["status"] == "ok" else r["status"] for k, r in before["results"].items()}
                points.append({"versions": old["versions"], "results": losses})
        if points:
            now = {k: r.get("loss") if r["status"] == "ok" else r["status"] for k, r in case["results"].items()}
            case["timeline"] = points + [{"versions": doc["versions"], "results": now, "current": True}]


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", version)[:3])
