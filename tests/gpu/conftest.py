"""Tests on a real NVIDIA GPU (issue 18): every test here is marked ``gpu``.

Run them with ``bash tests/gpu/validate.sh`` on a GPU machine (it also runs
them as an unprivileged user and writes a summary). Elsewhere they skip with
the daemon's own reason ("no NVML library: running CPU-only"), and they
*fail* where NVIDIA GPUs are present but NVML is broken: the rule is
:func:`edgeorch.resources.gpus.detect.detect_gpus`, the one the daemon
uses. ``EDGEORCH_REQUIRE_GPU=1`` turns every "no GPU" skip into a failure.

Results (timings, the CUDA context's size, the inventory) are written as JSON
under ``$EDGEORCH_GPU_OUT`` when set (validate.sh sets it), else a temp dir.
Helpers live in ``gpu_helpers.py``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from gpu_helpers import HERE, Results, no_gpu

from edgeorch.config import ResourcesConfig
from edgeorch.resources.gpus.backend import GpuBackend
from edgeorch.resources.gpus.detect import detect_gpus


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).is_relative_to(HERE):
            item.add_marker(pytest.mark.gpu)


@pytest.fixture(scope="session")
def nvml() -> Iterator[GpuBackend]:
    """The real NVML backend, called from the test's thread."""
    found = detect_gpus(ResourcesConfig(gpu_backend="auto"))
    if found.worker is not None:
        found.worker.close()
    if found.backend is None:
        if found.broken:
            pytest.fail(f"NVIDIA GPUs here but NVML is broken: {found.message}")
        no_gpu(f"no NVIDIA GPU/NVML on this machine: {found.message}")
    assert found.backend is not None
    print(f"\nGPUs: {found.message}")
    yield found.backend
    found.backend.close()


@pytest.fixture(scope="session")
def libcuda() -> None:
    """Skip (or fail, where required) when libcuda.so.1 cannot be loaded."""
    import ctypes

    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError as exc:
        no_gpu(f"libcuda.so.1 cannot be loaded: {exc}")


@pytest.fixture(scope="session")
def nvidia_smi() -> str:
    path = shutil.which("nvidia-smi")
    if path is None:
        no_gpu("nvidia-smi is not on PATH")
    assert path is not None
    return path


@pytest.fixture(scope="session")
def results(tmp_path_factory: pytest.TempPathFactory) -> Results:
    out = os.environ.get("EDGEORCH_GPU_OUT")
    return Results(Path(out) if out else tmp_path_factory.mktemp("gpu-results"))
