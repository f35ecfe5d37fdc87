"""A real child process: pinned from the lease, environment set, read back from inside the child."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from edgeorch.resources.child import THREAD_VARS, apply_affinity, lease_env
from edgeorch.resources.cpus import format_cpu_list
from edgeorch.resources.model import Lease

# What the task sees, from its own point of view: the kernel's view of its
# affinity (inherited through exec) and its environment.
PROBE = r"""
import json, os
allowed = [l.split(":", 1)[1].strip() for l in open("/proc/self/status") if l.startswith("Cpus_allowed_list")][0]
keys = ["OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS",
        "CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES"]
print(json.dumps({"allowed": allowed, "env": {k: os.environ.get(k) for k in keys}}))
"""


def run_child(lease: Lease) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARS}
    env.update(lease_env(lease))
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, preexec_fn=lambda: apply_affinity(lease),
                         capture_output=True, text=True, check=True, timeout=30)
    return json.loads(out.stdout)


def test_child_is_pinned_to_its_cores_and_told_its_thread_count() -> None:
    core = max(os.sched_getaffinity(0))
    lease = Lease("a1", cpus=(core,), affinity=(core,), gpus=("GPU-aaaa", "MIG-bbbb"), gpu_exclusive=True)
    seen = run_child(lease)
    assert seen["allowed"] == str(core)
    assert seen["env"] == {
        "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1",
        "CUDA_VISIBLE_DEVICES": "GPU-aaaa,MIG-bbbb", "NVIDIA_VISIBLE_DEVICES": "GPU-aaaa,MIG-bbbb",
    }


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two cores")
def test_shared_task_is_pinned_to_the_shared_cores_without_thread_vars() -> None:
    cores = tuple(sorted(os.sched_getaffinity(0)))[:2]
    seen = run_child(Lease("a2", affinity=cores))
    assert seen["allowed"] == format_cpu_list(cores)
    assert seen["env"]["OMP_NUM_THREADS"] is None
    assert seen["env"]["CUDA_VISIBLE_DEVICES"] == "" and seen["env"]["NVIDIA_VISIBLE_DEVICES"] == "void"


def test_gpu_env_uses_uuids_never_indices() -> None:
    env = lease_env(Lease("x", gpus=("GPU-1234",), gpu_memory=1))
    assert env["CUDA_VISIBLE_DEVICES"] == "GPU-1234"
    assert not any(v.isdigit() for v in env["CUDA_VISIBLE_DEVICES"].split(","))


def test_index_mode_names_whole_gpus_by_nvml_index_in_pci_order_and_keeps_mig_uuids() -> None:
    env = lease_env(Lease("x", gpus=("GPU-b", "GPU-a"), gpu_exclusive=True), {"GPU-a": 0, "GPU-b": 3})
    assert (env["CUDA_VISIBLE_DEVICES"], env["NVIDIA_VISIBLE_DEVICES"]) == ("3,0", "3,0")
    assert env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"  # CUDA's default order ("fastest first") is not NVML's
    mig = lease_env(Lease("y", gpus=("MIG-c",), gpu_memory=1), {"GPU-a": 0})
    assert mig["CUDA_VISIBLE_DEVICES"] == "MIG-c"
    assert "CUDA_DEVICE_ORDER" not in lease_env(Lease("z"), {"GPU-a": 0})
