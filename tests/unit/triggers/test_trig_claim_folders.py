"""Claim folders are created exclusively and recognised with their suffix (issue 9 item 16, for the inbox).

After a state file is restored from a backup, input ids go back while ``inbox/in-<id>`` folders of
the lost future still exist: a new input must never share such a folder, and recovery must tell the
record's own folder from a stray one.
"""

from __future__ import annotations

from pathlib import Path

from edgeorch.triggers.drop import InputRecord, claim_folder_id, list_inbox, reconcile
from edgeorch.triggers.drop.claim import make_claim_folder

DROP = Path("/drop")
INBOX = Path("/state/inbox")


def test_a_claim_folder_is_created_exclusively_with_a_suffix_when_its_name_is_taken(tmp_path):
    inbox = tmp_path / "inbox"
    first = make_claim_folder(inbox, 4)
    (first / "old.csv").write_text("from the lost future\n")
    second = make_claim_folder(inbox, 4)
    third = make_claim_folder(inbox, 4)
    assert [first.name, second.name, third.name] == ["in-4", "in-4-1", "in-4-2"]
    assert sorted(p.name for p in second.iterdir()) == []
    assert (first / "old.csv").read_text() == "from the lost future\n"


def test_a_claim_folder_is_made_with_its_inbox_and_never_over_a_link_or_when_the_disk_is_full(tmp_path, monkeypatch):
    import errno
    import os

    inbox = tmp_path / "state" / "inbox"  # not there yet: made with the first claim folder
    assert make_claim_folder(inbox, 1) == inbox / "in-1" and (inbox / "in-1").is_dir()
    (inbox / "in-2").symlink_to(tmp_path / "nowhere")  # a dangling link takes the name too
    assert make_claim_folder(inbox, 2) == inbox / "in-2-1"
    assert (inbox / "in-2").is_symlink() and not (tmp_path / "nowhere").exists()

    def full(path, mode=0o777):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "mkdir", full)  # a full disk: the free name comes back uncreated (claimed later)
    assert make_claim_folder(inbox, 3) == inbox / "in-3" and not (inbox / "in-3").exists()


def test_claim_folder_id_reads_suffixed_names_and_nothing_else():
    assert claim_folder_id("in-4") == 4
    assert claim_folder_id("in-4-1") == 4
    assert claim_folder_id("in-12-30") == 12
    for other in ("in-", "in-x", "in-4-", "in-4-1-2", "in--1", "batch-in-4.paths", "c4", "in-٤"):
        assert claim_folder_id(other) is None, other


def test_list_inbox_lists_suffixed_claim_folders_too(tmp_path):
    for folder in ("in-1", "in-1-1", "in-2"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "a.csv").write_text("x\n")
    (tmp_path / "batch-in-1.paths").write_text("x\n")
    assert {p.relative_to(tmp_path).as_posix() for p in list_inbox(tmp_path)} == {
        "in-1-1/a.csv", "in-1/a.csv", "in-2/a.csv"}


def test_reconcile_takes_a_reused_ids_old_folder_for_a_stray_not_for_the_records():
    """Record 4 (after a restore) lives in ``in-4-1``; ``in-4`` is the lost future's: a stray."""
    own = INBOX / "in-4-1" / "new.csv"
    old = INBOX / "in-4" / "old.csv"
    rec = InputRecord(4, "p", "done", DROP / "new.csv", own, run_id="9")
    actions = reconcile([rec], {}, {own, old}, {4: "9"})
    assert [(a.kind, a.path) for a in actions] == [("adopt", old)]


def test_reconcile_leaves_a_suffixed_folders_file_whose_record_moved_it_to_quarantine():
    """A crash between a retry's move back from quarantine and its record: the file is the record's own."""
    back = INBOX / "in-4-1" / "a.csv"
    rec = InputRecord(4, "p", "quarantined", DROP / "a.csv", Path("/state/quarantine/a.csv"), run_id="9")
    assert reconcile([rec], {}, {back}, {4: "9"}) == []


def test_reconcile_finishes_a_claim_into_a_suffixed_folder():
    dest = INBOX / "in-4-1" / "a.csv"
    rec = InputRecord(4, "p", "claiming", DROP / "a.csv", dest, dev=1, ino=2)
    assert [a.kind for a in reconcile([rec], {}, {dest}, {})] == ["finish"]


def test_a_claimed_file_cannot_be_rewritten_through_its_new_path_by_whoever_dropped_it(tmp_path):
    """It keeps its owner when moved in: only the claim folder's mode (0700, whatever the umask) keeps that owner
    from rewriting it after its sha256 was recorded."""
    import os
    import stat
    import subprocess

    import pytest

    old = os.umask(0o022)
    try:
        folder = make_claim_folder(tmp_path / "inbox", 7)
    finally:
        os.umask(old)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    claimed = folder / "theirs.csv"
    claimed.write_text("a\n1\n")
    if os.geteuid() != 0:
        pytest.skip("giving the file to another user needs root")
    os.chmod(tmp_path, 0o755)
    os.chmod(tmp_path / "inbox", 0o755)
    os.chown(claimed, 65534, -1)  # nobody dropped it
    res = subprocess.run(["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", "sh", "-c",
                          f"echo forged > '{claimed}'"], capture_output=True, text=True)
    assert res.returncode != 0 and "Permission denied" in res.stderr
    assert claimed.read_text() == "a\n1\n"


def test_the_inbox_and_the_quarantine_are_closed_to_other_users_old_ones_too(tmp_path):
    """A claimed or quarantined file keeps its dropper as owner; the folders around it are the daemon user's
    alone (a fresh quarantine was 0755 with the dropper's 0644 files in it, readable and rewritable by path)."""
    import os
    import stat

    from edgeorch.triggers.drop.quarantine import quarantine

    old = os.umask(0o022)
    try:
        make_claim_folder(tmp_path / "inbox", 1)
        dropped = tmp_path / "x.csv"
        dropped.write_text("a\n")
        quarantine(dropped, tmp_path / "quarantine", "failed")
        older = tmp_path / "older-quarantine"
        older.mkdir(mode=0o755)
        (older / "y.csv").write_text("b\n")
        dropped.write_text("a\n")
        quarantine(dropped, older, "failed")
    finally:
        os.umask(old)
    for folder in (tmp_path / "inbox", tmp_path / "quarantine", older):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder


def test_another_users_claimed_file_is_the_daemons_own_copy_so_a_kept_descriptor_rewrites_nothing(tmp_path):
    """Found by a hostile dropper: a descriptor kept open from before the drop (read-only: no writer for the lease
    check) was reopened for writing through /proc/self/fd after the claim, and the task read bytes other than the
    recorded sha256's (the claim folder's mode stops paths, not that). Another user's file is replaced by the
    daemon's own copy before it is hashed; a file of the daemon's own user is not copied; a claim redone after
    a crash finds the copy and hashes it again."""
    import hashlib
    import os
    import stat

    import pytest

    from edgeorch.triggers.drop.claim import perform_claim, prepare_claim
    from edgeorch.triggers.drop.owncopy import COPY_PREFIX

    if os.geteuid() != 0:
        pytest.skip("giving the file to another user needs root")
    drop, inbox = tmp_path / "drop", tmp_path / "inbox"
    drop.mkdir()
    src = drop / "theirs.csv"
    src.write_bytes(b"a\n1\n")
    os.chmod(src, 0o4666)  # setuid and world-writable: neither comes with the copy
    os.chown(src, 65534, 65534)  # nobody dropped it
    kept = os.open(src, os.O_RDONLY)
    try:
        intent = prepare_claim(src, drop, inbox, "in-7")
        claimed = perform_claim(intent)
        forged = os.open(f"/proc/self/fd/{kept}", os.O_WRONLY | os.O_TRUNC)  # what its owner could do
        os.write(forged, b"EVIL")
        os.close(forged)
    finally:
        os.close(kept)
    st = os.lstat(claimed.path)
    assert claimed.path.read_bytes() == b"a\n1\n"
    assert claimed.sha256 == hashlib.sha256(b"a\n1\n").hexdigest()
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (0, 0o644)
    assert (st.st_dev, st.st_ino) != (intent.dev, intent.ino) and st.st_nlink == 1
    assert [p.name for p in claimed.path.parent.iterdir()] == ["theirs.csv"]  # no copy left beside it
    again = perform_claim(intent)  # redone after a crash: the copy is this claim's file
    assert (again.sha256, again.path) == (claimed.sha256, claimed.path)
    # A leftover of a copy interrupted by a crash is not a claimed file of its own (the next try replaces it).
    (claimed.path.parent / f"{COPY_PREFIX}theirs.csv").write_bytes(b"half")
    assert list_inbox(inbox) == [claimed.path]

    mine = drop / "mine.csv"
    mine.write_bytes(b"b\n2\n")
    intent = prepare_claim(mine, drop, inbox, "in-8")
    claimed = perform_claim(intent)
    st = os.lstat(claimed.path)
    assert (st.st_dev, st.st_ino) == (intent.dev, intent.ino)  # the daemon's own user's file: never copied


def test_a_sparse_file_of_another_user_is_copied_with_its_holes_and_a_stop_interrupts_the_copy(tmp_path):
    """Found by a hostile dropper: `truncate -s 8G` on a watch that allows sparse files made an 8 GiB copy of real
    blocks (copy_file_range writes holes out on ext4), and a stop waited 26 s for it."""
    import os
    import threading

    import pytest

    from edgeorch.triggers.drop.claim import ClaimInterrupted, perform_claim, prepare_claim

    if os.geteuid() != 0:
        pytest.skip("giving the file to another user needs root")
    drop, inbox = tmp_path / "drop", tmp_path / "inbox"
    drop.mkdir()
    src = drop / "big.bin"
    with open(src, "wb") as f:
        f.write(b"head")
        f.seek(1 << 28)
        f.write(b"tail")
    os.chown(src, 65534, 65534)
    intent = prepare_claim(src, drop, inbox, "in-1", allow_sparse=True)
    claimed = perform_claim(intent)
    st = os.lstat(claimed.path)
    assert st.st_size == (1 << 28) + 4 and st.st_blocks * 512 < (1 << 20), st  # holes kept: not 256 MiB of blocks
    with open(claimed.path, "rb") as f:
        assert f.read(4) == b"head"
        f.seek(1 << 28)
        assert f.read() == b"tail"

    again = drop / "again.bin"
    again.write_bytes(os.urandom(1 << 20))
    os.chown(again, 65534, 65534)
    stop = threading.Event()
    stop.set()
    intent = prepare_claim(again, drop, inbox, "in-2")
    with pytest.raises(ClaimInterrupted):
        perform_claim(intent, cancel=stop)
    assert sorted(p.name for p in (inbox / "in-2").iterdir()) == ["again.bin"]  # no copy left; redone next start


def test_a_group_writable_file_of_the_daemons_own_user_loses_group_and_other_write_at_its_claim(tmp_path):
    """Found by a hostile dropper: in a group-writable drop folder a producer running as the daemon's user (umask
    002) left files mode 0664; another member kept a read-only descriptor and reopened it for writing through
    /proc/self/fd after the hash. Such a file loses its group and other write bits at the claim."""
    import os
    import stat

    from edgeorch.triggers.drop.claim import perform_claim, prepare_claim

    drop, inbox = tmp_path / "drop", tmp_path / "inbox"
    drop.mkdir()
    src = drop / "x.csv"
    src.write_text("good\n")
    os.chmod(src, 0o666)
    intent = prepare_claim(src, drop, inbox, "in-1")
    claimed = perform_claim(intent)
    st = os.lstat(claimed.path)
    assert stat.S_IMODE(st.st_mode) == 0o644 and (st.st_dev, st.st_ino) == (intent.dev, intent.ino)


def test_a_daemon_users_file_swapped_in_before_the_rename_is_never_taken_for_the_claims_copy(tmp_path, monkeypatch):
    """Suspected by a re-test: a file of the daemon's user, its size and mtime those of the inspected one, renamed
    over the claimed name between the claim's look and its rename, would pass for the copy a crash left. Only a
    claim redone (its destination there before the try) knows a copy by size and mtime."""
    import os

    import pytest

    from edgeorch.triggers.drop.claim import ClaimRefused, perform_claim, prepare_claim

    drop, inbox = tmp_path / "drop", tmp_path / "inbox"
    drop.mkdir()
    src = drop / "x.csv"
    src.write_text("good\n")
    intent = prepare_claim(src, drop, inbox, "in-1")
    st = os.lstat(src)
    other = tmp_path / "other.csv"
    other.write_text("EVIL\n")
    os.utime(other, ns=(st.st_atime_ns, st.st_mtime_ns))
    real_rename = os.rename

    def swap_then_rename(a, b, *args, **kw):  # the swap lands in the window between the look and the rename
        if str(a) == str(src) and other.exists():
            real_rename(other, src)
        return real_rename(a, b, *args, **kw)

    monkeypatch.setattr(os, "rename", swap_then_rename)
    with pytest.raises(ClaimRefused, match="swapped in"):
        perform_claim(intent)


def test_an_emptied_claim_folder_of_a_settled_input_is_removed_at_start(tmp_path: Path) -> None:
    """Two of ~550 quarantines (a kill -9 between moving the file to quarantine and removing its folder) left an
    empty `inbox/in-N` that no later start removed."""
    from edgeorch.triggers.drop.reconcile import InputRecord
    from edgeorch.triggers.drop.service import _remove_emptied_claim_folders

    inbox, quarantine = tmp_path / "inbox", tmp_path / "quarantine"
    for d in ("in-5", "in-6", "in-7", "in-8"):
        (inbox / d).mkdir(parents=True)
    (inbox / "in-6" / "kept.csv").write_text("x\n")
    (inbox / "in-8" / "stray").write_text("?\n")
    records = [InputRecord(5, "p", "quarantined", Path("/drop/a.csv"), quarantine / "a.csv"),
               InputRecord(6, "p", "done", Path("/drop/b.csv"), inbox / "in-6" / "kept.csv"),
               InputRecord(7, "p", "claiming", Path("/drop/c.csv"), inbox / "in-7" / "c.csv"),
               InputRecord(8, "p", "quarantined", Path("/drop/d.csv"), quarantine / "d.csv")]
    _remove_emptied_claim_folders(inbox, records)
    assert sorted(p.name for p in inbox.iterdir()) == ["in-6", "in-7", "in-8"]  # in-8 is not empty: it stays
