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
import tempfile
import time
from collections.abc import Iterable
from itertools import combinations
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, Phase, find, settings
from hypothesis import strategies as st
from hypothesis.errors import NoSuchExample

from conformance import adapters, cases, engines, explain, registry, runner, user
from conformance.errors import ConformanceError
from conformance.pipeline import Pipeline
from conformance.records import CaseRecord


def case_specs() -> st.SearchStrategy[dict[str, Any]]:
    """A case as it would be written in YAML: a registered loss family (shrinking towards the first),
    then a spec from that family's own strategy (`strategy()`, see `conformance.losses`)."""
    return st.sampled_from(list(registry.losses().values())).flatmap(lambda family: family.strategy())


def to_case(spec: dict[str, Any]) -> cases.Case | None:
    try:
        return cases.load_text(json.dumps({"cases": [spec]}), "fuzz.yaml")[0]
    except ConformanceError:
        return None


def covered(loaded: Iterable[cases.Case]) -> set[tuple[str, str, str]]:
    """Signatures the case files already show, predicted from each native framework's declared knobs
    (its default variant for the case's loss family; a framework without one shows nothing there)."""
    out: set[tuple[str, str, str]] = set()
    natives = registry.native()
    defaults = {name: [v for v in adapters.variants(name) if v.key == name] for name in natives}
    for case in loaded:
        if not case.check_shapes:  # mismatched on purpose: every framework should raise, no formula applies
            continue
        knobs = {}
        for name, variants in defaults.items():
            variant = next((v for v in variants if case.loss in v.losses), None)
            knobs[name] = variant.knobs(case) if variant else None
        for a, b in combinations(natives, 2):
            knobs_a, knobs_b = knobs[a], knobs[b]
            if knobs_a is None or knobs_b is None or knobs_a == knobs_b:
                continue
            for diff in explain.knob_differences(case, knobs_a, knobs_b):
                if diff.effect is None or diff.effect > 0:
                    out.add((a, b, diff.knob))
    return out


class _OutOfTime(Exception):
    pass


class Fuzzer:
    """Evaluates specs on one pool of workers and remembers the last spec that showed something new."""

    def __init__(self, pipeline: Pipeline, known: set[tuple[str, str, str]], deadline: float) -> None:
        self.pipeline = pipeline
        self.known = known
        self.deadline = deadline
        self.evaluations = 0
        self.cache: dict[str, set[tuple[str, str, str]]] = {}
        self.records: dict[str, CaseRecord] = {}

    def signature(self, spec: dict[str, Any]) -> set[tuple[str, str, str]]:
        key = json.dumps(spec, sort_keys=True)
        if key not in self.cache:
            if time.monotonic() > self.deadline:
                raise _OutOfTime
            case = to_case(spec)
            if case is None:
                self.cache[key] = set()
            else:
                record = self.pipeline.evaluate(case)
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
    kinds: list[list[tuple[str, str, str]]] = []  # the new divergence kinds of each written case
    started = time.monotonic()
    keys = list(registry.frameworks())
    with Pipeline(runner.plan(keys, keys + sorted(user.keys())), timeout) as pipeline:  # and the user's functions (--variant)
        pipeline.evaluate(to_case({"id": "warmup", "logits": [[0.0, 1.0]], "labels": [0]}))  # type: ignore[arg-type]
        fuzzer = Fuzzer(pipeline, set(known), time.monotonic() + budget)
        loop_started = time.monotonic()
        while True:
            try:
                spec = find(case_specs(), lambda s: bool(fuzzer.new(s)), settings=config, random=rng)
            except (NoSuchExample, _OutOfTime):
                break
            found = fuzzer.new(spec)
            written.append(write_case(out, seed, len(written), spec, fuzzer.records[json.dumps(spec, sort_keys=True)], found))
            kinds.append(sorted(found))
            fuzzer.known |= found
        elapsed = time.monotonic() - loop_started
    return {
        "seed": seed,
        "evaluations": fuzzer.evaluations,
        "seconds": round(time.monotonic() - started, 1),
        "per_second": fuzzer.evaluations / elapsed if elapsed else 0.0,
        "new_signatures": sorted(fuzzer.known - known),
        "written": [str(p) for p in written],
        "kinds": kinds,
    }


def campaign(
    choice: engines.Choice, budget: float, seeds: list[int], out: Path, known: set[tuple[str, str, str]], timeout: float = 120.0
) -> list[dict[str, Any]]:
    """One fuzzer per seed, each outcome as `run` gives it. Local: one after another, each counting what
    the seeds before it found as covered. Ray: all at once across the cluster (`ray_actors.spread`), each
    a task on some node with its own local framework workers (the fuzzer asks case by case, so the
    workers belong next to it), the cases gathered here into `out`, in seed order, leaving out a case
    whose divergence kinds an earlier seed's cases already show."""
    if choice.name != "ray":
        outcomes: list[dict[str, Any]] = []
        for seed in seeds:
            outcomes.append(run(budget, seed, out, known | {k for o in outcomes for k in o["new_signatures"]}, timeout))
        return outcomes
    from conformance.engines import ray_actors

    outcomes = ray_actors.spread(_seed_on_a_node, seeds, choice.address, budget, known, timeout, user.active())
    kept: set[tuple[str, str, str]] = set()
    for outcome in outcomes:
        outcome["written"] = []
        for (name, text), kinds in zip(outcome.pop("files").items(), outcome["kinds"], strict=True):
            if {tuple(k) for k in kinds} <= kept:
                continue
            kept |= {tuple(k) for k in kinds}
            out.mkdir(parents=True, exist_ok=True)
            (out / name).write_text(text, encoding="utf-8")
            outcome["written"].append(str(out / name))
    return outcomes


def _seed_on_a_node(seed: int, budget: float, known: set[tuple[str, str, str]], timeout: float, specs: tuple[Any, ...]) -> dict[str, Any]:
    """One seed's `run` on a Ray node, the cases it found as `files` (name -> YAML text) for the driver to write."""
    with tempfile.TemporaryDirectory() as folder, user.activated(specs):
        outcome = run(budget, seed, Path(folder), known, timeout)
        outcome["files"] = {Path(p).name: Path(p).read_text(encoding="utf-8") for p in outcome.pop("written")}
    return outcome


def write_case(out: Path, seed: int, index: int, spec: dict[str, Any], record: CaseRecord, found: set[tuple[str, str, str]]) -> Path:
    """A ready-to-commit case file: the minimal spec, its explanation, and the groups it shows."""
    knobs = sorted({k for _, _, k in found})
    name = f"fuzz_{seed}_{index}_{'_'.join(knobs)}"
    texts = [e.text for e in record.explanation]
    keys = set(registry.frameworks()) | user.keys()  # the user's functions (`--variant`) keep their place in the groups
    case = {
        "id": name,
        "description": " ".join(texts) or "found by conformance fuzz",
        **{k: v for k, v in spec.items() if k != "id"},
        "expect": {"groups": [[k for k in g if k in keys] for g in record.groups if any(k in keys for k in g)]},
    }
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.yaml"
    header = f"# Found by `conformance fuzz --seed {seed}`: new divergence {sorted(found)}.\n"
    named = [spec for spec in user.active() if any(spec.key in g for g in case["expect"]["groups"])]
    if named:
        options = dict.fromkeys(s.option or f"--variant {s.text()}" for s in named)
        header += "# The expected groups name your functions: run it with " + " ".join(options) + ".\n"
    path.write_text(header + yaml.safe_dump({"cases": [case]}, sort_keys=False, width=110), encoding="utf-8")
    return path
