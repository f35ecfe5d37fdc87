"""``[retention] inputs``: a settled input's record goes once it is old, its run removed and no file of it left in
the inbox or quarantine (the soak found the `inputs` table the one thing of the state file growing without bound:
~650 bytes per dropped file, kept forever)."""

from __future__ import annotations

import textwrap

from edgeorch.config import load_config
from edgeorch.store import Store

COLUMNS = "(pipeline, watch_folder, source_name, source_path, inbox_path, state, run_id, arrived_at, updated_at, removed_at)"


def _input(store: Store, name: str, state: str, *, run_id: int | None, inbox: bool, removed: bool, at: float) -> None:
    with store.transaction():
        store.db.conn.execute(f"INSERT INTO inputs {COLUMNS} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                              ("p", "/drop", name, f"/drop/{name}", f"/inbox/{name}" if inbox else None, state,
                               run_id, at, at, at if removed else None))


def test_only_old_settled_inputs_without_run_or_file_are_removed(tmp_path) -> None:
    store = Store(tmp_path / "state.db")
    with store.transaction():
        version = store.pipelines.record_version("p", "h" * 64, str(tmp_path / "p.toml"), "[tasks.a]\n")
        store.db.conn.execute("INSERT INTO runs (id, pipeline, pipeline_version_id, state, params, trigger, run_dir,"
                              " created_at) VALUES (7, 'p', ?, 'succeeded', '{}', 'x', '/runs/7', 0)", (version,))
    old, new = 1_000.0, 5_000.0
    _input(store, "gone.csv", "done", run_id=99, inbox=True, removed=True, at=old)  # run removed, file removed: goes
    _input(store, "kept-file.csv", "done", run_id=99, inbox=True, removed=False, at=old)  # its file is in the inbox
    _input(store, "kept-run.csv", "done", run_id=7, inbox=True, removed=True, at=old)  # its run is kept
    _input(store, "young.csv", "done", run_id=99, inbox=True, removed=True, at=new)  # too young
    _input(store, "link.csv", "refused", run_id=None, inbox=False, removed=False, at=old)  # never claimed: goes
    _input(store, "busy.csv", "started", run_id=99, inbox=True, removed=True, at=old)  # not settled
    _input(store, "quar.csv", "quarantined", run_id=99, inbox=True, removed=False, at=old)  # in quarantine still
    assert store.inputs.prune(2_000.0, actor="retention") == 2
    left = sorted(r[0] for r in store.db.conn.execute("SELECT source_name FROM inputs"))
    assert left == ["busy.csv", "kept-file.csv", "kept-run.csv", "quar.csv", "young.csv"]
    (record,) = [r for r in store.audit.records(limit=1000) if r["action"] == "inputs_pruned"]
    assert '"count":2' in record["details"]
    assert store.inputs.prune(2_000.0, actor="retention") == 0  # nothing more: no second record
    store.close()


def test_the_setting_is_read_as_a_duration(tmp_path) -> None:
    (tmp_path / "config.toml").write_text(textwrap.dedent("""\
        [retention]
        inputs = "90d"
        """))
    assert load_config(tmp_path / "config.toml").retention.inputs == 90 * 86400.0
