"""Many distinct shapes: the JAX worker against torch's, CPU and peak memory per worker.

    python bench/shapes.py --cases 60 --out /tmp/shapes            # write the cases, run torch and jax
    python bench/shapes.py --cases 1000 --frameworks jax --only jax,jax:optax_generic,reference
    python bench/shapes.py --cases 60 --write-only --out /tmp/s     # just the case file

The shipped cases and bench.py's generated ones use few shapes, which hides what a framework that compiles
per shape (JAX) costs. This writes K softmax cross-entropy cases whose (N, C) are all distinct (N from 2,
C in [2, 10]: 32 - 2 + 1 = 31 values of N x 9 of C give 279 shapes; beyond that N grows), each with random
logits and labels, class weights or not, label smoothing and the reduction drawn from a seed. Then for each
framework it runs `conformance run FILE --frameworks FW,reference --only KEYS` (default: the framework's
default key and the reference) while polling the worker's /proc entries (CPU seconds, user + system, and
VmHWM, the peak resident memory), once on the first case alone and once on all K, and prints one row per
framework: worker CPU, the CPU of each further case ((all - first alone) / (K - 1): start-up excluded),
peak RSS. CPU rather than wall time: the machine may be shared.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from bench import Measured, conformance_command, measure  # noqa: E402

SMOOTHING = [0.0, 0.05, 0.1, 0.2]
REDUCTIONS = ["mean", "sum", "none"]
CLASSES = range(2, 11)


def shapes(count: int, seed: int) -> list[tuple[int, int]]:
    """`count` distinct (N, C), in a random order: N in [2, 32] first, then as far as needed."""
    rows = max(31, -(-count // len(CLASSES)))
    every = [(n, c) for n in range(2, 2 + rows) for c in CLASSES]
    rng = np.random.default_rng(seed)
    first = [every[i] for i in rng.permutation(31 * len(CLASSES))]
    rest = every[31 * len(CLASSES) :]
    return (first + [rest[i] for i in rng.permutation(len(rest))])[:count]


def case_file(count: int, seed: int = 0) -> str:
    """YAML of `count` cases of distinct shapes; weights, smoothing and reduction drawn from `seed`."""
    rng = np.random.default_rng(seed + 1)
    lines = ["defaults:", "  labels: random", "cases:"]
    for i, (n, c) in enumerate(shapes(count, seed)):
        lines += [f"  - id: s{i}_{n}x{c}", f"    random: {{shape: [{n}, {c}], seed: {i}}}", f"    reduction: {REDUCTIONS[rng.integers(3)]}"]
        if rng.random() < 0.5:
            lines.append("    weight: random")
        smoothing = SMOOTHING[rng.integers(len(SMOOTHING))]
        if smoothing:
            lines.append(f"    label_smoothing: {smoothing}")
    return "\n".join(lines) + "\n"


def run(framework: str, only: str, path: Path, folder: Path, interval: float) -> dict[str, Any]:
    """One `conformance run` of the file for one framework (and the reference); its worker's numbers."""
    out = folder / f"{framework}-{path.stem}.json"
    command = [*conformance_command(), "run", str(path), "--frameworks", f"{framework},reference", "--only", only, "--json", str(out)]
    command += ["--html", str(folder / f"{framework}-{path.stem}.html")]
    log = folder / f"{framework}-{path.stem}.log"
    measured: Measured = measure(command, folder, log, interval)
    if measured.code not in (0, 1):
        raise RuntimeError(f"{' '.join(command)} exited {measured.code}: see {log}")
    doc = json.loads(out.read_text())
    cases = len(doc["cases"])
    workers = measured.role(f"worker:{framework}")
    startup = sum(doc["workers"].get(framework, {}).get("startup_seconds", []))
    cpu = sum(w.cpu for w in workers)
    return {
        "framework": framework,
        "only": only,
        "cases": cases,
        "wall": measured.wall,
        "workers": len(workers),
        "startup": startup,
        "worker_cpu": cpu,
        "peak_mb": max((w.hwm_kb for w in workers), default=0) / 1024,
        "other_load": measured.other_cpu / measured.wall,
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--frameworks", default="torch,jax", help="run each, one after another")
    parser.add_argument("--only", default=None, help="result keys (default: FRAMEWORK,reference for each)")
    parser.add_argument("--out", type=Path, default=None, help="working folder (default: a temporary one)")
    parser.add_argument("--interval", type=float, default=0.2, help="/proc polling interval, seconds")
    parser.add_argument("--write-only", action="store_true", help="write the case file and stop")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    folder = args.out or Path(tempfile.mkdtemp(prefix="shapes-"))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"shapes{args.cases}.yaml"
    path.write_text(case_file(args.cases, args.seed), encoding="utf-8")
    print(f"{args.cases} cases of distinct shapes: {path}")
    if args.write_only:
        return 0
    first = folder / "shapes1.yaml"
    first.write_text(case_file(1, args.seed), encoding="utf-8")
    rows = []
    for framework in args.frameworks.split(","):
        started = time.strftime("%H:%M:%S")
        only = args.only or f"{framework},reference"
        alone = run(framework, only, first, folder, args.interval)
        row = run(framework, only, path, folder, args.interval)
        row["cpu_per_case_ms"] = 1000 * (row["worker_cpu"] - alone["worker_cpu"]) / max(row["cases"] - 1, 1)
        row["first_case_cpu"] = alone["worker_cpu"]
        rows.append(row)
        print(
            f"{started} {framework:<10} cases {row['cases']}  wall {row['wall']:.1f} s  worker CPU {row['worker_cpu']:.1f} s "
            f"(start-up and the first case alone: {alone['worker_cpu']:.1f} s; {row['cpu_per_case_ms']:.1f} ms per further case)  "
            f"peak RSS {row['peak_mb']:.0f} MB  other load {row['other_load']:.1f} cores",
            flush=True,
        )
    (folder / "shapes.json").write_text(json.dumps(rows, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
