"""`conformance fuzz`: generate cases with hypothesis, find divergences no shipped case covers yet,
shrink each to a minimal case and write it as a ready-to-commit YAML file.

A divergence's kind is its signature (`explain.signature`): the knobs that separate two frameworks.
Signatures covered by the case files are predicted from the knob model alone (no framework runs), so
the fuzzer spends its budget on what is new. `hypothesis.find` with a seeded `random.Random` makes a run
reproducible from `--seed`; values come from small fixed sets so shrinking ends at a handful of numbers.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from itertools import combinations
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, Phase, find, settings
from hypothesis import strategies as st
from hypothesis.errors import NoSuchExample

from conformance import adapters, cases, explain, results, runner
from conformance.errors import ConformanceError

DEFAULT_KEYS = ["torch", "paddle", "tensorflow", "reference"]
LOGITS = [0.0, 1.0, -1.0, 2.0, 0.5, -2.0, 3.0, 80.0]
WEIGHTS = [1.0, 2.0, 0.5, 3.0, 0.0]
SMOOTHING = [0.0, 0.1, 0.2, 0.5]


@st.composite
def case_specs(draw: Callable[..., Any]) -> dict[str, Any]:
    """A softmax cross-entropy case as it would be written in YAML; simplest values come first, so
    shrinking moves towards one sample, two classes, small logits and no options."""
    n = draw(st.integers(1, 4))
    c = draw(st.integers(2, 4))
    spatial = draw(st.sampled_from([[], [2]]))
    grid = st.sampled_from(LOGITS)
    logits = draw(_nested(grid, [n, c, *spatial]))
    spec: dict[str, Any] = {"id": "fuzz", "logits": logits, "reduction": draw(st.sampled_from(["mean", "sum", "none"]))}
    if draw(st.booleans()):
        spec["soft_labels"] = draw(_nested(st.sampled_from([0.0, 1.0, 0.5, 0.25]), [n, c, *spatial]))
    else:
        labels = draw(_nested(st.integers(0, c - 1), [n, *spatial]))
        ignore = draw(st.sampled_from([None, -100, 0]))
        if ignore == -100:
            labels = _replace(labels, draw(st.lists(st.booleans(), min_size=_size([n, *spatial]), max_size=_size([n, *spatial]))))
        if ignore is not None:
            spec["ignore_index"] = ignore
        spec["labels"] = labels
    if draw(st.booleans()):
        spec["weight"] = draw(st.lists(st.sampled_from(WEIGHTS), min_size=c, max_size=c))
    smoothing = draw(st.sampled_from(SMOOTHING))
    if smoothing:
        spec["label_smoothing"] = smoothing
    if draw(st.booleans()):
        spec["sample_weight"] = draw(st.lists(st.sampled_from([1.0, 0.5, 2.0, 0.0]), min_size=n, max_size=n))
    if draw(st.booleans()):
        spec["dtype"] = "float64"
    return spec


def _nested(element: st.SearchStrategy[Any], shape: list[int]) -> st.SearchStrategy[Any]:
    if len(shape) == 1:
        return st.lists(element, min_size=shape[0], max_size=shape[0])
    return st.lists(_nested(element, shape[1:]), min_size=shape[0], max_size=shape[0])


def _size(shape: list[int]) -> int:
    total = 1
    for s in shape:
        total *= s
    return total


def _replace(labels: Any, ignored: list[bool]) -> Any:
    flat = iter(ignored)

    def walk(value: Any) -> Any:
        return [walk(v) for v in value] if isinstance(value, list) else (-100 if next(flat) else value)

    return walk(labels)


def to_case(spec: dict[str, Any]) -> cases.Case | None:
    try:
        return cases.load_text(json.dumps({"cases": [spec]}), "fuzz.yaml")[0]
    except ConformanceError:
        return None


def covered(loaded: list[cases.Case]) -> set[tuple[str, str, str]]:
    """Signatures the case files already show, predicted from each framework's declared knobs."""
    out: set[tuple[str, str, str]] = set()
    defaults = {name: [v for v in adapters.variants(name) if v.key == name] for name in ("torch", "paddle", "tensorflow")}
    for case in loaded:
        if case.binary:
            continue
        knobs = {}
        for name, variants in defaults.items():
            variant = next((v for v in variants if case.loss in v.losses), None)
            knobs[name] = variant.knobs(case) if variant else None
        for a, b in combinations(("torch", "paddle", "tensorflow"), 2):
            knobs_a, knobs_b = knobs[a], knobs[b]
            if knobs_a is None or knobs_b is None or knobs_a == knobs_b:
                continue
            for diff in explain.knob_differences(case, knobs_a, knobs_b):
                if diff["effect"] is None or diff["effect"] > 0:
                    out.add((a, b, diff["knob"]))
    return out


class _OutOfTime(Exception):
    pass


class Fuzzer:
    """Evaluates specs on one pool of workers and remembers the last spec that showed something new."""

    def __init__(self, workers: runner.Workers, known: set[tuple[str, str, str]], deadline: float) -> None:
        self.workers = workers
        self.known = known
        self.deadline = deadline
        self.evaluations = 0
        self.cache: dict[str, set[tuple[str, str, str]]] = {}
        self.records: dict[str, dict[str, Any]] = {}

    def signature(self, spec: dict[str, Any]) -> set[tuple[str, str, str]]:
        key = json.dumps(spec, sort_keys=True)
        if key not in self.cache:
            if time.monotonic() > self.deadline:
                raise _OutOfTime
            case = to_case(spec)
            if case is None:
                self.cache[key] = set()
            else:
                record = results.record(case, self.workers.evaluate(case))
                self.evaluations += 1
                self.records[key] = record
                self.cache[key] = explain.signature(record)
        return self.cache[key]

    def new(self, spec: dict[str, Any]) -> set[tuple[str, str, str]]:
        return self.signature(spec) - self.known


def run(budget: float, seed: int, out: Path, known: set[tuple[str, str, str]], timeout: float = 120.0) -> dict[str, Any]:
    """Fuzz for `budget` seconds; write one YAML case per newly covered signature into `out`."""
    rng = random.Random(seed)
    config = settings(
        max_examples=100_000,
        deadline=None,
        database=None,
        phases=[Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    written: list[Path] = []
    started = time.monotonic()
    with runner.Workers(runner.plan(DEFAULT_KEYS, DEFAULT_KEYS), timeout) as workers:
        workers.evaluate(to_case({"id": "warmup", "logits": [[0.0, 1.0]], "labels": [0]}))  # type: ignore[arg-type]
        fuzzer = Fuzzer(workers, set(known), time.monotonic() + budget)
        loop_started = time.monotonic()
        while True:
            try:
                spec = find(case_specs(), lambda s: bool(fuzzer.new(s)), settings=config, random=rng)
            except (NoSuchExample, _OutOfTime):
                break
            found = fuzzer.new(spec)
            written.append(write_case(out, seed, len(written), spec, fuzzer.records[json.dumps(spec, sort_keys=True)], found))
            fuzzer.known |= found
        elapsed = time.monotonic() - loop_started
    return {
        "seed": seed,
        "evaluations": fuzzer.evaluations,
        "seconds": round(time.monotonic() - started, 1),
        "per_second": fuzzer.evaluations / elapsed if elapsed else 0.0,
        "new_signatures": sorted(fuzzer.known - known),
        "written": [str(p) for p in written],
    }


def write_case(out: Path, seed: int, index: int, spec: dict[str, Any], record: dict[str, Any], found: set[tuple[str, str, str]]) -> Path:
    """A ready-to-commit case file: the minimal spec, its explanation, and the groups it shows."""
    knobs = sorted({k for _, _, k in found})
    name = f"fuzz_{seed}_{index}_{'_'.join(knobs)}"
    texts = [e["text"] for e in record["explanation"]]
    case = {
        "id": name,
        "description": " ".join(texts) or "found by conformance fuzz",
        **{k: v for k, v in spec.items() if k != "id"},
        "expect": {"groups": [[k for k in g if k in DEFAULT_KEYS] for g in record["groups"] if any(k in DEFAULT_KEYS for k in g)]},
    }
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.yaml"
    header = f"# Found by `conformance fuzz --seed {seed}`: new divergence {sorted(found)}.\n"
    path.write_text(header + yaml.safe_dump({"cases": [case]}, sort_keys=False, width=110), encoding="utf-8")
    return path
