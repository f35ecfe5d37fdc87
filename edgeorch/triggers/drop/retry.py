"""A retried run's drop-folder inputs brought back from quarantine (``edgeorch retry``)."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from ...errors import EdgeorchError, NotFoundError
from ...durable import sync_dirs
from .claim import hash_file
from .quarantine import REASON_SUFFIX

log = logging.getLogger("edgeorch.triggers")


def restore_inputs_for_retry(store: Any, run_id: int) -> list[Path]:
    """Bring the quarantined inputs of ``run_id`` back to the paths its tasks were given; returns them.

    Called by the retry path (``Engine.resume``) before the run is queued again, so the retried
    tasks find their input where their params and variables say (``<inbox>/in-<id>/<name>``).
    Each restored input is ``started`` again (its run settles it anew: ``done``, or back to
    quarantine when the retry fails too). An input that cannot come back (requeued meanwhile,
    its quarantined file removed, its old path taken) is left as it is, with an event saying why:
    the retry then fails with the task's own error, as it would for any missing file.

    Raises :class:`NotFoundError` naming the input, before anything moves, when the inbox
    retention rule (``[inbox] keep``) removed the file of one of the run's inputs: the run's
    tasks could never get it back.
    """
    inputs = store.inputs.all_of_run(run_id)
    gone = [rec for rec in inputs if rec.get("removed_at") is not None]
    if gone:
        rec = gone[0]
        raise NotFoundError(
            f"run {run_id} cannot be retried: the file of its input {rec['id']} ({rec['source_name']}) was removed "
            f"by the inbox retention rule ([inbox] keep) at {_iso(rec['removed_at'])}"
            + (f" (and {len(gone) - 1} more input(s))" if len(gone) > 1 else ""),
            value=rec["inbox_path"], hint="drop the file into its watched folder again to start a new run")
    restored: list[Path] = []
    for rec in inputs:
        why = GONE_BEFORE_THE_RETRY.get(rec["state"])
        if why is None and rec["state"] == "quarantined":
            try:
                restored.append(_restore_one(store, run_id, rec))
                continue
            except (OSError, EdgeorchError) as exc:
                why = exc.render() if isinstance(exc, EdgeorchError) else str(exc)
        if why is None:
            continue  # where its run left it (done: a cancelled run's; in its claim folder still)
        log.warning("input %s not restored for the retry of run %s: %s", rec["id"], run_id, why)
        store.events.add("input_not_restored", f"input {rec['id']} not restored for the retry of run {run_id}: {why}",
                         run_id=run_id, actor="watch", data={"input_id": rec["id"]})
    return restored


GONE_BEFORE_THE_RETRY = {
    "requeued": "it was requeued meanwhile (`edgeorch requeue`: its file went back to its drop folder, a new input)",
    "lost": "its claimed file left the inbox (input state lost)",
}
"""The input states of a run's input whose file its retry cannot get back, and why (an ``input_not_restored``
event each: a requeued input was skipped in silence, and the retry failed on a missing file, unexplained)."""


def _iso(ts: float) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds")


def _restore_one(store: Any, run_id: int, rec: dict[str, Any]) -> Path:
    qpath = Path(rec["inbox_path"] or "")
    if not rec["inbox_path"] or not os.path.lexists(qpath):
        raise EdgeorchError("its quarantined file is gone", value=rec["inbox_path"])
    reason_path = qpath.with_name(qpath.name + REASON_SUFFIX)
    try:
        claimed = json.loads(reason_path.read_text()).get("claimed_path")
    except (OSError, ValueError):
        claimed = None
    if not claimed:  # quarantined before the reason kept it: the run's variable holds the path (per-file mode)
        env = store.runs.get(run_id)["env"]  # already decoded by the store (a dict, {} when none)
        claimed = next((v for v in env.values() if Path(v).name == rec["source_name"]), None)
    if not claimed:
        raise EdgeorchError("the path its run was given is not known", value=str(qpath))
    dest = Path(claimed)
    if os.path.lexists(dest):
        raise EdgeorchError("its old inbox path is taken", value=str(dest))
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.rename(qpath, dest)
    sync_dirs([dest.parent, qpath.parent])
    try:
        os.unlink(reason_path)
    except FileNotFoundError:
        pass
    # Repaired in quarantine (docs/triggers.md): the retry runs on these bytes, so the record says them. Kept as
    # it was, the bad content's sha256 counted as processed once the retry succeeded (a copy of the bad file
    # dropped later was skipped as a duplicate) and lineage could not find the file that ran.
    size, sha = hash_file(dest)
    if sha != rec["sha256"]:
        store.inputs.record_content(rec["id"], size, sha, f"changed in quarantine before the retry of run {run_id}")
        log.info("input %s: its file changed in quarantine (sha256 %s -> %s); the retry runs on it", rec["id"],
                 (rec["sha256"] or "")[:12], sha[:12])
    store.inputs.record_state(rec["id"], "started", reason=f"back from quarantine for the retry of run {run_id}",
                              inbox_path=str(dest))
    store.events.add("input_restored", f"input {rec['id']} ({rec['source_name']}) back from quarantine for the retry "
                     f"of run {run_id}", run_id=run_id, actor="watch", data={"input_id": rec["id"], "file": str(dest)})
    return dest

