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
