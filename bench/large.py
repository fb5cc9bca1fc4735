"""The issue's real sizes through `conformance run`: wall time, the parent's peak memory, results.json size.

`python bench/large.py [--out DIR] [--only KEYS] [--repeat N]` writes one case file per size (generated
logits and labels from a seed), runs `conformance run` on each in a fresh process that reports its own
peak RSS (`ru_maxrss` of the parent alone; the largest worker's from `RUSAGE_CHILDREN`), and prints a
Markdown table (bench/README.md, "Large tensors"). Linux only.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIZES = {
    "lm_head [256, 50000]": {"random": {"shape": [256, 50000], "seed": 0}, "labels": "random"},
    "segmentation [64, 1000, 8, 8]": {"random": {"shape": [64, 1000, 8, 8], "seed": 0}, "labels": "random"},
    "detection BCE [8192, 80]": {"loss": "binary_cross_entropy", "random": {"shape": [8192, 80], "seed": 0}, "labels": "random"},
    "smoothed sum [128, 32000]": {
        "random": {"shape": [128, 32000], "seed": 0, "scale": 3},
        "labels": "random",
        "label_smoothing": 0.1,
        "reduction": "sum",
    },
}
PROBE = """
import resource, sys
from conformance import cli
code = cli.main(sys.argv[1:])
print("PEAK", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
sys.exit(code)
"""


def run(folder: Path, name: str, spec: dict, only: str | None) -> dict:
    path = folder / (name.split()[0] + ".yaml")
    path.write_text(json.dumps({"cases": [{"id": name.split()[0], **spec}]}), encoding="utf-8")
    out = folder / (name.split()[0] + ".json")
    args = ["run", str(path), "--json", str(out), "--html", str(out.with_suffix(".html"))]
    args += ["--only", only] if only else []
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True)
    wall = time.perf_counter() - started
    peak = next(line.split() for line in done.stdout.splitlines() if line.startswith("PEAK"))
    record = json.loads(out.read_text(encoding="utf-8").splitlines()[-2].rstrip(","))
    return {
        "size": name,
        "exit": done.returncode,
        "wall_s": round(wall, 1),
        "parent_peak_mb": round(int(peak[1]) / 1024),
        "largest_worker_mb": round(int(peak[2]) / 1024),
        "json_kb": round(out.stat().st_size / 1024),
        "html_kb": round(out.with_suffix(".html").stat().st_size / 1024),
        "groups": record["groups"],
        "notes": [r["numerical"]["text"] for r in record["results"].values() if r.get("numerical")],
        "seconds": {k: round(r.get("seconds") or 0, 2) for k, r in record["results"].items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--only", default="torch,paddle,tensorflow,jax,reference", help="result keys ('' for every variant)")
    parser.add_argument("--sizes", default=",".join(n.split()[0] for n in SIZES))
    args = parser.parse_args()
    folder = args.out or Path(tempfile.mkdtemp(prefix="large-"))
    folder.mkdir(parents=True, exist_ok=True)
    wanted = args.sizes.split(",")
    rows = [run(folder, name, spec, args.only or None) for name, spec in SIZES.items() if name.split()[0] in wanted]
    (folder / "large.json").write_text(json.dumps(rows, indent=1), encoding="utf-8")
    print("| case | exit | wall s | parent peak MB | largest worker MB | results.json KB | report KB | groups |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for row in rows:
        groups = " ".join("[" + ", ".join(g) + "]" for g in row["groups"])
        print(
            f"| {row['size']} | {row['exit']} | {row['wall_s']} | {row['parent_peak_mb']} | {row['largest_worker_mb']} "
            f"| {row['json_kb']} | {row['html_kb']} | {groups} |"
        )
    for row in rows:
        print(f"{row['size']}: native seconds {row['seconds']}; notes {row['notes']}")


if __name__ == "__main__":
    main()
