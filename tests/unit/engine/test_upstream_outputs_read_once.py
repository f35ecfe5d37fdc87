"""An upstream's artifacts are read from the state file once per run, whatever the number of its dependents,
and read again after its next outcome (real engine, real processes, real SQLite)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from edgeorch.model import RunState
from edgeorch.pipelines import resolve_params
from test_commit_then_memory import running_engine

FAN = """
[tasks.a]
command = ["sh", "-c", "echo made > {output_dir}/out.txt"]
outputs = ["out.txt"]

[tasks.b]
command = ["sh", "-c", "cat $EDGEORCH_UPSTREAM_A > {output_dir}/seen"]
needs = ["a"]

[tasks.c]
command = ["sh", "-c", "cat $EDGEORCH_UPSTREAM_A > {output_dir}/seen"]
needs = ["a"]
"""


def test_dependents_share_one_read_of_their_upstreams_artifacts(workspace):
    async def main() -> None:
        async with running_engine(workspace, "fan", FAN) as (engine, store, pipeline, _):
            reads: list[tuple[int, str]] = []
            real = store.outputs.latest_artifacts

            def counting(run_id: int, task: str) -> list:  # type: ignore[type-arg]
                reads.append((run_id, task))
                return real(run_id, task)

            store.outputs.latest_artifacts = counting  # type: ignore[method-assign]
            for _ in range(2):  # a second run reads them again: its own outcome, its own artifacts
                run_id = engine.submit(pipeline, resolve_params(pipeline, {}))
                assert await asyncio.wait_for(engine.wait_run(run_id), 30) == RunState.SUCCEEDED
                assert reads.count((run_id, "a")) == 1, reads
                rows = store.db.all("SELECT path FROM artifacts WHERE run_id = ? AND task = 'a'", (run_id,))
                assert len(rows) == 1 and Path(rows[0]["path"]).read_text() == "made\n"
                for task in ("b", "c"):
                    seen = Path(rows[0]["path"]).parents[1] / task / "seen"
                    assert seen.read_text() == "made\n", task

    asyncio.run(main())


SINK = """
[tasks.a]
command = ["sh", "-c", "echo a > {output_dir}/out.txt"]
outputs = ["out.txt"]

[tasks.b]
command = ["true"]

[tasks.c]
command = ["sh", "-c", "echo c > {output_dir}/out.txt"]
outputs = ["out.txt"]

[tasks.sink]
command = ["sh", "-c", "cat $EDGEORCH_UPSTREAM_A $EDGEORCH_UPSTREAM_C > {output_dir}/seen; echo \\"[$EDGEORCH_UPSTREAM_B]\\" >> {output_dir}/seen"]
needs = ["a", "b", "c"]
"""


def test_a_task_with_many_upstreams_not_read_yet_reads_them_in_one_query(workspace):
    """A fan's sink: its upstreams' artifacts come from one read of the run's, not one read per upstream; each
    upstream still gets its own files (none for one that declared none)."""
    async def main() -> None:
        async with running_engine(workspace, "sink", SINK) as (engine, store, pipeline, _):
            per_task: list[str] = []
            per_run: list[int] = []
            one, of_run = store.outputs.latest_artifacts, store.outputs.latest_artifacts_of_run

            def counting_one(run_id: int, task: str) -> list:  # type: ignore[type-arg]
                per_task.append(task)
                return one(run_id, task)

            def counting_run(run_id: int) -> dict:  # type: ignore[type-arg]
                per_run.append(run_id)
                return of_run(run_id)

            store.outputs.latest_artifacts = counting_one  # type: ignore[method-assign]
            store.outputs.latest_artifacts_of_run = counting_run  # type: ignore[method-assign]
            run_id = engine.submit(pipeline, resolve_params(pipeline, {}))
            assert await asyncio.wait_for(engine.wait_run(run_id), 30) == RunState.SUCCEEDED
            assert per_task == [] and per_run == [run_id]
            (row,) = store.db.all("SELECT path FROM artifacts WHERE run_id = ? AND task = 'a'", (run_id,))
            assert (Path(row["path"]).parents[1] / "sink" / "seen").read_text() == "a\nc\n[]\n"

    asyncio.run(main())
