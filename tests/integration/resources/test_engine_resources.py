"""The engine with the resources policy, real processes: pinning, env, GPU leases, shares, failures, watcher."""

from __future__ import annotations

import asyncio
import os
import sqlite3

import pytest
from resources_helpers import GPU_A, fake_gpus, run_engine, until

from edgeorch.model import RunState
from edgeorch.pipelines import resolve_params
from edgeorch.resources import UnsatisfiableError

# A TOML array: the task reports its own affinity and the resource variables it was given.
REPORT = ("""["sh", "-c", 'grep Cpus_allowed_list /proc/self/status > {pipeline_dir}/{task}.out; """
          """env | grep -E "^(OMP|MKL|OPENBLAS|NUMBA)_NUM_THREADS=|^(CUDA|NVIDIA)_VISIBLE_DEVICES=" | sort """
          """>> {pipeline_dir}/{task}.out']""")


def _db(ws) -> sqlite3.Connection:
    conn = sqlite3.connect(ws.state / "edgeorch.db")
    conn.row_factory = sqlite3.Row
    return conn


def _out(ws, task: str) -> dict[str, str]:
    lines = (ws.pipelines / f"{task}.out").read_text().splitlines()
    return dict(line.split("=", 1) if "=" in line else [p.strip() for p in line.split(":", 1)] for line in lines)


async def _submit_and_wait(engine, pipelines, name: str) -> tuple[int, RunState]:
    p = pipelines[name]
    run_id = engine.submit(p, resolve_params(p, {}))
    return run_id, await engine.wait_run(run_id)


def test_cpus_1_task_is_pinned_to_its_leased_core_with_thread_vars(workspace):
    workspace.pipeline("pin", f"""
        [tasks.one]
        command = {REPORT}
        cpus = 1
    """)
    run_id, state = run_engine(workspace, lambda e, p: _submit_and_wait(e, p, "pin"))
    assert state == RunState.SUCCEEDED
    with _db(workspace) as conn:
        (lease,) = conn.execute("SELECT * FROM leases WHERE run_id = ?", (run_id,)).fetchall()
    cores = eval(lease["cores"])  # a JSON list of ints
    assert len(cores) == 1 and lease["released_at"] is not None
    out = _out(workspace, "one")
    assert out["Cpus_allowed_list"] == str(cores[0])  # exactly the leased core, read from inside the task
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
        assert out[var] == "1"


def test_tasks_taking_every_core_never_overlap(workspace):
    n = len(os.sched_getaffinity(0))
    workspace.pipeline("wide", f"""
        [tasks.a]
        command = ["sh", "-c", "sleep 0.3"]
        cpus = {n}
        [tasks.b]
        command = ["sh", "-c", "sleep 0.3"]
        cpus = {n}
    """)
    run_id, state = run_engine(workspace, lambda e, p: _submit_and_wait(e, p, "wide"))
    assert state == RunState.SUCCEEDED
    with _db(workspace) as conn:
        a, b = sorted(conn.execute("SELECT started_at, finished_at FROM attempts WHERE run_id = ?", (run_id,)).fetchall(),
                      key=lambda r: r["started_at"])
        leases = conn.execute("SELECT cores FROM leases WHERE run_id = ?", (run_id,)).fetchall()
    assert b["started_at"] >= a["finished_at"], "two leases of every core must not overlap in time"
    assert [sorted(eval(r["cores"])) for r in leases] == [sorted(os.sched_getaffinity(0))] * 2


def test_gpu_task_sees_its_gpu_by_uuid_and_a_cpu_task_sees_none(workspace):
    fake_gpus(workspace)
    workspace.pipeline("gpu", f"""
        [tasks.train]
        command = {REPORT}
        gpus = 1
        [tasks.prep]
        command = {REPORT}
    """)
    _, state = run_engine(workspace, lambda e, p: _submit_and_wait(e, p, "gpu"))
    assert state == RunState.SUCCEEDED
    train, prep = _out(workspace, "train"), _out(workspace, "prep")
    assert train["CUDA_VISIBLE_DEVICES"] == GPU_A and train["NVIDIA_VISIBLE_DEVICES"] == GPU_A
    assert prep["CUDA_VISIBLE_DEVICES"] == "" and prep["NVIDIA_VISIBLE_DEVICES"] == "void"


def test_gpu_memory_shares_fill_one_gpu_and_no_more(workspace):
    """10G GPU, three 4G shares: two run together, the third waits (gpu_memory) until one ends."""
    fake_gpus(workspace, memory="10G")
    tasks = "".join(f"""
        [tasks.s{i}]
        command = ["sh", "-c", "touch {{pipeline_dir}}/s{i}.started; while [ ! -f {{pipeline_dir}}/go ]; do sleep 0.02; done"]
        gpu_memory = "4G"
    """ for i in range(3))
    workspace.pipeline("shares", tasks)

    async def body(engine, pipelines):
        p = pipelines["shares"]
        run_id = engine.submit(p, resolve_params(p, {}))
        started = lambda: [i for i in range(3) if (workspace.pipelines / f"s{i}.started").exists()]
        await until(lambda: len(started()) == 2, what="two shares running")
        rep = engine.resources_report()
        assert len(rep["leases"]) == 2 and all(lease["gpus"] == [GPU_A] for lease in rep["leases"])
        (waiting,) = rep["queue"]
        assert waiting["reason_kind"] == "gpu_memory", waiting
        assert "4.0G of GPU memory" in waiting["reason"]
        (gpu,) = rep["gpus"]  # what edgeorch promised on it, beside NVML's free memory
        assert (gpu["leased_memory"], gpu["shares"], gpu["held_whole_by"]) == (8 * 1024 ** 3, 2, None), gpu
        # A reading older than READ_MAX_AGE_S explains the wait as well: the reason flipped to "waits for a GPU
        # reading" every time the report came between two readings.
        from edgeorch.resources.gpus.reader import READ_MAX_AGE_S

        await asyncio.sleep(READ_MAX_AGE_S + 0.5)  # wall-clock age of the reading is what is tested
        (waiting,) = engine.resources_report()["queue"]
        assert waiting["reason_kind"] == "gpu_memory", waiting
        (workspace.pipelines / "go").touch()
        return run_id, await engine.wait_run(run_id)

    run_id, state = run_engine(workspace, body)
    assert state == RunState.SUCCEEDED
    with _db(workspace) as conn:
        rows = sorted(conn.execute("SELECT started_at, finished_at FROM attempts WHERE run_id = ?", (run_id,)).fetchall(),
                      key=lambda r: r["started_at"])
    assert rows[2]["started_at"] >= min(rows[0]["finished_at"], rows[1]["finished_at"])


def test_impossible_request_is_refused_at_submit_and_fails_fast_at_admission(workspace):
    workspace.write_config("""
        [resources]
        gpu_backend = "none"
        """)
    workspace.pipeline("gpu", """
        [tasks.train]
        command = ["true"]
        gpus = 1
        [tasks.eval]
        command = ["true"]
        needs = ["train"]
    """)

    async def body(engine, pipelines):
        p = pipelines["gpu"]
        with pytest.raises(UnsatisfiableError) as err:
            engine.submit(p, {})
        assert "task train asks for a GPU but this daemon has none" in err.value.render()
        assert 'gpu_backend = "none"' in err.value.render()
        # Admission says the same when the submit check is bypassed (e.g. config changed under a queued run).
        run_id = engine.submit(p, {}, check_resources=False)
        return run_id, await engine.wait_run(run_id)

    run_id, state = run_engine(workspace, body, timeout=10)
    assert state == RunState.FAILED
    with _db(workspace) as conn:
        rows = {r["name"]: r for r in conn.execute("SELECT name, state, reason FROM tasks WHERE run_id = ?", (run_id,))}
        attempts = conn.execute("SELECT COUNT(*) FROM attempts WHERE run_id = ?", (run_id,)).fetchone()[0]
    assert rows["train"]["state"] == "failed" and rows["train"]["reason"].startswith("cannot be scheduled: asks for a GPU")
    assert rows["eval"]["state"] == "upstream_failed" and attempts == 0


def test_memory_is_admission_checked_and_reported_not_enforced_here(workspace):
    workspace.pipeline("mem", """
        [tasks.small]
        command = ["true"]
        memory = "64M"
        [tasks.huge]
        command = ["true"]
        memory = "100000G"
    """)

    async def body(engine, pipelines):
        p = pipelines["mem"]
        with pytest.raises(UnsatisfiableError, match="asks for .* of memory but only"):
            engine.submit(p, {})
        events: list[dict] = []
        engine.bus.subscribe(lambda event: events.append(event.to_wire()))
        run_id = engine.submit(p, {}, check_resources=False)
        await engine.wait_run(run_id)
        return run_id, events

    run_id, events = run_engine(workspace, body, timeout=10)
    started = [e for e in events if e.get("task") == "small" and e.get("state") == "running"]
    assert started and "memory 64M" in started[0]["resources"]
    if not engine_enforces_memory():
        assert "not enforced" in started[0]["resources"]
    with _db(workspace) as conn:
        huge = conn.execute("SELECT state, reason FROM tasks WHERE run_id = ? AND name = 'huge'", (run_id,)).fetchone()
        (lease,) = conn.execute("SELECT memory FROM leases WHERE run_id = ?", (run_id,)).fetchall()
        (granted,) = conn.execute("SELECT message FROM events WHERE run_id = ? AND kind = 'lease_granted'",
                                  (run_id,)).fetchall()
    assert huge["state"] == "failed" and "of memory but only" in huge["reason"]
    assert granted[0] == "small: attempt 1: " + started[0]["resources"]
    assert lease["memory"] == 64 * 1024**2


def engine_enforces_memory() -> bool:
    from edgeorch.resources import memory

    return memory.detect().enforced


def test_watcher_stops_a_task_over_its_gpu_budget_and_drains_on_xid(workspace):
    fake_gpus(workspace, memory="10G")
    workspace.pipeline("budget", """
        [tasks.hog]
        command = ["sh", "-c", "touch {pipeline_dir}/hog.started; exec sleep 30"]
        gpu_memory = "4G"
    """)

    async def body(engine, pipelines):
        engine.watch_interval = 0.05
        p = pipelines["budget"]
        run_id = engine.submit(p, {})
        await until(lambda: (workspace.pipelines / "hog.started").exists() and
                    all(la.pgid for la in engine.live.values()), what="hog running")
        (la,) = engine.live.values()
        backend = engine.res.backend
        backend.add_process(GPU_A, la.pgid, 6 * 1024**3)  # the task's process now holds 6G of its 4G budget
        backend.inject_xid(GPU_A, 79)
        state = await engine.wait_run(run_id)
        return run_id, state, dict(engine.res.drained), engine.resources_report()

    run_id, state, drained, rep = run_engine(workspace, body)
    assert state == RunState.FAILED
    with _db(workspace) as conn:
        reason = conn.execute("SELECT reason FROM attempts WHERE run_id = ?", (run_id,)).fetchone()["reason"]
        kinds = [r["kind"] for r in conn.execute("SELECT kind FROM events")]
    assert reason.startswith("stopped by the GPU watcher: uses 6.0G of GPU memory on " + GPU_A)
    assert "over its gpu_memory budget of 4.0G" in reason
    assert drained == {GPU_A: "XID 79 reported by the driver"}
    assert rep["gpus"][0]["drained"] == "XID 79 reported by the driver"
    assert "gpu_budget_stop" in kinds and "gpu_drained" in kinds


def test_predicted_durations_are_seeded_from_past_successes(workspace):
    workspace.pipeline("d", """
        [tasks.a]
        command = ["true"]
    """)
    run_engine(workspace, lambda e, p: _submit_and_wait(e, p, "d"))
    est = run_engine(workspace, lambda e, p: _estimates(e))
    assert set(est) == {"d/a"} and 0 <= est["d/a"] < 10


async def _estimates(engine):
    return dict(engine.res.durations.estimates)


def test_impossible_request_fails_even_while_every_slot_is_busy(workspace):
    workspace.write_config("""
        [resources]
        gpu_backend = "none"
        """, parallelism=2)
    gate = 'command = ["sh", "-c", "while [ ! -f {pipeline_dir}/go ]; do sleep 0.02; done"]'
    workspace.pipeline("busy", f"""
        [tasks.a]
        {gate}
        [tasks.b]
        {gate}
        [tasks.gpu]
        command = ["true"]
        gpus = 1
    """)

    async def body(engine, pipelines):
        run_id = engine.submit(pipelines["busy"], {}, check_resources=False)
        # Fails while a and b hold both slots (the gate is still shut).
        await until(lambda: engine.runs[run_id].states["gpu"] == "failed", what="gpu task failed")
        assert len(engine.live) == 2
        (workspace.pipelines / "go").touch()
        return await engine.wait_run(run_id)

    assert run_engine(workspace, body) == RunState.FAILED


def _spans(ws, run_id: int) -> dict[str, tuple[float, float]]:
    with _db(ws) as conn:
        return {r["task"]: (r["started_at"], r["finished_at"])
                for r in conn.execute("SELECT task, started_at, finished_at FROM attempts WHERE run_id = ?", (run_id,))}


def test_max_parallel_and_pools_cap_concurrency(workspace):
    workspace.write_config("""
        [resources.pools]
        db = 1
        """, parallelism=4)
    nap = 'command = ["sh", "-c", "sleep 0.2"]'
    workspace.pipeline("capped", f"""
        max_parallel = 1
        [tasks.a]
        {nap}
        [tasks.b]
        {nap}
    """)
    workspace.pipeline("pooled", f"""
        [tasks.c]
        {nap}
        pool = "db"
        [tasks.d]
        {nap}
        pool = "db"
    """)

    async def body(engine, pipelines):
        ids = [engine.submit(pipelines[n], {}) for n in ("capped", "pooled")]
        return ids, [await engine.wait_run(i) for i in ids]

    (capped, pooled), states = run_engine(workspace, body)
    assert states == [RunState.SUCCEEDED] * 2
    for run_id in (capped, pooled):
        first, second = sorted(_spans(workspace, run_id).values())
        assert second[0] >= first[1], "max_parallel = 1 / pool size 1: the two tasks must not overlap"


def test_longest_critical_path_starts_first(workspace):
    workspace.write_config(parallelism=1)
    workspace.pipeline("cp", """
        [tasks.short]
        command = ["true"]
        [tasks.chain1]
        command = ["true"]
        [tasks.chain2]
        command = ["true"]
        needs = ["chain1"]
        [tasks.chain3]
        command = ["true"]
        needs = ["chain2"]
    """)
    run_id, state = run_engine(workspace, lambda e, p: _submit_and_wait(e, p, "cp"))
    assert state == RunState.SUCCEEDED
    order = [t for t, _ in sorted(_spans(workspace, run_id).items(), key=lambda kv: kv[1][0])]
    # chain1 heads 3 predicted durations, short only 1: the chain goes first although declared second.
    assert order[0] == "chain1"


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two cores: one leased, one shared")
def test_a_running_task_that_asked_for_no_cores_is_moved_off_cores_leased_after_it_started(workspace):
    """A task with no `cpus` shares the cores nobody leased. Started while every core was free it ran on all of
    them, and a task given dedicated cores later shared them with it (both pinned to the same core); once that
    lease ends, the shared task gets the core back."""
    from edgeorch.resources.cpus import format_cpu_list, parse_cpu_list

    every = format_cpu_list(os.sched_getaffinity(0))
    d = workspace.root
    workspace.write_config("", parallelism=3)
    workspace.pipeline("shared", f"""
        [tasks.s]
        shell = true
        command = "while [ ! -f {d}/flag ]; do sleep 0.02; done; grep Cpus_allowed_list /proc/self/status > {d}/s.out; touch {d}/shared-done; n=0; while [ $n -lt 500 ] && ! grep -qE 'Cpus_allowed_list:[[:space:]]+{every}$' /proc/self/status; do n=$((n+1)); sleep 0.02; done; grep Cpus_allowed_list /proc/self/status > {d}/s2.out"
    """)
    workspace.pipeline("dedicated", f"""
        [tasks.d]
        command = ["sh", "-c", "touch {d}/flag; while [ ! -f {d}/shared-done ]; do sleep 0.02; done"]
        cpus = 1
    """)

    async def body(engine, pipelines):
        shared = engine.submit(pipelines["shared"], {})
        await until(lambda: any(la.pgid for la in engine.live.values()), what="the shared task running")
        dedicated = engine.submit(pipelines["dedicated"], {})
        return shared, dedicated, [await engine.wait_run(i) for i in (shared, dedicated)]

    shared, dedicated, states = run_engine(workspace, body)
    assert states == [RunState.SUCCEEDED] * 2
    with _db(workspace) as conn:
        (lease,) = conn.execute("SELECT cores FROM leases WHERE run_id = ?", (dedicated,)).fetchall()
    (core,) = eval(lease["cores"])
    seen = parse_cpu_list((d / "s.out").read_text().split(":", 1)[1].strip())
    assert core not in seen, f"the shared task ran on {format_cpu_list(seen)}, with core {core} leased to another"
    assert seen == set(os.sched_getaffinity(0)) - {core}
    after = parse_cpu_list((d / "s2.out").read_text().split(":", 1)[1].strip())
    assert after == set(os.sched_getaffinity(0)), "the lease ended: its core goes back to the shared task"
