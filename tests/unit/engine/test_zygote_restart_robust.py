"""The task launcher (zygote) is restarted even when settling what it took with it fails (real processes)."""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any

from edgeorch.engine.executors.base import SpawnRequest
from edgeorch.engine.executors.local.executor import LocalExecutor


def test_the_zygote_is_restarted_when_a_lost_request_cannot_be_settled(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")  # the attempt's folder cannot be made under a file: settling it raises OSError
    exited: list[tuple[int, Any]] = []
    health: list[str] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        ex = LocalExecutor(loop, lambda *a: None, lambda aid, info: exited.append((aid, info)), health.append)
        ex.start()
        try:
            old = ex.zygote_pid
            assert old is not None
            os.kill(old, signal.SIGSTOP)  # the request is written but never read
            ex.spawn(SpawnRequest(attempt_id=1, argv=["true"], env={}, cwd=str(tmp_path),
                                  log_path=str(blocker / "a" / "output.log"), attempt_dir=str(blocker / "a"),
                                  log_max_bytes=0))
            os.kill(old, signal.SIGKILL)
            deadline = loop.time() + 20
            while ex.zygote_pid in (None, old):
                assert loop.time() < deadline, f"the launcher was not restarted (health: {health})"
                await asyncio.sleep(0.02)
            assert any("cannot settle the start request of attempt 1" in h for h in health)
            # Once its folder can be made, the lost request is settled: never run, not the task's fault.
            blocker.unlink()
            blocker.mkdir()
            while not exited:
                assert loop.time() < deadline, "the lost request was dropped, not settled"
                await asyncio.sleep(0.02)
            ((aid, info),) = exited
            assert aid == 1 and info.lost and info.uncharged
        finally:
            ex.close()

    asyncio.run(main())


def test_a_dead_zygotes_reply_pipe_is_closed_when_its_eof_came_before_the_death_notice(tmp_path):
    """EOF on the reply pipe first, then the pidfd's death notice: the pipe is closed, not kept forever."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        ex = LocalExecutor(loop, lambda *a: None, lambda *a: None, lambda *a: None)
        ex.start()
        try:
            z = ex._zygote
            assert z is not None and z.pidfd is not None
            loop.remove_reader(z.pidfd)  # hold the death notice back: the EOF is handled first
            os.kill(z.popen.pid, signal.SIGKILL)
            z.popen.wait()
            deadline = loop.time() + 20
            while not z.eof:
                assert loop.time() < deadline, "no EOF on the dead zygote's reply pipe"
                await asyncio.sleep(0.02)
            ex._on_zygote_death(z)  # the death notice, late
            assert z.popen.stdout is not None and z.popen.stdout.closed
            assert z not in ex._old
        finally:
            ex.close()

    asyncio.run(main())
