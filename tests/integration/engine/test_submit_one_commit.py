"""A submitted run is recorded with its start in one transaction (one durable commit, issue 11): the run,
its tasks, ``running`` and its first ready tasks commit together, or nothing does."""

from __future__ import annotations

import asyncio
from contextlib import contextmanager

import pytest

from edgeorch.engine.engine import Engine
from edgeorch.model import RunState
from edgeorch.pipelines import resolve_params, validate_path
from edgeorch.store import Store


def _with_engine(workspace, act, name="two"):
    """Run ``await act(engine, store, pipeline)`` with a started engine on ``workspace``'s pipeline ``name``."""
    cfg = workspace.config()
    pipeline = validate_path(cfg.pipelines_dir).pipelines[name]

    async def main():
        store = Store(cfg.state_file)
        engine = Engine(cfg, store)
        await engine.start()
        try:
            return await act(engine, store, pipeline)
        finally:
            await engine.close()
            store.close()

    return asyncio.run(main())


@contextmanager
def _outermost_transactions(store):
    """Yield a list that gets each outermost transaction's ``durable`` flag while the block runs (a nested
    one is a SAVEPOINT of its caller's and commits nothing by itself)."""
    db_class, seen = type(store.db), []
    outer = db_class.transaction

    def counting(self, **kw):
        if not self._depth:
            seen.append(kw.get("durable", True))
        return outer(self, **kw)

    db_class.transaction = counting
    try:
        yield seen
    finally:
        db_class.transaction = outer


@pytest.fixture
def two(workspace):
    workspace.pipeline("two", """
        [tasks.a]
        command = ["true"]
        [tasks.b]
        command = ["true"]
        needs = ["a"]
    """)
    return workspace


def test_submit_commits_the_run_and_its_start_once(two):
    async def act(engine, store, pipeline):
        # The first run of a pipeline version also records the version (its own transaction, once).
        first = engine.submit(pipeline, resolve_params(pipeline, {}))
        assert await asyncio.wait_for(engine.wait_run(first), 30) == RunState.SUCCEEDED
        with _outermost_transactions(store) as commits:
            run_id = engine.submit(pipeline, resolve_params(pipeline, {}))
        assert commits == [True], commits  # one outermost (durable) transaction for create + start
        run = store.runs.get(run_id)
        assert run["state"] == RunState.RUNNING
        assert {t["name"]: t["state"] for t in store.runs.tasks_of(run_id)} == {"a": "ready", "b": "pending"}
        assert await asyncio.wait_for(engine.wait_run(run_id), 30) == RunState.SUCCEEDED

    _with_engine(two, act)


def test_a_start_that_fails_records_no_run(two):
    async def act(engine, store, pipeline):
        def broken(run_id, pipeline=None):
            raise RuntimeError("activation failed")

        engine._record_activation = broken
        with pytest.raises(RuntimeError, match="activation failed"):
            engine.submit(pipeline, resolve_params(pipeline, {}))
        assert store.runs.list() == [] and engine.runs == {}

    _with_engine(two, act)


def test_a_retry_commits_its_reset_and_its_start_once(workspace, tmp_path):
    flag = tmp_path / "fixed"
    workspace.pipeline("flaky", f"""
        [tasks.a]
        command = ["true"]
        [tasks.b]
        command = ["sh", "-c", "test -e {flag}"]
        needs = ["a"]
    """)
    async def act(engine, store, pipeline):
        run_id = engine.submit(pipeline, resolve_params(pipeline, {}))
        assert await asyncio.wait_for(engine.wait_run(run_id), 30) == RunState.FAILED
        flag.write_text("")
        with _outermost_transactions(store) as commits:
            redo = await engine.resume(run_id)
        assert redo == ["b"]
        # The reset, `queued`, `running` and b ready: one durable commit (b's start may follow: not durable).
        assert [c for c in commits if c] == [True], commits
        assert await asyncio.wait_for(engine.wait_run(run_id), 30) == RunState.SUCCEEDED

    _with_engine(workspace, act, "flaky")
