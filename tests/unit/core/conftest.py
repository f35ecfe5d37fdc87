"""Fixtures of the core unit tests."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture
def state_before() -> Callable[[Path, str], sqlite3.Connection]:
    """``state_before(path, marker)``: a state file at ``path`` as an edgeorch before the migration whose script holds
    ``marker`` left it (every earlier migration applied, ``user_version`` set), opened for the test to fill; the
    test closes it, then opens it with a ``Store`` to migrate it."""
    from edgeorch.store.db import _statements
    from edgeorch.store.schema import MIGRATIONS

    def make(path: Path, marker: str) -> sqlite3.Connection:
        (script,) = [m for m in MIGRATIONS if marker in m]
        version = MIGRATIONS.index(script) + 1
        conn = sqlite3.connect(path)
        for m in MIGRATIONS[:version - 1]:
            for stmt in _statements(m):
                conn.execute(stmt)
        conn.execute(f"PRAGMA user_version = {version - 1}")
        return conn

    return make
