"""pytest plugin: each expanded case of a YAML case file is one test item.

Thin on purpose: it maps case files to items and failures to a readable table; the work is done by the
same `runner` and `results` as `conformance run`. Frameworks still run in their own worker processes,
in one batch per pytest process (under xdist, one batch per xdist worker), streamed item by item.
Registered through the `pytest11` entry point; the top-level conftest.py registers it when the package
is used from a checkout without being installed.
"""

from __future__ import annotations

import json
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from conformance import adapters, baseline, cases, explain, html, results, runner, summary
from conformance.cli import check_keys, selection
from conformance.errors import ConformanceError


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("conformance", "cross-framework loss conformance")
    group.addoption("--conformance-frameworks", default=None, help="frameworks to run (comma-separated; default all)")
    group.addoption("--conformance-only", default=None, help="run exactly these result keys")
    group.addoption("--conformance-json", default="reports/results.json", help="results.json to write ('' for none)")
    group.addoption("--conformance-html", default="reports/index.html", help="HTML report to write ('' for none)")
    group.addoption("--conformance-timeout", type=float, default=120.0, help="seconds one case may take in a worker")
    group.addoption("--conformance-baseline", default=None, help="fail items whose values moved since this baseline file")


def pytest_configure(config: pytest.Config) -> None:
    for name in adapters.FRAMEWORKS:
        config.addinivalue_line("markers", f"{name}: the case's expectation checks {name} results")
    for loss in cases.LOSSES:
        config.addinivalue_line("markers", f"{loss}: {loss.replace('_', ' ')} cases")
    try:
        config.stash[_STATE] = _State(config)
    except ConformanceError as exc:
        raise pytest.UsageError(str(exc)) from None


def pytest_collect_file(parent: pytest.Collector, file_path: Path) -> pytest.Collector | None:
    if file_path.suffix in (".yaml", ".yml"):
        return CaseFile.from_parent(parent, path=file_path)
    return None


class CaseFile(pytest.File):
    """A YAML case file; a bad one is a single collection error naming the file and line."""

    def collect(self) -> Iterator[pytest.Item]:
        loaded = cases.load_file(self.path)
        check_keys(loaded)
        for case in loaded:
            item = CaseItem.from_parent(self, name=case.id, case=case)
            for key in _named_keys(case):
                item.add_marker(adapters.framework_of(key))
            item.add_marker(case.loss)
            yield item

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, ConformanceError):
            return str(excinfo.value)
        return super().repr_failure(excinfo)


def _named_keys(case: cases.Case) -> set[str]:
    if case.expect is None:
        return set()
    return {k for g in case.expect.groups or [] for k in g} | set(case.expect.status or {}) | set(case.expect.values or {})


class ExpectationViolated(Exception):
    """The case's expected groups or statuses do not hold."""


class ValuesMoved(Exception):
    """Values of the case moved beyond tolerance (or changed status) since the baseline."""


class CaseItem(pytest.Item):
    def __init__(self, *, case: cases.Case, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.case = case
        self.record: dict[str, Any] | None = None

    def runtest(self) -> None:
        self.record = self.config.stash[_STATE].record_for(self)
        if self.record["expectation"] == "violated":
            raise ExpectationViolated(self.record["expectation_message"])
        old = self.config.stash[_STATE].baseline
        if old is not None:
            report = baseline.replay({"cases": [self.record], "versions": {}}, old, "")
            if baseline.has_changes(report):
                raise ValuesMoved(moved_table(report))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, ExpectationViolated) and self.record is not None:
            return failure_table(self.record)
        if isinstance(excinfo.value, ValuesMoved):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, max(self.case.line - 1, 0), f"case: {self.case.id}"


def failure_table(record: dict[str, Any]) -> str:
    """What a reader needs to see why the expectation failed: values, groups, largest gap, code."""
    lines = [f"{record['file']}::{record['id']}: {record['expectation_message']}", ""]
    lines.append(f"  {'result':<22} {'status':<11} loss")
    for key, r in record["results"].items():
        loss = json.dumps(r["loss"]) if r["status"] == "ok" else (r.get("message") or "").splitlines()[0][:90] if r.get("message") else ""
        lines.append(f"  {key:<22} {r['status']:<11} {loss[:100]}")
    expected = (record.get("expected") or {}).get("groups")
    lines += ["", f"  groups found:    {record['groups']}", f"  groups expected: {expected}"]
    worst = max(record["pairs"], key=lambda p: p["loss_max_abs"], default=None)
    if worst is not None:
        lines.append(
            f"  largest loss difference: {worst['a']} vs {worst['b']}: {worst['loss_max_abs']:.6g} abs, {worst['loss_max_rel']:.3g} rel"
        )
    groups = record["groups"]
    if len(groups) > 1:
        for group in groups:
            code = record["results"][group[0]].get("code")
            if code:
                lines += ["", f"  --- native code of {group[0]} (group {group}):", *("    " + c for c in code.splitlines())]
    return "\n".join(lines)


def moved_table(report: dict[str, Any]) -> str:
    lines = [f"  {'result':<22} {'what':<7} old -> new"]
    for row in report["status_changes"] + report["moved"]:
        lines.append(f"  {row['key']:<22} {row['what']:<7} {json.dumps(row['old'])[:60]} -> {json.dumps(row['new'])[:60]}")
    return "changed since the baseline:\n" + "\n".join(lines)


class _State:
    """Runs this process's case items in batches and collects their records for the reports.

    Without xdist the batch is every case item, streamed through the framework workers while the items
    run. Under xdist the case items are split into interleaved chunks (`chunk_of`), which the scheduler
    (`pytest_xdist_make_scheduler`) hands out whole, so each xdist worker streams the chunks it is given
    through its own framework workers, started once.
    """

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.workers: runner.Workers | None = None
        self.stream: Generator[tuple[cases.Case, dict[str, dict[str, Any]]], None, None] | None = None
        self.streaming: set[str] = set()
        self.ready: dict[str, dict[str, Any]] = {}
        self.records: list[dict[str, Any]] = []
        self.keys = selection(config.getoption("conformance_frameworks"), config.getoption("conformance_only"))
        path = config.getoption("conformance_baseline")
        self.baseline_path = path
        self.baseline = baseline.load(Path(path)) if path else None

    def record_for(self, item: CaseItem) -> dict[str, Any]:
        nodeid = item.case.nodeid
        if nodeid not in self.ready and nodeid not in self.streaming:
            self._start(item)
        while nodeid not in self.ready:
            assert self.stream is not None
            case, found = next(self.stream)
            self.streaming.discard(case.nodeid)
            self.ready[case.nodeid] = results.record(case, found)
        record = self.ready.pop(nodeid)
        self.records.append(record)
        return record

    def _start(self, item: CaseItem) -> None:
        """Stream the batch `item` belongs to (what is left of an earlier batch is finished first)."""
        for case, found in self.stream or ():
            self.ready[case.nodeid] = results.record(case, found)
        done = {r["file"] + "::" + r["id"] for r in self.records}
        batch = [i for i in item.session.items if isinstance(i, CaseItem)]
        workerinput = getattr(self.config, "workerinput", None)
        if workerinput is not None and workerinput.get("conformance_chunks"):  # our scheduler: whole chunks
            chunk = chunk_of(batch.index(item), workerinput["workercount"])
            batch = [i for n, i in enumerate(batch) if chunk_of(n, workerinput["workercount"]) == chunk]
        elif workerinput is not None:  # a distribution the user chose: batch by file, its coarsest common unit
            batch = [i for i in batch if i.path == item.path]
        todo = [i.case for i in batch if i.case.nodeid not in done and i.case.nodeid not in self.ready]
        if self.workers is None:
            self.workers = runner.Workers(self.keys, self.config.getoption("conformance_timeout"))
        self.streaming = {c.nodeid for c in todo}
        self.stream = self.workers.stream(todo, explain.recipe_requests)

    def versions(self) -> dict[str, str]:
        return self.workers.versions() if self.workers else {}

    def close(self) -> None:
        if self.stream is not None:
            self.stream.close()
        if self.workers is not None:
            self.workers.close()


CHUNKS_PER_WORKER = 4


def chunk_of(position: int, workers: int) -> int:
    """The chunk of the case item at `position` among the collected case items under `workers` xdist
    workers: interleaved, so every chunk mixes all files' cases and costs about the same."""
    return position % (CHUNKS_PER_WORKER * max(workers, 1))


def _chunked(config: pytest.Config) -> bool:
    """Whether the case items go out in chunks: under xdist's default distribution, not one the user chose."""
    return bool(config.getoption("dist") == "load")


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist controller: tell each worker whether its case items come in chunks (workers do not see
    the distribution option themselves)."""
    node.workerinput["conformance_chunks"] = _chunked(node.config)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """xdist controller: hand out case items in whole chunks (other tests grouped by module), unless
    the user chose another distribution than xdist's default `load`."""
    if not _chunked(config):
        return None
    from conformance.scheduling import CaseChunkScheduling

    return CaseChunkScheduling(config, log)


_STATE = pytest.StashKey[_State]()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """xdist controller: gather the records an xdist worker ran."""
    shipped = getattr(node, "workeroutput", {}).get("conformance")
    if shipped:
        data = json.loads(shipped)
        state = node.config.stash[_STATE]
        state.records.extend(data["records"])
        state.shipped_versions = {**getattr(state, "shipped_versions", {}), **data["versions"]}


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    state = config.stash.get(_STATE, None)
    if state is None:
        return
    state.close()
    if hasattr(config, "workerinput"):
        config.workeroutput["conformance"] = json.dumps({"records": state.records, "versions": state.versions()})  # type: ignore[attr-defined]
        return
    if not state.records:
        return
    versions = {**state.versions(), **getattr(state, "shipped_versions", {})}
    order = {id(c): i for i, c in enumerate(state.records)}
    records = sorted(state.records, key=lambda r: (r["file"], order[id(r)]))
    doc = results.document(records, versions, {"runner": "pytest"})
    if state.baseline is not None:
        doc["baseline"] = baseline.replay(doc, state.baseline, state.baseline_path)
    json_path, html_path = config.getoption("conformance_json"), config.getoption("conformance_html")
    root = Path(config.rootpath)
    if json_path:
        results.write(root / json_path, doc)
    if html_path:
        html.write(root / html_path, doc)
        summary.write((root / (json_path or html_path)).parent / "summary.md", doc, root / html_path)
