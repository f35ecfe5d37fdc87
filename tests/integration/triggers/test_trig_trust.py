"""Drop folders under hostile and long-running use (issue 9), through a real daemon process.

Each test is named after the guarantee it guards. Synchronisation: the daemon's
events stream and conditions on the state file, never sleeps.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

from test_daemon_triggers import (INGEST, drop_by_rename, inputs, n_inputs, q, setup_batch_watch, setup_watch,
                                  wait_until)


def quarantine_files(workspace) -> list[str]:
    qdir = workspace.state / "quarantine"
    return sorted(os.listdir(qdir)) if qdir.is_dir() else []


@pytest.mark.parametrize("how", ["sigterm", "kill9"])
def test_a_restart_never_quarantines_inputs_already_processed(workspace, daemon, tmp_path, how):
    drop = setup_watch(workspace)
    daemon.start()
    stage = tmp_path / "stage"
    for i in range(3):
        drop_by_rename(stage, drop, f"ok{i}.csv", f"row {i}\n".encode())
    drop_by_rename(stage, drop, "bad.csv", b"BAD\n")
    wait_until(daemon, lambda: n_inputs(workspace, "done", "quarantined") >= 4, what="4 inputs settled")
    before = [tuple(r) for r in inputs(workspace)]
    assert quarantine_files(workspace) == ["bad.csv", "bad.csv.reason.json"]
    if how == "sigterm":
        assert daemon.stop() == 0
    else:
        daemon.kill9()
    daemon.start()
    assert daemon.stop() == 0
    after = [tuple(r) for r in inputs(workspace)]
    assert after == before, "a restart changed the input records"
    assert quarantine_files(workspace) == ["bad.csv", "bad.csv.reason.json"]
    for r in inputs(workspace, "done"):
        assert Path(r["inbox_path"]).is_file(), "a processed input left the inbox"
    assert "no input record" not in daemon.output()


def test_a_drop_file_with_a_255_byte_name_never_stops_the_daemon_from_starting(workspace, daemon, tmp_path):
    drop = setup_watch(workspace)
    daemon.start()
    names = ["x" * (251 - len(str(i))) + f"{i}.csv" for i in range(2)]  # 255 bytes each
    names.append("B" * 245 + ".csv")  # a failing input: quarantined under a derived name that fits
    for n in names[:2]:
        drop_by_rename(tmp_path / "stage", drop, n, n.encode()[-6:] + b"\n")
    drop_by_rename(tmp_path / "stage", drop, names[2], b"BAD\n")
    wait_until(daemon, lambda: n_inputs(workspace, "done", "quarantined") >= 3, what="long names settled")
    assert n_inputs(workspace, "quarantined") == 1
    qfiles = quarantine_files(workspace)
    assert len(qfiles) == 2 and all(len(f.encode()) <= 255 for f in qfiles)
    doc = json.loads((workspace.state / "quarantine" / next(f for f in qfiles if f.endswith(".reason.json"))).read_text())
    assert doc["source_name"] == names[2]
    # A long-named file sits in the inbox with no record (as after a lost record): recovery copes.
    stray = workspace.state / "inbox" / "in-999" / ("y" * 250 + ".csv")
    stray.parent.mkdir(parents=True)
    stray.write_text("stray\n")
    assert daemon.stop() == 0
    daemon.start()
    assert daemon.stop() == 0
    assert not stray.exists()
    assert len(quarantine_files(workspace)) == 4


def test_a_name_that_is_not_utf8_is_refused_alone_and_the_rest_of_its_group_is_claimed(workspace, daemon):
    drop = setup_watch(workspace)
    for i in range(3):  # dropped while the daemon is down: one claim group at the first rescan
        (drop / f"good{i}.csv").write_text(f"good {i}\n")
    with open(os.fsencode(drop) + b"/bad\xff.csv", "wb") as f:
        f.write(b"x\n")
    daemon.start()
    wait_until(daemon, lambda: n_inputs(workspace, "done") >= 3 and n_inputs(workspace, "refused") >= 1,
               what="the good files done, the bad name refused")
    refused = inputs(workspace, "refused")
    assert [r["source_name"] for r in refused] == ["bad\\xff.csv"]
    assert "not valid UTF-8" in refused[0]["reason"]
    listed = subprocess.run([*workspace.cli(), "inputs"], env=workspace.cli_env(), capture_output=True, text=True,
                            check=False)
    assert listed.returncode == 0 and "bad\\xff.csv" in listed.stdout, listed.stderr
    assert daemon.stop() == 0


def test_retry_of_a_failed_drop_folder_run_gets_its_input_back_and_succeeds(workspace, daemon, tmp_path):
    drop = setup_watch(workspace)
    daemon.start()
    drop_by_rename(tmp_path / "stage", drop, "data.csv", b"BAD row\n")
    wait_until(daemon, lambda: n_inputs(workspace, "quarantined") >= 1, what="the input quarantined")
    rec = inputs(workspace, "quarantined")[0]
    claimed = json.loads(q(workspace, "SELECT env FROM runs WHERE id = ?", (rec["run_id"],))[0]["env"])["EDGEORCH_INPUT"]
    qfile = workspace.state / "quarantine" / "data.csv"
    qfile.write_bytes(b"fixed row\n")  # the user repairs the file in quarantine, then retries the run
    out = subprocess.run([*workspace.cli(), "retry", str(rec["run_id"])], env=workspace.cli_env(),
                         capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    wait_until(daemon, lambda: n_inputs(workspace, "done") >= 1, what="the retried input done")
    row = inputs(workspace)[0]
    assert row["state"] == "done" and row["inbox_path"] == claimed
    assert Path(claimed).read_bytes() == b"fixed row\n"
    assert not qfile.exists() and not (workspace.state / "quarantine" / "data.csv.reason.json").exists()
    assert daemon.stop() == 0


BATCH_LIST = """
[params]
files = { type = "str", default = "[]" }
[tasks.count]
command = ["python3", "-c", "import json, os, sys; lines = open(os.environ['EDGEORCH_INPUT']).read().splitlines(); assert lines == json.loads(sys.argv[1]), lines; assert all(os.path.isfile(p) for p in lines), lines; print(len(lines))", "{files}"]
"""


def test_batch_mode_lists_paths_with_colons_unambiguously(workspace, daemon, tmp_path):
    drop = setup_batch_watch(workspace, BATCH_LIST, window="30s")
    daemon.start()
    names = ["2024-01-01T00:00:00.csv", "a:b c.csv", "plain.csv"]
    for i, n in enumerate(names):
        drop_by_rename(tmp_path / "stage", drop, n, f"{i}\n".encode())
    wait_until(daemon, lambda: n_inputs(workspace, "done") >= 3, what="the batch done")
    run = q(workspace, "SELECT * FROM runs")[0]
    listing = Path(json.loads(run["env"])["EDGEORCH_INPUT"])
    assert sorted(Path(p).name for p in listing.read_text().splitlines()) == sorted(names)
    assert run["state"] == "succeeded"
    assert daemon.stop() == 0


def test_a_deleted_and_recreated_watched_folder_is_watched_again_promptly(workspace, daemon, tmp_path):
    drop = setup_watch(workspace)
    daemon.start()

    def watch_errors() -> list[str]:
        return daemon.call("inputs.list", {})["watch_errors"]

    os.rmdir(drop)
    wait_until(daemon, lambda: any("does not exist" in e for e in watch_errors()), timeout=20,
               what="the loss reported")
    # Named as every watch error is: the file that declares the watch, and its pipeline.
    (said,) = watch_errors()
    assert str(workspace.config_path) in said and "pipeline ingest" in said and str(drop) in said, said
    assert "is gone" in daemon.output()
    drop.mkdir()
    wait_until(daemon, lambda: watch_errors() == [], timeout=20, what="the folder watched again")
    drop_by_rename(tmp_path / "stage", drop, "after.csv", b"after\n")
    wait_until(daemon, lambda: n_inputs(workspace, "done") >= 1, timeout=20, what="a file in the new folder")
    assert daemon.stop() == 0


HOSTILE = """
[params]
input = { type = "path", default = "" }
[tasks.check]
shell = true
command = "cat {input} > /dev/null"
"""


def test_a_hostile_file_name_never_runs_a_shell_command(workspace, daemon, tmp_path):
    """Needs the engine's quoting of substituted values in ``shell = true`` commands (issue 9, item 17)."""
    drop = setup_watch(workspace)
    workspace.pipeline("ingest", HOSTILE)
    daemon.start()
    name = "report;touch INJECTED;.csv"
    drop_by_rename(tmp_path / "stage", drop, name, b"x\n")
    wait_until(daemon, lambda: n_inputs(workspace, "done", "quarantined") >= 1, what="the hostile name settled")
    runs = q(workspace, "SELECT id FROM runs")
    assert len(runs) == 1
    for where in (workspace.root, workspace.pipelines, workspace.state, Path.cwd()):
        assert not list(where.rglob("INJECTED")), f"the file name ran a command (INJECTED under {where})"
    assert n_inputs(workspace, "done") == 1
    assert daemon.stop() == 0


def test_a_full_inbox_disk_keeps_the_file_claiming_and_claims_it_once_space_is_freed(workspace, daemon):
    mnt = workspace.root / "tmpfs"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,nr_inodes=32", "tmpfs", str(mnt)],
                       capture_output=True, text=True, check=False)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        drop, inbox = mnt / "drop", mnt / "inbox"
        drop.mkdir()
        inbox.mkdir()
        (mnt / "stage").mkdir()
        (mnt / "stage" / "data.csv").write_text("row\n")
        workspace.write_config(f"""
            [inbox]
            dir = "{inbox}"
            [[watch]]
            folder = "{drop}"
            pipeline = "ingest"
            settle = "0.2s"
            """)
        workspace.pipeline("ingest", INGEST)
        daemon.start()
        fillers = []
        while True:  # use up every inode: the claim folder's mkdir gets a real ENOSPC
            try:
                (mnt / f".fill{len(fillers)}").mkdir()
            except OSError:
                break
            fillers.append(mnt / f".fill{len(fillers)}")
        os.rename(mnt / "stage" / "data.csv", drop / "data.csv")
        wait_until(daemon, lambda: "No space left" in daemon.output(), timeout=20, what="the claim deferred")
        assert [r["state"] for r in inputs(workspace)] == ["claiming"]
        for f in fillers:
            f.rmdir()
        wait_until(daemon, lambda: n_inputs(workspace, "done") >= 1, timeout=30, what="the claim retried")
        assert [r["state"] for r in inputs(workspace)] == ["done"]
        assert daemon.stop() == 0
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_a_refused_file_left_in_the_folder_is_recorded_once_across_restarts(workspace, daemon, tmp_path):
    """A refused file stays where it was dropped; a start's rescan sees it again. It must not be recorded (and
    logged, and audited) again at each start, or a daemon restarted nightly lists it once a night. The same file,
    untouched, is recorded once; the same name dropped again is a new arrival and recorded again."""
    drop = setup_watch(workspace)
    bad = drop / "bad name\x1b[2J.csv"  # a name edgeorch refuses (a control character)
    bad.write_text("x\n")
    daemon.start()
    wait_until(daemon, lambda: n_inputs(workspace, "refused") >= 1, what="the bad name refused")
    assert daemon.stop() == 0
    # Written while the daemon is down, so the start's rescan hands it over together with the refused file (same
    # scan, same settle): once it is done the refused file has been looked at again. (A file renamed in after
    # the start could be done before the refused one's settle time is over, and prove nothing.)
    (drop / "ok.csv").write_bytes(b"ok\n")
    daemon.start()
    wait_until(daemon, lambda: n_inputs(workspace, "done") >= 1, what="ok.csv done")
    daemon.kill9()
    (drop / "ok2.csv").write_bytes(b"ok 2\n")
    daemon.start()
    wait_until(daemon, lambda: n_inputs(workspace, "done") >= 2, what="ok2.csv done")
    assert n_inputs(workspace, "refused") == 1, "the same refused file was recorded again at a start"
    assert daemon.output().count("input refused") == 1
    bad.unlink()
    drop_by_rename(tmp_path / "stage", drop, bad.name, b"again\n")
    wait_until(daemon, lambda: n_inputs(workspace, "refused") >= 2, what="the same name dropped again refused")
    assert daemon.stop() == 0
