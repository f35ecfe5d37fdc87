"""Admission with GPUs as NVML really behaves (issue 18): accounting, failing readings, budgets, health."""

from __future__ import annotations

from typing import Any

from edgeorch.config import ResourcesConfig
from edgeorch.resources import CpuCore, FakeBackend, Inventory, Lease, ResourceRequest
from edgeorch.resources.admission import Admission
from edgeorch.resources.memory import CgroupSupport
from edgeorch.resources.model import NVML_ERROR_NOT_SUPPORTED, NVML_ERROR_UNKNOWN

from .conftest import G

GPU = "GPU-11111111-2222-3333-4444-555555555555"


def _adm(gpu: dict[str, Any] | None = None, policy: str = "stop") -> tuple[Admission, FakeBackend]:
    fake = FakeBackend({"gpu": [{"uuid": GPU, "name": "NVIDIA A100-SXM4-80GB", "memory": "80G", **(gpu or {})}]})
    inv = Inventory(cpus=(CpuCore(0, 0), CpuCore(1, 0)), memory_available=8 * G, gpus=fake.devices())
    adm = Admission(ResourcesConfig(gpu_memory_policy=policy), inv, fake, "fake: 1 GPU device",
                    CgroupSupport(False, None, "memory limits not enforced: test"))
    adm._own_cpus = 2
    return adm, fake


def _start(adm: Admission, aid: int, now: float = 0.0) -> list[Lease]:
    """Decide, and grant every started lease to attempts aid, aid+1, …"""
    d = adm.decide(now, parallelism=8, max_parallel={})
    out = []
    for n, (t, lease) in enumerate(d.start):
        adm.remove(t.id)
        adm.grant(aid + n, 1, t.id, lease, "p", 60.0, now)
        out.append(lease)
    return out


# -- item 2: memory shares are accounted from the leases held now ------------------------------


def test_a_released_leases_last_reading_does_not_make_room_for_two_40g_shares_in_50g() -> None:
    adm, fake = _adm()
    adm.grant(1, 1, "old", Lease("1/old", gpus=(GPU,), gpu_memory=30 * G), "p", 60.0, 0.0)
    fake.add_process(GPU, 111, 30 * G)
    adm.watch({1: [111]})       # the watcher saw the old task use 30G
    adm.release(1)              # it ended; its 30G is still held (a straggler, or another user now)
    free = fake.free_memory(GPU)
    assert 49 * G < free < 50 * G
    adm.push("2/a", ResourceRequest(gpu_memory=40 * G), "p", 0, 60.0, 60.0)
    adm.push("2/b", ResourceRequest(gpu_memory=40 * G), "p", 0, 60.0, 60.0)
    assert [lease.holder for lease in _start(adm, 10)] == ["2/a"]
    # A second decision, before 2/a allocated anything: its whole budget is still promised.
    d = adm.decide(1.0, parallelism=8, max_parallel={})
    assert d.start == () and d.reason(adm.queue, "2/b").kind == "gpu_memory"


def test_a_share_using_part_of_its_budget_leaves_the_rest_promised() -> None:
    adm, fake = _adm()
    adm.push("1/a", ResourceRequest(gpu_memory=30 * G), "p", 0, 60.0, 60.0)
    assert len(_start(adm, 1)) == 1
    fake.add_cuda_process(GPU, 222, 10 * G)  # uses a third of its budget so far
    adm.watch({1: [222]})
    adm.push("1/b", ResourceRequest(gpu_memory=45 * G), "p", 0, 60.0, 60.0)
    adm.push("1/c", ResourceRequest(gpu_memory=49 * G), "p", 0, 60.0, 60.0)
    started = _start(adm, 5, 10.0)
    # 80G - 0.5G reserved - 30G promised to 1/a = 49.5G: 45G fits, 49G does not fit beside it.
    assert [s.holder for s in started] == ["1/b"]


def test_a_share_over_its_budget_counts_as_its_budget_only() -> None:
    adm, fake = _adm()
    adm.grant(1, 1, "a", Lease("1/a", gpus=(GPU,), gpu_memory=10 * G), "p", 60.0, 0.0)
    adm.grant(2, 1, "b", Lease("1/b", gpus=(GPU,), gpu_memory=10 * G), "p", 60.0, 0.0)
    fake.add_process(GPU, 1, 15 * G)  # a: 5G over budget
    adm.watch({1: [1], 2: [2]})       # b has not allocated yet
    snap = adm.reader.latest() if adm.reader else None
    assert snap is not None and adm.leased_use(snap) == {GPU: 10 * G}


# -- item 6: failing readings ----------------------------------------------------------------


def test_a_failing_thermometer_leaves_the_gpu_schedulable_and_is_reported() -> None:
    adm, fake = _adm()
    fake.fail_optional(GPU, "temperature", NVML_ERROR_UNKNOWN)
    fake.fail_optional(GPU, "ecc", NVML_ERROR_NOT_SUPPORTED)
    adm.push("1/a", ResourceRequest(gpu_memory=4 * G), "p", 0, 60.0, 60.0)
    assert len(_start(adm, 1)) == 1
    (gpu,) = adm.readings()
    assert gpu["temperature"] is None and gpu["memory_free"] > 70 * G
    assert gpu["reading_problems"] == ["temperature: NVML error 999"]


def test_a_gpu_that_cannot_be_read_waits_with_the_error_not_with_most_free_0m() -> None:
    adm, fake = _adm()
    fake.fail_with(GPU, NVML_ERROR_UNKNOWN, calls=("free_memory", "reading"))
    adm.push("1/a", ResourceRequest(gpu_memory=4 * G), "p", 0, 60.0, 60.0)
    d = adm.decide(0.0, parallelism=8, max_parallel={})
    why = d.reason(adm.queue, "1/a")
    assert why.kind == "gpu_unreadable"
    assert why.message == f"waits for a GPU reading: {GPU}: cannot be read (NVML error 999)"


def test_a_backend_raising_anything_never_reaches_the_engine() -> None:
    adm, fake = _adm()
    fake.fail_with(GPU, None, exc=lambda: OSError("libnvidia-ml went away"))
    adm.push("1/a", ResourceRequest(gpu_memory=4 * G), "p", 0, 60.0, 60.0)
    d = adm.decide(0.0, parallelism=8, max_parallel={})
    assert "OSError: libnvidia-ml went away" in d.reason(adm.queue, "1/a").message
    adm.grant(9, 1, "t", Lease("1/t", gpus=(GPU,), gpu_memory=G), "p", 60.0, 0.0)
    ((aid, warn),), drains = adm.watch({9: [1]})
    assert (aid, warn.action, warn.why, drains) == (9, "warn", "unlisted", {})
    assert "OSError" in adm.readings()[0]["error"]


# -- item 9: a card's full memory -----------------------------------------------------------------


def test_a_request_for_the_cards_full_memory_is_refused_at_submission() -> None:
    adm, _ = _adm()

    class P:
        from edgeorch.model import TaskSpec

        tasks = {"train": TaskSpec("train", command="true", gpus=1, gpu_memory=80 * G),  # noqa: RUF012
                 "share": TaskSpec("share", command="true", gpu_memory=80 * G)}

    why = ("asks for 80.0G of GPU memory but at most 79.5G can ever be free on the largest GPU (80.0G, of which "
           "the driver reserves 512M)")
    assert adm.check_pipeline(P) == [("train", why), ("share", why)]


def test_a_whole_gpu_waiting_for_its_memory_says_how_much_is_free() -> None:
    adm, fake = _adm()
    fake.set_used(GPU, 20 * G)  # someone outside edgeorch
    adm.push("1/a", ResourceRequest(gpus=1, gpu_memory=70 * G), "p", 0, 60.0, 60.0)
    d = adm.decide(0.0, parallelism=8, max_parallel={})
    assert d.reason(adm.queue, "1/a").message == ("waits for 1 whole GPU(s) with 70.0G free (0 such; most free on "
                                                  "an unleased GPU: 59.5G)")


# -- item 7: what a budget check can and cannot do ------------------------------------------------


def test_host_pids_seen_from_a_container_are_said_once_per_attempt() -> None:
    adm, fake = _adm()
    adm.pid_visible = lambda pid: pid < 100000  # this namespace's PIDs
    fake.pid_offset = 500000                    # NVML's host PIDs
    adm.grant(3, 1, "t", Lease("1/t", gpus=(GPU,), gpu_memory=2 * G), "p", 60.0, 0.0)
    fake.add_process(GPU, 42, 5 * G)
    actions, _ = adm.watch({3: [42]})
    assert [(aid, a.action, a.why) for aid, a in actions] == [(3, "warn", "invisible")]
    assert "host PIDs that this daemon's PID namespace does not show" in actions[0][1].reason
    assert adm.watch({3: [42]}) == ([], {})


def test_unknown_process_memory_is_warned_once_not_counted_as_zero_silently() -> None:
    adm, fake = _adm()
    adm.grant(3, 1, "t", Lease("1/t", gpus=(GPU,), gpu_memory=2 * G), "p", 60.0, 0.0)
    fake.add_process(GPU, 42, None)
    actions, _ = adm.watch({3: [42]})
    assert [(a.action, a.why) for _, a in actions] == [("warn", "unknown")]
    assert adm.watch({3: [42]}) == ([], {})


def test_the_cuda_context_counts_and_a_tiny_budget_is_warned_at_start() -> None:
    adm, fake = _adm()
    adm.grant(3, 1, "t", Lease("1/t", gpus=(GPU,), gpu_memory=G), "p", 60.0, 0.0)
    fake.add_cuda_process(GPU, 42, G)  # allocated exactly its budget; NVML adds the context
    ((aid, a),) = adm.watch({3: [42]})[0]
    assert (aid, a.action) == (3, "stop") and "uses 1.3G" in a.reason and "CUDA context" in a.reason
    note = adm.memory_note(Lease("x", gpus=(GPU,), gpu_memory=256 * 1024**2))
    assert note is not None and note.startswith("gpu_memory 256M is small: NVML counts each process's CUDA context")
    assert adm.memory_note(Lease("x", gpus=(GPU,), gpu_memory=4 * G)) is None


# -- item 11: health ----------------------------------------------------------------------------------


def test_drains_found_by_a_decision_are_handed_to_the_engine_once() -> None:
    adm, fake = _adm()
    adm.push("1/a", ResourceRequest(gpu_memory=4 * G), "p", 0, 60.0, 60.0)
    fake.inject_xid(GPU, 79)
    d = adm.decide(0.0, parallelism=8, max_parallel={})
    assert d.start == () and d.reason(adm.queue, "1/a").kind == "drained"
    assert adm.take_new_drains() == {GPU: "XID 79 reported by the driver"}
    assert adm.take_new_drains() == {}


def test_a_pending_row_remap_drains_the_gpu() -> None:
    adm, fake = _adm()
    fake.set_remapped(GPU, pending=True)
    adm.push("1/a", ResourceRequest(gpus=1), "p", 0, 60.0, 60.0)
    adm.decide(0.0, parallelism=8, max_parallel={})
    assert adm.take_new_drains() == {GPU: "a memory row remap is pending: the GPU needs a reset"}


def test_xid_68_is_the_applications_fault() -> None:
    adm, fake = _adm()
    adm.push("1/a", ResourceRequest(gpus=1), "p", 0, 60.0, 60.0)
    fake.inject_xid(GPU, 68)
    assert len(_start(adm, 1)) == 1 and adm.drained == {}


def test_restored_drains_only_name_gpus_this_daemon_has(tmp_path) -> None:
    from edgeorch.resources.admission import boot_time

    adm, _ = _adm()
    rows = [{"data": {"uuid": GPU, "reason": "XID 79 reported by the driver"}},
            {"data": {"uuid": "GPU-elsewhere", "reason": "lost"}}, {"data": {}}]
    assert adm.restore_drains(rows) == {GPU: "XID 79 reported by the driver"}
    assert adm.drained == {GPU: "XID 79 reported by the driver"} and adm.take_new_drains() == {}
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc/stat").write_text("cpu  1 2 3\nbtime 1700000000\nprocesses 5\n")
    assert boot_time(tmp_path) == 1700000000.0
    assert boot_time(tmp_path / "none") == 0.0


def test_a_process_list_that_cannot_be_trusted_is_said_once_per_attempt() -> None:
    from edgeorch.resources.gpus.nvml import NvmlBackend
    from edgeorch.resources.gpus.reader import GpuReader

    from .nvml_stub import StubNvml

    stub = StubNvml()
    stub.gpus[0].procs = [(4242, 2 * G), (0, 4242), (4294967295, 4294967295)]  # an early-R535 layout mismatch
    backend = NvmlBackend(stub)
    inv = Inventory(cpus=(CpuCore(0, 0),), memory_available=8 * G, gpus=backend.devices())
    adm = Admission(ResourcesConfig(), inv, backend, "nvml", CgroupSupport(False, None, "test"),
                    reader=GpuReader(backend, [d.uuid for d in inv.gpus]))
    adm.grant(3, 1, "t", Lease("1/t", gpus=("GPU-0",), gpu_memory=G), "p", 60.0, 0.0)
    actions, _ = adm.watch({3: [4242]})
    assert [(a.action, a.why) for _, a in actions] == [("warn", "unlisted")]
    assert "impossible PIDs (0, 4294967295) on GPU-0" in actions[0][1].reason
    assert adm.watch({3: [4242]}) == ([], {})


def test_visible_devices_accepts_uuid_or_index_only(tmp_path) -> None:
    import pytest

    from edgeorch.config import load_config
    from edgeorch.errors import ConfigError

    cfg = tmp_path / "config.toml"
    cfg.write_text('[resources]\nvisible_devices = "index"\n')
    assert load_config(cfg).resources.visible_devices == "index"
    cfg.write_text('[resources]\nvisible_devices = "slot"\n')
    with pytest.raises(ConfigError) as e:
        load_config(cfg)
    assert "resources.visible_devices" in e.value.render() and "slot" in e.value.render()
    adm, _ = _adm()
    assert adm.index_of is None


# -- item 5: "GPUs here but NVML broken" is loud, and GPU pipelines are refused quoting it -------------------------


def test_gpus_here_but_nvml_broken_is_a_warning_a_report_flag_and_the_refusals_reason(monkeypatch, caplog) -> None:
    import logging

    from edgeorch.resources import admission
    from edgeorch.resources.gpus.detect import Detected

    why = ("1 NVIDIA GPU on the PCI bus (0000:17:00.0) but NVML cannot start (NVML: nvmlInit: RM has detected an "
           "NVML/RM version mismatch.): running CPU-only: GPU pipelines are refused until this is fixed")
    monkeypatch.setattr(admission, "detect_gpus", lambda cfg: Detected(None, why, True))
    with caplog.at_level(logging.INFO, logger="edgeorch.resources"):
        adm = Admission.open(ResourcesConfig(), prepare_cgroup=False, threaded=False)
    try:
        assert [(r.levelno, r.getMessage()) for r in caplog.records] == [(logging.WARNING, f"GPUs: {why}")]
        assert adm.report(0.0, parallelism=1, max_parallel={})["gpu_backend_broken"] is True
        assert adm.never(ResourceRequest(gpus=1)) == f"asks for a GPU but this daemon has none ({why})"
    finally:
        adm.close()
    caplog.clear()
    monkeypatch.setattr(admission, "detect_gpus", lambda cfg: Detected(None, "no NVML library: running CPU-only"))
    with caplog.at_level(logging.INFO, logger="edgeorch.resources"):
        Admission.open(ResourcesConfig(), prepare_cgroup=False, threaded=False).close()
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [(logging.INFO,
                                                                      "GPUs: no NVML library: running CPU-only")]
