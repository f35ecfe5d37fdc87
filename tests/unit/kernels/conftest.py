"""Kernels tests: a persistent numba cache (reruns skip compiling) and data builders."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

# Before numba is imported by any test module: compiled kernels are cached
# here, as the engine caches them under <state_dir>/numba-cache.
os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(tempfile.gettempdir()) / "edgeorch-tests-numba-cache"))

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
