"""GPU backends: the interface, the NVML implementation, the fake device table."""

from .backend import GpuBackend
from .detect import open_gpu_backend
from .fake import FakeBackend

__all__ = ["FakeBackend", "GpuBackend", "open_gpu_backend"]
