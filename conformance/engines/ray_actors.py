"""The Ray engine (`--engine ray`): each framework's worker is a Ray actor, spread over a cluster.

An actor is one process holding one framework (`worker.Worker`: the code the local worker process
runs), so no two frameworks share a process here either. Actors ask for a share of a CPU (and of the
custom resource `conformance`, where a cluster's nodes declare it, to say which nodes may host
frameworks) and are placed with Ray's SPREAD strategy, so they land on different nodes.

Cases go to each actor in batches of `BATCH` messages, one batch in flight per actor, and no framework
runs further ahead of the cases handed out than the local engine's window (`runner.AHEAD` cases,
fewer large ones): backpressure, so memory stays flat as with the local engine. An actor answers a
batch as a stream (a Ray generator), message by message, so when it dies the driver knows exactly
which message it was running: that one is answered `crashed` with Ray's reason (`runner.crash`), the
rest of the batch is sent again, and the actor, restarted by Ray (`max_restarts`), carries on. A
message unanswered for the wall-clock bound of its budget (`budget.wall_bound` of `budget.seconds`: the
actor's CPU time is not read, it may run on another machine) is a hang: the actor is killed and
restarted the same way.
The driver side is a `runner.Collector`, as the local engine's run is: a thread per actor feeds it,
and the collector joins the answers case by case, asks for recipes, and hands out cases in order.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from conformance import adapters, budget, runner, user
from conformance.cases import Case
from conformance.errors import UsageError
from conformance.worker import Worker

BATCH = 16
RESOURCE = "conformance"
T = TypeVar("T")
CONNECT_TIMEOUT = 5.0
POLL = 0.5  # how often a feeder waiting on its actor looks whether the stream was stopped
Task = tuple[Any, ...]


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UsageError("--engine ray: Ray is not installed here (pip install -c constraints.txt ray; or the extra 'ray')") from None
    return ray


def connect(address: str | None) -> bool:
    """Join the cluster at `address` (else `RAY_ADDRESS`, else a local Ray instance started now).
    Whether this process started the connection (and so ends it). An address nobody answers at is a
    usage error within about `CONNECT_TIMEOUT` seconds, not after Ray's half minute of retries."""
    ray = _ray()
    given = "--ray-address" if address else "RAY_ADDRESS"
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address is not None and address not in ("auto", "local"):
        _reachable(address, given)
    if ray.is_initialized():  # a caller (a test, a notebook) already joined a cluster: use it
        return False
    try:
        if address is None:
            ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
        else:
            with _quick_to_give_up():
                ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False)
    except Exception as exc:  # ConnectionError, RuntimeError, ValueError: all say the cluster is not usable
        where = f"the Ray cluster at {address} ({given})" if address else "a local Ray instance"
        raise UsageError(f"--engine ray: could not connect to {where}: {type(exc).__name__}: {_first_line(exc)}") from None
    return True


@contextlib.contextmanager
def _quick_to_give_up() -> Iterator[None]:
    """Joining a cluster: Ray tries its control store for `CONNECT_TIMEOUT` seconds (a port that
    answers but is no Ray cluster) unless the user set how long; what Ray's C++ core logs on stderr
    meanwhile (a line per retry) is dropped, since a failure is reported in one paragraph."""
    wait = "RAY_gcs_server_port_wait_time_s"
    added = wait not in os.environ
    if added:
        os.environ[wait] = str(int(CONNECT_TIMEOUT))
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            if added:
                os.environ.pop(wait, None)


def _reachable(address: str, given: str) -> None:
    """Whether a gRPC server (a Ray cluster's control store speaks gRPC) answers at `address`: the HTTP/2
    preface sent, its SETTINGS frame back within `CONNECT_TIMEOUT` seconds. Ray itself would wait on a
    silent port for minutes."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        with socket.create_connection((host or "localhost", int(port)), timeout=CONNECT_TIMEOUT) as probe:
            probe.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0]))
            header = probe.recv(9)
    except ValueError:
        raise UsageError(f"{given} {address}: expected HOST:PORT (e.g. 10.0.0.1:6379), 'auto' or ray://HOST:PORT") from None
    except OSError as exc:
        header, why = b"", str(exc) or type(exc).__name__
    else:
        why = "it does not speak gRPC, as a Ray cluster's head does"
    if len(header) < 4 or header[3] != 4:
        raise UsageError(
            f"{given} {address}: no Ray cluster answers there ({why}); start one with `ray start --head` "
            "and give its address, or leave the address out to start a local Ray instance for the run"
        )


def _first_line(exc: BaseException, limit: int = 300) -> str:
    """The line of a Ray error that says what happened: the exception at the end of the traceback it
    carries (an error raised in the actor), else its first line (Ray's own account of a death)."""
    lines = [line.strip() for line in re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).splitlines() if line.strip()]
    text = (lines[-1] if any(line.startswith('File "') for line in lines) else lines[0]) if lines else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


class FrameworkActor:
    """The actor: one framework imported in its own process, answering messages as the local worker
    process does (`worker.Worker`)."""

    def __init__(self, framework: str) -> None:
        self.worker = Worker(framework)

    def ready(self) -> tuple[Any, ...]:
        """`("ready", versions, import seconds, node id, pid)` of this incarnation (a restart imports again)."""
        import ray

        return (*self.worker.ready, ray.get_runtime_context().get_node_id(), os.getpid())

    def run(self, messages: list[Task]) -> Iterator[tuple[str, int, Any]]:
        """`("started", -1, None)`, then each message's answer: an actor that dies before it started
        the batch died on none of its messages."""
        yield ("started", -1, None)
        for message in messages:
            yield self.worker.answer(message)


class Actors(runner.Streaming):
    """The engine: `per_framework` actors for each framework of `keys` (None: the cluster's CPUs shared
    out among the frameworks, at least one each), created at once (their imports overlap the caller's
    case loading), kept until `close`. A framework's actors take its work from one queue."""

    def __init__(
        self, keys: dict[str, set[str] | None], timeout: float = 120.0, address: str | None = None, per_framework: int | None = None
    ) -> None:
        ray = _ray()
        self.owned = connect(address)
        self.timeout = timeout
        self.keys = keys
        self.stats = {name: runner.WorkerStats() for name in keys}
        self.failed: dict[str, str] = {}
        self._current: _Run | None = None
        total = ray.cluster_resources()
        count = per_framework or max(1, int(total.get("CPU", 1.0) // max(len(keys), 1)))
        share: dict[str, Any] = {"num_cpus": _share(total.get("CPU", 1.0), count * len(keys))}
        if RESOURCE in total:
            share["resources"] = {RESOURCE: _share(total[RESOURCE], count * len(keys))}
        remote = ray.remote(FrameworkActor)
        self.actors = [
            _Actor(
                self,
                name,
                remote.options(
                    max_restarts=-1,
                    max_task_retries=0,
                    scheduling_strategy="SPREAD",
                    runtime_env={"env_vars": {**runner.WORKER_ENV, **user.environment(name)}},
                    **share,
                ).remote(name),
                [v for v in adapters.variants(name) if wanted is None or v.key in wanted],
            )
            for name, wanted in keys.items()
            for _ in range(count)
        ]

    def placed(self) -> dict[str, list[tuple[str, int] | None]]:
        """Framework -> (node id, pid) of each of its actors' current incarnation (None: not ready yet)."""
        out: dict[str, list[tuple[str, int] | None]] = {name: [] for name in self.keys}
        for actor in self.actors:
            out[actor.name].append(actor.placed)
        return out

    def _open(self, cases: list[Case], recipes: runner.RecipeRequests | None) -> _Run:
        return _Run(self, cases, recipes)

    def close(self) -> None:
        """Kill every actor (nothing of them is wanted any more); leave the cluster if this engine joined it."""
        ray = _ray()
        for actor in self.actors:
            ray.kill(actor.handle, no_restart=True)
        self.actors = []
        if self.owned and ray.is_initialized():
            ray.shutdown()
            self.owned = False

    def __enter__(self) -> Actors:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _share(available: float, actors: int) -> float:
    """What each of `actors` asks of a resource: one unit, or an equal share of what the cluster has
    (in Ray's steps of 1/10,000), so that every framework's actor fits even on a laptop."""
    return max(min(1.0, int(available / max(actors, 1) * 10_000) / 10_000), 0.0001)


class _Actor:
    """The driver's side of one framework's actor: waits for it to be ready and feeds it batches."""

    def __init__(self, engine: Actors, name: str, handle: Any, variants: list[Any]) -> None:
        self.engine, self.name, self.handle, self.variants = engine, name, handle, variants
        self.stats = engine.stats[name]
        self.ready_ref: Any = handle.ready.remote()
        self.placed: tuple[str, int] | None = None
        self.dead: str | None = None
        self.idle_deaths = 0

    def feed(self, run: _Run) -> None:
        """Feed the actor from the framework's work until the stream ends; emit every answer or crash.
        An actor that cannot start leaves the work to its framework's others; with none left, the
        framework has failed and this feeder answers all its work `crashed`, saying why."""
        while not run.stopped:
            failed = self.engine.failed.get(self.name)
            if failed is None and self.dead is None and self.ready_ref is not None:
                self._wait_ready(run)
                if run.stopped:
                    return
                failed = self.engine.failed.get(self.name)
            if failed is None and self.dead is not None:
                return
            if failed is not None:
                while (batch := run.take(self.name, len(run.cases) + 1)) is not None:
                    for task in batch:
                        run.inbox.put(runner.crash(self.name, self.variants, task, f"the {self.name} actor {failed}"))
                return
            batch = run.take(self.name, BATCH)
            if batch is None:
                return
            self._run_batch(run, batch)

    def _wait_ready(self, run: _Run) -> None:
        """Wait for this incarnation's import; if it fails, the actor is `dead` (and its framework failed
        if it was the last of its actors)."""
        ray = _ray()
        deadline = time.monotonic() + runner.START_TIMEOUT
        while not run.stopped:
            done, _ = ray.wait([self.ready_ref], timeout=min(POLL, max(deadline - time.monotonic(), 0.0)))
            if not done and time.monotonic() < deadline:
                continue
            try:
                if not done:
                    raise TimeoutError(f"not ready after {runner.START_TIMEOUT:g} s (is there a node with the resources to host it?)")
                _, versions, seconds, node, pid = ray.get(self.ready_ref)
            except ray.exceptions.ActorUnavailableError:  # restarting: ask again
                self.ready_ref = self.handle.ready.remote()
                continue
            except Exception as exc:
                self.dead = f"did not start: {type(exc).__name__}: {_first_line(exc)}"
                if all(a.dead for a in self.engine.actors if a.name == self.name):
                    self.engine.failed[self.name] = self.dead
                return
            self.ready_ref = None
            self.stats.versions.update(versions)
            self.stats.startup_seconds.append(seconds)
            self.stats.nodes.append(node)
            self.placed = (node, pid)
            return

    def _run_batch(self, run: _Run, batch: list[Task]) -> None:
        ray = _ray()
        stream = self.handle.run.remote(batch)
        pending = deque(batch)
        started = False
        since = time.monotonic()
        while pending:
            if run.stopped:
                return  # the rest of the batch runs out on the actor; nobody reads it
            bound = budget.wall_bound(budget.seconds(pending[0][2], self.engine.timeout))
            left = since + bound - time.monotonic()
            done, _ = ray.wait([stream], timeout=max(min(left, POLL), 0.0))
            if not done:
                if left <= POLL:
                    ray.kill(self.handle, no_restart=False)
                    self._lost(run, pending, f"timed out after {bound:.0f} s of wall time", died=True)
                    return
                continue
            try:
                kind, index, payload = ray.get(next(stream))
            except StopIteration:
                self._lost(run, pending, "ended its batch without answering this case", died=False)
                return
            except ray.exceptions.RayTaskError as exc:  # raised in the actor, which lives on
                self._lost(run, pending, f"failed ({_first_line(exc)})", died=False)
                return
            except ray.exceptions.RayError as exc:
                if not started:
                    self._idle_death(run, pending, f"{type(exc).__name__}: {_first_line(exc)}")
                    return
                self._lost(run, pending, f"died ({type(exc).__name__}: {_first_line(exc)})", died=True)
                return
            since = time.monotonic()
            if kind == "started":
                started = True
                continue
            pending.popleft()
            self.idle_deaths = 0
            run.inbox.put(("result" if kind == "result" else "recipes", self.name, index, payload))

    def _idle_death(self, run: _Run, pending: deque[Task], why: str) -> None:
        """The actor was dead before it started the batch (it died waiting for work): no message is
        blamed, all are given back, the restart is counted. One that keeps dying so (`runner.IDLE_DEATHS`
        times in a row, no answer between) fails its framework, as on the local engine."""
        run.give_back(self.name, list(pending))
        self.stats.restarts += 1
        self.idle_deaths += 1
        if self.idle_deaths >= runner.IDLE_DEATHS:
            self.dead = f"died {self.idle_deaths} times in a row waiting for work (the last time: {why})"
            if all(a.dead for a in self.engine.actors if a.name == self.name):
                self.engine.failed[self.name] = self.dead
            return
        self.ready_ref = self.handle.ready.remote()

    def _lost(self, run: _Run, pending: deque[Task], why: str, died: bool) -> None:
        """The oldest unanswered message is what the actor was running: answered `crashed`; the others
        are given back. A dead actor is being restarted by Ray: wait for its import before sending more."""
        run.inbox.put(runner.crash(self.name, self.variants, pending.popleft(), f"the {self.name} actor {why} while running this case"))
        run.give_back(self.name, list(pending))
        if died:
            self.stats.restarts += 1
            self.ready_ref = self.handle.ready.remote()


class _Run(runner.Collector):
    """One batch of cases on its way through the actors: per framework, the work to take (recipes and
    given-back messages first, then the next case within the window past the cases handed out), a
    feeder thread per actor, and the collector (`runner.Collector`, the local engine's)."""

    def __init__(self, engine: Actors, cases: list[Case], recipes: runner.RecipeRequests | None) -> None:
        super().__init__(list(engine.keys), cases, recipes)
        self.wanted = engine.keys
        self.cond = threading.Condition()
        self.next_case = {name: 0 for name in self.names}
        self.todo: dict[str, deque[Task]] = {name: deque() for name in self.names}
        self.ended = self.stopped = False
        self.threads = [runner.TracedThread(actor.feed, (self,), f"conformance-ray-{actor.name}") for actor in engine.actors]
        self.collector = runner.TracedThread(self._collect, (), "conformance-ray-collector")
        for thread in [*self.threads, self.collector]:
            thread.start()

    def take(self, name: str, most: int) -> list[Task] | None:
        """Up to `most` messages for framework `name` (waiting for some); None when it has no more."""
        with self.cond:
            while not self.stopped:
                todo, batch = self.todo[name], list[Task]()
                while todo and len(batch) < most:
                    batch.append(todo.popleft())
                while len(batch) < most and self.next_case[name] < min(len(self.cases), self.limit):
                    index = self.next_case[name]
                    batch.append(("case", index, self.cases[index], self.wanted[name]))
                    self.next_case[name] += 1
                if batch:
                    return batch
                if self.ended and self.next_case[name] >= len(self.cases):
                    return None
                self.cond.wait(runner.POLL)  # woken when work comes; looks again anyway, so no wake-up is missed for ever
            return None

    def give_back(self, name: str, tasks: list[Task]) -> None:
        with self.cond:
            self.todo[name].extendleft(reversed(tasks))
            self.cond.notify_all()

    def _ask(self, framework: str, task: Task) -> None:
        with self.cond:
            self.todo[framework].append(task)
            self.cond.notify_all()

    def _answered(self, framework: str) -> None:
        """Actors keep no pace: the cluster's scheduler places them, no spare one is started."""

    def _all_dispatched(self) -> None:
        with self.cond:
            self.ended = True
            self.cond.notify_all()

    def _advanced(self, handed_out: int) -> None:
        with self.cond:
            self.cond.notify_all()  # large cases make the window short: wake the feeders every time

    def finish(self, abandoned: bool) -> None:
        """Wait for the threads; if the consumer stopped early, stop the feeders first."""
        if abandoned:
            with self.cond:
                self.stopped = True
                self.cond.notify_all()
            self.inbox.put(("stop", "", 0, None))
            while self.collector.is_alive():  # it may wait to put a case nobody will take
                while not self.outbox.empty():
                    self.outbox.get_nowait()
                self.collector.join(0.05)
        self.collector.join()
        for thread in self.threads:
            thread.join()


def spread(task: Callable[..., T], seeds: list[int], address: str | None, *args: Any) -> list[T]:
    """`task(seed, *args)` once per seed, each a Ray task on some node (SPREAD, a share of the cluster's
    CPUs each), gathered here in seed order: how `fuzz --engine ray` runs one fuzzer per seed."""
    ray = _ray()
    owned = connect(address)
    try:
        remote = ray.remote(task).options(
            num_cpus=_share(ray.cluster_resources().get("CPU", 1.0), len(seeds)), scheduling_strategy="SPREAD", max_retries=0
        )
        return list(ray.get([remote.remote(seed, *args) for seed in seeds]))
    finally:
        if owned:
            ray.shutdown()
