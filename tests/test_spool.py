"""A run's cases: validated ones kept on disk (`Spool`), the few in flight in memory (`Window`)."""

import gc
import weakref

import numpy as np
import pytest

from conformance import cases, spool
from conformance.errors import CaseError

TEXT = """\
cases:
  - id: a
    logits: [[0.5, 1.5, -1.0], [2.0, 0.0, 1.0]]
    labels: [1, 2]
    weight: [1, 2, 3]
    matrix: {reduction: [none, mean], dtype: [float32, bfloat16]}
    expect: {status: {torch: ok}}
  - id: b
    loss: binary_cross_entropy
    probs: [[0.25, 0.75]]
    soft_labels: [[0.5, 1.0]]
"""


def test_a_spool_gives_back_every_case_as_it_came_in_order():
    loaded = cases.load_text(TEXT, "x.yaml")
    with spool.Spool(loaded) as spooled:
        assert len(spooled) == len(loaded) == 5
        for _ in range(2):  # each iteration reads the file from its start
            back = list(spooled)
            assert [c.id for c in back] == [c.id for c in loaded]
            for mine, theirs in zip(back, loaded, strict=True):
                assert mine.params == theirs.params and mine.expect == theirs.expect and mine.dtype == theirs.dtype
                for key in ("predictions", "labels", "soft_labels", "weight"):
                    a, b = getattr(mine, key), getattr(theirs, key)
                    assert (a is None and b is None) or (a.dtype == b.dtype and np.array_equal(a, b))


def test_a_spool_keeps_no_case_in_memory():
    """Flat memory: what a spool has taken is on disk only (weak references to the cases it was given die)."""
    refs = []

    def given():
        for case in cases.load_text(TEXT, "x.yaml"):
            refs.append(weakref.ref(case))
            yield case

    with spool.Spool(given()) as spooled:
        gc.collect()
        assert len(spooled) == 5
        assert not [ref for ref in refs if ref() is not None]


def test_a_check_that_fails_stops_the_spool_with_its_error():
    def check(case):
        if case.id == "b":
            raise CaseError(case.file, "rejected", case.line, "id")

    seen = []
    with pytest.raises(CaseError, match="rejected"):
        spool.Spool(cases.load_text(TEXT, "x.yaml"), lambda case: (seen.append(case.id), check(case)))
    assert seen == [c.id for c in cases.load_text(TEXT, "x.yaml")]


class Counted:
    """A sized stream of cases that counts how many were read."""

    def __init__(self, items):
        self.items, self.read = items, 0

    def __len__(self):
        return len(self.items)

    def __iter__(self):
        for item in self.items:
            self.read += 1
            yield item


def test_a_window_reads_only_as_far_as_it_is_indexed_and_holds_only_what_is_not_let_go():
    loaded = cases.load_text(TEXT, "x.yaml")
    source = Counted(loaded)
    window = spool.Window(source)
    assert (len(window), source.read) == (5, 0)
    assert window[2] is loaded[2] and source.read == 3
    assert window[0] is loaded[0] and source.read == 3  # read once, held until let go
    window[0] = None
    assert window[0] is None  # let go: as in the list the runner clears
    assert window[4] is loaded[4] and source.read == 5
    with pytest.raises(IndexError):
        window[5]


def test_a_window_over_a_list_lets_go_of_what_it_hands_out():
    """A caller that passes a list and drops it holds nothing the run has let go of."""
    loaded = cases.load_text(TEXT, "x.yaml")
    refs = [weakref.ref(case) for case in loaded]
    window = spool.Window(loaded)
    del loaded
    window[1]
    window[0] = None
    window[1] = None
    gc.collect()
    assert [ref() is None for ref in refs] == [True, True, False, False, False]
