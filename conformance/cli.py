"""`conformance` command line: run case files, write results.json and the HTML report.

Exit codes: 0 every expectation holds, 1 an expectation is violated, 2 bad case file or bad usage.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import math
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, NoReturn

from rich.console import Console

from conformance import adapters, baseline, cases, console, engines, importers, registry, results, runner, spool, user
from conformance.errors import CaseError, ConformanceError, UsageError
from conformance.pipeline import Outputs, Pipeline
from conformance.records import BaselineReport

EXIT_OK, EXIT_VIOLATED, EXIT_USAGE = 0, 1, 2
DEFAULT_CASES = Path("cases")


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
    run.add_argument(
        "--source",
        default=None,
        metavar="KEY",
        help="the result the report measures every difference against, e.g. torch when porting from torch (default: the reference)",
    )
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
    fuzz.add_argument("--cases", type=Path, default=None, help="case files whose divergences count as covered (default: cases/, if any)")
    fuzz.add_argument("--ignore-cases", action="store_true", help="count nothing as covered (find everything anew)")
    fuzz.add_argument(
        "--seeds",
        default=None,
        metavar="FIRST-LAST",
        help="one fuzzer per seed, e.g. 0-7 (with --engine ray, all at once over the cluster)",
    )
    _variant_option(fuzz)
    _engine_options(fuzz, actors=False)  # a fuzzer per seed runs its own workers next to it
    schema = sub.add_parser("schema", help="write the JSON schema of case files")
    schema.add_argument("--out", type=Path, default=Path("cases/schema.json"))
    schema.add_argument(
        "--markdown", type=Path, default=None, metavar="FILE", help="also write the case-key reference in Markdown (docs/case-keys.md)"
    )
    imports = sub.add_parser("import", help="turn another tool's recorded calls into case files")
    import_sub = imports.add_subparsers(dest="source", required=True, parser_class=_Parser)
    for source in importers.SOURCES:
        module = importers.importer(source)
        peer = import_sub.add_parser(source, help=module.HELP)
        peer.add_argument("files", nargs="+", type=Path, metavar="FILE", help=module.FILES_HELP)
        peer.add_argument(
            "--out",
            type=Path,
            default=module.DEFAULT_OUT,
            help=f"the case file (default {module.DEFAULT_OUT}); configurations with an array above 2^24 elements go to NAME-large.yaml",
        )
    return top


def _selection_options(command: argparse.ArgumentParser) -> None:
    command.add_argument("paths", nargs="*", type=Path, default=[DEFAULT_CASES], help="case files or folders (default: cases/)")
    command.add_argument("--frameworks", default=None, help="comma-separated (default: every registered framework)")
    command.add_argument("--only", default=None, help="run exactly these result keys, e.g. torch,paddle,tensorflow")
    command.add_argument(
        "--timeout",
        type=_seconds,
        default=120.0,
        help="seconds of CPU time one case may take in a worker, plus 1 s per 100,000 prediction elements (default 120; "
        "a case's own timeout: key replaces both); a case making no progress is stopped after several times that in wall time",
    )
    _variant_option(command)
    _engine_options(command)
    command.add_argument(
        "--max-elements",
        type=int,
        default=cases.MAX_ELEMENTS,
        help=f"numbers any one array of a case may hold (default {cases.MAX_ELEMENTS:,}); a larger case is a usage error",
    )


def _seconds(text: str) -> float:
    """A finite number of seconds above 0: an endless budget would let a hung case hold the run for ever."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"expected a finite number of seconds above 0, got {text!r}")
    return value


def _engine_options(command: argparse.ArgumentParser, actors: bool = True) -> None:
    command.add_argument(
        "--engine",
        choices=engines.NAMES,
        default="local",
        help="where the framework workers run: processes on this machine (local, default) or Ray actors over a cluster (ray)",
    )
    command.add_argument(
        "--ray-address", default=None, metavar="ADDRESS", help="the Ray cluster (default: RAY_ADDRESS, else a local Ray instance)"
    )
    if actors:
        command.add_argument(
            "--ray-actors", type=int, default=None, metavar="N", help="actors per framework on Ray (default: the cluster's CPUs shared out)"
        )


def engine_choice(engine: str, address: str | None, flag: str = "--ray-address", actors: int | None = None) -> engines.Choice:
    """The engine asked for; a Ray setting given for the local engine is a usage error (it would be ignored)."""
    if address and engine != "ray":
        raise UsageError(f"{flag} {address}: only the Ray engine uses a cluster address (add --engine ray)")
    if actors is not None and (engine != "ray" or actors < 1):
        raise UsageError(f"--ray-actors {actors}: a number of actors per framework (>= 1) for --engine ray")
    return engines.Choice(engine, address or None, actors)


def _variant_option(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--variant",
        action="append",
        default=None,
        metavar="KEY=MODULE:FUNCTION",
        help="run your own loss function as the result key KEY (FRAMEWORK:NAME), in that framework's worker (repeatable)",
    )
    command.add_argument(
        "--variants",
        action="append",
        type=Path,
        default=None,
        metavar="FILE",
        help="a YAML file of your own loss functions or classes as variants (variants: {KEY: {call: MODULE:OBJECT, ...}}); "
        "[tool.conformance.variants] of ./pyproject.toml is read too",
    )


def main(argv: list[str] | None = None) -> int:
    err = Console(stderr=True)
    try:
        args = parser().parse_args(argv)
        if args.command == "schema":
            return _schema(args.out, args.markdown)
        if args.command == "import":
            return _import(args.source, args.files, args.out)
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


def _schema(out: Path, markdown: Path | None) -> int:
    import json

    from conformance import casekeys

    document = cases.schema()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}")
    if markdown is not None:
        markdown.parent.mkdir(parents=True, exist_ok=True)
        markdown.write_text(casekeys.markdown(document, registry.losses()), encoding="utf-8")
        print(f"wrote {markdown}")
    return EXIT_OK


def _import(source: str, files: list[Path], out: Path) -> int:
    """Reads the source's recorded calls, writes the case files, prints what it could not express (exit 0)."""
    module = importers.importer(source)
    imported = module.read(files)
    written = module.write(imported, out)
    for line in module.summary(imported):
        print(line)
    for path in written:
        print(f"wrote {path}")
    return EXIT_OK


def selection(frameworks: str | None, only: str | None) -> dict[str, set[str] | None]:
    """Which keys to run. --only names result keys (their frameworks follow); --frameworks, if also
    given, must contain them. Unknown names are usage errors, never silently ignored."""
    known = user.known_keys()
    chosen = [f.strip() for f in (frameworks or ",".join(registry.frameworks())).split(",") if f.strip()]
    if not chosen:
        raise UsageError("--frameworks: name at least one framework")
    for name in chosen:
        if name not in registry.frameworks():
            raise UsageError(f"--frameworks: unknown framework '{name}'{_suggest(name, registry.frameworks())}")
    for spec in user.active():
        if frameworks is not None and spec.framework not in chosen:
            raise UsageError(f"{spec.text()}: --frameworks {frameworks} does not run {spec.framework}")
        if frameworks is not None and spec.against is not None and adapters.framework_of(spec.against) not in chosen:
            raise UsageError(f"{spec.text()}: against: {spec.against}, but --frameworks {frameworks} does not run it")
    if not only:
        return runner.plan(chosen, None)
    keys = [k.strip() for k in only.split(",") if k.strip()]
    for key in keys:
        if key not in known:
            raise UsageError(f"--only: unknown result key '{key}'{_suggest(key, known)}")
        if frameworks is not None and adapters.framework_of(key) not in chosen:
            raise UsageError(f"--only names '{key}' but --frameworks {frameworks} does not run {adapters.framework_of(key)}")
    keys += [k for k in sorted(user.keys()) if k not in keys]  # the user's functions run whatever --only says
    keys += [k for k in sorted(set(user.against().values())) if k not in keys]  # and what they port (`against`)
    return runner.plan(sorted({adapters.framework_of(k) for k in keys}), keys)


def _source(key: str | None, keys: dict[str, set[str] | None]) -> str | None:
    """--source: a result key this run computes (the report starts from it; None: the reference)."""
    if key is None:
        return None
    running = {k for f, chosen in keys.items() for k in (chosen or {v.key for v in adapters.variants(f)})} | user.keys()
    if key not in running:
        raise UsageError(f"--source: '{key}' is not a result key this run computes{_suggest(key, running)}")
    return key


def check_keys(loaded: list[cases.Case]) -> None:
    """Expectations may only name result keys that exist (a typo would silently check nothing)."""
    known = user.known_keys()
    for case in loaded:
        check_case_keys(case, known)


def check_case_keys(case: cases.Case, known: set[str] | None = None) -> None:
    """`check_keys` for one case, as the cases are read (`known`: the result keys, when the caller has them)."""
    if case.expect is None:
        return
    known = user.known_keys() if known is None else known
    statuses = [k for k in case.expect.status or {} if k != cases.ANY_RESULT]  # '*': every result not named
    named = [k for g in case.expect.groups or [] for k in g] + statuses + list(case.expect.values or {})
    for key in named:
        if key not in known:
            raise CaseError(
                case.file, f"case '{case.id}': expect names unknown result key '{key}'{_suggest(key, known)}", case.line, "expect"
            )


def _suggest(name: str, known: Any) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=1)
    return f"; did you mean '{close[0]}'?" if close else f"; known: {', '.join(sorted(known))}"


def evaluate(args: argparse.Namespace, out: Console, outputs: Outputs, baseline_path: Path | None = None) -> tuple[dict[str, Any], int]:
    """Start the workers, load the cases while they import their frameworks, run the cases into
    `outputs` and write them; the document's head and the exit code (130 if interrupted: what was done
    is written). The user's functions (`--variant`) are checked, while the workers import, before any
    case runs."""
    specs = user.specs(args.variant, args.variants)
    with user.activated(specs):
        return _evaluate(args, out, outputs, baseline_path, specs)


def _evaluate(
    args: argparse.Namespace, out: Console, outputs: Outputs, baseline_path: Path | None, specs: tuple[user.Spec, ...]
) -> tuple[dict[str, Any], int]:
    keys = selection(args.frameworks, args.only)
    source = _source(getattr(args, "source", None), keys)
    cases.MAX_ELEMENTS = args.max_elements
    engine = engine_choice(args.engine, args.ray_address, actors=args.ray_actors)
    with Pipeline(keys, args.timeout, most=os.cpu_count() or 1, baseline_path=baseline_path, engine=engine) as pipeline:
        user.check(specs)
        # every case is validated before any runs (a bad one: exit 2, nothing ran), and kept on disk until
        # its turn: memory stays flat in the number and size of the case files
        known = user.known_keys()
        with spool.Spool(cases.read(args.paths), lambda case: check_case_keys(case, known)) as loaded:
            if not len(loaded):
                raise UsageError(f"no case files (*.yaml) under {', '.join(map(str, args.paths))}")
            extra: dict[str, Any] = {}
            with contextlib.closing(pipeline.records(loaded)) as stream:  # ends the run's threads before the spool goes
                try:
                    for _, record in console.progress(stream, len(loaded), out):
                        outputs.add(record)
                except KeyboardInterrupt:
                    extra["interrupted"] = True
    head = outputs.finish(pipeline.head({**extra, "run": results.run_details(args.paths), "source": source}))
    if extra:
        return head, 130
    failed = head["summary"]["expectations"]["violated"] or (head.get("baseline") and baseline.has_changes(head["baseline"]))
    return head, EXIT_VIOLATED if failed else EXIT_OK


def _run(args: argparse.Namespace) -> int:
    out = Console()
    outputs = Outputs(args.json, args.html)
    head, code = evaluate(args, out, outputs, args.baseline)
    console.print_summary({**head, "cases": outputs.violated}, out, [str(args.json), str(args.html)])
    return code


def _fuzz(args: argparse.Namespace) -> int:
    from conformance import fuzz

    known: set[tuple[str, str, str]] = set()
    if args.ignore_cases:
        pass
    elif args.cases is not None:
        known = fuzz.covered(cases.read([args.cases]))  # named and missing: an error
    elif DEFAULT_CASES.is_dir():
        known = fuzz.covered(cases.read([DEFAULT_CASES]))
    else:
        print(f"no {DEFAULT_CASES}/ folder here: fuzzing with no divergence counted as covered (--cases names case files)")
    specs = user.specs(args.variant, args.variants)
    engine = engine_choice(args.engine, args.ray_address)
    with user.activated(specs):
        user.check(specs)
        outcomes = fuzz.campaign(engine, args.budget, _seeds(args.seeds) if args.seeds else [args.seed], args.out, known)
    for outcome in outcomes:
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


def _seeds(text: str) -> list[int]:
    first, dash, last = text.partition("-")
    try:
        seeds = list(range(int(first), int(last if dash else first) + 1))
    except ValueError:
        seeds = []
    if not seeds:
        raise UsageError(f"--seeds {text}: expected FIRST-LAST with FIRST <= LAST, e.g. 0-7 (or one seed, e.g. 3)")
    return seeds


def _baseline_table(paths: list[Path]) -> int:
    reports = []
    for path in paths:
        doc = results.read(path) if path.is_file() else None
        if doc is None or "baseline" not in doc:
            raise UsageError(f"{path}: not a results.json of a run with --baseline")
        reports.append((path.stem, BaselineReport.from_json(doc["baseline"])))
    print(baseline.table(reports))
    return EXIT_OK


def _save_baseline(args: argparse.Namespace) -> int:
    out = Console()
    path = args.out
    scratch = Path(tempfile.mkdtemp()) / "baseline.json" if path is None else path
    outputs = Outputs(None, None, baseline_out=scratch)
    head, code = evaluate(args, out, outputs)
    if code == 130:
        return code
    if path is None:
        path = baseline.default_path(head["versions"])
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(scratch, path)
    out.print(
        f"saved {outputs.saver.values} values of {outputs.count} cases "  # type: ignore[union-attr]
        f"({', '.join(f'{k} {v}' for k, v in head['versions'].items())}) to {path}",
        highlight=False,
    )
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
