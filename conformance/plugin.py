"""pytest plugin: each expanded case of a YAML case file is one test item.

Thin on purpose: it maps case files to items (`conformance.items`) and failures to a readable table;
the work is done by the same pipeline as `conformance run`. Frameworks still run in their own worker
processes, in one batch of every collected case, streamed item by item (under xdist, by the
controller, which serves each xdist worker the records of its items: `service`).

Registered through the `pytest11` entry point, so it is loaded in every pytest run of any project where
this package is installed: it collects only case files, and imports the package's machinery only once
it has one (the top-level conftest.py registers it when the package is used from a checkout without
being installed).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("conformance", "cross-framework loss conformance")
    group.addoption("--conformance-frameworks", default=None, help="frameworks to run (comma-separated; default all)")
    group.addoption("--conformance-only", default=None, help="run exactly these result keys")
    group.addoption("--conformance-json", default="reports/results.json", help="results.json to write ('' for none)")
    group.addoption("--conformance-html", default="reports/index.html", help="HTML report to write ('' for none)")
    group.addoption("--conformance-timeout", type=float, default=120.0, help="CPU seconds one case may take in a worker")
    group.addoption("--conformance-baseline", default=None, help="fail items whose values moved since this baseline file")
    group.addoption(
        "--conformance-variant",
        action="append",
        default=None,
        metavar="KEY=MODULE:FUNCTION",
        help="run your own loss function as the result key KEY (FRAMEWORK:NAME), in that framework's worker (repeatable)",
    )
    group.addoption(
        "--conformance-variants",
        action="append",
        default=None,
        metavar="FILE",
        help="a YAML file of your own loss functions or classes as variants (repeatable); ./pyproject.toml [tool.conformance] is read too",
    )
    group.addoption(
        "--conformance-max-elements", type=int, default=None, help="numbers any one array of a case may hold (default 16,777,216)"
    )
    group.addoption(
        "--conformance-engine",
        choices=("local", "ray"),
        default="local",
        help="where the framework workers run: processes on this machine (local, default) or Ray actors over a cluster (ray)",
    )
    group.addoption(
        "--conformance-ray-address",
        default=None,
        help="the Ray cluster for --conformance-engine ray (default: RAY_ADDRESS, else a local one)",
    )
    parser.addini(
        "conformance_cases",
        type="args",
        default=["cases"],
        help="folders (relative to the rootdir) whose YAML files are case files; a YAML file named on the command line always is",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Options given are checked now (a bad one is one usage error); nothing else happens until a case
    file is collected, so a project without case files pays nothing for this plugin."""
    given = (
        "conformance_frameworks",
        "conformance_only",
        "conformance_baseline",
        "conformance_variant",
        "conformance_variants",
        "conformance_ray_address",
    )
    if not any(config.getoption(o) for o in given):
        return  # nothing given to check; the state is made with the first case file
    _state(config)


def pytest_collect_file(parent: pytest.Collector, file_path: Path) -> pytest.Collector | None:
    if file_path.suffix in (".yaml", ".yml") and is_case_file(parent.config, file_path):
        from conformance.items import CaseFile

        _state(parent.config)
        return CaseFile.from_parent(parent, path=file_path)
    return None


def is_case_file(config: pytest.Config, path: Path) -> bool:
    """Only case files are collected: YAML files named on the command line, and those under the
    `conformance_cases` folders. Another project's docker-compose.yml or CI YAML is none of ours."""
    resolved = path.resolve()
    named = {(config.invocation_params.dir / arg.split("::")[0]).resolve() for arg in config.args}
    if resolved in named:
        return True
    folders = [(config.rootpath / folder).resolve() for folder in config.getini("conformance_cases")]
    return any(resolved.is_relative_to(folder) for folder in folders)


def may_have_cases(config: pytest.Config) -> bool:
    """Whether this run can collect a case file: a YAML file named, or a case folder that exists."""
    if any(arg.split("::")[0].endswith((".yaml", ".yml")) for arg in config.args):
        return True
    return any((config.rootpath / folder).is_dir() for folder in config.getini("conformance_cases"))


def _state(config: pytest.Config) -> Any:
    """This process's case-file state, made once (a bad option or baseline is one usage error)."""
    from conformance.errors import ConformanceError
    from conformance.items import STATE, State

    if STATE not in config.stash:
        try:
            config.stash[STATE] = State(config)
        except ConformanceError as exc:
            raise pytest.UsageError(str(exc)) from None
    return config.stash[STATE]


def _existing(config: pytest.Config) -> Any:
    """The state if a case file made one (else None: nothing of ours ran)."""
    if "conformance.items" not in sys.modules:
        return None
    from conformance.items import STATE

    return config.stash.get(STATE, None)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_setupnodes(config: pytest.Config, specs: list[Any]) -> None:
    """xdist controller: the service that evaluates the cases once, for every xdist worker; a framework
    may get up to one worker per xdist worker. Not for a run that cannot have case files."""
    if not may_have_cases(config):
        return
    from conformance.service import Service

    state = _state(config)
    state.service = Service(lambda: state.pipeline_(most=len(specs)), state.outputs_)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist controller: tell each xdist worker on this machine where the service listens."""
    state = _existing(node.config)
    if state is not None and state.service is not None and node.gateway.spec.popen:
        node.workerinput["conformance_service"] = list(state.service.address())


def pytest_collection_finish(session: pytest.Session) -> None:
    state = _existing(session.config)
    if state is not None and state.workerinput is not None:
        state.offer(session.items)


def pytest_sessionfinish(session: pytest.Session) -> None:
    state = _existing(session.config)
    if state is not None and state.workerinput is None:
        state.gone = state.finish()
        if state.gone:  # a renamed or removed case has no item to fail: the session fails, saying which
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
    elif state is not None and state.remote is not None:
        state.remote.close()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The baselined cases and results this run no longer has (they failed the session)."""
    state = _existing(terminalreporter.config)
    if state is not None and state.gone:
        terminalreporter.section("conformance baseline", red=True)
        for line in state.gone:
            terminalreporter.write_line(line, red=True)
