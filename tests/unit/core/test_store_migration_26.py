"""Migration 26 (a pruned data version keeps its record; gc names the removed readers of a version): a state file an
older edgeorch wrote opens with its versions live and nothing said gone."""

from __future__ import annotations

from edgeorch.store import Store


def test_migration_26_keeps_existing_versions_live_and_adds_the_readers_gone_table(tmp_path, state_before):
    db = tmp_path / "old.db"
    conn = state_before(db, "CREATE TABLE dataset_readers_gone")
    conn.execute("INSERT INTO datasets (id, name, created_at) VALUES (1, 'sales', 0)")
    conn.execute("INSERT INTO dataset_versions (dataset_id, version, created_at, source, source_path, files, size,"
                 " new_chunks, new_bytes, manifest_sha256) VALUES (1, 1, 0, 'add', '/d/day1.csv', 1, 8, 1, 8, 'm')")
    conn.commit()
    conn.close()
    store = Store(db)
    try:
        row = store.datasets.version("sales", 1)
        assert (row["pruned_at"], row["pruned_by"], row["source_path"]) == (None, None, "/d/day1.csv")
        assert store.datasets.pruned("sales") == []
        assert store.lineage.dataset_readers_gone(row["id"]) == []
        columns = [c[1] for c in store.db.conn.execute("PRAGMA table_info(dataset_readers_gone)")]
        assert columns == ["version_id", "run_id", "task", "removed_at", "actor"]
    finally:
        store.close()
