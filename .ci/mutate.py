"""`tox -e mutate`: mutation testing of the modules that decide verdicts, then the score of each.

mutmut (configured in pyproject.toml, `[tool.mutmut]`) writes every mutant of the files listed there into
mutants/, records which test calls which function, and runs against each mutant only the tests that call
its function. TARGETS chooses which mutants run: whole modules, and of runner.py and explain.py only the
functions that decide a verdict (which case a dead worker blames; which text an explanation gets). A
module whose score is under THRESHOLD fails the run; docs/mutation.md lists the scores and why each
surviving mutant is equivalent. Arguments: other mutmut name patterns, e.g. `tox -e mutate -- 'conformance.digits.*'`.
"""

from __future__ import annotations

import fnmatch
import json
import shutil
import subprocess
import sys
from pathlib import Path

RUNNER = "conformance.runner."
TARGETS = {
    "digits": ["conformance.digits.*"],
    "compact": ["conformance.compact.*"],
    "compare": ["conformance.compare.*"],
    "baseline": ["conformance.baseline.*"],
    "cases": ["conformance.cases.*"],
    "user": ["conformance.user.*"],
    # the crash attribution: the task a dead or hung worker had oldest in flight is the one blamed
    # (`_Shard.drive`), a worker dead with nothing in flight blames none (`_replace_if_dead`, `_lost`),
    # what the blamed case records (`crash`, `_crashed`, `_Framework.crash`) and why (`_Worker.failure`)
    "runner (crash attribution)": [
        f"{RUNNER}xǁ_Shardǁdrive__mutmut_*",
        f"{RUNNER}xǁ_Shardǁ_replace_if_dead__mutmut_*",
        f"{RUNNER}xǁ_Shardǁ_lost__mutmut_*",
        f"{RUNNER}x_crash__mutmut_*",
        f"{RUNNER}x__crashed__mutmut_*",
        f"{RUNNER}xǁ_Frameworkǁcrash__mutmut_*",
        f"{RUNNER}xǁ_Workerǁfailure__mutmut_*",
    ],
    # the text choice: which sentence an explanation gets (`_text`, `_fit_text`, `_off_its_formula`) and
    # how a knob's setting is worded (`_describe`, `_phrase`)
    "explain (text choice)": [
        f"conformance.explain.{name}__mutmut_*" for name in ("x__text", "x__fit_text", "x__off_its_formula", "x__describe", "x__phrase")
    ],
}
THRESHOLD = 90.0
# mutmut's exit codes of a mutant's test run (mutmut/stats.py): a kill, or tests that no longer finish
KILLED, TIMEOUT, SURVIVED = {1, 3}, {24, -24, 36, 152, 255}, {0}


def scores(patterns: dict[str, list[str]]) -> list[tuple[str, int, int, list[str]]]:
    """Per target: killed (timeouts included), total, and the mutants that survived or had no test."""
    rows = []
    for label, globs in patterns.items():
        module = globs[0].split(".")[1]
        meta = json.loads((Path("mutants/conformance") / f"{module}.py.meta").read_text(encoding="utf-8"))
        codes = {k: v for k, v in meta["exit_code_by_key"].items() if any(fnmatch.fnmatch(k, g) for g in globs)}
        killed = sum(1 for v in codes.values() if v in KILLED | TIMEOUT)
        left = sorted(k for k, v in codes.items() if v not in KILLED | TIMEOUT)
        rows.append((label, killed, len(codes), left))
    return rows


def main(argv: list[str]) -> int:
    patterns: dict[str, list[str]] = {}
    for glob in argv:  # other patterns: scored per module they name
        patterns.setdefault(glob.split(".")[1], []).append(glob)
    patterns = patterns or TARGETS
    shutil.rmtree("mutants", ignore_errors=True)  # mutmut never refreshes its copy of a file it does not mutate
    code = subprocess.call(["mutmut", "run", *[g for globs in patterns.values() for g in globs]])
    if code:
        return code
    rows = scores(patterns)
    print("| module | killed / total | score |\n|---|---|---|")
    for label, killed, total, _ in rows:
        print(f"| {label} | {killed} / {total} | {100.0 * killed / total if total else 100.0:.1f}% |")
    low = [label for label, killed, total, _ in rows if total and 100.0 * killed / total < THRESHOLD]
    for label, _, _, left in rows:
        for name in left:
            print(f"not killed ({label}): {name}")
    if low:
        print(f"under {THRESHOLD:g}% killed: {', '.join(low)} (`mutmut show NAME` shows a mutant; docs/mutation.md)")
    return 1 if low else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
