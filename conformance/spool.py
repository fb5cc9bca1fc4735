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
    """Cases written to a temporary file as they come (each `check`ed first, or one by one with `add`),
    read back one at a time by each iteration in the order they came, or by the handle `add` gave
    (`get`, `select`). The file goes when the spool is closed."""

    def __init__(self, cases: Iterable[Case] = (), check: Callable[[Case], object] = lambda case: None) -> None:
        self._file = tempfile.TemporaryFile(prefix="conformance-cases-")
        self._lock = threading.Lock()
        self._count = 0
        self._end = 0
        try:
            for case in cases:
                check(case)
                self.add(case)
        except BaseException:
            self._file.close()
            raise

    def add(self, case: Case) -> int:
        """Write `case` at the end; its handle (where it lies in the file)."""
        data = pickle.dumps(case, protocol=pickle.HIGHEST_PROTOCOL)
        with self._lock:
            handle = self._end
            self._file.seek(handle)
            self._file.write(len(data).to_bytes(_SIZE, "little") + data)
            self._end += _SIZE + len(data)
            self._count += 1
        return handle

    def get(self, handle: int) -> Case:
        """The case `add` wrote at `handle`."""
        case: Case = pickle.loads(self._data(handle)[0])
        return case

    def _data(self, handle: int) -> tuple[bytes, int]:
        """The pickled case at `handle` and the handle of the next one."""
        with self._lock:  # iterations (and threads) share the file's position: each seeks its own
            self._file.seek(handle)
            size = int.from_bytes(self._file.read(_SIZE), "little")
            data = self._file.read(size)
        return data, handle + _SIZE + size

    def select(self, handles: list[int]) -> Cases:
        """The cases at `handles`, in that order, read as they are iterated."""
        return _Selected(self, handles)

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[Case]:
        handle = 0
        for _ in range(self._count):
            data, handle = self._data(handle)
            yield pickle.loads(data)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Selected:
    def __init__(self, spool: Spool, handles: list[int]) -> None:
        self.spool, self.handles = spool, handles

    def __len__(self) -> int:
        return len(self.handles)

    def __iter__(self) -> Iterator[Case]:
        return (self.spool.get(handle) for handle in self.handles)


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
