"""The pure rules against hostile drops: sparse files, sticky folders, a refused file recorded once, and a hash
that a stop interrupts (real files, no daemon)."""

from __future__ import annotations

import os
import stat
import threading
import time
from pathlib import Path

import pytest

from edgeorch.triggers.drop.claim import ClaimInterrupted, ClaimIntent, hash_file, perform_claim
from edgeorch.triggers.drop.inspection import (SPARSE_MIN_SIZE, Accept, Refuse, inspect, move_problem,
                                               sparse_problem)
from edgeorch.triggers.drop.refusals import Refusal, RefusedFiles, same_refused_file


def test_a_file_mostly_holes_is_sparse_but_a_small_or_compressed_one_is_not():
    assert sparse_problem(300 << 30, 0) is not None and "allow_sparse = true" in sparse_problem(300 << 30, 0)
    assert sparse_problem(SPARSE_MIN_SIZE - 1, 0) is None  # hashes in a second or two
    assert sparse_problem(10 << 30, (10 << 30) // 512 // 20) is None  # 20:1, as compression may give
    assert sparse_problem(10 << 30, (10 << 30) // 512 // 100) is not None


def _st(mode: int, uid: int) -> os.stat_result:
    return os.stat_result((mode, 1, 1, 1, uid, uid, 0, 0, 0, 0))


def test_only_the_owner_of_the_file_or_folder_or_cap_fowner_may_move_it_out_of_a_sticky_folder():
    sticky, plain, theirs = _st(stat.S_IFDIR | 0o1777, 0), _st(stat.S_IFDIR | 0o777, 0), _st(stat.S_IFREG | 0o644, 7)
    why = move_problem(sticky, theirs, 1000, fowner=False)
    assert why is not None and "sticky" in why and "uid 7" in why and "uid 1000" in why
    assert move_problem(plain, theirs, 1000, fowner=False) is None
    assert move_problem(sticky, theirs, 7, fowner=False) is None  # its owner
    assert move_problem(_st(stat.S_IFDIR | 0o1777, 1000), theirs, 1000, fowner=False) is None  # the folder's owner
    assert move_problem(sticky, theirs, 1000, fowner=True) is None  # root, in effect


def test_a_sparse_file_is_refused_by_inspect_unless_allowed(tmp_path):
    p = tmp_path / "huge.csv"
    with open(p, "wb") as f:
        f.truncate(300 << 30)
    v = inspect(p, tmp_path)
    assert isinstance(v, Refuse) and v.code == "sparse" and v.final
    assert isinstance(inspect(p, tmp_path, allow_sparse=True), Accept)


def test_a_refused_file_is_the_same_until_its_ctime_passes_the_record(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text("x\n")
    refused = Refusal(time.time() + 0.001)
    st = os.lstat(p)
    assert same_refused_file(st, refused)
    assert same_refused_file(st, Refusal(refused.recorded_at, st.st_dev, st.st_ino, st.st_size))
    assert not same_refused_file(st, Refusal(refused.recorded_at, st.st_dev, st.st_ino + 1, st.st_size))
    assert not same_refused_file(st, Refusal(st.st_ctime - 1))  # changed (or replaced) after the record
    files = RefusedFiles()
    files.load([(str(p), refused), (str(tmp_path / "gone.csv"), refused)], [p])
    assert len(files) == 1 and files.recorded(p) and files.recorded(p)
    files.note(p, Refusal(st.st_ctime - 1))  # the file changed after this record: a new arrival
    assert not files.recorded(p) and len(files) == 0


def test_a_set_cancel_interrupts_the_hash_and_a_claim_stays_retryable(tmp_path):
    p = tmp_path / "big.bin"
    p.write_bytes(b"x" * (3 << 20))
    cancel = threading.Event()
    assert hash_file(p, cancel)[0] == 3 << 20
    cancel.set()
    with pytest.raises(ClaimInterrupted):
        hash_file(p, cancel)
    st = os.lstat(p)
    dest = tmp_path / "inbox" / "in-1" / "big.bin"
    intent = ClaimIntent("in-1", p, dest, st.st_size, st.st_mtime_ns, st.st_dev, st.st_ino)
    with pytest.raises(ClaimInterrupted):
        perform_claim(intent, cancel=cancel)
    assert dest.exists() and not p.exists()  # renamed, not hashed: the next try (recovery's finish) hashes it
    assert perform_claim(intent).size == 3 << 20
    assert Path(dest).exists()


def test_a_file_that_grew_after_its_inspection_meets_the_size_rules_again_before_a_byte_is_hashed(tmp_path):
    """The dropper kept a handle open and made the file 1 TiB of holes once it was claimed: the worker hashed
    it for hours (and the sparse rule, met only at inspection, never saw it)."""
    import time

    from edgeorch.triggers.drop.claim import ClaimRefused, perform_claim, prepare_claim

    folder, inbox = tmp_path / "drop", tmp_path / "inbox"
    folder.mkdir()
    f = folder / "grows.csv"
    f.write_text("a\n1\n")
    intent = prepare_claim(f, folder, inbox, "in-1", max_size=None, allow_sparse=False)
    assert intent.size == 4
    with open(f, "r+b") as h:
        h.truncate(1 << 40)  # after the look, through a handle the dropper kept
    t0 = time.monotonic()
    with pytest.raises(ClaimRefused) as exc:
        perform_claim(intent)
    assert time.monotonic() - t0 < 5
    assert "changed after it was inspected (4 -> 1099511627776 bytes): sparse file" in exc.value.message
    capped = prepare_claim(_fresh(folder, "capped.csv"), folder, inbox, "in-2", max_size=100)
    with open(capped.source, "ab") as h:
        h.write(b"x" * 200)
    with pytest.raises(ClaimRefused, match="over max_size"):
        perform_claim(capped)


def _fresh(folder, name):
    p = folder / name
    p.write_text("a\n1\n")
    return p


def test_a_hash_never_reads_past_the_size_checked_before_it(tmp_path):
    import hashlib
    import os

    from edgeorch.triggers.drop.claim import _hash_fd

    p = tmp_path / "f"
    p.write_bytes(b"x" * (3 << 20))
    fd = os.open(p, os.O_RDONLY)
    try:
        assert _hash_fd(fd, None, 1 << 20) == (1 << 20, hashlib.sha256(b"x" * (1 << 20)).hexdigest())
    finally:
        os.close(fd)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a probe as another user")
def test_the_kernel_that_will_not_say_whether_a_file_has_writers_gives_none_not_an_error(tmp_path):
    """Leases are granted to the file's owner or CAP_LEASE alone: a daemon running as its own user asking about
    a file another user dropped learns nothing (None), and its claim goes on with the stat checks alone."""
    from edgeorch.triggers.drop.writers import open_for_writing

    p = tmp_path / "theirs.csv"
    p.write_text("a\n1\n")
    fd = os.open(p, os.O_RDONLY)
    assert open_for_writing(fd) is False  # root may ask (CAP_LEASE)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child: the same descriptor, asked as another user
        try:
            os.setresuid(65534, 65534, 65534)
            os.write(w, repr((open_for_writing(fd), open_for_writing(fd))).encode())
        finally:
            os._exit(0)
    os.close(w)
    answer = os.read(r, 100).decode()
    os.waitpid(pid, 0)
    os.close(r)
    os.close(fd)
    assert answer == "(None, None)"
