"""The Ray engine (`--engine ray`) on a local two-node Ray cluster, started once for the module.

The cluster is `ray.cluster_utils.Cluster`: two nodes on this machine, each declaring 2 CPUs and 2 of
the custom resource `conformance`. What must hold: the same cases give the same results.json as the
local engine (timings, `workers` and the run's date aside); the actors land on both nodes; two actors
of one framework share its cases; an actor killed while it runs a case loses only that case
(`crashed`, with Ray's reason), Ray restarts it and the run completes; a hung case times out the same
way; a framework that cannot start is `crashed` everywhere, saying so; bad usage is exit 2 within
seconds. The fake framework (`fakes.py`, NumPy only)
dies or hangs on chosen case ids; it is registered before the cluster starts, so that the cluster's
worker processes inherit the PYTHONPATH that finds it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from fakes import fake_cases, register_fake

from conformance import budget, cli, registry, runner
from conformance.engines import Choice
from conformance.pipeline import Pipeline

ray = pytest.importorskip("ray", reason="the Ray engine needs ray (pip install -c constraints.txt -e '.[ray]')")
cluster_utils = pytest.importorskip("ray.cluster_utils")

REPO = Path(__file__).resolve().parents[1]
NODE = {"num_cpus": 2, "resources": {"conformance": 2}}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Two nodes, joined by this process; the fakes' names: (healthy, broken)."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        fake = register_fake(tmp_path_factory.mktemp("fake"), monkeypatch)
        broken = register_fake(tmp_path_factory.mktemp("broken"), monkeypatch, broken=True)
        monkeypatch.delenv("RAY_ADDRESS", raising=False)
        started = cluster_utils.Cluster(initialize_head=True, head_node_args={**NODE, "include_dashboard": False})
        started.add_node(**NODE)
        ray.init(address=started.address, logging_level="ERROR", log_to_driver=False)
        try:
            yield started, fake, broken
        finally:
            ray.shutdown()
            started.shutdown()
    registry.refresh()


def _comparable(path: Path) -> dict:
    """results.json without what may differ between engines: timings, worker details, the run's date."""

    def strip(value):
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in ("seconds", "workers", "run")}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return strip(json.loads(path.read_text(encoding="utf-8")))


def test_same_results_as_the_local_engine_with_actors_on_both_nodes(cluster, tmp_path):
    """article.yaml on torch, paddle and the reference: groups, explanations, recipes and snippets as
    the local engine writes them (NaN compared as equal text: both documents are read the same way)."""
    started, _, _ = cluster
    common = ["run", str(REPO / "cases" / "article.yaml"), "--frameworks", "torch,paddle,reference"]
    assert cli.main([*common, "--json", str(tmp_path / "local.json"), "--html", str(tmp_path / "local.html")]) == 0
    assert cli.main([*common, "--json", str(tmp_path / "ray.json"), "--html", str(tmp_path / "ray.html"), "--engine", "ray"]) == 0
    local, distributed = _comparable(tmp_path / "local.json"), _comparable(tmp_path / "ray.json")
    assert json.dumps(distributed, sort_keys=True) == json.dumps(local, sort_keys=True)
    assert any(case["explanation"] for case in local["cases"])  # the comparison covers explanations and recipes
    workers = json.loads((tmp_path / "ray.json").read_text(encoding="utf-8"))["workers"]
    nodes = {node["NodeID"] for node in ray.nodes() if node["Alive"]}
    assert {n for w in workers.values() for n in w["nodes"]} == nodes  # SPREAD: the three actors use both nodes
    assert len(nodes) == 2


def _pid(pipeline: Pipeline, name: str) -> int:
    [(_, pid)] = pipeline.workers.placed()[name]  # type: ignore[attr-defined]
    return pid


def test_an_actor_killed_mid_run_loses_only_its_case(cluster):
    """SIGKILL (by pid, as an OOM killer would) while the actor runs `hang`: that case is `crashed`
    with Ray's reason, every other case is `ok`, Ray restarts the actor and the run completes."""
    _, fake, _ = cluster
    ids = [f"slow{i}" for i in range(20)] + ["hang"] + [f"slow{i}" for i in range(21, 40)]
    with Pipeline({fake: None}, timeout=60.0, engine=Choice("ray", actors=1)) as pipeline:
        records = []
        for case, record in pipeline.records(fake_cases(*ids)):
            records.append(record)
            if case.id == "slow19":  # the next message is `hang`, which sleeps for two minutes
                killer = threading.Timer(1.0, os.kill, (_pid(pipeline, fake), signal.SIGKILL))
                killer.start()
        first_pid = killer.args[0]
        assert _pid(pipeline, fake) != first_pid  # the restarted actor answered the rest
        stats = pipeline.workers.stats[fake]
    assert [r.id for r in records] == ids
    statuses = {r.id: r.results[fake].status for r in records}
    assert statuses.pop("hang") == "crashed"
    assert set(statuses.values()) == {"ok"}
    message = next(r for r in records if r.id == "hang").results[fake].message
    assert message.startswith(f"the {fake} actor died (") and message.endswith("while running this case")
    assert stats.restarts == 1 and len(stats.startup_seconds) == 2


def test_an_actor_killed_between_runs_blames_no_case(cluster):
    """Killed while it waits for work: the next batch finds it dead or restarting; no case is `crashed`
    and the restart is counted (as the local engine does for a worker that dies idle)."""
    _, fake, _ = cluster
    with Pipeline({fake: None}, timeout=60.0, engine=Choice("ray", actors=1)) as pipeline:
        first = [record for _, record in pipeline.records(fake_cases("a", "b"))]
        os.kill(_pid(pipeline, fake), signal.SIGKILL)
        second = [record for _, record in pipeline.records(fake_cases("c", "d", "e"))]
        stats = pipeline.workers.stats[fake]
    assert [r.results[fake].status for r in first + second] == ["ok"] * 5
    assert stats.restarts <= 1  # 1 in each of 3 runs here; 0 if Ray restarts it before the next batch comes


def test_two_actors_of_one_framework_share_its_cases_on_both_nodes(cluster):
    """`--ray-actors 2`: both actors take the framework's cases from one queue; the records still come
    in case order, each case once."""
    _, fake, _ = cluster
    ids = [f"slow{i}" for i in range(60)]
    with Pipeline({fake: None}, timeout=60.0, engine=Choice("ray", actors=2)) as pipeline:
        records = [record for _, record in pipeline.records(fake_cases(*ids))]
        placed = pipeline.workers.placed()[fake]  # type: ignore[attr-defined]
    assert [r.id for r in records] == ids
    assert {r.results[fake].status for r in records} == {"ok"}
    assert len({pid for _, pid in placed}) == 2 and len({node for node, _ in placed}) == 2


def test_a_hung_case_times_out_and_the_actor_carries_on(cluster, monkeypatch):
    """The actor's CPU time is not read (it may be on another machine): a case is stopped at the
    wall-clock bound of its budget, here lowered to twice the budget whatever the load."""
    _, fake, _ = cluster
    monkeypatch.setattr(budget, "WALL_FACTOR", 2.0)
    monkeypatch.setattr(budget, "LOAD_MARGIN", 0.0)
    started = time.monotonic()
    with Pipeline({fake: None}, timeout=2.0, engine=Choice("ray", actors=1)) as pipeline:
        records = [record for _, record in pipeline.records(fake_cases("slow0", "hang", "slow2"))]
    assert [r.results[fake].status for r in records] == ["ok", "crashed", "ok"]
    assert records[1].results[fake].message == f"the {fake} actor timed out after 4 s of wall time while running this case"
    assert time.monotonic() - started < 60


def test_a_framework_that_cannot_start_is_crashed_everywhere(cluster):
    _, fake, broken = cluster
    with Pipeline({broken: None, fake: None}, timeout=10.0, engine=Choice("ray")) as pipeline:
        records = [record for _, record in pipeline.records(fake_cases("a", "b"))]
    assert [r.results[fake].status for r in records] == ["ok", "ok"]
    for record in records:
        result = record.results[broken]
        assert result.status == "crashed"
        assert result.message.startswith(f"the {broken} actor did not start:") and "fake framework failed to initialise" in result.message


def test_pytest_option_runs_the_case_items_on_the_cluster(cluster, tmp_path):
    """`pytest --conformance-engine ray --conformance-ray-address ADDRESS`: a fresh process joins the
    cluster by its address; the items pass and results.json says where the actor ran."""
    started, _, _ = cluster
    out = tmp_path / "results.json"
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", str(REPO / "cases" / "article.yaml")]
    command += ["--conformance-frameworks", "reference", "--conformance-json", str(out), "--conformance-html", ""]
    command += ["--conformance-engine", "ray", "--conformance-ray-address", started.address]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert json.loads(out.read_text(encoding="utf-8"))["workers"]["reference"]["nodes"]


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--engine", "nope"], "invalid choice: 'nope'"),
        (["--engine", "ray", "--ray-address", "127.0.0.1:9"], "--ray-address 127.0.0.1:9: no Ray cluster answers there"),
        (["--ray-address", "127.0.0.1:9"], "only the Ray engine uses a cluster address"),
    ],
)
def test_bad_engine_usage_is_exit_2_within_seconds(argv, words, capsys, cluster, tmp_path):
    started = time.monotonic()
    outputs = ["--json", str(tmp_path / "r.json"), "--html", str(tmp_path / "r.html")]
    assert cli.main(["run", str(REPO / "cases" / "article.yaml"), "--frameworks", "reference", *outputs, *argv]) == cli.EXIT_USAGE
    assert words in capsys.readouterr().err.replace("\n", "")
    assert time.monotonic() - started < runner.START_TIMEOUT / 30


def test_fuzz_gathers_each_seeds_cases_leaving_out_kinds_an_earlier_seed_shows(monkeypatch, tmp_path):
    """The driver's side of `fuzz --engine ray`: the seeds' outcomes (here made up, not run) are written
    in seed order; seed 1's first case shows only a kind seed 0 found and is left out."""
    from conformance import fuzz
    from conformance.engines import ray_actors

    old, new = ("paddle", "torch", "denominator"), ("tensorflow", "torch", "smoothing")
    outcomes = [
        {"seed": 0, "kinds": [[old]], "files": {"fuzz_0_0_denominator.yaml": "seed 0\n"}},
        {"seed": 1, "kinds": [[old], [old, new]], "files": {"fuzz_1_0_denominator.yaml": "dup\n", "fuzz_1_1_smoothing.yaml": "seed 1\n"}},
    ]
    monkeypatch.setattr(ray_actors, "spread", lambda *args: outcomes)
    gathered = fuzz.campaign(Choice("ray"), 1.0, [0, 1], tmp_path, set())
    assert [o["written"] for o in gathered] == [[str(tmp_path / "fuzz_0_0_denominator.yaml")], [str(tmp_path / "fuzz_1_1_smoothing.yaml")]]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fuzz_0_0_denominator.yaml", "fuzz_1_1_smoothing.yaml"]
    assert (tmp_path / "fuzz_1_1_smoothing.yaml").read_text(encoding="utf-8") == "seed 1\n"


def test_the_address_comes_from_ray_address_without_the_option(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:9")
    argv = ["run", str(REPO / "cases" / "article.yaml"), "--frameworks", "reference", "--json", str(tmp_path / "r.json")]
    assert cli.main([*argv, "--html", str(tmp_path / "r.html"), "--engine", "ray"]) == cli.EXIT_USAGE
    assert capsys.readouterr().err.replace("\n", "").startswith("error: RAY_ADDRESS 127.0.0.1:9: no Ray cluster answers there")


def test_an_address_that_answers_but_is_no_ray_cluster_is_exit_2_within_seconds(tmp_path, capsys):
    """A port that accepts connections but never answers (a wrong port): Ray would wait for minutes;
    the engine gives up after `CONNECT_TIMEOUT` seconds, in one paragraph."""
    import socket

    from conformance.engines import ray_actors

    outputs = ["--json", str(tmp_path / "r.json"), "--html", str(tmp_path / "r.html")]
    with socket.create_server(("127.0.0.1", 0)) as server:
        address = f"127.0.0.1:{server.getsockname()[1]}"
        started = time.monotonic()
        argv = ["run", str(REPO / "cases" / "article.yaml"), "--frameworks", "reference", *outputs, "--engine", "ray"]
        assert cli.main([*argv, "--ray-address", address]) == cli.EXIT_USAGE
        elapsed = time.monotonic() - started
    assert capsys.readouterr().err.replace("\n", "").startswith(f"error: --ray-address {address}: no Ray cluster answers there (timed out)")
    assert elapsed < ray_actors.CONNECT_TIMEOUT + 5


def test_without_ray_installed_the_ray_engine_is_exit_2(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError, as where it is not installed
    argv = ["run", str(REPO / "cases" / "article.yaml"), "--frameworks", "reference", "--json", str(tmp_path / "r.json")]
    assert cli.main([*argv, "--html", str(tmp_path / "r.html"), "--engine", "ray"]) == cli.EXIT_USAGE
    error = capsys.readouterr().err.replace("\n", "")
    assert "--engine ray: Ray is not installed here (pip install -c constraints.txt ray; or the extra 'ray')" in error
