"""Where the suite's CPU goes, component by component, against the bare scripts' CPU on the same cases.

    python bench/components.py [--cases 1000] [--out DIR]

bench.py times whole commands; this says what the difference is made of. It writes the same generated
cases as bench.py, then:

- bare: each `bench/bare.py FRAMEWORK` in turn, its CPU seconds (user + system, from the kernel).
- parent: `conformance run` in this process (the frameworks' workers are real processes, as always),
  every stage wrapped to add up the CPU time of the thread that runs it (`time.thread_time`): case
  loading, comparison, the recipe requests (recipe code, smallest changes and the model evaluations
  they need), explanations, snippets, results.json and the baseline, the HTML report and summary.md;
  "rest" is the parent's whole CPU (`getrusage`) less those: imports, the threads that feed the
  workers and read their answers (pickling), thread switches. Every message sent to a worker is kept.
- workers: each framework's messages replayed in a fresh process, one thread, nothing else running in
  it: start-up (the import and `SETUP`), then per message its CPU (`time.process_time`), split into the
  documented formula (`reference.evaluate` as the worker calls it), the native call of each result
  with its conversion to NumPy (the rest of a case message) and the recipes (recipe messages), plus
  the pickling a message and its answer cost, measured on the same bytes.

The replay runs the same code on the same cases as the run did, one framework at a time, so its
numbers carry no contention from the other processes of a run: they are the work, not the wait.
"""

from __future__ import annotations

import argparse
import collections
import json
import pickle
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import bench  # noqa: E402  (the case generator and the bare scripts are bench.py's)

PARENT_STAGES = (
    ("cases", "load_paths", "case loading"),
    ("pipeline", "compare", "comparison"),
    ("explain", "requests", "recipe requests (code, smallest changes, model)"),
    ("explain", "explain", "explanations"),
    ("runner", "with_code", "snippets"),
    ("pipeline.Outputs", "add", "results.json and baseline"),
    ("pipeline.Outputs", "finish", "HTML report and summary.md"),
)


def _timed(owner: Any, name: str, label: str, spent: dict[str, float]) -> None:
    """Replace `owner.name` by a wrapper adding its thread's CPU seconds to `spent[label]`."""
    inner = getattr(owner, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.thread_time()
        try:
            return inner(*args, **kwargs)
        finally:
            spent[label] += time.thread_time() - started

    setattr(owner, name, wrapper)


def profile_parent(cases_dir: Path, out: Path) -> dict[str, Any]:
    """`conformance run` in this process with its stages timed; the messages each worker got, pickled
    to `out/messages-FRAMEWORK.pkl`."""
    import importlib

    from conformance import cli, runner

    spent: dict[str, float] = collections.defaultdict(float)
    for module_path, name, label in PARENT_STAGES:
        module_name, _, attribute = module_path.partition(".")
        owner = importlib.import_module(f"conformance.{module_name}")
        _timed(getattr(owner, attribute) if attribute else owner, name, label, spent)
    files: dict[str, Any] = {}
    send = runner._Worker.send

    def recording(self: Any, message: object) -> None:
        if message is not None:
            framework = self.process.args[-1]
            if framework not in files:
                files[framework] = (out / f"messages-{framework}.pkl").open("wb")
            pickle.dump(message, files[framework], protocol=pickle.HIGHEST_PROTOCOL)
        send(self, message)

    runner._Worker.send = recording  # type: ignore[method-assign]
    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    code = cli.main(["run", str(cases_dir), "--only", bench.KEYS, "--json", str(out / "results.json"), "--html", str(out / "index.html")])
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    runner._Worker.send = send  # type: ignore[method-assign]
    for handle in files.values():
        handle.close()
    if code != 0:
        raise SystemExit(f"conformance run exited {code}")
    total = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    stages = dict(spent)
    stages["rest (imports, worker I/O threads, pickling)"] = total - sum(spent.values())
    return {"wall": wall, "cpu": total, "stages": stages}


def replay(framework: str, messages: Path) -> dict[str, Any]:
    """One framework's messages through a fresh `Worker`, CPU per component (this process alone)."""
    from conformance import worker

    started = time.process_time()
    answering = worker.Worker(framework)
    startup = time.process_time() - started
    documented = [0.0]
    evaluate = worker.evaluate

    def timed_evaluate(*args: Any) -> Any:
        begun = time.process_time()
        try:
            return evaluate(*args)
        finally:
            documented[0] += time.process_time() - begun

    worker.evaluate = timed_evaluate  # type: ignore[assignment]
    spent: dict[str, float] = collections.defaultdict(float)
    counts: dict[str, int] = collections.Counter()
    recipe_runs = 0
    pickling = 0.0
    with messages.open("rb") as handle:
        while True:
            begun = time.process_time()
            try:
                message = pickle.load(handle)
            except EOFError:
                break
            pickling += time.process_time() - begun
            documented_before = documented[0]
            begun = time.process_time()
            answer = answering.answer(message)
            took = time.process_time() - begun
            begun = time.process_time()
            pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL)
            pickling += time.process_time() - begun
            kind = message[0]
            counts[kind] += 1
            recipe_runs += len(message[3]) if kind == "recipes" else 0
            spent[kind] += took - (documented[0] - documented_before)
    return {
        "startup": startup,
        "native": spent["case"],
        "documented": documented[0],
        "recipes": spent["recipes"],
        "pickling": pickling,
        "messages": dict(counts),
        "recipe_runs": recipe_runs,
    }


def bare_cpu(folder: Path) -> dict[str, float]:
    """Each bare script's CPU seconds (its process alone), run one after another."""
    out = {}
    for framework in bench.FRAMEWORKS:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        command = [sys.executable, str(bench.BARE), framework, str(folder / "bare-input.npz"), str(folder / f"bare-{framework}.npz")]
        subprocess.run(command, check=True, capture_output=True, env=bench.bare_environment("worker"))
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        out[framework] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return out


def table(count: int, bare: dict[str, float], parent: dict[str, Any], workers: dict[str, dict[str, Any]]) -> str:
    """The components as a Markdown table: CPU seconds and milliseconds per case."""
    rows: list[tuple[str, float]] = [(f"bare scripts, {fw}", seconds) for fw, seconds in bare.items()]
    bare_total = sum(bare.values())
    rows.append(("**bare, total**", bare_total))
    suite: list[tuple[str, float]] = []
    for fw, w in workers.items():
        suite += [
            (f"{fw} worker: start-up (import, SETUP)", w["startup"]),
            (f"{fw} worker: native calls and conversion", w["native"]),
            (f"{fw} worker: documented formula", w["documented"]),
            (f"{fw} worker: recipes ({w['recipe_runs']} runs)", w["recipes"]),
            (f"{fw} worker: pickling messages and answers", w["pickling"]),
        ]
    suite += [(f"parent: {label}", seconds) for label, seconds in parent["stages"].items()]
    suite_total = sum(seconds for _, seconds in suite)
    lines = ["| component | CPU s | ms per case |", "|---|---:|---:|"]
    for label, seconds in rows + suite + [("**suite, total**", suite_total)]:
        lines.append(f"| {label} | {seconds:.2f} | {1000 * seconds / count:.2f} |")
    budget = 2 * 0.8 * bare_total
    lines.append("")
    lines.append(
        f"suite/bare CPU {suite_total / bare_total:.2f}; on 2 cores the suite's wall time is at least its CPU / 2 = "
        f"{suite_total / 2:.1f} s, and the target 0.8 x bare ({0.8 * bare_total:.1f} s, bare wall = bare CPU: one process at "
        f"a time) leaves it {budget:.1f} s of CPU: {suite_total - budget:+.1f} s to go."
    )
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=None, help="working folder, kept (default: a temporary one)")
    parser.add_argument("--replay", nargs=2, metavar=("FRAMEWORK", "MESSAGES"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.replay:
        print(json.dumps(replay(args.replay[0], Path(args.replay[1]))))
        return 0
    folder = args.out or Path(tempfile.mkdtemp(prefix="conformance-profile-"))
    folder.mkdir(parents=True, exist_ok=True)
    cases_dir, _ = bench.write_cases(args.cases, folder)
    bare = bare_cpu(folder)
    parent = profile_parent(cases_dir, folder)
    workers = {}
    for framework in bench.FRAMEWORKS:
        command = [sys.executable, __file__, "--replay", framework, str(folder / f"messages-{framework}.pkl")]
        done = subprocess.run(command, check=True, capture_output=True, text=True, env=bench.bare_environment("worker"))
        workers[framework] = json.loads(done.stdout.strip().splitlines()[-1])
    result = {"cases": args.cases, "bare": bare, "parent": parent, "workers": workers}
    (folder / "profile.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    print(f"{args.cases:,} cases, suite wall {parent['wall']:.1f} s (this run, profiled); folder {folder}\n")
    print(table(args.cases, bare, parent, workers))
    return 0


if __name__ == "__main__":
    sys.exit(main())
