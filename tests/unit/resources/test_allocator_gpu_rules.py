"""Allocation rules CUDA and NVML impose (issue 18): MIG, compute instances, compute modes, reserved memory."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from edgeorch.resources.allocator import Capacity, allocate, never_satisfiable
from edgeorch.resources.child import lease_env
from edgeorch.resources.gpus.fake import FakeBackend
from edgeorch.resources.model import Inventory, Lease, ResourceRequest, WaitReason

from .conftest import G, machine

MIXED = {"gpu": [
    {"uuid": "GPU-a", "memory": "80G", "numa_node": 0},
    {"uuid": "GPU-b", "memory": "80G", "numa_node": 1},
    {"uuid": "GPU-m", "memory": "80G", "mig": [
        {"uuid": "MIG-1", "memory": "40G", "gi": 1}, {"uuid": "MIG-2", "memory": "40G", "gi": 1},  # two CIs, one GI
        {"uuid": "MIG-3", "memory": "20G", "gi": 2}, {"uuid": "MIG-4", "memory": "10G", "gi": 3}]},
]}


def _inv(fake: FakeBackend) -> Inventory:
    return Inventory(machine(cores=8).cpus, 64 * G, fake.devices())


def lease(x: Lease | WaitReason) -> Lease:
    assert isinstance(x, Lease), x
    return x


# -- item 4: MIG as CUDA uses it ------------------------------------------------------------------


def test_two_gpus_are_never_two_mig_devices_or_a_mix() -> None:
    fake = FakeBackend(MIXED)
    inv = _inv(fake)
    cap = Capacity(inv)
    cap.take(lease(cap.fit(ResourceRequest(gpus=1), "one")))   # takes a whole GPU (index order)
    why = cap.fit(ResourceRequest(gpus=2), "two")
    assert isinstance(why, WaitReason) and why.kind == "gpus"  # only one whole GPU left; MIG does not count
    got = lease(allocate(ResourceRequest(gpus=2), inv))
    assert set(got.gpus) == {"GPU-a", "GPU-b"}


def test_more_gpus_than_whole_gpus_is_never_satisfiable_and_says_why_mig_does_not_count() -> None:
    inv = _inv(FakeBackend(MIXED))
    why = never_satisfiable(ResourceRequest(gpus=3), inv)
    assert why == ("asks for 3 GPUs but only 2 fitting GPUs exist (MIG devices do not count: a CUDA process can "
                   "use only one MIG device, and no whole GPU beside it)")
    assert never_satisfiable(ResourceRequest(gpus=1, gpu_memory=20 * G), inv) is None


def test_compute_instances_of_one_gpu_instance_share_its_memory() -> None:
    fake = FakeBackend({"gpu": [{"uuid": "GPU-m", "memory": "80G", "mig": [
        {"uuid": "MIG-1", "memory": "40G", "gi": 1}, {"uuid": "MIG-2", "memory": "40G", "gi": 1}]}]})
    inv = Inventory(machine(cores=8).cpus, 64 * G, fake.devices())
    free = {d.uuid: fake.free_memory(d.uuid) for d in inv.gpus}
    cap = Capacity(inv, gpu_free=free)
    a = lease(cap.fit(ResourceRequest(gpu_memory=30 * G), "a"))
    cap.take(a)
    why = cap.fit(ResourceRequest(gpu_memory=20 * G), "b")  # the sibling instance has the same 40G, now 10G left
    assert isinstance(why, WaitReason) and why.kind == "gpu_memory"
    cap.release(a)
    w = lease(cap.fit(ResourceRequest(gpus=1), "w"))
    cap.take(w)
    # A whole lease on one compute instance holds the instance's memory: its sibling gets nothing.
    assert isinstance(cap.fit(ResourceRequest(gpu_memory=G), "c"), WaitReason)
    assert isinstance(cap.fit(ResourceRequest(gpus=1), "d"), WaitReason)


def test_a_fake_table_rejects_compute_instances_with_different_memory() -> None:
    import pytest

    from edgeorch.resources.model import ResourceError

    with pytest.raises(ResourceError) as e:
        FakeBackend({"gpu": [{"uuid": "GPU-m", "memory": "80G", "mig": [
            {"uuid": "MIG-1", "memory": "40G", "gi": 1}, {"uuid": "MIG-2", "memory": "20G", "gi": 1}]}]})
    assert e.value.field == "gpu[0].mig[1].memory"


requests = st.builds(ResourceRequest, gpus=st.sampled_from([0, 1, 2, 3]),
                     gpu_memory=st.sampled_from([0, 5 * G, 15 * G, 35 * G]))


@settings(max_examples=80, deadline=None)
@given(reqs=st.lists(requests, min_size=1, max_size=12))
def test_cuda_sees_exactly_the_leased_devices(reqs: list[ResourceRequest]) -> None:
    fake = FakeBackend(MIXED)
    cap = Capacity(_inv(fake))
    for i, req in enumerate(reqs):
        if not req.wants_gpu:
            continue
        got = cap.fit(req, f"t{i}")
        if isinstance(got, Lease):
            cap.take(got)
            visible = lease_env(got)["CUDA_VISIBLE_DEVICES"]
            assert fake.cuda_sees(visible) == list(got.gpus), (req, got)


def test_cuda_sees_one_mig_device_at_most() -> None:
    fake = FakeBackend(MIXED)
    assert fake.cuda_sees("MIG-1,MIG-3") == ["MIG-1"]
    assert fake.cuda_sees("GPU-a,MIG-3") == ["MIG-3"]
    assert fake.cuda_sees("GPU-a,nope,GPU-b") == ["GPU-a"]
    assert fake.cuda_sees("GPU-m") == []  # a GPU in MIG mode is not usable itself


# -- item 10: compute modes -----------------------------------------------------------------------------


def test_a_prohibited_gpu_is_never_leased() -> None:
    inv = machine(gpus=2)
    inv = replace(inv, gpus=(replace(inv.gpus[0], compute_mode="prohibited"), inv.gpus[1]))
    assert lease(allocate(ResourceRequest(gpus=1), inv)).gpus == ("GPU-1",)
    assert isinstance(allocate(ResourceRequest(gpus=2), inv), WaitReason)
    only = replace(inv, gpus=inv.gpus[:1])
    assert "compute mode PROHIBITED" in (never_satisfiable(ResourceRequest(gpu_memory=G), only) or "")


def test_an_exclusive_process_gpu_takes_one_share_only() -> None:
    inv = machine(gpus=1)
    inv = replace(inv, gpus=(replace(inv.gpus[0], compute_mode="exclusive_process"),))
    cap = Capacity(inv)
    cap.take(lease(cap.fit(ResourceRequest(gpu_memory=G), "a")))
    why = cap.fit(ResourceRequest(gpu_memory=G), "b")
    assert isinstance(why, WaitReason) and why.kind == "gpu_memory"


# -- item 9: reserved memory -------------------------------------------------------------------------------


def test_full_memory_is_compared_with_what_can_ever_be_free() -> None:
    inv = machine(gpus=1, gpu_mem=80 * G)
    reserved = replace(inv, gpus=(replace(inv.gpus[0], memory_reserved=600 * 1024**2),))
    assert never_satisfiable(ResourceRequest(gpus=1, gpu_memory=80 * G), inv) is None  # reservation unknown
    why = never_satisfiable(ResourceRequest(gpus=1, gpu_memory=80 * G), reserved)
    assert why is not None and "at most 79.4G can ever be free" in why
    assert never_satisfiable(ResourceRequest(gpu_memory=79 * G), reserved) is None
