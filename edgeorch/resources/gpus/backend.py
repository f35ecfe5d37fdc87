"""The GPU backend interface: what the daemon needs to know about NVIDIA GPUs.

Two implementations: :class:`~edgeorch.resources.gpus.nvml.NvmlBackend`
(real, through nvidia-ml-py's ``pynvml``) and
:class:`~edgeorch.resources.gpus.fake.FakeBackend` (a device table). One
contract test suite (``tests/unit/resources/test_gpu_contract.py``) runs
against both, so the docstrings below are the contract.

General rules for every method:

- Devices are named by UUID (``GPU-…``, ``MIG-…``), never by index.
- A call about an unknown UUID raises :class:`GpuBackendError` with
  ``nvml_code == NVML_ERROR_NOT_FOUND``.
- A call about a device that fell off the bus raises
  :class:`GpuBackendError` with ``nvml_code == NVML_ERROR_GPU_IS_LOST``.
- A reading the device does not support is ``None`` in the result, never an
  error (MIG instances report no utilisation; consumer cards no ECC).
- Backends are used from one thread (the daemon's event loop or one
  watcher thread); they are not required to be thread-safe.
"""

from __future__ import annotations

import abc

from ..model import GpuDevice, GpuProcess, GpuReading, HealthEvent


class GpuBackend(abc.ABC):
    """Source of GPU inventory, live readings, processes and health events."""

    #: Short name shown by ``edgeorch resources`` (``nvml``, ``fake``).
    name: str = "abstract"

    @abc.abstractmethod
    def devices(self) -> tuple[GpuDevice, ...]:
        """The allocatable devices, ordered by physical index, then MIG instance.

        - A physical GPU with MIG disabled is one device (``parent`` None,
          ``mig_enabled`` False).
        - A physical GPU with MIG enabled is NOT listed; each of its MIG
          instances is, with ``parent`` = the physical UUID, its own UUID and
          memory, and the parent's name, compute capability, NUMA node and
          CPU affinity. A MIG-enabled GPU with no instance contributes nothing.
        - ``numa_node`` is -1 and ``cpu_affinity`` empty when unknown.
        - The result is stable between calls unless the hardware changes; it
          is read once at daemon start.
        """

    @abc.abstractmethod
    def reading(self, uuid: str) -> GpuReading:
        """Live readings of one device (from :meth:`devices`).

        ``memory_free`` / ``memory_used`` always present (bytes, as NVML's
        ``nvmlDeviceGetMemoryInfo``; they include other users of the GPU).
        Utilisation (percent), temperature (°C), ECC counts (volatile,
        corrected and uncorrected) and retired pages are ``None`` where
        unsupported. For a MIG instance, temperature/ECC/retired pages are
        those of the parent GPU.
        Raises GpuBackendError (NOT_FOUND, GPU_IS_LOST) as in the module rules.
        """

    @abc.abstractmethod
    def processes(self, uuid: str) -> tuple[GpuProcess, ...]:
        """Compute processes using the device, with their GPU memory.

        Empty tuple when none. ``used_memory`` is None where the driver
        cannot tell (no permission to see another user's process). Raises as
        in the module rules.
        """

    @abc.abstractmethod
    def poll_health(self, timeout_ms: int = 0) -> list[HealthEvent]:
        """Health events since the last call, waiting at most ``timeout_ms``.

        Reports, once each: XID critical errors (``kind="xid"``, ``code`` the
        XID), uncorrectable ECC errors (``ecc_uncorrectable``), and a device
        that fell off the bus (``lost``; detected by probing every device, so
        a lost device is reported even when no event could be delivered).
        Events name the allocatable UUID(s) affected: an event on a MIG
        parent is reported for each of its instances. Never raises for a lost
        device: that is what it reports. Returns [] when nothing happened.
        """

    def close(self) -> None:
        """Release the backend (NVML shutdown). Idempotent; later calls may fail."""
