"""The one evaluation pipeline: cases -> framework workers -> comparison -> explanation -> baseline -> records.

`conformance run`, `baseline save`, `fuzz` and the pytest plugin (serial, and the xdist controller's
service) all evaluate through `Pipeline`, and all write through `Outputs`, so for the same cases and
baseline they write the same results document (timings, worker statistics and the `runner` field aside).
"""

from __future__ import annotations

import tempfile
from collections.abc import Generator
from dataclasses import replace
from pathlib import Path
from typing import Any

from conformance import against, baseline, engines, explain, html, matrices, results, spool, summary
from conformance.cases import Case
from conformance.compare import compare
from conformance.records import CaseRecord, Comparison, Result, result_of


class Pipeline:
    """Framework workers for `keys` (started at once, so their imports overlap whatever comes next) and
    what turns their answers into records: comparison, explanation and, given a baseline, its replay."""

    def __init__(
        self,
        keys: dict[str, set[str] | None],
        timeout: float = 120.0,
        most: int = 1,
        baseline_path: Path | None = None,
        engine: engines.Choice = engines.LOCAL,
    ) -> None:
        self.replay = None
        if baseline_path is not None:
            self.replay = baseline.Replay(baseline.load(baseline_path), str(baseline_path), baseline_path.parent)
        self.keys = keys
        self.workers = engines.start(engine, keys, timeout, most)
        self.compared: dict[int, tuple[dict[str, Result], Comparison, explain.Model]] = {}

    def records(self, cases: spool.Cases) -> Generator[tuple[Case, CaseRecord], None, None]:
        """Each case with its record, in case order, as soon as it is complete (the stream reads the cases
        as it reaches them and keeps none it has handed out: memory stays flat if the caller keeps none
        either, as a `spool.Spool` does)."""
        stream = self.workers.stream(cases, self._recipes)
        del cases
        for case, answers in stream:
            yield case, self.record(case, answers)

    def _recipes(self, case: Case, answers: dict[str, dict[str, Any]]) -> dict[str, dict[str, str]]:
        """Compare a case as soon as its results are in (the runner's collector thread) and write the
        recipes of the pairs its explanations will show, for the workers to run; the comparison and the
        model's evaluations are kept for the record, since recipes change neither."""
        checked, comparison = compare(case, {key: result_of(key, answer) for key, answer in answers.items()})
        model = explain.Model(case)
        self.compared[id(case)] = checked, comparison, model
        return explain.requests(case, checked, comparison.groups, model)

    def evaluate(self, case: Case) -> CaseRecord:
        """The record of one case (the fuzzer asks case by case)."""
        return next(self.records([case]))[1]

    def record(self, case: Case, answers: dict[str, dict[str, Any]]) -> CaseRecord:
        record = build(case, answers, self.compared.pop(id(case), None))
        if self.replay is not None:
            record = self.replay.check(case, record, self.keys, self.versions())
        return record

    def versions(self) -> dict[str, str]:
        return self.workers.versions()

    def head(self, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """The document's head but for its summary: versions, worker statistics, run details, the baseline's report."""
        stats = self.workers.stats
        out: dict[str, Any] = {
            "versions": self.versions(),
            "workers": {
                f: {"startup_seconds": s.startup_seconds, "restarts": s.restarts, **({"nodes": s.nodes} if s.nodes else {})}
                for f, s in stats.items()
            },
            "run": results.run_details(),  # Python, OS, CPU, date; the CLI adds the case files' commit
            "source": None,  # the result the report measures against (`run --source`); None: the reference
            **(extra or {}),
        }
        if self.replay is not None:
            out["baseline"] = self.replay.report(self.versions())
        return out

    def cancel(self) -> None:
        self.workers.cancel()

    def close(self) -> None:
        self.workers.close()

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def build(
    case: Case, answers: dict[str, dict[str, Any]], compared: tuple[dict[str, Result], Comparison, explain.Model] | None = None
) -> CaseRecord:
    """A case's record from its workers' answers (by result key): results, comparison, explanation.
    `compared`: the comparison already made of the same answers before their recipes came back, and the
    case's model as the recipe requests left it."""
    model = None
    if compared is None:
        checked, comparison = compare(case, {key: result_of(key, answer) for key, answer in answers.items()})
    else:  # compared before the snippets were assembled and the recipes came back: take those from the answers
        checked, comparison, model = compared
        checked = {
            key: replace(r, code=answers[key].get("code"), recipes=result_of(key, answers[key]).recipes) for key, r in checked.items()
        }
    explanation = explain.explain(case, checked, comparison, model)
    return CaseRecord(
        id=case.id,
        file=case.file,
        line=case.line,
        description=case.description,
        params=case.params,
        results=checked,
        comparison=against.check(case.expect, checked, comparison, explanation),  # a port must join what it ports
        expected=case.expect.model_dump(exclude_none=True, exclude={"when"}) if case.expect is not None else None,
        explanation=explanation,
    )


class Outputs:
    """Where records go as they complete: results.json (always written, to a temporary file if no path
    is asked for, since the reports are built from it), a baseline being saved, and at the end the HTML
    report and summary.md, built from what was written."""

    def __init__(self, json_path: Path | None, html_path: Path | None = None, baseline_out: Path | None = None) -> None:
        self.scratch = tempfile.TemporaryDirectory() if json_path is None else None
        self.json_path = json_path or Path(self.scratch.name) / "results.json"  # type: ignore[union-attr]
        self.html_path = html_path
        self.writer = results.Writer(self.json_path)
        self.saver = baseline.Saver(baseline_out) if baseline_out is not None else None
        self.violated: list[dict[str, Any]] = []
        self.digest = summary.Digest()
        self.movements = matrices.Movements()

    def add(self, record: CaseRecord) -> None:
        data = record.to_json()
        self.writer.add(data)
        self.digest.add(data)
        self.movements.add(data)
        if record.comparison.expectation == "violated":
            self.violated.append(data)
        if self.saver is not None:
            self.saver.add(data)

    @property
    def count(self) -> int:
        return self.writer.counts.cases

    def finish(self, head: dict[str, Any]) -> dict[str, Any]:
        """Write results.json, the baseline, the HTML report and summary.md; the document's head."""
        if self.saver is not None:
            self.saver.finish(head["versions"])
        moved = self.movements.found()
        written = self.writer.finish({**head, "residual_matrices": moved} if moved else head)
        if self.html_path is not None:
            html.write(self.html_path, self.json_path)
            folder = (self.json_path if self.scratch is None else self.html_path).parent
            summary.write(folder / "summary.md", self.json_path, self.html_path, self.digest)
        if self.scratch is not None:
            self.scratch.cleanup()
        return written
