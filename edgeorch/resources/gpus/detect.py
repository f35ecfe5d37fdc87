"""Choose the GPU backend from config, and say in one line what happened.

``gpu_backend``:

- ``none``: CPU-only, no probing.
- ``fake``: the device table at ``fake_gpus`` (required).
- ``nvml``: NVML must work; a failure is a :class:`GpuBackendError`.
- ``auto``: NVML if it starts and sees at least one device, else CPU-only
  with a message saying why. Never raises for a missing GPU stack: a
  CPU-only box is normal.

Two situations must never look alike: *no GPU here* (no NVIDIA device on the
PCI bus: CPU-only is expected, said once at info level) and *GPUs here but
NVML broken* (NVIDIA devices on the PCI bus, or some of them, but NVML
cannot start, sees none, or cannot open one: a driver upgraded without
reboot, device nodes a container or cgroup denies, a missing nvidia-ml-py).
The second is :attr:`Detected.broken`: the daemon logs it as a warning and
shows it in ``edgeorch resources``, and GPU pipelines are refused with the
sentence quoted.

NVML is started on the GPU worker thread (:class:`~.reader.GpuWorker`)
and waited for at most ``init_timeout`` seconds: ``nvmlInit`` hangs on some
drivers, and a daemon must still reach READY (CPU-only, broken) rather than
wait for systemd to kill it.
"""

from __future__ import annotations

import concurrent.futures
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ...config import ResourcesConfig
from ...errors import ConfigError
from ...records import frozen
from ..model import (
    NVML_ERROR_DRIVER_NOT_LOADED,
    NVML_ERROR_LIB_RM_VERSION_MISMATCH,
    NVML_ERROR_LIBRARY_NOT_FOUND,
    NVML_ERROR_TIMEOUT,
    GpuBackendError,
    ResourceError,
)
from .backend import GpuBackend
from .fake import FakeBackend
from .reader import GpuWorker

log = logging.getLogger("edgeorch.resources")

INIT_TIMEOUT_S = 20.0
"""Seconds the daemon waits for NVML to start and list its devices before going on CPU-only."""

_NVIDIA = "0x10de"
_HINTS = {
    NVML_ERROR_LIB_RM_VERSION_MISMATCH: "the driver was upgraded without a reboot: reboot, or reload the nvidia "
                                        "kernel modules",
    NVML_ERROR_DRIVER_NOT_LOADED: "the nvidia kernel module is not loaded (modprobe nvidia)",
    NVML_ERROR_LIBRARY_NOT_FOUND: "libnvidia-ml.so.1 is not on the library path (in a container: run it with the "
                                  "NVIDIA container toolkit)",
}


@frozen
class Detected:
    """The outcome of :func:`detect_gpus`.

    ``backend`` None: CPU-only. ``message``: one line for the log and
    ``edgeorch resources``. ``broken``: GPUs appear to be present but cannot
    (all) be used; log it as a warning. ``worker``: the thread the backend
    was started on, for every later call (None for the fake and CPU-only).
    """

    backend: GpuBackend | None
    message: str
    broken: bool = False
    worker: GpuWorker | None = None


def no_nvidia_here(sys_root: Path = Path("/")) -> bool:
    """True when this machine surely has no NVIDIA GPU NVML could reach: its PCI bus is readable and lists
    devices (none of them NVIDIA's, which the caller checked), and there is no NVIDIA device node or driver
    (``/dev/nvidiactl``, ``/proc/driver/nvidia``) and no WSL2 GPU (``/dev/dxg``, whose GPUs are not on the
    bus). Anything else (no readable bus, as in some containers; any of those nodes) is left to NVML."""
    try:
        if not any((sys_root / "sys/bus/pci/devices").iterdir()):
            return False
    except OSError:
        return False
    return not any((sys_root / p).exists() for p in ("dev/nvidiactl", "dev/dxg", "proc/driver/nvidia"))


def nvidia_pci_devices(sys_root: Path = Path("/")) -> list[str]:
    """PCI addresses of NVIDIA display and 3D controllers (vendor 0x10de, class 0x0300xx/0x0302xx).

    Read from ``/sys/bus/pci/devices``; [] where that is unreadable. Audio
    and USB functions of a card (other classes) are not counted. Visible
    whatever device nodes or cgroups allow, which is what tells a broken
    NVML from a machine without a GPU.
    """
    base = sys_root / "sys/bus/pci/devices"
    try:
        entries = sorted(base.iterdir())
    except OSError:
        return []
    out = []
    for e in entries:
        try:
            vendor = (e / "vendor").read_text().strip().lower()
            cls = (e / "class").read_text().strip().lower()
        except OSError:
            continue
        if vendor == _NVIDIA and cls.startswith(("0x0300", "0x0302")):
            out.append(e.name)
    return out


def _plural(n: int, what: str) -> str:
    return f"{n} {what}{'s' if n != 1 else ''}"


def _describe(backend: GpuBackend) -> str:
    devs = backend.devices()
    mig = sum(1 for d in devs if d.parent)
    extra = f" ({_plural(mig, 'MIG instance')})" if mig else ""
    text = f"{backend.name}: {_plural(len(devs), 'GPU device')}{extra}"
    if backend.problems:
        text += f"; {_plural(len(backend.problems), 'problem')}: " + "; ".join(backend.problems)
    return text


def _start_nvml(make: Callable[[], GpuBackend], timeout: float) -> tuple[GpuBackend, GpuWorker]:
    """``make()`` on a new worker thread, waited for at most ``timeout`` s (GpuBackendError TIMEOUT after)."""
    worker = GpuWorker()
    fut = worker.submit("nvmlInit and device discovery", make)
    try:
        return fut.result(timeout), worker
    except concurrent.futures.TimeoutError:
        # The thread stays blocked in NVML; if it ever comes back, release what it opened.
        fut.add_done_callback(lambda f: f.exception() is None and f.result().close())
        worker.close(0.0)
        raise GpuBackendError(f"NVML did not answer within {timeout:.0f} s (nvmlInit or device discovery hung: "
                              "a wedged GPU or driver)", nvml_code=NVML_ERROR_TIMEOUT) from None
    except BaseException:
        worker.close(0.0)
        raise


def detect_gpus(cfg: ResourcesConfig, *, nvml: Any = None, sys_root: Path = Path("/"),
                init_timeout: float = INIT_TIMEOUT_S) -> Detected:
    """The backend to use and what to say about it (:func:`_detect_gpus`, the contract). A failure of a backend the
    config asks for by name (``gpu_backend = "nvml"``; ``"fake"`` and its ``fake_gpus`` table unreadable or wrong)
    is a config error (exit 2) naming the field and its value: it stopped a start with exit 1 and NVML's words
    alone."""
    try:
        return _detect_gpus(cfg, nvml=nvml, sys_root=sys_root, init_timeout=init_timeout)
    except (GpuBackendError, ResourceError) as exc:
        if cfg.gpu_backend == "nvml" and isinstance(exc, GpuBackendError):
            exc.field, exc.value = "resources.gpu_backend", "nvml"
            exc.expected = exc.expected or ("a machine whose NVIDIA driver and NVML work, or gpu_backend = \"auto\" "
                                            "(CPU-only when they do not)")
        elif cfg.gpu_backend == "fake" and isinstance(exc, ResourceError):  # the device table: the config's file
            if exc.field is None:
                exc.field, exc.value = "resources.fake_gpus", str(cfg.fake_gpus)
        else:
            raise
        exc.exit_code = 2
        exc.rendered = None
        exc.args = (exc.render(),)
        raise


def _detect_gpus(cfg: ResourcesConfig, *, nvml: Any = None, sys_root: Path = Path("/"),
                 init_timeout: float = INIT_TIMEOUT_S) -> Detected:
    """The backend to use and what to say about it (see the module docstring).

    ``nvml`` and ``sys_root`` are for tests (a pynvml stand-in, a fake
    ``/sys``). Raises :class:`ConfigError` for ``fake`` without ``fake_gpus``,
    :class:`~edgeorch.resources.model.ResourceError` for a bad device table,
    and :class:`GpuBackendError` when ``nvml`` is asked for explicitly and
    cannot start, sees no device, or cannot open any.
    """
    mode = cfg.gpu_backend
    if mode == "none":
        return Detected(None, "GPUs disabled in config (gpu_backend = \"none\"): running CPU-only")
    if mode == "fake":
        if cfg.fake_gpus is None:
            raise ConfigError("gpu_backend = \"fake\" needs a device table", field="resources.fake_gpus",
                              expected="a path to a TOML or JSON device table")
        backend: GpuBackend = FakeBackend.from_file(cfg.fake_gpus)
        return Detected(backend, _describe(backend), bool(backend.problems))
    pci = nvidia_pci_devices(sys_root)
    if mode == "auto" and nvml is None and not pci and no_nvidia_here(sys_root):
        # The common CPU-only box: no need to import pynvml and start NVML on a thread (~60 ms of every
        # `edgeorch run` without a daemon) to be told what the bus already says.
        return Detected(None, "no NVIDIA GPU on the PCI bus: running CPU-only")
    from .nvml import NvmlBackend

    on_bus = f"{_plural(len(pci), 'NVIDIA GPU')} on the PCI bus ({', '.join(pci)})" if pci else ""
    refused = "running CPU-only: GPU pipelines are refused until this is fixed"

    def broken(why: str) -> Detected:
        if mode == "nvml":
            raise GpuBackendError(why + (f" ({on_bus})" if on_bus else ""))
        return Detected(None, f"{on_bus + ' but ' if on_bus else ''}{why}: {refused}", True)

    try:
        import pynvml  # type: ignore[import-untyped]  # noqa: F401 - only whether it can be imported
    except ImportError:
        if nvml is None:
            if mode == "nvml":
                raise GpuBackendError("the pynvml module (nvidia-ml-py) is not installed",
                                      expected="pip install nvidia-ml-py") from None
            if pci:
                return broken("the pynvml module (nvidia-ml-py) is not installed (pip install nvidia-ml-py)")
            return Detected(None, "no pynvml module: running CPU-only")
    try:
        backend, worker = _start_nvml(lambda: NvmlBackend(nvml, sys_root=sys_root), init_timeout)
    except GpuBackendError as exc:
        code = exc.nvml_code
        if mode == "nvml":
            raise
        if not pci and code == NVML_ERROR_LIBRARY_NOT_FOUND:
            return Detected(None, "no NVML library: running CPU-only")
        if not pci and code == NVML_ERROR_DRIVER_NOT_LOADED:
            return Detected(None, "NVIDIA driver not loaded: running CPU-only")
        hint = _HINTS.get(code) if isinstance(code, int) else None
        return broken(f"NVML cannot start ({exc.message}{'; ' + hint if hint else ''})")
    if not backend.devices():
        problems = list(backend.problems)
        worker.submit("close", backend.close)
        worker.close(0.0)
        if problems:
            return broken("NVML could open none of its GPUs: " + "; ".join(problems))
        if pci:
            return broken("NVML sees no GPU (device nodes hidden from this process? a container or cgroup "
                          "without the NVIDIA devices)")
        if mode == "nvml":
            raise GpuBackendError("NVML sees no GPU device", nvml_code=None)
        return Detected(None, "NVML sees no GPU: running CPU-only")
    return Detected(backend, _describe(backend), bool(backend.problems), worker)


def open_gpu_backend(cfg: ResourcesConfig) -> tuple[GpuBackend | None, str]:
    """``(backend, message)`` of :func:`detect_gpus` (the backend then runs on the caller's thread)."""
    d = detect_gpus(cfg)
    if d.worker is not None:
        d.worker.close(0.0)  # its queue is empty: the thread ends; the backend is the caller's now
    return d.backend, d.message
