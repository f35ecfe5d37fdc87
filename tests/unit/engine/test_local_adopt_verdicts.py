"""What the local executor decides for an attempt left by an earlier engine (real attempt folders)."""

from __future__ import annotations

import asyncio

from edgeorch.engine.executors.base import AttemptRecord, Verdict
from edgeorch.engine.executors.local.executor import LocalExecutor, settle_unowned


def _executor(loop: asyncio.AbstractEventLoop) -> LocalExecutor:
    return LocalExecutor(loop, lambda *a: None, lambda *a: None)


def test_an_attempt_abandoned_by_an_earlier_recovery_is_lost_uncharged(tmp_path):
    """An earlier engine's recovery claimed the attempt as abandoned, then stopped before recording it:
    the attempt never ran, so it is edgeorch's failure, not the task's (same verdict as a fresh claim)."""
    adir = tmp_path / "attempts" / "t.1"
    assert settle_unowned(str(adir))  # the earlier recovery's claim
    loop = asyncio.new_event_loop()
    try:
        adoption = _executor(loop).adopt(AttemptRecord(1, str(adir)))
    finally:
        loop.close()
    assert adoption.verdict is Verdict.LOST
    assert adoption.exit is not None and adoption.exit.lost and adoption.exit.uncharged


def test_an_attempt_never_claimed_is_lost_uncharged(tmp_path):
    adir = tmp_path / "attempts" / "t.1"
    loop = asyncio.new_event_loop()
    try:
        adoption = _executor(loop).adopt(AttemptRecord(1, str(adir)))
    finally:
        loop.close()
    assert adoption.verdict is Verdict.LOST
    assert adoption.exit is not None and adoption.exit.lost and adoption.exit.uncharged
