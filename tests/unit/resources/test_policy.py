"""Scheduling policy: predicted durations, critical paths, order, backfill, limits, wait reasons."""

from __future__ import annotations

import math

import pytest

from edgeorch.resources.model import Lease, ResourceError, ResourceRequest
from edgeorch.resources.policy import (
    DurationModel,
    ReadyQueue,
    ReadyTask,
    Running,
    critical_paths,
    decide,
    ewma,
)

from .conftest import G, machine


def test_ewma_first_value_then_weighted() -> None:
    assert ewma(None, 10.0) == 10.0
    assert ewma(10.0, 20.0, alpha=0.5) == 15.0
    assert ewma(10.0, math.nan) == 10.0
    assert ewma(10.0, -1.0) == 10.0


def test_duration_model_default_for_unseen_tasks() -> None:
    m = DurationModel(alpha=0.5, default=42.0)
    assert m.predict("p/t") == 42.0
    m.observe("p/t", 10.0)
    m.observe("p/t", 20.0)
    assert m.predict("p/t") == 15.0


def test_critical_path_is_longest_downstream_chain() -> None:
    deps = {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"]}
    cp = critical_paths(deps, {"a": 1, "b": 10, "c": 2, "d": 1})
    assert cp == {"a": 12, "b": 11, "c": 3, "d": 1}


def test_critical_path_rejects_cycles_and_unknown_deps() -> None:
    with pytest.raises(ResourceError, match="cycle"):
        critical_paths({"a": ["b"], "b": ["a"]}, {})
    with pytest.raises(ResourceError, match="unknown task"):
        critical_paths({"a": ["zz"]}, {})


def rt(i: str, cpus: int = 1, *, gpus: int = 0, gpu_memory: int = 0, pipeline: str = "p", priority: int = 0,
       cp: float = 0.0, duration: float = 10.0, seq: int = 0, pool: str | None = None,
       ready_at: float = 0.0) -> ReadyTask:
    return ReadyTask(i, ResourceRequest(cpus=cpus, gpus=gpus, gpu_memory=gpu_memory, pool=pool), pipeline,
                     priority, cp, duration, seq, ready_at)


def started(d) -> list[str]:  # type: ignore[no-untyped-def]
    return [t.id for t, _ in d.start]


def test_order_is_priority_then_critical_path_then_arrival() -> None:
    q = ReadyQueue([rt("low", seq=0), rt("long", cp=100, seq=1, cpus=2), rt("urgent", priority=5, seq=2, cpus=3),
                    rt("short", cp=1, seq=3, cpus=4)])
    d = decide(q, machine(cores=6))
    assert started(d) == ["urgent", "long", "low"]
    assert d.reserved is not None and d.reserved.id == "short"


def test_queue_add_remove_and_duplicates() -> None:
    q = ReadyQueue([rt("a"), rt("b", seq=1)])
    with pytest.raises(ResourceError):
        q.add(rt("a"))
    assert q.remove("a").id == "a" and len(q) == 1 and "a" not in q
    with pytest.raises(KeyError):
        q.remove("a")


def test_decide_does_not_change_the_queue() -> None:
    q = ReadyQueue([rt(str(i), seq=i) for i in range(5)])
    decide(q, machine())
    assert len(q) == 5


def test_backfill_short_task_but_hold_back_long_one() -> None:
    inv = machine(cores=8, gpus=0)
    running = [Running(Lease("r", cpus=(0, 1, 2, 3)), "p", expected_end=100.0)]
    q = ReadyQueue([
        rt("big", cpus=8, seq=0, priority=1),
        rt("quick", cpus=1, duration=50, seq=1),      # ends at 50 < shadow 100: fine
        rt("slow", cpus=2, duration=500, seq=2),      # fits now, would hold cores past 100
    ])
    d = decide(q, inv, running, now=0.0)
    assert started(d) == ["quick"]
    assert d.reserved is not None and d.reserved.id == "big" and d.shadow_time == 100.0
    why = d.reason(q, "slow")
    assert why is not None and why.kind == "reserved" and "'big'" in why.message
    assert "predicted to start in about 100s" in str(d.reason(q, "big"))  # from now, not a clock reading
    late = decide(q, inv, running, now=130.0)  # the running tasks outlived their predictions
    assert "t=" not in str(late.reason(q, "big")) and "as soon as a running task ends" in str(late.reason(q, "big"))


def test_backfill_long_task_on_resources_the_head_does_not_need() -> None:
    inv = machine(cores=8, gpus=1)
    running = [Running(Lease("r", gpus=("GPU-0",), gpu_exclusive=True), "p", expected_end=100.0)]
    q = ReadyQueue([rt("train", cpus=2, gpus=1, seq=0, priority=1), rt("etl", cpus=4, duration=1e6, seq=1)])
    d = decide(q, inv, running)
    assert started(d) == ["etl"]  # 8 − 4 cores still leave 2 for the training at t=100


def test_max_parallel_per_pipeline_and_parallelism() -> None:
    q = ReadyQueue([rt(f"a{i}", pipeline="a", seq=i) for i in range(4)] + [rt("b0", pipeline="b", seq=9)])
    d = decide(q, machine(), max_parallel={"a": 2})
    assert started(d) == ["a0", "a1", "b0"]
    assert d.reason(q, "a2").kind == "max_parallel"  # type: ignore[union-attr]
    d2 = decide(q, machine(), parallelism=1)
    assert started(d2) == ["a0"] and d2.reason(q, "b0").kind == "parallelism"  # type: ignore[union-attr]


def test_named_pool_limits_concurrency() -> None:
    q = ReadyQueue([rt(f"db{i}", cpus=0, pool="db", seq=i) for i in range(5)])
    d = decide(q, machine(), pools={"db": 2})
    assert len(d.start) == 2
    assert d.reason(q, "db4").kind == "pool"  # type: ignore[union-attr]


def test_unsatisfiable_tasks_are_reported_not_queued_forever() -> None:
    q = ReadyQueue([rt("huge", gpu_memory=200 * G), rt("ok", seq=1)])
    d = decide(q, machine(gpus=1))
    assert [t.id for t, _ in d.unsatisfiable] == ["huge"]
    assert "largest GPU" in d.unsatisfiable[0][1]
    assert started(d) == ["ok"] and d.reserved is None


def test_no_reservation_when_the_head_cannot_be_predicted() -> None:
    # Someone outside edgeorch holds the GPU's memory: reserving would idle the box.
    q = ReadyQueue([rt("train", gpu_memory=60 * G, priority=1), rt("etl", cpus=2, duration=1e6, seq=1)])
    d = decide(q, machine(gpus=1), gpu_free={"GPU-0": 10 * G})
    assert started(d) == ["etl"] and d.reserved is None
    assert d.reason(q, "train").kind == "gpu_memory"  # type: ignore[union-attr]


def test_three_20g_trainings_and_a_dozen_cpu_tasks() -> None:
    """The issue's promise: all fit together, nothing oversubscribed."""
    inv = machine(cores=16, gpus=1, gpu_mem=80 * G)
    tasks = [rt(f"train{i}", cpus=2, gpu_memory=20 * G, seq=i, duration=3600) for i in range(3)]
    tasks += [rt(f"prep{i}", cpus=1, seq=10 + i) for i in range(12)]
    d = decide(ReadyQueue(tasks), inv, gpu_free={"GPU-0": 79 * G})
    leases = [lease for _, lease in d.start]
    assert len(leases) == 13  # 3 trainings (6 cores) + 10 preprocessors: 16 cores
    cores = [c for lease in leases for c in lease.cpus]
    assert len(cores) == len(set(cores)) == 16
    assert sum(lease.gpu_memory for lease in leases) == 60 * G


def test_a_shape_that_does_not_fit_waits_in_every_pipeline_with_the_same_reason() -> None:
    q = ReadyQueue([rt("a", cpus=6, pipeline="x", seq=0), rt("b", cpus=6, pipeline="y", seq=1),
                    rt("c", cpus=1, pipeline="z", seq=2)])
    running = [Running(Lease("r", cpus=(0, 1, 2, 3)), "r", expected_end=50.0)]
    d = decide(q, machine(cores=8), running)
    assert started(d) == ["c"]  # 1 core for up to 10 s: ends before the head's shadow (50 s)
    assert d.reserved is not None and d.reserved.id == "a"
    assert d.reason(q, "b").kind == "cpus"  # type: ignore[union-attr]


def test_unsatisfiable_shape_is_reported_for_every_pipeline() -> None:
    q = ReadyQueue([rt("a", gpus=1, pipeline="x"), rt("b", gpus=1, pipeline="y", seq=1)])
    d = decide(q, machine(gpus=0), cpu_only_reason="no NVML library: running CPU-only")
    assert sorted(t.id for t, _ in d.unsatisfiable) == ["a", "b"]
    assert "no NVML library" in d.unsatisfiable[0][1]


def test_a_shared_task_is_pinned_to_the_cores_left_after_the_whole_decision() -> None:
    """A task that asks for no cores shares the cores nobody leased. Chosen before a task with dedicated cores in
    the same decision, it was pinned to every core that was free then, dedicated ones included (both ran on them)."""
    q = ReadyQueue([rt("shared", cpus=0, seq=0, priority=1), rt("dedicated", cpus=2, seq=1)])
    d = decide(q, machine(cores=4, gpus=0))
    leases = {t.id: lease for t, lease in d.start}
    assert set(leases) == {"shared", "dedicated"}
    assert not set(leases["shared"].affinity) & set(leases["dedicated"].cpus)
    assert set(leases["shared"].affinity) | set(leases["dedicated"].cpus) == {0, 1, 2, 3}


def test_a_task_after_a_shared_one_in_order_never_leases_its_last_unleased_core() -> None:
    """Chosen first (priority 1), the shared task lost the decision's cores to a later task that leased them all,
    and waited: a stream of such tasks starved it. The later task waits instead, for a core it may lease."""
    q = ReadyQueue([rt("shared", cpus=0, seq=0, priority=1), rt("wide", cpus=4, seq=1)])
    d = decide(q, machine(cores=4, gpus=0))
    assert started(d) == ["shared"]
    why = d.reason(q, "wide")
    assert why is not None and why.kind == "cpus" and "kept for the tasks before it" in why.message
    three = decide(ReadyQueue([rt("shared", cpus=0, seq=0, priority=1), rt("three", cpus=3, seq=1)]),
                   machine(cores=4, gpus=0))
    leases = {t.id: lease for t, lease in three.start}  # one core is left unleased: both start
    assert set(leases) == {"shared", "three"} and leases["shared"].affinity == tuple(set(range(4)) - set(leases["three"].cpus))


def test_a_high_priority_shared_task_takes_a_freed_core_before_a_stream_of_one_core_tasks() -> None:
    """The lab's case: two cores, one still leased by a one-core task; a priority-100 task asking for no cores
    and the next priority-0 one-core task are ready when the other core frees."""
    q = ReadyQueue([rt("hi", cpus=0, seq=5, priority=100), rt("c1", cpus=1, seq=6)])
    running = [Running(Lease("r", cpus=(0,)), "r", expected_end=3.0)]
    d = decide(q, machine(cores=2, gpus=0), running)
    assert started(d) == ["hi"]
    assert dict((t.id, lease.affinity) for t, lease in d.start) == {"hi": (1,)}
    assert d.reason(q, "c1").kind == "cpus"  # type: ignore[union-attr]
    alone = decide(ReadyQueue([rt("c1", cpus=1, seq=6)]), machine(cores=2, gpus=0), running)
    assert started(alone) == ["c1"]  # nothing before it asked for no cores: it leases the free core


def test_waiting_counts_like_a_longer_chain_so_a_stream_of_longer_tasks_never_starves_a_short_one() -> None:
    """A 1 s task (sb) waited 42 s behind twenty 2 s tasks (sa) queued one every 1.5 s after it: each later sa had
    the longer critical path, so sb was never first. Now an sa queued more than 1 s after sb (the difference of
    their paths) goes after it; one queued with it still goes first (its chain decides when its run ends)."""
    with_it = rt("sa0", cpus=2, cp=2.0, seq=1, ready_at=100.0)
    sb = rt("sb", cpus=2, cp=1.0, seq=2, ready_at=100.0)
    later = [rt(f"sa{k}", cpus=2, cp=2.0, seq=2 + k, ready_at=100.0 + 1.5 * k) for k in range(1, 4)]
    q = ReadyQueue([with_it, sb, *later])
    one_slot = decide(q, machine(cores=2, gpus=0))
    assert started(one_slot) == ["sa0"]
    q.remove("sa0")
    assert started(decide(q, machine(cores=2, gpus=0))) == ["sb"]


def test_identical_tasks_keep_their_arrival_order_when_their_predicted_paths_differ_by_noise() -> None:
    """Runs of one pipeline created a second apart snapshot the duration model at different moments: 2.003 s and
    2.011 s decided the order (later runs went first)."""
    q = ReadyQueue([rt("first", cp=2.003, seq=1, ready_at=10.0), rt("second", cp=2.011, seq=2, ready_at=11.0)])
    assert started(decide(q, machine(cores=1, gpus=0))) == ["first"]
