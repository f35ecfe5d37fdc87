"""Claims under attack and under resource exhaustion, on real files (issue 9: items 12, 13, 19-22).

Hard links, swapped files and writers with a second handle are made for real; ENOSPC comes
from a real full tmpfs and EMFILE from a real lowered RLIMIT_NOFILE in a subprocess.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from edgeorch.triggers.drop import (
    ClaimDeferred,
    ClaimIntent,
    ClaimRefused,
    Refuse,
    changed_since,
    display_path,
    fit_name,
    inspect,
    perform_claim,
    prepare_claim,
    quarantine,
    requeue,
)

# The module, not the function of the same name that the package exports.
claim_module = importlib.import_module("edgeorch.triggers.drop.claim")


@pytest.fixture
def drop(tmp_path: Path) -> Path:
    d = tmp_path / "drop"
    d.mkdir()
    return d


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    return tmp_path / "state" / "inbox"


def intent_for(drop: Path, inbox: Path, name: str, data: bytes = b"a,b\n1,2\n") -> ClaimIntent:
    (drop / name).write_bytes(data)
    intent = prepare_claim(drop / name, drop, inbox, "in-1")
    assert isinstance(intent, ClaimIntent)
    return intent


# -- 12: derived names always fit NAME_MAX --------------------------------------------------


@pytest.mark.parametrize("length", [233, 243, 244, 250, 255])
def test_quarantine_and_requeue_of_a_name_up_to_255_bytes_never_pass_name_max(tmp_path, drop, length):
    name = "n" * (length - 4) + ".csv"
    src = tmp_path / "inbox-file"
    src.write_bytes(b"x\n")
    q = quarantine(src, tmp_path / "quarantine", "failed", source_name=name)
    assert len(q.path.name.encode()) <= 255 and len(q.reason_path.name.encode()) <= 255
    assert q.path.read_bytes() == b"x\n" and q.reason["source_name"] == name
    (drop / name).write_bytes(b"taken")  # requeue must find another name that fits, too
    back = requeue(q.path, drop)
    assert back.parent == drop and len(back.name.encode()) <= 255 and back.read_bytes() == b"x\n"


def test_fit_name_keeps_short_names_and_shortens_long_ones_distinctly():
    assert fit_name("a.csv", 12) == "a.csv"
    a, b = fit_name("x" * 250 + "1.csv", 12), fit_name("x" * 250 + "2.csv", 12)
    assert a != b and a.endswith(".csv") and len(a.encode()) <= 243
    multi = fit_name("é" * 127 + ".csv", 12)  # never cuts a UTF-8 character in half
    multi.encode("utf-8")


# -- 13: names that are not UTF-8 -----------------------------------------------------------


def test_a_name_that_is_not_utf8_is_refused_with_a_storable_reason(drop):
    raw = os.fsencode(drop) + b"/bad\xff\xfe.csv"
    with open(raw, "wb") as f:
        f.write(b"x\n")
    path = Path(os.fsdecode(raw))
    v = inspect(path, drop)
    assert isinstance(v, Refuse) and v.code == "bad_name"
    shown = display_path(path)
    shown.encode("utf-8")  # storable in SQLite, printable
    assert shown.endswith("bad\\xff\\xfe.csv")


# -- 19: identity checked on the opened descriptor ----------------------------------------------


def test_a_hard_link_made_during_the_claim_is_refused_on_the_descriptor(drop, inbox, tmp_path):
    intent = intent_for(drop, inbox, "report.csv", b"secret-ish\n")
    os.link(drop / "report.csv", tmp_path / "attacker-link")  # after the inspection, before the rename
    with pytest.raises(ClaimRefused) as err:
        perform_claim(intent)
    assert "hard link" in str(err.value) and err.value.removed
    assert not intent.dest.exists()  # unlinked from the inbox; its other name keeps the content
    assert (tmp_path / "attacker-link").read_bytes() == b"secret-ish\n"


def test_another_file_swapped_into_the_claim_is_refused(drop, inbox, tmp_path):
    intent = intent_for(drop, inbox, "report.csv")
    intent.dest.parent.mkdir(parents=True)
    (tmp_path / "other").write_bytes(b"not the inspected file\n")
    os.rename(tmp_path / "other", intent.dest)  # the claim path now holds another inode
    with pytest.raises(ClaimRefused) as err:
        perform_claim(intent)
    assert "swapped in" in str(err.value) and not err.value.removed


def test_a_symlink_swapped_into_the_claim_is_refused(drop, inbox):
    intent = intent_for(drop, inbox, "report.csv")
    intent.dest.parent.mkdir(parents=True)
    os.symlink("/etc/passwd", intent.dest)
    with pytest.raises(ClaimRefused):
        perform_claim(intent)


# -- 20: content changed after the claim -----------------------------------------------------


def test_content_written_through_a_second_handle_while_hashing_defers_the_claim(drop, inbox, monkeypatch):
    """A write during the hash by a handle opened after the first look (by the daemon's own user, through the new
    path; or reopened through /proc/<pid>/fd) and closed before the second: the stat taken around the hash sees it."""
    intent = intent_for(drop, inbox, "report.csv", b"v1\n" * 1000)
    real = claim_module._hash_fd

    def hash_while_written(fd, cancel=None, limit=None):
        out = real(fd, cancel, limit)
        with open(intent.dest, "r+b") as writer:
            writer.write(b"v2")
        return out

    monkeypatch.setattr(claim_module, "_hash_fd", hash_while_written)
    with pytest.raises(ClaimDeferred, match="changed while it was hashed"):
        perform_claim(intent)
    monkeypatch.setattr(claim_module, "_hash_fd", real)
    writer = open(intent.dest, "r+b")  # kept open: not claimed while it may write, and not hashed meanwhile
    hashed = []
    monkeypatch.setattr(claim_module, "_hash_fd", lambda *a: hashed.append(1) or real(*a))
    with pytest.raises(ClaimDeferred, match="still holds the file open for writing"):
        perform_claim(intent)
    assert hashed == []
    writer.close()
    claimed = perform_claim(intent)  # idempotent: the retry hashes what is there now
    assert claimed.sha256 == hashlib.sha256(intent.dest.read_bytes()).hexdigest()
    assert intent.dest.read_bytes().startswith(b"v2")


def test_a_handle_kept_open_for_writing_defers_the_claim_until_it_is_closed(drop, inbox):
    """A dropper (or a logger) that keeps the file open could write through that descriptor after the claim
    recorded its sha256, where no stat taken by the claim would see it: it is not claimed while the handle
    lives, in another process or a writable mapping alike; a reader's handle does not count."""
    import mmap

    intent = intent_for(drop, inbox, "report.csv", b"v1\n" * 1000)
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
        import sys
        f = open(sys.argv[1], "ab")
        print("open", flush=True)
        sys.stdin.read()
        f.write(b"written after the claim would have been recorded\\n")
        """), str(drop / "report.csv")], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert child.stdout.readline() == b"open\n"
        with pytest.raises(ClaimDeferred, match="still holds the file open for writing") as exc:
            perform_claim(intent)
        assert exc.value.value == display_path(intent.dest)
        assert intent.dest.exists() and not (drop / "report.csv").exists()  # moved: safe in the inbox meanwhile
        child.stdin.close()  # the writer writes its last line and exits
        assert child.wait(timeout=30) == 0
    finally:
        child.kill()
    claimed = perform_claim(intent)
    assert claimed.sha256 == hashlib.sha256(intent.dest.read_bytes()).hexdigest()
    assert intent.dest.read_bytes().endswith(b"recorded\n")

    mapped = intent_for(drop, inbox, "mapped.csv")
    mapped = ClaimIntent(mapped.claim_id, mapped.source, inbox / "in-2" / "mapped.csv", mapped.size, mapped.mtime_ns,
                         mapped.dev, mapped.ino)
    fd = os.open(mapped.source, os.O_RDWR)
    view = mmap.mmap(fd, 0)
    os.close(fd)  # the mapping alone can still write
    try:
        with pytest.raises(ClaimDeferred, match="open for writing"):
            perform_claim(mapped)
    finally:
        view.close()
    with open(mapped.dest, "rb"):  # a reader does not hold a claim back
        assert perform_claim(mapped).size == mapped.size


def test_a_write_after_the_hash_is_detected_before_the_run_starts(drop, inbox):
    """No handle was open at the claim (else it waits, above); the daemon's own user may still write by the new
    path: the stamp taken with the hash says so before the run starts."""
    intent = intent_for(drop, inbox, "report.csv")
    claimed = perform_claim(intent)
    assert claimed.stamp is not None and changed_since(claimed.path, claimed.stamp) is None
    with open(claimed.path, "r+b") as writer:
        writer.write(b"rewritten after the claim\n")
        writer.flush()
        os.fsync(writer.fileno())
    assert changed_since(claimed.path, claimed.stamp) == "the claimed file changed after it was hashed"


# -- 21/22: transient errors are never final ------------------------------------------------


@pytest.fixture
def tiny_tmpfs(tmp_path: Path):
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,nr_inodes=16", "tmpfs", str(mnt)],
                       capture_output=True, text=True, check=False)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(mnt: Path) -> list[Path]:
    """Use up every inode of ``mnt`` (a real ENOSPC for the next mkdir/creat)."""
    made = []
    for i in range(1000):
        try:
            (mnt / f".filler{i}").mkdir()
        except OSError:
            return made
        made.append(mnt / f".filler{i}")
    raise AssertionError("the tmpfs never filled up")


def test_a_full_inbox_disk_defers_the_claim_and_it_succeeds_once_space_is_freed(tiny_tmpfs):
    drop, inbox = tiny_tmpfs / "drop", tiny_tmpfs / "inbox"
    drop.mkdir()
    inbox.mkdir()
    intent = intent_for(drop, inbox, "data.csv")
    fillers = fill(tiny_tmpfs)
    with pytest.raises(ClaimDeferred, match="No space left"):
        perform_claim(intent)
    assert (drop / "data.csv").exists(), "a deferred claim must leave the file where it was"
    for f in fillers:
        f.rmdir()
    claimed = perform_claim(intent)
    assert claimed.path == intent.dest and claimed.path.read_bytes() == b"a,b\n1,2\n"


EMFILE_SCRIPT = textwrap.dedent("""
    import os, resource, sys
    from pathlib import Path
    from edgeorch.triggers.drop import ClaimDeferred, ClaimIntent, Refuse, inspect, perform_claim, prepare_claim
    drop, inbox = Path(sys.argv[1]), Path(sys.argv[2])
    intent = prepare_claim(drop / "data.csv", drop, inbox, "in-1")
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
    held = []
    try:
        while True:
            held.append(os.open("/dev/null", os.O_RDONLY))
    except OSError:
        pass
    v = inspect(drop / "data.csv", drop)
    assert isinstance(v, Refuse) and v.code == "transient" and not v.final, v
    try:
        perform_claim(intent)
    except ClaimDeferred as exc:
        print("deferred:", exc)
    else:
        raise SystemExit("claimed without descriptors?")
    for fd in held:
        os.close(fd)
    print("claimed:", perform_claim(intent).sha256)
""")


def test_descriptor_exhaustion_defers_inspection_and_claim_never_refuses(drop, inbox):
    (drop / "data.csv").write_bytes(b"a,b\n1,2\n")
    out = subprocess.run([sys.executable, "-c", EMFILE_SCRIPT, str(drop), str(inbox)], capture_output=True,
                         text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    assert "deferred:" in out.stdout and "Too many open files" in out.stdout
    assert f"claimed: {hashlib.sha256(b'a,b' + bytes([10]) + b'1,2' + bytes([10])).hexdigest()}" in out.stdout
