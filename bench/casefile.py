"""One large case file of literal cases, as exported from a data set: the parent's peak memory and time.

`python bench/casefile.py [--sizes 1000,10000] [--out DIR] [--frameworks torch,reference] [--no-run]`
writes, per size K, one file of K cases whose arrays are written out (no `random:`): mixed shapes
(N in [2, 32], C in [2, 10]), softmax cross-entropy with class indices or soft labels and binary
cross-entropy, four dtypes, class weights, smoothing, reductions, ignore_index, a few expectations
(`write_cases`; about 2.4 KB a case). For each file it measures, each in a fresh process that reports
its own peak RSS (`ru_maxrss` of that process alone: the framework workers are other processes):

- loading alone: what `conformance run` does with the file before the first case runs (read and validate
  every case, `check_keys`), then reading every case back the way the run takes them;
- the whole `conformance run FILE --frameworks ...` (unless `--no-run`).

The tree measured is the one on PYTHONPATH (or the installed package), so the same script measures
main and a branch. Linux only (`ru_maxrss` in KB). Times on a shared machine are noisy: CPU seconds are
printed beside wall seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TextIO

DTYPES = ["float32"] * 5 + ["float64"] * 2 + ["float16", "bfloat16"]
REDUCTIONS = ["mean", "mean", "sum", "none"]
LOAD = """
import resource, sys, time
from pathlib import Path
from conformance import cases, cli
start, cpu = time.perf_counter(), time.process_time()
paths = [Path(p) for p in sys.argv[1:]]
try:  # the streaming loader: every case validated into a spool on disk, then read back one by one
    from conformance import spool
except ImportError:  # main 1ecca7c: every case in one list
    loaded = cases.load_paths(paths)
    cli.check_keys(loaded)
    count = sum(1 for _ in loaded)
else:
    with spool.Spool(cases.read(paths), cli.check_case_keys) as loaded:
        count = sum(1 for _ in loaded)
print("LOAD", count, time.perf_counter() - start, time.process_time() - cpu, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""
RUN = """
import resource, sys, time
from conformance import cli
start, cpu = time.perf_counter(), time.process_time()
code = cli.main(sys.argv[1:])
print("RUN", code, time.perf_counter() - start, time.process_time() - cpu, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def _row(rng: random.Random, n: int, digits: int) -> str:
    return "[" + ", ".join(f"{rng.gauss(0, 2):.{digits}g}" for _ in range(n)) + "]"


def _probabilities(rng: random.Random, n: int) -> str:
    raw = [rng.random() + 1e-3 for _ in range(n)]
    total = sum(raw)
    return "[" + ", ".join(f"{x / total:.9g}" for x in raw) + "]"


def write_case(out: TextIO, rng: random.Random, index: int) -> None:
    """One case as a data set export writes it: every array written out, row by row."""
    n, c = rng.randint(2, 32), rng.randint(2, 10)
    kind = rng.choices(["hard", "soft", "binary"], weights=[7, 2, 1])[0]
    dtype = rng.choice(DTYPES)
    out.write(f"- id: export_{index:06d}\n")
    out.write(f"  description: exported batch {index} ({n} samples, {c} classes, {dtype})\n")
    if kind == "binary":
        out.write("  loss: binary_cross_entropy\n")
    digits = 17 if dtype == "float64" else 9  # what printing a float64 or a float32 value in full takes
    out.write("  logits:\n")
    for _ in range(n):
        out.write(f"  - {_row(rng, c, digits)}\n")
    if kind == "hard":
        labels = [rng.randrange(c) for _ in range(n)]
        if rng.random() < 0.1:
            labels[0] = -100
            out.write("  ignore_index: -100\n")
        out.write(f"  labels: {labels}\n")
    elif kind == "soft":
        out.write("  soft_labels:\n")
        for _ in range(n):
            out.write(f"  - {_probabilities(rng, c)}\n")
    else:
        out.write("  labels:\n")
        for _ in range(n):
            out.write(f"  - {[rng.randint(0, 1) for _ in range(c)]}\n")
    if rng.random() < 0.3:
        out.write(f"  weight: [{', '.join(f'{rng.uniform(0.1, 3):.4g}' for _ in range(c))}]\n")
    if rng.random() < 0.3:
        out.write(f"  label_smoothing: {rng.choice([0.05, 0.1, 0.2])}\n")
    reduction = rng.choice(REDUCTIONS)
    if reduction != "mean":
        out.write(f"  reduction: {reduction}\n")
    if dtype != "float32":
        out.write(f"  dtype: {dtype}\n")
    if rng.random() < 0.2:
        out.write("  expect: {status: {torch: ok, reference: ok}}\n")


def write_cases(path: Path, count: int, seed: int = 0) -> Path:
    """A single file of `count` literal cases (reproducible from `seed`)."""
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as out:
        out.write(f"# {count} cases exported from a data set (bench/casefile.py, seed {seed})\n")
        out.write("defaults:\n  reduction: mean\n\ncases:\n")
        for index in range(count):
            write_case(out, rng, index)
    return path


def _probe(code: str, tag: str, args: list[str]) -> dict[str, float]:
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=os.environ)
    line = next((line.split() for line in done.stdout.splitlines() if line.startswith(tag)), None)
    if line is None:
        raise SystemExit(f"{tag} failed (exit {done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return {"value": float(line[1]), "wall_s": float(line[2]), "cpu_s": float(line[3]), "peak_mb": int(line[4]) / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--frameworks", default="torch,reference")
    parser.add_argument("--no-run", action="store_true", help="measure loading alone")
    args = parser.parse_args()
    folder = args.out or Path(tempfile.mkdtemp(prefix="casefile-"))
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        path = write_cases(folder / f"export_{size}.yaml", size)
        load = _probe(LOAD, "LOAD", [str(path)])
        row = {"cases": size, "file_mb": path.stat().st_size / 1e6, "load": load}
        if not args.no_run:
            out = folder / f"export_{size}.json"
            run_args = ["run", str(path), "--frameworks", args.frameworks, "--json", str(out), "--html", str(out.with_suffix(".html"))]
            row["run"] = _probe(RUN, "RUN", run_args)
        rows.append(row)
        print(json.dumps(row), flush=True)
    (folder / "casefile.json").write_text(json.dumps(rows, indent=1), encoding="utf-8")
    print("| cases | file MB | load: peak MB | load: wall s | load: CPU s | run: exit | run: parent peak MB | run: wall s |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        load, run = row["load"], row.get("run")
        tail = f"{run['value']:.0f} | {run['peak_mb']:.0f} | {run['wall_s']:.0f}" if run else "- | - | -"
        print(f"| {row['cases']:,} | {row['file_mb']:.1f} | {load['peak_mb']:.0f} | {load['wall_s']:.1f} | {load['cpu_s']:.1f} | {tail} |")


if __name__ == "__main__":
    main()
