"""`conformance` command line: run case files, write results.json and the HTML report.

Exit codes: 0 every expectation holds, 1 an expectation is violated, 2 bad case file or bad usage.
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

from rich.console import Console

from conformance import adapters, baseline, cases, console, explain, html, registry, results, runner, summary
from conformance.errors import CaseError, ConformanceError, UsageError

EXIT_OK, EXIT_VIOLATED, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # argparse would exit 2 itself; we keep one message path
        raise UsageError(f"{self.prog}: {message}")


def parser() -> argparse.ArgumentParser:
    top = _Parser(prog="conformance", description="Cross-framework conformance suite for classification losses.")
    sub = top.add_subparsers(dest="command", required=True, parser_class=_Parser)
    run = sub.add_parser("run", help="run case files and write results.json and the HTML report")
    _selection_options(run)
    run.add_argument("--json", type=Path, default=Path("reports/results.json"), help="default: reports/results.json")
    run.add_argument("--html", type=Path, default=Path("reports/index.html"), help="default: reports/index.html")
    run.add_argument("--baseline", type=Path, default=None, help="report every value that moved since this baseline (exit 1 if any)")
    base = sub.add_parser("baseline", help="save the values of a run as a baseline to commit")
    base_sub = base.add_subparsers(dest="action", required=True, parser_class=_Parser)
    save = base_sub.add_parser("save", help="run the cases and save every loss and gradient with the versions")
    _selection_options(save)
    save.add_argument("--out", type=Path, default=None, help=f"default: {baseline.FOLDER}/<versions>.json")
    steps = base_sub.add_parser("table", help="print the Markdown table of replayed baselines (results.json files of runs with --baseline)")
    steps.add_argument("results", nargs="+", type=Path)
    fuzz = sub.add_parser("fuzz", help="find divergences no case file covers yet, minimised, as YAML cases")
    fuzz.add_argument("--budget", type=float, default=60.0, help="seconds to fuzz (default 60)")
    fuzz.add_argument("--seed", type=int, default=0, help="makes a run reproducible (default 0)")
    fuzz.add_argument("--out", type=Path, default=Path("reports/fuzz"), help="where to write the cases (default reports/fuzz)")
    fuzz.add_argument("--cases", type=Path, default=Path("cases"), help="case files whose divergences count as covered")
    fuzz.add_argument("--ignore-cases", action="store_true", help="count nothing as covered (find everything anew)")
    schema = sub.add_parser("schema", help="write the JSON schema of case files")
    schema.add_argument("--out", type=Path, default=Path("cases/schema.json"))
    return top


def _selection_options(command: argparse.ArgumentParser) -> None:
    command.add_argument("paths", nargs="*", type=Path, default=[Path("cases")], help="case files or folders (default: cases/)")
    command.add_argument("--frameworks", default=None, help="comma-separated (default: every registered framework)")
    command.add_argument("--only", default=None, help="run exactly these result keys, e.g. torch,paddle,tensorflow")
    command.add_argument("--timeout", type=float, default=120.0, help="seconds one case may take in a worker (default 120)")


def main(argv: list[str] | None = None) -> int:
    err = Console(stderr=True)
    try:
        args = parser().parse_args(argv)
        if args.command == "schema":
            return _schema(args.out)
        if args.command == "fuzz":
            return _fuzz(args)
        if args.command == "baseline" and args.action == "table":
            return _baseline_table(args.results)
        if args.command == "baseline":
            return _save_baseline(args)
        return _run(args)
    except ConformanceError as exc:
        err.print(f"error: {exc}", highlight=False, soft_wrap=True)
        return EXIT_USAGE


def _schema(out: Path) -> int:
    import json

    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(cases.schema(), indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}")
    return EXIT_OK


def selection(frameworks: str | None, only: str | None) -> dict[str, set[str] | None]:
    """Which keys to run. --only names result keys (their frameworks follow); --frameworks, if also
    given, must contain them. Unknown names are usage errors, never silently ignored."""
    known = adapters.known_keys()
    chosen = [f.strip() for f in (frameworks or ",".join(registry.frameworks())).split(",") if f.strip()]
    if not chosen:
        raise UsageError("--frameworks: name at least one framework")
    for name in chosen:
        if name not in registry.frameworks():
            raise UsageError(f"--frameworks: unknown framework '{name}'{_suggest(name, registry.frameworks())}")
    if not only:
        return runner.plan(chosen, None)
    keys = [k.strip() for k in only.split(",") if k.strip()]
    for key in keys:
        if key not in known:
            raise UsageError(f"--only: unknown result key '{key}'{_suggest(key, known)}")
        if frameworks is not None and adapters.framework_of(key) not in chosen:
            raise UsageError(f"--only names '{key}' but --frameworks {frameworks} does not run {adapters.framework_of(key)}")
    return runner.plan(sorted({adapters.framework_of(k) for k in keys}), keys)


def check_keys(loaded: list[cases.Case]) -> None:
    """Expectations may only name result keys that exist (a typo would silently check nothing)."""
    known = adapters.known_keys()
    for case in loaded:
        if case.expect is None:
            continue
        named = [k for g in case.expect.groups or [] for k in g] + list(case.expect.status or {}) + list(case.expect.values or {})
        for key in named:
            if key not in known:
                raise CaseError(
                    case.file, f"case '{case.id}': expect names unknown result key '{key}'{_suggest(key, known)}", case.line, "expect"
                )


def _suggest(name: str, known: Any) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=1)
    return f"; did you mean '{close[0]}'?" if close else f"; known: {', '.join(sorted(known))}"


def execute(args: argparse.Namespace, out: Console) -> tuple[list[cases.Case], dict[str, Any]]:
    """Start the workers, load the cases while they import their frameworks, run the cases and build
    the results document (partial if interrupted)."""
    keys = selection(args.frameworks, args.only)
    with runner.Workers(keys, args.timeout, most=os.cpu_count() or 1) as workers:
        loaded = cases.load_paths(args.paths)
        if not loaded:
            raise UsageError(f"no case files (*.yaml) under {', '.join(map(str, args.paths))}")
        check_keys(loaded)
        records: list[dict[str, Any]] = []
        interrupted = False
        try:
            for case, found in console.progress(workers.stream(loaded, explain.recipe_requests), len(loaded), out):
                records.append(results.record(case, found))
        except KeyboardInterrupt:
            interrupted = True
    stats = workers.stats
    extra: dict[str, Any] = {"workers": {f: {"startup_seconds": s.startup_seconds, "restarts": s.restarts} for f, s in stats.items()}}
    if interrupted:
        extra["interrupted"] = True
    return loaded, results.document(records, workers.versions(), extra)


def _run(args: argparse.Namespace) -> int:
    out = Console()
    old = baseline.load(args.baseline) if args.baseline else None
    loaded, doc = execute(args, out)
    if old is not None:
        doc["baseline"] = baseline.replay(doc, old, str(args.baseline))
        _attribute_moves(doc["baseline"], loaded, doc)
        baseline.timeline(doc, args.baseline.parent)
    results.write(args.json, doc)
    html.write(args.html, doc)
    summary.write(args.json.parent / "summary.md", doc, args.html)
    console.print_summary(doc, out, [str(args.json), str(args.html)])
    if doc.get("interrupted"):
        return 130
    moved = old is not None and baseline.has_changes(doc["baseline"])
    return EXIT_VIOLATED if doc["summary"]["expectations"]["violated"] or moved else EXIT_OK


def _fuzz(args: argparse.Namespace) -> int:
    from conformance import fuzz

    known = set() if args.ignore_cases else fuzz.covered(cases.load_paths([args.cases]))
    outcome = fuzz.run(args.budget, args.seed, args.out, known)
    print(
        f"fuzz seed {outcome['seed']}: {outcome['evaluations']} cases evaluated in {outcome['seconds']} s "
        f"({outcome['per_second']:.1f} cases/s); {len(known)} divergence kinds covered by the case files, "
        f"{len(outcome['new_signatures'])} new"
    )
    for signature in outcome["new_signatures"]:
        print(f"  new: {signature[1]} vs {signature[0]}: {signature[2]}")
    for path in outcome["written"]:
        print(f"wrote {path}")
    return EXIT_OK


def _baseline_table(paths: list[Path]) -> int:
    reports = []
    for path in paths:
        doc = results.read(path) if path.is_file() else None
        if doc is None or "baseline" not in doc:
            raise UsageError(f"{path}: not a results.json of a run with --baseline")
        reports.append((path.stem, doc["baseline"]))
    print(baseline.table(reports))
    return EXIT_OK


def _attribute_moves(report: dict[str, Any], loaded: list[cases.Case], doc: dict[str, Any]) -> None:
    """Say, for each moved loss, which knob of the result's documented point explains the old value."""
    from conformance.reference import Knobs

    by_name = {c.nodeid: c for c in loaded}
    records = {f"{r['file']}::{r['id']}": r for r in doc["cases"]}
    for move in report["moved"]:
        record, case = records.get(move["case"]), by_name.get(move["case"])
        documented = (record or {}).get("results", {}).get(move["key"], {}).get("documented")
        if move["what"] == "loss" and record is not None and case is not None and documented and "knobs" in documented:
            move["knobs"] = explain.attribute(case, Knobs(**documented["knobs"]), move["old"], record["tolerance"])


def _save_baseline(args: argparse.Namespace) -> int:
    out = Console()
    _, doc = execute(args, out)
    if doc.get("interrupted"):
        return 130
    path = args.out or baseline.default_path(doc["versions"])
    baseline.save(doc, path)
    values = sum(1 for c in doc["cases"] for r in c["results"].values() for k in ("loss", "grad") if r.get(k) is not None)
    out.print(
        f"saved {values} values of {len(doc['cases'])} cases ({', '.join(f'{k} {v}' for k, v in doc['versions'].items())}) to {path}",
        highlight=False,
    )
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
