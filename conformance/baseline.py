"""Baselines: every value of a run, saved with the versions that produced it, and the check that
reports what moved since.

A baseline is plain JSON meant to be committed (default folder `cases/baselines/`, named after the
versions). Replaying it against a new run compares, per case and result key, the status, the loss and
the gradient under the case's tolerance (its size allowance where the case has one: `compare.allowance`),
and counts separately the values that moved only within it. A value of more than `compact.COMPACT_ABOVE`
elements is kept in its compact form and replayed by `compact.replay` (what that can and cannot detect:
`conformance.compact`).
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

from conformance import compact
from conformance.agreement import Difference, difference
from conformance.cases import Case, read_file
from conformance.digits import shortest
from conformance.errors import CaseError, UsageError
from conformance.records import Baseline, BaselineReport, CaseRecord, Finding, Result, value_json

FOLDER = Path("cases/baselines")
SCHEMA_VERSION = 2  # 2: one case per line, values at their dtype's digits, no code or messages


def default_path(versions: dict[str, str]) -> Path:
    """`cases/baselines/torch-2.13.0+cpu_paddlepaddle-3.3.1_....json`: the versions name the file."""
    slug = "_".join(f"{k}-{v}" for k, v in sorted(versions.items()) if k != "numpy")
    return FOLDER / (re.sub(r"[^A-Za-z0-9_.+-]", "-", slug) + ".json")


UNSETTLED = "the compact value changed; every check it allows holds"
SAME = "="  # a value written as "=KEY" is the value of result KEY of the same case (variants often agree exactly)


def entry(record: dict[str, Any]) -> dict[str, Any]:
    """What a baseline keeps of one case record: per result key its status, output dtype and (if ok)
    loss and gradient; nothing that can be recomputed (code, messages, comparisons). A loss or gradient
    equal to an earlier result's of the same case, digit for digit, is written as "=KEY"."""
    results: dict[str, dict[str, Any]] = {}
    for key, r in record["results"].items():
        kept: dict[str, Any] = {"status": r["status"]}
        if r["status"] == "ok":
            kept["dtype"] = r.get("dtype")
            for what in ("loss", "grad"):
                value = _kept(shortest(r.get(what), r.get("dtype")))
                same = next((k for k, other in results.items() if value is not None and other.get(what) == value), None)
                kept[what] = f"{SAME}{same}" if same is not None else value
        results[key] = kept
    return {"tolerance": record["tolerance"], "results": results}


def _kept(value: Any) -> Any:
    """A compact value without its differences from the oracle (the oracle's own value is kept)."""
    if compact.is_compact(value):
        return {k: v for k, v in value.items() if k != "largest_differences"}
    return value


def _expanded(values: dict[str, Any]) -> dict[str, Any]:
    """The baseline's values with every "=KEY" replaced by that result's value."""
    for case in values.values():
        results = case["results"]
        for result in results.values():
            for what in ("loss", "grad"):
                value = result.get(what)
                if isinstance(value, str) and value.startswith(SAME):
                    result[what] = results[value[len(SAME) :]][what]
    return values


class Saver:
    """Writes a baseline as the cases complete: one case per line, so a framework upgrade's diff shows
    the cases whose values moved."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.partial = path.with_suffix(path.suffix + ".tmp")
        self.out = self.partial.open("w", encoding="utf-8")
        self.count = self.values = 0

    def add(self, record: dict[str, Any]) -> None:
        kept = entry(record)
        separator = ",\n" if self.count else ""
        self.out.write(separator + json.dumps(f"{record['file']}::{record['id']}") + ":" + json.dumps(kept, separators=(",", ":")))
        self.count += 1
        self.values += sum(1 for r in kept["results"].values() for k in ("loss", "grad") if r.get(k) is not None)

    def finish(self, versions: dict[str, str]) -> None:
        self.out.close()
        head = json.dumps({"schema_version": SCHEMA_VERSION, "versions": versions}, separators=(",", ":"))
        with self.path.open("w", encoding="utf-8") as out, self.partial.open(encoding="utf-8") as body:
            out.write(head[:-1] + ',"values":{\n')
            shutil.copyfileobj(body, out)
            out.write("\n}}\n")
        self.partial.unlink()


def save(doc: dict[str, Any], path: Path) -> None:
    """A baseline of a whole results document (the streaming `Saver` does the same case by case)."""
    saver = Saver(path)
    for case in doc["cases"]:
        saver.add(case)
    saver.finish(doc["versions"])


def load(path: Path) -> Baseline:
    """A baseline file read back as its record (every "=KEY" expanded), or a usage error saying why not."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"baseline {path}: cannot read a baseline there ({exc})") from None
    if not isinstance(data, dict) or "values" not in data or "versions" not in data:
        raise UsageError(f"baseline {path}: not a baseline file (no 'versions'/'values'; save one with `conformance baseline save`)")
    _expanded(data["values"])
    return Baseline.from_json(data)


class Replay:
    """Replays a baseline case by case as records complete, and says at the end what no record matched.

    Per record: a status or output dtype that changed, a loss or gradient that moved beyond the case's
    tolerance (`Finding`s, with the knob setting that explains an old loss where the model has one),
    how many values moved only within tolerance, and the case's loss under every baseline saved next to
    this one (its `timeline`). At the end (`report`): the baselined cases and result keys that are gone
    (renamed, removed: they make the run fail) and the cases that are new (no baseline yet).
    """

    def __init__(self, old: Baseline, source: str, folder: Path | None = None) -> None:
        self.old, self.source = old, source
        self.saved = _saved(folder) if folder is not None else []
        self.findings: list[Finding] = []
        self.compared = self.within = self.unsettled = 0
        self.seen: set[str] = set()
        self.files: set[str] = set()
        self.gone_keys: list[dict[str, str]] = []
        self.new: list[str] = []

    def check(self, case: Case, record: CaseRecord, keys: dict[str, set[str] | None], versions: dict[str, str]) -> CaseRecord:
        """The record with its baseline findings and timeline (`keys`: the frameworks this run ran, each
        with the result keys asked of it, None for all; `versions`: what ran them)."""
        name = record.nodeid
        self.seen.add(name)
        self.files.add(record.file)
        before = self.old.values.get(name)
        timeline = _timeline(name, record, self.saved, versions)
        if before is None:
            self.new.append(name)
            return replace(record, timeline=timeline)
        findings: list[Finding] = []
        compared = within = 0
        tol = record.comparison.allowance or record.comparison.tolerance
        for key, then in before.results.items():
            now = record.results.get(key)
            if now is None:
                if _asked(key, keys):
                    self.gone_keys.append({"case": name, "key": key})
                continue
            if then.status != now.status:
                findings.append(Finding(name, key, "status", then.status, now.status, message=now.message, dtype=now.dtype))
                continue
            if now.status != "ok":
                continue
            if then.dtype != now.dtype:
                findings.append(Finding(name, key, "dtype", then.dtype, now.dtype, dtype=now.dtype))
            for what in ("loss", "grad"):
                old_value, new_value = then.value(what), getattr(now, what)
                if old_value is None or new_value is None:
                    continue
                compared += 1
                found = _moved(old_value, new_value, now.dtype, tol)
                if not found.agree:
                    knobs = _knobs_explaining(case, now, old_value, tol) if what == "loss" and not compact.is_compact(old_value) else None
                    findings.append(
                        Finding(name, key, what, old_value, new_value, found.max_abs, found.max_rel, knobs=knobs, dtype=now.dtype)
                    )
                elif found.max_abs > 0 or found.reason == UNSETTLED:
                    within += 1
                    self.unsettled += found.reason == UNSETTLED
        self.findings.extend(findings)
        self.compared += compared
        self.within += within
        return replace(record, findings=tuple(findings), within_tolerance=within, compared=compared, timeline=timeline)

    def gone(self) -> list[str]:
        """Baselined cases this run should have had and did not: no longer in a case file it ran, or whose
        file is gone. A file the run did not name is not gone, nor is a case of a file it ran only part of
        (`pytest -k`): such a file is read again to see which cases it still has."""
        out = []
        still: dict[str, set[str]] = {}
        for name in self.old.values:
            file = name.split("::", 1)[0]
            if name in self.seen:
                continue
            if file in self.files:
                if file not in still:
                    still[file] = _case_names(Path(file))
                if name not in still[file]:
                    out.append(name)
            elif not Path(file).exists():
                out.append(name)
        return out

    def report(self, versions: dict[str, str]) -> dict[str, Any]:
        return {
            "file": self.source,
            "old_versions": self.old.versions,
            "new_versions": versions,
            "compared": self.compared,
            "moved": [f.to_json() for f in self.findings if f.moved],
            "within_tolerance": self.within,
            "within_tolerance_compact": self.unsettled,
            "status_changes": [f.to_json() for f in self.findings if not f.moved],
            "gone_cases": self.gone(),
            "gone_keys": self.gone_keys,
            "new_cases": self.new,
        }


def _asked(key: str, keys: dict[str, set[str] | None]) -> bool:
    """Whether this run asked for result key `key`: its framework ran it (all of its keys, or `--only` it)."""
    framework = key.split(":", 1)[0]
    return framework in keys and (keys[framework] is None or key in keys[framework])  # type: ignore[operator]


def _case_names(path: Path) -> set[str]:
    """The cases a case file has now (none if it no longer loads: its cases are gone)."""
    try:
        return {case.nodeid for case in read_file(path)}
    except CaseError:
        return set()


def _moved(old: Any, new: Any, dtype: str | None, tol: dict[str, float]) -> Difference:
    """How a baseline value and this run's compare: `compact.replay` for a compact baseline value (its
    reason UNSETTLED where the values changed but every check holds), else `compare.difference` on
    every element (a large new value as it is, a small one at its dtype's digits, as baselines keep it)."""
    if compact.is_compact(old):
        max_abs, max_rel, agree, exact = compact.replay(old, new, tol)
        return Difference(max_abs, max_rel, agree, None if exact else UNSETTLED)
    if compact.large(new):
        return difference(old, new, **tol)
    return difference(old, shortest(new, dtype), **tol)


def has_changes(report: dict[str, Any]) -> bool:
    """Whether a replay fails the run: a value or status moved, or a baselined case or key is gone."""
    return bool(report["moved"] or report["status_changes"] or report.get("gone_cases") or report.get("gone_keys"))


def _knobs_explaining(case: Case, result: Result, old_loss: Any, tol: dict[str, float]) -> tuple[str, ...] | None:
    """Which knob of the result's documented point, set otherwise, gives the baseline's old loss."""
    if result.documented is None:
        return None
    from conformance.explain import attribute
    from conformance.reference import Knobs

    return tuple(attribute(case, Knobs.of(result.documented.knobs), old_loss, tol))


def table(reports: list[tuple[str, BaselineReport]]) -> str:
    """A Markdown table of version steps (one row per replayed baseline), then one line per change:
    the result key, what changed and the cases that show it."""
    rows = [
        "| step | old versions | new versions | values compared | moved beyond tolerance | moved within tolerance | status changes |",
        "|---|---|---|---|---|---|---|",
    ]
    changes: list[str] = []
    for name, report in reports:
        old, new = report.old_versions, report.new_versions
        rows.append(
            f"| {name} | {_versions(old)} | {_versions({k: new[k] for k in new if k in old})} | {report.compared} "
            f"| {len(report.moved)} | {report.within_tolerance} | {len(report.status_changes)} |"
        )
        grouped: dict[tuple[str, str, str], list[str]] = {}
        for finding in report.status_changes:
            grouped.setdefault((finding.key, finding.what, f"{finding.old} -> {finding.new}"), []).append(finding.case)
        for finding in report.moved:
            grouped.setdefault((finding.key, finding.what, "moved"), []).append(finding.case)
        for (key, what, how), names in grouped.items():
            shown = ", ".join(names[:6]) + (f", ... ({len(names)} cases)" if len(names) > 6 else "")
            changes.append(f"- {name}: `{key}` {what} {how}: {shown}")
    if not changes:
        changes.append("- nothing moved in any step")
    return "\n".join(rows + [""] + changes)


def _versions(versions: dict[str, str]) -> str:
    return ", ".join(f"{k} {v}" for k, v in versions.items() if k != "numpy")


def _saved(folder: Path) -> list[Baseline]:
    """Every baseline in `folder`, oldest versions first."""
    saved = []
    for path in sorted(folder.glob("*.json")):
        try:
            saved.append(load(path))
        except UsageError:
            continue
    saved.sort(key=lambda b: tuple(_version_key(v) for _, v in sorted(b.versions.items())))
    return saved


def _timeline(name: str, record: CaseRecord, saved: list[Baseline], versions: dict[str, str]) -> tuple[dict[str, Any], ...]:
    """The case's loss under every saved baseline, then this run (empty if no baseline has the case)."""
    points = []
    for old in saved:
        before = old.values.get(name)
        if before is not None:
            losses = {k: r.loss if r.ok else r.status for k, r in before.results.items()}
            points.append({"versions": old.versions, "results": losses})
    if not points:
        return ()
    now = {k: value_json(r.loss, r.dtype) if r.ok else r.status for k, r in record.results.items()}
    return (*points, {"versions": versions, "results": now, "current": True})


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", version)[:3])
