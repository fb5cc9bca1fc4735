"""The pytest side of case files: items, their failure tables, and where their records come from.

Imported by the plugin (`conformance.plugin`) only when a case file is collected, so that a project
with no case file imports nothing of this package's machinery.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conformance import adapters, baseline, cases, registry, service, spool, user
from conformance.cli import check_case_keys, engine_choice, selection
from conformance.digits import number
from conformance.errors import ConformanceError
from conformance.pipeline import Outputs, Pipeline
from conformance.records import CaseRecord, Finding, plain

STATE = pytest.StashKey["State"]()


class CaseFile(pytest.File):
    """A YAML case file; a bad one is a single collection error naming the file and line."""

    def collect(self) -> Iterator[pytest.Item]:
        """The file's cases, read one at a time; each item keeps its case in the session's spool (on
        disk), so collecting a large file holds one case in memory, not the file."""
        state = self.config.stash[STATE]
        state.prepare()
        _markers(self.config)
        known = user.known_keys()
        for case in cases.read_file(self.path):
            check_case_keys(case, known)
            item = CaseItem.from_parent(self, name=case.id, case=case, handle=state.spool.add(case))
            for key in _named_keys(case):
                item.add_marker(adapters.framework_of(key))
            item.add_marker(case.loss)
            yield item

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, ConformanceError):
            return str(excinfo.value)
        return super().repr_failure(excinfo)


def _markers(config: pytest.Config) -> None:
    """A marker per framework and per loss family (`-m torch`), registered when case files are collected."""
    for name in registry.frameworks():
        config.addinivalue_line("markers", f"{name}: the case's expectation checks {name} results")
    for loss in registry.losses():
        config.addinivalue_line("markers", f"{loss}: {loss.replace('_', ' ')} cases")


def _named_keys(case: cases.Case) -> set[str]:
    if case.expect is None:
        return set()
    statuses = set(case.expect.status or {}) - {cases.ANY_RESULT}  # '*': every result not named
    return {k for g in case.expect.groups or [] for k in g} | statuses | set(case.expect.values or {})


class ExpectationViolated(Exception):
    """The case's expected groups or statuses do not hold."""


class ValuesMoved(Exception):
    """Values of the case moved beyond tolerance (or changed status) since the baseline."""


class CaseItem(pytest.Item):
    """A case's item: its case stays in the session's spool (`handle`), read back when it is evaluated."""

    def __init__(self, *, case: cases.Case, handle: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.handle = handle
        self.case_id, self.case_line, self.case_nodeid = case.id, case.line, case.nodeid
        self.record: CaseRecord | None = None

    @property
    def case(self) -> cases.Case:
        return self.config.stash[STATE].spool.get(self.handle)

    def runtest(self) -> None:
        record = self.config.stash[STATE].record_for(self)
        if record.comparison.expectation == "violated":
            self.record = record  # kept for the failure table; a passing item keeps nothing (flat memory)
            raise ExpectationViolated(record.comparison.expectation_message)
        if record.findings:
            raise ValuesMoved(moved_table(record.findings))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, ExpectationViolated) and self.record is not None:
            return failure_table(self.record.to_json())
        if isinstance(excinfo.value, (ValuesMoved, ConformanceError)):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, max(self.case_line - 1, 0), f"case: {self.case_id}"


def failure_table(record: dict[str, Any]) -> str:
    """What a reader needs to see why the expectation failed: values, groups, largest gap, code."""
    lines = [f"{record['file']}::{record['id']}: {record['expectation_message']}", ""]
    lines.append(f"  {'result':<22} {'status':<11} loss")
    for key, r in record["results"].items():
        loss = (
            number(r["loss"], r.get("dtype"))
            if r["status"] == "ok"
            else (r.get("message") or "").splitlines()[0][:90]
            if r.get("message")
            else ""
        )
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


def moved_table(findings: tuple[Finding, ...]) -> str:
    lines = [f"  {'result':<22} {'what':<7} old -> new"]
    for row in sorted(findings, key=lambda f: f.moved):
        lines.append(f"  {row.key:<22} {row.what:<7} {number(plain(row.old), row.dtype)[:60]} -> {number(plain(row.new), row.dtype)[:60]}")
    return "changed since the baseline:\n" + "\n".join(lines)


class State:
    """Where this process's case items get their records, and where the records go.

    Without xdist the batch is every case item, streamed through this process's pipeline while the
    items run. Under xdist the controller evaluates the collected cases once for all xdist workers
    (`service.Service`), and each xdist worker asks it for the record of each item it runs
    (`service.Remote`): framework workers are started once, not once per xdist worker. Either way the
    records are written by the process that evaluated them, in evaluation order, through `Outputs`.
    """

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
        self.spool = spool.Spool()  # the collected cases, on disk until they are evaluated
        self.pipeline: Pipeline | None = None
        self.outputs: Outputs | None = None
        self.stream: Iterator[tuple[cases.Case, CaseRecord]] | None = None
        self.ready: dict[str, CaseRecord] = {}
        self.served: dict[str, CaseRecord] = {}
        self.service: service.Service | None = None
        self.remote: service.Remote | None = None
        self.gone: list[str] = []
        self.chosen = config.getoption("conformance_frameworks"), config.getoption("conformance_only")
        self.timeout = config.getoption("conformance_timeout")
        self.engine = engine_choice(
            config.getoption("conformance_engine"), config.getoption("conformance_ray_address"), "--conformance-ray-address"
        )
        path = config.getoption("conformance_baseline")
        self.baseline_path = Path(path) if path else None
        if config.getoption("conformance_max_elements") is not None:
            cases.MAX_ELEMENTS = config.getoption("conformance_max_elements")
        # The user's functions (--conformance-variant) are this session's, until `finish`; checked once,
        # by the process that runs the frameworks (not by each xdist worker).
        specs = user.specs(config.getoption("conformance_variant"), [Path(p) for p in config.getoption("conformance_variants") or []])
        user.activate(specs)
        if specs and self.workerinput is None and not config.option.collectonly:
            user.check(specs)
        if any(self.chosen):
            selection(*self.chosen)  # a bad value is one usage error before anything runs
        if self.baseline_path is not None:
            baseline.load(self.baseline_path)

    @property
    def keys(self) -> dict[str, set[str] | None]:
        return selection(*self.chosen)

    def record_for(self, item: CaseItem) -> CaseRecord:
        if self.workerinput is not None:
            if self.remote is None:
                raise ConformanceError(
                    "case items under xdist are evaluated by the xdist controller, which serves them over a local "
                    "socket, and this xdist worker is not on this machine: run case files with -n (local workers) "
                    "or without xdist"
                )
            return self.remote.record(item.case_nodeid)
        nodeid = item.case_nodeid
        if nodeid in self.served:  # a failed item runs again (a rerun plugin): a case is evaluated once per session
            return self.served[nodeid]
        if self.stream is None:
            todo = self.spool.select([i.handle for i in item.session.items if isinstance(i, CaseItem)])
            self.stream = self.pipeline_().records(todo)
        while nodeid not in self.ready:
            _, record = next(self.stream)
            self.outputs_().add(record)
            self.ready[record.nodeid] = record
        record = self.ready.pop(nodeid)
        if record.fails:  # only a failed item is run again; passing records are not kept (flat memory)
            self.served[nodeid] = record
        return record

    def prepare(self) -> None:
        """A case file is being collected: start the framework workers (under xdist, have the controller
        start them), so that their imports overlap the rest of the collection."""
        if self.config.option.collectonly:
            return
        if self.workerinput is None:
            self.pipeline_()
        elif self.remote is None and self.workerinput.get("conformance_service"):
            self.remote = service.Remote(tuple(self.workerinput["conformance_service"]))

    def pipeline_(self, most: int = 1) -> Pipeline:
        """This process's pipeline (the controller's, or without xdist the only one), started once."""
        if self.pipeline is None:
            self.pipeline = Pipeline(self.keys, self.timeout, most, self.baseline_path, self.engine)
        return self.pipeline

    def outputs_(self) -> Outputs:
        """Where records are written, opened at the first record."""
        if self.outputs is None:
            root = Path(self.config.rootpath)
            json_path, html_path = self.config.getoption("conformance_json"), self.config.getoption("conformance_html")
            self.outputs = Outputs(root / json_path if json_path else None, root / html_path if html_path else None)
        return self.outputs

    def offer(self, items: list[pytest.Item]) -> None:
        """xdist worker: send the collected cases to the controller, which evaluates them."""
        todo = self.spool.select([i.handle for i in items if isinstance(i, CaseItem)])
        if self.remote is not None and len(todo):
            self.remote.offer(list(todo))

    def finish(self) -> list[str]:
        """Stop what runs; the controller (or the only process) writes the documents. What no item can
        fail is returned: the baselined cases and results this run no longer has."""
        if self.stream is not None:
            self.stream.close()  # type: ignore[attr-defined]
        if self.service is not None:
            self.service.close()
        if self.pipeline is not None:
            self.pipeline.close()
        user.activate(())
        self.spool.close()
        if self.pipeline is None or self.outputs is None:
            return []
        head = self.outputs.finish(self.pipeline.head({"runner": "pytest"}))
        report = head.get("baseline") or {}
        gone = [f"gone since the baseline: {name}" for name in report.get("gone_cases", [])]
        return gone + [f"gone since the baseline: {row['case']} {row['key']}" for row in report.get("gone_keys", [])]
