"""The engine when GPUs misbehave (issue 18): a wedged NVML, a backend that raises, drains found while dispatching."""

from __future__ import annotations

import sqlite3

from resources_helpers import GPU_A, fake_gpus, run_engine, until

from edgeorch.model import RunState
from edgeorch.pipelines import resolve_params


def _kinds(ws) -> list[str]:
    with sqlite3.connect(ws.state / "edgeorch.db") as conn:
        return [r[0] for r in conn.execute("SELECT kind FROM events")]


def test_a_wedged_nvml_holds_gpu_tasks_only_and_they_start_when_it_answers(workspace):
    fake_gpus(workspace, memory="10G")
    workspace.pipeline("cpu", """
        [tasks.prep]
        command = ["true"]
    """)
    workspace.pipeline("gpu", """
        [tasks.train]
        command = ["true"]
        gpu_memory = "2G"
    """)

    async def body(engine, pipelines):
        # A wedged NVML answers nothing: the full reading asked for at start (which may not have begun
        # yet on a busy machine) blocks too, or it would bring a fresh reading and the task would start.
        wedges = [engine.res.backend.block(call) for call in ("free_memory", "reading")]
        engine.res.reader.invalidate()  # the reading taken at start is not enough: the next decision reads again
        try:
            gpu_run = engine.submit(pipelines["gpu"], resolve_params(pipelines["gpu"], {}))
            cpu_run = engine.submit(pipelines["cpu"], resolve_params(pipelines["cpu"], {}))
            assert await engine.wait_run(cpu_run) == RunState.SUCCEEDED  # the loop never waited for NVML
            # The GPU task reaches the queue once the engine has tried to place it (a later turn of the loop).
            (waiting,) = await until(lambda: engine.resources_report()["queue"], what="the GPU task queued")
            assert waiting["reason_kind"] == "gpu_unreadable", waiting
        finally:
            for wedge in wedges:
                wedge.set()
        return await engine.wait_run(gpu_run)

    assert run_engine(workspace, body) == RunState.SUCCEEDED


def test_a_backend_raising_anything_under_the_watcher_does_not_stop_the_engine(workspace):
    fake_gpus(workspace, memory="10G")
    workspace.pipeline("budget", """
        [tasks.hold]
        command = ["sh", "-c", "touch {pipeline_dir}/hold.started; while [ ! -f {pipeline_dir}/go ]; do sleep 0.02; done"]
        gpu_memory = "4G"
    """)

    async def body(engine, pipelines):
        engine.watch_interval = 0.05
        run_id = engine.submit(pipelines["budget"], {})
        await until(lambda: (workspace.pipelines / "hold.started").exists(), what="task running")
        # As pynvml's NVMLLibraryMismatchError once did: not a GpuBackendError, from the process listing.
        engine.res.backend.fail_with(GPU_A, None, exc=lambda: RuntimeError("not an NVMLError"), calls=("processes",))
        reader = engine.res.reader

        def failed_at() -> float | None:
            snap = reader.latest()
            return snap.taken_at if snap and any("RuntimeError" in e for e in snap.process_errors.values()) else None

        first = await until(failed_at, what="the failing listing read by the watcher")
        await until(lambda: (failed_at() or 0) > first, what="the watcher going on after it")
        assert engine.fatal_error is None and engine.accepting
        (workspace.pipelines / "go").touch()
        return await engine.wait_run(run_id)

    assert run_engine(workspace, body) == RunState.SUCCEEDED


def test_a_drain_found_while_dispatching_is_recorded_without_any_gpu_lease(workspace):
    fake_gpus(workspace, memory="10G")
    workspace.pipeline("gpu", """
        [tasks.train]
        command = ["true"]
        gpus = 1
    """)

    async def body(engine, pipelines):
        engine.res.backend.inject_xid(GPU_A, 79)
        engine.res.reader.invalidate()  # the XID came after the reading taken at start: the decision reads again
        engine.submit(pipelines["gpu"], resolve_params(pipelines["gpu"], {}))
        await until(lambda: GPU_A in engine.res.drained, what="the GPU drained at dispatch")
        await until(lambda: "gpu_drained" in _kinds(workspace), what="the drain recorded")
        assert not any(h.running.lease.gpus for h in engine.res.held.values())
        (waiting,) = engine.resources_report()["queue"]
        return waiting

    waiting = run_engine(workspace, body)
    assert waiting["reason_kind"] == "drained" and "XID 79" in waiting["reason"]
    assert _kinds(workspace).count("gpu_drained") == 1


def test_a_drain_outlives_a_daemon_restart_until_the_machine_reboots(workspace):
    fake_gpus(workspace, memory="10G")
    workspace.pipeline("gpu", """
        [tasks.train]
        command = ["true"]
        gpus = 1
    """)

    async def drain(engine, pipelines):
        engine.res.backend.inject_xid(GPU_A, 79)
        engine.res.reader.invalidate()
        engine.submit(pipelines["gpu"], resolve_params(pipelines["gpu"], {}))
        await until(lambda: "gpu_drained" in _kinds(workspace), what="the drain recorded")

    async def restarted(engine, pipelines):
        return dict(engine.res.drained)

    run_engine(workspace, drain)
    assert run_engine(workspace, restarted) == {GPU_A: "XID 79 reported by the driver"}
    assert _kinds(workspace).count("gpu_drained") == 1  # restored, not recorded again


def test_index_mode_gives_the_task_the_gpus_index_and_pci_order(workspace):
    table = fake_gpus(workspace)
    workspace.write_config(f"""
        [resources]
        gpu_backend = "fake"
        fake_gpus = "{table}"
        visible_devices = "index"
        """)
    workspace.pipeline("gpu", """
        [tasks.train]
        command = ["sh", "-c", "env | grep -E '^CUDA_(VISIBLE_DEVICES|DEVICE_ORDER)=' | sort > {pipeline_dir}/env.out"]
        gpus = 1
    """)

    async def body(engine, pipelines):
        return await engine.wait_run(engine.submit(pipelines["gpu"], resolve_params(pipelines["gpu"], {})))

    assert run_engine(workspace, body) == RunState.SUCCEEDED
    assert (workspace.pipelines / "env.out").read_text().split() == ["CUDA_DEVICE_ORDER=PCI_BUS_ID",
                                                                     "CUDA_VISIBLE_DEVICES=0"]
