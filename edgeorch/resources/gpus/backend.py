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
  error (MIG instances report no utilisation; consumer cards no ECC). An
  *optional* reading (utilisation, temperature, ECC, retired pages, row
  remapping) that fails for any other reason is also ``None``, named in
  ``GpuReading.problems`` and logged once; only the memory reading is
  required, so a failing thermometer never makes a GPU unschedulable.
- Nothing but :class:`GpuBackendError` leaves a method (the NVML backend
  translates every pynvml exception).
- Any call may block for a long time on a wedged GPU (NVML does, after some
  XIDs). Backends are therefore used from one worker thread
  (:class:`~edgeorch.resources.gpus.reader.GpuReader`), never from the
  daemon's event loop; they are not required to be thread-safe.
"""

from __future__ import annotations

import abc

from ..model import GpuDevice, GpuProcess, GpuReading, HealthEvent


class GpuBackend(abc.ABC):
    """Source of GPU inventory, live readings, processes and health events."""

    #: Short name shown by ``edgeorch resources`` (``nvml``, ``fake``).
    name: str = "abstract"

    #: What went wrong while opening the backend without stopping it, one
    #: sentence each: a device that could not be opened (its index and the
    #: NVML error), health events that could not be registered. Empty when
    #: all is well. Set by the constructor; read by the start-up message.
    problems: tuple[str, ...] = ()

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
        ``nvmlDeviceGetMemoryInfo``; they include other users of the GPU, and
        ``memory_used`` the driver's reservation, so an idle GPU's free memory
        is below its total).
        Utilisation (percent), temperature (°C), ECC counts (volatile,
        corrected and uncorrected) and retired pages are ``None`` where
        unsupported. For a MIG instance, temperature/ECC/retired pages are
        those of the parent GPU.
        Raises GpuBackendError (NOT_FOUND, GPU_IS_LOST) as in the module rules.
        """

    def free_memory(self, uuid: str) -> int:
        """``reading(uuid).memory_free`` at the cost of one query: what a scheduling decision needs.

        Raises as :meth:`reading` (the memory query is the required one).
        """
        return self.reading(uuid).memory_free

    @abc.abstractmethod
    def processes(self, uuid: str) -> tuple[GpuProcess, ...]:
        """Compute processes using the device, with their GPU memory.

        Empty tuple when none. ``used_memory`` is None where the driver
        cannot tell (no permission to see another user's process; WDDM/WSL2),
        and includes the process's CUDA context (a few hundred MiB) otherwise.
        PIDs are as NVML reports them: *host* PIDs, whatever PID namespace the
        daemon runs in. Entries with an impossible PID (0, 2**32-1: a struct
        layout mismatch between nvidia-ml-py and the driver) are never
        returned: the call raises GpuBackendError instead, so garbage is
        never matched against a task. Raises as in the module rules.
        """

    @abc.abstractmethod
    def poll_health(self, timeout_ms: int = 0) -> list[HealthEvent]:
        """Health events since the last call, waiting at most ``timeout_ms``.

        Reports, once each: XID critical errors (``kind="xid"``, ``code`` the
        XID), uncorrectable ECC errors (``ecc_uncorrectable``), a device
        that fell off the bus (``lost``; detected by probing every device, so
        a lost device is reported even when no event could be delivered), one
        that needs a reset (``reset_required``), and row-remapping trouble
        (``remap_pending``, ``remap_failed``; checked at start and then at
        most once a minute).
        Events name the allocatable UUID(s) affected: an event on a MIG
        parent is reported for each of its instances. Never raises for a lost
        device: that is what it reports. Returns [] when nothing happened.
        """

    def close(self) -> None:
        """Release the backend (NVML shutdown). Idempotent; later calls may fail."""
