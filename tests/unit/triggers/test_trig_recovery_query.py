"""Recovery reads every input record through one narrow store query, never ``list_inputs`` (issue 9 item 2)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace

from edgeorch.store.store import Store
from edgeorch.triggers.drop.service import DropFolders


def _claim(store: Store, inbox: Path, name: str) -> int:
    return store.inputs.record_intent(pipeline="p", folder="/drop", source=f"/drop/{name}", dev=1, ino=2, size=3,
                                      inbox_for=lambda iid: str(inbox / f"in-{iid}" / name))


def _recover(store: Store, inbox: Path, state_dir: Path) -> list[str]:
    """Run the drop folders' recovery alone (no engine, no watches) over ``store`` and ``inbox``."""
    loop = asyncio.new_event_loop()
    try:
        drops = DropFolders(store=store, requests=None, engine=SimpleNamespace(runs={}, fatal_error=None, run_end_writers=[]),
                            registry=SimpleNamespace(pipelines={}),
                            config=SimpleNamespace(inbox_dir=inbox, state_dir=state_dir, watches=[], source=None),
                            loop=loop, publish=lambda event: None)
        return drops.recover()
    finally:
        loop.close()


def test_recovery_reads_every_input_through_the_dedicated_query_not_list_inputs(tmp_path, monkeypatch):
    inbox = tmp_path / "inbox"
    store = Store(tmp_path / "state.db")
    try:
        done = _claim(store, inbox, "a.csv")
        store.inputs.record_claimed(done, 3, "ab" * 32)
        store.inputs.record_started(done, 41)  # its run (no runs row needed here)
        store.inputs.record_state(done, "done")
        (inbox / f"in-{done}").mkdir(parents=True)
        (inbox / f"in-{done}" / "a.csv").write_text("kept for retry and lineage\n")
        claiming = _claim(store, inbox, "b.csv")  # its source is gone: recovery records it vanished

        rows = store.inputs.records()
        assert [tuple(r) for r in rows] == [
            (done, "p", "done", "/drop/a.csv", str(inbox / f"in-{done}" / "a.csv"), 1, 2, "ab" * 32, 41),
            (claiming, "p", "claiming", "/drop/b.csv", str(inbox / f"in-{claiming}" / "b.csv"), 1, 2, None, None),
        ]

        def no_full_listing(*a, **k):
            raise AssertionError("recovery must not list whole input rows")

        monkeypatch.setattr(store.inputs, "list", no_full_listing)
        kinds = _recover(store, inbox, tmp_path)
        assert kinds == ["forget"]  # the done input's inbox file is known, not a stray to quarantine
        assert store.inputs.get(claiming)["state"] == "vanished"
        assert (inbox / f"in-{done}" / "a.csv").is_file()
    finally:
        store.close()


def test_recovery_removes_the_empty_claim_folders_a_killed_group_left_past_the_last_input(tmp_path):
    """A daemon killed between making a group's claim folders (ahead, for the next ids) and committing its
    intents leaves them empty: recovery removes them, so the next inputs get ``in-<id>``, not ``in-<id>-1``;
    a folder with anything in it, or named by a record, stays."""
    inbox = tmp_path / "inbox"
    store = Store(tmp_path / "state.db")
    try:
        first = _claim(store, inbox, "a.csv")  # its folder is named by its record: kept even while empty
        (inbox / f"in-{first}").mkdir(parents=True)
        for iid in (first + 1, first + 2, first + 3):
            (inbox / f"in-{iid}").mkdir()
        (inbox / f"in-{first + 3}" / "sub").mkdir()  # something in it (not a claimed file): left as it is
        _recover(store, inbox, tmp_path)
        assert not (inbox / f"in-{first + 1}").exists() and not (inbox / f"in-{first + 2}").exists()
        assert (inbox / f"in-{first}").is_dir()
        assert (inbox / f"in-{first + 3}").is_dir()
    finally:
        store.close()
