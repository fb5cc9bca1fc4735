"""`conformance.budget`: what a case may spend in its worker, in CPU time, and the wall-clock bound above it."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from conformance import budget, cases


def one(text: str) -> cases.Case:
    [case] = cases.load_text(text, "b.yaml")
    return case


def test_a_case_gets_the_run_s_timeout_and_its_size_s_share_unless_it_names_its_own():
    """Protects the size-aware default: 10 us of CPU time an element over `--timeout`, so a [256, 50000]
    case (12.8e6 elements; paddle's nll_loss took 10.4 s of CPU time at [32, 50000], growing with N) gets
    248 s; a case's own `timeout:` replaces both."""
    small = one("cases:\n  - {id: a, logits: [[1, 2, 3]], labels: [0]}\n")
    own = one("cases:\n  - {id: a, logits: [[1, 2, 3]], labels: [0], timeout: 7}\n")
    assert budget.seconds(small, 120.0) == pytest.approx(120.0 + 3e-5)
    assert budget.seconds(own, 120.0) == 7.0

    class Large:  # the shape alone: a [256, 50000] case's arrays take 100 MB to build
        timeout = None
        predictions = type("Shape", (), {"size": 256 * 50_000})()

    assert budget.seconds(Large(), 120.0) == pytest.approx(248.0)


@pytest.mark.parametrize(("load", "factor"), [(0.5, 4.0), (4.0, 4.0), (12.0, 12.0), (24.0, 24.0)])
def test_the_wall_clock_bound_grows_with_the_load(monkeypatch, load, factor):
    """Protects loaded machines: at a load of L runnable processes on 2 cores a worker gets about 2/L of
    a core, so the bound is twice L/2 times the budget, never under `WALL_FACTOR` (4) times it."""
    monkeypatch.setattr(os, "getloadavg", lambda: (load, load, load))
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert budget.wall_bound(10.0) == pytest.approx(10.0 * factor)


def test_cpu_seconds_counts_a_process_s_work_not_its_sleep():
    """Protects the unit of the budget: a process that spins gains CPU time, one that sleeps does not."""
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        time.sleep(0.3)  # both started
        spun, slept = budget.cpu_seconds(spinner.pid), budget.cpu_seconds(sleeper.pid)
        deadline = time.monotonic() + 30
        while budget.cpu_seconds(spinner.pid) - spun < 0.2:  # type: ignore[operator]
            assert time.monotonic() < deadline, "the spinning process gained no CPU time in 30 s"
            time.sleep(0.05)
        assert budget.cpu_seconds(sleeper.pid) - slept < 0.05  # type: ignore[operator]
    finally:
        for process in (spinner, sleeper):
            process.kill()
            process.wait()
    assert budget.cpu_seconds(spinner.pid) is None  # gone: nothing to read


def test_a_clock_stops_a_case_over_its_cpu_budget_or_one_that_makes_no_progress(monkeypatch):
    """Protects the two verdicts: past its budget of CPU time, or past the wall-clock bound while not
    spending it (a hung case), naming which."""
    monkeypatch.setattr(budget, "WALL_FACTOR", 2.0)
    monkeypatch.setattr(budget, "LOAD_MARGIN", 0.0)
    clock = budget.Clock(pid=os.getpid(), budget=1.0, wall_started=100.0, cpu_started=0.0)
    monkeypatch.setattr(budget, "cpu_seconds", lambda pid: 0.4)
    assert clock.verdict(101.5) is None  # 1.5 s of wall time, 0.4 s of work: on its way
    assert clock.verdict(102.5) == ("timed out after 2 s of wall time with 0.4 s of CPU time (no progress; its budget: 1 s of CPU time)")
    monkeypatch.setattr(budget, "cpu_seconds", lambda pid: 1.1)
    assert clock.verdict(101.2) == "timed out after 1 s of CPU time"
