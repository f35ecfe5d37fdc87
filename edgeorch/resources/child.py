"""What the executor applies in the child process, after fork and before exec.

Both functions are async-signal-safe enough for a post-fork child of a
single-threaded parent (the shim/zygote): no locks, no logging, plain
syscalls and dict building.

- :func:`lease_env` — the environment entries for a lease, merged by the
  executor into the task's environment.
- :func:`apply_affinity` — pins the calling process (and so everything it
  execs and forks) to the lease's cores.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from .model import Lease

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")


def lease_env(lease: Lease, index_of: Mapping[str, int] | None = None) -> dict[str, str]:
    """Environment entries for ``lease`` (to be set over the task's own).

    - With dedicated cores (``cpus`` non-empty): the four thread-count
      variables = the number of cores, so BLAS/OpenMP/numba do not start one
      thread per machine core on a few pinned cores.
    - Without dedicated cores the thread variables are not set: the process
      shares the unleased cores and the libraries' own default (the affinity
      mask size) applies.
    - ``CUDA_VISIBLE_DEVICES`` and ``NVIDIA_VISIBLE_DEVICES``: the lease's GPU
      UUIDs, comma-separated, never indices (indices are renumbered by every
      CUDA_VISIBLE_DEVICES and differ from nvidia-smi's order). A lease with
      no GPU gets ``CUDA_VISIBLE_DEVICES=""`` (CUDA then sees no device) and
      ``NVIDIA_VISIBLE_DEVICES=void`` (the container runtime's "none"), so a
      CPU task cannot grab a GPU by accident.
    - ``index_of`` (config ``visible_devices = "index"``): GPUs it maps are
      named by their NVML index instead, with ``CUDA_DEVICE_ORDER=PCI_BUS_ID``
      so CUDA numbers devices as NVML does (CUDA's default order is
      "fastest first"). For tools that mishandle UUIDs (PyTorch before 2.0
      sees no device; some frameworks crash on MIG UUIDs). MIG devices have
      no index form and keep their UUID. Indices are only right when the
      daemon itself sees every GPU (no CUDA_VISIBLE_DEVICES of its own).
    """
    env: dict[str, str] = {}
    if lease.cpus:
        n = str(len(lease.cpus))
        for var in THREAD_VARS:
            env[var] = n
    if lease.gpus:
        if index_of:
            ids = ",".join(str(index_of[u]) if u in index_of else u for u in lease.gpus)
            env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
        else:
            ids = ",".join(lease.gpus)
        env["CUDA_VISIBLE_DEVICES"] = ids
        env["NVIDIA_VISIBLE_DEVICES"] = ids
    else:
        env["CUDA_VISIBLE_DEVICES"] = ""
        env["NVIDIA_VISIBLE_DEVICES"] = "void"
    return env


def apply_affinity(lease: Lease, pid: int = 0) -> None:
    """Pin ``pid`` (0: the caller) to ``lease.affinity``; inherited across fork/exec.

    An empty affinity (a lease recorded without one) leaves the mask alone.
    Raises ``OSError`` if the kernel refuses (a core went offline): the
    executor reports that as the attempt's start failure.
    """
    if lease.affinity:
        os.sched_setaffinity(pid, lease.affinity)
