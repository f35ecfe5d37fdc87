"""The quarantine response in process: the signal run's input file is moved into quarantine with a reason file
naming the rule, its row becomes ``quarantined`` (so ``inputs``, ``requeue`` and ``retry`` see it), and an input
already set aside is a recorded skip, not a failure."""

from __future__ import annotations

import asyncio
import functools
import json
import time
from pathlib import Path
from types import SimpleNamespace

from edgeorch.monitor.service import Monitors
from edgeorch.monitor.spec import Response, RuleSpec
from edgeorch.store import Store
from edgeorch.triggers.drop.quarantine import quarantine_run_inputs


def _done_input(store: Store, inbox: Path, run_id: int) -> tuple[int, Path]:
    """A drop-folder input whose run ``run_id`` finished: its file kept in the inbox, its row ``done``."""
    kept = inbox / "7" / "batch.csv"
    kept.parent.mkdir(parents=True)
    kept.write_text("a\n1\n")
    iid = store.inputs.record_adopted(pipeline="checks", folder=str(inbox.parent / "drop"), inbox_path=str(kept),
                                      size=4, sha256="ab" * 32)
    store.inputs.record_started(iid, run_id)
    store.inputs.record_state(iid, "done")
    return iid, kept


def test_quarantine_moves_the_input_records_it_and_a_second_time_is_a_skip(tmp_path: Path) -> None:
    spec = RuleSpec(name="bad_batch", pipeline="checks", signal="violations", threshold=0.0, task="schema",
                    responses=(Response("quarantine"),))
    published = []

    async def main() -> tuple[list[dict], dict]:
        store = Store(tmp_path / "state.db")
        run_id = 7  # the input row names its run; no run row is needed for the response
        iid, kept = _done_input(store, tmp_path / "inbox", run_id)
        move = functools.partial(quarantine_run_inputs, store, quarantine_dir=tmp_path / "quarantine",
                                 clock=time.time, publish=published.append)
        monitors = Monitors(store=store, requests=None, registry=SimpleNamespace(pipelines={}),  # type: ignore[arg-type]
                            loop=asyncio.get_running_loop(),
                            quarantine_inputs=lambda run, why, details: move(run, why=why, details=details))
        for _ in range(2):  # the second time the input is quarantined already
            doc = {"rule": "bad_batch", "condition": spec.describe(), "value": 3.0, "run_id": run_id,
                   "input_path": str(kept)}
            planned = [{"action": "quarantine"}]
            fid = store.rules.add_firing(rule="bad_batch", pipeline="checks", episode=1, fired_at=1.0, outcome="fire",
                                         dry_run=False, dedupe_key=None, value=3.0, threshold=0.0, signal=doc,
                                         responses=planned, run_id=None, state="pending")
            await monitors._respond(fid, spec, doc, planned)
        firings = store.rules.firings("bad_batch", limit=2)
        row = store.inputs.get(iid)
        store.close()
        return firings, row

    (newer, older), row = asyncio.run(main())
    moved = tmp_path / "quarantine" / "batch.csv"
    assert moved.read_text() == "a\n1\n" and not (tmp_path / "inbox" / "7" / "batch.csv").exists()
    reason = json.loads((tmp_path / "quarantine" / "batch.csv.reason.json").read_text())
    assert reason["reason"] == "rule bad_batch: violations of task schema > 0" and reason["rule"] == "bad_batch"
    assert reason["value"] == 3.0 and reason["input_id"] == row["id"]
    assert row["state"] == "quarantined" and row["inbox_path"] == str(moved)
    assert row["reason"] == "rule bad_batch: violations of task schema > 0"
    assert [type(e).__name__ for e in published] == ["InputQuarantined"]
    assert older["state"] == "done" and older["responses"][0]["quarantined"] == str(moved)
    assert newer["state"] == "done" and "not there any more" in newer["responses"][0]["skipped"]
