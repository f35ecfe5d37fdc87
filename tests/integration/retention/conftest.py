"""Old runs for the retention tests: made by a real engine (zygote, shims, processes, SQLite) whose
store clock reads some days ago, their folders aged to match; and the ``edgeorch gc`` command."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import pytest

from edgeorch.engine.engine import Engine
from edgeorch.engine.files import claim_run_dir
from edgeorch.model import RunState
from edgeorch.pipelines import resolve_params, validate_path
from edgeorch.store import Store

DAY = 86400.0

PLAIN = """
[tasks.a]
command = ["sh", "-c", "echo {run_id} > {output_dir}/out.txt"]
outputs = ["out.txt"]
"""

CACHED = """
[tasks.a]
command = ["sh", "-c", "echo same > {output_dir}/out.txt"]
outputs = ["out.txt"]
cache = true
"""


class OldRuns:
    """Makes runs that finished ``days_ago`` (their rows and their folders' times say so)."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws

    def make(self, name: str, count: int = 1, *, days_ago: float) -> list[int]:
        """Run pipeline ``name`` ``count`` times in a row on one engine; each must succeed."""
        cfg = self.ws.config()
        pipeline = validate_path(cfg.pipelines_dir).pipelines[name]
        offset = days_ago * DAY

        async def main() -> list[int]:
            store = Store(cfg.state_file, clock=lambda: time.time() - offset)
            engine = Engine(cfg, store)
            await engine.start()
            ids = []
            try:
                for _ in range(count):
                    run_id = engine.submit(pipeline, resolve_params(pipeline, {}))
                    assert await asyncio.wait_for(engine.wait_run(run_id), 60) == RunState.SUCCEEDED
                    ids.append(run_id)
            finally:
                await engine.close()
                store.close()
            return ids

        ids = asyncio.run(main())
        for run_id in ids:
            self.age_folder(Path(self.row(run_id)["run_dir"]), days_ago)
        return ids

    def queued(self, name: str, *, days_ago: float) -> int:
        """A run created ``days_ago`` that no engine started yet (the daemon was stopped before it ran)."""
        cfg = self.ws.config()
        store = Store(cfg.state_file, clock=lambda: time.time() - days_ago * DAY)
        try:
            version = store.pipelines.record_version(name, "h", f"/{name}.toml", "")
            return store.runs.create(pipeline=name, version_id=version, params={}, trigger="test", actor=None,
                                     run_dir_for=lambda r: str(claim_run_dir(cfg.runs_dir, r)), tasks=[("a", "d")])
        finally:
            store.close()

    @staticmethod
    def age_folder(path: Path, days_ago: float) -> None:
        when = time.time() - days_ago * DAY
        os.utime(path, (when, when), follow_symlinks=False)

    @contextmanager
    def db(self) -> Iterator[sqlite3.Connection]:
        """A plain connection to the state file (read what the code under test wrote; no daemon writes meanwhile)."""
        conn = sqlite3.connect(self.ws.config().state_file)
        conn.row_factory = sqlite3.Row
        try:
            yield conn
            conn.commit()
        finally:
            conn.close()

    def row(self, run_id: int) -> dict[str, Any]:
        with self.db() as conn:
            row = conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        assert row is not None, f"no run {run_id}"
        return dict(row)

    def run_ids(self) -> list[int]:
        with self.db() as conn:
            return [r[0] for r in conn.execute("SELECT id FROM runs ORDER BY id")]

    def rows_of(self, run_id: int) -> dict[str, int]:
        """Rows of ``run_id`` in every table that has a ``run_id`` column, plus ``runs``."""
        from edgeorch.store.retention import KEPT_TABLES, RUN_TABLES

        with self.db() as conn:
            out = {t: conn.execute(f"SELECT COUNT(*) FROM {t} WHERE run_id = ?", (run_id,)).fetchone()[0]
                   for t in (*RUN_TABLES, *KEPT_TABLES)}
            out["runs"] = conn.execute("SELECT COUNT(*) FROM runs WHERE id = ?", (run_id,)).fetchone()[0]
        return out

    def snapshot(self) -> tuple[list[str], list[tuple[str, float, int]]]:
        """The whole state file (as SQL) and every path under the state dir with its mtime and size."""
        with self.db() as conn:
            dump = list(conn.iterdump())
        files = []
        for root, dirs, names in os.walk(self.ws.state):
            for n in dirs + names:
                p = os.path.join(root, n)
                if n.startswith("edgeorch.db") or n == "edgeorch.lock":
                    continue
                st = os.lstat(p)
                files.append((p, st.st_mtime, st.st_size))
        return dump, sorted(files)


@pytest.fixture
def old_runs(workspace) -> OldRuns:
    workspace.pipeline("plain", PLAIN)
    workspace.pipeline("cached", CACHED)
    return OldRuns(workspace)


@pytest.fixture
def gc(workspace):
    """``edgeorch gc ARGS...`` run in-process (``Workspace.invoke``): the CompletedProcess (never a traceback on
    stderr). tests/integration/retention/test_gc_crash.py runs the command as a real process, killed mid-way."""

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        proc = workspace.invoke("gc", *argv)
        assert "Traceback" not in proc.stderr, proc.stderr
        return proc

    return run
