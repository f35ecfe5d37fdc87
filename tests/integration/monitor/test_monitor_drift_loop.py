"""The shipped drift loop with the real daemon: the example's rules file (examples/pipelines/rules) and its drifted
batch (examples/data/houses_drifted.csv) dropped into a watched folder: the drift check runs, the rule fires, the
retrain runs once on the claimed batch, its model is gated against the champion and promoted; a second drifted batch
starts nothing and its event says why.

Cheap stand-ins keep it a few seconds: ``data_checks`` is the example's drift task alone (one kernel process) and
``house_prices`` a tiny trainer with the example's gate; the whole example runs in ``test_example_loop_slow``
(``-m slow``).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
DATA = REPO / "examples" / "data"

TRAIN = """\
import json, os, sys
data = sys.argv[1]
out = os.environ["EDGEORCH_OUTPUT_DIR"]
rows = sum(1 for _ in open(data)) - 1
open(os.path.join(out, "model.npz"), "w").write(f"trained on {rows} rows of {data}")
json.dump({"rmse": 21.7 if "drifted" in data else 24.3, "r2": 0.95}, open(os.path.join(out, "metrics.json"), "w"))
"""


def until(fn, timeout: float = 60.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def rows(ws, sql: str, *args) -> list[tuple]:
    db = sqlite3.connect(ws.state / "edgeorch.db")
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def drop(ws, name: str, content: bytes) -> None:
    """Arrive by rename, as rsync and mv do."""
    staging = ws.root / "staging"
    staging.mkdir(exist_ok=True)
    (staging / name).write_bytes(content)
    os.rename(staging / name, ws.root / "drop" / name)


def test_a_drifted_drop_retrains_once_and_the_new_model_is_gated_and_promoted(workspace, daemon) -> None:
    (workspace.root / "drop").mkdir()
    workspace.write_config(f"""
        [[watch]]
        folder = "{workspace.root / 'drop'}"
        pipeline = "data_checks"
        patterns = ["*.csv"]
        param = "batch"
        settle = "0.2s"
        """)
    (workspace.pipelines / "rules").mkdir()
    shutil.copy(REPO / "examples" / "pipelines" / "rules" / "retrain_on_drift.toml", workspace.pipelines / "rules")
    workspace.pipeline("data_checks", f"""
        name = "data_checks"
        [params]
        reference = {{ type = "path", default = "{DATA / 'houses.csv'}" }}
        batch = {{ type = "path", default = "{DATA / 'houses_new.csv'}" }}
        [tasks.drift]
        kind = "drift"
        [tasks.drift.options]
        reference = "{{reference}}"
        current = "{{batch}}"
        on_violation = "warn"
        """)
    (workspace.root / "train.py").write_text(TRAIN)
    workspace.pipeline("house_prices", f"""
        name = "house_prices"
        [params]
        data = {{ type = "path", default = "{DATA / 'houses.csv'}" }}
        [tasks.register]
        command = ["python", "{workspace.root / 'train.py'}", "{{data}}"]
        inputs = ["{{data}}"]
        outputs = ["model.npz", "metrics.json"]
        model = {{ name = "house_prices", path = "model.npz", metrics = "metrics.json" }}
        [models.house_prices]
        metrics = ["rmse", "r2"]
        gates = ["rmse <= champion.rmse * 1.05", "r2 >= champion.r2 - 0.02"]
        """)
    daemon.start()
    assert {r["name"] for r in daemon.call("monitors.list")["rules"]} == {"retrain_on_drift", "champion_degraded"}
    first = daemon.call("trigger", {"pipeline": "house_prices"})["run_id"]  # version 1: the champion
    assert daemon.wait_run(first) == "succeeded"
    champion = lambda: daemon.call("models.show", {"name": "house_prices"})["aliases"].get("champion")  # noqa: E731
    until(lambda: champion() == 1, what="version 1 promoted")

    # A manual check of the drifted batch (no dropped file): the rule's retrain needs {input_path}. It fired anyway,
    # retrained on `data = ""` (failed before any attempt) and spent its one-hour cooldown: the drop below then
    # retrained nothing. It is skipped, said why, and its cooldown is left alone.
    manual = daemon.call("trigger", {"pipeline": "data_checks", "params": {"batch": str(DATA / "houses_drifted.csv")}})
    assert daemon.wait_run(manual["run_id"]) == "succeeded"
    (said,), = until(lambda: rows(workspace, "SELECT message FROM events WHERE kind = 'rule_skipped' AND run_id = ?",
                                  manual["run_id"]), what="the rule's skip of the manual run")
    assert "its responses use {input_path}" in said and "not started by a dropped file" in said, said
    assert rows(workspace, "SELECT id FROM runs WHERE trigger = 'rule'") == []

    drift = (DATA / "houses_drifted.csv").read_bytes()
    drop(workspace, "houses_drifted.csv", drift)
    (retrain, params), = until(lambda: rows(workspace, "SELECT id, params FROM runs WHERE trigger = 'rule'"),
                               what="the retrain the rule started")
    assert json.loads(params)["data"].endswith("houses_drifted.csv")  # the claimed batch, in the inbox
    assert daemon.wait_run(retrain) == "succeeded"
    until(lambda: champion() == 2, what="the retrained version promoted")
    why_model = daemon.call("models.why", {"name": "house_prices", "version": 2})["text"]
    assert "Passed its gates against version 1 (champion)" in why_model
    started = daemon.call("why", {"run": retrain})["started_by"]
    assert started["kind"] == "rule" and started["rule"] == "retrain_on_drift" and started["value"] == 1.0
    assert started["input_path"].endswith("houses_drifted.csv")

    # A second drifted batch (other bytes) while the rule still fires: its check runs, nothing more starts.
    drop(workspace, "houses_drifted_2.csv", drift.rsplit(b"\n", 2)[0] + b"\n")
    checks = until(lambda: (lambda r: r if len(r) == 3 and r[-1][1] not in ("queued", "running") else None)(
        rows(workspace, "SELECT id, state FROM runs WHERE pipeline = 'data_checks' ORDER BY id")),
        what="the second check")
    (message,), = until(lambda: rows(workspace, "SELECT message FROM events WHERE run_id = ? AND kind = "
                                                "'rule_still_firing'", checks[-1][0]), what="the explanation")
    assert "episode 1 was answered" in message and "cooldown of 1h00m" in message  # durations as people read them
    assert len(rows(workspace, "SELECT id FROM runs WHERE trigger = 'rule'")) == 1
    rule = next(r for r in daemon.call("monitors.list")["rules"] if r["name"] == "retrain_on_drift")
    assert rule["state"] == "firing" and rule["last_firing"]["run_id"] == retrain
    # A clean check by hand while the episode is open: it resolved the episode that held retraining back (a
    # tester's find), though the docs say such a run leaves the rule's state alone.
    clean = daemon.call("trigger", {"pipeline": "data_checks", "params": {"batch": str(DATA / "houses.csv")}})
    assert daemon.wait_run(clean["run_id"]) == "succeeded"
    (said,), = until(lambda: rows(workspace, "SELECT message FROM events WHERE kind = 'rule_skipped' AND run_id = ?",
                                  clean["run_id"]), what="the rule's skip of the clean manual run")
    assert "it would resolve" in said and "its state and cooldown stay as they were" in said, said
    assert next(r for r in daemon.call("monitors.list")["rules"] if r["name"] == "retrain_on_drift")["state"] \
        == "firing"


@pytest.mark.slow
def test_example_loop_slow(workspace, daemon) -> None:
    """The whole shipped example (data_checks' four checks, house_prices' seven tasks): about 30 s."""
    shutil.copytree(REPO / "examples" / "pipelines", workspace.pipelines, dirs_exist_ok=True)
    shutil.copytree(DATA, workspace.root / "data")
    (workspace.root / "drop").mkdir()
    workspace.write_config(f"""
        [[watch]]
        folder = "{workspace.root / 'drop'}"
        pipeline = "data_checks"
        patterns = ["*.csv"]
        param = "batch"
        settle = "0.2s"
        """)
    daemon.start()
    first = daemon.call("trigger", {"pipeline": "house_prices"})["run_id"]
    assert daemon.wait_run(first, timeout=120) == "succeeded"
    champion = lambda: daemon.call("models.show", {"name": "house_prices"})["aliases"].get("champion")  # noqa: E731
    until(lambda: champion() == 1, what="version 1 promoted")
    drop(workspace, "houses_drifted.csv", (DATA / "houses_drifted.csv").read_bytes())
    (retrain, params), = until(lambda: rows(workspace, "SELECT id, params FROM runs WHERE trigger = 'rule'"),
                               timeout=120, what="the retrain the rule started")
    assert daemon.wait_run(retrain, timeout=120) == "succeeded"
    until(lambda: champion() == 2, timeout=60, what="the retrained version promoted")
    assert "Passed its gates against version 1" in daemon.call("models.why", {"name": "house_prices",
                                                                             "version": 2})["text"]
    drop(workspace, "houses_drifted_2.csv", (DATA / "houses_drifted.csv").read_bytes().rsplit(b"\n", 2)[0] + b"\n")
    checks = until(lambda: (lambda r: r if len(r) == 2 and r[-1][1] not in ("queued", "running") else None)(
        rows(workspace, "SELECT id, state FROM runs WHERE pipeline = 'data_checks' ORDER BY id")),
        timeout=120, what="the second check")
    until(lambda: rows(workspace, "SELECT 1 FROM events WHERE run_id = ? AND kind = 'rule_still_firing'",
                       checks[-1][0]), what="the explanation")
    assert len(rows(workspace, "SELECT id FROM runs WHERE trigger = 'rule'")) == 1
