"""``edgeorch retry`` brings a quarantined input back to the path its run was given (real SQLite, real files)."""

from __future__ import annotations

import os
from pathlib import Path

from edgeorch.store.store import Store
from edgeorch.triggers.drop.claim import make_claim_folder
from edgeorch.triggers.drop.retry import restore_inputs_for_retry


def test_an_input_quarantined_without_its_path_in_the_reason_is_found_through_the_runs_env(tmp_path):
    store = Store(tmp_path / "state.db", clock=lambda: 1000.0)
    try:
        inbox, qdir = tmp_path / "inbox", tmp_path / "quarantine"
        holder: dict[str, Path] = {}

        def inbox_for(iid: int) -> str:
            holder["p"] = make_claim_folder(inbox, iid) / "data.csv"
            return str(holder["p"])

        iid = store.inputs.record_intent(pipeline="p", folder="/drop", source="/drop/data.csv", dev=1, ino=2, size=3,
                                         inbox_for=inbox_for)
        claimed = holder["p"]
        claimed.write_text("content\n")
        store.inputs.record_claimed(iid, 8, "ab" * 32)
        version = store.pipelines.record_version("p", "h", "/p.toml", "")
        run_id = store.runs.create(pipeline="p", version_id=version, params={}, trigger=f"input:{iid}", actor="watch",
                                   run_dir_for=lambda r: str(tmp_path / "runs" / str(r)), tasks=[("a", "h")],
                                   env={"EDGEORCH_INPUT": str(claimed)})
        store.inputs.record_started(iid, run_id)
        # Quarantined by an older edgeorch: the reason document does not keep the claimed path.
        qdir.mkdir()
        os.rename(claimed, qdir / "data.csv")
        (qdir / "data.csv.reason.json").write_text("{}\n")
        store.inputs.record_state(iid, "quarantined", reason="run failed", inbox_path=str(qdir / "data.csv"))

        assert restore_inputs_for_retry(store, run_id) == [claimed]
        assert claimed.read_text() == "content\n"
        assert store.inputs.get(iid)["state"] == "started"
        # The file differs from what was recorded (repaired in quarantine): the record follows the bytes that run.
        import hashlib

        rec = store.inputs.get(iid)
        assert (rec["size"], rec["sha256"]) == (8, hashlib.sha256(b"content\n").hexdigest())
        (changed,) = [r for r in store.audit.records() if r["action"] == "input_content_changed"]
        assert '"was_sha256":"' + "ab" * 32 in changed["details"]
    finally:
        store.close()


def test_an_input_whose_run_was_cancelled_is_not_processed_content(tmp_path):
    """A cancelled drop run counted as processed: a copy of its file dropped later was skipped as a duplicate
    ("already processed by ... (run 299)"), though nothing had processed it."""
    from edgeorch.model import RunState

    store = Store(tmp_path / "state.db", clock=lambda: 1000.0)
    try:
        iid = store.inputs.record_intent(pipeline="p", folder="/drop", source="/drop/x.csv", dev=1, ino=2, size=3,
                                         inbox_for=lambda i: str(tmp_path / f"in-{i}" / "x.csv"))
        store.inputs.record_claimed(iid, 3, "cd" * 32)
        version = store.pipelines.record_version("p", "h", "/p.toml", "")
        run_id = store.runs.create(pipeline="p", version_id=version, params={}, trigger=f"input:{iid}", actor="watch",
                                   run_dir_for=lambda r: str(tmp_path / "runs" / str(r)), tasks=[("a", "h")])
        store.inputs.record_started(iid, run_id)
        assert store.inputs.processed_sha("p", "cd" * 32)["id"] == iid  # running: a copy now is a duplicate
        store.runs.set_state(run_id, RunState.RUNNING)
        store.runs.set_state(run_id, RunState.CANCELLED, reason="cancelled by root")
        store.inputs.record_state(iid, "done", reason=f"run {run_id} was cancelled")
        assert store.inputs.processed_sha("p", "cd" * 32) is None
    finally:
        store.close()
