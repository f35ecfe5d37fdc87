"""What container tasks need of the local executor, with plain processes: SpawnRequest.cleanup run by the shim
after a stop (before the exit is reported), not after a task that ended by itself, and by settle() when the
shim vanished (a container's record removed); pids() of an attempt include processes outside its group (a
container's, below its runtime's monitor), for the GPU watcher."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path

from edgeorch.engine.executors.base import ExitInfo, SpawnRequest, StartedInfo
from edgeorch.engine.executors.local.executor import LocalExecutor


class Probe:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.started: dict[int, StartedInfo] = {}
        self.exited: dict[int, ExitInfo] = {}
        self.ex = LocalExecutor(loop, self.started.__setitem__, self.exited.__setitem__)
        self.ex.start()


async def until(cond, timeout: float = 30, what: str = "condition") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def _request(tmp: Path, attempt_id: int, script: str, marker: Path) -> SpawnRequest:
    adir = tmp / f"attempt-{attempt_id}"
    return SpawnRequest(attempt_id=attempt_id, argv=["/bin/sh", "-c", script], env=dict(os.environ), cwd=str(tmp),
                        log_path=str(adir / "output.log"), attempt_dir=str(adir), log_max_bytes=1 << 20,
                        kill_grace=0.5, cleanup=["/bin/sh", "-c", f"echo cleaned >> {marker}"])


def test_a_stopped_attempt_is_cleaned_up_before_its_exit_is_reported(tmp_path):
    marker = tmp_path / "marker"

    async def body() -> None:
        p = Probe(asyncio.get_running_loop())
        try:
            p.ex.spawn(_request(tmp_path, 1, "trap '' TERM; echo up; while true; do sleep 0.05; done", marker))
            log = tmp_path / "attempt-1" / "output.log"
            # Stopped once the task ignores SIGTERM ("up" follows the trap): only the SIGKILL after the grace ends it.
            await until(lambda: 1 in p.started and log.exists() and b"up" in log.read_bytes(), what="the start")
            p.ex.stop(1)
            await until(lambda: 1 in p.exited, what="the end")
            assert marker.read_text() == "cleaned\n"  # done when the exit is reported, not after
            assert p.exited[1].signal == 9
        finally:
            p.ex.close()

    asyncio.run(asyncio.wait_for(body(), 60))


def test_an_attempt_that_ends_by_itself_needs_no_cleanup(tmp_path):
    marker = tmp_path / "marker"

    async def body() -> None:
        p = Probe(asyncio.get_running_loop())
        try:
            p.ex.spawn(_request(tmp_path, 1, "exit 4", marker))
            await until(lambda: 1 in p.exited, what="the end")
            assert p.exited[1].exit_code == 4
            assert not marker.exists()
            proc = json.loads((tmp_path / "attempt-1" / "proc.json").read_text())
            assert proc["cleanup"][0] == "/bin/sh"  # kept for whoever settles the attempt if its shim vanishes
        finally:
            p.ex.close()

    asyncio.run(asyncio.wait_for(body(), 60))


def test_settling_an_attempt_whose_shim_vanished_runs_its_cleanup(tmp_path):
    marker = tmp_path / "marker"

    async def body() -> None:
        p = Probe(asyncio.get_running_loop())
        try:
            p.ex.spawn(_request(tmp_path, 1, "echo up; exec sleep 60", marker))
            await until(lambda: 1 in p.started, what="the start")
            os.kill(p.started[1].shim_pid, signal.SIGKILL)  # the supervisor dies without an exit record
            await until(lambda: 1 in p.exited, what="the end")
            assert p.exited[1].lost
            await until(marker.exists, what="the cleanup (started in its own session)")
        finally:
            p.ex.close()

    asyncio.run(asyncio.wait_for(body(), 60))


def test_pids_include_processes_that_left_the_tasks_group(tmp_path):
    marker = tmp_path / "marker"
    pidfile = tmp_path / "escaped"

    async def body() -> None:
        p = Probe(asyncio.get_running_loop())
        try:
            # A child in a session of its own (as conmon and a container's processes are): not in the task's group.
            script = f"setsid sh -c 'echo $$ > {pidfile}.tmp; mv {pidfile}.tmp {pidfile}; exec sleep 60' & wait"
            p.ex.spawn(_request(tmp_path, 1, script, marker))
            await until(lambda: 1 in p.started and pidfile.exists(), what="the escaped child")
            escaped = int(pidfile.read_text())
            assert os.getpgid(escaped) != p.started[1].pgid
            assert escaped in p.ex.pids([1])[1] and p.started[1].pid in p.ex.pids([1])[1]
            p.ex.stop(1)
            await until(lambda: 1 in p.exited, what="the end")
        finally:
            p.ex.close()

    asyncio.run(asyncio.wait_for(body(), 60))


def _forwarding(tmp: Path, attempt_id: int, script: str) -> SpawnRequest:
    """A request whose leader forwards a stop itself (as a container's client does); a long grace, so an end
    before it is the processes' own."""
    adir = tmp / f"attempt-{attempt_id}"
    return SpawnRequest(attempt_id=attempt_id, argv=["/bin/sh", "-c", script], env=dict(os.environ), cwd=str(tmp),
                        log_path=str(adir / "output.log"), attempt_dir=str(adir), log_max_bytes=1 << 20,
                        kill_grace=60, forwards_stop=True)


# Two children that report a SIGTERM: one in the leader's group (as the helper a container client starts to
# forward a signal), one in a session of its own (as the runtime's monitor); each says when it is up.
_CHILDREN = ("sh -c 'trap \"echo group child TERM; exit 0\" TERM; trap \"echo group child USR1; exit 0\" USR1;"
             " echo > {up}.1; while true; do sleep 0.05; done' & a=$!; "
             "setsid sh -c 'trap \"echo session child TERM; exit 0\" TERM; trap \"echo session child USR1; exit 0\" USR1;"
             " echo > {up}.2; while true; do sleep 0.05; done' & b=$!; ")


def test_a_stop_of_a_forwarding_leader_signals_the_leader_alone(tmp_path):
    up = tmp_path / "up"

    async def body() -> None:
        p = Probe(asyncio.get_running_loop())
        try:
            # The leader passes the stop on (as USR1, to tell it from a SIGTERM of the shim's) and ends with its code.
            script = _CHILDREN.format(up=up) + ("trap 'echo leader TERM; kill -USR1 $a $b; wait $a; wait $b; exit 5' TERM;"
                                                " echo > {up}.0; while true; do sleep 0.05; done").format(up=up)
            p.ex.spawn(_forwarding(tmp_path, 1, script))
            # Stopped once all three are up, the leader's trap included (a stop before it would kill the leader).
            await until(lambda: 1 in p.started and all(Path(f"{up}.{i}").exists() for i in range(3)),
                        what="the start")
            p.ex.stop(1)
            await until(lambda: 1 in p.exited, what="the end")
            assert p.exited[1].exit_code == 5  # the leader's own end, long before the grace's SIGKILL
            lines = sorted((tmp_path / "attempt-1" / "output.log").read_text().splitlines())
            assert lines == ["group child USR1", "leader TERM", "session child USR1"]  # no SIGTERM of the shim's
        finally:
            p.ex.close()

    asyncio.run(asyncio.wait_for(body(), 60))


def test_what_a_forwarding_leader_leaves_behind_gets_sigterm_when_it_ends(tmp_path):
    up = tmp_path / "up"

    async def body() -> None:
        p = Probe(asyncio.get_running_loop())
        try:
            # The leader ends on the stop without passing it on: its children then get the SIGTERM from the shim.
            script = _CHILDREN.format(up=up) + (f"trap 'echo leader TERM; exit 6' TERM; echo > {up}.0;"
                                                " while true; do sleep 0.05; done")
            p.ex.spawn(_forwarding(tmp_path, 1, script))
            # Stopped once all three are up, the leader's trap included (a stop before it would kill the leader).
            await until(lambda: 1 in p.started and all(Path(f"{up}.{i}").exists() for i in range(3)),
                        what="the start")
            p.ex.stop(1)
            await until(lambda: 1 in p.exited, what="the end")
            assert p.exited[1].exit_code == 6
            # (Their sleeps get it too: a shell may print "Terminated" for one.)
            lines = set((tmp_path / "attempt-1" / "output.log").read_text().splitlines()) - {"Terminated"}
            assert lines == {"group child TERM", "leader TERM", "session child TERM"}  # not the grace's SIGKILL
        finally:
            p.ex.close()

    asyncio.run(asyncio.wait_for(body(), 60))
