"""Runs cases through worker processes, one framework per process, all frameworks in parallel.

`Workers` starts one worker per framework at once (their imports overlap with whatever the caller does
next, such as loading the case files) and keeps them for every batch of the run. Each worker is sent a
window of cases ahead of its answers, so it never waits on the parent, and no framework runs more than
`AHEAD` cases ahead of the slowest, so memory stays flat in the number of cases. Cases come back in case
order, each as soon as every framework has answered it and the recipes asked for it are back.

When one framework holds the others back (they wait at `AHEAD`) and its work left is worth more than
`SPARE_WORKER_PAYS` worker start-ups, it is given another worker, up to `most` per framework: its workers then
take cases from one shared queue.

A worker answers in the order it is sent work, so when one dies or hangs, what it died on is the
oldest unanswered message: that case is recorded as `crashed` (with the exit signal and the tail of what
the worker wrote to stderr since that case was sent), and a fresh worker is sent the rest. A worker that
dies with nothing unanswered (waiting for more work, for a recipe round, for the next batch) died on no
case: it is replaced as soon as its death is seen, and only the restart is counted (one that keeps dying
so fails its framework, `IDLE_DEATHS`). A death is seen when the worker's output ends, and is also checked
before any work is sent, so no work waits for the timeout on a worker that is already gone.
"""

from __future__ import annotations

import abc
import contextlib
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
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from typing import Any, cast

from conformance import adapters, budget, spool, user
from conformance.adapters import Variant
from conformance.cases import Case

START_TIMEOUT = 300.0
"""Wall seconds a worker may take to import its framework on a quiet machine; more on a loaded one
(`budget.wall_bound`), or until it has spent a quarter of them in CPU time."""
POLL = 0.5
"""How often a thread waiting on another looks again: a feeder at its worker's clocks (`budget.Clock`)
and at the window, the collector at the feeders, the consumer at the collector. No wait lasts for ever."""
EXIT_WAIT = 10.0
"""Seconds a worker asked to end (or whose output ended) has to exit before it is killed."""
WINDOW = 4
AHEAD = 256
# Nor more cases than hold this many prediction elements (large cases: their answers carry arrays of that
# size, a few copies each, so a window of 256 of them would not fit in memory). Always at least one case.
ELEMENTS_AHEAD = 1 << 24
# A worker that dies waiting for work, on no case, is replaced; one that does so this many times in a row
# (no answer between) fails its framework instead of being restarted for ever.
IDLE_DEATHS = 3
# Another worker's import competes for the same cores as the work it is to share: on 2 cores, a second
# TensorFlow worker started with ~8 s of its work left (~2.5 start-ups) made a 1,000-case run slower.
SPARE_WORKER_PAYS = 5
WORKER_ENV = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "TF_NUM_INTRAOP_THREADS": "1",
    "TF_NUM_INTEROP_THREADS": "1",
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "GLOG_minloglevel": "2",
}

Results = dict[str, dict[str, Any]]
RecipeRequests = Callable[[Case, Results], dict[str, dict[str, str]]]
"""Given a case's results, the recipes each framework is to run (framework -> recipe name -> code)."""


@dataclass
class WorkerStats:
    """What a framework's workers cost: start-up seconds and how many were started."""

    versions: dict[str, str] = field(default_factory=dict)
    startup_seconds: list[float] = field(default_factory=list)
    restarts: int = 0
    nodes: list[str] = field(default_factory=list)
    """Where its workers ran, when an engine spreads them over machines (Ray node ids); empty here."""


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


class Streaming(abc.ABC):
    """What every engine shares (`conformance.engines.Engine`): the versions its workers reported, the
    stream of a run's answers in case order, and its cancellation. An engine sets `stats` and opens a run
    (`_open`): an object with an `outbox` queue of (case, results) in case order, a `cancelled` flag and
    `finish(abandoned)`."""

    stats: dict[str, WorkerStats]
    _current: Any = None

    @abc.abstractmethod
    def _open(self, cases: list[Case], recipes: RecipeRequests | None) -> Any:
        """The engine's run of `cases` (its workers take them from here)."""

    def versions(self) -> dict[str, str]:
        return {k: v for s in self.stats.values() for k, v in s.versions.items()}

    def stream(self, cases: spool.Cases, recipes: RecipeRequests | None = None) -> Generator[tuple[Case, Results], None, None]:
        """Each case with its results by result key, in case order. `recipes` says, per case, which
        framework should run which recipes; their outcome lands in that framework's result. The cases
        are read as the window reaches them (`spool.Window`) and each is let go once handed out: a caller
        that keeps no reference of its own (a `spool.Spool`) has only the cases in flight in memory."""
        total = len(cases)
        if not total:
            return
        # the runner indexes its cases as a list (len, [i], [i] = None), which the window provides
        run = self._current = self._open(cast(list[Case], spool.Window(cases)), recipes)
        del cases
        taken = 0
        try:
            while taken < total:
                answer = run.next_answer()
                if run.cancelled:
                    break
                taken += 1
                yield answer
        finally:
            run.finish(abandoned=taken < total)
            self._current = None  # the finished stream's cases are not kept (memory stays flat after a run)

    def cancel(self) -> None:
        """From another thread: end the stream under way, as if its consumer had stopped taking cases."""
        run = self._current
        if run is not None:
            run.cancelled = True
            with contextlib.suppress(queue.Full):
                run.outbox.put_nowait(None)  # wakes a consumer waiting for a case


class Workers(Streaming):
    """Worker processes for the frameworks of `keys`, one each started on creation, kept until `close`.

    most: how many workers a framework may have at once (more are started only while a stream runs, when
    that framework holds the others back).
    """

    def __init__(self, keys: dict[str, set[str] | None], timeout: float = 120.0, most: int = 1) -> None:
        self.stats = {name: WorkerStats() for name in keys}
        self._current: _Stream | None = None
        self._frameworks = {name: _Framework(name, wanted, timeout, self.stats[name], most) for name, wanted in keys.items()}

    def _open(self, cases: list[Case], recipes: RecipeRequests | None) -> _Stream:
        return _Stream(list(self._frameworks.values()), cases, recipes)

    def close(self) -> None:
        """End every worker; all are asked first, so their exits (about a second each) overlap."""
        shards = [shard for f in self._frameworks.values() for shard in f.shards]
        for shard in shards:
            shard.release()
        for shard in shards:
            shard.reap()

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def with_code(case: Case, results: Results) -> Results:
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


class TracedThread(threading.Thread):
    """A daemon thread that keeps the exception it ended with: a thread waiting on it (in `POLL` steps)
    raises it instead of waiting for ever for work the dead thread was to do (it is not printed here:
    the waiting thread's error says it)."""

    error: BaseException | None = None

    def __init__(self, target: Callable[..., object], args: tuple[Any, ...], name: str) -> None:
        super().__init__(target=target, args=args, daemon=True, name=name)

    def run(self) -> None:
        try:
            super().run()
        except BaseException as exc:
            self.error = exc


def _ahead(cases: list[Case], start: int) -> int:
    """How far past the first unfinished case (`start`) the frameworks may run: `AHEAD` cases, fewer where
    their predictions hold more than `ELEMENTS_AHEAD` numbers."""
    total = 0
    for index in range(start, min(start + AHEAD, len(cases))):
        total += cases[index].predictions.size
        if total > ELEMENTS_AHEAD and index > start:
            return index
    return start + AHEAD


class Collector(abc.ABC):
    """What both engines' runs share: the answers joined case by case, the recipes asked for as soon as
    a case's last answer is in (not when the consumer comes back for the next case), and the finished
    cases queued in case order on `outbox`, each let go of once handed out (flat memory). An engine's
    run says how work reaches its workers (`_ask`, `_all_dispatched`, `_advanced`) and starts `threads`
    (its feeders) and `collector` (running `_collect`)."""

    threads: list[TracedThread]
    collector: TracedThread

    def __init__(self, names: list[str], cases: list[Case], recipes: RecipeRequests | None) -> None:
        self.names = names
        self.cases = cases
        self.recipes = recipes
        self.inbox: queue.Queue[tuple[str, str, int, Any]] = queue.Queue()
        self.outbox: queue.Queue[tuple[Case, Results]] = queue.Queue(maxsize=AHEAD)
        self.limit = _ahead(cases, 0)
        """How far the workers may take cases: `AHEAD` past the first case not handed out, fewer for large ones."""
        self.cancelled = False

    @abc.abstractmethod
    def _ask(self, framework: str, task: tuple[Any, ...]) -> None:
        """Queue a recipe message for `framework`'s workers."""

    @abc.abstractmethod
    def _answered(self, framework: str) -> None:
        """`framework` answered a case (an engine may count its pace)."""

    @abc.abstractmethod
    def _all_dispatched(self) -> None:
        """Every case is answered by every framework: no more case messages will be needed."""

    @abc.abstractmethod
    def _advanced(self, handed_out: int) -> None:
        """`handed_out` cases are out and `limit` moved: feeders waiting at the window may go on."""

    def next_answer(self) -> Any:
        """The next finished case for the consumer (None once cancelled). A collector that ended with an
        error raises it here: the consumer is never left waiting for a thread that is gone."""
        while True:
            try:
                return self.outbox.get(timeout=POLL)
            except queue.Empty:
                if not self.collector.is_alive() and self.outbox.empty():
                    raise RuntimeError(f"the collector ended before every case was answered: {self.collector.error!r}") from None

    def _check_feeders(self) -> None:
        """Raise the error a feeder thread ended with (its framework's answers would never come)."""
        for thread in list(self.threads):
            if thread.error is not None:
                raise RuntimeError(f"{thread.name} ended with an error: {thread.error!r}") from thread.error

    def _collect(self) -> None:
        found: dict[int, Results] = {}
        answered: dict[int, int] = {}
        awaiting: dict[int, int] = {}
        complete: set[int] = set()
        dispatched = next_index = 0
        while next_index < len(self.cases):
            try:
                kind, framework, index, payload = self.inbox.get(timeout=POLL)
            except queue.Empty:
                self._check_feeders()
                continue
            if kind == "stop":
                return
            if kind == "result":
                self._answered(framework)
                found.setdefault(index, {}).update(payload)
                answered[index] = answered.get(index, 0) + 1
                if answered[index] < len(self.names):
                    continue
                del answered[index]
                dispatched += 1
                try:
                    asked = self.recipes(self.cases[index], found[index]) if self.recipes else {}
                except Exception:  # must not stall the run: the case goes on without recipes (a comparison that
                    # failed here fails again, visibly, when its record is built)
                    asked = {}
                asked = {f: bodies for f, bodies in asked.items() if bodies and f in self.names}
                for name, bodies in asked.items():
                    self._ask(name, ("recipes", index, self.cases[index], bodies))
                if asked:
                    awaiting[index] = len(asked)
                else:
                    complete.add(index)
                if dispatched == len(self.cases):
                    self._all_dispatched()
            else:
                found[index][framework]["recipes"] = payload
                awaiting[index] -= 1
                if not awaiting[index]:
                    del awaiting[index]
                    complete.add(index)
            while next_index in complete:
                complete.remove(next_index)
                case = self.cases[next_index]
                self.cases[next_index] = None  # type: ignore[call-overload]  # handed out: not kept (flat memory)
                self.outbox.put((case, with_code(case, found.pop(next_index))))
                next_index += 1
                self.limit = _ahead(self.cases, next_index)
                self._advanced(next_index)


class _Stream(Collector):
    """One batch on its way through the local workers: a thread per worker feeds it from its framework's
    queue, the collector thread joins the answers (`Collector`) and gives a framework that holds the
    others back another worker."""

    def __init__(self, frameworks: list[_Framework], cases: list[Case], recipes: RecipeRequests | None) -> None:
        super().__init__([f.name for f in frameworks], cases, recipes)
        self.frameworks = {f.name: f for f in frameworks}
        self.threads = []
        self.lock = threading.Lock()
        for f in frameworks:
            f.begin(cases)
            for shard in list(f.shards):
                self.drive(shard)
        self.collector = TracedThread(self._collect, (), "conformance-collector")
        self.collector.start()

    def drive(self, shard: _Shard) -> None:
        """Start the thread that feeds `shard` for this stream."""
        thread = TracedThread(shard.drive, (self,), f"conformance-{shard.framework.name}")
        with self.lock:
            self.threads.append(thread)
        thread.start()

    def _ask(self, framework: str, task: tuple[Any, ...]) -> None:
        self.frameworks[framework].ask(task)

    def _answered(self, framework: str) -> None:
        self.frameworks[framework].answer()

    def _all_dispatched(self) -> None:
        for f in self.frameworks.values():
            f.end()

    def _advanced(self, handed_out: int) -> None:
        """Wake every framework held at the window that may now take a case (large cases move the window
        a case at a time, or from one case to `AHEAD`); every `AHEAD // 4` cases, balance the workers."""
        for f in self.frameworks.values():
            f.wake_if_held(self.limit)
        if handed_out % (AHEAD // 4) == 0:
            self._balance()

    def _balance(self) -> None:
        """Give the framework furthest behind another worker if the others wait for it at `AHEAD` and
        its work left, at its pace so far, is worth more than `SPARE_WORKER_PAYS` worker start-ups."""
        behind = min(self.frameworks.values(), key=lambda f: f.next_case)
        held = max(f.next_case for f in self.frameworks.values()) - behind.next_case >= AHEAD // 2
        if not held or len(behind.shards) >= behind.most or behind.answered < 2 or not behind.stats.startup_seconds:
            return
        pace = (time.monotonic() - behind.first_answer) / (behind.answered - 1)
        startup = sum(behind.stats.startup_seconds) / len(behind.stats.startup_seconds)
        if (len(self.cases) - behind.answered) * pace > SPARE_WORKER_PAYS * startup:
            self.drive(behind.add_shard())

    def finish(self, abandoned: bool) -> None:
        """Wait for the threads; if the consumer stopped early, stop the workers' feeding first."""
        if abandoned:
            self.inbox.put(("stop", "", 0, None))
            for f in self.frameworks.values():
                f.abandon(self)
            while self.collector.is_alive():  # it may wait to put a case nobody will take
                while not self.outbox.empty():
                    self.outbox.get_nowait()
                self.collector.join(0.05)
        self.collector.join()
        while True:
            with self.lock:
                pending = [t for t in self.threads if t.is_alive()]
            if not pending:
                return
            for thread in pending:
                thread.join()


class _Framework:
    """A framework's workers (shards) and, for the stream under way, the one queue they take work from:
    recipes asked for and work a dead worker left unanswered first, then the next case."""

    def __init__(self, name: str, wanted: set[str] | None, timeout: float, stats: WorkerStats, most: int) -> None:
        self.name = name
        self.wanted = wanted
        self.timeout = timeout
        self.stats = stats
        self.most = max(most, 1)
        self.variants = [v for v in adapters.variants(name) if wanted is None or v.key in wanted]
        self.failed: str | None = None
        self.lock = threading.Lock()
        self.shards: list[_Shard] = []
        self.begin([])
        self.add_shard()

    def add_shard(self) -> _Shard:
        shard = _Shard(self)
        self.shards.append(shard)
        return shard

    def begin(self, cases: list[Case]) -> None:
        """Start serving a new stream."""
        with self.lock:
            self.cases = cases
            self.next_case = 0
            self.todo: deque[tuple[Any, ...]] = deque()
            self.ended = False
            self.held = False
            self.answered = 0
            self.first_answer = 0.0

    def answer(self) -> None:
        """Count an answered case (its pace, from the first answer on, decides on another worker)."""
        if not self.answered:
            self.first_answer = time.monotonic()
        self.answered += 1

    def take(self, stream: _Stream | None) -> tuple[Any, ...] | None:
        """The next task: one queued, else the next case within `stream`'s window (None: any case left).
        Held at the window, the framework is marked `held`, and woken when the window moves past it: the
        window is read under the same lock that `wake_if_held` takes, so no move is missed."""
        with self.lock:
            if self.todo:
                return self.todo.popleft()
            limit = len(self.cases) if stream is None else stream.limit
            if self.next_case < min(len(self.cases), limit):
                self.next_case += 1
                return ("case", self.next_case - 1, self.cases[self.next_case - 1], self.wanted)
            self.held = self.next_case < len(self.cases)
            return None

    def wake_if_held(self, limit: int) -> None:
        """The window now ends at `limit`: a framework held before it may take the next case."""
        with self.lock:
            woken = self.held and self.next_case < limit
            if woken:
                self.held = False
        if woken:
            self.wake()

    def has_work(self) -> bool:
        return bool(self.todo) or self.next_case < len(self.cases)

    def finished(self) -> bool:
        with self.lock:
            return self.ended and not self.todo and self.next_case >= len(self.cases)

    def give_back(self, tasks: list[tuple[Any, ...]]) -> None:
        with self.lock:
            self.todo.extendleft(reversed(tasks))

    def ask(self, task: tuple[Any, ...]) -> None:
        with self.lock:
            self.todo.append(task)
        self.wake()

    def end(self) -> None:
        with self.lock:
            self.ended = True
        self.wake()

    def wake(self) -> None:
        for shard in list(self.shards):
            shard.events.put(("wake",))

    def abandon(self, stream: _Stream) -> None:
        for shard in list(self.shards):
            shard.events.put(("stop", stream))

    def crash(self, task: tuple[Any, ...], reason: str) -> tuple[str, str, int, Any]:
        return crash(self.name, self.variants, task, reason)


def crash(name: str, variants: list[Variant], task: tuple[Any, ...], reason: str) -> tuple[str, str, int, Any]:
    """The answer framework `name` gives for a task its worker died on: every variant of the case
    `crashed`, or every recipe asked for failing, with `reason` (any engine records crashes this way)."""
    kind, index, case, detail = task
    if kind == "recipes":
        return ("recipes", name, index, {t: {"body": None, "loss": None, "message": reason} for t in detail})
    return ("result", name, index, {v.key: _crashed(v.api, reason) for v in adapters.for_case(variants, case)})


class _Shard:
    """One worker process of a framework, restarted when it dies, fed by one thread per stream.

    Everything the feeding thread waits for arrives on one queue, `events`: the worker's answers (tagged
    with the worker's generation, so a dead worker's last words are ignored), wake-ups (more work to
    take) and a stream's stop."""

    def __init__(self, framework: _Framework) -> None:
        self.framework = framework
        self.events: queue.Queue[tuple[Any, ...]] = queue.Queue()
        self.generation = 0
        self.ready = False
        self.worker: _Worker | None = None
        self.inflight: deque[tuple[tuple[Any, ...], int]] = deque()
        """What the worker was sent and has not answered, oldest first, each with where the worker's
        stderr stood when it was sent (what it writes on that task comes after)."""
        self.idle_deaths = 0
        self._start()

    def _start(self) -> None:
        self.generation += 1
        self.ready = False
        self.worker = _Worker(self.framework.name, self.events, self.generation)

    def stop(self) -> None:
        self.release()
        self.reap()

    def release(self) -> None:
        """Ask the worker to end: it exits after what it is running; killed if it never got ready or has
        nothing in flight (nothing of it is wanted, and a framework's own teardown takes about a second)."""
        if self.worker is not None:
            self.worker.release(kill=not self.ready or not self.inflight)

    def reap(self) -> None:
        """Wait for the released worker to exit."""
        if self.worker is not None:
            self.worker.reap()
            self.worker = None
        self.inflight.clear()

    def _replace_if_dead(self) -> bool:
        """Before work is sent: a worker that has exited with nothing in flight died on no case. Drop it
        (`_lost`); whether it was dropped."""
        if self.worker is None or self.inflight or self.worker.process.poll() is None:
            return False
        self._lost()
        return True

    def _lost(self) -> None:
        """The worker died waiting for work: reap it and count the restart; a fresh one starts as soon
        as there is work, without blaming any case. After `IDLE_DEATHS` such deaths in a row the
        framework is failed (its remaining work `crashed`, saying so)."""
        assert self.worker is not None
        how = self.worker.failure(since=self.worker.stderr_size())
        self.framework.stats.restarts += 1
        self.idle_deaths += 1
        self.stop()
        if self.idle_deaths >= IDLE_DEATHS:
            self.framework.failed = f"died {self.idle_deaths} times in a row waiting for work (the last time: {how})"

    def _clock(self) -> budget.Clock | None:
        """The clocks of the oldest task in flight, which the worker runs now or starts next: from now."""
        if not self.inflight or self.worker is None:
            return None
        case = self.inflight[0][0][2]  # ("case" or "recipes", index, case, detail)
        return budget.Clock.start(self.worker.process.pid, budget.seconds(case, self.framework.timeout), time.monotonic())

    def drive(self, stream: _Stream) -> None:
        """Feed the worker from the framework's queue until the stream ends; emit every answer or crash.
        The oldest task in flight is on its clocks (`budget.Clock`), from the answer before it (or its
        send to an idle worker): the tasks queued behind it are not charged for its work."""
        f, emit, inflight = self.framework, stream.inbox.put, self.inflight
        clock: budget.Clock | None = None
        while True:
            if f.failed is not None:
                for sent, _ in inflight:
                    emit(f.crash(sent, f"the {f.name} worker {f.failed}"))
                inflight.clear()
                while (left := f.take(None)) is not None:
                    emit(f.crash(left, f"the {f.name} worker {f.failed}"))
            elif self.worker is None and f.has_work():
                self._start()
            if f.failed is None and self.worker is not None and not self.ready:
                outcome = self._wait_ready(stream)
                if outcome == "stop":
                    self.stop()
                    return
                if outcome == "retired":
                    return
                if f.failed is not None:
                    continue
            if self._replace_if_dead():
                continue
            while self.worker is not None and self.ready and len(inflight) < WINDOW:
                task = f.take(stream)
                if task is None:
                    break
                inflight.append((task, self.worker.stderr_size()))
                self.worker.send(task)
                if len(inflight) == 1:
                    clock = self._clock()
            if not inflight and f.finished():
                return
            try:
                event = self.events.get(timeout=POLL)
            except queue.Empty:
                verdict = clock.verdict(time.monotonic()) if inflight and clock is not None else None
                if verdict is None:
                    continue  # idle: look again at the window and the worker; busy: at its clocks
                event = ("hung", self.generation, verdict)
            kind = event[0]
            if kind == "stop" and event[1] is stream:
                self.stop()
                return
            if kind == "answer" and event[1] == self.generation and inflight:
                inflight.popleft()
                self.idle_deaths = 0
                if inflight and self.worker is not None:  # what the next task writes to stderr comes from here on
                    inflight[0] = (inflight[0][0], self.worker.stderr_size())
                clock = self._clock()
                _, _, (answer_kind, index, payload) = event
                emit(("result" if answer_kind == "result" else "recipes", f.name, index, payload))
            elif kind == "eof" and event[1] == self.generation and not inflight and self.worker is not None:
                self._lost()
            elif kind in ("eof", "hung") and event[1] == self.generation and inflight and self.worker is not None:
                (task, mark), *rest = inflight
                why = self.worker.failure(timed_out=event[2] if kind == "hung" else None, since=mark)
                emit(f.crash(task, f"the {f.name} worker {why} while running this case"))
                f.stats.restarts += 1
                f.give_back([sent for sent, _ in rest])
                self.stop()

    def _wait_ready(self, stream: _Stream) -> str | None:
        """Wait for the worker's `ready`. "stop" if the stream stops meanwhile; "retired" if it cannot
        start while another worker of the framework runs (that one carries on); if it is the only one,
        the framework is marked failed."""
        assert self.worker is not None
        clock = budget.Clock.start(self.worker.process.pid, START_TIMEOUT / budget.WALL_FACTOR, time.monotonic())
        while not self.ready:
            try:
                event = self.events.get(timeout=POLL)
            except queue.Empty:
                verdict = clock.verdict(time.monotonic())
                if verdict is None:
                    continue
                event = ("hung", self.generation, verdict)
            if event[0] == "answer" and event[1] == self.generation and event[2][0] == "ready":
                self.ready = True
                self.framework.stats.versions.update(event[2][1])
                self.framework.stats.startup_seconds.append(event[2][2])
            elif event[0] in ("eof", "hung") and event[1] == self.generation:
                reason = self.worker.failure(timed_out=event[2] if event[0] == "hung" else None)
                self.stop()
                if any(s.ready for s in self.framework.shards if s is not self):
                    self.framework.shards.remove(self)
                    return "retired"
                self.framework.failed = f"did not start: {reason}"
                return None
            elif event[0] == "stop" and event[1] is stream:
                return "stop"
        return None


def _crashed(api: str, message: str) -> dict[str, Any]:
    return {"api": api, "status": "crashed", "message": message, "loss": None, "grad": None, "body": None}


class _Worker:
    """One `python -m conformance.worker FRAMEWORK` process, a thread posting its answers and a thread
    writing what it is sent. A message goes out from the writer thread: writing a large case to a
    worker busy with another blocks until the worker reads it, and the thread that feeds the worker must
    meanwhile watch the running case's clocks."""

    def __init__(self, framework: str, events: queue.Queue[tuple[Any, ...]], generation: int) -> None:
        self.stderr = tempfile.TemporaryFile()
        env = {**os.environ, **WORKER_ENV, **user.environment(framework)}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "conformance.worker", framework],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            env=env,
        )
        self.outgoing: queue.Queue[object] = queue.Queue()
        threading.Thread(target=self._read, args=(events, generation), daemon=True).start()
        self.writer = threading.Thread(target=self._write, daemon=True)
        self.writer.start()

    def _read(self, events: queue.Queue[tuple[Any, ...]], generation: int) -> None:
        assert self.process.stdout is not None
        try:
            while True:
                events.put(("answer", generation, pickle.load(self.process.stdout)))
        except Exception:
            events.put(("eof", generation))

    def _write(self) -> None:
        """Write each message sent, in order, until `release`; a worker that is gone takes nothing more
        (its death is seen on its output)."""
        stdin = self.process.stdin
        assert stdin is not None
        while True:
            try:
                message = self.outgoing.get(timeout=POLL)
            except queue.Empty:
                if self.process.poll() is None:
                    continue
                message = _CLOSE
            if message is _CLOSE:
                with contextlib.suppress(OSError):
                    stdin.close()
                return
            with contextlib.suppress(OSError, ValueError):
                pickle.dump(message, stdin, protocol=pickle.HIGHEST_PROTOCOL)
                stdin.flush()

    def stderr_size(self) -> int:
        """How much the worker has written to stderr so far (read without moving the file's offset,
        which the worker shares)."""
        return os.fstat(self.stderr.fileno()).st_size

    def send(self, message: object) -> None:
        self.outgoing.put(message)

    def failure(self, timed_out: str | None = None, since: int = 0) -> str:
        """Why the worker stopped answering, for the `crashed` message (`timed_out`: the clocks' verdict,
        and the worker is killed), with the last lines it wrote to stderr after offset `since` (where the
        task it failed on was started: not its import warnings)."""
        if timed_out:
            self.process.kill()
            what = timed_out
        else:
            try:
                code = self.process.wait(timeout=EXIT_WAIT)
            except subprocess.TimeoutExpired:  # its output ended, yet it runs on: it can answer nothing more
                self.process.kill()
                code = None
            what = (
                "closed its output and was stopped"
                if code is None
                else f"died with signal {signal.Signals(-code).name}"
                if code < 0
                else f"exited with code {code}"
            )
        self.process.wait()
        self.stderr.seek(since)
        tail = [line for line in self.stderr.read().decode(errors="replace").splitlines() if line.strip()][-3:]
        return what + (f" ({' | '.join(tail)})" if tail else "")

    def release(self, kill: bool = False) -> None:
        """Ask the process to end: its input closed after what it was sent (it exits after running that),
        or killed if nothing of it is wanted."""
        if kill and self.process.poll() is None:
            with contextlib.suppress(OSError):
                self.process.kill()
        self.outgoing.put(_CLOSE)

    def reap(self) -> None:
        """Wait for the released process (killed after `EXIT_WAIT` seconds)."""
        try:
            self.process.wait(timeout=EXIT_WAIT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.writer.join(timeout=EXIT_WAIT)
        self.stderr.close()


_CLOSE = object()
