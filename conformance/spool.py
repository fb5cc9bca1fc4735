"""How a run holds its cases: the validated ones on disk (`Spool`), the few in flight in memory (`Window`).

A bad case must stop a run before anything runs (exit 2), so every case is validated before the first
one is sent; holding every validated case until its turn would make the parent grow with the case files
(about 9 KB a case for an export of literal arrays: 90 MB at 10,000 cases), and reading the files again
would parse the YAML twice (most of the time loading takes). So each case is pickled to an anonymous
temporary file as soon as it is validated, and read back when the run reaches it; the runner indexes
its cases as a list, and `Window` gives it that over the stream, holding only the cases between the
first not handed out and the furthest asked for.
"""

from __future__ import annotations

import pickle
import tempfile
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Protocol

from conformance.cases import Case

_SIZE = 8  # bytes of the length written before each pickled case


class Cases(Protocol):
    """What a run takes: cases it can count before reading them (a list, a `Spool`)."""

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[Case]: ...


class Spool:
    """Cases written to a temporary file as they come (each `check`ed first), read back one at a time
    by each iteration, in the order they came. The file goes when the spool is closed."""

    def __init__(self, cases: Iterable[Case], check: Callable[[Case], object] = lambda case: None) -> None:
        self._file = tempfile.TemporaryFile(prefix="conformance-cases-")
        self._lock = threading.Lock()
        self._count = 0
        try:
            for case in cases:
                check(case)
                data = pickle.dumps(case, protocol=pickle.HIGHEST_PROTOCOL)
                self._file.write(len(data).to_bytes(_SIZE, "little") + data)
                self._count += 1
            self._file.flush()
        except BaseException:
            self._file.close()
            raise

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[Case]:
        offset = 0
        for _ in range(self._count):
            with self._lock:  # iterations (and threads) share the file's position: each seeks its own
                self._file.seek(offset)
                size = int.from_bytes(self._file.read(_SIZE), "little")
                data = self._file.read(size)
            offset += _SIZE + size
            yield pickle.loads(data)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Window:
    """`cases` as the runner indexes them (`len`, `[i]`, `[i] = None` to let a case go), read from the
    stream only as far as they are asked for: memory holds the cases asked for and not yet let go, not
    the run. Safe to index from several threads."""

    def __init__(self, cases: Cases) -> None:
        self._total = len(cases)
        self._source = _drained(cases) if isinstance(cases, list) else iter(cases)
        self._read = 0
        self._held: dict[int, Case] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return self._total

    def __getitem__(self, index: int) -> Case:
        """The case at `index`; one let go reads as None (as in the list the runner used to clear)."""
        with self._lock:
            if not 0 <= index < self._total:
                raise IndexError(index)
            while self._read <= index:
                self._held[self._read] = next(self._source)
                self._read += 1
            return self._held.get(index)  # type: ignore[return-value]

    def __setitem__(self, index: int, value: None) -> None:
        """`window[i] = None`: the case at `i` is handed out and no longer held here."""
        with self._lock:
            self._held.pop(index, None)


def _drained(cases: list[Case]) -> Iterator[Case]:
    """A list's cases from a copy that drops each as it is read, so a caller that drops its own list
    holds no case the run has let go of."""
    queue = deque(cases)
    del cases
    while queue:
        yield queue.popleft()
