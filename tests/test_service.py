"""The xdist controller's service, driven as xdist workers drive it (a `Remote` per worker) in one process.

The frameworks are the NumPy-only `reference` and the fake of `fakes.py`; expected losses come from the
softmax cross-entropy formula written out in NumPy here.
"""

from __future__ import annotations

import threading
from multiprocessing import AuthenticationError

import numpy as np
import pytest
from fakes import fake_cases

from conformance import cases, results, runner
from conformance import pipeline as pipeline_module
from conformance.errors import ConformanceError
from conformance.pipeline import Outputs, Pipeline
from conformance.service import Remote, Service

CASES = """\
cases:
  - id: first
    logits: [[0.05, 0.95, 0], [0.1, 0.8, 0.1]]
    labels: [1, 2]
  - id: second
    logits: [[1, 2, 3]]
    labels: [0]
  - id: third
    logits: [[3, 1, 2]]
    labels: [2]
    expect: {values: {reference: 0.5}}  # printed wrongly on purpose (the loss is log(e^3 + e + e^2) - 2 = 1.4076): this item fails
"""


def mean_cross_entropy(logits: list[list[float]], labels: list[int]) -> float:
    x = np.array(logits, dtype=np.float64)
    log_p = x - np.log(np.exp(x).sum(axis=1, keepdims=True))
    return float(-log_p[np.arange(len(labels)), labels].mean())


def start(tmp_path, frameworks: list[str], most: int = 2) -> tuple[Service, list[Pipeline], Outputs]:
    """A service as the plugin starts it: a pipeline made when the first xdist worker asks, and outputs."""
    made: list[Pipeline] = []
    outputs = Outputs(tmp_path / "results.json")

    def pipeline() -> Pipeline:
        made.append(Pipeline(runner.plan(frameworks, None), 120.0, most))
        return made[-1]

    return Service(pipeline, lambda: outputs), made, outputs


def written(made: list[Pipeline], outputs: Outputs) -> list[str]:
    """The ids of the records written to results.json once the run is over."""
    for pipeline in made:
        pipeline.close()
    outputs.finish(made[0].head() if made else {"versions": {}})
    return [case["id"] for case in results.cases(outputs.json_path)]


@pytest.fixture
def service(tmp_path):
    running, made, _ = start(tmp_path, ["reference"])
    yield running
    running.close()
    for pipeline in made:
        pipeline.close()


def test_cases_are_evaluated_once_and_each_record_served_on_request(service):
    batch = cases.load_text(CASES, "cases.yaml")
    gw0, gw1 = Remote(service.address()), Remote(service.address())
    gw0.offer(batch)
    gw1.offer(batch)  # every xdist worker offers its collection; the first one is evaluated
    third = gw1.record("cases.yaml::third")
    first = gw0.record("cases.yaml::first")
    assert first.results["reference"].loss == pytest.approx(mean_cross_entropy([[0.05, 0.95, 0], [0.1, 0.8, 0.1]], [1, 2]))
    assert third.results["reference"].loss == pytest.approx(mean_cross_entropy([[3, 1, 2]], [2]))
    assert gw0.record("cases.yaml::third").to_json() == third.to_json(), "a failed item run again gets the same record"
    with pytest.raises(ConformanceError, match="cases.yaml::first was served once and passed"):
        gw0.record("cases.yaml::first")  # a passing record is not kept: memory stays flat in the cases


def test_a_case_the_controller_was_not_offered_is_an_error_naming_it(service):
    gw0 = Remote(service.address())
    gw0.offer(cases.load_text(CASES, "cases.yaml"))
    with pytest.raises(ConformanceError, match=r"cases.yaml::fourth is not among the cases the xdist controller evaluated"):
        gw0.record("cases.yaml::fourth")
    assert gw0.record("cases.yaml::second").id == "second", "the connection still serves"


def test_a_peer_without_the_key_is_refused_and_the_service_goes_on(service):
    path, key = service.address()
    with pytest.raises(AuthenticationError):
        Remote((path, "00" * 32))
    gw0 = Remote((path, key))
    gw0.offer(cases.load_text(CASES, "cases.yaml"))
    assert gw0.record("cases.yaml::first").id == "first"


def test_a_failure_while_evaluating_reaches_every_waiting_item(service, monkeypatch):
    def broken(*args):
        raise RuntimeError("a bug in the comparison")

    monkeypatch.setattr(pipeline_module, "build", broken)
    gw0 = Remote(service.address())
    gw0.offer(cases.load_text(CASES, "cases.yaml"))
    expected = "evaluating the cases failed in the xdist controller: RuntimeError: a bug in the comparison"
    with pytest.raises(ConformanceError, match=expected):
        gw0.record("cases.yaml::second")


def test_closing_mid_evaluation_answers_the_waiting_item_and_writes_what_was_evaluated(fake_framework, tmp_path):
    """Ctrl-C or an early stop (-x) closes the service while cases are still running: an item waiting for
    its case is told, the framework workers stop, and results.json gets the records evaluated until
    then, in collection order."""
    service, made, outputs = start(tmp_path, [fake_framework], most=1)
    batch = fake_cases(*(f"slow{i}" for i in range(100)))  # 20 ms a case: 2 s in all
    gw0 = Remote(service.address())
    gw0.offer(batch)
    assert gw0.record(batch[0].nodeid).id == "slow0"
    failure: list[Exception] = []

    def wait_for_last() -> None:
        try:
            gw0.record(batch[-1].nodeid)
        except ConformanceError as exc:
            failure.append(exc)

    waiting = threading.Thread(target=wait_for_last)
    waiting.start()
    service.close()
    waiting.join(timeout=30)
    assert [str(f) for f in failure] == ["the xdist controller stopped before this case was evaluated"]
    ids = written(made, outputs)
    assert 1 <= len(ids) < len(batch) and ids == [case.id for case in batch[: len(ids)]]


def test_framework_workers_that_cannot_be_started_fail_the_items_instead_of_hanging(service, monkeypatch):
    def no_processes(*args, **kwargs):
        raise OSError("cannot start any more processes")

    monkeypatch.setattr(runner, "Workers", no_processes)
    gw0 = Remote(service.address())
    gw0.offer(cases.load_text(CASES, "cases.yaml"))
    with pytest.raises(ConformanceError, match="the xdist controller failed: OSError: cannot start any more processes"):
        gw0.record("cases.yaml::first")
