"""Fixtures shared by the harness's own tests."""

from __future__ import annotations

import pytest
from fakes import register_fake

from conformance import registry


@pytest.fixture
def fake_framework(tmp_path, monkeypatch):
    yield register_fake(tmp_path, monkeypatch)
    monkeypatch.undo()
    registry.refresh()
