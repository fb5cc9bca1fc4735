"""Engines: what runs the framework workers for the pipeline.

`local` (the default) is `conformance.runner.Workers`: worker processes on this machine. `ray` is
`conformance.engines.ray_actors`: the same workers as Ray actors spread over a cluster's nodes. The pipeline
only talks to the protocol below, so for the same cases both give the same records; only timings and
the `workers` details of results.json differ. Ray is imported by the Ray engine alone, and only when it
is chosen: the local engine never needs it installed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from conformance import runner, spool
from conformance.cases import Case

NAMES = ("local", "ray")


@dataclass(frozen=True)
class Choice:
    """Which engine runs the workers (`--engine`) and, for Ray, which cluster (`--ray-address`; None:
    the `RAY_ADDRESS` environment variable, else a local Ray instance started for the run) and how many
    actors each framework gets (`--ray-actors`; None: the cluster's CPUs shared out, at least one)."""

    name: str = "local"
    address: str | None = None
    actors: int | None = None


LOCAL = Choice()


class Engine(Protocol):
    """What the pipeline asks of an engine (`runner.Workers` is the reference implementation).

    Started on creation (the frameworks import while the caller loads cases); `stats` per framework
    (versions, start-ups, restarts, nodes); `stream` yields each case with its results by result key,
    in case order, each result's `code` assembled (`runner.with_code`) and the recipes `recipes` asks
    for folded in; a worker that dies loses only the task it was running, answered as
    `runner.crash` says. `cancel` (from another thread) ends the stream under way; `close` ends
    every worker."""

    stats: dict[str, runner.WorkerStats]

    def versions(self) -> dict[str, str]: ...

    def stream(self, cases: spool.Cases, recipes: runner.RecipeRequests | None = None) -> Iterator[tuple[Case, runner.Results]]: ...

    def cancel(self) -> None: ...

    def close(self) -> None: ...


def start(choice: Choice, keys: dict[str, set[str] | None], timeout: float, most: int) -> Engine:
    """The engine `choice` names, its workers starting for the frameworks of `keys`. `most`: how many
    workers a framework may get on the local engine (on Ray: `choice.actors`)."""
    if choice.name == "ray":
        from conformance.engines import ray_actors

        return ray_actors.Actors(keys, timeout, choice.address, choice.actors)
    return runner.Workers(keys, timeout, most)
