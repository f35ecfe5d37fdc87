"""store.rules on a real state file: state round trip, the cursor only moves forward, firings, silences audited."""

from __future__ import annotations

from pathlib import Path

from edgeorch.monitor.rules import RuleState
from edgeorch.store import Store


def state(**kw) -> dict:
    st = RuleState(**kw)
    return {k: getattr(st, k) for k in st.__dataclass_fields__}


def test_state_cursor_firings_and_silences(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.db", clock=lambda: 100.0)
    store.rules.save("r", "p", state(state="pending", consecutive=1, holding_since=5.0), signal={"value": 0.4}, cursor=7)
    store.rules.save("r", "p", state(state="pending", consecutive=2, holding_since=5.0), cursor=3)
    row = store.rules.get("r")
    assert row["cursor"] == 7 and row["consecutive"] == 2 and row["last_signal"] == {"value": 0.4}
    assert RuleState.from_row(row).state == "pending"
    fid = store.rules.add_firing(rule="r", pipeline="p", episode=1, fired_at=90.0, outcome="fire", dry_run=False,
                                 dedupe_key="k", value=0.4, threshold=0.3, signal={"run_id": 7},
                                 responses=[{"action": "notify"}], run_id=None, state="pending")
    assert [f["id"] for f in store.rules.pending()] == [fid]
    store.rules.set_firing(fid, state="done", responses=[{"action": "notify", "ok": True}])
    assert store.rules.pending() == [] and store.rules.history("r", 0.0) == (1, frozenset({"k"}))
    assert store.rules.history("r", 95.0) == (0, frozenset())
    store.rules.silence("r", "p", 500.0, reason="maintenance", actor="alice (uid 1000)")
    assert store.rules.get("r")["silenced_until"] == 500.0 and store.rules.get("r")["consecutive"] == 2
    audit = store.audit.records(action="rule_silenced")
    assert audit and audit[-1]["actor"] == "alice"
    store.close()


def test_a_block_whose_rule_is_no_longer_loaded_is_kept_and_said(tmp_path: Path) -> None:
    """Removing or breaking a rule must not release its safety hold, but `edgeorch monitors` says that nothing
    will lift it by itself, and how to."""
    from edgeorch.monitor.views import monitors_doc, orphan_blocks

    store = Store(tmp_path / "state.db", clock=lambda: 100.0)
    store.models.block("house", rule="champion_degraded", reason="rmse 72 > 60", actor="rule:champion_degraded")
    store.models.block("house", rule=None, reason="by hand", actor="alice")  # a person's block: not a rule's
    store.models.block("old", rule="gone", reason="x", actor="rule:gone", until=50.0)  # expired: not in force
    problems = monitors_doc(store, {}, ["a bad file"], 100.0)["problems"]
    assert problems[0] == "a bad file" and len(problems) == 2
    assert "model house set by rule champion_degraded is in force, but no loaded rule" in problems[1]
    assert "`edgeorch models unblock house --rule champion_degraded`" in problems[1]
    assert orphan_blocks(store, {"champion_degraded": object()}, 100.0) == []  # loaded again: nothing to say
    store.close()
