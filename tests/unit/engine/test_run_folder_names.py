"""Run folders are created exclusively, with one mkdir per new run on the engine's loop."""

from __future__ import annotations

from edgeorch.engine.files import claim_run_dir


def test_a_taken_run_folder_name_gets_a_suffix_never_shared(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "5").mkdir()
    (runs / "5" / "old").write_text("a run from a restored backup's lost future\n")
    assert claim_run_dir(runs, 5) == runs / "5-2"
    assert claim_run_dir(runs, 5) == runs / "5-3"
    assert list((runs / "5-2").iterdir()) == []


def test_a_runs_folder_removed_by_hand_is_made_again(tmp_path):
    runs = tmp_path / "state" / "runs"
    assert claim_run_dir(runs, 1) == runs / "1"
    assert (runs / "1").is_dir()
