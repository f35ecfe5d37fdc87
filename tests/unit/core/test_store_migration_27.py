"""Migration 27 (a run records the pipeline file it was started from): a state file an older edgeorch wrote opens
with its runs naming their version's file, as before."""

from __future__ import annotations

from edgeorch.store import Store


def test_migration_27_leaves_older_runs_with_their_versions_file(tmp_path, state_before):
    db = tmp_path / "old.db"
    conn = state_before(db, "ALTER TABLE runs ADD COLUMN pipeline_file")
    conn.execute("INSERT INTO pipeline_versions (id, name, content_hash, source_file, source_text, created_at)"
                 " VALUES (1, 'nightly', 'h', '/srv/p/nightly.toml', '', 0)")
    conn.execute("INSERT INTO runs (id, pipeline, pipeline_version_id, state, params, trigger, run_dir, created_at)"
                 " VALUES (1, 'nightly', 1, 'succeeded', '{}', 'cli', '/r/1', 0)")
    conn.commit()
    conn.close()
    store = Store(db)
    try:
        run = store.runs.get(1)
        assert run["pipeline_file"] is None
        assert store.pipelines.file_of_run(run) == "/srv/p/nightly.toml"
    finally:
        store.close()
