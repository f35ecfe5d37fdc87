"""Allocator examples: NUMA preference, shares, live memory, drains, unsatisfiable requests."""

from __future__ import annotations

from edgeorch.resources.allocator import Capacity, allocate, never_satisfiable
from edgeorch.resources.model import Inventory, Lease, ResourceRequest, WaitReason

from .conftest import G, machine


def lease(x: Lease | WaitReason) -> Lease:
    assert isinstance(x, Lease), x
    return x


def test_cpus_are_specific_cores_on_one_node() -> None:
    got = lease(allocate(ResourceRequest(cpus=3), machine(), holder="a"))
    assert len(got.cpus) == 3 and got.affinity == got.cpus
    assert len({c // 4 for c in got.cpus}) == 1


def test_gpu_task_prefers_cores_near_its_gpu() -> None:
    inv = machine()
    taken = Lease("x", cpus=(4, 5))  # node 1 partly busy
    got = lease(allocate(ResourceRequest(cpus=2, gpus=1), inv, [Lease("g0", gpus=("GPU-0",), gpu_exclusive=True)],
                         holder="a"))
    assert got.gpus == ("GPU-1",) and set(got.cpus) <= {4, 5, 6, 7}
    got2 = lease(allocate(ResourceRequest(cpus=2, gpus=1), inv, [taken, Lease("g0", gpus=("GPU-0",),
                                                                             gpu_exclusive=True)], holder="b"))
    assert set(got2.cpus) == {6, 7}


def test_task_without_cpus_shares_the_unleased_cores() -> None:
    got = lease(allocate(ResourceRequest(), machine(), [Lease("x", cpus=(0, 1), affinity=(0, 1))], holder="a"))
    assert got.cpus == () and got.affinity == (2, 3, 4, 5, 6, 7)


def test_shares_pack_onto_one_gpu_best_fit() -> None:
    inv = machine(gpus=2)
    held = [Lease("t1", gpus=("GPU-1",), gpu_memory=20 * G)]
    got = lease(allocate(ResourceRequest(gpu_memory=20 * G), inv, held, holder="t2"))
    assert got.gpus == ("GPU-1",) and not got.gpu_exclusive


def test_three_20g_trainings_fit_on_one_80g_gpu_the_fourth_waits_for_live_memory() -> None:
    inv = machine(gpus=1)
    req = ResourceRequest(gpu_memory=20 * G)
    cap = Capacity(inv, gpu_free={"GPU-0": 70 * G})  # 10G used by someone outside edgeorch
    for i in range(3):
        cap.take(lease(cap.fit(req, f"t{i}")))
    why = cap.fit(req, "t3")
    assert isinstance(why, WaitReason) and why.kind == "gpu_memory"


def test_other_users_of_the_gpu_count() -> None:
    inv = machine(gpus=1)
    why = allocate(ResourceRequest(gpu_memory=20 * G), inv, gpu_free={"GPU-0": 15 * G})
    assert isinstance(why, WaitReason) and why.kind == "gpu_memory"


def test_whole_gpu_is_never_shared() -> None:
    inv = machine(gpus=1)
    assert isinstance(allocate(ResourceRequest(gpus=1), inv, [Lease("s", gpus=("GPU-0",), gpu_memory=G)]), WaitReason)
    assert isinstance(allocate(ResourceRequest(gpu_memory=G), inv, [Lease("x", gpus=("GPU-0",), gpu_exclusive=True)]),
                      WaitReason)


def test_drained_gpu_gets_no_lease_and_the_wait_says_why() -> None:
    why = allocate(ResourceRequest(gpus=1), machine(gpus=1), drained={"GPU-0": "XID 79 reported by the driver"})
    assert isinstance(why, WaitReason) and why.kind == "drained" and "XID 79" in why.message


def test_gpu_model_constraint() -> None:
    inv = machine(gpus=2)
    assert lease(allocate(ResourceRequest(gpus=1, gpu_model="a100"), inv)).gpus == ("GPU-0",)
    assert "matches no GPU" in (never_satisfiable(ResourceRequest(gpus=1, gpu_model="H100"), inv) or "")


def test_memory_is_admission_checked_against_leases() -> None:
    inv = machine(memory=16 * G)
    why = allocate(ResourceRequest(memory=10 * G), inv, [Lease("x", memory=8 * G)])
    assert isinstance(why, WaitReason) and why.kind == "memory"


def test_pool_slots() -> None:
    inv = machine()
    held = [Lease("a", pool="db"), Lease("b", pool="db")]
    assert isinstance(allocate(ResourceRequest(pool="db"), inv, held, pools={"db": 2}), WaitReason)
    assert lease(allocate(ResourceRequest(pool="db"), inv, held[:1], pools={"db": 2})).pool == "db"


def test_never_satisfiable_requests_say_why() -> None:
    inv = machine(cores=8, gpus=2, gpu_mem=24 * G)
    cases = {
        ResourceRequest(cpus=9): "may use only 8",
        ResourceRequest(gpu_memory=40 * G): "largest GPU has 24.0G",
        ResourceRequest(gpus=3): "only 2 fitting GPUs",
        ResourceRequest(pool="gpu"): "not configured",
    }
    for req, text in cases.items():
        assert text in (never_satisfiable(req, inv, {"db": 1}) or ""), req
    assert never_satisfiable(ResourceRequest(cpus=8, gpus=2, gpu_memory=24 * G), inv) is None


def test_gpu_request_on_cpu_only_daemon_quotes_why() -> None:
    msg = never_satisfiable(ResourceRequest(gpus=1), Inventory(machine().cpus, 0, ()),
                            cpu_only_reason="no NVML library: running CPU-only")
    assert msg == "asks for a GPU but this daemon has none (no NVML library: running CPU-only)"
    assert isinstance(allocate(ResourceRequest(gpus=1), Inventory(machine().cpus)), WaitReason)


def test_release_gives_everything_back() -> None:
    inv = machine()
    cap = Capacity(inv, pools={"db": 1})
    before = (set(cap.free_cores), cap.mem_free, dict(cap.pool_free))
    got = lease(cap.fit(ResourceRequest(cpus=2, memory=G, gpus=1, pool="db"), "a"))
    cap.take(got)
    cap.release(got)
    assert (set(cap.free_cores), cap.mem_free, dict(cap.pool_free)) == before
    assert cap.gpus["GPU-0"].whole_free()


def test_memory_taken_by_others_counts_when_live_reading_given() -> None:
    inv = machine(memory=64 * G)
    why = allocate(ResourceRequest(memory=8 * G), inv, host_available=6 * G)
    assert isinstance(why, WaitReason) and "available now" in why.message
    cap = Capacity(inv, host_available=10 * G)
    cap.take(lease(cap.fit(ResourceRequest(memory=8 * G), "a")))
    assert isinstance(cap.fit(ResourceRequest(memory=4 * G), "b"), WaitReason)


def test_summary_is_json_ready() -> None:
    import json

    cap = Capacity(machine(cores=4, gpus=1), [Lease("a", cpus=(0,), gpus=("GPU-0",), gpu_memory=G)],
                   drained={"GPU-0": "XID 79"})
    s = cap.summary()
    json.dumps(s)
    assert s["cpus_free"] == "1-3"
    gpu = s["gpus"][0]  # type: ignore[index]
    assert (gpu["shares"], gpu["drained"], gpu["share_room"]) == (1, "XID 79", 0)


def test_a_memory_refusal_with_a_model_names_the_largest_matching_gpu_not_the_machines() -> None:
    """`gpu_memory = "9.6G"`, `gpu_model = "A100"` on a 10G A100 and a 16G T4 was refused "on the largest GPU
    (10.0G ...)": the largest GPU is the T4."""
    from dataclasses import replace as _replace

    inv = machine(gpus=2, gpu_mem=10 * G)
    t4 = _replace(inv.gpus[1], name="Tesla T4", memory_total=16 * G)
    inv = _replace(inv, gpus=(inv.gpus[0], t4))
    why = never_satisfiable(ResourceRequest(gpu_memory=12 * G, gpu_model="A100"), inv, {})
    assert why is not None and "the largest GPU matching gpu_model 'A100' (NVIDIA A100-SXM4-80GB)" in why, why
    assert never_satisfiable(ResourceRequest(gpu_memory=12 * G), inv, {}) is None  # the T4 can serve it
