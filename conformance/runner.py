"""Runs cases through one worker process per framework, all frameworks in parallel.

Cases go to each worker one at a time, so the case a worker dies on is known: that case is recorded as
`crashed` (with the exit signal and the tail of the worker's stderr) and a fresh worker carries on with
the rest. Results are yielded case by case as soon as every framework has answered, so nothing holds
the whole run in memory.
"""

from __future__ import annotations

import os
import pickle
import queue
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from conformance import adapters
from conformance.cases import Case

START_TIMEOUT = 300.0
WORKER_ENV = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "TF_NUM_INTRAOP_THREADS": "1",
    "TF_NUM_INTEROP_THREADS": "1",
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "GLOG_minloglevel": "2",
}


@dataclass
class WorkerStats:
    """What a framework's workers cost: start-up seconds and how many were started."""

    versions: dict[str, str] = field(default_factory=dict)
    startup_seconds: list[float] = field(default_factory=list)
    restarts: int = 0


def plan(frameworks: list[str], only: list[str] | None) -> dict[str, set[str] | None]:
    """Which result keys each framework's worker runs: all its variants, or those named in `only`."""
    if not only:
        return {name: None for name in frameworks}
    wanted: dict[str, set[str] | None] = {}
    for key in only:
        wanted.setdefault(adapters.framework_of(key), set()).add(key)  # type: ignore[union-attr]
    return wanted


def run(
    cases: list[Case],
    keys: dict[str, set[str] | None],
    timeout: float = 120.0,
    stats: dict[str, WorkerStats] | None = None,
) -> Iterator[tuple[Case, dict[str, dict[str, Any]]]]:
    """Yield each case with its results by result key, in case order."""
    inbox: queue.Queue[tuple[str, int, dict[str, dict[str, Any]]]] = queue.Queue(maxsize=4096)
    stats = stats if stats is not None else {}
    threads = []
    for framework, wanted in keys.items():
        stats[framework] = WorkerStats()
        thread = threading.Thread(
            target=_drive,
            args=(framework, cases, wanted, timeout, inbox.put, stats[framework]),
            daemon=True,
        )
        thread.start()
        threads.append(thread)
    pending: dict[int, dict[str, dict[str, Any]]] = {}
    answered: dict[int, int] = {}
    next_index = 0
    while next_index < len(cases):
        framework, index, results = inbox.get()
        pending.setdefault(index, {}).update(results)
        answered[index] = answered.get(index, 0) + 1
        while next_index < len(cases) and answered.get(next_index) == len(keys):
            yield cases[next_index], pending.pop(next_index)
            answered.pop(next_index)
            next_index += 1
    for thread in threads:
        thread.join()


def _drive(
    framework: str,
    cases: list[Case],
    wanted: set[str] | None,
    timeout: float,
    emit: Callable[[tuple[str, int, dict[str, dict[str, Any]]]], None],
    stats: WorkerStats,
) -> None:
    variants = [v for v in adapters.variants(framework) if wanted is None or v.key in wanted]
    index = 0
    while index < len(cases):
        worker = _Worker(framework)
        ready = worker.receive(START_TIMEOUT)
        if ready is None or ready[0] != "ready":
            reason = f"the {framework} worker did not start: {worker.failure(START_TIMEOUT)}"
            worker.stop()
            for rest in range(index, len(cases)):
                emit((framework, rest, {v.key: _crashed(v.api, reason) for v in adapters.for_case(variants, cases[rest])}))
            return
        stats.versions.update(ready[1])
        stats.startup_seconds.append(ready[2])
        try:
            while index < len(cases):
                worker.send((index, cases[index], wanted, False))
                answer = worker.receive(timeout)
                if answer is None:
                    reason = f"the {framework} worker {worker.failure(timeout)} while running this case"
                    emit((framework, index, {v.key: _crashed(v.api, reason) for v in adapters.for_case(variants, cases[index])}))
                    index += 1
                    stats.restarts += 1
                    break
                emit((framework, index, answer[2]))
                index += 1
        finally:
            worker.stop()


def _crashed(api: str, message: str) -> dict[str, Any]:
    return {"api": api, "status": "crashed", "message": message, "loss": None, "grad": None, "code": None}


class _Worker:
    """One `python -m conformance.worker FRAMEWORK` process and a thread reading its answers."""

    def __init__(self, framework: str) -> None:
        self.stderr = tempfile.TemporaryFile()
        env = {**os.environ, **WORKER_ENV}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "conformance.worker", framework],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            env=env,
        )
        self.answers: queue.Queue[Any] = queue.Queue()
        self.timed_out = False
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        try:
            while True:
                self.answers.put(pickle.load(self.process.stdout))
        except Exception:
            self.answers.put(None)

    def send(self, message: object) -> None:
        assert self.process.stdin is not None
        try:
            pickle.dump(message, self.process.stdin, protocol=pickle.HIGHEST_PROTOCOL)
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            pass

    def receive(self, timeout: float) -> Any:
        try:
            return self.answers.get(timeout=timeout)
        except queue.Empty:
            self.timed_out = True
            return None

    def failure(self, timeout: float) -> str:
        """Why the worker stopped answering, for the `crashed` message."""
        if self.timed_out:
            self.process.kill()
            what = f"timed out after {timeout:g} s"
        else:
            code = self.process.wait()
            what = f"died with signal {signal.Signals(-code).name}" if code < 0 else f"exited with code {code}"
        self.process.wait()
        self.stderr.seek(0)
        tail = [line for line in self.stderr.read().decode(errors="replace").splitlines() if line.strip()][-3:]
        return what + (f" ({' | '.join(tail)})" if tail else "")

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                assert self.process.stdin is not None
                self.process.stdin.close()
                self.process.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()
        self.stderr.close()


class Pool:
    """One started worker per framework, kept for many single cases (the fuzzer asks one at a time).

    All frameworks work on a case at once: the case is sent to every worker before any answer is read.
    A worker that dies or hangs marks that case `crashed` and is replaced for the next one.
    """

    def __init__(self, keys: dict[str, set[str] | None], timeout: float = 120.0, lean: bool = False) -> None:
        self.keys = keys
        self.timeout = timeout
        self.lean = lean
        self.workers: dict[str, _Worker] = {}
        self.versions: dict[str, str] = {}

    def _worker(self, framework: str) -> _Worker | str:
        worker = self.workers.get(framework)
        if worker is not None:
            return worker
        worker = _Worker(framework)
        ready = worker.receive(START_TIMEOUT)
        if ready is None or ready[0] != "ready":
            reason = f"the {framework} worker did not start: {worker.failure(START_TIMEOUT)}"
            worker.stop()
            return reason
        self.versions.update(ready[1])
        self.workers[framework] = worker
        return worker

    def evaluate(self, case: Case) -> dict[str, dict[str, Any]]:
        """The results of one case, by result key."""
        started: dict[str, _Worker | str] = {}
        for framework, wanted in self.keys.items():
            worker = started[framework] = self._worker(framework)
            if isinstance(worker, _Worker):
                worker.send((0, case, wanted, self.lean))
        results: dict[str, dict[str, Any]] = {}
        for framework, worker in started.items():
            wanted = self.keys[framework]
            variants = [v for v in adapters.for_case(adapters.variants(framework), case) if wanted is None or v.key in wanted]
            answer = worker.receive(self.timeout) if isinstance(worker, _Worker) else None
            if answer is None:
                reason = (
                    worker if isinstance(worker, str) else f"the {framework} worker {worker.failure(self.timeout)} while running this case"
                )
                if isinstance(worker, _Worker):
                    worker.stop()
                    self.workers.pop(framework, None)
                results.update({v.key: _crashed(v.api, reason) for v in variants})
            else:
                results.update(answer[2])
        return results

    def close(self) -> None:
        for worker in self.workers.values():
            worker.stop()
        self.workers.clear()

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
