"""The quarantine response in process: the signal run's input file is moved into quarantine with a reason file
naming the rule, and a file already gone is a recorded skip, not a failure."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from types import SimpleNamespace

from edgeorch.monitor.service import Monitors
from edgeorch.monitor.spec import Response, RuleSpec
from edgeorch.store import Store


def test_quarantine_moves_the_input_with_a_reason_file(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    batch = inbox / "batch.csv"
    batch.write_text("a\n1\n")
    spec = RuleSpec(name="bad_batch", pipeline="checks", signal="violations", threshold=0.0, task="schema",
                    responses=(Response("quarantine"),))

    async def main() -> None:
        store = Store(tmp_path / "state.db")
        monitors = Monitors(store=store, requests=None, registry=SimpleNamespace(pipelines={}),  # type: ignore[arg-type]
                            loop=asyncio.get_running_loop(), quarantine_dir=tmp_path / "quarantine")
        for path in (batch, batch):  # the second time the file is gone already
            doc = {"rule": "bad_batch", "condition": spec.describe(), "value": 3.0, "run_id": 7,
                   "input_path": str(path)}
            planned = [{"action": "quarantine"}]
            fid = store.rules.add_firing(rule="bad_batch", pipeline="checks", episode=1, fired_at=1.0, outcome="fire",
                                         dry_run=False, dedupe_key=None, value=3.0, threshold=0.0, signal=doc,
                                         responses=planned, run_id=None, state="pending")
            await monitors._respond(fid, spec, doc, planned)
        firings = store.rules.firings("bad_batch", limit=2)
        store.close()
        return firings

    newer, older = asyncio.run(main())
    moved = tmp_path / "quarantine" / "batch.csv"
    assert not batch.exists() and moved.read_text() == "a\n1\n"
    reason = json.loads((tmp_path / "quarantine" / "batch.csv.reason.json").read_text())
    assert reason["reason"] == "rule bad_batch: violations of task schema > 0" and reason["rule"] == "bad_batch"
    assert reason["value"] == 3.0 and reason["run_id"] == 7
    assert older["state"] == "done" and older["responses"][0]["quarantined"] == str(moved)
    assert newer["state"] == "done" and "is gone" in newer["responses"][0]["skipped"]
