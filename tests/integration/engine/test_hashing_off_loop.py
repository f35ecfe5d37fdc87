"""Hashing outputs and checkpoints never freezes the engine's loop, nor follows links out of a task's folders (issue 9, item 14)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from edgeorch.engine.engine import Engine
from edgeorch.engine.requests import RunRequests
from edgeorch.errors import ConflictError
from edgeorch.model import RunState
from edgeorch.store import Store

BIG = 1 << 30  # 1 GiB, sparse: costs no disk, but every byte is read and hashed


async def measure_lag(lags: list[float], busy: Callable[[], bool], phase: Callable[[], bool]) -> bool:
    """Ping the loop every 10 ms while ``busy()``, appending to ``lags`` the CPU time the loop's own thread
    used from each ping to the next (``time.thread_time``).

    Work done on the loop stalls it for as long as it computes, and shows here as that much CPU time
    in one gap: hashing 1 GiB on the loop costs over a second of it. Wall-clock lateness would also
    count the time the whole process waits for a core, which on a busy machine (pytest-xdist workers,
    other tests' processes) has nothing to do with the code under test; this thread's CPU time does
    not grow while it waits. Reading the sparse test file is CPU work too (the kernel copies zero
    pages), so a read done on the loop counts as well.

    Returns whether ``phase()`` (the hashing being measured) was seen at least once.
    """
    seen = False
    while busy():
        t0 = time.thread_time()
        await asyncio.sleep(0.01)
        lags.append(time.thread_time() - t0)
        seen = seen or phase()
    return seen


def test_the_loop_keeps_answering_while_a_large_output_is_hashed(workspace, harness):
    workspace.pipeline("big", f"""
        [tasks.make]
        command = ["truncate", "-s", "{BIG}", "{{output_dir}}/model.bin"]
        outputs = ["model.bin"]
    """)
    lags: list[float] = []

    said: list[dict[str, str]] = []  # what `show` and `why` say of the task meanwhile (Engine.hashing)

    async def probe(engine, run_id):
        # A ping every 10 ms until the run is over: how late does the loop run it?
        seen = await measure_lag(lags, lambda: run_id in engine.runs,
                                 lambda: bool(engine._settling) and not said.append(engine.hashing(run_id)))
        assert seen, "the run ended without a hashing phase to measure"

    run_id, state = harness.run("big", during=probe, timeout=120)
    assert state == RunState.SUCCEEDED
    # Its state said `running` for as long as the gigabyte was hashed, with no word of why.
    assert {"make": "attempt 1 ended: hashing and recording its outputs and checkpoints"} in said, said
    (art,) = harness.store().outputs.latest_artifacts(run_id, "make")
    assert art["size"] == BIG
    assert art["sha256"] == "49bc20df15e412a64472421e13fe86ff1c5165e18b2afccf160d4dc19fe68a14"  # sha256 of 1 GiB of zeros
    assert max(lags) < 0.25, f"the loop computed for {max(lags):.2f}s without answering"


def test_a_checkpoint_folder_replaced_by_a_link_is_refused_not_walked(workspace, harness, tmp_path):
    outside = tmp_path / "foreign"
    outside.mkdir()
    (outside / "secret.txt").write_text("not the task's")
    workspace.pipeline("link", f"""
        [tasks.t]
        command = ["sh", "-c", "rmdir $EDGEORCH_CHECKPOINT_DIR && ln -s {outside} $EDGEORCH_CHECKPOINT_DIR"]
    """)
    run_id, state = harness.run("link")
    assert state == RunState.FAILED
    store = harness.store()
    assert store.outputs.checkpoints_of(run_id) == []
    (attempt,) = store.attempts.of_run(run_id, "t")
    assert "checkpoint folder refused" in attempt["reason"] and "symbolic link" in attempt["reason"]
    assert str(outside) in attempt["reason"]


def test_an_output_that_is_a_link_is_refused(workspace, harness, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("x")
    workspace.pipeline("outlink", f"""
        [tasks.t]
        command = ["sh", "-c", "echo a > $EDGEORCH_OUTPUT_DIR/real.txt; ln -s real.txt $EDGEORCH_OUTPUT_DIR/out.txt"]
        outputs = ["out.txt"]
    """)
    run_id, state = harness.run("outlink")
    assert state == RunState.FAILED
    (attempt,) = harness.store().attempts.of_run(run_id, "t")
    assert "symbolic link" in attempt["reason"]
    assert harness.store().outputs.artifacts_of(run_id) == []


def test_the_loop_keeps_answering_while_a_large_cached_output_is_verified(workspace, harness):
    workspace.pipeline("bigcache", f"""
        [tasks.make]
        command = ["truncate", "-s", "{BIG}", "{{output_dir}}/model.bin"]
        outputs = ["model.bin"]
        cache = true
    """)
    first, state = harness.run("bigcache", timeout=120)
    assert state == RunState.SUCCEEDED
    lags: list[float] = []

    async def probe(engine, run_id):
        seen = await measure_lag(lags, lambda: run_id in engine.runs, lambda: bool(engine._cache_checks))
        assert seen, "the run ended without verifying the cached output"

    second, state = harness.run("bigcache", during=probe, timeout=120)
    assert state == RunState.SUCCEEDED
    (row,) = harness.store().runs.tasks_of(second)
    assert row["state"] == "skipped"
    assert harness.store().attempts.of_run(second, "make") == []
    assert max(lags) < 0.25, f"the loop computed for {max(lags):.2f}s without answering"


def test_the_loop_keeps_answering_while_a_large_declared_input_is_hashed(workspace, harness):
    path = workspace.pipeline("biginput", """
        [tasks.read]
        command = ["true"]
        inputs = ["big.bin"]
    """)
    with open(path.parent / "big.bin", "wb") as f:
        f.truncate(BIG)
    lags: list[float] = []

    said: list[dict[str, str]] = []

    async def probe(engine, run_id):
        seen = await measure_lag(lags, lambda: run_id in engine.runs,
                                 lambda: bool(engine._inputs_hashing) and not said.append(engine.waiting_reasons(run_id)))
        assert seen, "the run ended without an input-hashing phase to measure"

    run_id, state = harness.run("biginput", during=probe, timeout=120)
    assert state == RunState.SUCCEEDED
    assert {"read": "hashing its declared inputs before it is queued"} in said, said  # `why` and `show` say it
    (row,) = harness.store().lineage.consumed_by(run_id, "read")
    assert row["sha256"] == "49bc20df15e412a64472421e13fe86ff1c5165e18b2afccf160d4dc19fe68a14"
    assert max(lags) < 0.25, f"the loop computed for {max(lags):.2f}s without answering"


def _retry_through_the_front_door(workspace, run_id: int, *, during=None, hooks=(), timeout: float = 120):
    """Resume ``run_id`` with ``RunRequests.resume`` on a fresh engine; ``during(engine)`` runs alongside (async).

    Returns (tasks to run again, the run's final state, what ``during`` returned).
    """
    cfg = workspace.config()

    async def main():
        store = Store(cfg.state_file)
        engine = Engine(cfg, store)
        await engine.start()
        try:
            door = RunRequests(engine, lambda name: (_ for _ in ()).throw(AssertionError("retry looks nothing up")))
            door.before_resume.extend(hooks)
            resume = asyncio.ensure_future(door.resume(run_id))
            seen = await during(engine, resume) if during is not None else None
            redo = await resume
            state = await asyncio.wait_for(engine.wait_run(run_id), timeout)
        finally:
            await engine.close()
            store.close()
        return redo, state, seen

    return asyncio.run(main())


BIG_THEN_CHECK = f"""
[tasks.make]
command = ["truncate", "-s", "{BIG}", "{{output_dir}}/model.bin"]
outputs = ["model.bin"]
[tasks.check]
command = ["sh", "-c", "[ -f {{pipeline_dir}}/fixed ]"]
needs = ["make"]
"""


def test_the_loop_keeps_answering_while_a_retry_verifies_a_large_output(workspace, harness):
    # A retry re-hashes the recorded outputs of the tasks that succeeded (to rerun those that lost them):
    # 1 GiB of them must not stall the loop (the daemon's socket, its watchdog).
    workspace.pipeline("bigretry", BIG_THEN_CHECK)
    run_id, state = harness.run("bigretry", timeout=120)
    assert state == RunState.FAILED
    (workspace.pipelines / "fixed").touch()
    lags: list[float] = []

    async def probe(engine, resume):
        return await measure_lag(lags, lambda: not resume.done(), lambda: bool(engine._settling))

    redo, state, verifying_seen = _retry_through_the_front_door(workspace, run_id, during=probe)
    assert verifying_seen, "the retry was decided without a verification phase to measure"
    assert redo == ["check"]  # make's 1 GiB output was verified intact: not rerun
    assert state == RunState.SUCCEEDED
    assert [a["number"] for a in harness.store().attempts.of_run(run_id, "make")] == [1]
    assert max(lags) < 0.25, f"the loop computed for {max(lags):.2f}s without answering"


def test_before_resume_hooks_run_only_for_a_decided_retry_and_may_refuse_it(workspace, harness):
    workspace.pipeline("hooked", """
        [tasks.t]
        command = ["sh", "-c", "[ -f {pipeline_dir}/fixed ]"]
        """)
    run_id, state = harness.run("hooked")
    assert state == RunState.FAILED
    called: list[int] = []

    def refuse(rid: int) -> None:
        called.append(rid)
        raise ConflictError("refused by the hook")

    with pytest.raises(ConflictError, match="refused by the hook"):
        _retry_through_the_front_door(workspace, run_id, hooks=[refuse])
    assert called == [run_id]
    store = harness.store()
    assert store.runs.get(run_id)["state"] == "failed"  # nothing recorded
    assert [r["state"] for r in store.runs.tasks_of(run_id)] == ["failed"]

    (workspace.pipelines / "fixed").touch()
    redo, state, _ = _retry_through_the_front_door(workspace, run_id, hooks=[called.append])
    assert (redo, state, called) == (["t"], RunState.SUCCEEDED, [run_id, run_id])

    # Nothing left to retry: the engine refuses before any hook runs (a hook may move files).
    with pytest.raises(ConflictError, match="nothing to retry"):
        _retry_through_the_front_door(workspace, run_id, hooks=[called.append])
    assert called == [run_id, run_id]


def test_a_retry_still_verifying_when_the_engine_closes_is_refused_and_records_nothing(workspace, harness):
    workspace.pipeline("bigretry", BIG_THEN_CHECK)
    run_id, state = harness.run("bigretry", timeout=120)
    assert state == RunState.FAILED
    cfg = workspace.config()

    async def main():
        store = Store(cfg.state_file)
        engine = Engine(cfg, store)
        await engine.start()
        try:
            resume = asyncio.ensure_future(RunRequests(engine, lambda name: None).resume(run_id))  # type: ignore
            deadline = asyncio.get_running_loop().time() + 30
            while not engine._settling:  # the verification is queued: close the engine under it
                assert not resume.done() and asyncio.get_running_loop().time() < deadline, "no verification seen"
                await asyncio.sleep(0.001)
        finally:
            await engine.close()
            store.close()
        with pytest.raises(ConflictError, match="stopped before the retry was applied"):
            await asyncio.wait_for(resume, 10)

    asyncio.run(main())
    store = harness.store()
    assert store.runs.get(run_id)["state"] == "failed"
    assert {r["name"]: r["state"] for r in store.runs.tasks_of(run_id)} == {"make": "succeeded", "check": "failed"}
