"""Kernels tests: data builders (the session's numba cache, already warm, is set up by tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A task working directory (cwd) with no output dir set."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("EDGEORCH_OUTPUT_DIR", raising=False)
    return tmp_path
