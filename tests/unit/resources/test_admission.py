"""The engine's resources object (Admission) without processes: requests, decisions, reasons, watcher, report."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeorch.config import ResourcesConfig
from edgeorch.model import TaskSpec
from edgeorch.resources import CpuCore, FakeBackend, Inventory, Lease, ResourceRequest
from edgeorch.resources.admission import EMPTY, Admission, holds_anything, request_of
from edgeorch.resources.gpus.fake import default_reserved
from edgeorch.resources.memory import CgroupSupport

GPU = "GPU-11111111-2222-3333-4444-555555555555"
G = 1024**3


def _adm(gpu: bool = True, policy: str = "stop", pools: dict[str, int] | None = None) -> Admission:
    backend = FakeBackend({"gpu": [{"uuid": GPU, "name": "NVIDIA A100", "memory": "10G"}]}) if gpu else None
    inv = Inventory(cpus=(CpuCore(0, 0), CpuCore(1, 0)), memory_available=8 * G,
                    gpus=backend.devices() if backend else ())
    cfg = ResourcesConfig(gpu_memory_policy=policy, pools=pools or {})
    adm = Admission(cfg, inv, backend, "fake: 1 GPU device" if gpu else "no NVML library: running CPU-only",
                    CgroupSupport(False, None, "memory limits not enforced: test"))
    adm._own_cpus = 2
    return adm


def test_request_of_plain_spec_is_the_shared_empty_request():
    assert request_of(TaskSpec("t", command="true")) is EMPTY
    req = request_of(TaskSpec("t", command="true", cpus=2, memory=G, gpu_memory=4 * G, gpu_model="A100", pool="db"))
    assert req == ResourceRequest(cpus=2, memory=G, gpu_memory=4 * G, gpu_model="A100", pool="db")


def test_holds_anything():
    assert not holds_anything(Lease("x", affinity=(0, 1)))
    assert holds_anything(Lease("x", cpus=(0,))) and holds_anything(Lease("x", pool="db"))


def test_never_satisfiable_on_a_cpu_only_daemon_quotes_the_backend_message():
    adm = _adm(gpu=False)

    class P:
        tasks = {"train": TaskSpec("train", command="true", gpus=1),  # noqa: RUF012 - a Pipeline stand-in
                 "prep": TaskSpec("prep", command="true")}

    why = "asks for a GPU but this daemon has none (no NVML library: running CPU-only)"
    assert adm.check_pipeline(P) == [("train", why)]


def test_decide_starts_plain_tasks_up_to_parallelism_and_gives_reasons():
    adm = _adm()
    for i in range(3):
        adm.push(f"1/t{i}", EMPTY, "p", 0, 60.0, 60.0)
    adm.push("1/big", ResourceRequest(cpus=2), "p", 0, 10.0, 60.0)
    d = adm.decide(0.0, parallelism=2, max_parallel={})
    assert [t.id for t, _ in d.start] == ["1/t0", "1/t1"]
    assert all(not holds_anything(lease) for _, lease in d.start)
    assert adm.queued_live == 0  # no memory/GPU request queued: no live readings were taken


def test_max_parallel_counts_running_attempts_of_the_pipeline():
    adm = _adm()
    adm.grant(1, 1, "a", Lease("1/a", affinity=(0, 1)), "p", 60.0, 0.0)
    adm.push("1/b", EMPTY, "p", 0, 60.0, 60.0)
    d = adm.decide(0.0, parallelism=4, max_parallel={"p": 1})
    assert d.start == () and d.reason(adm.queue, "1/b").kind == "max_parallel"
    adm.release(1)
    assert [t.id for t, _ in adm.decide(0.0, parallelism=4, max_parallel={"p": 1}).start] == ["1/b"]


def test_shares_fill_the_gpu_then_wait_for_gpu_memory():
    adm = _adm()
    for i in range(3):
        adm.push(f"1/s{i}", ResourceRequest(gpu_memory=4 * G), "p", 0, 60.0, 60.0)
    d = adm.decide(0.0, parallelism=8, max_parallel={})
    assert len(d.start) == 2
    for n, (t, lease) in enumerate(d.start):
        adm.remove(t.id)
        adm.grant(n, 1, t.id, lease, "p", 60.0, 0.0)
    rep = adm.report(0.0, parallelism=8, max_parallel={})
    (q,) = rep["queue"]
    assert q["reason_kind"] == "gpu_memory" and len(rep["leases"]) == 2
    # Nothing runs yet: free is the total less the driver's reservation.
    assert rep["gpus"][0]["uuid"] == GPU and rep["gpus"][0]["memory_free"] == 10 * G - default_reserved(10 * G)


def test_a_report_without_its_queue_takes_no_decision_and_is_the_rest_of_the_report(monkeypatch):
    """What ``status`` asks for: counts, not every waiting task's reason (a decision and a sort of the queue)."""
    import edgeorch.resources.admission as admission

    adm = _adm()
    for i in range(3):
        adm.push(f"1/s{i}", ResourceRequest(gpu_memory=4 * G), "p", 0, 60.0, 60.0)
    full = adm.report(0.0, parallelism=8, max_parallel={})
    monkeypatch.setattr(admission, "decide", lambda *a, **k: pytest.fail("a decision for a report without a queue"))
    # The machine's memory is read live at each report: held still, or the two reports differ by what others did.
    monkeypatch.setattr(admission, "available_memory", lambda: full["memory"]["available_now"])
    light = adm.report(0.0, parallelism=8, max_parallel={}, queue=False)
    assert light["queue"] is None and len(full["queue"]) == 3
    assert list(light) == list(full) and {k: v for k, v in light.items() if k != "queue"} == \
        {k: v for k, v in full.items() if k != "queue"}


def test_shared_affinity_only_restricts_when_cores_are_taken():
    adm = _adm()
    assert adm.shared_affinity(Lease("x", affinity=(0, 1))) is None
    assert adm.shared_affinity(Lease("x", affinity=(1,))) == [1]
    assert adm.shared_affinity(Lease("x", cpus=(0,), affinity=(0,))) == [0]


def test_memory_not_enforced_is_said():
    adm = _adm()
    assert adm.memory_cgroup(7, Lease("x", memory=G)) == (None, None)
    assert adm.memory_note(Lease("x", memory=G)) == ("memory 1.0G admission-checked, not enforced "
                                                     "(memory limits not enforced: test)")
    assert adm.memory_note(Lease("x", cpus=(0,))) is None
    # A container's bound is its runtime's (--memory): it was said "not enforced" while it OOM-killed at it.
    assert adm.memory_note(Lease("x", memory=G), container="docker") == ("memory 1.0G enforced by the container runtime "
                                                                     "(--memory)")


def test_memory_cgroup_where_delegated(tmp_path: Path):
    adm = _adm()
    adm.cgroup = CgroupSupport(True, tmp_path, "enforced")
    cg, failed = adm.memory_cgroup(7, Lease("x", memory=G))
    assert failed is None and adm.memory_note(Lease("x", memory=G)) == "memory 1.0G enforced by cgroup memory.max"
    assert cg == str(tmp_path / "task-7") and (tmp_path / "task-7" / "memory.max").read_text() == f"{G}\n"
    adm.grant(7, 1, "t", Lease("x", memory=G), "p", 1.0, 0.0, cg)
    # A plain folder (unlike cgroupfs) cannot be rmdir-ed with files in it: release logs and goes on.
    assert adm.release(7) is not None and 7 not in adm.held


def test_watch_warns_once_and_drains_on_health_events():
    adm = _adm(policy="warn")
    lease = Lease("1/t", gpus=(GPU,), gpu_memory=2 * G)
    adm.grant(5, 1, "t", lease, "p", 60.0, 0.0)
    assert isinstance(adm.backend, FakeBackend)
    adm.backend.add_process(GPU, 4242, 3 * G)
    actions, drains = adm.watch({5: [4242]})
    assert [(aid, a.action) for aid, a in actions] == [(5, "warn")] and drains == {}
    # Share accounting counts a lease's use up to its budget (the excess is nobody's to count on).
    assert adm.reader is not None and adm.leased_use(adm.reader.latest()) == {GPU: 2 * G}
    adm.backend.make_lost(GPU)
    actions, drains = adm.watch({5: [4242]})
    assert actions == [] and drains == {GPU: "GPU has fallen off the bus"}


def test_durations_seeded_in_order():
    adm = _adm()
    adm.seed_durations([("p", "a", 10.0), ("p", "a", 20.0)])
    assert adm.durations.predict("p/a") == 0.3 * 20 + 0.7 * 10
    assert adm.durations.predict("p/never") == 60.0


def test_a_rootless_podman_that_ignores_limits_is_said_not_to_enforce_them(tmp_path: Path):
    """A tester's find: rootless podman on cgroup v1 ignored `--memory` ("Resource limits are not supported and
    ignored on cgroups V1 rootless systems", in the task's log) while the start event said "enforced by the
    container runtime"; the task used three times its bound."""
    from edgeorch.resources.memory import rootless_limits_problem

    v1 = tmp_path / "v1"
    (v1 / "sys/fs/cgroup/memory").mkdir(parents=True)
    assert rootless_limits_problem("podman", 1001, v1) == "rootless podman ignores resource limits on cgroup v1"
    assert rootless_limits_problem("podman", 0, v1) is None  # root's podman applies them
    assert rootless_limits_problem("docker", 1001, v1) is None  # Docker's daemon (root) applies them
    v2 = tmp_path / "v2"
    service = v2 / "sys/fs/cgroup/user.slice/user-1001.slice/user@1001.service"
    service.mkdir(parents=True)
    (v2 / "sys/fs/cgroup/cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    assert rootless_limits_problem("podman", 1001, v2) is None  # no delegation file to judge by: not said
    (service / "cgroup.controllers").write_text("cpu pids\n")
    assert "not delegated to user 1001" in (rootless_limits_problem("podman", 1001, v2) or "")
    (service / "cgroup.controllers").write_text("cpu memory pids\n")
    assert rootless_limits_problem("podman", 1001, v2) is None
