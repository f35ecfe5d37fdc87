"""Scheduling benchmark: decision time with 10,000 ready tasks, and makespan against plain FIFO.

Run: ``python benchmarks/bench_scheduling.py [--quick]``. Everything is
simulated (a 64-core, 2-NUMA-node, 8-GPU machine), so it runs anywhere;
figures are medians. Prints one line per figure, then a JSON summary.

1. Decision time: one :func:`edgeorch.resources.policy.decide` call with
   10,000 ready tasks (40 pipelines × mixed CPU/GPU shapes) in three machine
   states: *busy* (every core leased: the head is reserved, backfill probes
   each bucket), *half* (half the cores leased: starts until full), *idle*
   (nothing running: fills the machine, ~40 starts). Goal: under 1 ms.
2. Makespan: a synthetic mixed workload (DAG pipelines prep → features →
   train (whole GPUs or a 20 GiB share) → eval, plus a stream of independent
   CPU batch tasks) run to completion in an event-driven simulation under
   this policy and under plain FIFO (strict arrival order, head-of-line
   blocking) on the same machine. Predicted durations are the true ones
   ±25 % noise. Reports both makespans and FIFO/policy.
"""

from __future__ import annotations

import argparse
import heapq
import json
import random
import statistics
import time

from edgeorch.resources.allocator import Capacity
from edgeorch.resources.model import CpuCore, GpuDevice, Inventory, Lease, ResourceRequest
from edgeorch.resources.policy import ReadyQueue, ReadyTask, Running, critical_paths, decide, fifo_decide

G = 1024**3


def simulated_machine(cores: int = 64, gpus: int = 8) -> Inventory:
    """64 cores on 2 NUMA nodes, 8 × 80 GiB GPUs (4 per node), 512 GiB RAM."""
    half = cores // 2
    cpus = tuple(CpuCore(c, c // half) for c in range(cores))
    devs = tuple(GpuDevice(f"GPU-{i:02d}", "NVIDIA H100 80GB HBM3", 80 * G, i, (9, 0), i * 2 // gpus,
                           frozenset(range((i * 2 // gpus) * half, (i * 2 // gpus + 1) * half)))
                 for i in range(gpus))
    return Inventory(cpus, 512 * G, devs)


SHAPES = [
    ResourceRequest(cpus=1), ResourceRequest(cpus=2), ResourceRequest(cpus=4, memory=8 * G),
    ResourceRequest(cpus=8, memory=32 * G), ResourceRequest(cpus=4, gpus=1),
    ResourceRequest(cpus=2, gpu_memory=20 * G), ResourceRequest(cpus=16, gpus=4), ResourceRequest(),
]


def ready_tasks(n: int, rng: random.Random, pipelines: int = 40) -> list[ReadyTask]:
    return [ReadyTask(f"t{i}", rng.choice(SHAPES), f"p{i % pipelines}", rng.choice([0, 0, 0, 1]),
                      rng.uniform(0, 3600), rng.uniform(5, 600), i) for i in range(n)]


def running_state(inv: Inventory, fraction: float, rng: random.Random) -> list[Running]:
    """Leases holding ``fraction`` of the cores (2-core tasks), GPUs busy in proportion."""
    cap = Capacity(inv)
    out: list[Running] = []
    want = int(len(inv.cpus) * fraction)
    i = 0
    while want - 2 * i >= 2:
        req = ResourceRequest(cpus=2, gpu_memory=30 * G) if i < int(8 * fraction) * 2 else ResourceRequest(cpus=2)
        lease = cap.fit(req, f"r{i}")
        assert isinstance(lease, Lease)
        cap.take(lease)
        out.append(Running(lease, f"p{i % 40}", rng.uniform(10, 1000)))
        i += 1
    return out


def time_decisions(n_tasks: int, repeats: int) -> dict[str, float]:
    rng = random.Random(5)
    inv = simulated_machine()
    q = ReadyQueue(ready_tasks(n_tasks, rng))
    out: dict[str, float] = {}
    for label, frac in (("busy", 1.0), ("half", 0.5), ("idle", 0.0)):
        running = running_state(inv, frac, rng)
        samples = []
        d = decide(q, inv, running, now=0.0, pools={}, max_parallel={"p1": 2})
        for _ in range(repeats):
            t0 = time.perf_counter_ns()
            d = decide(q, inv, running, now=0.0, pools={}, max_parallel={"p1": 2})
            samples.append(time.perf_counter_ns() - t0)
        out[f"decide_{label}_ms"] = statistics.median(samples) / 1e6
        out[f"decide_{label}_starts"] = len(d.start)
    # The incremental queue's own cost: add + remove of one task among n.
    t = ready_tasks(1, rng)[0]
    t = ReadyTask("extra", t.request, t.pipeline, t.priority, t.critical_path, t.duration, n_tasks + 1)
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter_ns()
        q.add(t)
        q.remove("extra")
        samples.append(time.perf_counter_ns() - t0)
    out["queue_add_remove_us"] = statistics.median(samples) / 1e3
    return out


# -- makespan simulation -------------------------------------------------------


def workload(rng: random.Random, pipelines: int, batch: int) -> tuple[dict[str, list[str]], dict[str, tuple]]:
    """DAG deps and per task (request, true duration, pipeline, predicted duration)."""
    deps: dict[str, list[str]] = {}
    spec: dict[str, tuple] = {}

    def add(tid: str, req: ResourceRequest, dur: float, pipe: str, ups: list[str]) -> None:
        deps[tid] = ups
        spec[tid] = (req, dur, pipe, dur * rng.uniform(0.75, 1.25))

    for p in range(pipelines):
        pipe = f"p{p}"
        add(f"{pipe}.prep", ResourceRequest(cpus=8, memory=16 * G), rng.uniform(60, 240), pipe, [])
        feats = []
        for k in range(4):
            add(f"{pipe}.feat{k}", ResourceRequest(cpus=rng.choice([2, 4])), rng.uniform(30, 300), pipe,
                [f"{pipe}.prep"])
            feats.append(f"{pipe}.feat{k}")
        train = rng.choice([ResourceRequest(cpus=4, gpus=1), ResourceRequest(cpus=8, gpus=4),
                            ResourceRequest(cpus=2, gpu_memory=20 * G), ResourceRequest(cpus=2, gpu_memory=20 * G)])
        add(f"{pipe}.train", train, rng.uniform(600, 2400), pipe, feats)
        add(f"{pipe}.eval", ResourceRequest(cpus=2, gpu_memory=10 * G), rng.uniform(30, 120), pipe, [f"{pipe}.train"])
    for b in range(batch):
        add(f"batch{b}", ResourceRequest(cpus=rng.choice([1, 2, 4, 8, 16])), rng.uniform(20, 900), "batch", [])
    return deps, spec


def simulate(policy: str, seed: int = 11, pipelines: int = 24, batch: int = 300) -> float:
    """Makespan (seconds) of the synthetic workload under ``policy`` (``edgeorch`` or ``fifo``)."""
    rng = random.Random(seed)
    inv = simulated_machine()
    deps, spec = workload(rng, pipelines, batch)
    pred = {t: s[3] for t, s in spec.items()}
    cp = critical_paths(deps, pred)
    waiting = {t: len(ups) for t, ups in deps.items()}
    down: dict[str, list[str]] = {t: [] for t in deps}
    for t, ups in deps.items():
        for u in ups:
            down[u].append(t)
    seq = 0
    q = ReadyQueue()
    fifo: list[ReadyTask] = []

    def make_ready(tid: str) -> None:
        nonlocal seq
        req, _, pipe, p = spec[tid]
        task = ReadyTask(tid, req, pipe, 0, cp[tid], p, seq)
        seq += 1
        if policy == "fifo":
            fifo.append(task)
        else:
            q.add(task)

    for t, n in waiting.items():
        if n == 0:
            make_ready(t)
    now = 0.0
    events: list[tuple[float, str]] = []
    running: dict[str, Running] = {}
    done = 0
    while done < len(spec):
        if policy == "fifo":
            started = fifo_decide(fifo, inv, running.values())
            ids = {t.id for t, _ in started}
            fifo = [t for t in fifo if t.id not in ids]
        else:
            started = list(decide(q, inv, running.values(), now=now).start)
            for t, _ in started:
                q.remove(t.id)
        for t, lease in started:
            end = now + spec[t.id][1]
            running[t.id] = Running(lease, t.pipeline, now + t.duration)
            heapq.heappush(events, (end, t.id))
        if not events:
            raise RuntimeError("deadlock: nothing running and nothing can start")
        now, tid = heapq.heappop(events)
        finished = [tid]
        while events and events[0][0] == now:
            finished.append(heapq.heappop(events)[1])
        for f in finished:
            del running[f]
            done += 1
            for d in down[f]:
                waiting[d] -= 1
                if waiting[d] == 0:
                    make_ready(d)
    return now


def lower_bound(seed: int = 11, pipelines: int = 24, batch: int = 300) -> float:
    """No schedule can finish sooner: max(core-seconds / cores, whole-GPU-seconds / GPUs, longest chain)."""
    rng = random.Random(seed)
    inv = simulated_machine()
    deps, spec = workload(rng, pipelines, batch)
    core_s = sum(s[0].cpus * s[1] for s in spec.values()) / len(inv.cpus)
    gpu_s = sum((s[0].gpus or s[0].gpu_memory / (80 * G)) * s[1] for s in spec.values()) / len(inv.gpus)
    chain = max(critical_paths(deps, {t: s[1] for t, s in spec.items()}).values())
    return max(core_s, gpu_s, chain)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repetitions and seeds")
    ap.add_argument("--sizes", default="10000",
                    help="ready-queue sizes for the decision time, comma-separated (the scaling table: 100,1000,10000)")
    ap.add_argument("--no-makespan", action="store_true", help="only the decision times")
    args = ap.parse_args()
    repeats = 30 if args.quick else 300
    seeds = [11] if args.quick else [11, 12, 13, 14, 15]
    res: dict[str, float] = {}
    for n in (int(x) for x in args.sizes.split(",")):
        one = time_decisions(n, repeats)
        for label in ("busy", "half", "idle"):
            print(f"decide, {n:,} ready, 64 cores / 8 GPUs, {label:>4}: {one[f'decide_{label}_ms']:.3f} ms "
                  f"(median of {repeats}; {one[f'decide_{label}_starts']} starts)")
        print(f"queue add+remove among {n:,}: {one['queue_add_remove_us']:.1f} us")
        res |= one if n == 10_000 else {f"{k}@{n}": v for k, v in one.items()}
    if args.no_makespan:
        print(json.dumps(res, sort_keys=True))
        return
    ratios = []
    for s in seeds:
        ours, base, lb = simulate("edgeorch", s), simulate("fifo", s), lower_bound(s)
        ratios.append(base / ours)
        print(f"makespan seed {s}: edgeorch {ours / 3600:.2f} h, FIFO {base / 3600:.2f} h, "
              f"FIFO/edgeorch {base / ours:.2f} (lower bound {lb / 3600:.2f} h)")
    res["makespan_ratio_fifo_over_edgeorch_median"] = statistics.median(ratios)
    print(f"makespan FIFO/edgeorch, median over {len(seeds)} seeds: {statistics.median(ratios):.2f}")
    print(json.dumps(res, sort_keys=True))


if __name__ == "__main__":
    main()
