"""Run folders are created exclusively: one mkdir per new run, on the engine's loop or made ahead for a group."""

from __future__ import annotations

import asyncio

from edgeorch.engine.files import AHEAD_MAX, RunFolders, claim_run_dir, make_run_dirs


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


def test_folders_made_ahead_are_taken_by_their_runs_and_the_rest_released(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "8").mkdir()  # a lost future's folder: the run with id 8 must not share it
    folders = RunFolders()
    ids = folders.plan(7, 3)
    assert ids == [7, 8, 9]
    made = asyncio.run(make_run_dirs(runs, ids))
    assert made == {7: runs / "7", 8: runs / "8-2", 9: runs / "9"}
    folders.keep(made)
    assert folders.plan(7, 4) == [10]  # those made and not taken are not made twice
    assert folders.take(runs, 7) == runs / "7"
    assert folders.take(runs, 8) == runs / "8-2"
    assert folders.take(runs, 7) == runs / "7-2"  # taken once only: another run 7 (a rolled-back one) gets its own
    (runs / "9" / "x").write_text("")  # not empty: never removed
    folders.keep(asyncio.run(make_run_dirs(runs, [10])))
    folders.release()
    assert sorted(p.name for p in runs.iterdir()) == ["7", "7-2", "8", "8-2", "9"]
    assert folders.take(runs, 10) == runs / "10"  # released: made now


def test_a_folder_made_ahead_in_another_runs_folder_is_not_used(tmp_path):
    folders = RunFolders()
    folders.keep(asyncio.run(make_run_dirs(tmp_path / "old", [1])))
    assert folders.take(tmp_path / "new", 1) == tmp_path / "new" / "1"


def test_making_ahead_stops_at_the_first_folder_that_cannot_be_made(tmp_path):
    runs = tmp_path / "runs"
    runs.write_text("not a folder")
    assert asyncio.run(make_run_dirs(runs, [1, 2])) == {}


def test_at_most_ahead_max_folders_are_held(tmp_path):
    folders = RunFolders()
    folders.keep({i: tmp_path / str(i) for i in range(1, AHEAD_MAX)})
    assert folders.plan(AHEAD_MAX - 1, 5) == [AHEAD_MAX]  # room for one more


def test_a_start_removes_the_empty_folders_a_killed_engine_made_ahead(tmp_path):
    runs = tmp_path / "runs"
    for name in ("3", "4", "5", "6-2", str(3 + AHEAD_MAX + 1)):
        (runs / name).mkdir(parents=True)
    (runs / "5" / "attempts").mkdir()  # something in it: kept
    RunFolders.sweep_left(runs, 3)
    assert sorted(p.name for p in runs.iterdir()) == sorted(["3", "5", "6-2", str(3 + AHEAD_MAX + 1)])


def test_run_folders_newer_than_the_state_files_last_run_are_listed_by_id(tmp_path):
    """A state file older than its runs folder (a restored backup, a copy without its -wal) knows nothing of the
    runs past its last one: a start warns, naming them (their work may be done again)."""
    runs = tmp_path / "runs"
    for name in ("2", "3", "10", "3-2", "12-2", "notes", "9x"):
        (runs / name).mkdir(parents=True)
    (runs / "11").write_text("a file, not a run's folder")
    assert RunFolders.newer_than(runs, 2) == ["3", "3-2", "10", "12-2"]
    assert RunFolders.newer_than(runs, 12) == []
    assert RunFolders.newer_than(tmp_path / "missing", 0) == []


def test_a_folder_made_ahead_and_removed_since_is_made_again(tmp_path):
    """A gc with a bound of seconds may remove a folder made ahead (no run row names it yet)."""
    runs = tmp_path / "runs"
    runs.mkdir()
    folders = RunFolders()
    folders.keep(asyncio.run(make_run_dirs(runs, [4])))
    (runs / "4").rmdir()
    assert folders.take(runs, 4) == runs / "4" and (runs / "4").is_dir()


def test_a_run_created_while_a_worker_makes_its_folder_takes_it_not_a_suffixed_one(tmp_path):
    """A schedule's run created on the loop while a drop group's folders were being made in the worker thread
    got id N, found `N` just made for the group, and was named `N-2` (two in 4,150 runs of a soak). It takes the
    folder; the worker's result leaves it to that run (the group's release never removes it)."""
    runs = tmp_path / "runs"
    runs.mkdir()
    folders = RunFolders()
    ids = folders.plan(5, 2)
    assert ids == [5, 6]
    made = asyncio.run(make_run_dirs(runs, ids))  # the group's call, done before its result is kept
    assert folders.take(runs, 5) == runs / "5"  # the schedule's run, on the loop, meanwhile
    folders.keep(made)
    assert folders.take(runs, 7) == runs / "7"  # an id nobody planned: made now
    folders.release()  # the group's runs took other ids: the folder of 6 goes, 5 is the schedule run's
    assert sorted(p.name for p in runs.iterdir()) == ["5", "7"]
    ids = folders.plan(8, 1)
    (runs / "8").mkdir()
    (runs / "8" / "old").touch()  # a folder of a lost future (a restored backup): never shared
    assert folders.take(runs, 8) == runs / "8-2"
    folders.plan(9, 1)
    (tmp_path / "elsewhere").mkdir()
    (runs / "9").symlink_to(tmp_path / "elsewhere")  # a link in its place: never taken, never followed
    assert folders.take(runs, 9) == runs / "9-2"


def test_a_run_that_takes_its_id_before_the_worker_leaves_no_second_folder(tmp_path):
    """A schedule's run took id 7 while a drop group's worker was making folders ahead: it made `7` itself, the
    worker then made `7-2`, and that empty folder was left for good (no row names it)."""
    runs = tmp_path / "runs"
    runs.mkdir()
    folders = RunFolders()
    ids = folders.plan(7, 2)
    assert folders.take(runs, 7) == runs / "7"  # first: the worker has not made it yet
    folders.keep(asyncio.run(make_run_dirs(runs, ids)))  # make_run_dirs finds 7 there and makes 7-2
    assert sorted(p.name for p in runs.iterdir()) == ["7", "8"]
    assert folders.take(runs, 8) == runs / "8"


def test_where_an_active_runs_recorded_folder_lies(tmp_path):
    """The start's check (engine ``_refuse_runs_elsewhere``): in this runs folder by any path, moved, copied."""
    from edgeorch.engine.files import folder_elsewhere

    here = tmp_path / "state" / "runs"
    (here / "7").mkdir(parents=True)
    assert folder_elsewhere(here / "7", here) is None
    assert folder_elsewhere(here / "8", here) is None  # not made yet, or removed: in this folder still
    link = tmp_path / "state-link"
    link.symlink_to(tmp_path / "state")
    assert folder_elsewhere(link / "runs" / "7", here) is None  # the same folder through a link: not elsewhere
    old = tmp_path / "old" / "runs"
    assert folder_elsewhere(old / "7", here) == "moved"  # gone from there, its name here
    assert folder_elsewhere(old / "9", here) is None  # gone, and none of its name here: just lost
    (old / "7").mkdir(parents=True)
    assert folder_elsewhere(old / "7", here) == "copied"  # still there: another state folder's own
    (old / "9").mkdir()
    assert folder_elsewhere(old / "9", here) == "copied"  # the state file alone copied: no folder here needed
