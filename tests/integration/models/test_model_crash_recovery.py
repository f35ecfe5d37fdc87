"""kill -9 at every step of a blue-green switch, of a rollback and of a canary decision: after recovery the alias
and the target agree, and the switch was finished or undone.

The switch runs in a child process whose step hook SIGKILLs the process itself right after the step is recorded
(a real kill -9: no finally blocks, no atexit); the next ModelService to start on the state file recovers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from edgeorch.models.deploy import BEFORE_SWITCH

CHILD = textwrap.dedent('''\
    import asyncio, json, os, signal, sys
    from pathlib import Path
    from edgeorch.store import Store
    from edgeorch.models.service import ModelService

    state_file, serving, kill_at, action = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])

    def hook(dep_id, step):
        if step == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    async def main():
        store = Store(Path(state_file))
        service = ModelService(store, serving_dir=Path(serving), publish=lambda e: None, clock=store.clock,
                               step_hook=hook)
        if action["op"] == "promote":
            dep = await service.promote("house", action["version"], actor="test")
        elif action["op"] == "observe":
            for values in action["batches"]:
                service.observe("house", values)
                await service.drain()
            dep = {"state": "observed"}
        print(json.dumps(dep["state"]))

    asyncio.run(main())
    ''')


def _child(ws, kill_at: str, action: dict) -> subprocess.CompletedProcess:
    script = ws.root / "child.py"
    script.write_text(CHILD)
    return subprocess.run([sys.executable, str(script), str(ws.config().state_file), str(ws.state / "serving"),
                           kill_at, json.dumps(action)], env=ws.cli_env(), capture_output=True, text=True, timeout=120)


def _consistent(ws, harness) -> dict[str, int]:
    """Assert the target agrees with the aliases and no deployment is open; returns the aliases."""
    store = harness.store()
    try:
        aliases = store.models.aliases("house")
        assert store.models.deployments("house", open_only=True) == []
        contents = {v["version"]: open(v["path"]).read() for v in store.models.versions("house")}
    finally:
        store.close()
    root = ws.root / "serving" / "house"
    on_disk = {p.name: os.readlink(p) for p in root.iterdir() if p.is_symlink()}
    expected = {a: f"versions/{v}" for a, v in aliases.items()}
    if "champion" in aliases:
        expected["current"] = f"versions/{aliases['champion']}"
        assert (root / "current" / "model.bin").read_text() == contents[aliases["champion"]]
    assert on_disk == expected
    assert not list(root.glob(".*")) and not list((root / "versions").glob(".*"))  # no temporary left behind
    return aliases


BLUE_GREEN_STEPS = ["intent", "staging", "staged", "checked", "switched", "linked", "reloaded", "verified"]


def test_kill_9_at_every_step_of_a_blue_green_switch_leaves_alias_and_target_consistent(workspace, harness, model_pipeline) -> None:
    reloads = workspace.root / "reloads.txt"
    model_pipeline(workspace, extra='strategy = "blue_green"\npromote = "manual"', deploy=f'''
        health = ["python", "-c", "pass"]
        reload = ["sh", "-c", "echo $EDGEORCH_MODEL_VERSION >> {reloads}"]
        window = "5s"''')
    harness.run("trainer")
    harness.run("trainer", {"rmse": 29.0})
    harness.models(lambda s: s.promote("house", 1, actor="test"))
    assert _consistent(workspace, harness) == {"champion": 1}
    for step in BLUE_GREEN_STEPS:
        proc = _child(workspace, step, {"op": "promote", "version": 2})
        assert proc.returncode == -9, (step, proc.stdout, proc.stderr)
        reloads.write_text("")
        harness.models(lambda s: s.deployer.settle())  # what a daemon's start does
        aliases = _consistent(workspace, harness)
        store = harness.store()
        try:
            dep = store.models.deployments("house")[0]
        finally:
            store.close()
        if step in BEFORE_SWITCH and step != "intent":  # started, not switched: undone
            assert aliases == {"champion": 1} and dep["state"] == "undone", (step, dep)
            assert f"interrupted at step {step}" in dep["outcome"]
        else:  # switched (or only queued: then recovery runs it whole): finished
            assert aliases == {"champion": 2} and dep["state"] == "succeeded", (step, dep)
            # The serving process was told, once: a reload recorded as passed (`reloaded`, `verified`) is not run
            # again (it was, contradicting the steps' table: "reloaded -> finished: health").
            assert reloads.read_text().split() == ([] if step in ("reloaded", "verified") else ["2"]), step
            harness.models(lambda s: s.rollback("house", actor="test", reason="reset for the next step"))
        assert _consistent(workspace, harness) == {"champion": 1}


def test_kill_9_while_a_failed_health_check_rolls_back_finishes_the_rollback(workspace, harness, model_pipeline) -> None:
    model_pipeline(workspace, extra='promote = "manual"', deploy='''
        health = ["sh", "-c", "test $EDGEORCH_MODEL_VERSION != 2"]''')
    harness.run("trainer")
    harness.run("trainer", {"rmse": 29.0})
    harness.models(lambda s: s.promote("house", 1, actor="test"))
    proc = _child(workspace, "rolling_back", {"op": "promote", "version": 2})
    assert proc.returncode == -9, proc.stderr
    harness.models(lambda s: s.deployer.settle())
    assert _consistent(workspace, harness) == {"champion": 1}
    store = harness.store()
    try:
        dep = store.models.deployments("house")[0]
        assert dep["state"] == "rolled_back" and "health check failed after the switch" in dep["outcome"]
    finally:
        store.close()




@pytest.mark.parametrize("step", ["intent", "staged", "switched", "linked"])
def test_kill_9_during_a_canary_decision_leaves_alias_and_target_consistent(workspace, harness, step, model_pipeline) -> None:
    model_pipeline(workspace, extra='strategy = "canary"\n[models.house.canary]\nbatches = 2\nmetric = "rmse"\n'
                   'share = 0.2')
    harness.run("trainer")
    harness.run("trainer", {"rmse": 29.0})  # passes its gates: a canary starts
    assert _consistent(workspace, harness) == {"champion": 1, "canary": 2}
    weights = json.loads((workspace.root / "serving" / "house" / "weights.json").read_text())
    assert [(r["alias"], r["version"], r["weight"]) for r in weights["routes"]] == [("champion", 1, 0.8),
                                                                                    ("canary", 2, 0.2)]
    batch = {"champion": {"rmse": 31.0}, "canary": {"rmse": 29.5}}
    proc = _child(workspace, step, {"op": "observe", "batches": [batch, batch]})
    assert proc.returncode == -9, proc.stderr
    harness.models(lambda s: s.start())  # recovery: finish the decision's deployments
    # The canary won; its promotion is finished when the crash came at or after the switch, and done again when
    # it came before (edgeorch decided it: undone, it was lost for good). The canary is gone and the target agrees.
    assert _consistent(workspace, harness) == {"champion": 2}
    assert not (workspace.root / "serving" / "house" / "weights.json").exists()
    store = harness.store()
    try:
        [decision] = [d for d in store.models.decisions(store.models.version("house", 2)["id"]) if d["kind"] == "canary"]
        assert decision["verdict"] == "passed" and decision["against_version"] == 1
        assert store.models.canary("house") is None
    finally:
        store.close()


def test_the_reload_after_an_automatic_rollback_names_the_version_served_again(workspace, harness,
                                                                              model_pipeline) -> None:
    """A health check failed after the switch to 2: the rollback's reload got v=2 prev=1, the failed version, though
    version 1 was served again (a serving process trusting EDGEORCH_MODEL_VERSION reported the wrong model)."""
    reloads = workspace.root / "reloads.txt"
    model_pipeline(workspace, extra='promote = "manual"', deploy=f'''
        health = ["sh", "-c", "test $EDGEORCH_MODEL_VERSION != 2"]
        reload = ["sh", "-c", "echo $EDGEORCH_MODEL_VERSION $EDGEORCH_MODEL_PREVIOUS >> {reloads}"]''')
    harness.run("trainer")
    harness.run("trainer", {"rmse": 29.0})
    harness.models(lambda s: s.promote("house", 1, actor="test"))
    reloads.write_text("")
    harness.models(lambda s: s.promote("house", 2, actor="test"))
    assert _consistent(workspace, harness) == {"champion": 1}
    assert reloads.read_text().splitlines() == ["2 1", "1 2"]


def test_a_reload_that_fails_is_recorded_as_the_reload_not_a_health_check(workspace, harness, model_pipeline) -> None:
    """`models why` said "Health (failed): ... failed its health check after the switch: 'sh -c echo reload ...'
    exited with code 1" for a failed reload command."""
    model_pipeline(workspace, extra='promote = "manual"', deploy='''
        reload = ["sh", "-c", "test $EDGEORCH_MODEL_VERSION != 2"]''')
    harness.run("trainer")
    harness.run("trainer", {"rmse": 29.0})
    harness.models(lambda s: s.promote("house", 1, actor="test"))
    dep = harness.models(lambda s: s.promote("house", 2, actor="test"))
    assert dep["state"] == "rolled_back" and dep["outcome"].startswith("the reload failed")
    store = harness.store()
    try:
        (decision,) = [d for d in store.models.decisions(store.models.version("house", 2)["id"]) if d["kind"] == "health"]
        assert "failed its reload command after the switch" in decision["summary"], decision["summary"]
        assert decision["conditions"][0]["condition"] == "reload after the switch"
    finally:
        store.close()
    why = workspace.invoke("models", "why", "house", "2").stdout
    assert "rolled_back: the reload failed" in why and "(fix what failed, then edgeorch models promote house 2 " \
        "--alias champion)" in why, why


def test_the_served_version_is_deployed_again_on_request_its_damaged_files_staged_anew(workspace, harness,
                                                                                       model_pipeline) -> None:
    """A served file corrupted on disk: `promote` of the served version said "nothing to do" (exit 5) and a
    restart did not check the slot; only promoting another version and rolling back repaired it. `--again`
    deploys it anew: the slot checked against the registered sha256 and staged again, the reload run."""
    import pytest

    from edgeorch.errors import ConflictError

    reloads = workspace.root / "reloads.txt"
    model_pipeline(workspace, deploy=f'''
        reload = ["sh", "-c", "echo $EDGEORCH_MODEL_VERSION >> {reloads}"]''')
    harness.run("trainer")
    assert _consistent(workspace, harness) == {"champion": 1}
    served = workspace.root / "serving" / "house" / "current" / "model.bin"
    good = served.read_text()
    served.write_text("corrupted\n")
    with pytest.raises(ConflictError) as err:
        harness.models(lambda s: s.promote("house", 1, actor="test"))
    assert "--again" in (err.value.hint or "")
    dep = harness.models(lambda s: s.promote("house", 1, actor="test", again=True))
    assert dep["state"] == "succeeded", dep
    assert served.read_text() == good
    assert reloads.read_text().splitlines()[-1] == "1"
    assert _consistent(workspace, harness) == {"champion": 1}


def test_models_show_without_a_daemon_says_an_open_deployment_waits_for_the_next_start(workspace, harness,
                                                                                       model_pipeline) -> None:
    """A deployment a kill -9 left `running` was listed as running, as if something carried it on."""
    model_pipeline(workspace)
    harness.run("trainer")
    harness.run("trainer", {"rmse": 29.0})
    store = harness.store()
    try:
        dep = store.models.add_deployment("house", alias="champion", to_version=1, action="rollback",
                                          strategy="direct", target={"name": "house"}, actor="alice", reason="t")
        store.models.set_deployment(dep["id"], state="running", step="staged")
    finally:
        store.close()
    out = workspace.invoke("models", "show", "house")
    assert out.returncode == 0, out.stderr
    assert f"note: no daemon runs: deployment(s) {dep['id']} stopped where the table says" in out.stdout, out.stdout
