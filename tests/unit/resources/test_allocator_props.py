"""Allocator properties (hypothesis): whatever the sequence of grants and releases, nothing is oversubscribed."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from edgeorch.resources.allocator import Capacity
from edgeorch.resources.model import Lease, ResourceRequest

from .conftest import G, machine

requests = st.builds(
    ResourceRequest,
    cpus=st.integers(0, 5),
    memory=st.sampled_from([0, G, 4 * G, 16 * G]),
    gpus=st.sampled_from([0, 0, 0, 1, 2]),
    gpu_memory=st.sampled_from([0, 0, 5 * G, 20 * G, 50 * G]),
    pool=st.sampled_from([None, None, "db"]),
)
ops = st.lists(st.tuples(st.booleans(), requests), min_size=1, max_size=40)


def check_invariants(leases: list[Lease], live_free: dict[str, int], granted_share: dict[str, int]) -> None:
    inv = machine(cores=8, gpus=3, gpu_mem=40 * G, memory=32 * G)
    cores = [c for lease in leases for c in lease.cpus]
    assert len(cores) == len(set(cores)), "a core leased twice"
    assert set(cores) <= {c.id for c in inv.cpus}
    assert sum(lease.memory for lease in leases) <= inv.memory_available
    assert sum(1 for lease in leases if lease.pool == "db") <= 2
    for g in inv.gpus:
        holders = [lease for lease in leases if g.uuid in lease.gpus]
        exclusive = [lease for lease in holders if lease.gpu_exclusive]
        if exclusive:
            assert len(holders) == 1, "a whole GPU shared"
        shares = sum(lease.gpu_memory for lease in holders if not lease.gpu_exclusive)
        assert shares <= g.memory_total
        assert granted_share.get(g.uuid, 0) <= live_free[g.uuid]


@settings(max_examples=60, deadline=None)
@given(ops=ops, external=st.lists(st.sampled_from([0, 3 * G, 15 * G, 39 * G]), min_size=3, max_size=3))
def test_random_grants_and_releases_never_oversubscribe(ops: list[tuple[bool, ResourceRequest]],
                                                        external: list[int]) -> None:
    inv = machine(cores=8, gpus=3, gpu_mem=40 * G, memory=32 * G)
    live_free = {g.uuid: g.memory_total - e for g, e in zip(inv.gpus, external)}
    cap = Capacity(inv, gpu_free=live_free, pools={"db": 2})
    leases: list[Lease] = []
    for i, (release, req) in enumerate(ops):
        if release and leases:
            cap.release(leases.pop(0))
            continue
        got = cap.fit(req, f"t{i}")
        if isinstance(got, Lease):
            assert len(got.cpus) == req.cpus
            assert got.pool == req.pool and got.memory == req.memory
            assert (len(got.gpus) == req.gpus) if req.gpus else (len(got.gpus) == (1 if req.gpu_memory else 0))
            cap.take(got)
            leases.append(got)
        # Shares granted from one snapshot never exceed the live free memory it
        # saw, net of the shares released since (those were granted from it too).
        check_invariants(leases, live_free, held_shares(leases))


def held_shares(leases: list[Lease]) -> dict[str, int]:
    held: dict[str, int] = {}
    for lease in leases:
        if not lease.gpu_exclusive:
            for u in lease.gpus:
                held[u] = held.get(u, 0) + lease.gpu_memory
    return held


@settings(max_examples=40, deadline=None)
@given(reqs=st.lists(requests, min_size=1, max_size=20))
def test_fit_does_not_change_capacity(reqs: list[ResourceRequest]) -> None:
    cap = Capacity(machine(), pools={"db": 2})
    snap = (set(cap.free_cores), cap.mem_free, dict(cap.pool_free),
            {u: (g.leased, g.shares, g.exclusive, g.slack) for u, g in cap.gpus.items()})
    for r in reqs:
        cap.fit(r, "x")
    assert snap == (set(cap.free_cores), cap.mem_free, dict(cap.pool_free),
                    {u: (g.leased, g.shares, g.exclusive, g.slack) for u, g in cap.gpus.items()})
