"""Fixtures of the data-version tests: a settable clock, a state file and its object store."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeorch.datasets import service
from edgeorch.store import Store
from testclock import SetClock as Clock


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock):
    s = Store(tmp_path / "var" / "edgeorch.db", clock=clock)
    yield s
    s.close()


@pytest.fixture
def objects(tmp_path: Path):
    return service.object_store(tmp_path / "var")
