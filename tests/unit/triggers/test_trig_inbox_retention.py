"""``[inbox] keep``: finished inputs' kept files removed after the bound, with an injected clock (issue 9 item 2).

Real SQLite and real files; the clock is the store's (the one that stamps ``updated_at``).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from edgeorch.errors import shown
from edgeorch.config import parse_config
from edgeorch.errors import ConfigError, NotFoundError
from edgeorch.store.store import Store
from edgeorch.triggers.drop.claim import make_claim_folder
from edgeorch.triggers.drop.retry import restore_inputs_for_retry
from edgeorch.triggers.drop.service import DropFolders
from testclock import SetClock as Clock

KEEP = 100.0


@pytest.fixture
def world(tmp_path):
    clock = Clock(1000.0)
    store = Store(tmp_path / "state.db", clock=clock)
    loop = asyncio.new_event_loop()
    engine = SimpleNamespace(runs={}, fatal_error=None, clock=clock, run_end_writers=[])
    config = SimpleNamespace(inbox_dir=tmp_path / "inbox", state_dir=tmp_path / "var", watches=[], source=None,
                             inbox_keep=KEEP)
    drops = DropFolders(store=store, requests=None, engine=engine, registry=SimpleNamespace(pipelines={}),
                        config=config, loop=loop, publish=lambda event: None)
    yield SimpleNamespace(store=store, clock=clock, engine=engine, drops=drops, tmp=tmp_path, config=config)
    loop.close()
    store.close()


def _input(w, name: str, state: str, *, run_id: int = 7, quarantined: bool = False) -> tuple[int, Path]:
    """One input in ``state`` with its kept file on disk (in its claim folder, or in quarantine)."""
    holder: dict[str, Path] = {}

    def inbox_for(iid: int) -> str:
        holder["p"] = make_claim_folder(w.config.inbox_dir, iid) / name
        return str(holder["p"])

    iid = w.store.inputs.record_intent(pipeline="p", folder="/drop", source=f"/drop/{name}", dev=1, ino=2, size=3,
                                       inbox_for=inbox_for)
    path = holder["p"]
    path.write_text("content\n")
    w.store.inputs.record_claimed(iid, 8, "ab" * 32)
    if state in ("duplicate", "refused", "lost"):  # settled from `claimed`, as the claim does (no run)
        w.store.inputs.record_state(iid, state)
        return iid, path
    w.store.inputs.record_started(iid, run_id)
    if quarantined:
        qdir = w.drops.quarantine_dir
        qdir.mkdir(parents=True, exist_ok=True)
        os.rename(path, qdir / name)
        (qdir / (name + ".reason.json")).write_text("{}\n")
        path.parent.rmdir()
        path = qdir / name
        w.store.inputs.record_state(iid, "quarantined", reason="run failed", inbox_path=str(path))
    elif state != "started":
        w.store.inputs.record_state(iid, state)
    return iid, path


def _removed_at(w, iid: int):
    return w.store.inputs.get(iid)["removed_at"]


def test_finished_inputs_files_are_removed_once_older_than_keep_and_their_records_stay(world):
    w = world
    done, done_path = _input(w, "a.csv", "done")
    dup, dup_path = _input(w, "b.csv", "duplicate")
    failed, failed_path = _input(w, "c.csv", "quarantined", quarantined=True)
    w.clock.now = 1000.0 + KEEP - 1
    assert w.drops.sweep_inbox() == []
    assert done_path.is_file() and dup_path.is_file() and failed_path.is_file()
    w.clock.now = 1000.0 + KEEP + 1
    assert w.drops.sweep_inbox() == [done, dup, failed]
    assert not done_path.exists() and not done_path.parent.exists(), "the empty claim folder stays"
    assert not dup_path.exists()
    assert not failed_path.exists() and not Path(str(failed_path) + ".reason.json").exists()
    for iid, state, path in ((done, "done", done_path), (dup, "duplicate", dup_path), (failed, "quarantined", failed_path)):
        row = w.store.inputs.get(iid)
        assert (row["state"], row["inbox_path"], row["removed_at"]) == (state, str(path), 1000.0 + KEEP + 1)
    assert w.drops.sweep_inbox() == [], "a removed input is removed once"


def test_retention_never_touches_an_input_whose_run_is_live_or_not_finished(world):
    w = world
    started, started_path = _input(w, "a.csv", "started", run_id=8)
    retried, retried_path = _input(w, "b.csv", "done", run_id=9)
    w.engine.runs[9] = object()  # its run is active again (a retry in progress)
    w.clock.now = 1e9
    assert w.drops.sweep_inbox() == []
    assert started_path.is_file() and retried_path.is_file()
    assert _removed_at(w, started) is None and _removed_at(w, retried) is None


def test_retention_never_follows_a_symlink_swapped_in_for_a_claim_folder(world):
    w = world
    iid, path = _input(w, "a.csv", "done")
    outside = w.tmp / "outside"
    outside.mkdir()
    (outside / "a.csv").write_text("not edgeorch's\n")
    path.unlink()
    path.parent.rmdir()
    path.parent.symlink_to(outside)
    w.clock.now = 1e9
    assert w.drops.sweep_inbox() == []
    assert (outside / "a.csv").read_text() == "not edgeorch's\n"
    assert _removed_at(w, iid) is None, "a failed removal is tried again at the next sweep"


def test_retention_unlinks_a_symlink_in_a_claim_folder_never_its_target(world):
    w = world
    iid, path = _input(w, "a.csv", "done")
    target = w.tmp / "target.csv"
    target.write_text("keep me\n")
    path.unlink()
    path.symlink_to(target)
    w.clock.now = 1e9
    assert w.drops.sweep_inbox() == [iid]
    assert not os.path.lexists(path) and target.read_text() == "keep me\n"


def test_keep_forever_removes_nothing(world):
    w = world
    iid, path = _input(w, "a.csv", "done")
    w.config.inbox_keep = None
    w.clock.now = 1e12
    assert w.drops.sweep_inbox() == [] and path.is_file()


def test_retry_after_the_retention_rule_removed_the_input_names_the_removed_input(world):
    w = world
    iid, path = _input(w, "data.csv", "quarantined", quarantined=True)
    w.clock.now = 1000.0 + KEEP + 1
    assert w.drops.sweep_inbox() == [iid]
    with pytest.raises(NotFoundError) as err:
        restore_inputs_for_retry(w.store, 7)
    text = err.value.render()
    assert f"input {iid} (data.csv)" in text and "[inbox] keep" in text and "run 7 cannot be retried" in text


def test_a_retry_says_which_input_was_requeued_meanwhile(world):
    """A run's input requeued before its retry (`edgeorch requeue`) was skipped in silence: the retried task failed
    on a missing file, and no `input_not_restored` event said why (docs/triggers.md promised one)."""
    w = world
    iid, _ = _input(w, "b9.txt", "quarantined", quarantined=True)
    w.store.inputs.record_state(iid, "requeued", reason="requeued to /drop/b9.txt by root")
    assert restore_inputs_for_retry(w.store, 7) == []
    (event,) = w.store.events.of_run(7, ("input_not_restored",))
    assert f"input {iid} not restored for the retry of run 7: it was requeued meanwhile" in event["message"], event


@pytest.mark.parametrize("value,expected", [
    ("30d", 30 * 86400.0), ("1s", 1.0), ("forever", None), (3600, 3600.0)])
def test_inbox_keep_accepts_durations_and_forever(value, expected):
    cfg = parse_config({"inbox": {"keep": value}}, base=Path("/"), file="config.toml", source=None)
    assert cfg.inbox_keep == expected


def test_inbox_keep_defaults_to_30_days():
    assert parse_config({}, base=Path("/"), file="config.toml", source=None).inbox_keep == 30 * 86400.0


@pytest.mark.parametrize("value", ["0", 0, "0.5s", "soon", True, "-1s"])
def test_a_bad_inbox_keep_is_a_config_error_naming_file_field_value_and_expected(value):
    with pytest.raises(ConfigError) as err:
        parse_config({"inbox": {"keep": value}}, base=Path("/"), file="config.toml", source=None)
    text = err.value.render()
    assert "config.toml" in text and "inbox.keep" in text and shown(value) in text and '"forever"' in text


def test_files_that_cannot_be_removed_never_starve_the_others(world):
    """Candidates are read in batches; a full batch of files that cannot be removed (not edgeorch's,
    or failing) must not hide the removable ones behind it, sweep after sweep."""
    w = world
    w.drops.sweep_batch = 2
    stuck = []
    for name in ("a.csv", "b.csv", "c.csv"):
        iid, path = _input(w, name, "done")
        w.store.db.conn.execute("UPDATE inputs SET inbox_path = ? WHERE id = ?", (str(w.tmp / name), iid))
        stuck.append(iid)  # a path outside the claim folders and quarantine: never edgeorch's to remove
    w.clock.now = 1001.0
    ok, ok_path = _input(w, "d.csv", "done")
    w.clock.now = 1e9
    assert w.drops.sweep_inbox() == [ok]
    assert not ok_path.exists()


def test_a_batchs_path_list_goes_with_its_first_inputs_file(world):
    """A batch run's path list (`<inbox>/batch-in-<first id>.paths`, its EDGEORCH_INPUT) was never removed: one
    file per batch, for ever."""
    w = world
    first, _ = _input(w, "a.csv", "done")
    second, _ = _input(w, "b.csv", "done")
    listing = w.config.inbox_dir / f"batch-in-{first}.paths"
    listing.write_text("a\nb\n")
    w.clock.now = 1000.0 + KEEP + 1
    assert w.drops.sweep_inbox() == [first, second]
    assert not listing.exists()
    assert sorted(p.name for p in w.config.inbox_dir.iterdir()) == []
