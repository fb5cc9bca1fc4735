"""Bare scripts vs the suite, side by side, on the same generated cases.

    python bench/bench.py [--sizes 10,100,1000] [--repeat 3] [--out DIR] [--no-pytest]

For each size N it writes one small YAML file that expands to N softmax cross-entropy cases (random
(8, 10) logits and labels; class weights, label smoothing and the reduction mixed), then measures:

- bare: for each framework, a fresh `python bench/bare.py FRAMEWORK` that imports it and calls the
  default variant's native loss and gradient on the same arrays, frameworks one after another (what a
  hand-written comparison script does). Its wall time is the sum of the four processes.
- suite: `conformance run DIR --only torch,paddle,tensorflow,jax --json --html`, the whole command.
- pytest: `pytest DIR --conformance-only ...` with `-n 0` and `-n auto`.

Every process tree is polled through /proc (peak RSS = VmHWM and CPU time of the parent and of every
worker), and results.json gives each framework's worker start-up and the seconds of its native calls.
The bare values are checked against the suite's, so both really ran the same computations. CPU used
by other programs during each run is recorded, since a shared machine makes wall times noisy.
Needs Linux (/proc) and the frameworks installed in this interpreter's environment.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

FRAMEWORKS = ("torch", "paddle", "tensorflow", "jax")
KEYS = ",".join(FRAMEWORKS)
SHAPE = (8, 10)
WEIGHT = [1.0, 2.0, 0.5, 1.5, 1.0, 3.0, 0.25, 1.0, 2.0, 1.0]
SMOOTHING = [0.0, 0.05, 0.1, 0.15, 0.2]
REDUCTIONS = ["mean", "sum", "none"]
BARE = Path(__file__).with_name("bare.py")
REPO = Path(__file__).resolve().parents[1]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
MB = 1024 * 1024
QUIET_CORES = 0.3
RUNS = ("bare", "suite", "pytest_n0", "pytest_nauto")

OVERHEAD_DEFINITION = (
    "harness overhead = suite wall - max over frameworks (its first worker's start-up + its native seconds / "
    "its workers, when it was given more than one): the wall time beyond the slowest framework's import and "
    "native calls (parent start-up and case loading, "
    "per-case work in workers and parent, IPC, waiting, report writing). "
    "% is of the native time, the sum over frameworks of the seconds the workers spent in native calls and "
    "their conversion to NumPy (results.json `seconds`); ms/case divides the overhead by the cases."
)


@dataclass(frozen=True)
class Settings:
    """How to measure: /proc polling interval, the bare scripts' environment, how long to wait for quiet."""

    interval: float
    bare_env: dict[str, str]
    settle: float
    ray_address: str | None = None
    """With a Ray cluster's address, the suite also runs with `--engine ray` there (`--ray-nodes`)."""


# ---------------------------------------------------------------- cases


def case_file(count: int) -> str:
    """YAML expanding to exactly `count` cases: one entry per seed, each a 2 x 5 matrix of weight x
    smoothing with the reduction cycling over the entries, then single cases for the remainder."""
    shape = f"[{SHAPE[0]}, {SHAPE[1]}]"
    lines = ["defaults:", "  labels: random", "cases:"]
    full, rest = divmod(count, 2 * len(SMOOTHING))
    for seed in range(full + rest):
        lines += [
            f"  - id: s{seed}",
            f"    random: {{shape: {shape}, seed: {seed}}}",
            f"    reduction: {REDUCTIONS[seed % len(REDUCTIONS)]}",
        ]
        if seed < full:
            lines.append(f"    matrix: {{weight: [null, {json.dumps(WEIGHT)}], label_smoothing: {json.dumps(SMOOTHING)}}}")
        else:
            lines.append(f"    label_smoothing: {SMOOTHING[seed % len(SMOOTHING)]}")
    return "\n".join(lines) + "\n"


def write_cases(count: int, folder: Path) -> tuple[Path, list[str]]:
    """The case folder and, through the suite's own loader, the npz the bare scripts read (so both get
    exactly the arrays the adapters hand to the frameworks)."""
    from conformance import adapters, cases

    cases_dir = folder / "cases"
    cases_dir.mkdir(parents=True, exist_ok=True)
    (cases_dir / "generated.yaml").write_text(case_file(count), encoding="utf-8")
    loaded = cases.load_paths([cases_dir])
    if len(loaded) != count:
        raise RuntimeError(f"generated {len(loaded)} cases, wanted {count}")
    arrays = [adapters.arrays(case) for case in loaded]
    np.savez(
        folder / "bare-input.npz",
        x=np.stack([a["x"] for a in arrays]),
        y=np.stack([a["y"] for a in arrays]),
        w=np.stack([a.get("w", np.ones(SHAPE[1], dtype=a["x"].dtype)) for a in arrays]),
        has_w=np.array([c.weight is not None for c in loaded]),
        eps=np.array([c.label_smoothing for c in loaded]),
        reduction=np.array([c.reduction for c in loaded]),
    )
    return cases_dir, [c.id for c in loaded]


# ---------------------------------------------------------------- process trees


@dataclass
class Proc:
    """One process of a measured tree, as last seen in /proc."""

    pid: int
    role: str
    first: float
    last: float
    hwm_kb: int = 0
    cpu: float = 0.0


@dataclass
class Measured:
    """A measured command: wall time, exit code, CPU of its tree and of everything else, every process."""

    wall: float
    code: int
    tree_cpu: float
    other_cpu: float
    procs: list[Proc] = field(default_factory=list)

    def role(self, prefix: str) -> list[Proc]:
        return [p for p in self.procs if p.role.startswith(prefix)]


def _stat(pid: int) -> tuple[int, float] | None:
    """Parent pid and CPU seconds (user + system) of a process, None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _hwm_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _role(pid: int, root: int) -> str:
    """What a process is, from its command line: the parent, a framework worker, an xdist worker."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return "gone"
    if "conformance.worker" in argv:
        return "worker:" + argv[argv.index("conformance.worker") + 1]
    if pid == root:
        return "parent"
    if any("execnet" in a or "sys.stdin.readline" in a for a in argv):
        return "xdist"
    return "other:" + Path(argv[0]).name


def _busy_seconds() -> float:
    """CPU seconds the whole machine has been busy (all cores, /proc/stat)."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9])
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Poller(threading.Thread):
    """Samples the descendants of `root` every `interval` seconds: peak RSS and CPU, first and last seen.
    Polling (not wait4 of the top process) is what gives per-worker numbers: the workers are the
    parent's children, reaped by it."""

    def __init__(self, root: int, start: float, interval: float) -> None:
        super().__init__(daemon=True)
        self.root, self.t0, self.interval = root, start, interval
        self.procs: dict[int, Proc] = {}
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.sample()
            self.done.wait(self.interval)

    def sample(self) -> None:
        now = time.perf_counter() - self.t0
        stats = {pid: s for pid in _pids() if (s := _stat(pid)) is not None}
        for pid in _descendants(self.root, {pid: s[0] for pid, s in stats.items()}):
            proc = self.procs.get(pid)
            if proc is None:
                proc = self.procs[pid] = Proc(pid, _role(pid, self.root), now, now)
            proc.last = now
            proc.cpu = max(proc.cpu, stats[pid][1])
            proc.hwm_kb = max(proc.hwm_kb, _hwm_kb(pid))


def _pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _descendants(root: int, parent_of: dict[int, int]) -> list[int]:
    children: dict[int, list[int]] = {}
    for pid, ppid in parent_of.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = [], [root] if root in parent_of else []
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def settle(limit: float) -> None:
    """Wait, up to `limit` seconds, until the rest of the machine is quiet for a second, so that another
    job's burst on a shared machine does not land inside a measurement."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        before = _busy_seconds()
        time.sleep(1.0)
        if _busy_seconds() - before < QUIET_CORES:
            return


def measure(command: list[str], cwd: Path, log: Path, interval: float, env: dict[str, str] | None = None) -> Measured:
    """Run `command` to completion while polling its process tree; output goes to `log`."""
    with log.open("wb") as out:
        busy, own = _busy_seconds(), _own_cpu()
        start = time.perf_counter()
        process = subprocess.Popen(command, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=env)
        poller = Poller(process.pid, start, interval)
        poller.start()
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        poller.done.set()
        poller.join()
    tree = usage.ru_utime + usage.ru_stime
    other = _busy_seconds() - busy - tree - (_own_cpu() - own)
    return Measured(wall, process.returncode, tree, max(other, 0.0), list(poller.procs.values()))


# ---------------------------------------------------------------- the three ways to run


def run_bare(folder: Path, settings: Settings) -> dict[str, Any]:
    """The four bare scripts one after another; their own timings from the JSON line each prints."""
    settle(settings.settle)
    out: dict[str, Any] = {"frameworks": {}}
    for framework in FRAMEWORKS:
        log = folder / f"bare-{framework}.log"
        target = folder / f"bare-{framework}.npz"
        command = [sys.executable, str(BARE), framework, str(folder / "bare-input.npz"), str(target)]
        run = measure(command, folder, log, settings.interval, settings.bare_env)
        _check(run, log)
        reported = json.loads(log.read_text().strip().splitlines()[-1])
        parent = run.role("parent")
        out["frameworks"][framework] = {
            "wall": run.wall,
            "import": reported["import_seconds"],
            "native": reported["native_seconds"],
            "peak_mb": parent[0].hwm_kb / 1024 if parent else None,
            "other_load": run.other_cpu / run.wall,
            "cpu": run.tree_cpu,
        }
    out["wall"] = sum(f["wall"] for f in out["frameworks"].values())
    out["tree_cpu"] = sum(f["cpu"] for f in out["frameworks"].values())
    out["other_load"] = sum(f["other_load"] * f["wall"] for f in out["frameworks"].values()) / out["wall"]
    return out


def conformance_command() -> list[str]:
    script = Path(sys.executable).with_name("conformance")
    return [str(script)] if script.exists() else [sys.executable, "-m", "conformance.cli"]


def run_suite(folder: Path, cases_dir: Path, settings: Settings) -> tuple[dict[str, Any], dict[str, Any]]:
    """`conformance run`, timed as a whole; also returns the results document for the checks."""
    json_path, html_path = folder / "suite" / "results.json", folder / "suite" / "index.html"
    command = conformance_command() + ["run", str(cases_dir), "--only", KEYS, "--json", str(json_path), "--html", str(html_path)]
    log = folder / "suite.log"
    settle(settings.settle)
    run = measure(command, folder, log, settings.interval)
    _check(run, log)
    doc = json.loads(json_path.read_text(encoding="utf-8"))
    _all_ok(doc, log)
    out = _tree(run)
    out.update(
        startup={f: doc["workers"][f]["startup_seconds"][0] for f in FRAMEWORKS},
        startups={f: sum(doc["workers"][f]["startup_seconds"]) for f in FRAMEWORKS},
        shards={f: len(doc["workers"][f]["startup_seconds"]) - doc["workers"][f]["restarts"] for f in FRAMEWORKS},
        native=_native(doc),
        json_mb=json_path.stat().st_size / MB,
        html_mb=html_path.stat().st_size / MB,
        versions=doc.get("versions", {}),
    )
    # A framework with several workers shares its native seconds among them (its critical path: the
    # first worker's start-up, then its share); worker_other sums over all its workers.
    out["critical"] = max(out["startup"][f] + out["native"][f] / out["shards"][f] for f in FRAMEWORKS)
    out["overhead"] = out["wall"] - out["critical"]
    out["worker_other"] = {f: out["lifetimes"][f] - out["startups"][f] - out["native"][f] for f in FRAMEWORKS}
    return out, doc


def run_suite_ray(folder: Path, cases_dir: Path, settings: Settings, local: dict[str, Any]) -> dict[str, Any]:
    """`conformance run --engine ray` on the cluster at `settings.ray_address`, timed as a whole. The
    actors are the cluster's processes, not the command's: their CPU shows only in the machine's
    (`machine_cpu`: every process, other programs included). Checks the document against the local
    engine's `local`, timings and worker details aside."""
    json_path, html_path = folder / "suite-ray" / "results.json", folder / "suite-ray" / "index.html"
    command = conformance_command() + ["run", str(cases_dir), "--only", KEYS, "--json", str(json_path), "--html", str(html_path)]
    command += ["--engine", "ray", "--ray-address", str(settings.ray_address)]
    log = folder / "suite-ray.log"
    settle(settings.settle)
    run = measure(command, folder, log, settings.interval)
    _check(run, log)
    doc = json.loads(json_path.read_text(encoding="utf-8"))
    _all_ok(doc, log)
    parent = run.role("parent")
    return {
        "wall": run.wall,
        "tree_cpu": run.tree_cpu,
        "machine_cpu": run.tree_cpu + run.other_cpu,
        "parent_cpu": parent[0].cpu if parent else None,
        "parent_mb": parent[0].hwm_kb / 1024 if parent else None,
        "startup": {f: doc["workers"][f]["startup_seconds"][0] for f in FRAMEWORKS},
        "nodes": len({n for f in FRAMEWORKS for n in doc["workers"][f].get("nodes", [])}),
        "native": _native(doc),
        "identical": _comparable(doc) == _comparable(local),
    }


def _comparable(doc: Any) -> Any:
    """A results document without what may differ between runs and engines: timings, workers, date."""
    if isinstance(doc, dict):
        return {k: _comparable(v) for k, v in doc.items() if k not in ("seconds", "workers", "run")}
    if isinstance(doc, list):
        return [_comparable(v) for v in doc]
    return "NaN" if isinstance(doc, float) and doc != doc else doc


def start_ray_cluster(nodes: int) -> Any:
    """A local Ray cluster of `nodes` nodes on this machine, each declaring this machine's CPUs, started
    once before any measurement (a cluster is up before a run uses it: its start-up is not timed)."""
    from ray.cluster_utils import Cluster

    node = {"num_cpus": os.cpu_count() or 1}
    cluster = Cluster(initialize_head=True, head_node_args={**node, "include_dashboard": False})
    for _ in range(nodes - 1):
        cluster.add_node(**node)
    cluster.wait_for_nodes()
    return cluster


def engine_table(sizes: list[dict[str, Any]]) -> str:
    lines = [
        "| cases | local engine s | Ray engine s | Ray / local | Ray - local s (ms/case) | actor start-up s (torch / paddle / tf / jax) "
        "| nodes used | parent CPU s (local / Ray) | machine CPU s (local / Ray) | results identical |",
        "|" + "---:|" * 10,
    ]
    for size in sizes:
        runs, n = size["runs"], size["cases"]
        if "suite_ray" not in runs[0]:
            continue
        local, distributed = median(runs, "suite", "wall"), median(runs, "suite_ray", "wall")
        machine = median(runs, "suite", "tree_cpu") + median(runs, "suite", "other_load") * local
        lines.append(
            f"| {n:,} | {_f(local)} | {_f(distributed)} | {distributed / local:.2f} | {_f(distributed - local)} "
            f"({(distributed - local) / n * 1000:.1f}) | {_per_fw(runs, 'suite_ray', 'startup')} | {median(runs, 'suite_ray', 'nodes')} "
            f"| {_f(median(runs, 'suite', 'parent_cpu'))} / {_f(median(runs, 'suite_ray', 'parent_cpu'))} "
            f"| {_f(machine)} / {_f(median(runs, 'suite_ray', 'machine_cpu'))} "
            f"| {'yes' if all(r['suite_ray']['identical'] for r in runs) else 'NO'} |"
        )
    return "\n".join(lines)


def run_pytest(folder: Path, cases_dir: Path, workers: str, settings: Settings) -> dict[str, Any]:
    """The pytest plugin on the same folder (rootdir: the case folder, so no project ini applies: the
    plugins this project turns off in pyproject.toml are turned off here too)."""
    report = folder / f"pytest-n{workers}"
    command = [
        sys.executable,
        "-m",
        "pytest",
        str(cases_dir),
        "-q",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:hypothesispytest",
        "-p",
        "no:anyio",
        "-n",
        workers,
        "--conformance-only",
        KEYS,
        "--conformance-json",
        str(report / "results.json"),
        "--conformance-html",
        str(report / "index.html"),
    ]
    log = folder / f"pytest-n{workers}.log"
    settle(settings.settle)
    run = measure(command, folder, log, settings.interval)
    _check(run, log)
    return _tree(run)


def _tree(run: Measured) -> dict[str, Any]:
    """Wall, CPU and peak memory of a suite-like run: the parent, each framework's workers, xdist."""
    workers = run.role("worker:")
    parent = run.role("parent")
    first_worker = min((p.first for p in workers), default=0.0)
    last_worker = max((p.last for p in workers), default=run.wall)
    return {
        "wall": run.wall,
        "tree_cpu": run.tree_cpu,
        "other_load": run.other_cpu / run.wall,
        "parent_cpu": parent[0].cpu if parent else None,
        "parent_mb": parent[0].hwm_kb / 1024 if parent else None,
        "xdist_mb": max((p.hwm_kb / 1024 for p in run.role("xdist")), default=None),
        "worker_mb": {f: max((p.hwm_kb / 1024 for p in run.role(f"worker:{f}")), default=None) for f in FRAMEWORKS},
        "worker_cpu": {f: sum(p.cpu for p in run.role(f"worker:{f}")) for f in FRAMEWORKS},
        "workers_started": {f: len(run.role(f"worker:{f}")) for f in FRAMEWORKS},
        "head": first_worker,
        "tail": run.wall - last_worker,
        "lifetimes": {f: sum(p.last - p.first for p in run.role(f"worker:{f}")) for f in FRAMEWORKS},
    }


def _native(doc: dict[str, Any]) -> dict[str, float]:
    """Seconds the workers spent in native calls (exec of the code + conversion to NumPy)."""
    return {f: sum(c["results"][f].get("seconds") or 0.0 for c in doc["cases"] if f in c["results"]) for f in FRAMEWORKS}


def _all_ok(doc: dict[str, Any], log: Path) -> None:
    """Every result must be ok, or the run did not do what the bare scripts did (e.g. a worker crashed)."""
    bad = [(c["id"], key, r) for c in doc["cases"] for key, r in c["results"].items() if r["status"] != "ok"]
    if bad:
        case, key, result = bad[0]
        raise RuntimeError(
            f"{len(bad)} results not ok; first: {case} {key} {result['status']}: {(result.get('message') or '')[:300]} (log {log})"
        )


def _check(run: Measured, log: Path) -> None:
    if run.code != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        raise RuntimeError(f"exit code {run.code}; see {log}:\n{tail}")


def verify(folder: Path, ids: list[str], doc: dict[str, Any]) -> dict[str, float]:
    """Largest |bare - suite| over every loss and gradient value, per framework (0: the same calls)."""
    if [c["id"] for c in doc["cases"]] != ids:
        raise RuntimeError("the suite's results are not in the order the cases were loaded")
    out = {}
    for framework in FRAMEWORKS:
        results = [c["results"][framework] for c in doc["cases"]]
        loss = np.concatenate([np.ravel(np.asarray(r["loss"], dtype=np.float64)) for r in results])
        grad = np.stack([np.asarray(r["grad"], dtype=np.float64) for r in results])
        with np.load(folder / f"bare-{framework}.npz") as bare:
            if loss.shape != bare["loss"].shape or grad.shape != bare["grad"].shape:
                raise RuntimeError(f"{framework}: bare and suite results differ in shape")
            out[framework] = float(max(np.max(np.abs(loss - bare["loss"])), np.max(np.abs(grad - bare["grad"]))))
    return out


# ---------------------------------------------------------------- driver


def measure_size(count: int, repeat: int, root: Path, settings: Settings, pytest: bool) -> dict[str, Any]:
    """`repeat` complete runs at one size; a run whose command fails is reported and left out (the
    package may be mid-edit), so one failure does not lose the others."""
    folder = root / f"n{count}"
    cases_dir, ids = write_cases(count, folder)
    runs: list[dict[str, Any]] = []
    for index in range(repeat):
        started = time.perf_counter()
        try:
            one = measure_run(folder, cases_dir, ids if not runs else None, settings, pytest)
        except RuntimeError as exc:
            print(f"  n={count} run {index + 1}/{repeat} failed, left out: {exc}", flush=True)
            continue
        runs.append(one)
        print(
            f"  n={count} run {index + 1}/{repeat}: "
            + ", ".join(f"{name} {one[name]['wall']:.1f} s" for name in (*RUNS, "suite_ray") if name in one)
            + f" ({time.perf_counter() - started:.0f} s)",
            flush=True,
        )
    return {"cases": count, "runs": runs}


def measure_run(folder: Path, cases_dir: Path, ids: list[str] | None, settings: Settings, pytest: bool) -> dict[str, Any]:
    """bare, suite, then the two pytest runs; with `ids`, also checks the bare values against the suite's."""
    bare = run_bare(folder, settings)
    suite, doc = run_suite(folder, cases_dir, settings)
    one: dict[str, Any] = {"bare": bare, "suite": suite}
    if settings.ray_address is not None:
        one["suite_ray"] = run_suite_ray(folder, cases_dir, settings, doc)
    if ids is not None:
        one["max_abs_difference"] = verify(folder, ids, doc)
    del doc
    if pytest:
        one["pytest_n0"] = run_pytest(folder, cases_dir, "0", settings)
        one["pytest_nauto"] = run_pytest(folder, cases_dir, "auto", settings)
    return one


def warm_up(env: dict[str, str]) -> None:
    """Import each framework once, untimed, so the first measured run does not pay a cold disk cache."""
    for framework in FRAMEWORKS:
        subprocess.run([sys.executable, "-c", f"import {framework}"], check=True, capture_output=True, env=env)


def bare_environment(kind: str) -> dict[str, str]:
    """`worker`: the thread settings the suite's workers run with (so the ratio measures the harness, not
    threading: torch is several times slower on these tiny tensors with its default threads);
    `inherit`: this shell's environment, as a hand-written script would run."""
    if kind == "inherit":
        return dict(os.environ)
    from conformance.runner import WORKER_ENV

    return {**os.environ, **WORKER_ENV}


def median(runs: list[dict[str, Any]], *path: str) -> Any:
    values = []
    for run in runs:
        value: Any = run
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if value is not None:
            values.append(value)
    return statistics.median(values) if values else None


# ---------------------------------------------------------------- tables


def _f(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _per_fw(runs: list[dict[str, Any]], *path: str, digits: int = 1) -> str:
    return " / ".join(_f(median(runs, *path, f), digits) for f in FRAMEWORKS)


def _bare(runs: list[dict[str, Any]], key: str, digits: int = 2) -> str:
    return " / ".join(_f(statistics.median(r["bare"]["frameworks"][f][key] for r in runs), digits) for f in FRAMEWORKS)


def _sum_median(runs: list[dict[str, Any]], run: str, key: str) -> float | None:
    if run not in runs[0]:
        return None
    return statistics.median(sum(r[run][key].values()) for r in runs)


def main_table(sizes: list[dict[str, Any]]) -> str:
    lines = [
        "| cases | bare s | suite s | suite/bare | pytest -n0 s | pytest -n auto s | harness overhead s (% of native; ms/case) "
        "| worker start-up s (torch / paddle / tf / jax) | peak MB per worker (torch / paddle / tf / jax) "
        "| parent peak MB | report MB (html; json) |",
        "|" + "---:|" * 11,
    ]
    for size in sizes:
        runs, n = size["runs"], size["cases"]
        bare, suite = median(runs, "bare", "wall"), median(runs, "suite", "wall")
        overhead, native = median(runs, "suite", "overhead"), _sum_median(runs, "suite", "native")
        lines.append(
            f"| {n:,} | {_f(bare)} | {_f(suite)} | {suite / bare:.2f} | {_f(median(runs, 'pytest_n0', 'wall'))} "
            f"| {_f(median(runs, 'pytest_nauto', 'wall'))} | {_f(overhead)} ({overhead / native * 100:.0f}%; {overhead / n * 1000:.1f}) "
            f"| {_per_fw(runs, 'suite', 'startup')} | {_per_fw(runs, 'suite', 'worker_mb', digits=0)} "
            f"| {_f(median(runs, 'suite', 'parent_mb'), 0)} "
            f"| {_f(median(runs, 'suite', 'html_mb'))}; {_f(median(runs, 'suite', 'json_mb'))} |"
        )
    return "\n".join(lines)


def time_table(sizes: list[dict[str, Any]]) -> str:
    lines = [
        "| cases | native s, suite (torch / paddle / tf / jax) | native s, bare | bare import s | bare wall s per framework "
        "| suite head s | suite tail s | parent CPU s | worker non-native ms/case | CPU s (bare / suite / -n0 / -n auto) "
        "| other load, cores (bare / suite / -n0 / -n auto) |",
        "|" + "---:|" * 11,
    ]
    for size in sizes:
        runs, n = size["runs"], size["cases"]
        other = " / ".join(_f(median(runs, "suite", "worker_other", f) / n * 1000, 2) for f in FRAMEWORKS)
        load = " / ".join(_f(median(runs, name, "other_load"), 2) for name in RUNS)
        cpu = " / ".join(_f(median(runs, name, "tree_cpu")) for name in RUNS)
        lines.append(
            f"| {n:,} | {_per_fw(runs, 'suite', 'native', digits=2)} | {_bare(runs, 'native')} | {_bare(runs, 'import')} "
            f"| {_bare(runs, 'wall')} | {_f(median(runs, 'suite', 'head'))} | {_f(median(runs, 'suite', 'tail'))} "
            f"| {_f(median(runs, 'suite', 'parent_cpu'))} | {other} | {cpu} | {load} |"
        )
    return "\n".join(lines)


def process_table(sizes: list[dict[str, Any]]) -> str:
    lines = [
        "| cases | run | wall s | parent CPU s | parent MB | xdist worker MB | worker MB (torch / paddle / tf / jax) "
        "| worker CPU s (torch / paddle / tf / jax) | workers started (torch / paddle / tf / jax) |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for size in sizes:
        runs = size["runs"]
        for name in ("suite", "pytest_n0", "pytest_nauto"):
            if name not in runs[0]:
                continue
            lines.append(
                f"| {size['cases']:,} | {name} | {_f(median(runs, name, 'wall'))} | {_f(median(runs, name, 'parent_cpu'))} "
                f"| {_f(median(runs, name, 'parent_mb'), 0)} | {_f(median(runs, name, 'xdist_mb'), 0)} "
                f"| {_per_fw(runs, name, 'worker_mb', digits=0)} | {_per_fw(runs, name, 'worker_cpu')} "
                f"| {_per_fw(runs, name, 'workers_started', digits=0)} |"
            )
        bare = " / ".join(_f(statistics.median(r["bare"]["frameworks"][f]["peak_mb"] for r in runs), 0) for f in FRAMEWORKS)
        lines.append(f"| {size['cases']:,} | bare | {_f(median(runs, 'bare', 'wall'))} | – | – | – | {bare} | – | 1 / 1 / 1 |")
    return "\n".join(lines)


def checks(sizes: list[dict[str, Any]]) -> str:
    rows = []
    for size in sizes:
        diff = next((r["max_abs_difference"] for r in size["runs"] if "max_abs_difference" in r), None)
        if diff:
            rows.append(f"{size['cases']:,} cases: " + ", ".join(f"{f} {diff[f]:.3g}" for f in FRAMEWORKS))
    return "bare vs suite, largest |difference| of any loss or gradient value: " + "; ".join(rows)


def machine() -> str:
    """CPU count, model and memory, for the record."""
    model = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")), "?"
    )
    total = next((int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")), 0)
    return f"{os.cpu_count()} CPUs ({model}), {total / MB:.1f} GiB RAM, Python {sys.version.split()[0]}"


def source_state() -> str:
    """Where the measured package comes from: the commit of this checkout and whether the package had
    uncommitted changes, or the folder it is imported from (e.g. a snapshot on PYTHONPATH)."""
    import conformance

    where = Path(conformance.__file__).resolve().parents[1]
    if where != REPO:
        return f"source: conformance imported from {where}"
    try:
        head = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "conformance"], capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "source: not a git checkout"
    return f"source: {head}" + (" + uncommitted changes under conformance/" if dirty else "")


def report(bench: dict[str, Any]) -> str:
    sizes = bench["sizes"]
    versions = next((r["suite"].get("versions") for s in sizes for r in s["runs"]), {}) or {}
    return "\n\n".join(
        [
            f"machine: {bench['machine']}; {bench['source']}; bare environment: {bench['bare_env']}",
            "versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()),
            "medians over the repeats; bare = the four bare processes one after another.",
            main_table(sizes),
            OVERHEAD_DEFINITION,
            *(
                [
                    "engines (the suite on a local Ray cluster, `--ray-nodes`; machine CPU = every process on the machine):",
                    engine_table(sizes),
                ]
                if any("suite_ray" in s["runs"][0] for s in sizes if s["runs"])
                else []
            ),
            "time (head = suite start to its first worker process; tail = last worker exit to the end: report "
            "writing and exit; worker non-native = worker lifetime - start-up - native seconds, per case; CPU = "
            "user + system seconds of the whole process tree, less sensitive than wall time to other load; other "
            "load = CPU used by programs outside the measured tree, in cores, during the run):",
            time_table(sizes),
            "processes (VmHWM peaks and CPU seconds from /proc):",
            process_table(sizes),
            checks(sizes),
        ]
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10,100,1000", help="case counts (default 10,100,1000; add 10000 for the large run)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per size (default 3)")
    parser.add_argument("--repeat-large", type=int, default=1, help="runs for sizes above 1,000 (default 1)")
    parser.add_argument("--out", type=Path, default=None, help="working folder, kept (default: a temporary folder, removed)")
    parser.add_argument("--no-pytest", action="store_true", help="skip the two pytest runs")
    parser.add_argument(
        "--bare-env",
        choices=("worker", "inherit"),
        default="worker",
        help="bare scripts' environment: the workers' thread settings (default) or this shell's",
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=5.0,
        help="before each measurement, wait up to this many seconds for other programs to go quiet (default 5)",
    )
    parser.add_argument("--interval", type=float, default=0.1, help="/proc polling interval in seconds (default 0.1)")
    parser.add_argument("--from-json", type=Path, default=None, help="only print the tables of a saved bench.json")
    parser.add_argument(
        "--ray-nodes",
        type=int,
        default=0,
        help="also run the suite with --engine ray on a local Ray cluster of this many nodes, started here (needs ray; default 0: not)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.from_json:
        print(report(json.loads(args.from_json.read_text(encoding="utf-8"))))
        return 0
    cluster = start_ray_cluster(args.ray_nodes) if args.ray_nodes else None
    settings = Settings(args.interval, bare_environment(args.bare_env), args.settle, cluster.address if cluster else None)
    root = args.out or Path(tempfile.mkdtemp(prefix="conformance-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    bench: dict[str, Any] = {"machine": machine(), "source": source_state(), "bare_env": args.bare_env, "sizes": []}
    print(f"machine: {bench['machine']}; {bench['source']}; working in {root}", flush=True)
    warm_up(settings.bare_env)
    started = time.perf_counter()
    try:
        for count in (int(s) for s in args.sizes.split(",") if s.strip()):
            repeat = args.repeat if count <= 1000 else args.repeat_large
            size = measure_size(count, repeat, root, settings, not args.no_pytest)
            if size["runs"]:
                bench["sizes"].append(size)
            (root / "bench.json").write_text(json.dumps(bench, indent=1), encoding="utf-8")
    finally:
        print(f"\n{report(bench) if bench['sizes'] else 'no size completed'}\n\ntotal {time.perf_counter() - started:.0f} s")
        if args.out is None:
            shutil.rmtree(root, ignore_errors=True)
        if cluster is not None:
            cluster.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
