"""Data versions on a real state file and object store: dedupe, restore, retention and garbage are exact."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from edgeorch.datasets import service
from edgeorch.datasets.chunker import DEFAULT, cut_points
from edgeorch.datasets.objects import CorruptObject
from edgeorch.datasets.restore import restore
from edgeorch.datasets.retention import Rule
from edgeorch.datasets.snapshot import SourceError, take_snapshot
from edgeorch.errors import ConflictError, NotFoundError

DAY = 86400.0


def random_bytes(n: int, seed: int = 1) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


def add(store, objects, name: str, path: Path, **kw) -> dict:
    return service.add(store, objects, name, path, **kw)


def object_files(objects) -> dict[str, int]:
    return {sha: size for sha, _, size in objects.list_objects()}


def restore_ref(store, objects, name, version, dest, **kw):
    return restore(service.manifest_of(service.show(store, name, version, with_files=True)), objects, dest, **kw)


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# -- dedupe ------------------------------------------------------------------------------------


def test_the_same_content_twice_is_stored_once(store, objects, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.bin").write_bytes(random_bytes(3_000_000))
    (src / "copy.bin").write_bytes((src / "a.bin").read_bytes())  # identical files inside one version too
    v1 = add(store, objects, "demo", src)
    on_disk = object_files(objects)
    v2 = add(store, objects, "demo", src)
    assert (v1["version"], v2["version"]) == (1, 2)
    assert v1["new_bytes"] == 3_000_000 and v1["size"] == 6_000_000
    assert (v2["new_chunks"], v2["new_bytes"]) == (0, 0)
    assert object_files(objects) == on_disk
    assert sum(on_disk.values()) == 3_000_000
    assert v1["manifest_sha256"] == v2["manifest_sha256"]
    # every chunk is used by 2 files in each of 2 versions
    assert {r["refs"] for r in store.db.all("SELECT refs FROM dataset_chunks")} == {4}


def test_an_append_stores_only_the_new_tail_and_the_old_last_chunk(store, objects, tmp_path):
    base = random_bytes(6_000_000, seed=2)
    grown = base + random_bytes(300_000, seed=3)
    f = tmp_path / "daily.csv"
    f.write_bytes(base)
    add(store, objects, "daily", f)
    f.write_bytes(grown)
    v2 = add(store, objects, "daily", f)
    cuts = cut_points(base, DEFAULT)
    boundary = cuts[-2]  # where the old last chunk began: everything before it is stored already
    assert cut_points(grown, DEFAULT)[: len(cuts) - 1] == cuts[:-1]
    new_cuts = [c for c in cut_points(grown, DEFAULT) if c > boundary]
    assert v2["new_bytes"] == len(grown) - boundary
    assert v2["new_chunks"] == len(new_cuts)
    assert sum(object_files(objects).values()) == len(base) + len(grown) - boundary


def test_compression_is_chosen_and_recorded_per_object(store, objects, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "text.csv").write_bytes(b"id,value\n" + b"".join(b"%d,%d\n" % (i, i % 7) for i in range(200_000)))
    (src / "noise.bin").write_bytes(random_bytes(500_000, seed=9))
    v = add(store, objects, "mixed", src, compress=True)
    codecs = {r["codec"] for r in store.db.all("SELECT codec FROM dataset_chunks")}
    assert codecs == {"zstd", "raw"}  # text compresses; random bytes would grow, so they stay raw
    assert v["new_bytes"] < v["size"] // 2
    for sha, path, size in objects.list_objects():
        row = store.datasets.chunks([sha])[sha]
        assert path.name.endswith(".zst") == (row["codec"] == "zstd") and row["stored_size"] == size
    restore_ref(store, objects, "mixed", 1, tmp_path / "out")
    assert tree(tmp_path / "out") == tree(src)


# -- restore -----------------------------------------------------------------------------------


def test_restore_rebuilds_every_version_byte_for_byte_with_modes(store, objects, tmp_path):
    src = tmp_path / "src"
    (src / "sub" / "deep").mkdir(parents=True)
    (src / "a.bin").write_bytes(random_bytes(2_500_000))
    (src / "sub" / "deep" / "b.txt").write_text("hello\n")
    (src / "empty").write_bytes(b"")
    os.chmod(src / "sub" / "deep" / "b.txt", 0o750)
    add(store, objects, "demo", src)
    first = tree(src)
    (src / "a.bin").write_bytes(random_bytes(2_500_000, seed=8))
    add(store, objects, "demo", src, compress=True)
    res = restore_ref(store, objects, "demo", 1, tmp_path / "v1")
    assert res == {"dataset": "demo@1", "dest": str(tmp_path / "v1"), "files": 3, "bytes": 2_500_006,
                   "left_behind": []}
    assert tree(tmp_path / "v1") == first
    assert (tmp_path / "v1" / "sub" / "deep" / "b.txt").stat().st_mode & 0o777 == 0o750
    restore_ref(store, objects, "demo", None, tmp_path / "latest")
    assert tree(tmp_path / "latest") == tree(src)


def test_a_corrupted_object_is_named_and_nothing_is_restored(store, objects, tmp_path):
    f = tmp_path / "a.bin"
    f.write_bytes(random_bytes(50_000))  # under the minimum chunk size: one object
    add(store, objects, "demo", f)
    (sha, path, _), = list(objects.list_objects())
    data = bytearray(path.read_bytes())
    data[1000] ^= 0xFF
    path.write_bytes(bytes(data))
    dest = tmp_path / "out"
    with pytest.raises(CorruptObject) as err:
        restore_ref(store, objects, "demo", 1, dest)
    text = err.value.render()
    assert str(path) in text and "dataset demo@1, file a.bin" in text and "corrupted" in text
    assert not dest.exists() and list(tmp_path.glob(".out.*")) == []


@pytest.mark.parametrize("compress", [False, True])
def test_adding_the_data_again_heals_a_corrupted_object_instead_of_trusting_it(store, objects, tmp_path, compress):
    """A damaged object passed for its chunk (only its file's existence was checked): adding the same data again,
    as the restore's hint says, made another version that could not be restored either."""
    f = tmp_path / "a.txt"
    f.write_bytes(b"line of text\n" * 5_000)
    add(store, objects, "demo", f, compress=compress)
    (sha, path, _), = list(objects.list_objects())
    path.write_bytes(b"" if compress else path.read_bytes()[:-1] + b"!")  # truncated zst / one byte flipped
    with pytest.raises(CorruptObject):
        restore_ref(store, objects, "demo", 1, tmp_path / "broken")
    again = add(store, objects, "demo", f, compress=compress)
    assert again["version"] == 2
    for version in (1, 2):  # the one object both versions name is whole again
        restore_ref(store, objects, "demo", version, tmp_path / f"v{version}")
        assert (tmp_path / f"v{version}" / "a.txt").read_bytes() == f.read_bytes()
    assert len(list(objects.list_objects())) == 1


def test_adding_the_data_again_replaces_a_folder_made_where_an_object_belongs(store, objects, tmp_path):
    """A folder at an object's path made the add fail with 'Is a directory' and a hint to free disk space."""
    import shutil

    f = tmp_path / "a.txt"
    f.write_bytes(random_bytes(30_000))
    add(store, objects, "demo", f)
    (sha, path, _), = list(objects.list_objects())
    path.unlink()
    path.mkdir()
    (path / "junk").write_text("x")
    again = add(store, objects, "demo", f)
    assert again["version"] == 2 and path.is_file()
    restore_ref(store, objects, "demo", 1, tmp_path / "v1")
    assert (tmp_path / "v1" / "a.txt").read_bytes() == f.read_bytes()
    shutil.rmtree(tmp_path / "v1")


def test_a_missing_or_undecodable_object_is_named(store, objects, tmp_path):
    f = tmp_path / "a.txt"
    f.write_bytes(b"line\n" * 10_000)
    add(store, objects, "demo", f, compress=True)
    (sha, path, _), = list(objects.list_objects())
    path.write_bytes(b"not zstd")
    with pytest.raises(CorruptObject, match="not a valid zstd frame"):
        restore_ref(store, objects, "demo", 1, tmp_path / "out")
    path.unlink()
    with pytest.raises(CorruptObject, match=f"{path}: the object is missing .dataset demo@1, file a.txt"):
        restore_ref(store, objects, "demo", 1, tmp_path / "out")


def test_restore_refuses_a_non_empty_dest_unless_forced(store, objects, tmp_path):
    f = tmp_path / "a.bin"
    f.write_bytes(b"v1")
    add(store, objects, "demo", f)
    dest = tmp_path / "out"
    dest.mkdir()
    restore_ref(store, objects, "demo", 1, dest)  # an empty folder is fine
    with pytest.raises(ConflictError, match="is not empty") as err:
        restore_ref(store, objects, "demo", 1, dest)
    assert err.value.exit_code == 5 and str(dest) in err.value.render()
    (dest / "stale.txt").write_text("old")
    restore_ref(store, objects, "demo", 1, dest, force=True)
    assert tree(dest) == {"a.bin": b"v1"}  # replaced whole, never merged
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConflictError, match="is not a folder"):
        restore_ref(store, objects, "demo", 1, tmp_path / "file", force=True)


# -- what a snapshot refuses -------------------------------------------------------------------


def test_links_and_special_files_inside_a_folder_are_refused(store, objects, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("a")
    os.symlink("/etc/passwd", src / "link")
    with pytest.raises(SourceError, match="is a symbolic link") as err:
        take_snapshot(src, objects)
    assert str(src / "link") in err.value.render()
    os.unlink(src / "link")
    os.mkfifo(src / "fifo")
    with pytest.raises(SourceError, match="not a regular file"):
        take_snapshot(src, objects)
    assert objects.pinned() == frozenset()  # a failed snapshot holds nothing


def test_the_state_folder_below_a_folder_is_left_out_and_said(store, objects, tmp_path):
    """`edgeorch datasets add NAME .` in a project whose state is ./var read the live database (torn while a
    daemon writes it), its socket (refused: no snapshot at all) and the store's own objects into the version."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "x.csv").write_text("a\n1\n")
    add(store, objects, "first", tmp_path / "data")  # the store's objects exist now, below tmp_path/var
    os.mkfifo(tmp_path / "var" / "a.fifo")  # as a socket would: refused were the folder read
    doc = add(store, objects, "project", tmp_path)
    assert doc["left_out"] == ["var"]
    assert doc["files"] == 1 and doc["size"] == 4
    # The store's own folder is left out too where no state folder holds it.
    own = service.object_store(tmp_path / "data" / "state")
    own.objects.mkdir(parents=True)
    (own.objects / "ab").write_bytes(b"an object")
    snap = take_snapshot(tmp_path / "data", own)
    try:
        assert snap.left_out == ["state"] and [f.path for f in snap.files] == ["x.csv"]
    finally:
        snap.release()
    assert "left_out" not in add(store, objects, "plain", tmp_path / "data")
    for folder in (tmp_path / "var", tmp_path / "var" / "datasets"):  # the state itself: refused, naming it
        with pytest.raises(SourceError, match="edgeorch's own state folder") as err:
            take_snapshot(folder, objects)
        assert err.value.file == str(folder)
    # Anything inside the store too (`datasets add folds var/datasets/objects` made a version of its chunks).
    inside = [objects.root / "objects", next(p for p in (objects.root / "objects").rglob("*") if p.is_file())]
    for path in inside:
        with pytest.raises(SourceError, match="inside edgeorch's own dataset store") as err:
            take_snapshot(path, objects)
        assert err.value.file == str(path)


UNLISTABLE = "/proc/1/map_files"


def _a_folder_that_opens_but_cannot_be_listed() -> str | None:
    """/proc/1/map_files on Linux opens but refuses a listing, even to root (which no permission bits of a
    folder a test makes can do); None where the walk reads it whole."""
    try:
        for _ in os.fwalk(UNLISTABLE, follow_symlinks=False, onerror=lambda exc: None):
            pass
    except OSError:
        return UNLISTABLE
    return None


@pytest.mark.skipif(_a_folder_that_opens_but_cannot_be_listed() is None,
                    reason=f"no folder here opens and then refuses its listing ({UNLISTABLE} is read whole)")
def test_a_folder_that_opens_but_cannot_be_listed_is_refused_naming_where(objects):
    """os.fwalk raises such a folder's error whatever its onerror, naming only a descriptor: the daemon's
    datasets.add answered an internal error (found by a protocol fuzz adding "/")."""
    with pytest.raises(SourceError, match="cannot read a folder at or under this one") as err:
        take_snapshot(UNLISTABLE, objects)
    assert err.value.file == UNLISTABLE
    assert objects.pinned() == frozenset()


def test_a_missing_path_is_not_found(objects, tmp_path):
    with pytest.raises(NotFoundError, match="no such file or folder") as err:
        take_snapshot(tmp_path / "nope", objects)
    assert err.value.exit_code == 3


def test_unknown_dataset_and_version_name_what_exists(store, objects, tmp_path):
    (tmp_path / "a").write_text("a")
    add(store, objects, "demo", tmp_path / "a")
    with pytest.raises(NotFoundError, match="no dataset named 'dem'") as err:
        store.datasets.version("dem")
    assert "did you mean 'demo'" in err.value.render()
    with pytest.raises(NotFoundError, match="dataset demo has no version 7") as err:
        store.datasets.version("demo", 7)
    assert "demo@1" in err.value.render()


# -- retention ---------------------------------------------------------------------------------


def daily_versions(store, objects, tmp_path, clock, days: int) -> None:
    """One version a day of a file that grows by appends (day 0 first)."""
    f = tmp_path / "daily.bin"
    data = b""
    for day in range(days):
        data += random_bytes(400_000, seed=day)
        f.write_bytes(data)
        add(store, objects, "daily", f)
        clock.now += DAY


def versions(store, name="daily") -> list[int]:
    return [v["version"] for v in store.datasets.versions(name)]


def test_keep_n_removes_exactly_the_older_versions_and_their_unique_chunks(store, objects, tmp_path, clock):
    daily_versions(store, objects, tmp_path, clock, 6)
    res = service.prune(store, objects, Rule(keep_last=2))
    assert [v["ref"] for v in res["removed"]] == ["daily@1", "daily@2", "daily@3", "daily@4"]
    assert versions(store) == [5, 6]
    # exactly the chunks versions 5 and 6 use remain, in rows and on disk
    used = {sha for v in store.datasets.versions("daily") for f in store.datasets.files(v["id"]) for sha in f["chunks"]}
    assert set(object_files(objects)) == used == {r["sha256"] for r in store.db.all("SELECT sha256 FROM dataset_chunks")}
    assert res["objects_removed"] == res["chunks_removed"] > 0
    restore_ref(store, objects, "daily", 5, tmp_path / "v5")
    assert len((tmp_path / "v5" / "daily.bin").read_bytes()) == 5 * 400_000


def test_max_age_keeps_versions_at_most_that_old_with_an_injected_clock(store, objects, tmp_path, clock):
    daily_versions(store, objects, tmp_path, clock, 5)  # ages now: 5d, 4d, 3d, 2d, 1d
    plan_only = service.prune(store, objects, Rule(max_age=2 * DAY), dry_run=True)
    assert [v["ref"] for v in plan_only["removed"]] == ["daily@1", "daily@2", "daily@3"]
    assert versions(store) == [1, 2, 3, 4, 5]  # a dry run changes nothing
    service.prune(store, objects, Rule(max_age=2 * DAY))
    assert versions(store) == [4, 5]


def test_max_age_boundary_is_inclusive(store, objects, tmp_path, clock):
    daily_versions(store, objects, tmp_path, clock, 4)  # ages now: 4d, 3d, 2d, 1d
    clock.now -= DAY  # ages: 3d, 2d, 1d, 0d
    service.prune(store, objects, Rule(max_age=2 * DAY))
    assert versions(store) == [2, 3, 4]  # exactly 2 days old is kept; 3 days is not


def test_held_versions_and_the_latest_are_never_removed(store, objects, tmp_path, clock):
    daily_versions(store, objects, tmp_path, clock, 5)
    store.datasets.hold("daily", 2, "model:fraud@prod", "trained on it")
    res = service.prune(store, objects, Rule(keep_last=1))
    assert versions(store) == [2, 5]
    kept = {k["version"]: k["reason"] for k in res["kept"]}
    assert kept == {2: "held by model:fraud@prod (trained on it)", 5: "the latest version"}
    assert store.datasets.release("daily", 2, "model:fraud@prod")
    service.prune(store, objects, Rule(keep_last=1))
    assert versions(store) == [5]


def test_a_version_whose_run_is_running_is_held(store, objects, tmp_path, clock):
    daily_versions(store, objects, tmp_path, clock, 3)
    store.db.conn.execute("INSERT INTO pipeline_versions (id, name, content_hash, source_file, source_text, created_at)"
                          " VALUES (1, 'p', 'h', 'f', 't', 0)")
    store.db.conn.execute("INSERT INTO runs (id, pipeline, pipeline_version_id, state, params, trigger, run_dir,"
                          " created_at) VALUES (7, 'p', 1, 'running', '{}', 'cli', '/x', 0)")
    store.db.conn.execute("UPDATE dataset_versions SET run_id = 7, task = 't', source = 'task' WHERE version = 1")
    service.prune(store, objects, Rule(keep_last=1))
    assert versions(store) == [1, 3]
    store.db.conn.execute("UPDATE runs SET state = 'succeeded' WHERE id = 7")
    service.prune(store, objects, Rule(keep_last=1))
    assert versions(store) == [3]


def test_a_registered_holder_keeps_its_versions(store, objects, tmp_path, clock):
    from edgeorch.datasets.holders import register_holder

    daily_versions(store, objects, tmp_path, clock, 3)
    first = store.datasets.version("daily", 1)["id"]
    unregister = register_holder(lambda s: {first: "alias prod"})
    try:
        service.prune(store, objects, Rule(keep_last=1))
        assert versions(store) == [1, 3]
    finally:
        unregister()


def test_version_numbers_are_never_reused_after_a_prune(store, objects, tmp_path, clock):
    daily_versions(store, objects, tmp_path, clock, 3)
    service.prune(store, objects, Rule(keep_last=1))
    (tmp_path / "x").write_text("x")
    assert add(store, objects, "daily", tmp_path / "x")["version"] == 4


def test_a_pruned_version_is_said_to_be_pruned_and_a_long_list_says_how_many_there_are(store, objects, tmp_path,
                                                                                       clock):
    """`datasets show arrivals@1` after prunes listed ten versions as if they were all, and did not say that @1 had
    existed."""
    daily_versions(store, objects, tmp_path, clock, 14)
    service.prune(store, objects, Rule(keep_last=12))
    with pytest.raises(NotFoundError) as exc:
        store.datasets.version("daily", 1)
    text = exc.value.render()
    assert "dataset daily has no version 1 any more: it was pruned" in text
    assert "12 versions, daily@3 to daily@14; the latest: daily@5, " in text
    with pytest.raises(NotFoundError) as exc:
        store.datasets.version("daily", 99)
    assert "pruned" not in exc.value.render()


# -- garbage -----------------------------------------------------------------------------------


def test_orphan_objects_and_dead_writers_temp_files_are_reclaimed(store, objects, tmp_path):
    f = tmp_path / "a.bin"
    f.write_bytes(random_bytes(800_000))
    add(store, objects, "demo", f)
    kept = object_files(objects)
    orphan = take_snapshot(tmp_path / "a.bin", objects)  # stands for an add that never committed
    orphan.release()
    g = tmp_path / "b.bin"
    g.write_bytes(random_bytes(700_000, seed=3))
    lost = take_snapshot(g, objects)
    lost.release()
    objects.tmp.mkdir(exist_ok=True)
    (objects.tmp / "999999999-deadbeef").write_bytes(b"half")  # a dead process's temp file
    (objects.tmp / f"{os.getpid()}-0123").write_bytes(b"mine")  # ours: in flight, kept
    res = service.prune(store, objects, Rule(keep_last=1))
    assert res["removed"] == [] and res["objects_removed"] == len(lost.chunks) and res["bytes_freed"] == 700_000
    assert res["temp_files_removed"] == 1
    assert object_files(objects) == kept
    assert [p.name for p in objects.tmp.iterdir()] == [f"{os.getpid()}-0123"]


def test_a_pinned_object_survives_the_sweep_until_its_version_commits(store, objects, tmp_path):
    g = tmp_path / "b.bin"
    g.write_bytes(random_bytes(700_000, seed=3))
    snap = take_snapshot(g, objects)  # in flight: objects written and pinned, no rows yet
    service.prune(store, objects, Rule(keep_last=1))
    assert set(object_files(objects)) == set(snap.chunks)
    service.record(store, "demo", snap, source="add", source_path=str(g))
    snap.release()
    service.prune(store, objects, Rule(keep_last=1))
    assert set(object_files(objects)) == set(snap.chunks)
    restore_ref(store, objects, "demo", 1, tmp_path / "out")
    assert (tmp_path / "out" / "b.bin").read_bytes() == g.read_bytes()


def test_a_lost_object_is_written_again_by_the_next_add_of_its_content(store, objects, tmp_path):
    f = tmp_path / "a.bin"
    f.write_bytes(random_bytes(30_000))
    add(store, objects, "demo", f, compress=True)
    (sha, path, _), = list(objects.list_objects())
    path.unlink()
    v2 = add(store, objects, "demo", f)
    assert v2["new_bytes"] == 0  # known chunk: not new, but its object is back, and its row follows it
    assert store.datasets.chunks([sha])[sha]["codec"] == "raw"
    restore_ref(store, objects, "demo", 1, tmp_path / "out")


def test_restore_never_recreates_setuid_setgid_or_sticky_bits(store, objects, tmp_path):
    """Found by a data user: `chmod 4755 f; datasets add ...; datasets restore ...` as root made a setuid file owned
    by root: anyone who may add a version could plant one."""
    import stat

    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("#!/bin/sh\n")
    os.chmod(src / "f", 0o4755 | stat.S_ISGID)
    add(store, objects, "modes", src)
    restore_ref(store, objects, "modes", None, tmp_path / "out")
    mode = (tmp_path / "out" / "f").stat().st_mode
    assert stat.S_IMODE(mode) == 0o755
