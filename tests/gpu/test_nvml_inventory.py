"""The NVML backend's inventory against ``nvidia-smi`` on a real GPU machine; a healthy box drains nothing."""

from __future__ import annotations

import re

from gpu_helpers import Results, smi

from edgeorch.resources.gpus.backend import GpuBackend
from edgeorch.resources.gpus.nvml import bindings_version

SMI_MODES = {"Default": "default", "Exclusive_Process": "exclusive_process", "Prohibited": "prohibited",
             "Exclusive_Thread": "exclusive_thread"}


def _smi_list(text: str) -> tuple[list[str], dict[str, list[str]]]:
    """(GPU UUIDs, GPU UUID → its MIG device UUIDs) from ``nvidia-smi -L``."""
    gpus: list[str] = []
    migs: dict[str, list[str]] = {}
    for line in text.splitlines():
        m = re.search(r"\(UUID: ((?:GPU|MIG)-[^)]+)\)", line)
        if not m:
            continue
        if m.group(1).startswith("GPU-"):
            gpus.append(m.group(1))
            migs[m.group(1)] = []
        elif gpus:
            migs[gpus[-1]].append(m.group(1))
    return gpus, migs


def _query(binary: str) -> dict[str, dict[str, str]]:
    fields = ["uuid", "compute_mode", "persistence_mode", "mig.mode.current", "memory.total", "driver_version"]
    out = smi(binary, f"--query-gpu={','.join(fields)}", "--format=csv,noheader,nounits")
    rows = {}
    for line in out.splitlines():
        values = [v.strip() for v in line.split(",")]
        rows[values[0]] = dict(zip(fields, values, strict=False))
    return rows


def test_the_devices_are_what_nvidia_smi_lists(nvml: GpuBackend, nvidia_smi: str, results: Results) -> None:
    gpus, migs = _smi_list(smi(nvidia_smi, "-L"))
    query = _query(nvidia_smi)
    mig_on = {u for u, row in query.items() if row["mig.mode.current"] == "Enabled"}
    expected = [u for u in gpus if u not in mig_on] + [m for u in gpus if u in mig_on for m in migs[u]]
    got = nvml.devices()
    assert sorted(d.uuid for d in got) == sorted(expected), f"nvidia-smi -L lists {gpus}, {migs}"
    for d in got:
        assert d.physical in gpus and (d.parent is not None) == (d.physical in mig_on)
        smi_mode = SMI_MODES.get(query[d.physical]["compute_mode"], query[d.physical]["compute_mode"])
        assert d.compute_mode == smi_mode, d.uuid
        if d.parent is None:
            assert abs(d.memory_total - int(query[d.uuid]["memory.total"]) * 1024**2) < 2 * 1024**2
    results.record("inventory", {
        "nvidia_ml_py": bindings_version(), "problems": list(nvml.problems),
        "driver": next(iter(query.values()))["driver_version"] if query else None,
        "devices": [{"uuid": d.uuid, "name": d.name, "parent": d.parent, "memory_total": d.memory_total,
                     "memory_reserved": d.memory_reserved, "compute_mode": d.compute_mode,
                     "memory_group": d.memory_group, "numa_node": d.numa_node,
                     "cpus": len(d.cpu_affinity), "persistence_mode": query[d.physical]["persistence_mode"],
                     "mig_mode": query[d.physical]["mig.mode.current"]} for d in got],
    })


def test_remapped_rows_agree_with_nvidia_smi(nvml: GpuBackend, nvidia_smi: str, results: Results) -> None:
    import subprocess

    p = subprocess.run([nvidia_smi, "--query-remapped-rows=gpu_uuid,remapped_rows.pending,remapped_rows.failure",
                        "--format=csv,noheader"], capture_output=True, text=True, timeout=60, check=False)
    smi_rows = {}
    if p.returncode == 0:
        for line in p.stdout.splitlines():
            uuid, pending, failure = (v.strip() for v in line.split(","))
            smi_rows[uuid] = (pending.lower() in ("yes", "1", "true"), failure.lower() in ("yes", "1", "true"))
    seen = {}
    for d in nvml.devices():
        r = nvml.reading(d.uuid)
        seen[d.uuid] = {"remap_pending": r.remap_pending, "remap_failed": r.remap_failed,
                        "retired_pages": r.retired_pages, "problems": list(r.problems)}
        if r.remap_pending is not None and d.physical in smi_rows:
            assert (r.remap_pending, r.remap_failed) == smi_rows[d.physical], d.uuid
    results.record("inventory", {"remapped_rows": seen, "smi_remapped_rows": p.stdout.strip() or p.stderr.strip()})


def test_a_healthy_box_reports_no_drain(nvml: GpuBackend) -> None:
    from edgeorch.resources.watcher import drains_from_events

    events = nvml.poll_health(0) + nvml.poll_health(0)
    drains = drains_from_events(events)
    assert drains == {}, f"this GPU machine is not healthy (or the backend is wrong): {drains}"
    for d in nvml.devices():
        r = nvml.reading(d.uuid)
        assert not r.remap_pending and not r.remap_failed
