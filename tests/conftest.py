"""Fixtures shared by the harness's own tests."""

from __future__ import annotations

import pytest
from fakes import register_fake


@pytest.fixture
def fake_framework(tmp_path, monkeypatch) -> str:
    return register_fake(tmp_path, monkeypatch)
