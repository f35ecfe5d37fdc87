"""Schedules and drop folders end to end, through a real daemon process.

Synchronisation: the ``events`` stream (run and input events) wakes the test,
which then reads the state file; no sleeps.
"""

from __future__ import annotations

import itertools
import json
import time
import os
import shutil
import sqlite3
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edgeorch.triggers.drop.service import CLAIM_GROUP


def db(workspace) -> sqlite3.Connection:
    conn = sqlite3.connect(workspace.state / "edgeorch.db", timeout=30)
    conn.row_factory = sqlite3.Row
    return conn


def q(workspace, sql: str, args=()) -> list[sqlite3.Row]:
    conn = db(workspace)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def wait_until(daemon, cond, timeout: float = 60, what: str = "") -> None:
    """Follow the daemon's events; return once ``cond()`` holds.

    Checked at subscribe and after each event that can change what the tests
    look at (runs finishing, inputs, schedule fires), not after every task event.
    """
    with daemon.client(timeout=timeout) as c:
        for ev in c.stream("events", {}, timeout=timeout):
            relevant = ev.get("kind") in ("subscribed", "input", "schedule") or (
                ev.get("kind") == "run" and ev.get("state") != "running")
            if relevant and cond():
                return
    raise AssertionError(f"the events stream ended before {what or cond}")


# -- schedules ------------------------------------------------------------------------------

TICK = """
every = "1s"
catchup = "all"
catchup_max = 100
[tasks.a]
command = ["true"]
"""


def fire_times(workspace) -> list[datetime]:
    rows = q(workspace, "SELECT data FROM events WHERE kind = 'schedule_fire' ORDER BY id")
    return [datetime.fromisoformat(json.loads(r["data"])["fire_time"]) for r in rows]


def test_every_fires_and_a_restart_neither_loses_nor_repeats_a_fire(workspace, daemon):
    workspace.pipeline("tick", TICK)
    daemon.start()

    def runs_ok(n):
        return lambda: q(workspace, "SELECT COUNT(*) FROM runs WHERE trigger = 'schedule' AND state = 'succeeded'")[0][0] >= n

    wait_until(daemon, runs_ok(2), what="two scheduled runs")
    listed = {p["name"]: p for p in daemon.call("pipelines.list")["pipelines"]}
    assert listed["tick"]["schedule"] == "every 1s"
    nf = datetime.fromisoformat(listed["tick"]["next_fire"])
    assert nf > fire_times(workspace)[-1]
    cli = subprocess.run([*workspace.cli(), "pipelines"], env=workspace.cli_env(), capture_output=True, text=True, check=False)
    assert "NEXT FIRE" in cli.stdout, cli.stdout + cli.stderr
    assert daemon.stop() == 0
    before = fire_times(workspace)
    stored = datetime.fromisoformat(q(workspace, "SELECT last_fire FROM schedule_state WHERE pipeline = 'tick'")[0][0])
    assert stored == before[-1]

    daemon.start()  # downtime of a second or more: catchup = "all" starts every missed fire once
    wait_until(daemon, lambda: len(fire_times(workspace)) >= len(before) + 3, what="fires after the restart")
    assert daemon.stop() == 0
    fires = fire_times(workspace)
    assert len(set(fires)) == len(fires), "a fire was repeated"
    assert fires == sorted(fires)
    gaps = [b - a for a, b in itertools.pairwise(fires)]
    assert set(gaps) == {timedelta(seconds=1)}, f"a fire was lost: {fires}"
    n_runs = q(workspace, "SELECT COUNT(*) FROM runs WHERE trigger = 'schedule'")[0][0]
    assert n_runs == len(fires)


def test_a_schedule_edited_while_the_daemon_runs_counts_its_new_times_from_the_edit(workspace, daemon):
    """every = "1h" edited to every = "1s" with catchup = "all": the old watermark made each second since the
    last fire a fire "missed while the daemon was away", all started at once on save."""
    workspace.pipeline("tick", TICK.replace('every = "1s"', 'every = "1h"'))
    daemon.start()
    time.sleep(2.5)  # the schedule's watermark (its start) is 2.5 s old: wall-clock time, what the grid is made of
    edited = datetime.now(UTC)
    workspace.pipeline("tick", TICK)
    daemon.call("reload", {})
    wait_until(daemon, lambda: len(fire_times(workspace)) >= 2, what="fires of the edited schedule")
    rows = [json.loads(r["data"]) for r in q(workspace, "SELECT data FROM events WHERE kind = 'schedule_fire'")]
    assert all(datetime.fromisoformat(r["fire_time"]) >= edited - timedelta(seconds=1) for r in rows), rows
    assert all(r["missed"] == 0 for r in rows), rows


def test_a_schedule_whose_file_went_and_came_back_catches_up_nothing_of_its_absence(workspace, daemon):
    """Its file moved away for a minute and back: catchup = "all" started a run for every fire of the minute it
    was gone, as if the daemon had been down."""
    path = workspace.pipeline("tick", TICK)
    text = path.read_text()
    daemon.start()
    wait_until(daemon, lambda: len(fire_times(workspace)) >= 1, what="a first fire")
    path.unlink()
    daemon.call("reload", {})
    time.sleep(2.5)  # fires of a 1 s schedule fall due while its file is away: wall-clock time is the grid
    back = datetime.now(UTC)
    path.write_text(text)
    before = len(fire_times(workspace))
    daemon.call("reload", {})
    wait_until(daemon, lambda: len(fire_times(workspace)) >= before + 1, what="a fire after it came back")
    assert all(t >= back - timedelta(seconds=1) for t in fire_times(workspace)[before:]), fire_times(workspace)


GATED_TICK = """
every = "1s"
max_active_runs = 1
on_max_active = "skip"
[tasks.a]
command = ["sh", "-c", "while [ ! -f {pipeline_dir}/go ]; do sleep 0.05; done"]
"""


def test_max_active_runs_skips_a_fire_and_says_why(workspace, daemon):
    workspace.pipeline("gated", GATED_TICK)
    daemon.start()

    def skipped():
        return q(workspace, "SELECT COUNT(*) FROM events WHERE kind = 'schedule_skip'")[0][0] >= 1

    wait_until(daemon, skipped, what="a fire skipped by max_active_runs")  # each fire publishes a schedule event
    reason = q(workspace, "SELECT message FROM events WHERE kind = 'schedule_skip'")[0]["message"]
    assert "max_active_runs = 1" in reason and "skip" in reason
    assert q(workspace, "SELECT COUNT(*) FROM runs WHERE state IN ('queued', 'running')")[0][0] == 1
    (workspace.pipelines / "go").write_text("")
    wait_until(daemon, lambda: q(workspace, "SELECT COUNT(*) FROM runs WHERE state = 'succeeded'")[0][0] >= 1)
    assert daemon.stop() == 0


# -- drop folders -------------------------------------------------------------------------------

INGEST = """
[params]
input = { type = "path", default = "" }
[tasks.check]
command = ["sh", "-c", "if grep -q BAD {input}; then echo bad input >&2; exit 3; fi; test -f {input} && test x$EDGEORCH_INPUT = x{input}"]
"""


def setup_batch_watch(workspace, body: str, *, window: str, settle: str = "0.2s", size: int = 3) -> Path:
    """A batch-mode watch of ``<root>/drop`` for pipeline ``batch`` (``body``), its paths in param ``files``."""
    drop = workspace.watch_folder("batch", settle=settle, extra=f"""
        mode = "batch"
        batch_size = {size}
        batch_window = "{window}"
        param = "files"
        """)
    workspace.pipeline("batch", body)
    return drop


def setup_watch(workspace, *, settle: str = "0.2s", extra: str = "") -> Path:
    drop = workspace.watch_folder("ingest", settle=settle, extra=extra)
    workspace.pipeline("ingest", INGEST)
    return drop


def inputs(workspace, state: str | None = None) -> list[sqlite3.Row]:
    if not (workspace.state / "edgeorch.db").exists():
        return []
    if state is None:
        return q(workspace, "SELECT * FROM inputs ORDER BY id")
    return q(workspace, "SELECT * FROM inputs WHERE state = ? ORDER BY id", (state,))


def n_inputs(workspace, *states: str) -> int:
    marks = ",".join("?" * len(states))
    return q(workspace, f"SELECT COUNT(*) FROM inputs WHERE state IN ({marks})", states)[0][0]


def drop_by_rename(staging: Path, drop: Path, name: str, data: bytes) -> None:
    staging.mkdir(exist_ok=True)
    (staging / name).write_bytes(data)
    os.rename(staging / name, drop / name)


@pytest.mark.skipif(shutil.which("rsync") is None, reason="rsync is not installed")
def test_rsync_starts_exactly_one_run_for_the_final_name(workspace, daemon, tmp_path):
    drop = setup_watch(workspace)
    src = tmp_path / "src"
    src.mkdir()
    (src / "data.csv").write_bytes(b"a,b\n" * 50_000)
    daemon.start()
    subprocess.run(["rsync", str(src / "data.csv"), str(drop) + "/"], check=True)
    wait_until(daemon, lambda: n_inputs(workspace, "done") >= 1, what="the rsynced file processed")
    rows = inputs(workspace)
    assert [r["source_name"] for r in rows] == ["data.csv"]
    assert rows[0]["size"] == 200_000 and len(rows[0]["sha256"]) == 64
    run = q(workspace, "SELECT * FROM runs")
    assert len(run) == 1 and run[0]["trigger"] == f"input:{rows[0]['id']}"
    assert json.loads(run[0]["params"])["input"] == rows[0]["inbox_path"]
    assert json.loads(run[0]["env"]) == {"EDGEORCH_INPUT": rows[0]["inbox_path"]}  # the watch's variable
    assert Path(rows[0]["inbox_path"]).parent.parent == workspace.state / "inbox"
    assert os.listdir(drop) == []


def test_cp_of_a_500_mb_file_starts_one_run_after_the_copy(workspace, daemon, tmp_path):
    drop = setup_watch(workspace, settle="0.5s")
    big = tmp_path / "big.bin"
    with open(big, "wb") as f:
        f.truncate(500 * 1024 * 1024)
    daemon.start()
    subprocess.run(["cp", str(big), str(drop / "big.bin")], check=True)
    copied_at = os.stat(drop / "big.bin").st_mtime if (drop / "big.bin").exists() else None
    wait_until(daemon, lambda: n_inputs(workspace, "done") >= 1, timeout=120, what="the copied file processed")
    rows = inputs(workspace)
    assert len(rows) == 1 and rows[0]["size"] == 500 * 1024 * 1024
    runs = q(workspace, "SELECT * FROM runs")
    assert len(runs) == 1
    if copied_at is not None:
        assert runs[0]["created_at"] >= copied_at


def test_files_dropped_while_the_daemon_is_down_are_processed_after_start(workspace, daemon, tmp_path):
    drop = setup_watch(workspace)
    for i in range(20):
        (drop / f"f{i:02d}.csv").write_text(f"row {i}\n")
    daemon.start()
    wait_until(daemon, lambda: n_inputs(workspace, "done") >= 20, what="20 files processed")
    assert sorted(r["source_name"] for r in inputs(workspace)) == [f"f{i:02d}.csv" for i in range(20)]
    assert q(workspace, "SELECT COUNT(*) FROM runs")[0][0] == 20


def test_a_drop_folder_moved_away_and_made_again_is_watched_within_seconds(workspace, daemon, tmp_path):
    """``mv drop drop.old; mkdir drop`` (an operator's clean-up): the watch followed the moved folder, and files
    dropped into the new one waited for the minute's rescan. The daemon's 2 s path check watches the new
    folder (and scans it); the moved one's files are no longer the watch's."""
    drop = setup_watch(workspace)
    daemon.start()
    drop_by_rename(tmp_path / "staging", drop, "first.csv", b"first\n")
    wait_until(daemon, lambda: n_inputs(workspace, "done") == 1, what="the first file processed")
    drop.rename(drop.with_name("drop.old"))
    drop.mkdir()
    (drop.with_name("drop.old") / "left.csv").write_text("not watched any more\n")
    drop_by_rename(tmp_path / "staging", drop, "second.csv", b"second\n")
    # Well before the 60 s rescan: at most a path check (2 s) and the settle time.
    wait_until(daemon, lambda: n_inputs(workspace, "done") == 2, timeout=20, what="the second file processed")
    assert [r["source_name"] for r in inputs(workspace)] == ["first.csv", "second.csv"]
    assert os.listdir(drop) == [] and os.listdir(drop.with_name("drop.old")) == ["left.csv"]


def test_a_hostile_name_is_refused_and_shown_escaped_in_the_table_the_events_and_the_log(workspace, daemon, tmp_path):
    """A name that would rewrite the operator's terminal (erase a line, move up) or forge a table row: refused,
    and wherever the refusal is shown the name is escaped; ``--json`` keeps it exactly."""
    drop = setup_watch(workspace)
    daemon.start()
    hostile = ["\x1b[2K\x1b[1Aok.csv", "x.csv\n 9  fine.csv"]
    for name in hostile:
        drop_by_rename(tmp_path / "staging", drop, name, b"data\n")
    wait_until(daemon, lambda: n_inputs(workspace, "refused") == 2, what="both names refused")
    table = workspace.invoke("inputs")
    assert table.returncode == 0 and "\x1b" not in table.stdout, table.stdout
    assert len(table.stdout.splitlines()) == 3  # the header and one line per input: no forged row
    assert "\\x1b[2K\\x1b[1Aok.csv" in table.stdout and "x.csv\\n 9  fine.csv" in table.stdout
    listed = json.loads(workspace.invoke("inputs", "--json").stdout)
    assert sorted(i["source_name"] for i in listed["inputs"]) == sorted(hostile)
    assert "\x1b" not in daemon.output() and "\\x1b[2K" in daemon.output()
    assert "\n 9  fine.csv" not in daemon.output()  # no forged journal line


def test_symlink_and_hard_link_are_refused_with_a_reason(workspace, daemon, tmp_path):
    drop = setup_watch(workspace)
    outside = tmp_path / "outside.csv"
    outside.write_text("x\n")
    daemon.start()
    os.symlink("/etc/passwd", drop / "passwd.csv")
    os.link(outside, drop / "hard.csv")
    wait_until(daemon, lambda: n_inputs(workspace, "refused") >= 2, what="two refusals")
    reasons = {r["source_name"]: r["reason"] for r in inputs(workspace, "refused")}
    assert "symbolic link (to /etc/passwd)" in reasons["passwd.csv"]
    assert "hard link" in reasons["hard.csv"]
    assert q(workspace, "SELECT COUNT(*) FROM runs")[0][0] == 0
    assert os.path.islink(drop / "passwd.csv")  # never followed, never moved
    listed = subprocess.run([*workspace.cli(), "inputs"], env=workspace.cli_env(), capture_output=True, text=True, check=False)
    assert "refused" in listed.stdout and "passwd.csv" in listed.stdout, listed.stderr


def test_bad_file_is_quarantined_with_its_reason_and_requeue_runs_it_again(workspace, daemon, tmp_path):
    drop = setup_watch(workspace)
    daemon.start()
    drop_by_rename(tmp_path / "stage", drop, "bad.csv", b"BAD row\n")
    wait_until(daemon, lambda: n_inputs(workspace, "quarantined") >= 1, what="the bad file quarantined")
    qdir = workspace.state / "quarantine"
    doc = json.loads((qdir / "bad.csv.reason.json").read_text())
    assert doc["pipeline"] == "ingest" and doc["source_name"] == "bad.csv"
    # Why, not only which task: the failed task's own reason.
    assert doc["reason"] == "run 1 of ingest failed (check: exited with code 3: bad input)", doc["reason"]
    assert (qdir / "bad.csv").read_bytes() == b"BAD row\n"
    listed = json.loads(subprocess.run([*workspace.cli(), "inputs", "--json"], env=workspace.cli_env(),
                                       capture_output=True, text=True, check=True).stdout)
    assert listed["quarantine"][0]["path"] == str(qdir / "bad.csv")
    # Fix the file in quarantine, then send it back by the name the listing shows: it arrives again and runs
    # (not a duplicate).
    (qdir / "bad.csv").write_bytes(b"good row\n")
    out = subprocess.run([*workspace.cli(), "requeue", "bad.csv"], env=workspace.cli_env(), cwd=tmp_path,
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    wait_until(daemon, lambda: n_inputs(workspace, "done") >= 1, what="the requeued file processed")
    states = [r["state"] for r in inputs(workspace)]
    assert states == ["requeued", "done"]
    assert not (qdir / "bad.csv").exists() and not (qdir / "bad.csv.reason.json").exists()
    bad = subprocess.run([*workspace.cli(), "requeue", "/etc/passwd"], env=workspace.cli_env(), capture_output=True,
                         text=True, check=False)
    assert bad.returncode != 0 and "quarantine" in bad.stderr
    # Requeued already (or a typo): said as it is, not "its drop folder is unknown, move it by hand".
    again = subprocess.run([*workspace.cli(), "requeue", "bad.csv"], env=workspace.cli_env(), capture_output=True,
                           text=True, check=False)
    assert again.returncode == 3 and "no such file in the quarantine folder" in again.stderr, again.stderr
    assert "by hand" not in again.stderr and "edgeorch inputs --quarantine" in again.stderr


def test_same_content_is_skipped_as_a_duplicate(workspace, daemon, tmp_path):
    drop = setup_watch(workspace)
    daemon.start()
    drop_by_rename(tmp_path / "stage", drop, "a.csv", b"same\n")
    wait_until(daemon, lambda: n_inputs(workspace, "done") >= 1)
    drop_by_rename(tmp_path / "stage", drop, "b.csv", b"same\n")
    wait_until(daemon, lambda: n_inputs(workspace, "duplicate") >= 1)
    assert "already processed by ingest (run 1)" in inputs(workspace, "duplicate")[0]["reason"]
    assert q(workspace, "SELECT COUNT(*) FROM runs")[0][0] == 1


def test_a_copy_dropped_while_the_first_runs_says_it_is_being_processed(workspace, daemon, tmp_path):
    """The duplicate's reason tells a copy of a file still being processed from one that was processed."""
    drop = setup_watch(workspace)
    workspace.pipeline("ingest", INGEST.replace('command = ["sh", "-c", "',
                                                'command = ["sh", "-c", "while [ ! -f {pipeline_dir}/go ]; do sleep 0.05; done; '))
    daemon.start()
    drop_by_rename(tmp_path / "stage", drop, "a.csv", b"same\n")
    wait_until(daemon, lambda: n_inputs(workspace, "started") >= 1)
    drop_by_rename(tmp_path / "stage", drop, "b.csv", b"same\n")
    wait_until(daemon, lambda: n_inputs(workspace, "duplicate") >= 1)
    reason = inputs(workspace, "duplicate")[0]["reason"]
    assert "as input 1, which ingest was processing when it arrived (run 1)" in reason and "already processed" not in reason
    (workspace.pipelines / "go").touch()
    wait_until(daemon, lambda: n_inputs(workspace, "done") >= 1)
    assert q(workspace, "SELECT COUNT(*) FROM runs")[0][0] == 1


def burst(workspace, daemon, tmp_path, n: int, timeout: float) -> None:
    drop = setup_watch(workspace)
    stage = tmp_path / "stage"
    stage.mkdir()
    for i in range(n):
        (stage / f"b{i:05d}.csv").write_text(f"{i}\n")
    daemon.start()
    for i in range(n):
        os.rename(stage / f"b{i:05d}.csv", drop / f"b{i:05d}.csv")
    wait_until(daemon, lambda: n_inputs(workspace, "done") >= n, timeout=timeout, what=f"{n} files processed")
    rows = inputs(workspace)
    assert len(rows) == n and len({r["source_name"] for r in rows}) == n
    per_input = q(workspace, "SELECT trigger, COUNT(*) AS c FROM runs GROUP BY trigger HAVING c > 1")
    assert per_input == []
    assert q(workspace, "SELECT COUNT(*) FROM runs")[0][0] == n


# Past two full claim groups and into a third, partial one: the group boundaries and a queue longer than a
# group are the races of a burst. The 2,000-file size runs with -m slow, beside 20,000.
BURST = 2 * CLAIM_GROUP + CLAIM_GROUP // 5


def test_burst_of_files_each_processed_exactly_once(workspace, daemon, tmp_path):
    burst(workspace, daemon, tmp_path, BURST, timeout=120)


@pytest.mark.slow
def test_burst_of_2000_files_each_processed_exactly_once(workspace, daemon, tmp_path):
    burst(workspace, daemon, tmp_path, 2000, timeout=300)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_burst_of_20000_files_each_processed_exactly_once(workspace, daemon, tmp_path):
    burst(workspace, daemon, tmp_path, 20_000, timeout=1200)


def test_kill9_during_a_burst_of_claims_loses_nothing_and_runs_nothing_twice(workspace, daemon, tmp_path):
    drop = setup_watch(workspace)
    stage = tmp_path / "stage"
    stage.mkdir()
    n = 600
    for i in range(n):
        (stage / f"k{i:04d}.csv").write_text(f"{i}\n")
    daemon.start()
    for i in range(n):
        os.rename(stage / f"k{i:04d}.csv", drop / f"k{i:04d}.csv")
    wait_until(daemon, lambda: n_inputs(workspace, "claiming", "claimed", "started", "done") >= 50,
               what="claims under way")
    daemon.kill9()
    daemon.start()
    wait_until(daemon, lambda: n_inputs(workspace, "done") >= n, timeout=120, what="every file processed")
    rows = inputs(workspace)
    done = [r for r in rows if r["state"] == "done"]
    assert len(done) == n and len({r["source_name"] for r in done}) == n
    assert {r["state"] for r in rows} == {"done"}, [tuple(r) for r in rows if r["state"] != "done"]
    assert q(workspace, "SELECT trigger FROM runs GROUP BY trigger HAVING COUNT(*) > 1") == []
    assert q(workspace, "SELECT COUNT(*) FROM runs")[0][0] == n
    assert os.listdir(drop) == []


BATCH = """
[params]
files = { type = "str", default = "[]" }
[tasks.count]
command = ["python3", "-c", "import json, sys; paths = json.loads(sys.argv[1]); assert all(open(p) for p in paths); print(len(paths))", "{files}"]
"""


def test_batch_mode_starts_one_run_per_full_batch_and_one_at_the_window(workspace, daemon, tmp_path):
    drop = setup_batch_watch(workspace, BATCH, window="0.5s")
    daemon.start()
    stage = tmp_path / "stage"
    for i in range(4):
        drop_by_rename(stage, drop, f"x{i}.csv", f"{i}\n".encode())
    wait_until(daemon, lambda: n_inputs(workspace, "done") >= 4, what="two batch runs done")
    runs = q(workspace, "SELECT * FROM runs ORDER BY id")
    sizes = sorted(len(json.loads(json.loads(r["params"])["files"])) for r in runs)
    assert sizes == [1, 3]  # a full batch of 3 at once, the 4th file alone when its window closed
    per_run = q(workspace, "SELECT run_id, COUNT(*) AS c FROM inputs GROUP BY run_id")
    assert sum(r["c"] for r in per_run) == 4 and len(per_run) == len(runs)


def test_a_batch_open_when_its_watch_is_removed_by_a_reload_runs_as_one_batch_then(workspace, daemon, tmp_path):
    """Found by a tester: a reload that removed a batch watch left its open batch in memory, its files `claimed`
    with no run and nothing said; the next start ran each as a single file (the param a path, not a JSON array)."""
    drop = setup_batch_watch(workspace, BATCH, window="1h", size=10)
    daemon.start()
    for i in range(2):
        drop_by_rename(tmp_path / "stage", drop, f"z{i}.csv", f"{i}\n".encode())
    wait_until(daemon, lambda: n_inputs(workspace, "claimed") >= 2, what="two files in the open batch")
    workspace.write_config()  # the [[watch]] table removed
    assert daemon.call("reload")["summary"].endswith("[[watch]]: 1 removed (" + str(drop) + ")")
    wait_until(daemon, lambda: n_inputs(workspace, "done") >= 2, what="the batch's run done")
    [run] = q(workspace, "SELECT * FROM runs")
    assert sorted(json.loads(json.loads(run["params"])["files"])) == sorted(
        r["inbox_path"] for r in inputs(workspace))  # one run of both, the param a JSON array
    assert daemon.stop() == 0
    daemon.start()
    assert q(workspace, "SELECT COUNT(*) FROM runs")[0][0] == 1  # nothing left to run after a restart


def test_max_active_runs_wait_holds_the_fire_until_a_run_finishes(workspace, daemon):
    workspace.pipeline("gated", GATED_TICK.replace('on_max_active = "skip"', 'on_max_active = "wait"'))
    daemon.start()

    def waiting():
        return q(workspace, "SELECT COUNT(*) FROM events WHERE kind = 'schedule_wait'")[0][0] >= 1

    wait_until(daemon, waiting, what="a fire held by max_active_runs")
    reason = q(workspace, "SELECT message FROM events WHERE kind = 'schedule_wait'")[0]["message"]
    assert "max_active_runs = 1" in reason and "wait" in reason
    held = json.loads(q(workspace, "SELECT data FROM events WHERE kind = 'schedule_wait'")[0]["data"])["fire_time"]
    assert q(workspace, "SELECT COUNT(*) FROM runs")[0][0] == 1
    # `pipelines` said a next fire in the past, with no word that it was held.
    [item] = daemon.call("pipelines.list")["pipelines"]
    assert item["fire_held"] is True and item["next_fire"] is not None
    listed = workspace.invoke("pipelines")
    assert "(held: starts when a run ends, max_active_runs)" in listed.stdout, listed.stdout
    (workspace.pipelines / "go").write_text("")
    # The first run finishing releases the held fire: it starts as the next run (late, not lost).
    wait_until(daemon, lambda: q(workspace, "SELECT COUNT(*) FROM runs WHERE state = 'succeeded'")[0][0] >= 2)
    assert held in [t.isoformat() for t in fire_times(workspace)]
    assert daemon.stop() == 0


def test_inputs_are_listed_from_the_state_file_while_the_daemon_is_down(workspace, daemon, tmp_path):
    """At 3 a.m. with the daemon stopped, `edgeorch inputs` still says what arrived, ran and was quarantined:
    the same answer as the daemon's (its watched folders aside)."""
    drop = setup_watch(workspace)
    daemon.start()
    drop_by_rename(tmp_path / "stage", drop, "good.csv", b"good row\n")
    drop_by_rename(tmp_path / "stage", drop, "bad.csv", b"BAD row\n")
    wait_until(daemon, lambda: n_inputs(workspace, "done") + n_inputs(workspace, "quarantined") >= 2,
               what="one done, one quarantined")
    cli = lambda *a: subprocess.run([*workspace.cli(), "inputs", *a], env=workspace.cli_env(),  # noqa: E731
                                    capture_output=True, text=True, check=False)
    online = json.loads(cli("--json").stdout)
    daemon.stop()
    offline = cli("--json")
    assert offline.returncode == 0, offline.stderr
    doc = json.loads(offline.stdout)
    assert doc["inputs"] == online["inputs"] and doc["counts"] == online["counts"]
    assert doc["quarantine"] == online["quarantine"] and doc["quarantine"][0]["path"].endswith("bad.csv")
    human = cli()
    assert "good.csv" in human.stdout and "done" in human.stdout and "quarantine: 1 file(s)" in human.stdout
    assert "bad.csv" in cli("--quarantine").stdout
    assert cli("--state", "refused").stdout.startswith("no inputs match\n")
    bad = cli("-n", "0")
    assert bad.returncode == 2 and "--limit/-n: is out of range (found 0)" in bad.stderr


def test_a_file_dropped_while_its_pipeline_is_paused_waits_through_a_restart_and_runs_when_resumed(
        workspace, daemon, tmp_path):
    """Pausing a pipeline holds its drops (``waiting``), it does not quarantine them: resuming runs each once."""
    drop = setup_watch(workspace)
    daemon.start()
    daemon.call("pipelines.pause", {"name": "ingest", "reason": "maintenance"})
    drop_by_rename(tmp_path / "stage", drop, "a.csv", b"one\n")
    drop_by_rename(tmp_path / "stage", drop, "b.csv", b"two\n")
    wait_until(daemon, lambda: n_inputs(workspace, "waiting") == 2, what="both files waiting")
    (row, _) = inputs(workspace, "waiting")
    assert row["reason"].startswith("pipeline ingest is paused (maintenance); it starts when the pipeline is resumed")
    assert Path(row["inbox_path"]).read_bytes() == b"one\n"  # claimed: safe in the inbox meanwhile
    daemon.stop()
    daemon.start()  # recovery submits them again: still paused, they wait on (not quarantined, not lost)
    assert n_inputs(workspace, "waiting") == 2 and q(workspace, "SELECT COUNT(*) FROM runs")[0][0] == 0
    drop_by_rename(tmp_path / "stage", drop, "c.csv", b"three\n")  # its file is removed before the resume
    wait_until(daemon, lambda: n_inputs(workspace, "waiting") == 3, what="the third file waiting")
    Path(inputs(workspace, "waiting")[2]["inbox_path"]).unlink()
    out = subprocess.run([*workspace.cli(), "pipelines", "resume", "ingest"], env=workspace.cli_env(),
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "ingest resumed; 3 waiting input(s) handed on (`edgeorch inputs`)", out
    wait_until(daemon, lambda: n_inputs(workspace, "done") == 2, what="both files processed after the resume")
    (lost,) = inputs(workspace, "lost")
    assert lost["source_name"] == "c.csv" and lost["reason"] == "its claimed file left the inbox while it waited"
    assert q(workspace, "SELECT COUNT(*) FROM runs")[0][0] == 2
    assert [r["reason"] for r in inputs(workspace, "done")] == [None, None]  # the waiting reason went with the wait
    assert not (workspace.state / "quarantine").exists() or not any((workspace.state / "quarantine").iterdir())


def test_a_batch_that_closes_while_its_pipeline_is_paused_waits_and_runs_as_one_batch_when_resumed(
        workspace, daemon, tmp_path):
    drop = setup_batch_watch(workspace, BATCH, window="1.5s", settle="0.1s")
    daemon.start()
    batched = next_input_event(daemon, "batched",  # claimed into the open batch, which says so
                               after=lambda: drop_by_rename(tmp_path / "stage", drop, "x0.csv", b"0\n"))
    assert batched["file"].endswith("x0.csv") and n_inputs(workspace, "claimed") == 1
    assert batched["reason"].startswith(f"file 1 of 3 of the open batch of {drop}; its run starts when the batch"
                                        " is full or in "), batched
    (listed,) = daemon.call("inputs.list", {})["inputs"]  # `edgeorch inputs` says it too, while it waits
    assert listed["state"] == "claimed" and listed["reason"].startswith(f"file 1 of 3 of the open batch of {drop};")
    daemon.call("pipelines.pause", {"name": "batch"})  # that batch closes (its window) during the pause
    for i in (1, 2):
        drop_by_rename(tmp_path / "stage", drop, f"x{i}.csv", f"{i}\n".encode())
    wait_until(daemon, lambda: n_inputs(workspace, "waiting") == 3, what="every file waiting")
    assert not list(daemon_inbox(workspace).glob("batch-in-*.paths"))  # no run was prepared
    daemon.call("pipelines.resume", {"name": "batch"})
    wait_until(daemon, lambda: n_inputs(workspace, "done") == 3, what="the batch processed after the resume")
    runs = q(workspace, "SELECT * FROM runs")
    assert len(runs) == 1 and len(json.loads(json.loads(runs[0]["params"])["files"])) == 3


def next_input_event(daemon, state: str, *, after, timeout: float = 30) -> dict:
    """The first ``input`` event in ``state`` on the daemon's events stream once ``after()`` (called when the
    stream is subscribed, so nothing it causes can be missed) has run."""
    with daemon.client(timeout=timeout) as c:
        for ev in c.stream("events", {}, timeout=timeout):
            if ev.get("kind") == "subscribed":
                after()
            elif ev.get("kind") == "input" and ev.get("state") == state:
                return ev
    raise AssertionError(f"the events stream ended before an input event {state!r}")


def daemon_inbox(workspace) -> Path:
    return workspace.state / "inbox"


def test_an_unknown_input_state_is_a_usage_error_not_an_empty_list(workspace, daemon):
    """`--state waitin` (a typo) must not read as "no inputs match", through the daemon or without it."""
    from edgeorch.errors import UsageError

    setup_watch(workspace)
    daemon.start()
    with pytest.raises(UsageError) as err:
        daemon.call("inputs.list", {"state": "waitin"})
    assert "waiting" in err.value.render() and "'waitin'" in err.value.render()
    assert daemon.call("inputs.list", {"state": "waiting"})["inputs"] == []
    out = subprocess.run([*workspace.cli(), "inputs", "--state", "waitin"], env=workspace.cli_env(),
                         capture_output=True, text=True, check=False)
    assert out.returncode == 2 and "invalid choice: 'waitin'" in out.stderr, out.stderr


def test_a_scheduled_runs_tasks_know_the_fire_they_process(workspace, daemon):
    """Runs of a catch-up were identical to their tasks (only EDGEORCH_RUN_ID differed): a backfill could not tell
    which night it was doing. The fire time and date are in each scheduled run's environment."""
    workspace.pipeline("tick", TICK.replace('command = ["true"]',
                                            'command = ["sh", "-c", "echo {fire_time} > $EDGEORCH_OUTPUT_DIR/f"]\n'
                                            'outputs = ["f"]'))
    daemon.start()
    wait_until(daemon, lambda: len(q(workspace, "SELECT id FROM runs WHERE state = 'succeeded'")) >= 1,
               what="a scheduled run")
    row = q(workspace, "SELECT e.run_id, e.data, r.env FROM events e JOIN runs r ON r.id = e.run_id"
                       " WHERE e.kind = 'schedule_fire' AND r.state = 'succeeded' ORDER BY e.id LIMIT 1")[0]
    fired = datetime.fromisoformat(json.loads(row["data"])["fire_time"])
    env = json.loads(row["env"])
    assert datetime.fromisoformat(env["EDGEORCH_FIRE_TIME"]) == fired  # UTC: an `every` schedule's zone
    assert env["EDGEORCH_FIRE_DATE"] == fired.date().isoformat()
    (art,) = q(workspace, "SELECT path FROM artifacts a JOIN attempts t ON t.id = a.attempt_id WHERE t.run_id = ?",
               (row["run_id"],))
    assert Path(art["path"]).read_text().strip() == env["EDGEORCH_FIRE_TIME"]
    # `why` says the fire as the tasks got it (in the schedule's timezone), and when that was here.
    why = workspace.invoke("why", str(row["run_id"]))
    assert f"started by its schedule: the fire of {env['EDGEORCH_FIRE_TIME']} (" in why.stdout, why.stdout


def test_the_fires_of_the_daemons_start_are_counted_in_the_metrics(workspace, daemon):
    """Found by an operator: after three minutes down, a schedule made 20 catch-up runs at the start and
    `edgeorch_schedule_fires_total{action="start"}` said 3 (the counters were subscribed after the schedules'
    start-up fires); its `missed` series was absent though its events were written."""
    workspace.pipeline("hourly", TICK.replace('every = "1s"', 'every = "1h"').replace("catchup_max = 100",
                                                                                     "catchup_max = 3"))
    daemon.start()
    assert daemon.stop() == 0
    five_hours_ago = (datetime.now(UTC) - timedelta(hours=5, minutes=30)).isoformat()
    conn = db(workspace)
    with conn:
        conn.execute("UPDATE schedule_state SET last_fire = ? WHERE pipeline = 'hourly'", (five_hours_ago,))
    conn.close()
    daemon.start()  # five fires missed: catchup = "all" starts the last 3, the rest are missed
    wait_until(daemon, lambda: q(workspace, "SELECT COUNT(*) FROM runs WHERE pipeline = 'hourly'")[0][0] >= 3,
               what="the catch-up runs")
    fams = {f["name"]: f for f in daemon.call("metrics", {"format": "json"})["families"]}
    fires = {s["labels"]["action"]: s["value"] for s in fams["edgeorch_schedule_fires"]["samples"]
             if s["labels"].get("pipeline") == "hourly" and s["name"].endswith("_total")}
    assert fires.get("start") == 3 and fires.get("missed") == 1, fires


def test_a_fire_the_front_door_refuses_is_said_by_status_and_pipelines_not_the_log_alone(workspace, daemon):
    """A renamed pipeline whose model another pipeline owned had every fire refused: said only in the daemon's log
    (with a literal "\\n  hint:"), while `status` and `pipelines` looked normal and nothing trained any more."""
    # A request no state of this machine grants: refused by the front door at each fire (validate cannot know).
    workspace.pipeline("needy", 'every = "1s"\n[tasks.a]\ncommand = ["true"]\ncpus = 4096\n')
    daemon.start()
    wait_until(daemon, lambda: daemon.call("status")["attention"]["schedules_refused"], what="a refused fire")
    (refused,) = daemon.call("status")["attention"]["schedules_refused"]
    assert refused["pipeline"] == "needy" and "cpus" in refused["reason"] and "\n" not in refused["reason"]
    status = workspace.invoke("status")
    assert "error      schedule of needy: its fire " in status.stdout and "was refused" in status.stdout, status.stdout
    listing = workspace.invoke("pipelines")
    assert "error  pipeline needy: its scheduled fire " in listing.stdout, listing.stdout
    (item,) = daemon.call("pipelines.list")["pipelines"]
    assert item["fire_refused"]["reason"] == refused["reason"]
    assert "\\n  hint" not in daemon.output()  # one line in the log
    # Fixed, its next fire starts a run: nothing is said any more.
    workspace.pipeline("needy", 'every = "1s"\n[tasks.a]\ncommand = ["true"]\ncpus = 1\n')
    wait_until(daemon, lambda: not daemon.call("status")["attention"]["schedules_refused"], what="a fire started")
    assert daemon.call("pipelines.list")["pipelines"][0]["fire_refused"] is None
