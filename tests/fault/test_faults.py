"""Faults: a full disk under the state dir, corrupted supervisor records."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time

from fault_helpers import fill_up


def test_disk_full_stops_the_daemon_cleanly_and_a_restart_recovers(workspace, small_disk, daemon):
    workspace.state = small_disk / "var"
    workspace.write_config()
    workspace.pipeline("fill", f"""
        [tasks.fill]
        command = ["sh", "-c", "touch {workspace.pipelines}/started; head -c 20000000 /dev/zero > $EDGEORCH_OUTPUT_DIR/big; echo wrote"]
        [tasks.after]
        command = ["echo", "after"]
        needs = ["fill"]
    """)
    daemon.start()
    run_id = daemon.call("trigger", {"pipeline": "fill"})["run_id"]
    # The task fills the disk; recording its end then fails. The daemon must stop with a clear
    # message and a non-zero code (systemd restarts it), never hang or corrupt the state file.
    code = daemon.proc.wait(timeout=60)
    assert code != 0
    out = daemon.output()
    assert "cannot write the state file" in out and "Traceback" not in out.split("cannot write")[0][-2000:]
    conn = sqlite3.connect(workspace.state / "edgeorch.db")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    # Free the space, restart: the attempt's exit record is collected, the run finishes.
    for big in (workspace.state / "runs").rglob("big"):
        big.unlink()
    daemon.start()
    assert daemon.wait_run(run_id) in ("failed", "succeeded")
    doc = daemon.call("runs.show", {"run_id": run_id})
    fill = doc["tasks"][0]
    assert fill["attempt_list"][0]["state"] in ("exited", "abandoned")


def test_a_garbage_exit_record_is_treated_as_lost_and_retried(workspace, daemon):
    workspace.pipeline("gated", """
        [tasks.wait]
        command = ["sh", "-c", "touch {pipeline_dir}/started-$EDGEORCH_ATTEMPT; while [ ! -f {pipeline_dir}/go ]; do sleep 0.05; done"]
        retries = 1
        retry_delay = "0.05s"
    """)
    daemon.start()
    run_id = daemon.call("trigger", {"pipeline": "gated"})["run_id"]
    workspace.wait_file(workspace.pipelines / "started-1")
    assert daemon.stop() == 0  # the task goes on under live restore
    attempt_dir = workspace.state / "runs" / str(run_id) / "attempts" / "wait.1"
    (workspace.pipelines / "go").touch()
    workspace.wait_file(attempt_dir / "exit.json")
    (attempt_dir / "exit.json").write_bytes(b"\x00garbage{")
    daemon.start()
    assert daemon.wait_run(run_id) == "succeeded"
    attempts = daemon.call("runs.show", {"run_id": run_id})["tasks"][0]["attempt_list"]
    assert [a["state"] for a in attempts] == ["abandoned", "exited"]
    assert "without an exit record" in attempts[0]["reason"]


def test_a_garbage_owner_record_does_not_crash_recovery(workspace, daemon):
    workspace.pipeline("gated", """
        [tasks.wait]
        command = ["sh", "-c", "touch {pipeline_dir}/started; while [ ! -f {pipeline_dir}/go ]; do sleep 0.05; done"]
    """)
    daemon.start()
    run_id = daemon.call("trigger", {"pipeline": "gated"})["run_id"]
    workspace.wait_file(workspace.pipelines / "started")
    daemon.kill9()
    attempt_dir = workspace.state / "runs" / str(run_id) / "attempts" / "wait.1"
    (attempt_dir / "owner.json").write_text("not json")
    daemon.start()
    (workspace.pipelines / "go").touch()
    state = daemon.wait_run(run_id)
    # Without a readable owner the shim cannot be adopted: the attempt is settled as lost, not left hanging.
    assert state in ("failed", "succeeded")
    assert daemon.call("status")["pid"] == daemon.proc.pid


def test_a_daemon_started_on_a_full_disk_says_so_naming_the_file(workspace, small_disk):
    """Its lock file's pid could not be written: exit 70, 'internal error (a bug, please report it)', no path; under
    Restart=on-failure the journal filled with reports of a bug. The lock is taken on a full disk (gc --apply must
    get through it: it frees the disk), and the state file that cannot be made says the disk is full, not "restore
    it from a backup, or move it away" (a good file moved away on a full disk is a good file lost)."""
    workspace.state = small_disk / "var"
    workspace.write_config()
    fill_up(small_disk)
    proc = subprocess.run([*workspace.cli(), "daemon"], env=workspace.cli_env(), capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 4, proc.stderr
    assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr
    assert "cannot open the state file: database or disk is full (" in proc.stderr, proc.stderr
    assert "edgeorch.db" in proc.stderr and "move it away" not in proc.stderr and "gc --apply" in proc.stderr


def test_a_schedules_fire_that_finds_the_disk_full_is_tried_again_not_lost(workspace, small_disk, daemon):
    """The fire failed with a traceback ('on_fire failed'), nothing recorded it, and it was never run, even with
    catchup = "all": its watermark had moved on in memory.

    The disk is filled while the daemon's only writes are fires: the first run's task holds the pipeline's one
    slot (``max_parallel = 1``, until the test's end) and later runs wait for it, so no attempt starts or ends meanwhile (a write an
    attempt cannot make stops the daemon, exit 4, as meant: filling the disk while a run of `true` ended made
    this test fail under load)."""
    import json
    import time

    workspace.state = small_disk / "var"
    workspace.write_config()
    workspace.pipeline("tiny", """
        every = "1s"
        catchup = "all"
        max_parallel = 1
        [tasks.a]
        command = ["sh", "-c", "while [ ! -e {pipeline_dir}/go ]; do sleep 0.05; done"]
    """)
    daemon.start()
    filler = small_disk / "filler"
    deadline = time.monotonic() + 60
    conn = sqlite3.connect(workspace.state / "edgeorch.db")
    try:
        while not conn.execute("SELECT 1 FROM attempts WHERE state = 'running' AND pid IS NOT NULL").fetchone():
            assert time.monotonic() < deadline, daemon.output()[-3000:]
            assert daemon.proc.poll() is None, daemon.output()[-3000:]
            time.sleep(0.05)  # polled: the state file has no event a test can wait on
        fill_up(small_disk)
        while "not recorded, tried again in" not in daemon.output():
            assert time.monotonic() < deadline, daemon.output()[-3000:]
            assert daemon.proc.poll() is None, daemon.output()[-3000:]
            time.sleep(0.05)
        failed_at = daemon.output().split("not recorded, tried again in")[0].rsplit("fire ", 1)[1].split()[0]
        filler.unlink()
        while True:
            rows = [json.loads(r[0])["fire_time"] for r in
                    conn.execute("SELECT data FROM events WHERE kind = 'schedule_fire'")]
            if any(r.replace("Z", "+00:00") == failed_at or r == failed_at for r in rows):
                break
            assert time.monotonic() < deadline, (failed_at, rows[-5:])
            assert daemon.proc.poll() is None, daemon.output()[-3000:]
            time.sleep(0.1)
    finally:
        conn.close()
        (workspace.pipelines / "go").touch()  # the held task ends (small_disk is set up first: torn down last)
    assert "on_fire failed" not in daemon.output()


def test_a_full_runs_disk_is_edgeorchs_failure_not_the_tasks_and_names_the_folder(workspace, small_disk):
    """The shim could not write the attempt's records: the attempt 'exited 127' (no process ran), counted against
    the task's retries, and the reason said only "shim failed: OSError(28, 'No space left on device')". Then each
    loss was relaunched at once: ten in 5 ms, all lost before anyone could free a byte, and the task failed. From
    the second loss a relaunch waits (1 s, 2 s, ...): freed meanwhile, the disk lets the task run."""
    import threading

    workspace.write_config(f"""
        [executor]
        storage = "{small_disk}"
    """)
    workspace.pipeline("writer", """
        [tasks.w]
        command = ["true"]
    """)
    fill_up(small_disk)
    db = workspace.state / "edgeorch.db"

    def free_after_two_losses() -> None:  # polled: the state file has no event a test can wait on
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                conn = sqlite3.connect(db)
                try:
                    lost = conn.execute("SELECT COUNT(*) FROM attempts WHERE state = 'abandoned'").fetchone()[0]
                finally:
                    conn.close()
            except sqlite3.Error:
                lost = 0
            if lost >= 2:
                break
            time.sleep(0.05)
        (small_disk / "filler").unlink()

    freer = threading.Thread(target=free_after_two_losses)
    freer.start()
    try:
        out = workspace.invoke("run", "writer")
    finally:
        freer.join()
    assert out.returncode == 0, out.stdout + out.stderr  # the task ran once the disk had room
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        attempts = conn.execute("SELECT * FROM attempts ORDER BY id").fetchall()
    finally:
        conn.close()
    assert [a["state"] for a in attempts] == ["abandoned", "abandoned", "exited"], [dict(a) for a in attempts]
    first = attempts[0]
    assert first["charged"] == 0 and "relaunched (not counted as a retry)" in first["reason"]
    assert "No space left on device" in first["reason"] and str(small_disk) in first["reason"], first["reason"]
    assert "shim failed" not in first["reason"]
    assert attempts[2]["started_at"] - attempts[1]["finished_at"] >= 0.9  # it waited its second relaunch's second
    assert "relaunched in 1s" in out.stdout, out.stdout


def test_a_task_that_ended_while_the_runs_disk_was_full_keeps_its_exit_status(workspace, small_disk, tmp_path):
    """The shim could not write exit.json: a task that exited 0 (another that never touched the disk too) was
    "the attempt's supervisor vanished without an exit record". The live engine records the status its shim told
    it over the pipe. A disk filled before the shim wrote proc.json (the task fills it at once) made the shim give
    up on a running task: the task ran on unsupervised while the engine relaunched it. It runs once."""
    ran, started = tmp_path / "fill.ran", tmp_path / "fail.started"  # the disk fills once `fail` runs (its folders made)
    workspace.write_config(f"""
        [executor]
        storage = "{small_disk}"
    """)
    workspace.pipeline("filler", f"""
        [tasks.fill]
        shell = true
        command = "while [ ! -e {started} ]; do sleep 0.01; done; echo x >> {ran}; cat /dev/zero > {small_disk}/junk 2>/dev/null; exit 0"
        [tasks.fail]
        shell = true
        command = "touch {started}; while [ ! -e {small_disk}/junk ]; do sleep 0.01; done; sleep 0.2; exit 3"
    """)
    out = workspace.invoke("run", "filler")
    (small_disk / "junk").unlink()
    assert out.returncode == 1, out.stdout + out.stderr  # `fail` failed, as it said: exit 3
    conn = sqlite3.connect(workspace.state / "edgeorch.db")
    conn.row_factory = sqlite3.Row
    try:
        rows = {a["task"]: a for a in conn.execute("SELECT * FROM attempts ORDER BY id")}
        tasks = {t["name"]: t["state"] for t in conn.execute("SELECT name, state FROM tasks")}
    finally:
        conn.close()
    assert (rows["fill"]["state"], rows["fill"]["exit_code"]) == ("exited", 0), dict(rows["fill"])
    assert ran.read_text() == "x\n"  # once: never relaunched beside itself
    assert (rows["fail"]["state"], rows["fail"]["exit_code"]) == ("exited", 3), dict(rows["fail"])
    assert tasks == {"fill": "succeeded", "fail": "failed"}
    assert not list(small_disk.rglob("exit.json.tmp.*"))  # no empty temporary record left behind


def _mark_failed(workspace) -> None:
    """Run 1 and its tasks as failed in the state file, so that `retry` takes them up again (a task that
    succeeded is given a cause to run once more, here: what stands in its folder's way)."""
    conn = sqlite3.connect(workspace.state / "edgeorch.db")
    try:
        conn.execute("UPDATE runs SET state = 'failed'")
        conn.execute("UPDATE tasks SET state = 'failed'")
        conn.commit()
    finally:
        conn.close()


def test_a_file_where_an_attempts_folder_goes_fails_the_attempt_with_its_retries_not_ten_free_relaunches(workspace):
    """A file stood where a run's checkpoint folder goes (replaced by hand before a retry): each attempt was taken
    for one the launcher lost and relaunched at once, free, ten times in 0.3 s, the last reason blaming the
    launcher. It stays until someone acts: the attempt's own failure, retried with backoff, then the task fails
    saying which folder and why."""
    workspace.pipeline("ck", """
        [tasks.t]
        command = ["true"]
        retries = 1
        retry_delay = "0s"
    """)
    first = workspace.invoke("run", "ck")
    assert first.returncode == 0, first.stderr
    folder = workspace.state / "runs" / "1" / "checkpoints" / "t"
    folder.rmdir()
    folder.write_text("not a folder\n")
    _mark_failed(workspace)
    out = workspace.invoke("retry", "1")
    assert out.returncode == 1, out.stdout + out.stderr
    conn = sqlite3.connect(workspace.state / "edgeorch.db")
    conn.row_factory = sqlite3.Row
    try:
        later = conn.execute("SELECT * FROM attempts WHERE number > 1 ORDER BY id").fetchall()
        task = conn.execute("SELECT * FROM tasks").fetchone()
    finally:
        conn.close()
    assert len(later) == 2 and all(a["charged"] == 1 and a["state"] == "abandoned" for a in later), [dict(a) for a in later]
    assert task["state"] == "failed"
    assert f"cannot prepare the attempt: cannot create {folder}: File exists" in task["reason"], task["reason"]
    assert "not a folder stands where" in task["reason"] and "launcher" not in task["reason"]


def test_a_link_where_an_attempts_folder_goes_is_never_followed(workspace, tmp_path):
    """The checkpoint folder replaced by a link to a folder elsewhere: the task wrote through it. The attempt fails
    (charged), naming the link; nothing is written where it points."""
    workspace.pipeline("ck", """
        [tasks.t]
        command = ["sh", "-c", "echo written > $EDGEORCH_CHECKPOINT_DIR/x"]
    """)
    assert workspace.invoke("run", "ck").returncode == 0
    folder = workspace.state / "runs" / "1" / "checkpoints" / "t"
    for p in folder.iterdir():
        p.unlink()
    folder.rmdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    folder.symlink_to(elsewhere)
    _mark_failed(workspace)
    assert workspace.invoke("retry", "1").returncode == 1
    assert list(elsewhere.iterdir()) == []
    conn = sqlite3.connect(workspace.state / "edgeorch.db")
    try:
        reason = conn.execute("SELECT reason FROM tasks").fetchone()[0]
    finally:
        conn.close()
    assert f"cannot prepare the attempt: cannot create {folder}: a symbolic link stands where a folder" in reason, reason


def test_a_removed_wal_stops_the_daemon_after_its_commits_are_saved_into_the_state_file(workspace, daemon):
    """`rm edgeorch.db-wal` under a running daemon: its later commits went to a deleted file (lost at a crash).
    It copies them into the state file, stops (exit 4, saying why) and a restart has every run."""
    workspace.pipeline("one", '[tasks.a]\ncommand = ["true"]\n')
    daemon.start()
    ids = [daemon.call("trigger", {"pipeline": "one"})["run_id"] for _ in range(3)]
    for rid in ids:
        assert daemon.wait_run(rid) == "succeeded"
    (workspace.state / "edgeorch.db-wal").unlink()
    assert daemon.proc.wait(timeout=30) == 4
    out = daemon.output()
    assert "the state file lost its -wal file (removed) while the daemon ran: stopping" in out
    assert "its commits were copied into the state file first: nothing is lost" in out
    daemon.start()
    assert [r["id"] for r in daemon.call("runs.list", {})["runs"]][:3] == sorted(ids, reverse=True)


def test_a_state_file_replaced_under_the_daemon_stops_it_and_the_next_start_is_not_corrupted(workspace, daemon):
    """A backup moved over the live state file: the daemon wrote on into the file nobody reads, and its -wal was
    replayed into the backup at the next start (a corrupt state, served). Now it stops, drops its own -wal, and
    the next start opens the backup as it is."""
    workspace.pipeline("one", '[tasks.a]\ncommand = ["true"]\n')
    daemon.start()
    first = daemon.call("trigger", {"pipeline": "one"})["run_id"]
    assert daemon.wait_run(first) == "succeeded"
    backup = workspace.root / "backup.db"
    src = sqlite3.connect(workspace.state / "edgeorch.db")
    dst = sqlite3.connect(backup)
    src.backup(dst)
    dst.close()
    src.close()
    for _ in range(3):
        assert daemon.wait_run(daemon.call("trigger", {"pipeline": "one"})["run_id"]) == "succeeded"
    os.replace(backup, workspace.state / "edgeorch.db")
    assert daemon.proc.wait(timeout=30) == 4
    assert "the state file was replaced by another file while the daemon ran: stopping" in daemon.output()
    daemon.start()
    assert [r["id"] for r in daemon.call("runs.list", {})["runs"]] == [first]
    conn = sqlite3.connect(workspace.state / "edgeorch.db")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()


def test_a_state_folder_moved_while_a_run_is_active_is_refused_and_its_task_runs_once(workspace, daemon):
    """`mv state state_moved` (config changed) with a task running under live restore: the start took the attempt
    for abandoned (its folder was not where recorded), ran it again beside the running one and wrote to the old
    path, made anew. The start is refused naming the run and both paths; moved back, the run ends once."""
    workspace.pipeline("gated", """
        [tasks.a]
        command = ["sh", "-c", "echo started >> {pipeline_dir}/starts; while [ ! -f {pipeline_dir}/go ]; do sleep 0.05; done"]
    """)
    daemon.start()
    rid = daemon.call("trigger", {"pipeline": "gated"})["run_id"]
    workspace.wait_file(workspace.pipelines / "starts")
    assert daemon.stop() == 0  # the task goes on (live restore)
    old, moved = workspace.state, workspace.root / "moved"
    os.rename(old, moved)
    workspace.state = moved
    workspace.write_config()
    daemon.start(wait_ready=False)
    assert daemon.proc.wait(timeout=60) == 4
    out = daemon.output()
    assert f"run {rid} is running and its folder is recorded as {old / 'runs' / str(rid)}, which is gone" in out
    assert f"move the state folder back to {old}" in out
    assert not old.exists()  # nothing made at the old path
    os.rename(moved, old)
    workspace.state = old
    workspace.write_config()
    daemon.start()
    (workspace.pipelines / "go").touch()
    assert daemon.wait_run(rid) == "succeeded"
    assert (workspace.pipelines / "starts").read_text() == "started\n"


def test_a_state_folder_copied_while_a_run_is_active_is_refused_and_the_originals_task_is_left_alone(
        workspace, daemon):
    """`cp -a state state_copy` (config pointed at the copy) with a task running under live restore: the copy's
    engine adopted the original's live attempt (its folder is recorded by full path, and still there), would
    time it out and stop it, and started the run's next task in the original's run folder. The start is refused
    naming both folders; the original's daemon then ends the run once; a copy made afterwards starts."""
    workspace.pipeline("gated", """
        [tasks.a]
        command = ["sh", "-c", "echo started >> {pipeline_dir}/starts; while [ ! -f {pipeline_dir}/go ]; do sleep 0.05; done"]
        [tasks.b]
        command = ["sh", "-c", "echo b >> {pipeline_dir}/bs"]
        needs = ["a"]
    """)
    daemon.start()
    rid = daemon.call("trigger", {"pipeline": "gated"})["run_id"]
    workspace.wait_file(workspace.pipelines / "starts")
    assert daemon.stop() == 0  # the task goes on (live restore)
    original, copy = workspace.state, workspace.root / "copy"
    subprocess.run(["cp", "-a", str(original), str(copy)], check=True)
    workspace.state = copy
    workspace.write_config()
    daemon.start(wait_ready=False)
    assert daemon.proc.wait(timeout=60) == 4
    out = daemon.output()
    assert (f"run {rid} is running and its folder is recorded as {original / 'runs' / str(rid)}, outside this "
            f"state's runs folder ({copy / 'runs'})") in out
    assert f"use the state folder {original} itself" in out
    assert "Traceback" not in out
    (workspace.pipelines / "go").touch()
    workspace.state = original
    workspace.write_config()
    daemon.start()
    assert daemon.wait_run(rid) == "succeeded"
    assert (workspace.pipelines / "starts").read_text() == "started\n"  # never stopped, never run again
    assert (workspace.pipelines / "bs").read_text() == "b\n"
    assert daemon.stop() == 0
    subprocess.run(["rm", "-rf", str(copy)], check=True)
    subprocess.run(["cp", "-a", str(original), str(copy)], check=True)  # nothing active now: a copy is fine
    workspace.state = copy
    workspace.write_config()
    daemon.start()
    assert daemon.wait_run(daemon.call("trigger", {"pipeline": "gated"})["run_id"]) == "succeeded"
    assert (workspace.pipelines / "starts").read_text() == "started\nstarted\n"
