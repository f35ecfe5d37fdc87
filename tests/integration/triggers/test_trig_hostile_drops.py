"""A hostile local user who can write into a shared drop folder (issue: security test of /srv/open, mode 0777,
and /srv/shared, mode 1777), through a real daemon process.

Synchronisation: the daemon's events stream, and conditions on the state file polled at 10 ms where the
daemon announces nothing (an intent being recorded); never a fixed sleep.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from test_daemon_triggers import INGEST, drop_by_rename, inputs, n_inputs, wait_until

HUGE = 300 << 30  # `truncate -s 300G`: no disk, 80 minutes of hashing zeros at the reported 63 MB/s


def poll_until(cond, timeout: float = 30.0, what: str = "") -> None:
    """Block until ``cond()`` holds (a state the daemon publishes no event for), checked every 10 ms."""
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"not within {timeout:g}s: {what or cond}"
        time.sleep(0.01)


def sparse(path: Path, size: int = HUGE) -> Path:
    with open(path, "wb") as f:
        f.truncate(size)
    return path


def two_watches(workspace, open_keys: str = "", *, more: str = "") -> tuple[Path, Path]:
    """``open`` (everyone drops there) and ``private`` (the victim's own), both for pipeline ``ingest``."""
    folders = workspace.root / "open", workspace.root / "private"
    for f in folders:
        f.mkdir(exist_ok=True)
    workspace.write_config("".join(f'[[watch]]\nfolder = "{f}"\npipeline = "ingest"\nsettle = "0.2s"\n{keys}\n'
                                   for f, keys in zip(folders, (open_keys, ""))) + more)
    workspace.pipeline("ingest", INGEST)
    return folders


def state_of(workspace, name: str) -> str | None:
    rows = [r for r in inputs(workspace) if r["source_name"] == name]
    return rows[-1]["state"] if rows else None


def test_a_sparse_file_is_refused_with_its_reason_and_the_next_files_are_claimed(workspace, daemon, tmp_path):
    open_, private = two_watches(workspace)
    daemon.start()
    sparse(tmp_path / "huge.csv")
    os.rename(tmp_path / "huge.csv", open_ / "huge.csv")
    drop_by_rename(tmp_path / "stage", open_, "next.csv", b"row\n")
    drop_by_rename(tmp_path / "stage", private, "mine.csv", b"mine\n")
    wait_until(daemon, lambda: n_inputs(workspace, "done") >= 2 and n_inputs(workspace, "refused") >= 1,
               timeout=30, what="the sparse file refused, the others done")
    [refused] = inputs(workspace, "refused")
    assert refused["source_name"] == "huge.csv"
    assert "sparse file" in refused["reason"] and "allow_sparse = true" in refused["reason"]
    assert (open_ / "huge.csv").exists(), "a refused file stays where it was dropped"
    assert daemon.stop(timeout=15) == 0
    said = daemon.output()  # the log names what it did: a file by its name, a run by what started it, the end
    assert "(next.csv) done (run" in said and "of ingest queued (input:" in said, said
    assert said.rstrip().endswith("stopped (exit 0)"), said[-300:]


def test_a_huge_file_being_hashed_holds_up_no_other_file_and_a_stop_interrupts_its_hash(workspace, daemon, tmp_path):
    """The worst case the watch allows (allow_sparse = true): the huge file is claimed in its folder's long-file
    lane while every other file, of its folder and of the other, is claimed at once; SIGTERM ends the hash at once
    (the input stays claiming) and the next start's recovery finishes it."""
    open_, private = two_watches(workspace, "allow_sparse = true")
    daemon.start()
    sparse(tmp_path / "huge.csv")
    os.rename(tmp_path / "huge.csv", open_ / "huge.csv")
    poll_until(lambda: state_of(workspace, "huge.csv") == "claiming", what="the huge file's intent recorded")
    drop_by_rename(tmp_path / "stage", open_, "next.csv", b"row\n")
    drop_by_rename(tmp_path / "stage", private, "mine.csv", b"mine\n")
    wait_until(daemon, lambda: n_inputs(workspace, "done") >= 2, timeout=30, what="the small files done meanwhile")
    assert state_of(workspace, "huge.csv") == "claiming", "the huge file was hashed already (no test)"
    reason = {r["id"]: r for r in daemon.call("inputs.list", {})["inputs"]}
    huge = next(r for r in reason.values() if r["source_name"] == "huge.csv")
    assert "long-file lane" in (huge.get("reason") or ""), huge

    t0 = time.monotonic()
    assert daemon.stop(timeout=15) == 0
    assert time.monotonic() - t0 < 10, "the stop waited for the hash"
    assert state_of(workspace, "huge.csv") == "claiming"
    [row] = [r for r in inputs(workspace) if r["source_name"] == "huge.csv"]
    where = Path(row["inbox_path"]) if os.path.exists(row["inbox_path"]) else open_ / "huge.csv"
    os.truncate(where, 1 << 20)  # what the next start hashes: quick, same inode
    daemon.start()
    wait_until(daemon, lambda: n_inputs(workspace, "done") >= 3, timeout=30, what="the recovered claim finished")
    assert "inputs recovered:" in daemon.output()
    assert daemon.stop(timeout=15) == 0


def _no_fowner(workspace) -> None:
    """Run the daemon as root WITHOUT CAP_FOWNER (setpriv): the kernel's sticky check then applies to it as to any
    user, so the rename of another user's file out of a 1777 folder really fails with EPERM (root would pass)."""
    workspace.cli = lambda: ["setpriv", "--inh-caps=-fowner", "--bounding-set=-fowner", sys.executable, "-m",
                             "edgeorch.cli"]


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None,
                    reason="needs root (to chown a file to another user) and setpriv (to drop CAP_FOWNER)")
def test_a_file_of_another_user_in_a_sticky_folder_is_refused_once_with_why_across_restarts_and_reloads(
        workspace, daemon, tmp_path):
    shared, private = two_watches(workspace)
    os.chown(shared, 65533, 65533)  # someone else's folder, like /srv/shared: the daemon is neither its owner
    os.chmod(shared, 0o1777)  # nor the file's
    theirs = shared / "theirs.csv"
    theirs.write_text("a,b\n")
    os.chown(theirs, 65534, 65534)
    (shared / "mine.csv").write_text("mine\n")  # the daemon's own file: handed over with theirs (same rescan)
    _no_fowner(workspace)
    daemon.start()
    wait_until(daemon, lambda: n_inputs(workspace, "done") >= 1 and n_inputs(workspace, "refused") >= 1,
               what="mine done, theirs refused")
    [refused] = inputs(workspace, "refused")
    assert refused["source_name"] == "theirs.csv"
    assert "sticky" in refused["reason"] and "uid 65534" in refused["reason"], refused["reason"]
    assert "without the sticky bit" in refused["reason"]
    assert "Operation not permitted" not in daemon.output() and " ERROR " not in daemon.output()
    assert theirs.exists()
    inbox = workspace.state / "inbox"
    assert all(os.listdir(d) for d in inbox.iterdir() if d.name.startswith("in-")), "an empty claim folder was left"

    assert daemon.stop() == 0
    (shared / "mine2.csv").write_text("mine 2\n")  # scanned at the start with theirs: done means theirs was seen
    daemon.start()
    wait_until(daemon, lambda: n_inputs(workspace, "done") >= 2, what="mine2 done")
    # A reload that rebuilds the watch (a third folder): its first rescan hands theirs.csv over again.
    third = workspace.root / "third"
    third.mkdir()
    (third / "mine3.csv").write_text("mine 3\n")
    two_watches(workspace, more=f'[[watch]]\nfolder = "{third}"\npipeline = "ingest"\nsettle = "0.2s"\n')
    daemon.proc.send_signal(signal.SIGHUP)
    wait_until(daemon, lambda: n_inputs(workspace, "done") >= 3, what="mine3 done after the reload")
    assert n_inputs(workspace, "refused") == 1, "the same file was recorded again"
    assert daemon.output().count("input refused") == 1
    assert len(inputs(workspace)) == 4
    assert all(os.listdir(d) for d in inbox.iterdir() if d.name.startswith("in-")), "an empty claim folder was left"
    assert daemon.stop() == 0


def test_a_file_still_open_for_writing_waits_in_the_inbox_and_its_run_reads_what_was_hashed(
        workspace, daemon, tmp_path):
    """The dropper renamed the file in but kept a descriptor open for writing: a run started now could read
    content written after its sha256 was recorded. The claim waits, saying why (``edgeorch inputs``), with the file
    already safe in the inbox; once the writer closes it the claim hashes what is there, and the run reads that."""
    import hashlib
    import subprocess

    folder = workspace.watch_folder("ingest", settle="0.2s")
    workspace.pipeline("ingest", INGEST + "\n[tasks.tail]\nneeds = [\"check\"]\n"
                       "command = [\"sh\", \"-c\", \"grep -q second {input}\"]\n")
    daemon.start()
    stage = tmp_path / "stage"
    stage.mkdir()
    staged = stage / "log.csv"
    staged.write_text("first\n")
    writer = subprocess.Popen([sys.executable, "-c", "import sys\nf = open(sys.argv[1], 'a')\nprint('open', flush=True)\n"
                               "sys.stdin.readline()\nf.write('second\\n')\n", str(staged)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline() == "open\n"
        os.rename(staged, folder / "log.csv")
        poll_until(lambda: "open for writing" in (_reason_of(daemon, "log.csv") or ""),
                   what="the claim waiting for the writer, with its reason")
        [row] = [r for r in inputs(workspace) if r["source_name"] == "log.csv"]
        assert row["state"] == "claiming" and row["run_id"] is None
        assert os.path.exists(row["inbox_path"]) and not (folder / "log.csv").exists()
        writer.stdin.write("go\n")
        writer.stdin.close()
        assert writer.wait(timeout=30) == 0
    finally:
        writer.kill()
    wait_until(daemon, lambda: n_inputs(workspace, "done", "quarantined") >= 1, what="the claim finished, its run ended")
    [row] = inputs(workspace)
    assert row["state"] == "done", row["reason"]
    assert row["sha256"] == hashlib.sha256(b"first\nsecond\n").hexdigest()
    assert " ERROR " not in daemon.output()
    assert daemon.stop(timeout=15) == 0


def _reason_of(daemon, name: str) -> str | None:
    rows = [r for r in daemon.call("inputs.list", {})["inputs"] if r["source_name"] == name]
    return rows[-1].get("reason") if rows else None


def test_a_folder_made_or_moved_in_under_a_candidates_name_is_refused_at_once(workspace, daemon, tmp_path):
    """Found by an operator: `mkdir drop/sub.csv` was recorded as refused only at the next daemon start (its
    inotify event, a folder's, was dropped; the periodic rescan is a minute away). Made or moved in, it is
    refused now: well within the rescan interval (60 s)."""
    open_, _private = two_watches(workspace)
    daemon.start()
    (open_ / "made.csv").mkdir()
    (tmp_path / "moved.csv").mkdir()
    (tmp_path / "moved.csv").rename(open_ / "moved.csv")
    wait_until(daemon, lambda: n_inputs(workspace, "refused") >= 2, timeout=20, what="both folders refused")
    assert sorted((r["source_name"], r["reason"]) for r in inputs(workspace, "refused")) == [
        ("made.csv", "not a regular file (a folder)"), ("moved.csv", "not a regular file (a folder)")]
    assert daemon.stop(timeout=15) == 0


def test_a_flood_of_refused_files_is_recorded_within_the_rate_rule_and_counted_beyond_it(workspace, daemon,
                                                                                          tmp_path):
    """2,000 links dropped at once were 2,000 warnings in the journal; then a dropper who made and removed 1,500
    links with 4 KB targets a round grew the state file by 42 MB a minute (an input row and an audit record
    each). Per owner of the files, the rate rule's number a minute are recorded (row, audit record, warning),
    the rest counted and the count recorded once (here at the stop); a link's target is said up to 200
    characters."""
    import sqlite3

    from edgeorch.control.refusals import AUDITED_PER_WINDOW

    open_, _private = two_watches(workspace)
    daemon.start()
    target = tmp_path / ("t" * 200) / ("x" * 200) / "target.csv"  # a long target: the dropper's text
    for i in range(40):
        (open_ / f"link{i:02d}.csv").symlink_to(target)
    wait_until(daemon, lambda: n_inputs(workspace, "refused") >= AUDITED_PER_WINDOW, timeout=60,
               what="the recorded refusals")
    # A good file dropped after them is claimed after them: once it is done, every link was looked at.
    drop_by_rename(tmp_path / "staging", open_, "good.csv", b"a\n1\n")
    wait_until(daemon, lambda: n_inputs(workspace, "done") == 1, timeout=60, what="good.csv done")
    assert daemon.stop(timeout=15) == 0
    refused = inputs(workspace, "refused")
    assert len(refused) == AUDITED_PER_WINDOW and daemon.output().count("input refused:") == AUDITED_PER_WINDOW
    reason = refused[0]["reason"]
    assert reason.startswith("symbolic link (to ") and f"... ({len(str(target))} chars)" in reason, reason
    assert len(reason) < 300
    conn = sqlite3.connect(workspace.state / "edgeorch.db")
    try:
        (summary,) = conn.execute("SELECT message, data FROM events WHERE kind = 'inputs_refused_unrecorded'")
        audited = conn.execute("SELECT COUNT(*) FROM audit_log WHERE action = 'input_refused'").fetchone()[0]
    finally:
        conn.close()
    assert summary[0].startswith(f"{40 - AUDITED_PER_WINDOW} more refused files of root (uid 0) not recorded"), summary
    assert audited == AUDITED_PER_WINDOW
    assert f"{40 - AUDITED_PER_WINDOW} more refused files of root" in daemon.output()


def test_a_watch_said_not_watched_takes_no_file(workspace, daemon, tmp_path):
    """A [[watch]] of a pipeline with no param for the path was reported "not watched", yet its files were claimed
    and each quarantined ("has no parameter 'input'"): a file dropped there stays where it is."""
    bad, good = workspace.root / "bad", workspace.root / "good"
    for f in (bad, good):
        f.mkdir()
    workspace.write_config(f'[[watch]]\nfolder = "{bad}"\npipeline = "noparam"\nsettle = "0.2s"\n'
                           f'[[watch]]\nfolder = "{good}"\npipeline = "ingest"\nsettle = "0.2s"\n')
    workspace.pipeline("noparam", '[tasks.a]\ncommand = ["true"]\n')
    workspace.pipeline("ingest", INGEST)
    daemon.start()
    drop_by_rename(tmp_path / "stage", bad, "left.csv", b"row\n")
    drop_by_rename(tmp_path / "stage", good, "taken.csv", b"row\n")
    wait_until(daemon, lambda: n_inputs(workspace, "done") >= 1, timeout=30, what="the good watch's file done")
    assert (bad / "left.csv").exists() and [r["source_name"] for r in inputs(workspace)] == ["taken.csv"]
    assert "watch not started" in daemon.output()


def test_files_of_owners_the_user_database_does_not_name_share_one_bound():
    """Found by a re-test: FIFOs chowned in a user namespace to 40 subordinate uids were 40 records at once, each
    uid with its own 10 a minute (65,536 subordinate uids: 650k records a minute). Every uid the user database
    does not name counts in one bucket."""
    import pwd

    from edgeorch.triggers.drop.service import UNNAMED_OWNERS, refusal_owner

    root = pwd.getpwuid(0).pw_name
    assert refusal_owner(0) == (0, f"{root} (uid 0)")
    unnamed = next(u for u in range(296_608, 400_000) if not _named(u))
    assert refusal_owner(unnamed) == refusal_owner(unnamed + 1) == (
        UNNAMED_OWNERS, "owners not in the user database (subordinate or container uids)")
    assert refusal_owner(-1)[0] == -1


def _named(uid: int) -> bool:
    import pwd

    try:
        pwd.getpwuid(uid)
    except KeyError:
        return False
    return True


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (to give a folder to another user)")
def test_a_watched_folder_another_user_can_replace_is_never_followed_into_another_folder(workspace, daemon, tmp_path):
    """Found by a tester: the owner of a watched folder's parent put a link to a root-owned folder in its place;
    the daemon watched the link's target at its next check and claimed (moved out of there) a root-owned file,
    and `edgeorch requeue` put a quarantined file into the linked folder. Now a folder whose path another user
    can change is not watched again, a requeue into it is refused, and such a watch is not started at all."""
    home = workspace.root / "home"
    drop = home / "drop"
    drop.mkdir(parents=True)
    victim = workspace.root / "victim"
    victim.mkdir()
    (victim / "secret.csv").write_text("root's own\n")
    workspace.write_config(f'[[watch]]\nfolder = "{drop}"\npipeline = "ingest"\nsettle = "0.2s"\n')
    workspace.pipeline("ingest", INGEST)
    daemon.start()
    drop_by_rename(tmp_path / "stage", drop, "bad.csv", b"BAD row\n")
    wait_until(daemon, lambda: n_inputs(workspace, "quarantined") >= 1, what="the bad file quarantined")
    os.chown(home, 65534, 65534)  # an administrator hands the folder above it to a user, who then (done here
    os.rename(drop, home / "drop.old")  # for them: pytest's folders are closed to other users) swaps the folder
    drop.symlink_to(victim)  # for a link to a root-owned one
    poll_until(lambda: "not watched again" in daemon.output(), what="the replaced folder found")
    assert f"{drop} can be replaced by the owner of {home}" in daemon.output()
    [said] = daemon.call("inputs.list", {})["watch_errors"]  # where a user looks: why, not "does not exist"
    assert "not watched: " in said and "can be replaced by the owner" in said and "does not exist" not in said
    (victim / "later.csv").write_text("root's too\n")
    requeue = subprocess.run([*workspace.cli(), "requeue", "bad.csv"], env=workspace.cli_env(), capture_output=True,
                             text=True, check=False)
    assert requeue.returncode != 0 and "is not safe to move a file into" in requeue.stderr, requeue.stderr
    assert (workspace.state / "quarantine" / "bad.csv").exists() and not (victim / "bad.csv").exists()
    assert daemon.stop() == 0
    daemon.start()  # watched from the start: not started at all, said where a user looks
    listed = subprocess.run([*workspace.cli(), "inputs", "--json"], env=workspace.cli_env(), capture_output=True,
                            text=True, check=True)
    assert any("can be replaced by the owner" in e for e in json.loads(listed.stdout)["watch_errors"])
    assert (victim / "secret.csv").read_text() == "root's own\n" and (victim / "later.csv").exists()
    assert [r["source_name"] for r in inputs(workspace)] == ["bad.csv"]
    assert daemon.stop() == 0
