"""Recovery of inputs that waited for their paused pipeline: the same actions as a claimed input's."""

from __future__ import annotations

from pathlib import Path

from edgeorch.triggers.drop.reconcile import InputRecord, reconcile


def _record(rid: int, state: str, inbox: Path) -> InputRecord:
    return InputRecord(rid, "p", state, Path(f"/drop/{rid}.csv"), inbox / f"in-{rid}" / f"{rid}.csv")


def test_a_waiting_input_is_submitted_again_lost_without_its_file_and_linked_to_a_run_made_for_it():
    inbox = Path("/inbox")
    records = [_record(1, "waiting", inbox), _record(2, "waiting", inbox), _record(3, "waiting", inbox),
               _record(4, "claimed", inbox)]
    files = [inbox / "in-1" / "1.csv", inbox / "in-3" / "3.csv", inbox / "in-4" / "4.csv"]
    actions = {a.record.id: a for a in reconcile(records, {}, files, {3: "7"}) if a.record is not None}
    assert actions[1].kind == "submit"  # its file is in the inbox: started, or waiting again while still paused
    assert actions[2].kind == "lost" and "missing from the inbox" in actions[2].reason
    assert (actions[3].kind, actions[3].run_id) == ("link_run", "7")
    assert actions[4].kind == "submit"  # a claimed one alike
