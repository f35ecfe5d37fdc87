"""A realized-metric drop with the real daemon: the champion's observed rmse crosses the rule's threshold, the rule
fires, the champion is rolled back to the previous version, and ``edgeorch monitors`` and the events say why."""

from __future__ import annotations

import json
import sqlite3
import time

TRAIN = """\
import json, os, sys
out = os.environ["EDGEORCH_OUTPUT_DIR"]
open(os.path.join(out, "model.bin"), "w").write("model " + sys.argv[1])
json.dump({"rmse": float(sys.argv[1])}, open(os.path.join(out, "metrics.json"), "w"))
"""


def until(fn, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _trainer(workspace) -> None:
    """Pipeline ``trainer`` registering model ``house`` (rmse from its param) and rule ``champion_degraded``: the
    champion's realized rmse above 40 rolls it back and blocks its promotions."""
    (workspace.root / "train.py").write_text(TRAIN)
    workspace.pipeline("trainer", f"""
        name = "trainer"
        [params]
        rmse = 30.0
        [tasks.train]
        command = ["python", "{workspace.root / 'train.py'}", "{{rmse}}"]
        outputs = ["model.bin", "metrics.json"]
        model = {{ name = "house", path = "model.bin", metrics = "metrics.json" }}
        [models.house]
        metrics = ["rmse"]
        gates = ["rmse <= champion.rmse + 1"]
        [models.house.deploy]
        dir = "{workspace.root / 'serving'}"

        [[on]]
        name = "champion_degraded"
        signal = "model_metric"
        model = "house"
        metric = "rmse"
        threshold = 40
        [[on.do]]
        rollback = "house"
        [[on.do]]
        block_promotions = "house"
        """)


def test_a_bad_realized_metric_rolls_the_champion_back_and_says_why(workspace, daemon) -> None:
    _trainer(workspace)
    daemon.start()

    def champion() -> int | None:
        return daemon.call("models.show", {"name": "house"})["aliases"].get("champion")

    for rmse, version in ((30.0, 1), (29.0, 2)):
        rid = daemon.call("trigger", {"pipeline": "trainer", "params": {"rmse": rmse}})["run_id"]
        assert daemon.wait_run(rid) == "succeeded"
        until(lambda: champion() == version, what=f"version {version} promoted")

    daemon.call("models.observe", {"name": "house", "metrics": {"champion": {"rmse": 52.0}}})
    until(lambda: champion() == 1, what="the rollback to version 1")
    rule = until(lambda: next((r for r in daemon.call("monitors.list")["rules"]
                               if r["name"] == "champion_degraded" and r["last_firing"]
                               and r["last_firing"]["state"] == "done"), None), what="the firing's responses")
    assert rule["state"] == "firing" and rule["last_value"] == 52.0
    assert rule["last_firing"]["responses"][0]["result"]["state"] == "succeeded"
    moved = daemon.call("models.show", {"name": "house"})["history"][0]
    assert moved["actor"] == "rule:champion_degraded" and "realized rmse of house champion > 40" in moved["reason"]

    # `status`, where an owner looks first, says a rule is firing (it said nothing of models or rules).
    status = workspace.invoke("status")
    assert "rules      firing: champion_degraded (edgeorch monitors)" in status.stdout, status.stdout
    assert "models     promotions of house blocked by rule champion_degraded" in status.stdout, status.stdout
    assert daemon.call("status")["attention"]["rules_firing"] == ["champion_degraded"]
    out = workspace.invoke("monitors")
    assert out.returncode == 0 and "champion_degraded" in out.stdout and "firing" in out.stdout
    # The champion is version 1 now: the value shown is version 2's, and says so.
    assert "52 (version 2)" in out.stdout, out.stdout
    db = sqlite3.connect(workspace.state / "edgeorch.db")
    fired = db.execute("SELECT message, data FROM events WHERE kind = 'rule_fired'").fetchall()
    db.close()
    assert len(fired) == 1 and "roll back house champion" in fired[0][0] and "value 52" in fired[0][0]
    assert json.loads(fired[0][1])["value"] == 52.0

    # The rule removed from the file: `status` said it was firing on, across restarts, while `monitors` (the rules
    # loaded) did not list it.
    path = workspace.pipelines / "trainer.toml"
    path.write_text(path.read_text().split("[[on]]")[0])
    daemon.call("reload")
    assert daemon.call("status")["attention"]["rules_firing"] == []
    assert "rules      firing" not in workspace.invoke("status").stdout  # (its block stays: lifted by a person)


def test_a_model_rule_held_by_a_silence_is_answered_when_the_silence_is_lifted(workspace, daemon) -> None:
    """Found by a user: a value over the threshold observed while the rule was silenced; `monitors unsilence`;
    `monitors` then said only `cooling`, and the degraded champion stayed served, unblocked, until another value
    came in."""
    _trainer(workspace)
    daemon.start()
    for rmse in (30.0, 29.0):
        assert daemon.wait_run(daemon.call("trigger", {"pipeline": "trainer", "params": {"rmse": rmse}})["run_id"]) \
            == "succeeded"
    until(lambda: daemon.call("models.show", {"name": "house"})["aliases"].get("champion") == 2, what="version 2")
    assert workspace.invoke("monitors", "silence", "champion_degraded", "--until", "2h", "--reason",
                            "maintenance").returncode == 0
    daemon.call("models.observe", {"name": "house", "metrics": {"champion": {"rmse": 99.0}}})
    rule = until(lambda: next((r for r in daemon.call("monitors.list")["rules"]
                               if r["name"] == "champion_degraded" and r["state"] == "silenced"), None),
                 what="the rule held by its silence")
    assert daemon.call("models.show", {"name": "house"})["aliases"]["champion"] == 2
    r = workspace.invoke("monitors", "unsilence", "champion_degraded")
    assert r.returncode == 0, r.stdout + r.stderr
    until(lambda: daemon.call("models.show", {"name": "house"})["aliases"].get("champion") == 1,
          what="the rollback once the silence was lifted")
