"""Promotion, blocked candidates, rollback and health checks through real engines, processes and files."""

from __future__ import annotations

import os

import pytest

from edgeorch.errors import ConflictError
from edgeorch.model import RunState


def _serving(ws):
    return ws.root / "serving" / "house"


def test_a_passing_candidate_becomes_champion_and_current_points_at_it(workspace, harness, model_pipeline) -> None:
    model_pipeline(workspace)
    assert harness.run("trainer")[1] == RunState.SUCCEEDED
    root = _serving(workspace)
    assert os.readlink(root / "current") == "versions/1" and os.readlink(root / "champion") == "versions/1"
    assert (root / "current" / "model.bin").read_text() == "model with rmse 30.0\n"
    store = harness.store()
    try:
        assert store.models.aliases("house") == {"champion": 1}
        [dep] = store.models.deployments("house")
        assert dep["state"] == "succeeded" and dep["step"] == "done"
        [move] = store.models.alias_history("house")
        assert move["actor"] == "pipeline:trainer" and move["to_version"] == 1 and move["from_version"] is None
        actions = [r["action"] for r in store.audit.records(action="model_*")]
        assert {"model_registered", "model_decided", "model_alias_moved", "model_deployment"} <= set(actions)
    finally:
        store.close()


def test_a_worse_candidate_is_kept_but_blocked_with_the_reason(workspace, harness, model_pipeline) -> None:
    model_pipeline(workspace)
    harness.run("trainer")
    assert harness.run("trainer", {"rmse": 45.0})[1] == RunState.SUCCEEDED  # the run succeeds; the model is blocked
    store = harness.store()
    try:
        v2 = store.models.version("house", 2)
        assert v2["gate_verdict"] == "failed" and store.models.aliases("house") == {"champion": 1}
        [decision] = store.models.decisions(v2["id"])
        failed = [c for c in decision["conditions"] if c["verdict"] == "failed"]
        assert failed == [{"condition": "rmse <= champion.rmse + 1", "value": 45.0, "threshold": 31.0,
                           "verdict": "failed", "why": "rmse is 45, but it had to be at most champion.rmse + 1 = 31"}]
        assert decision["against_version"] == 1
        assert len(store.models.deployments("house")) == 1  # nothing was queued for version 2
    finally:
        store.close()
    assert os.readlink(_serving(workspace) / "current") == "versions/1"
    from edgeorch.models.views import why

    store = harness.store()
    try:
        text = why(store, "house", 2)["text"]
    finally:
        store.close()
    assert "Blocked by its gates against version 1 (champion)" in text
    assert "FAILED   rmse <= champion.rmse + 1: rmse is 45, but it had to be at most champion.rmse + 1 = 31" in text
    with pytest.raises(ConflictError, match="failed its gates"):
        harness.models(lambda s: s.promote("house", 2, actor="alice (uid 1000)"))


def test_rollback_returns_champion_to_the_previous_version_and_records_who(workspace, harness, model_pipeline) -> None:
    model_pipeline(workspace)
    harness.run("trainer")
    harness.run("trainer", {"rmse": 29.0})
    assert os.readlink(_serving(workspace) / "current") == "versions/2"
    dep = harness.models(lambda s: s.rollback("house", actor="alice (uid 1000)", reason="customers complain"))
    assert dep["state"] == "succeeded" and dep["from_version"] == 2 and dep["to_version"] == 1
    assert os.readlink(_serving(workspace) / "current") == "versions/1"
    store = harness.store()
    try:
        last = store.models.alias_history("house")[0]
        assert (last["action"], last["actor"], last["reason"]) == ("rollback", "alice (uid 1000)", "customers complain")
    finally:
        store.close()
    dep = harness.models(lambda s: s.promote("house", 2, actor="alice (uid 1000)"))
    assert dep["to_version"] == 2 and os.readlink(_serving(workspace) / "current") == "versions/2"


def test_a_failing_health_check_after_the_switch_rolls_back(workspace, harness, model_pipeline) -> None:
    marker = workspace.root / "unhealthy"
    check = workspace.root / "health.py"
    check.write_text("import os, sys\nsys.exit(1 if os.path.exists(%r) and os.environ['EDGEORCH_MODEL_VERSION'] == '2'"
                     " else 0)\n" % str(marker))
    model_pipeline(workspace, deploy=f'health = ["python", "{check}"]\nhealth_timeout = "20s"')
    harness.run("trainer")
    marker.write_text("")
    harness.run("trainer", {"rmse": 29.0})
    root = _serving(workspace)
    assert os.readlink(root / "current") == "versions/1"
    store = harness.store()
    try:
        assert store.models.aliases("house") == {"champion": 1}
        dep = store.models.deployments("house")[0]
        assert dep["state"] == "rolled_back" and "health check failed after the switch" in dep["outcome"]
        v2 = store.models.version("house", 2)
        health = [d for d in store.models.decisions(v2["id"]) if d["kind"] == "health"]
        assert health and health[0]["verdict"] == "failed" and "exited with code 1" in health[0]["summary"]
        moves = [(h["alias"], h["from_version"], h["to_version"], h["action"]) for h in store.models.alias_history("house")]
        assert moves[:2] == [("champion", 2, 1, "auto_rollback"), ("champion", 1, 2, "promote")]
    finally:
        store.close()


def test_blue_green_checks_the_idle_slot_and_undoes_a_failed_check_without_switching(workspace, harness, model_pipeline) -> None:
    seen = workspace.root / "seen.txt"
    check = workspace.root / "health.py"
    check.write_text("import os, sys\nopen(%r, 'a').write(os.environ['EDGEORCH_MODEL_PATH'] + '\\n')\n"
                     "sys.exit(1 if os.environ['EDGEORCH_MODEL_VERSION'] == '2' else 0)\n" % str(seen))
    model_pipeline(workspace, extra='strategy = "blue_green"',
                   deploy=f'health = ["python", "{check}"]\nhealth_timeout = "10s"\nwindow = "1s"')
    harness.run("trainer")
    harness.run("trainer", {"rmse": 29.0})
    root = _serving(workspace)
    assert os.readlink(root / "current") == "versions/1"
    assert str(root / "versions" / "2") in seen.read_text().splitlines()  # checked in its slot, before any switch
    store = harness.store()
    try:
        dep = store.models.deployments("house")[0]
        assert dep["state"] == "undone" and "before the switch" in dep["outcome"]
        assert [h["to_version"] for h in store.models.alias_history("house")] == [1]  # the alias never moved
    finally:
        store.close()
    dep = harness.models(lambda s: s.promote("house", 2, actor="alice (uid 1000)"))
    assert dep["state"] == "undone" and os.readlink(root / "current") == "versions/1"


def test_a_canary_that_is_worse_at_the_end_of_its_window_is_rolled_back(workspace, harness, model_pipeline) -> None:
    model_pipeline(workspace, extra='strategy = "canary"\n[models.house.canary]\nbatches = 2\nmetric = "rmse"\n'
                   'share = 0.25\ntolerance = 0.5')
    harness.run("trainer")
    harness.run("trainer", {"rmse": 29.0})
    root = _serving(workspace)
    assert os.readlink(root / "canary") == "versions/2" and (root / "weights.json").exists()

    async def observe(service):
        for champion, canary in ((30.0, 31.0), (30.2, 30.9)):  # the canary is worse by more than the tolerance
            service.observe("house", {"champion": {"rmse": champion}, "canary": {"rmse": canary}})
            await service.drain()

    harness.models(observe)
    assert not (root / "canary").exists() and not (root / "weights.json").exists()
    assert os.readlink(root / "current") == "versions/1"
    store = harness.store()
    try:
        assert store.models.aliases("house") == {"champion": 1}
        [d] = [d for d in store.models.decisions(store.models.version("house", 2)["id"]) if d["kind"] == "canary"]
        assert d["verdict"] == "failed" and d["conditions"][0]["value"] == pytest.approx(30.95)
        assert d["conditions"][0]["threshold"] == pytest.approx(30.6)
        assert "lost against version 1 after 2 batch(es)" in d["summary"]
        assert store.models.canaries("house")[0]["state"] == "rolled_back"
    finally:
        store.close()


def test_rollback_of_the_canary_alias_aborts_the_canary(workspace, harness, model_pipeline) -> None:
    model_pipeline(workspace, extra='strategy = "canary"\n[models.house.canary]\nwindow = "1h"\nmetric = "rmse"')
    harness.run("trainer")
    harness.run("trainer", {"rmse": 29.0})
    dep = harness.models(lambda s: s.rollback("house", alias="canary", actor="alice (uid 1000)", reason="not today"))
    assert dep["state"] == "succeeded" and dep["to_version"] is None
    assert not (_serving(workspace) / "canary").exists()
    store = harness.store()
    try:
        assert store.models.aliases("house") == {"champion": 1}
        assert store.models.canaries("house")[0]["state"] == "aborted"
    finally:
        store.close()


def test_a_canary_whose_champion_moves_while_it_runs_is_aborted_saying_why_never_judged_against_the_old_one(
        workspace, harness, model_pipeline) -> None:
    """Found by a user: the champion rolled back (37 -> 18) while a canary of 38 ran; the observations went to
    the version served (18), and the canary lost "version 37 reported no rmse during the window": a better
    challenger judged against a version no longer served."""
    model_pipeline(workspace, extra='strategy = "canary"\n[models.house.canary]\nbatches = 2\nmetric = "rmse"')
    harness.run("trainer")  # version 1: champion (nothing to beat)
    harness.run("trainer", {"rmse": 29.0})  # version 2: a canary against 1
    harness.models(lambda s: s.rollback("house", alias="canary", actor="alice (uid 1000)", reason="later"))
    dep = harness.models(lambda s: s.promote("house", 2, actor="alice (uid 1000)"))
    assert dep["state"] == "succeeded"
    harness.run("trainer", {"rmse": 28.0})  # version 3: a canary against 2
    harness.models(lambda s: s.rollback("house", actor="alice (uid 1000)", reason="2 misbehaves"))  # champion -> 1
    store = harness.store()
    try:  # at once, by the rollback itself (it was seen at the next tick, seconds later)
        assert store.models.canaries("house")[0]["state"] == "aborted"
    finally:
        store.close()

    async def observe(service):  # what is served now is observed; the service decides its canaries meanwhile
        service.observe("house", {"champion": {"rmse": 30.0}})
        await service.drain()
        await service.decide_canaries("house")

    harness.models(observe)
    store = harness.store()
    try:
        assert store.models.aliases("house") == {"champion": 1}
        c = store.models.canaries("house")[0]
        assert c["version"] == 3 and c["state"] == "aborted"
        assert ("champion moved from version 2 to version 1 while it ran, so its evidence would be compared with "
                "a version no longer served") in c["outcome"]
        assert "edgeorch models promote house 3 --alias canary" in c["outcome"]
        assert not [d for d in store.models.decisions(store.models.version("house", 3)["id"]) if d["kind"] == "canary"]
    finally:
        store.close()
    assert not (_serving(workspace) / "canary").exists()


def test_auto_rollback_is_recorded_with_the_rule_that_asked(workspace, harness, model_pipeline) -> None:
    model_pipeline(workspace)
    harness.run("trainer")
    harness.run("trainer", {"rmse": 29.0})
    dep = harness.models(lambda s: s.auto_rollback("house", rule="rmse_floor", reason="rmse above 40 for 1h"))
    assert dep["state"] == "succeeded" and dep["to_version"] == 1
    store = harness.store()
    try:
        last = store.models.alias_history("house")[0]
        assert (last["actor"], last["reason"], last["action"]) == ("rule:rmse_floor", "rmse above 40 for 1h", "rollback")
        [record] = [r for r in store.audit.records(action="model_alias_moved")][-1:]
        assert record["actor"] == "rule:rmse_floor"
    finally:
        store.close()
    with pytest.raises(ConflictError, match="already"):
        harness.models(lambda s: s.rollback("house", to=1, actor="bob (uid 1001)"))


def test_a_gate_task_fails_its_run_with_the_reason(workspace, harness, model_pipeline) -> None:
    (workspace.root / "m.json").write_text('{"rmse": 61.5, "r2": 0.9}')
    workspace.pipeline("gated", f'''
        [tasks.quality]
        kind = "gate"
        [tasks.quality.options]
        metrics = "{workspace.root / 'm.json'}"
        conditions = ["rmse <= 60", "r2 >= 0.5"]
        [tasks.after]
        command = ["true"]
        needs = ["quality"]
        ''')
    run_id, state = harness.run("gated")
    assert state == RunState.FAILED
    store = harness.store()
    try:
        tasks = {t["name"]: t for t in store.runs.tasks_of(run_id)}
        assert tasks["quality"]["state"] == "failed" and tasks["after"]["state"] == "upstream_failed"
        assert tasks["quality"]["reason"] == ("violation: 1 of 2 condition(s) failed: rmse is 61.5, but it had to be "
                                              "at most 60")
        assert tasks["quality"]["attempts"] == 1  # a violation is not retried
        rows = store.outputs.results_of(run_id, "quality")
        assert [(r["metric"], r["value"], r["threshold"], r["verdict"]) for r in rows] == [
            ("rmse <= 60", 61.5, 60.0, "violation"), ("r2 >= 0.5", 0.9, 0.5, "ok")]
    finally:
        store.close()


def test_start_makes_the_serving_folder_agree_with_the_aliases_and_reloads(workspace, harness, model_pipeline) -> None:
    reloads = workspace.root / "reloads.txt"
    model_pipeline(workspace, deploy=f'reload = ["sh", "-c", "echo $EDGEORCH_MODEL_VERSION >> {reloads}"]')
    harness.run("trainer")
    harness.run("trainer", {"rmse": 29.0})
    root = _serving(workspace)
    reloads.write_text("")
    os.unlink(root / "current")  # a restored backup, a hand edit: the folder says something else
    os.symlink("versions/1", root / "current")
    os.symlink("versions/1", root / "stale")
    harness.models(lambda s: s.start())
    assert os.readlink(root / "current") == "versions/2" and not (root / "stale").exists()
    assert reloads.read_text().split() == ["2"]


def test_a_served_version_below_its_floor_after_deployment_is_rolled_back(workspace, harness, model_pipeline) -> None:
    model_pipeline(workspace, extra='floors = ["rmse <= 40", "r2 >= 0.5"]')
    harness.run("trainer")
    harness.run("trainer", {"rmse": 29.0})
    assert os.readlink(_serving(workspace) / "current") == "versions/2"

    async def observe(service):
        service.observe("house", {"champion": {"rmse": 35.0}})  # above its floor: nothing happens
        await service.drain()
        service.observe("house", {"champion": {"rmse": 52.5}})
        await service.drain()

    harness.models(observe)
    assert os.readlink(_serving(workspace) / "current") == "versions/1"
    store = harness.store()
    try:
        [floor] = [d for d in store.models.decisions(store.models.version("house", 2)["id"]) if d["kind"] == "floor"]
        assert floor["summary"] == ("house version 2 (champion) fell below its floor after deployment: rmse is 52.5, "
                                    "but it had to be at most 40")
        assert [c["condition"] for c in floor["conditions"]] == ["rmse <= 40"]  # r2 was not observed: it waits
        last = store.models.alias_history("house")[0]
        assert (last["to_version"], last["actor"], last["reason"]) == (1, "edgeorch", floor["summary"])
    finally:
        store.close()


def test_a_second_candidate_while_a_canary_is_open_is_not_started_and_the_model_is_not_wedged(
        workspace, harness, model_pipeline) -> None:
    """A second version passing its gates during a canary tried to open a second canary inside the switch's
    transaction: the ConflictError left its deployment `running` for the daemon's life, and every later deployment
    of the model (the canary's own decision, automatic rollbacks, promote and rollback by hand) was refused."""
    model_pipeline(workspace, extra='strategy = "canary"\n[models.house.canary]\nbatches = 2\nmetric = "rmse"\n'
                   'share = 0.25\ntolerance = 0.5')
    harness.run("trainer")
    harness.run("trainer", {"rmse": 29.0})  # version 2: the canary
    harness.run("trainer", {"rmse": 28.0})  # version 3 passes its gates while version 2's canary is open
    root = _serving(workspace)
    assert os.readlink(root / "canary") == "versions/2"
    store = harness.store()
    try:
        deps = store.models.deployments("house")
        assert not [d for d in deps if d["state"] in ("pending", "running")], deps
        third = next(d for d in deps if d["to_version"] == 3)
        assert third["state"] == "undone" and "the canary of version 2 is still open" in third["outcome"]
        assert "`edgeorch models promote house 3 --alias canary` once it is decided" in third["outcome"]
        [d] = [d for d in store.models.decisions(store.models.version("house", 3)["id"]) if d["kind"] == "canary"]
        assert d["verdict"] == "not_started" and "its canary did not start" in d["summary"]
    finally:
        store.close()

    async def observe_then_promote_the_third(service):
        for champion, canary in ((30.0, 29.0), (30.0, 29.1)):  # the canary wins: its decision is carried out
            service.observe("house", {"champion": {"rmse": champion}, "canary": {"rmse": canary}})
            await service.drain()
        return await service.promote("house", 3, alias="canary", actor="alice (uid 1000)")

    dep = harness.models(observe_then_promote_the_third)
    assert dep["state"] == "succeeded", dep
    assert os.readlink(root / "current") == "versions/2" and os.readlink(root / "canary") == "versions/3"


def test_a_step_that_fails_unexpectedly_is_recovered_at_once_not_left_running(workspace, harness, model_pipeline,
                                                                               monkeypatch) -> None:
    """Whatever a step raises, the deployment ends as a restart would end it (undone before the switch) and the
    model's next deployment runs."""
    from edgeorch.models import deploy

    model_pipeline(workspace)
    harness.run("trainer")
    harness.run("trainer", {"rmse": 29.0})

    def broken_switch_hook(self, dep, policy):
        raise RuntimeError("a bug in a step")

    monkeypatch.setattr(deploy.Deployer, "_on_switched", broken_switch_hook)
    dep = harness.models(lambda s: s.rollback("house", actor="alice (uid 1000)"))
    assert dep["state"] == "undone" and "a step failed unexpectedly" in dep["outcome"], dep
    monkeypatch.undo()
    assert os.readlink(_serving(workspace) / "current") == "versions/2"
    dep = harness.models(lambda s: s.rollback("house", actor="alice (uid 1000)"))
    assert dep["state"] == "succeeded" and dep["to_version"] == 1


def test_two_rollbacks_walk_back_two_versions_never_back_and_forth(workspace, harness, model_pipeline) -> None:
    """Champion 3, rollback -> 2, rollback -> 3 (the version just rolled away from), rollback -> 2, ...: a second
    rollback, a rule's included, went back to what the first one left. It walks on to 1."""
    model_pipeline(workspace)
    for rmse in (30.0, 29.0, 28.0):
        harness.run("trainer", {"rmse": rmse})
    first = harness.models(lambda s: s.rollback("house", actor="alice (uid 1000)", reason="complaints"))
    assert (first["from_version"], first["to_version"]) == (3, 2)
    second = harness.models(lambda s: s.auto_rollback("house", rule="champion_degraded", reason="rmse up"))
    assert (second["from_version"], second["to_version"]) == (2, 1)
    with pytest.raises(ConflictError, match="no earlier version"):
        harness.models(lambda s: s.rollback("house", actor="alice (uid 1000)"))
    dep = harness.models(lambda s: s.rollback("house", to=3, actor="alice (uid 1000)"))  # named: still allowed
    assert dep["state"] == "succeeded" and dep["to_version"] == 3


def test_a_promote_refused_because_another_deployment_runs_is_not_left_queued_to_run_at_the_next_start(
        workspace, harness, model_pipeline) -> None:
    """The refused request (exit 5, "another deployment ... is running") stayed `pending` and ran at the next start,
    recorded as the operator's, though the operator was told it failed."""
    model_pipeline(workspace)
    harness.run("trainer")
    harness.run("trainer", {"rmse": 29.0})
    store = harness.store()
    try:  # a deployment of another process, running (the state file's one-running index holds it)
        other = store.models.add_deployment("house", alias="champion", to_version=1, action="rollback",
                                            strategy="direct", target={}, actor="bob (uid 1001)", reason=None)
        store.db.conn.execute("UPDATE model_deployments SET state = 'running', step = 'staged' WHERE id = ?",
                              (other["id"],))
        store.db.conn.commit()
    finally:
        store.close()
    cfg = workspace.config()

    async def refused():
        from edgeorch.models.service import ModelService
        from edgeorch.store import Store

        s = Store(cfg.state_file)  # no start(): the other process's deployment is not ours to recover
        service = ModelService(s, serving_dir=cfg.state_dir / "serving", publish=lambda e: None, clock=s.clock)
        try:
            with pytest.raises(ConflictError, match=rf"is running \(deployment {other['id']}: rollback of champion\)"):
                await service.promote("house", 1, alias="champion", actor="alice (uid 1000)")
            return s.models.deployments("house")[0]
        finally:
            await service.close()
            s.close()

    import asyncio

    mine = asyncio.run(refused())
    assert mine["id"] != other["id"] and mine["state"] == "undone", mine
    assert mine["outcome"].startswith("not started: another deployment of house is running")


def test_a_promotion_that_moves_nothing_is_refused_and_records_nothing(workspace, harness, model_pipeline) -> None:
    """`promote house 2` while 2 is champion said "champion -> version 2 (was version 2)", recorded a move and a
    deployment (reload, health) and counted in gc's last moves; a canary of the champion compared it with itself."""
    import pytest

    from edgeorch.errors import ConflictError, UsageError

    model_pipeline(workspace, extra='promote = "manual"')
    harness.run("trainer")
    harness.run("trainer", {"rmse": 29.0})
    harness.models(lambda s: s.promote("house", 2, actor="test"))
    store = harness.store()
    before = (len(store.models.deployments("house")), len(store.models.alias_history("house", "champion")))
    store.close()
    with pytest.raises(ConflictError, match="champion of house is version 2 already"):
        harness.models(lambda s: s.promote("house", 2, actor="test"))
    with pytest.raises(ConflictError, match="house version 2 is champion already: a canary of it"):
        harness.models(lambda s: s.promote("house", 2, alias="canary", actor="test"))
    with pytest.raises(UsageError) as err:
        harness.models(lambda s: s.promote("house", 1, alias="champoin", actor="test"))
    assert err.value.hint == "did you mean 'champion'?"
    for empty in (lambda s: s.promote("house", 1, alias="", actor="test"), lambda s: s.rollback("house", alias="",
                                                                                                  actor="test")):
        with pytest.raises(UsageError):  # found by a tester: `--alias ''` moved the default alias
            harness.models(empty)
    # No [models.house.canary]: the canary alias moved, with no split, no window, nothing to ever decide it.
    harness.run("trainer", {"rmse": 28.0})
    with pytest.raises(ConflictError, match="house declares no canary: the canary alias would point at version 3"):
        harness.models(lambda s: s.promote("house", 3, alias="canary", actor="test"))
    store = harness.store()
    assert (len(store.models.deployments("house")), len(store.models.alias_history("house", "champion"))) == before
    store.close()


def test_rollback_moves_back_the_alias_promote_moves(workspace, harness, model_pipeline) -> None:
    """With `alias = "staging"`, `promote` moved staging and `rollback` (no --alias) looked at champion, never set."""
    model_pipeline(workspace, extra='promote = "manual"\nalias = "staging"\naliases = ["staging", "production"]')
    harness.run("trainer")
    harness.run("trainer", {"rmse": 29.0})
    harness.models(lambda s: s.promote("house", 1, actor="test"))
    harness.models(lambda s: s.promote("house", 2, actor="test"))
    dep = harness.models(lambda s: s.rollback("house", actor="test"))
    assert dep["alias"] == "staging" and dep["state"] == "succeeded"
    store = harness.store()
    assert store.models.aliases("house") == {"staging": 1}
    store.close()
