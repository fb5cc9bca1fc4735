"""One evaluation of the collected case items for every pytest-xdist worker, run by the xdist controller.

If each xdist worker evaluated its own share of the cases, each would start its own worker of every
framework: on 2 cores, importing every framework once per xdist worker costs more CPU than splitting
the cases saves, and `-n 2` was no faster than `-n 0`. So the controller starts the framework workers
once, up to one per xdist worker for a framework that holds the others back (as `-n` allows), evaluates
the collected cases in collection order, and serves each record to the xdist worker that runs its item
over a local socket. The xdist workers only check expectations and baselines.
"""

from __future__ import annotations

import contextlib
import secrets
import socket
import threading
from collections.abc import Callable
from multiprocessing import AuthenticationError
from multiprocessing.connection import Client as _Connect
from multiprocessing.connection import Connection, Listener
from typing import Any

from conformance.cases import Case
from conformance.errors import ConformanceError
from conformance.pipeline import Outputs, Pipeline
from conformance.records import CaseRecord


class Service:
    """The controller's side: framework workers started as soon as an xdist worker begins collecting
    case files, the cases the first one collected evaluated in a thread, and a thread per xdist worker
    answering its requests for records."""

    def __init__(self, pipeline: Callable[[], Pipeline], outputs: Callable[[], Outputs]) -> None:
        self.new_pipeline, self.outputs = pipeline, outputs
        self.authkey = secrets.token_bytes(32)
        self.listener = Listener(family="AF_UNIX", authkey=self.authkey)
        self.pipeline: Pipeline | None = None
        self.evaluation: threading.Thread | None = None
        self.order: dict[str, int] = {}
        self.ready: dict[str, CaseRecord] = {}
        self.served: dict[int, CaseRecord] = {}
        self.passed: set[int] = set()
        self.failure: str | None = None
        self.closed = False
        self.lock = threading.Condition()
        threading.Thread(target=self._accept, daemon=True, name="conformance-service").start()

    def address(self) -> tuple[str, str]:
        """What an xdist worker needs to connect: the socket's path and the key, as plain strings."""
        return str(self.listener.address), self.authkey.hex()

    def _accept(self) -> None:
        while True:
            try:
                connection = self.listener.accept()
            except (OSError, EOFError, AuthenticationError):  # a peer that is not an xdist worker of ours
                if self.closed:
                    return
                continue
            if self.closed:
                connection.close()
                return
            threading.Thread(target=self._serve, args=(connection,), daemon=True, name="conformance-service").start()

    def _serve(self, connection: Connection) -> None:
        with connection:
            while True:
                try:
                    kind, payload = connection.recv()
                except (EOFError, OSError):  # the xdist worker has gone
                    return
                try:
                    answer = self._answer(kind, payload)
                except Exception as exc:  # a harness bug: the items say so instead of waiting for ever
                    self._fail(f"the xdist controller failed: {type(exc).__name__}: {exc}")
                    answer = self._record(payload) if kind == "record" else None
                if answer is not None:
                    try:
                        connection.send(answer)
                    except OSError:
                        return

    def _answer(self, kind: str, payload: Any) -> tuple[str, Any] | None:
        if kind == "start":
            self._start()
        elif kind == "cases":
            self._evaluate(payload)
        else:
            return self._record(payload)
        return None

    def _fail(self, message: str) -> None:
        with self.lock:
            self.failure = self.failure or message
            self.lock.notify_all()

    def _start(self) -> Pipeline | None:
        """Start the framework workers (an xdist worker began collecting a case file)."""
        with self.lock:
            if self.pipeline is None and not self.closed:
                self.pipeline = self.new_pipeline()
            return self.pipeline

    def _evaluate(self, cases: list[Case]) -> None:
        """Start evaluating the collected cases (every xdist worker sends the same; the first one counts)."""
        pipeline = self._start()
        with self.lock:
            if self.evaluation is not None or pipeline is None:
                return
            self.order = {case.nodeid: n for n, case in enumerate(cases)}
            self.evaluation = threading.Thread(target=self._run, args=(pipeline, cases), daemon=True, name="conformance-evaluation")
            self.evaluation.start()

    def _run(self, pipeline: Pipeline, cases: list[Case]) -> None:
        try:
            outputs = self.outputs()
            for case, record in pipeline.records(cases):
                outputs.add(record)
                with self.lock:
                    self.ready[case.nodeid] = record
                    self.lock.notify_all()
            pipeline.close()  # every case is evaluated: the framework workers exit while the items finish
        except Exception as exc:  # a harness bug: every waiting item should say so, not hang
            self._fail(f"evaluating the cases failed in the xdist controller: {type(exc).__name__}: {exc}")

    def _record(self, nodeid: str) -> tuple[str, CaseRecord | str]:
        with self.lock:
            if nodeid not in self.order:
                return "error", self.failure or f"{nodeid} is not among the cases the xdist controller evaluated"
            index = self.order[nodeid]
            if index in self.served:  # a failed item runs again (a rerun plugin): a case is evaluated once
                return "record", self.served[index]
            if index in self.passed:
                return "error", f"{nodeid} was served once and passed; a case is evaluated once per session"
            self.lock.wait_for(lambda: nodeid in self.ready or self.failure is not None or self.closed)
            if nodeid not in self.ready:
                return "error", self.failure or "the xdist controller stopped before this case was evaluated"
            record = self.ready.pop(nodeid)
            if record.fails:  # only a failed item is run again; passing records are not kept (flat memory)
                self.served[index] = record
            else:
                self.passed.add(index)
            return "record", record

    def close(self) -> None:
        """Stop evaluating (cases no item asked for any more are left) and end the framework workers."""
        with self.lock:
            if self.closed:
                return
            self.closed = True
            self.lock.notify_all()
        if self.pipeline is not None:
            self.pipeline.cancel()
        if self.evaluation is not None:
            self.evaluation.join()
        with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX) as wake_up:  # ends `_accept`'s wait
            wake_up.connect(self.listener.address)
        self.listener.close()


class Remote:
    """An xdist worker's side: has the framework workers started when it begins collecting case files,
    offers the cases it collected, then asks for the record of each item it runs."""

    def __init__(self, address: tuple[str, str]) -> None:
        path, key = address
        try:
            self.connection = _Connect(path, family="AF_UNIX", authkey=bytes.fromhex(key))
        except OSError as exc:
            raise ConformanceError(f"cannot reach the xdist controller, which evaluates the cases, at {path}: {exc}") from None
        self.connection.send(("start", None))

    def offer(self, cases: list[Case]) -> None:
        self.connection.send(("cases", cases))

    def record(self, nodeid: str) -> CaseRecord:
        try:
            self.connection.send(("record", nodeid))
            kind, payload = self.connection.recv()
        except (EOFError, OSError) as exc:
            raise ConformanceError(f"lost the connection to the xdist controller, which evaluates the cases: {exc}") from None
        if kind == "error":
            raise ConformanceError(payload)
        return payload  # type: ignore[no-any-return]

    def close(self) -> None:
        self.connection.close()
