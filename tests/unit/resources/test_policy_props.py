"""Policy properties (hypothesis): decisions never oversubscribe; a big task is never starved."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from edgeorch.resources.allocator import Capacity
from edgeorch.resources.model import Lease, ResourceRequest
from edgeorch.resources.policy import ReadyQueue, ReadyTask, Running, decide

from .conftest import G, machine
from .test_allocator_props import requests


@settings(max_examples=40, deadline=None)
@given(reqs=st.lists(st.tuples(requests, st.integers(0, 2), st.floats(1, 100)), min_size=1, max_size=30))
def test_one_decision_never_exceeds_the_inventory(reqs) -> None:  # type: ignore[no-untyped-def]
    inv = machine(cores=8, gpus=3, gpu_mem=40 * G, memory=32 * G)
    q = ReadyQueue(ReadyTask(f"t{i}", r, "p", prio, 0.0, dur, i) for i, (r, prio, dur) in enumerate(reqs))
    d = decide(q, inv, pools={"db": 2}, gpu_free={g.uuid: 30 * G for g in inv.gpus})
    leases = [lease for _, lease in d.start]
    cores = [c for lease in leases for c in lease.cpus]
    assert len(cores) == len(set(cores))
    assert sum(lease.memory for lease in leases) <= inv.memory_available
    for g in inv.gpus:
        holders = [lease for lease in leases if g.uuid in lease.gpus]
        if any(lease.gpu_exclusive for lease in holders):
            assert len(holders) == 1
        assert sum(lease.gpu_memory for lease in holders if not lease.gpu_exclusive) <= 30 * G
    ids = {t.id for t, _ in d.start} | {t.id for t, _ in d.unsatisfiable}
    assert len(ids) == len(d.start) + len(d.unsatisfiable)


@settings(max_examples=25, deadline=None)
@given(
    small=st.lists(st.tuples(st.integers(1, 4), st.integers(1, 6), st.booleans()), min_size=5, max_size=12),
    arrivals=st.integers(1, 3),
)
def test_big_gpu_task_is_served_despite_a_stream_of_small_tasks(small, arrivals) -> None:  # type: ignore[no-untyped-def]
    """Unit time steps; every step 1-3 small tasks (some with a GPU share) arrive.

    The big task asks for every core and both GPUs, on a busy machine. With
    predictions that match reality it must start within a bound set by the
    longest small task, however many small tasks keep coming (no starvation).
    """
    inv = machine(cores=8, gpus=2, gpu_mem=40 * G)
    q = ReadyQueue()
    seq = 0
    now = 0.0
    running: list[tuple[Running, float]] = []
    big = ReadyTask("big", ResourceRequest(cpus=8, gpus=2), "p", 0, 1000.0, 5.0, seq)
    # A few small ones first, so the machine is busy when the big one arrives.
    for cpus, dur, gpu in small[:3]:
        seq += 1
        q.add(ReadyTask(f"s{seq}", ResourceRequest(cpus=cpus, gpu_memory=5 * G if gpu else 0),
                        "p", 0, float(dur), float(dur), seq))
    d0 = decide(q, inv, [r for r, _ in running], now=now)
    for t, lease in d0.start:
        q.remove(t.id)
        running.append((Running(lease, "p", now + t.duration), now + t.duration))
    q.add(big)
    bound = max(d for _, d, _ in small) + 2
    for step in range(1, 200):
        now = float(step)
        running = [(r, end) for r, end in running if end > now]
        for i in range(arrivals):
            cpus, dur, gpu = small[(step + i) % len(small)]
            seq += 1
            q.add(ReadyTask(f"s{seq}", ResourceRequest(cpus=cpus, gpu_memory=5 * G if gpu else 0),
                            "p", 0, float(dur), float(dur), seq))
        d = decide(q, inv, [r for r, _ in running], now=now)
        for t, lease in d.start:
            q.remove(t.id)
            running.append((Running(lease, "p", now + t.duration), now + t.duration))
        held = [r.lease for r, _ in running]
        cores = [c for lease in held for c in lease.cpus]
        assert len(cores) == len(set(cores)) <= 8
        for g in inv.gpus:
            on = [lease for lease in held if g.uuid in lease.gpus]
            assert not any(lease.gpu_exclusive for lease in on) or len(on) == 1
        if "big" not in q:
            assert step <= bound, f"big task started at step {step}, bound {bound}"
            return
    raise AssertionError("the big task never started")



@settings(max_examples=40, deadline=None)
@given(
    held=st.lists(st.tuples(st.integers(1, 4), st.booleans(), st.floats(1, 200)), min_size=1, max_size=6),
    reqs=st.lists(st.tuples(requests, st.floats(1, 300)), min_size=1, max_size=25),
)
def test_backfill_never_delays_the_reserved_head(held, reqs) -> None:  # type: ignore[no-untyped-def]
    """Whatever starts now, the reserved head still fits at its shadow time."""
    inv = machine(cores=8, gpus=3, gpu_mem=40 * G, memory=32 * G)
    cap = Capacity(inv)
    running = []
    for i, (cpus, gpu, end) in enumerate(held):
        got = cap.fit(ResourceRequest(cpus=cpus, gpus=1 if gpu else 0), f"r{i}")
        if isinstance(got, Lease):
            cap.take(got)
            running.append(Running(got, "p", end))
    q = ReadyQueue(ReadyTask(f"t{i}", r, "p", 0, 0.0, dur, i) for i, (r, dur) in enumerate(reqs))
    d = decide(q, inv, running, now=0.0, pools={"db": 2})
    if d.reserved is None:
        return
    assert d.shadow_time is not None
    later = [r.lease for r in running if r.expected_end > d.shadow_time]
    later += [lease for t, lease in d.start if t.duration > d.shadow_time]
    at_shadow = Capacity(inv, later, pools={"db": 2})
    assert at_shadow.check(d.reserved.request) is None
