"""`conformance.runner` under faults: a worker that dies is noticed at once, whatever it was doing.

A worker is killed (SIGKILL, by pid, from the test) in each state a worker can be in: idle before a
recipe round, idle at the end of a batch, between batches, idle at the window limit, starting as a spare,
starting at all; or it dies by itself on a case, in a recipe, or again and again while idle. Every test
runs with a per-case timeout of `TIMEOUT` seconds and must finish well within it: a death noticed only by
the timeout fails it. The framework is the NumPy-only fake of `fakes.py` (its loss is the sum of the
logits, `x.sum()`).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable

import pytest
from fakes import fake_cases

from conformance import adapters, budget, cases, explain, runner
from conformance.reference import TEXTBOOK

TIMEOUT = 15.0


def shards(workers: runner.Workers, name: str) -> list:
    return workers._frameworks[name].shards


def kill(shard) -> None:
    """SIGKILL the shard's worker and wait until it is gone, as an OOM killer or a user would."""
    process = shard.worker.process
    os.kill(process.pid, signal.SIGKILL)
    while process.poll() is None:
        time.sleep(0.01)


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        assert time.monotonic() < deadline, f"never {what}"
        time.sleep(0.005)


def idle_at_the_limit(workers: runner.Workers, name: str):
    """The framework's only shard once it waits at the window limit with nothing in flight. With one case
    taken by the consumer and no more, the collector fills the outbox (`AHEAD` cases) and blocks with the
    limit at 1 + 2 * AHEAD; the worker runs up to it and waits."""
    framework, [shard] = workers._frameworks[name], shards(workers, name)
    limit = 1 + 2 * runner.AHEAD
    wait_until(lambda: workers._current.limit == framework.next_case == limit and not shard.inflight, "idle at the limit")
    return shard


def loss(results: dict, name: str) -> float:
    result = results[name]
    assert result["status"] == "ok", result["message"]
    return float(result["loss"])


def test_worker_killed_while_idle_before_a_recipe_round_runs_the_recipe_on_a_fresh_worker(fake_framework):
    """Protects the recipe round: the worker has answered its only case and waits; killed then, the
    recipe asked next runs on a fresh worker (no case or recipe is blamed for a death it did not cause).
    Before: the recipe was sent to the dead worker and came back 'timed out' after the whole timeout."""
    [case] = fake_cases("a")

    def recipes(case, results):
        [shard] = shards(workers, fake_framework)
        kill(shard)
        return {fake_framework: adapters.recipes(fake_framework, case, {"other": TEXTBOOK}, explain.Model(case))}

    started = time.monotonic()
    with runner.Workers(runner.plan([fake_framework], None), TIMEOUT) as workers:
        [(_, results)] = list(workers.stream([case], recipes))
        stats = workers.stats[fake_framework]
    recipe = results[fake_framework]["recipes"]["other"]
    assert recipe.get("message") is None and float(recipe["loss"]) == float(case.predictions.sum())
    assert loss(results, fake_framework) == float(case.predictions.sum())
    assert stats.restarts == 1
    assert time.monotonic() - started < TIMEOUT / 2


def test_worker_that_dies_in_a_recipe_fails_that_recipe_and_a_fresh_worker_runs_the_rest(fake_framework):
    """Protects crash isolation in a recipe round: the recipe the worker died on carries how it died,
    the next case runs on a fresh worker."""
    batch = fake_cases("kill_in_recipe", "after")

    def recipes(case, results):
        if case.id != "kill_in_recipe":
            return {}
        return {fake_framework: adapters.recipes(fake_framework, case, {"other": TEXTBOOK}, explain.Model(case))}

    started = time.monotonic()
    with runner.Workers(runner.plan([fake_framework], None), TIMEOUT) as workers:
        found = {case.id: results for case, results in workers.stream(batch, recipes)}
    recipe = found["kill_in_recipe"][fake_framework]["recipes"]["other"]
    assert recipe["loss"] is None and "died with signal SIGKILL while running this case" in recipe["message"]
    assert loss(found["kill_in_recipe"], fake_framework) == float(batch[0].predictions.sum())
    assert loss(found["after"], fake_framework) == float(batch[1].predictions.sum())
    assert time.monotonic() - started < TIMEOUT / 2


def test_worker_killed_while_idle_at_the_end_of_a_batch_is_replaced_for_the_next(fake_framework):
    """Protects the end of a batch: killed after its last answer while the batch is still open, the
    worker is replaced, and the next batch's case runs (before: it was sent to the dead worker and
    'timed out', or was blamed for the death)."""
    first, second = fake_cases("first", "second")

    def recipes(case, results):
        kill(shards(workers, fake_framework)[0])
        return {}

    started = time.monotonic()
    with runner.Workers(runner.plan([fake_framework], None), TIMEOUT) as workers:
        list(workers.stream([first], recipes))
        [(_, results)] = list(workers.stream([second]))
        stats = workers.stats[fake_framework]
    assert loss(results, fake_framework) == float(second.predictions.sum())
    assert stats.restarts == 1
    assert time.monotonic() - started < TIMEOUT / 2


def test_worker_killed_between_batches_does_not_blame_the_next_case(fake_framework):
    """Protects honest crash messages: a worker that died while no batch ran did not die on the next
    case; that case runs on a fresh worker (before: it was recorded as `crashed` 'while running this case')."""
    first, second = fake_cases("first", "second")
    started = time.monotonic()
    with runner.Workers(runner.plan([fake_framework], None), TIMEOUT) as workers:
        list(workers.stream([first]))
        kill(shards(workers, fake_framework)[0])
        [(_, results)] = list(workers.stream([second]))
    assert loss(results, fake_framework) == float(second.predictions.sum())
    assert time.monotonic() - started < TIMEOUT / 2


def test_worker_killed_while_idle_at_the_window_limit_is_replaced_and_the_rest_runs(fake_framework, monkeypatch):
    """Protects the window refill: the consumer stops taking cases, so the worker runs up to `AHEAD`
    cases past it and waits with nothing in flight; killed then, a fresh worker runs the rest when the
    consumer carries on (before: the next window went to the dead worker and timed out)."""
    monkeypatch.setattr(runner, "AHEAD", 8)
    batch = fake_cases(*(f"c{i}" for i in range(40)))
    found: dict[str, dict] = {}
    started = time.monotonic()
    with runner.Workers(runner.plan([fake_framework], None), TIMEOUT) as workers:
        for case, results in workers.stream(batch):
            found[case.id] = results
            if len(found) == 1:
                kill(idle_at_the_limit(workers, fake_framework))
        stats = workers.stats[fake_framework]
    assert list(found) == [case.id for case in batch]
    for case in batch:
        assert loss(found[case.id], fake_framework) == float(case.predictions.sum())
    assert stats.restarts == 1
    assert time.monotonic() - started < TIMEOUT / 2


def test_worker_that_keeps_dying_while_idle_fails_its_framework_instead_of_restarting_for_ever(fake_framework, monkeypatch):
    """Protects against an endless restart loop: every fake worker dies 1 s after it is ready, and the
    consumer holds the stream at the window limit, so each dies idle. After `IDLE_DEATHS` (3) deaths in a
    row the framework is failed: the cases it had answered stay ok, the rest are `crashed` saying why."""
    monkeypatch.setenv("FAKE_DIES_AFTER_SECONDS", "1.0")
    monkeypatch.setattr(runner, "AHEAD", 8)
    batch = fake_cases(*(f"c{i}" for i in range(40)))
    found: dict[str, dict] = {}
    with runner.Workers(runner.plan([fake_framework], None), TIMEOUT) as workers:
        for case, results in workers.stream(batch):
            found[case.id] = results[fake_framework]
            if len(found) == 1:
                idle_at_the_limit(workers, fake_framework)
                wait_until(lambda: workers._frameworks[fake_framework].failed is not None, "failed")
        stats = workers.stats[fake_framework]
    answered = 1 + 2 * runner.AHEAD
    assert [found[case.id]["status"] for case in batch] == ["ok"] * answered + ["crashed"] * (len(batch) - answered)
    message = f"the {fake_framework} worker died 3 times in a row waiting for work (the last time: died with signal SIGKILL)"
    assert found[batch[-1].id]["message"] == message
    # 3 idle deaths; on a loaded machine the first worker may also die once before the stream is held
    # (1 s after it is ready, while answering), which is a restart too. Never the endless loop.
    assert runner.IDLE_DEATHS <= stats.restarts <= runner.IDLE_DEATHS + 1


def test_spare_worker_killed_while_starting_leaves_the_work_to_the_running_one(fake_framework, monkeypatch):
    """Protects a spare worker's start-up: killed while importing, it is dropped at once and the workers
    left (the one already running, and any spare started later) do every case, once, in order."""
    monkeypatch.setattr(runner, "AHEAD", 16)
    monkeypatch.setattr(runner, "SPARE_WORKER_PAYS", 0)  # a spare as soon as the fake holds the reference back
    batch = fake_cases(*(f"slow{i}" for i in range(160)))  # 20 ms a case; the reference waits for the fake
    killed: list[int] = []
    started = time.monotonic()
    with runner.Workers(runner.plan([fake_framework, "reference"], None), TIMEOUT, most=2) as workers:
        list(workers.stream(fake_cases("warm_up")))  # both ready: from here on the fake is the one behind

        def kill_the_spare() -> None:
            wait_until(lambda: len(shards(workers, fake_framework)) == 2, "a spare worker")
            spare = shards(workers, fake_framework)[1]
            assert not spare.ready
            killed.append(spare.worker.process.pid)
            kill(spare)

        killer = threading.Thread(target=kill_the_spare)
        killer.start()
        found = {case.id: results for case, results in workers.stream(batch)}
        killer.join()
    assert killed
    assert list(found) == [case.id for case in batch]
    for case in batch:
        assert loss(found[case.id], fake_framework) == float(case.predictions.sum())
    assert time.monotonic() - started < TIMEOUT


def test_worker_killed_before_it_is_ready_fails_its_framework_at_once(fake_framework):
    """Protects waiting for `ready`: a worker killed while importing makes its framework's cases
    `crashed` with how it died at once (the other framework is unaffected), not after `START_TIMEOUT`."""
    batch = fake_cases("a", "b")
    started = time.monotonic()
    with runner.Workers(runner.plan([fake_framework, "reference"], None), TIMEOUT) as workers:
        kill(shards(workers, fake_framework)[0])
        found = {case.id: results for case, results in workers.stream(batch)}
    for results in found.values():
        assert results[fake_framework]["status"] == "crashed"
        assert f"the {fake_framework} worker did not start: died with signal SIGKILL" in results[fake_framework]["message"]
        assert results["reference"]["status"] == "ok"
    assert time.monotonic() - started < TIMEOUT / 2


def test_crash_message_shows_what_the_worker_printed_on_that_case_not_at_import(fake_framework):
    """Protects the stderr tail of a crash: it is what the worker wrote while running the case it died
    on (the fake's `say_and_kill` writes 'last words'), never the import-time warning every worker prints
    (paddle's 'No ccache found'); a case that printed nothing has no tail."""
    batch = fake_cases("say_and_kill", "kill")
    with runner.Workers(runner.plan([fake_framework], None), TIMEOUT) as workers:
        found = {case.id: results[fake_framework] for case, results in workers.stream(batch)}
    said, killed = found["say_and_kill"], found["kill"]
    assert said["status"] == "crashed" and killed["status"] == "crashed"
    prefix = f"the {fake_framework} worker died with signal SIGKILL"
    assert said["message"] == f"{prefix} (last words of say_and_kill) while running this case"
    assert killed["message"] == f"{prefix} while running this case"


@pytest.mark.parametrize("case_id", ["kill", "exit"])
def test_worker_that_dies_on_a_case_is_noticed_at_once(fake_framework, case_id):
    """Protects the common state, a death on a case: it is `crashed` at once, and the next case runs."""
    batch = fake_cases(case_id, "after")
    started = time.monotonic()
    with runner.Workers(runner.plan([fake_framework], None), TIMEOUT) as workers:
        found = {case.id: results[fake_framework] for case, results in workers.stream(batch)}
    assert found[case_id]["status"] == "crashed"
    assert float(found["after"]["loss"]) == float(batch[1].predictions.sum())
    assert time.monotonic() - started < TIMEOUT / 2


def test_a_stream_lets_go_of_each_case_once_it_is_handed_out():
    """Flat memory: the stream keeps its own list and drops each case when it hands it out, so a caller
    that keeps no reference (as `conformance run` does) holds only the cases in flight. Checked with
    weak references: by the time the last case comes out, the first ones are gone."""
    import gc
    import weakref

    batch = fake_cases(*(f"c{i}" for i in range(40)))
    refs = [weakref.ref(case) for case in batch]
    with runner.Workers(runner.plan(["reference"], None), TIMEOUT) as workers:
        stream = workers.stream(batch)
        del batch
        seen, alive = 0, None
        for case, _ in stream:
            seen += 1
            del case
            if seen == 40:  # the stream is still open: the first 30 were handed out long ago
                gc.collect()
                alive = sum(ref() is not None for ref in refs[:30])
    assert seen == 40
    assert alive == 0, f"{alive} of the first 30 cases are still held while the stream runs"


def test_recipes_that_fail_to_be_asked_for_do_not_stall_the_stream(fake_framework):
    """Protects the collector: asking for a case's recipes runs in its thread; an exception there used to
    end the thread and leave the consumer waiting for ever. The cases come out, without recipes."""
    batch = fake_cases("a", "b")

    def recipes(case, results):
        raise ValueError("a bug while writing recipes")

    found: list = []
    with runner.Workers(runner.plan([fake_framework], None), TIMEOUT) as workers:
        consumer = threading.Thread(target=lambda: found.extend(workers.stream(batch, recipes)), daemon=True)
        consumer.start()
        consumer.join(TIMEOUT / 2)
        stalled = consumer.is_alive()
        if stalled:
            workers.cancel()
    assert not stalled, "the stream stalled after the recipes callback raised"
    assert [case.id for case, _ in found] == ["a", "b"]
    assert all("recipes" not in results[fake_framework] for _, results in found)


# ---------------------------------------------------------------- no wait for ever; the budget counts a case's own work


def sized_cases(*specs: tuple[str, int]) -> list:
    """Cases (id, number of classes) of one row of random logits: a case's message to its worker holds
    8 bytes a class, so 20,000 classes (160 kB) are more than a pipe holds (64 kB)."""
    text = "cases:\n" + "".join(f"  - {{id: {i}, random: {{shape: [1, {c}]}}, labels: random}}\n" for i, c in specs)
    return cases.load_text(text, "sized.yaml")


def stream_within(workers: runner.Workers, batch: list, seconds: float = 120.0) -> list:
    """The stream's (case, results), or a failed test naming the stall if it does not end within `seconds`
    (far more than these cases need: at a load of 30 on 2 cores, 0.7 s of CPU time took 17 s)."""
    found: list = []
    consumer = threading.Thread(target=lambda: found.extend(workers.stream(batch)), daemon=True)
    consumer.start()
    consumer.join(seconds)
    stalled = consumer.is_alive()
    if stalled:
        workers.cancel()
    assert not stalled, f"the stream stalled after {len(found)} of {len(batch)} cases"
    return found


@pytest.mark.parametrize("window", [4, 2], ids=["together-past-the-window", "each-past-the-window"])
def test_cases_past_the_element_window_run_one_after_another(fake_framework, monkeypatch, window):
    """Protects the window of `ELEMENTS_AHEAD` prediction elements: two cases of 3 elements each pass a
    window of 4 together (a case past a window of 2 alone): the frameworks take one case, then wait
    for the window to move on. It moves when that case is handed out, and the frameworks are woken then.
    Before: they were woken only every `AHEAD // 4` cases, so the second case was never sent and the run
    waited for ever (two [1000, 9000] cases with the real window, 2^24)."""
    monkeypatch.setattr(runner, "ELEMENTS_AHEAD", window)
    batch = fake_cases("a", "b", "c")
    with runner.Workers(runner.plan([fake_framework, "reference"], None), TIMEOUT) as workers:
        found = stream_within(workers, batch)
    assert [case.id for case, _ in found] == ["a", "b", "c"]
    for case, results in found:
        assert loss(results, fake_framework) == float(case.predictions.sum())


def test_a_case_past_its_budget_is_stopped_while_the_next_waits_to_be_sent(fake_framework, monkeypatch):
    """Protects the per-case budget while the next case's message is larger than the pipe to the worker:
    the worker reads it only after the case it runs, and writing it used to block the thread that
    watches the running case, so no timeout was applied (`--timeout 20` let a paddle case run 44 s).
    Now the first case is stopped once it has spent its budget of CPU time (1 s and 3 elements' share),
    and the next case, which needs 0.3 s, runs on a fresh worker."""
    monkeypatch.setattr(budget, "WALL_FACTOR", 100.0)  # CPU time decides here, however loaded the machine
    batch = sized_cases(("spin_10000", 3), ("spin_300", 20_000))
    with runner.Workers(runner.plan([fake_framework], None), 1.0) as workers:
        found = {case.id: results[fake_framework] for case, results in stream_within(workers, batch)}
    assert found["spin_10000"]["status"] == "crashed"
    assert found["spin_10000"]["message"] == f"the {fake_framework} worker timed out after 1 s of CPU time while running this case"
    assert found["spin_300"]["status"] == "ok", found["spin_300"]["message"]


def test_a_case_is_charged_its_cpu_time_not_the_wall_clock_of_a_loaded_machine(fake_framework):
    """Protects the budget's unit: a case that waits without working (here it sleeps 1.5 s, as a case
    does that gets no CPU on a machine loaded by other jobs) is not timed out by a 1 s budget of CPU
    time; the wall-clock bound is several times the budget. Before: 'timed out after 1 s'."""
    batch = sized_cases(("nap_1500", 3), ("spin_100", 3))
    with runner.Workers(runner.plan([fake_framework], None), 1.0) as workers:
        found = {case.id: results[fake_framework] for case, results in stream_within(workers, batch)}
    assert found["nap_1500"]["status"] == "ok", found["nap_1500"]["message"]
    assert found["spin_100"]["status"] == "ok", found["spin_100"]["message"]


def test_a_case_queued_behind_a_slow_one_is_not_charged_for_its_work(fake_framework, monkeypatch):
    """Protects whose work is charged: each of these cases spends 0.7 s of CPU time, under its budget
    (1 s and its size's share, at most 0.2 s); the second's message waits in the pipe while the first
    runs, and together they spend more than either budget. Its clocks start when the first is answered."""
    monkeypatch.setattr(budget, "WALL_FACTOR", 100.0)
    batch = sized_cases(("spin_700", 3), ("spin_701", 20_000), ("spin_702", 3))
    with runner.Workers(runner.plan([fake_framework], None), 1.0) as workers:
        found = {case.id: results[fake_framework] for case, results in stream_within(workers, batch)}
    for case in batch:
        assert found[case.id]["status"] == "ok", found[case.id]["message"]


def test_a_case_timeout_key_replaces_the_run_s_budget(fake_framework, monkeypatch):
    """Protects the case file's `timeout:`: a case that needs 0.6 s of CPU time runs under a run-wide
    budget of 0.2 s when its own `timeout: 5` says so; the same case without the key is stopped."""
    monkeypatch.setattr(budget, "WALL_FACTOR", 100.0)
    text = "cases:\n  - {id: spin_600, logits: [[1, 2]], labels: [0], timeout: 5}\n  - {id: spin_601, logits: [[1, 2]], labels: [0]}\n"
    batch = cases.load_text(text, "own.yaml")
    with runner.Workers(runner.plan([fake_framework], None), 0.2) as workers:
        found = {case.id: results[fake_framework] for case, results in stream_within(workers, batch)}
    assert found["spin_600"]["status"] == "ok", found["spin_600"]["message"]
    assert found["spin_601"]["status"] == "crashed" and "timed out after 0.2 s of CPU time" in found["spin_601"]["message"]


def test_a_feeder_that_fails_ends_the_stream_with_its_error_instead_of_a_wait_for_ever(fake_framework, monkeypatch):
    """Protects the collector's wait on the feeders: a bug that ends a feeder thread (here its framework's
    queue raises on the second case) raises in the consumer, naming it. Before: the collector waited for
    that framework's answers for ever."""
    take = runner._Framework.take

    def failing(self, *args):
        task = take(self, *args)
        if task is not None and task[1] == 1:
            raise ValueError("a bug in the feeder")
        return task

    monkeypatch.setattr(runner._Framework, "take", failing)
    errors: list[BaseException] = []

    def consume(workers: runner.Workers) -> None:
        try:
            list(workers.stream(fake_cases("a", "b", "c")))
        except RuntimeError as exc:
            errors.append(exc)

    with runner.Workers(runner.plan([fake_framework], None), TIMEOUT) as workers:
        consumer = threading.Thread(target=consume, args=(workers,), daemon=True)
        consumer.start()
        consumer.join(120.0)
        stalled = consumer.is_alive()
        if stalled:
            workers.cancel()
    assert not stalled, "the stream waited for ever on a feeder that had failed"
    [error] = errors
    assert "ended with an error: ValueError('a bug in the feeder')" in str(error)
