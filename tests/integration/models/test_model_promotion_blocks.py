"""A block on a model's promotions (a monitoring rule's response) through a real engine and the CLI: a pipeline's
automatic promotion is undone naming the rule, a person's promotion is refused (exit 5), a rollback still goes
through, ``models show`` says it, and ``models unblock`` lifts it."""

from __future__ import annotations

import json

import pytest

from edgeorch.models.blocks import PromotionBlocked


def test_a_block_stops_every_forward_move_until_unblocked(workspace, harness, model_pipeline) -> None:
    model_pipeline(workspace)
    harness.run("trainer", {"rmse": 30.0})  # version 1: champion
    store = harness.store()
    store.models.block("house", rule="champion_degraded", reason="rmse of champion > 40, value 52",
                       actor="rule:champion_degraded")
    store.close()

    run2, _ = harness.run("trainer", {"rmse": 29.0})  # version 2 passes its gates, but its promotion is undone
    store = harness.store()
    assert store.models.aliases("house") == {"champion": 1}
    # `show` of the run said "passed its gates" as if it were served: it says what its promotion did.
    shown = workspace.invoke("show", str(run2)).stdout
    assert "model house version 2: passed its gates; NOT promoted (undone: " in shown, shown
    assert "model house version 1: passed its gates; promoted: champion -> version 1" in workspace.invoke(
        "show", "1").stdout
    dep = store.models.deployments("house", limit=1)[0]
    assert dep["state"] == "undone" and "blocked by rule champion_degraded" in dep["outcome"]
    block = [d for d in store.models.decisions(store.models.version("house", 2)["id"]) if d["kind"] == "block"]
    assert block and block[0]["verdict"] == "blocked"
    store.close()

    with pytest.raises(PromotionBlocked, match="rule champion_degraded"):
        harness.models(lambda s: s.promote("house", 2, actor="alice"))
    out = workspace.invoke("models", "promote", "house", "2")
    assert out.returncode == 5 and "blocked by rule champion_degraded" in out.stderr and "Traceback" not in out.stderr
    show = workspace.invoke("models", "show", "house")
    assert "promotions BLOCKED by rule champion_degraded" in show.stdout
    assert json.loads(workspace.invoke("models", "show", "house", "--json").stdout)["blocks"][0]["rule"] == \
        "champion_degraded"
    why = workspace.invoke("models", "why", "house", "2")
    assert "Block (blocked)" in why.stdout and "champion_degraded" in why.stdout
    # The deployment that did not happen is named, with how to try again (it ended "Now: no alias points at it").
    assert "(promote to champion) undone: " in why.stdout and "edgeorch models promote house 2 --alias champion " \
        "tries again" in why.stdout, why.stdout

    lifted = workspace.invoke("models", "unblock", "house", "--reason", "checked by hand", "--json")
    assert lifted.returncode == 0 and json.loads(lifted.stdout)["lifted"][0]["lift_reason"] == "checked by hand"
    assert "no promotion block in force" in workspace.invoke("models", "unblock", "house").stdout
    assert workspace.invoke("models", "promote", "house", "2").returncode == 0
    store = harness.store()
    assert store.models.aliases("house") == {"champion": 2}
    assert [r["action"] for r in store.audit.records(action="model_unblocked")]
    store.close()


def test_a_rollback_is_never_blocked(workspace, harness, model_pipeline) -> None:
    model_pipeline(workspace)
    harness.run("trainer", {"rmse": 30.0})
    harness.run("trainer", {"rmse": 29.0})
    store = harness.store()
    store.models.block("house", rule="r", reason="drift", actor="rule:r")
    store.close()
    dep = harness.models(lambda s: s.auto_rollback("house", rule="r", reason="realized rmse too high"))
    assert dep["state"] == "succeeded" and dep["to_version"] == 1


def test_unblocking_a_model_that_does_not_exist_is_not_found_exit_3(workspace) -> None:
    """It said "nosuch: no promotion block in force" and exited 0, where every other models command says 3."""
    r = workspace.invoke("models", "unblock", "nosuch")
    assert r.returncode == 3, r.stdout + r.stderr
    assert "no model named 'nosuch'" in r.stderr
