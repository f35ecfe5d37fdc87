"""One contract suite for every executor (edgeorch/engine/executors/base.py): real processes, real files.

Each executor is described by an :class:`Impl`: how to build one, and how to
break its machinery from outside (its launcher, an attempt's supervisor) the
way a crash or the OOM killer would. ``local`` and ``ray`` (on the run's one
local Ray head, the ``ray_head`` fixture; each test in a namespace of its own
so attempt numbers never meet; skipped without the ``ray`` extra).
"""

from __future__ import annotations

import asyncio
import functools
import os
import signal
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Awaitable, Callable

import pytest

from edgeorch.engine.executors.base import (AttemptRecord, Executor, ExitInfo, SpawnRequest, StartedInfo,
                                            Verdict)
from edgeorch.engine.procinfo import is_same_process, process_start_time


@dataclass
class Impl:
    name: str
    make: Callable[..., Executor]
    kill_launcher: Callable[[Executor], None] | None
    """None: the executor has no launcher process of its own to kill."""
    kill_supervisor: Callable[[StartedInfo], None]


def _local_make(loop, on_started, on_exited, on_health) -> Executor:
    from edgeorch.engine.executors.local.executor import LocalExecutor

    return LocalExecutor(loop, on_started, on_exited, on_health)


def _local_kill_launcher(ex: Executor) -> None:
    os.kill(ex.zygote_pid, signal.SIGKILL)  # type: ignore[attr-defined]


def _local_kill_supervisor(started: StartedInfo) -> None:
    os.kill(started.shim_pid, signal.SIGKILL)


def _ray_make(loop, on_started, on_exited, on_health, *, address: str, namespace: str) -> Executor:
    from edgeorch.config import ExecutorConfig
    from edgeorch.engine.executors.ray.executor import RayExecutor

    return RayExecutor(loop, on_started, on_exited, on_health,
                       config=ExecutorConfig(kind="ray", address=address, namespace=namespace))


def _ray_kill_supervisor(started: StartedInfo) -> None:
    # What supervises a Ray attempt is its actor's worker process (the node's supervisor dies with it).
    os.kill(started.extra["worker_pid"], signal.SIGKILL)


IMPLS = [Impl("local", _local_make, _local_kill_launcher, _local_kill_supervisor),
         # Ray has no launcher process of edgeorch's: its cluster's own processes place and start actors.
         Impl("ray", _ray_make, None, _ray_kill_supervisor)]


class Probe:
    """One executor with its callbacks recorded, and awaitable conditions on them."""

    def __init__(self, impl: Impl, loop: asyncio.AbstractEventLoop) -> None:
        self.order: list[tuple[str, int]] = []
        self.started: dict[int, StartedInfo] = {}
        self.exited: dict[int, ExitInfo] = {}
        self.health: list[str] = []
        self.ex = impl.make(loop, self._on_started, self._on_exited, self.health.append)
        self.ex.start()

    def _on_started(self, attempt_id: int, info: StartedInfo) -> None:
        self.order.append(("started", attempt_id))
        self.started[attempt_id] = info

    def _on_exited(self, attempt_id: int, info: ExitInfo) -> None:
        assert attempt_id not in self.exited, "on_exited came twice"
        self.order.append(("exited", attempt_id))
        self.exited[attempt_id] = info

    async def exit_of(self, attempt_id: int, timeout: float = 30) -> ExitInfo:
        await until(lambda: attempt_id in self.exited, timeout, f"attempt {attempt_id} to exit")
        return self.exited[attempt_id]


async def until(cond: Callable[[], Any], timeout: float = 30, what: str = "condition") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def request(tmp: Path, attempt_id: int, script: str, *, kill_grace: float = 10.0) -> SpawnRequest:
    adir = tmp / f"attempt-{attempt_id}"
    return SpawnRequest(attempt_id=attempt_id, argv=["/bin/sh", "-c", script], env=dict(os.environ), cwd=str(tmp),
                        log_path=str(adir / "output.log"), attempt_dir=str(adir), log_max_bytes=1 << 20,
                        kill_grace=kill_grace)


def alive(pid: int, start_time: int | None) -> bool:
    return is_same_process(pid, start_time)


def run(body: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(body(), 60))


# The Ray case takes the head at run time: its marker puts it with the other Ray tests (tests/rayhead_plugin.py).
@pytest.fixture(params=[pytest.param(i, id=i.name, marks=[pytest.mark.ray_head] if i.name == "ray" else [])
                        for i in IMPLS])
def impl(request) -> Impl:
    if request.param.name == "ray":
        head = request.getfixturevalue("ray_head")
        make = functools.partial(_ray_make, address=head.address, namespace=f"test-{uuid.uuid4().hex[:12]}")
        return replace(request.param, make=make)
    return request.param


def test_spawn_reports_started_then_exited_with_the_code(impl, tmp_path):
    async def body() -> None:
        p = Probe(impl, asyncio.get_running_loop())
        try:
            p.ex.spawn(request(tmp_path, 1, "echo hello; exit 3"))
            info = await p.exit_of(1)
            assert (info.exit_code, info.signal, info.lost, info.uncharged) == (3, None, False, False)
            assert p.order == [("started", 1), ("exited", 1)]
            assert p.started[1].pid > 0 and p.started[1].pgid > 0
            assert Path(tmp_path / "attempt-1" / "output.log").read_text().startswith("hello")
        finally:
            p.ex.close()

    run(body)


def test_a_program_that_cannot_start_exits_127_with_a_reason(impl, tmp_path):
    async def body() -> None:
        p = Probe(impl, asyncio.get_running_loop())
        try:
            req = request(tmp_path, 1, "")
            req.argv = [str(tmp_path / "no-such-program")]
            p.ex.spawn(req)
            info = await p.exit_of(1)
            assert info.exit_code == 127 and info.error and not info.uncharged
        finally:
            p.ex.close()

    run(body)


def test_stop_ends_the_whole_tree_sigterm_then_sigkill_after_the_grace(impl, tmp_path):
    child = tmp_path / "child.pid"
    # The leader and a detached grandchild both ignore SIGTERM: only the SIGKILL after the grace ends them.
    script = (f"trap '' TERM; setsid sh -c 'trap \"\" TERM; echo $$ > {child}.tmp; mv {child}.tmp {child};"
              f" while :; do sleep 0.05; done' & while :; do sleep 0.05; done")

    async def body() -> None:
        loop = asyncio.get_running_loop()
        p = Probe(impl, loop)
        try:
            p.ex.spawn(request(tmp_path, 1, script, kill_grace=0.5))
            await until(lambda: 1 in p.started and child.exists(), what="the grandchild")
            gpid = int(child.read_text())
            gstart = process_start_time(gpid)
            t0 = loop.time()
            p.ex.stop(1)
            info = await p.exit_of(1)
            assert loop.time() - t0 >= 0.4, "SIGKILL came before the grace period"
            assert info.signal == signal.SIGKILL or info.exit_code not in (0, None)
            assert not alive(gpid, gstart), "the detached grandchild survived the stop"
            assert not alive(p.started[1].pid, p.started[1].pid_start_time)
        finally:
            p.ex.close()

    run(body)


def test_a_live_attempt_is_adopted_by_a_new_executor(impl, tmp_path):
    go = tmp_path / "go"

    async def body() -> None:
        loop = asyncio.get_running_loop()
        first = Probe(impl, loop)
        first.ex.spawn(request(tmp_path, 1, f"while [ ! -e {go} ]; do sleep 0.02; done; exit 4"))
        await until(lambda: 1 in first.started, what="start")
        first.ex.close()  # the engine object is dropped; the attempt goes on
        second = Probe(impl, loop)
        try:
            adoption = second.ex.adopt(AttemptRecord(1, str(tmp_path / "attempt-1")))
            assert adoption.verdict is Verdict.LIVE
            assert adoption.started is not None and adoption.started.pid == first.started[1].pid
            go.touch()
            info = await second.exit_of(1)
            assert info.exit_code == 4 and not info.lost
            assert 1 not in first.exited
        finally:
            second.ex.close()

    run(body)


def test_an_exit_written_while_nobody_watched_is_settled(impl, tmp_path):
    go = tmp_path / "go"

    async def body() -> None:
        loop = asyncio.get_running_loop()
        first = Probe(impl, loop)
        first.ex.spawn(request(tmp_path, 1, f"while [ ! -e {go} ]; do sleep 0.02; done; exit 5"))
        await until(lambda: 1 in first.started, what="start")
        started = first.started[1]
        first.ex.close()
        go.touch()
        await until(lambda: not alive(started.shim_pid, started.shim_start_time), what="the supervisor to end")
        second = Probe(impl, loop)
        try:
            record = AttemptRecord(1, str(tmp_path / "attempt-1"), started.pgid)
            adoption = second.ex.adopt(record)
            assert adoption.verdict is Verdict.FINISHED
            assert adoption.exit is not None and adoption.exit.exit_code == 5 and not adoption.exit.lost
            assert second.ex.settle(record).exit_code == 5
            await asyncio.sleep(0)  # no callback follows a verdict that is not LIVE
            assert second.exited == {}
        finally:
            second.ex.close()

    run(body)


def test_an_attempt_whose_supervisor_vanished_is_lost_and_its_task_killed(impl, tmp_path):
    async def body() -> None:
        loop = asyncio.get_running_loop()
        first = Probe(impl, loop)
        first.ex.spawn(request(tmp_path, 1, "while :; do sleep 0.05; done"))
        await until(lambda: 1 in first.started, what="start")
        started = first.started[1]
        first.ex.close()
        impl.kill_supervisor(started)
        await until(lambda: not alive(started.shim_pid, started.shim_start_time), what="the supervisor to die")
        second = Probe(impl, loop)
        try:
            adoption = second.ex.adopt(AttemptRecord(1, str(tmp_path / "attempt-1"), started.pgid))
            assert adoption.verdict is Verdict.LOST
            assert adoption.exit is not None and adoption.exit.lost and not adoption.exit.uncharged
            await until(lambda: not alive(started.pid, started.pid_start_time), what="the orphaned task to be killed")
        finally:
            second.ex.close()

    run(body)


def test_an_attempt_that_never_started_is_lost_and_not_charged(impl, tmp_path):
    async def body() -> None:
        p = Probe(impl, asyncio.get_running_loop())
        try:
            adir = tmp_path / "attempt-9"
            adoption = p.ex.adopt(AttemptRecord(9, str(adir)))
            assert adoption.verdict is Verdict.LOST
            assert adoption.exit is not None and adoption.exit.lost and adoption.exit.uncharged
            # Decided for good: the same answer again, and a late start of it can no longer run it.
            assert p.ex.adopt(AttemptRecord(9, str(adir))).verdict is Verdict.LOST
        finally:
            p.ex.close()

    run(body)


def test_a_dead_launcher_is_restarted_and_reported(impl, tmp_path):
    if impl.kill_launcher is None:
        pytest.skip(f"the {impl.name} executor has no launcher process of its own")
    kill_launcher = impl.kill_launcher

    async def body() -> None:
        p = Probe(impl, asyncio.get_running_loop())
        try:
            assert p.ex.health().ok and p.ex.health().restarts == 0
            kill_launcher(p.ex)
            await until(lambda: p.health, what="a health report")
            assert "restarting" in p.health[0]
            await until(lambda: p.ex.health().ok and p.ex.health().restarts == 1, what="the launcher to be back")
            p.ex.spawn(request(tmp_path, 1, "exit 0"))
            info = await p.exit_of(1)
            assert info.exit_code == 0 and not info.uncharged
        finally:
            p.ex.close()

    run(body)
