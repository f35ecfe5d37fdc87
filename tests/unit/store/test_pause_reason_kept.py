"""Pausing a paused pipeline again without a reason keeps the reason it was paused for.

Found by an operator: `pipelines pause tick --reason "hold A"`, then `pipelines pause tick` printed "tick paused"
and the reason was gone (`paused_reason: null`).
"""

from __future__ import annotations

from pathlib import Path

from edgeorch.store import Store


def test_a_second_pause_without_a_reason_keeps_the_first_and_a_new_reason_replaces_it(tmp_path: Path) -> None:
    store = Store(tmp_path / "edgeorch.db")
    try:
        p = store.pipelines
        p.set_paused("tick", True, reason="hold A", actor="alice")
        p.set_paused("tick", True, reason=None, actor="bob")
        assert p.paused()["tick"]["reason"] == "hold A"
        p.set_paused("tick", True, reason="hold B", actor="bob")
        assert p.paused()["tick"]["reason"] == "hold B"
        p.set_paused("tick", False, reason=None, actor="bob")
        assert "tick" not in p.paused()
        p.set_paused("tick", True, reason=None, actor="bob")  # paused anew: no old reason comes back
        assert p.paused()["tick"]["reason"] is None
    finally:
        store.close()
