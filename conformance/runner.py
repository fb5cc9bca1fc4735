"""Runs cases through one worker process per framework, all frameworks in parallel.

`Workers` starts every framework's worker at once (their imports overlap with whatever the caller does
next, such as loading the case files) and keeps them for every batch of the run. Each worker is sent a
window of cases ahead of its answers, so it never waits on the parent, and may run at most `AHEAD`
cases ahead of the slowest framework, so memory stays flat in the number of cases. Cases come back in
case order, each as soon as every framework has answered it and the recipes asked for it are back.

A worker answers in the order it is sent work, so when one dies or hangs, what it died on is the
oldest unanswered message: that case is recorded as `crashed` (with the exit signal and the tail of the
worker's stderr), and a fresh worker is sent the rest.
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
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from conformance import adapters
from conformance.cases import Case
from conformance.reference import Knobs

START_TIMEOUT = 300.0
WINDOW = 4
AHEAD = 256
WORKER_ENV = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "TF_NUM_INTRAOP_THREADS": "1",
    "TF_NUM_INTEROP_THREADS": "1",
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "GLOG_minloglevel": "2",
}

Results = dict[str, dict[str, Any]]
RecipeRequests = Callable[[Case, Results], dict[str, dict[str, Knobs]]]
"""Given a case's results, which framework should reproduce which others' knobs (framework -> target -> knobs)."""


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
    cases: list[Case], keys: dict[str, set[str] | None], timeout: float = 120.0, recipes: RecipeRequests | None = None
) -> Iterator[tuple[Case, Results]]:
    """Yield each case with its results by result key, in case order, on workers started for this run."""
    with Workers(keys, timeout) as workers:
        yield from workers.stream(cases, recipes)


class Workers:
    """One worker process per framework, started on creation and kept until `close`."""

    def __init__(self, keys: dict[str, set[str] | None], timeout: float = 120.0) -> None:
        self.stats = {name: WorkerStats() for name in keys}
        self._frameworks = {name: _Framework(name, wanted, timeout, self.stats[name]) for name, wanted in keys.items()}

    def versions(self) -> dict[str, str]:
        return {k: v for s in self.stats.values() for k, v in s.versions.items()}

    def stream(self, cases: list[Case], recipes: RecipeRequests | None = None) -> Generator[tuple[Case, Results], None, None]:
        """Each case with its results by result key, in case order. `recipes` says, per case, which
        framework should run which recipes; their outcome lands in that framework's result."""
        if not cases:
            return
        inbox: queue.Queue[tuple[str, str, int, Any]] = queue.Queue()
        progress = _Progress(AHEAD)
        threads = [
            threading.Thread(target=f.drive, args=(cases, inbox.put, progress), daemon=True, name=f"conformance-{f.name}")
            for f in self._frameworks.values()
        ]
        for thread in threads:
            thread.start()
        found: dict[int, Results] = {}
        answered: dict[int, int] = {}
        awaiting: dict[int, int] = {}
        complete: set[int] = set()
        dispatched = next_index = 0
        try:
            while next_index < len(cases):
                kind, framework, index, payload = inbox.get()
                if kind == "result":
                    found.setdefault(index, {}).update(payload)
                    answered[index] = answered.get(index, 0) + 1
                    if answered[index] < len(self._frameworks):
                        continue
                    del answered[index]
                    dispatched += 1
                    asked = {
                        f: t for f, t in (recipes(cases[index], found[index]) if recipes else {}).items() if t and f in self._frameworks
                    }
                    for name, targets in asked.items():
                        self._frameworks[name].events.put(("recipes", index, cases[index], targets))
                    if asked:
                        awaiting[index] = len(asked)
                    else:
                        complete.add(index)
                    if dispatched == len(cases):
                        for f in self._frameworks.values():
                            f.events.put(("end",))
                else:
                    found[index][framework]["recipes"] = payload
                    awaiting[index] -= 1
                    if not awaiting[index]:
                        del awaiting[index]
                        complete.add(index)
                while next_index in complete:
                    complete.remove(next_index)
                    case, results = cases[next_index], found.pop(next_index)
                    next_index += 1
                    progress.advance(next_index, self._frameworks.values())
                    yield case, _with_code(case, results)
        finally:
            if next_index < len(cases):
                for f in self._frameworks.values():
                    f.events.put(("stop",))
            for thread in threads:
                thread.join()

    def evaluate(self, case: Case) -> Results:
        """The results of one case, by result key."""
        return [results for _, results in self.stream([case])][0]

    def close(self) -> None:
        for f in self._frameworks.values():
            f.stop()

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _with_code(case: Case, results: Results) -> Results:
    """Each result's and recipe's native code as a runnable snippet: imports, the arrays, the body."""
    arrays: list[str] = []
    for key, result in results.items():
        setup = adapters.setup(adapters.framework_of(key))
        for entry in [result, *result.get("recipes", {}).values()]:
            body = entry.pop("body", None)
            if body is not None:
                arrays = arrays or [adapters.array_source(case)]
            entry["code"] = None if body is None else f"{setup}\n\n{arrays[0]}\n\n{body}\n"
    return results


class _Progress:
    """How far the slowest framework has got: no worker is sent a case more than `ahead` beyond it."""

    def __init__(self, ahead: int) -> None:
        self.ahead = ahead
        self.limit = ahead

    def advance(self, done: int, frameworks: Iterable[_Framework]) -> None:
        self.limit = done + self.ahead
        if done % max(self.ahead // 4, 1) == 0:
            for f in frameworks:
                f.events.put(("advance",))


class _Framework:
    """One framework's worker process, restarted when it dies, and the thread that feeds it a stream.

    Everything the feeding thread waits for arrives on one queue, `events`: the worker's answers (tagged
    with the worker's generation, so a dead worker's last words are ignored) and the stream's requests
    (recipes to run, more cases allowed, the end of the stream)."""

    def __init__(self, name: str, wanted: set[str] | None, timeout: float, stats: WorkerStats) -> None:
        self.name = name
        self.wanted = wanted
        self.timeout = timeout
        self.stats = stats
        self.events: queue.Queue[tuple[Any, ...]] = queue.Queue()
        self.variants = [v for v in adapters.variants(name) if wanted is None or v.key in wanted]
        self.generation = 0
        self.ready = False
        self.failed: str | None = None
        self.worker: _Worker | None = None
        self._start()

    def _start(self) -> None:
        self.generation += 1
        self.ready = False
        self.worker = _Worker(self.name, self.events, self.generation)

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.stop(kill=not self.ready)
            self.worker = None

    def drive(self, cases: list[Case], emit: Callable[[tuple[str, str, int, Any]], None], progress: _Progress) -> None:
        """Feed `cases` (and the recipes asked for them) to the worker; emit every answer or crash."""
        todo: deque[tuple[Any, ...]] = deque()  # recipes asked for, and work a dead worker left unanswered
        inflight: deque[tuple[Any, ...]] = deque()
        next_case, ended, since = 0, False, time.monotonic()
        while True:
            if self.failed is None and self.worker is None and (todo or next_case < len(cases)):
                self._start()
            if self.failed is None and not self.ready and self.worker is not None:
                interruption = self._wait_ready(todo)
                if interruption == "stop":
                    self.stop()
                    return
                ended = ended or interruption == "end"
            if self.failed is not None:
                for task in [*inflight, *todo, *(("case", i, cases[i], self.wanted) for i in range(next_case, len(cases)))]:
                    emit(self._crash(task, f"the {self.name} worker did not start: {self.failed}"))
                inflight.clear()
                todo.clear()
                next_case = len(cases)
            while self.worker is not None and self.ready and len(inflight) < WINDOW:
                if todo:
                    task = todo.popleft()
                elif next_case < min(len(cases), progress.limit):
                    task = ("case", next_case, cases[next_case], self.wanted)
                    next_case += 1
                else:
                    break
                if not inflight:
                    since = time.monotonic()
                self.worker.send(task)
                inflight.append(task)
            if ended and not inflight and not todo and next_case >= len(cases):
                return
            try:
                event = self.events.get(timeout=max(since + self.timeout - time.monotonic(), 0.0) if inflight else None)
            except queue.Empty:
                event = ("hung", self.generation)
            kind = event[0]
            if kind == "stop":
                self.stop()
                return
            if kind == "end":
                ended = True
            elif kind == "recipes":
                todo.append(event)
            elif kind == "answer" and event[1] == self.generation and inflight:
                inflight.popleft()
                since = time.monotonic()
                _, _, (answer_kind, index, payload) = event
                emit(("result" if answer_kind == "result" else "recipes", self.name, index, payload))
            elif kind in ("eof", "hung") and event[1] == self.generation and inflight and self.worker is not None:
                reason = (
                    f"the {self.name} worker {self.worker.failure(timed_out=kind == 'hung', timeout=self.timeout)} while running this case"
                )
                emit(self._crash(inflight.popleft(), reason))
                self.stats.restarts += 1
                todo.extendleft(reversed(inflight))
                inflight.clear()
                self.stop()

    def _wait_ready(self, todo: deque[tuple[Any, ...]]) -> str | None:
        """Wait for the worker's `ready`, keeping the recipes asked for meanwhile; return early with
        "end" or "stop" if the stream says so."""
        deadline = time.monotonic() + START_TIMEOUT
        assert self.worker is not None
        while not self.ready:
            try:
                event = self.events.get(timeout=max(deadline - time.monotonic(), 0.0))
            except queue.Empty:
                event = ("hung", self.generation)
            if event[0] == "answer" and event[1] == self.generation and event[2][0] == "ready":
                self.ready = True
                self.stats.versions.update(event[2][1])
                self.stats.startup_seconds.append(event[2][2])
            elif event[0] in ("eof", "hung") and event[1] == self.generation:
                self.failed = self.worker.failure(timed_out=event[0] == "hung", timeout=START_TIMEOUT)
                self.stop()
                return None
            elif event[0] == "recipes":
                todo.append(event)
            elif event[0] in ("end", "stop"):
                return str(event[0])
        return None

    def _crash(self, task: tuple[Any, ...], reason: str) -> tuple[str, str, int, Any]:
        kind, index, case, detail = task
        if kind == "recipes":
            return ("recipes", self.name, index, {t: {"body": None, "loss": None, "message": reason} for t in detail})
        return ("result", self.name, index, {v.key: _crashed(v.api, reason) for v in adapters.for_case(self.variants, case)})


def _crashed(api: str, message: str) -> dict[str, Any]:
    return {"api": api, "status": "crashed", "message": message, "loss": None, "grad": None, "body": None}


class _Worker:
    """One `python -m conformance.worker FRAMEWORK` process and a thread posting its answers."""

    def __init__(self, framework: str, events: queue.Queue[tuple[Any, ...]], generation: int) -> None:
        self.stderr = tempfile.TemporaryFile()
        env = {**os.environ, **WORKER_ENV}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "conformance.worker", framework],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            env=env,
        )
        threading.Thread(target=self._read, args=(events, generation), daemon=True).start()

    def _read(self, events: queue.Queue[tuple[Any, ...]], generation: int) -> None:
        assert self.process.stdout is not None
        try:
            while True:
                events.put(("answer", generation, pickle.load(self.process.stdout)))
        except Exception:
            events.put(("eof", generation))

    def send(self, message: object) -> None:
        assert self.process.stdin is not None
        try:
            pickle.dump(message, self.process.stdin, protocol=pickle.HIGHEST_PROTOCOL)
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            pass

    def failure(self, timed_out: bool, timeout: float) -> str:
        """Why the worker stopped answering, for the `crashed` message."""
        if timed_out:
            self.process.kill()
            what = f"timed out after {timeout:g} s"
        else:
            code = self.process.wait()
            what = f"died with signal {signal.Signals(-code).name}" if code < 0 else f"exited with code {code}"
        self.process.wait()
        self.stderr.seek(0)
        tail = [line for line in self.stderr.read().decode(errors="replace").splitlines() if line.strip()][-3:]
        return what + (f" ({' | '.join(tail)})" if tail else "")

    def stop(self, kill: bool = False) -> None:
        """End the process: at once if `kill` (nothing of it is wanted), else let it finish and exit."""
        if self.process.poll() is None:
            try:
                if kill:
                    self.process.kill()
                assert self.process.stdin is not None
                self.process.stdin.close()
                self.process.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()
        self.stderr.close()
