"""Promotion blocks on a real state file: in force until lifted or expired, one per rule, recorded and audited,
and the one check that refuses forward moves (never rollbacks)."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeorch.models.blocks import PromotionBlocked, check, describe
from edgeorch.store import Store


class Clock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def store(tmp_path: Path):
    clock = Clock()
    s = Store(tmp_path / "state.db", clock=clock)
    s.test_clock = clock  # type: ignore[attr-defined]
    yield s
    s.close()


def test_a_rule_block_is_in_force_until_lifted_and_is_recorded(store) -> None:
    b = store.models.block("house", rule="degraded", reason="rmse of champion > 40, value 52", actor="rule:degraded")
    again = store.models.block("house", rule="degraded", reason="another firing", actor="rule:degraded")
    assert again["id"] == b["id"]  # one open block per rule and model
    assert [x["id"] for x in store.models.blocks("house")] == [b["id"]]
    with pytest.raises(PromotionBlocked, match="blocked by rule degraded .rmse of champion > 40, value 52. "
                                               "until the rule resolves"):
        check(store, "house")
    check(store, "house", action="rollback")  # moving back is never blocked
    check(store, "house", action="canary_end")
    check(store, "other")
    lifted = store.models.lift_blocks(rule="degraded", by="rule:degraded", reason="rule degraded resolved")
    assert [x["id"] for x in lifted] == [b["id"]] and lifted[0]["lift_reason"] == "rule degraded resolved"
    assert store.models.blocks("house") == [] and len(store.models.blocks("house", open_only=False)) == 1
    check(store, "house")
    kinds = [r["action"] for r in store.audit.records()]
    assert "model_blocked" in kinds and "model_unblocked" in kinds
    assert {"model_blocked", "model_unblocked"} <= {e["kind"] for e in store.events.recent(limit=10)}


def test_a_block_with_until_expires_on_its_own(store) -> None:
    store.models.block("house", rule="r", reason="drift", actor="rule:r", until=1060.0)
    with pytest.raises(PromotionBlocked, match="until 1970-01-01T00:17:40Z"):
        check(store, "house")
    store.test_clock.t = 1061.0
    check(store, "house")
    # Expired, so a new firing of the rule blocks afresh.
    assert store.models.block("house", rule="r", reason="drift again", actor="rule:r")["reason"] == "drift again"


def test_lifting_by_model_lifts_every_rule_and_nothing_open_is_nothing_written(store) -> None:
    store.models.block("house", rule="a", reason="x", actor="rule:a")
    store.models.block("house", rule="b", reason="y", actor="rule:b")
    store.models.block("flat", rule="a", reason="z", actor="rule:a")
    assert len(store.models.lift_blocks("house", by="alice (uid 1000)", reason="checked by hand")) == 2
    assert [b["model"] for b in store.models.blocks("flat")] == ["flat"]
    before = len(store.audit.records())
    assert store.models.lift_blocks("house", by="alice", reason="again") == []
    assert len(store.audit.records()) == before


def test_describe_names_a_person_block() -> None:
    assert describe({"rule": None, "actor": "alice", "reason": "audit", "until": None}) == \
        "by alice (audit) until unblocked"
