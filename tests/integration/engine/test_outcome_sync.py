"""An outcome nothing waits for is committed without a sync, and told once durable (issue 11, group commit).

``a`` ends while ``b`` still runs, so nothing waits for ``a``'s outcome: it is committed relaxed and its event
is held. ``b``'s outcome makes ``sink`` ready: it is committed durably, which syncs ``a``'s too, and ``a``'s event
is told first. A reader (the daemon's control ops), the timer and the engine's close sync held outcomes too.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest

import edgeorch.engine.engine as engine_mod
from edgeorch.engine.engine import Engine
from edgeorch.errors import StateError
from edgeorch.events import AttemptEnded, TaskStarted
from edgeorch.model import RunState, TaskState
from edgeorch.pipelines import validate_path
from edgeorch.store import Store

PIPE = """
[tasks.a]
command = ["true"]
[tasks.b]
command = ["sh", "-c", "for i in $(seq 3000); do [ -f {pipeline_dir}/go ] && exit 0; sleep 0.01; done; exit 1"]
[tasks.sink]
command = ["true"]
needs = ["a", "b"]
"""


class Spy:
    """What the engine published, each with the number of syncs done before it; the outcomes' commit levels."""

    def __init__(self, engine: Engine, store: Store, monkeypatch) -> None:
        self.seen: list[tuple[str, str, int]] = []
        self.syncs = 0
        self.levels: list[bool] = []
        real_sync, real_tx = store.sync, store.attempts.finish

        def sync() -> None:
            self.syncs += 1
            real_sync()

        def finish(*args, **kw):
            self.levels.append(store.db.conn.execute("PRAGMA synchronous").fetchone()[0] == 2)  # FULL
            return real_tx(*args, **kw)

        monkeypatch.setattr(store, "sync", sync)
        monkeypatch.setattr(store.attempts, "finish", finish)
        engine.bus.subscribe(self._on, (AttemptEnded, TaskStarted))

    def _on(self, event) -> None:
        self.seen.append((type(event).__name__, event.task, self.syncs))


async def _until(cond, timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():  # the engine runs on this loop: yielding lets it go on
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.005)


def _setup(workspace):
    workspace.pipeline("p", PIPE)
    cfg = workspace.config()
    return cfg, validate_path(cfg.pipelines_dir).pipelines["p"]


@contextlib.asynccontextmanager
async def _engine(cfg, monkeypatch):
    """A started engine on the workspace's state file, with a :class:`Spy`; closed (then its store) at the end."""
    store = Store(cfg.state_file)
    engine = Engine(cfg, store)
    spy = Spy(engine, store, monkeypatch)
    await engine.start()
    try:
        yield engine, store, spy
    finally:
        await engine.close()
        store.close()


async def _until_a_ended(engine: Engine, pipeline) -> int:
    """Submit ``pipeline``; its run's id once ``a`` has succeeded (in memory: its outcome is committed)."""
    run_id = engine.submit(pipeline, {})
    ctx = engine.runs[run_id]
    await _until(lambda: ctx.states.get("a") == TaskState.SUCCEEDED)
    return run_id


@contextlib.asynccontextmanager
async def _a_held(cfg, pipeline, monkeypatch):
    """A started engine whose run's ``a`` has ended with its outcome held (``b`` still runs: nothing waits for
    ``a``); the run is cancelled before the engine closes."""
    async with _engine(cfg, monkeypatch) as (engine, store, spy):
        run_id = await _until_a_ended(engine, pipeline)
        yield engine, store, spy
        engine.cancel(run_id)
        await engine.wait_run(run_id)


def test_a_held_outcome_is_told_after_the_durable_commit_that_synced_it(workspace, monkeypatch):
    monkeypatch.setattr(engine_mod, "OUTCOME_SYNC_DELAY_S", 3600.0)  # only the durable commit can tell it
    cfg, pipeline = _setup(workspace)

    async def main():
        async with _engine(cfg, monkeypatch) as (engine, store, spy):
            run_id = await _until_a_ended(engine, pipeline)
            # Recorded (another reader sees it), but not told: nothing waits for it, it is not synced yet.
            assert store.attempts.of_run(run_id, "a")[0]["state"] == "exited"
            assert not [s for s in spy.seen if s[0] == "AttemptEnded"] and spy.syncs == 0
            (workspace.pipelines / "go").touch()
            assert await engine.wait_run(run_id) == RunState.SUCCEEDED
        return spy

    spy = asyncio.run(main())
    ended = [task for kind, task, _ in spy.seen if kind == "AttemptEnded"]
    assert ended == ["a", "b", "sink"]  # a's told first, right after b's durable commit synced it
    assert spy.levels == [False, True, True]  # a relaxed; b (sink made ready) and sink (the run's end) durable
    assert spy.syncs == 0  # no sync of its own: b's commit made it durable


def test_a_reader_the_timer_and_close_each_sync_what_is_held(workspace, monkeypatch):
    monkeypatch.setattr(engine_mod, "OUTCOME_SYNC_DELAY_S", 3600.0)
    cfg, pipeline = _setup(workspace)

    async def reader():
        async with _a_held(cfg, pipeline, monkeypatch) as (engine, store, spy):
            engine.sync_outcomes()  # what a control op does before it reads
            assert spy.syncs == 1 and [s for s in spy.seen if s[0] == "AttemptEnded"] == [("AttemptEnded", "a", 1)]
            engine.sync_outcomes()  # nothing held: nothing done
            assert spy.syncs == 1

    async def closing():
        async with _engine(cfg, monkeypatch) as (engine, store, spy):
            await _until_a_ended(engine, pipeline)
            assert spy.syncs == 0
        # closed: b goes on (live restore); a's outcome was synced and told before the engine stopped
        assert spy.syncs == 1 and ("AttemptEnded", "a", 1) in spy.seen

    asyncio.run(reader())
    asyncio.run(closing())
    # The timer: a short delay tells the held outcome by itself.
    monkeypatch.setattr(engine_mod, "OUTCOME_SYNC_DELAY_S", 0.01)
    (workspace.pipelines / "go").touch()  # the b the last engine left running ends (adopted by the next)
    workspace.pipeline("q", PIPE.replace("/go ]", "/go2 ]"))
    second = validate_path(cfg.pipelines_dir).pipelines["q"]

    async def timer():
        async with _engine(cfg, monkeypatch) as (engine, store, spy):
            await _until(lambda: not engine.runs)  # the adopted run is over: nothing else syncs meanwhile
            run_id = engine.submit(second, {})
            await _until(lambda: any(s[:2] == ("AttemptEnded", "a") for s in spy.seen))
            assert spy.syncs == 1
            (workspace.pipelines / "go2").touch()
            assert await engine.wait_run(run_id) == RunState.SUCCEEDED

    asyncio.run(timer())


def test_a_held_outcome_whose_sync_fails_stops_the_engine_untold(workspace, monkeypatch):
    monkeypatch.setattr(engine_mod, "OUTCOME_SYNC_DELAY_S", 0.01)
    cfg, pipeline = _setup(workspace)

    async def main():
        store = Store(cfg.state_file)
        engine = Engine(cfg, store)
        told: list[str] = []
        engine.bus.subscribe(lambda e: told.append(e.task), AttemptEnded)

        def refuse() -> None:
            raise StateError("cannot sync the state file: Input/output error", file=str(cfg.state_file))

        monkeypatch.setattr(store, "sync", refuse)
        await engine.start()
        try:
            run_id = engine.submit(pipeline, {})
            await asyncio.wait_for(engine.fatal_event.wait(), 30)
            with pytest.raises(StateError, match="Input/output error"):
                await engine.wait_run(run_id)
            assert told == []  # never told what may not be durable
        finally:
            await engine.close()
            store.close()
            (workspace.pipelines / "go").touch()  # b ends (live restore would collect it)

    asyncio.run(main())


def test_control_ops_sync_held_outcomes_before_they_answer():
    from edgeorch.daemon.ops import OpSpec, register

    calls: list[str] = []

    class Group:
        OPS = (OpSpec("plain", "plain", "read", "h"), OpSpec("stream", "stream", "read", "h", streaming=True))

        async def plain(self, args, peer):
            calls.append("plain")
            return {}

        async def stream(self, args, peer):
            calls.append("stream")
            yield {}

    class Server:
        def __init__(self):
            self.ops = {}

        def register(self, name, handler, **kw):
            self.ops[name] = handler

    server = Server()
    register(server, [Group()], before=lambda: calls.append("sync"))

    async def main():
        await server.ops["plain"]({}, None)
        async for _ in server.ops["stream"]({}, None):
            pass

    asyncio.run(main())
    assert calls == ["sync", "plain", "stream"]  # a stream gets held events once they are told


def test_a_metrics_scrape_syncs_held_outcomes_before_it_reads(workspace, monkeypatch):
    """The other way the state is read from outside (an HTTP scrape, the textfile): it syncs first, as the ops do."""
    from edgeorch.observe.collect import Sources
    from edgeorch.observe.service import MetricsService

    monkeypatch.setattr(engine_mod, "OUTCOME_SYNC_DELAY_S", 3600.0)
    cfg, pipeline = _setup(workspace)

    async def main():
        async with _a_held(cfg, pipeline, monkeypatch) as (engine, store, spy):
            metrics = MetricsService(cfg.metrics, collectors=[])
            metrics.sources = Sources(config=cfg, store=store, engine=engine, registry=None,  # type: ignore[arg-type]
                                      counters=None, clients=lambda: 0, started_at=0.0)  # type: ignore[arg-type]
            assert spy.syncs == 0
            await metrics.snapshot("http")
            assert spy.syncs == 1 and ("AttemptEnded", "a", 1) in spy.seen

    asyncio.run(main())


def test_the_timers_sync_runs_off_the_loop_and_tells_only_what_it_covered(workspace, monkeypatch):
    """The timer's fdatasync ran on the loop: a third of a 200-task fan's loop time through a daemon was spent
    waiting for the disk, while no task could start or end. It runs in a thread now; the loop goes on meanwhile,
    and the held outcome is told once that sync has returned, not before."""
    import threading

    monkeypatch.setattr(engine_mod, "OUTCOME_SYNC_DELAY_S", 0.01)
    cfg, pipeline = _setup(workspace)
    release, entered = threading.Event(), threading.Event()

    async def main():
        async with _engine(cfg, monkeypatch) as (engine, store, spy):
            real = store.sync

            def slow_sync() -> None:  # a slow disk: the sync waits until the test lets it go
                entered.set()
                assert threading.current_thread() is not threading.main_thread()
                release.wait(30)
                real()

            monkeypatch.setattr(store, "sync", slow_sync)
            run_id = await _until_a_ended(engine, pipeline)
            await _until(entered.is_set)
            ticks = 0
            for _ in range(20):  # the loop goes on while the sync is under way
                await asyncio.sleep(0.001)
                ticks += 1
            assert ticks == 20 and not [s for s in spy.seen if s[:2] == ("AttemptEnded", "a")]
            release.set()
            await _until(lambda: any(s[:2] == ("AttemptEnded", "a") for s in spy.seen))
            (workspace.pipelines / "go").touch()
            assert await engine.wait_run(run_id) == RunState.SUCCEEDED
        return spy

    spy = asyncio.run(main())
    ended = [task for kind, task, _ in spy.seen if kind == "AttemptEnded"]
    assert ended == ["a", "b", "sink"]  # each told once, in order
