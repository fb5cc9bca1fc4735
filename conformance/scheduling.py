"""xdist scheduling that hands out case items in whole chunks (imported only under xdist).

A chunk is what an xdist worker streams through its framework workers as one batch, so it must reach
that worker whole; xdist's own `load` scheduling would deal out single items. Other tests keep xdist's
load-scope grouping (by module or class), so a module-scoped fixture runs once.
"""

from __future__ import annotations

from typing import Any

import pytest
from xdist.scheduler import LoadScopeScheduling

from conformance.plugin import chunk_of


class CaseChunkScheduling(LoadScopeScheduling):
    def __init__(self, config: pytest.Config, log: Any = None) -> None:
        super().__init__(config, log)
        self.chunks: dict[str, str] = {}

    def schedule(self) -> None:
        if self.collection is None and self.registered_collections:
            collection = next(iter(self.registered_collections.values()))
            case_items = [n for n in collection if n.split("::", 1)[0].endswith((".yaml", ".yml"))]
            self.chunks = {n: f"conformance chunk {chunk_of(i, len(self.nodes))}" for i, n in enumerate(case_items)}
        super().schedule()

    def _split_scope(self, nodeid: str) -> str:
        return self.chunks.get(nodeid) or super()._split_scope(nodeid)
