"""The model service's drain: an in-process run waits on its deployments and then goes on."""

from __future__ import annotations

import asyncio

import pytest

from edgeorch.models.service import ModelService
from edgeorch.store import Store


@pytest.mark.timeout(30)
def test_drain_returns_when_a_deployment_finished_but_its_done_callback_has_not_run_yet(tmp_path) -> None:
    """Seen in CI on Python 3.12 and 3.13: a run's deployment finished in the loop step that woke the run's waiter;
    drain() gathered the finished task, which completes at once there (eager gather), looped without yielding, and
    the done callback that removes the task never ran: the run hung until pytest-timeout killed it."""
    store = Store(tmp_path / "state.db")
    service = ModelService(store, serving_dir=tmp_path / "serving", publish=lambda e: None, clock=store.clock)

    async def deployment() -> str:
        return "deployed"

    async def slower(release: asyncio.Event) -> str:
        await release.wait()
        return "deployed later"

    async def main() -> list[bool]:
        release = asyncio.Event()
        task = service._spawn(deployment())
        await asyncio.sleep(0)  # the task's step ran in this loop step; its done callback waits for the next
        assert task.done() and task in service._tasks, "the state this test is about was not reached"
        await service.drain()  # hung here, spinning
        later = service._spawn(slower(release))  # and one still running is waited for
        asyncio.get_running_loop().call_later(0.05, release.set)
        await service.drain()
        return [t.done() for t in (task, later)]

    try:
        assert asyncio.run(main()) == [True, True]  # returned, after the one still running
    finally:
        store.close()
