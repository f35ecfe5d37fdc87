"""Choose the GPU backend from config, and say in one line what happened.

``gpu_backend``:

- ``none``: CPU-only, no probing.
- ``fake``: the device table at ``fake_gpus`` (required).
- ``nvml``: NVML must work; a failure is a :class:`GpuBackendError`.
- ``auto``: NVML if it starts and sees at least one device, else CPU-only
  with a message saying why (no library, no driver, no device). Never raises
  for a missing GPU stack: a CPU-only box is normal.
"""

from __future__ import annotations

from ...config import ResourcesConfig
from ...errors import ConfigError
from ..model import NVML_ERROR_LIBRARY_NOT_FOUND, GpuBackendError
from .backend import GpuBackend
from .fake import FakeBackend

_DRIVER_NOT_LOADED = 9


def _describe(backend: GpuBackend) -> str:
    devs = backend.devices()
    mig = sum(1 for d in devs if d.parent)
    extra = f" ({mig} MIG instance{'s' if mig != 1 else ''})" if mig else ""
    return f"{backend.name}: {len(devs)} GPU device{'s' if len(devs) != 1 else ''}{extra}"


def open_gpu_backend(cfg: ResourcesConfig) -> tuple[GpuBackend | None, str]:
    """The backend to use (None: CPU-only) and a one-line message for the log.

    Raises :class:`ConfigError` for ``fake`` without ``fake_gpus``,
    :class:`~edgeorch.resources.model.ResourceError` for a bad device table,
    and :class:`GpuBackendError` when ``nvml`` is asked for explicitly and
    cannot start.
    """
    mode = cfg.gpu_backend
    backend: GpuBackend
    if mode == "none":
        return None, "GPUs disabled in config (gpu_backend = \"none\"): running CPU-only"
    if mode == "fake":
        if cfg.fake_gpus is None:
            raise ConfigError("gpu_backend = \"fake\" needs a device table", field="resources.fake_gpus",
                              expected="a path to a TOML or JSON device table")
        backend = FakeBackend.from_file(cfg.fake_gpus)
        return backend, _describe(backend)
    from .nvml import NvmlBackend

    try:
        backend = NvmlBackend()
    except ImportError:
        if mode == "nvml":
            raise GpuBackendError("the pynvml module (nvidia-ml-py) is not installed",
                                  expected="pip install nvidia-ml-py") from None
        return None, "no pynvml module: running CPU-only"
    except GpuBackendError as exc:
        if mode == "nvml":
            raise
        if exc.nvml_code == NVML_ERROR_LIBRARY_NOT_FOUND:
            return None, "no NVML library: running CPU-only"
        if exc.nvml_code == _DRIVER_NOT_LOADED:
            return None, "NVIDIA driver not loaded: running CPU-only"
        return None, f"NVML unavailable ({exc.message}): running CPU-only"
    if not backend.devices():
        backend.close()
        if mode == "nvml":
            raise GpuBackendError("NVML sees no GPU device", nvml_code=None)
        return None, "NVML sees no GPU: running CPU-only"
    return backend, _describe(backend)
