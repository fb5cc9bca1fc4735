"""Spread `conformance fuzz` over processes with pytest-xdist: one test per seed, xdist schedules them.

    CONFORMANCE_FUZZ_SEEDS=0-7 CONFORMANCE_FUZZ_BUDGET=300 python -m pytest bench/fuzz_shards.py -n 4

Each seed writes its minimal cases to reports/fuzz/seed-N/; the divergence kinds already shown by cases/
are skipped, as with `conformance fuzz`. Not part of the test suite (it is not named test_*.py).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conformance import cases, fuzz


def _seeds() -> list[int]:
    text = os.environ.get("CONFORMANCE_FUZZ_SEEDS", "0-3")
    first, _, last = text.partition("-")
    return list(range(int(first), int(last or first) + 1))


@pytest.mark.parametrize("seed", _seeds())
def test_fuzz_seed(seed: int) -> None:
    budget = float(os.environ.get("CONFORMANCE_FUZZ_BUDGET", "60"))
    known = fuzz.covered(cases.load_paths([Path("cases")]))
    summary = fuzz.run(budget, seed, Path("reports/fuzz") / f"seed-{seed}", known)
    print(f"seed {seed}: {summary['evaluations']} cases, {summary['per_second']:.1f}/s, new {summary['new_signatures']}")
