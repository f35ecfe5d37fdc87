"""Drop-folder I/O helpers on real files: inspect, scan, claim, quarantine, requeue."""

from __future__ import annotations

import hashlib
import json
import os
import socket
from pathlib import Path

import pytest

from edgeorch.errors import ConfigError
from edgeorch.triggers.drop import (
    Accept,
    ClaimError,
    ClaimIntent,
    Refuse,
    check_same_filesystem,
    claim,
    file_ids,
    inspect,
    list_inbox,
    perform_claim,
    prepare_claim,
    quarantine,
    requeue,
    scan,
)


@pytest.fixture
def drop(tmp_path: Path) -> Path:
    d = tmp_path / "drop"
    d.mkdir()
    return d


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    return tmp_path / "state" / "inbox"


def write(path: Path, data: bytes = b"a,b\n1,2\n") -> Path:
    path.write_bytes(data)
    return path


# -- inspect --------------------------------------------------------------------


def test_a_regular_file_is_accepted(drop):
    p = write(drop / "a.csv")
    v = inspect(p, drop)
    assert isinstance(v, Accept) and v.size == 8 and v.ino == os.stat(p).st_ino


def test_a_symlink_to_etc_passwd_is_refused_and_not_followed(drop):
    link = drop / "passwd.csv"
    link.symlink_to("/etc/passwd")
    v = inspect(link, drop)
    assert isinstance(v, Refuse) and v.code == "symlink"
    assert "/etc/passwd" in v.reason and "never followed" in v.reason


def test_a_hard_link_is_refused(drop, tmp_path):
    outside = write(tmp_path / "elsewhere.csv")
    os.link(outside, drop / "linked.csv")
    v = inspect(drop / "linked.csv", drop)
    assert isinstance(v, Refuse) and v.code == "hardlink" and "2 names" in v.reason


@pytest.mark.parametrize("kind", ["fifo", "dir", "socket"])
def test_non_regular_files_are_refused(drop, kind):
    p = drop / f"x.{kind}"
    if kind == "fifo":
        os.mkfifo(p)
    elif kind == "dir":
        p.mkdir()
    else:
        s = socket.socket(socket.AF_UNIX)
        s.bind(str(p))
        s.close()
    v = inspect(p, drop)
    assert isinstance(v, Refuse) and v.code == "not_regular"


def test_a_file_over_max_size_is_refused(drop):
    p = write(drop / "big.csv", b"x" * 2000)
    v = inspect(p, drop, max_size=1000)
    assert isinstance(v, Refuse) and v.code == "too_big" and "2000 bytes" in v.reason
    assert isinstance(inspect(p, drop, max_size=2000), Accept)


def test_an_invalid_name_is_refused(drop):
    p = write(drop / "-rf.csv")
    v = inspect(p, drop)
    assert isinstance(v, Refuse) and v.code == "bad_name"


def test_paths_escaping_the_folder_are_refused(drop, tmp_path):
    write(tmp_path / "secret.csv")
    (drop / "sub").mkdir()
    write(drop / "sub" / "deep.csv")
    assert inspect(drop / ".." / "secret.csv", drop).code == "outside"  # type: ignore[union-attr]
    assert inspect(drop / "sub" / "deep.csv", drop).code == "outside"  # type: ignore[union-attr]


def test_a_symlinked_folder_component_does_not_lead_out(drop, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    write(outside / "x.csv")
    (drop / "escape").symlink_to(outside)
    v = inspect(drop / "escape" / "x.csv", drop)
    assert isinstance(v, Refuse) and v.code == "outside"


def test_a_vanished_file_is_gone(drop):
    v = inspect(drop / "nothing.csv", drop)
    assert isinstance(v, Refuse) and v.code == "gone"


def test_an_unreadable_file_is_refused(drop):
    if os.geteuid() == 0:
        pytest.skip("root reads everything")
    p = write(drop / "locked.csv")
    p.chmod(0)
    v = inspect(p, drop)
    assert isinstance(v, Refuse) and v.code == "unreadable"


# -- scan -----------------------------------------------------------------------


def test_scan_finds_candidates_that_arrived_while_nothing_watched(drop):
    for name in ["b.csv", "a.csv", ".a.csv.Xy12Zz", "c.csv.part", "notes.txt"]:
        write(drop / name)
    (drop / "link.csv").symlink_to("/etc/passwd")
    assert [p.name for p in scan(drop, ["*.csv"])] == ["a.csv", "b.csv", "link.csv"]
    assert scan(drop / "missing", ["*"]) == []


# -- claim ----------------------------------------------------------------------


def test_claim_moves_the_file_into_its_own_claim_folder_with_size_and_sha256(drop, inbox):
    data = os.urandom(100_000)
    p = write(drop / "a.csv", data)
    intents: list[ClaimIntent] = []
    c = claim(p, drop, inbox, "in-1", record_intent=intents.append)
    assert not isinstance(c, Refuse)
    assert c.path == inbox / "in-1" / "a.csv" and c.path.read_bytes() == data
    assert (c.size, c.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    assert not p.exists()
    assert intents and intents[0].source == p and intents[0].dest == c.path
    assert list_inbox(inbox) == [c.path]


def test_claim_refuses_without_moving(drop, inbox):
    link = drop / "passwd.csv"
    link.symlink_to("/etc/passwd")
    called = []
    v = claim(link, drop, inbox, "in-1", record_intent=called.append)
    assert isinstance(v, Refuse) and v.code == "symlink" and called == []
    assert link.is_symlink()


def test_an_intent_that_fails_to_record_moves_nothing(drop, inbox):
    p = write(drop / "a.csv")

    def fail(_intent: ClaimIntent) -> None:
        raise RuntimeError("database is locked")

    with pytest.raises(RuntimeError):
        claim(p, drop, inbox, "in-1", record_intent=fail)
    assert p.exists() and list_inbox(inbox) == []


def test_perform_claim_is_idempotent_after_a_crash_past_the_rename(drop, inbox):
    p = write(drop / "a.csv")
    intent = prepare_claim(p, drop, inbox, "in-1")
    assert isinstance(intent, ClaimIntent)
    first = perform_claim(intent)
    again = perform_claim(intent)  # recovery: the source is gone, the dest is there
    assert first == again


def test_perform_claim_refuses_a_replaced_source(drop, inbox):
    p = write(drop / "a.csv")
    intent = prepare_claim(p, drop, inbox, "in-1")
    assert isinstance(intent, ClaimIntent)
    p.rename(drop.parent / "kept.csv")  # kept alive, so its inode cannot be reused
    write(drop / "other.csv").rename(p)  # same name, another inode
    with pytest.raises(ClaimError, match="replaced"):
        perform_claim(intent)
    assert p.exists()


def test_claiming_a_vanished_file_fails_cleanly(drop, inbox):
    p = write(drop / "a.csv")
    intent = prepare_claim(p, drop, inbox, "in-1")
    assert isinstance(intent, ClaimIntent)
    p.unlink()
    with pytest.raises(ClaimError, match="vanished"):
        perform_claim(intent)


def test_an_inbox_on_another_filesystem_is_refused_up_front_naming_both_paths(drop):
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(drop).st_dev:
        pytest.skip("no second filesystem to test with")
    other = shm / f"edgeorch-test-inbox-{os.getpid()}"
    p = write(drop / "a.csv")
    with pytest.raises(ConfigError) as err:
        prepare_claim(p, drop, other, "in-1")
    assert str(drop) in str(err.value) and str(other) in str(err.value)
    assert p.exists() and not other.exists()
    with pytest.raises(ConfigError):
        check_same_filesystem(drop, other)


def test_file_ids_identify_drop_files(drop):
    p = write(drop / "a.csv")
    assert file_ids([p, drop / "gone.csv"]) == {p: (os.stat(p).st_dev, os.stat(p).st_ino)}


# -- quarantine and requeue -----------------------------------------------------


def test_quarantine_writes_the_reason_beside_the_file_and_requeue_sends_it_back(drop, inbox, tmp_path):
    p = write(drop / "bad.csv", b"not,a,valid\nfile")
    c = claim(p, drop, inbox, "in-7")
    assert not isinstance(c, Refuse)
    qdir = tmp_path / "state" / "quarantine"
    q = quarantine(c.path, qdir, "validate task failed: column 'age' missing", source_name="bad.csv",
                   details={"pipeline": "etl", "run_id": "r-1", "sha256": c.sha256}, now=1.5)
    assert q.path == qdir / "bad.csv" and q.path.read_bytes() == b"not,a,valid\nfile"
    doc = json.loads((qdir / "bad.csv.reason.json").read_text())
    assert doc["reason"].startswith("validate task failed") and doc["run_id"] == "r-1"
    assert doc["quarantined_at"] == 1.5 and doc["source_name"] == "bad.csv"
    assert not c.path.exists()
    assert [f.name for f in qdir.iterdir() if f.name.startswith(".")] == []  # no temp left

    back = requeue(q.path, drop)
    assert back == drop / "bad.csv" and back.read_bytes() == b"not,a,valid\nfile"
    assert list(qdir.iterdir()) == []


def test_quarantine_never_overwrites_and_requeue_avoids_taken_names(drop, inbox, tmp_path):
    qdir = tmp_path / "q"
    first = quarantine(write(tmp_path / "x1"), qdir, "r1", source_name="data.csv")
    second = quarantine(write(tmp_path / "x2"), qdir, "r2", source_name="data.csv")
    assert (first.path.name, second.path.name) == ("data.csv", "data.1.csv")
    write(drop / "data.csv")
    back = requeue(first.path, drop)
    assert back.name == "data.1.csv"


def test_requeue_refuses_reason_files_and_missing_files(tmp_path, drop):
    q = quarantine(write(tmp_path / "x"), tmp_path / "q", "bad")
    with pytest.raises(ClaimError, match="reason file"):
        requeue(q.reason_path, drop)
    with pytest.raises(ClaimError, match="no such"):
        requeue(tmp_path / "q" / "nothing.csv", drop)
