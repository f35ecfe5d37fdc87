"""The pipelines folder watcher reloads on content changes only (issue 9, item 3).

Reading a pipeline file (``cat``, ``edgeorch validate``, the reload's own reads)
used to trigger a reload, whose reads triggered the next one: about five
reloads a second, forever. Reloads are counted in the state file's events
table over a quiet window (counting "nothing happens" needs a window).
"""

from __future__ import annotations

import sqlite3
import subprocess
import time

TWO = """
[tasks.a]
command = ["true"]
"""

QUIET_S = 1.5  # the loop made ~7 reloads in this window


def reloads(ws) -> list[sqlite3.Row]:
    conn = sqlite3.connect(ws.state / "edgeorch.db", timeout=30)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute("SELECT * FROM events WHERE kind = 'reload' ORDER BY id").fetchall()
    finally:
        conn.close()


def cli(ws, *args):
    proc = ws.invoke(*args)  # in this process: output and exit codes are tested
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def poll(cond, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_reading_pipeline_files_never_reloads(workspace, daemon):
    path = workspace.pipeline("two", TWO)
    daemon.start()
    subprocess.run(["cat", str(path)], check=True, capture_output=True)
    assert cli(workspace, "validate").returncode == 0
    time.sleep(QUIET_S)
    assert reloads(workspace) == []


def test_an_explicit_reload_without_a_change_is_one_unchanged_reload(workspace, daemon):
    workspace.pipeline("two", TWO)
    daemon.start()
    proc = cli(workspace, "reload")
    assert proc.returncode == 0 and "reloaded: unchanged" in proc.stdout, proc.stdout
    time.sleep(QUIET_S)  # its own reads must not start another
    rows = reloads(workspace)
    assert len(rows) == 1 and "unchanged" in rows[0]["message"]


def test_a_reload_names_the_pipelines_it_added_and_removed(workspace, daemon):
    """It said "reloaded: 2 removed": which two, the operator had to find out."""
    workspace.pipeline("two", TWO)
    gone = [workspace.pipeline(n, TWO) for n in ("old_a", "old_b")]
    daemon.start()
    for path in gone:
        path.unlink()
    workspace.pipeline("fresh", TWO)
    # The folder's own watch may reload first (0.2 s after the last change): what each reload said, together.
    said = cli(workspace, "reload").stdout
    poll(lambda: "old_b" in said + " ".join(r["message"] for r in reloads(workspace)))
    told = said + " ".join(r["message"] for r in reloads(workspace))
    assert "added (fresh)" in told and "removed (old_a, old_b)" in told or (
        "removed (old_a)" in told and "removed (old_b)" in told), told


def test_an_edit_reloads_once_and_a_rewrite_with_the_same_content_not_at_all(workspace, daemon):
    path = workspace.pipeline("two", TWO)
    daemon.start()
    path.write_text(TWO + "[tasks.b]\ncommand = [\"true\"]\n")
    poll(lambda: len(reloads(workspace)) >= 1)
    time.sleep(QUIET_S)
    assert len(reloads(workspace)) == 1 and "1 changed" in reloads(workspace)[0]["message"]
    assert daemon.call("pipelines.show", {"name": "two"})["order"] == ["a", "b"]
    path.write_text(path.read_text())  # a write-close with the same bytes: hash unchanged, no reload
    time.sleep(QUIET_S)
    assert len(reloads(workspace)) == 1


def test_an_oversized_pipeline_file_is_an_error_naming_file_size_and_limit(workspace, daemon):
    workspace.pipeline("two", TWO)
    big = workspace.pipelines / "big.toml"
    big.write_bytes(b"# padding\n" * 200_000)  # 2 MB
    daemon.start()
    errors = daemon.call("pipelines.list")["errors"]
    assert len(errors) == 1 and errors[0]["file"] == str(big)
    assert "too large" in errors[0]["message"] and "2000000 bytes" in errors[0]["message"]
    assert "at most 1048576 bytes" in errors[0]["message"]
    assert [p["name"] for p in daemon.call("pipelines.list")["pipelines"]] == ["two"]


def test_a_pipeline_whose_symlink_target_is_removed_keeps_its_last_version_and_says_why(workspace, daemon):
    """A deployment's symlinked pipeline file whose target goes away: the pipeline vanished with no error."""
    target = workspace.root / "deploy" / "two.toml"
    target.parent.mkdir()
    target.write_text(TWO)
    (workspace.pipelines / "two.toml").symlink_to(target)
    daemon.start()
    assert [p["name"] for p in daemon.call("pipelines.list")["pipelines"]] == ["two"]
    target.unlink()
    cli(workspace, "reload")
    listed = daemon.call("pipelines.list")
    assert [p["name"] for p in listed["pipelines"]] == ["two"]  # its last valid version keeps serving
    assert [e["file"] for e in listed["errors"]] == [str(workspace.pipelines / "two.toml")]
    assert "is a symlink to a file that does not exist" in listed["errors"][0]["message"]


def test_a_pipelines_folder_replaced_by_another_is_watched_and_reloaded(workspace, daemon):
    """A deployment's atomic swap (the new folder renamed over the old one's path): the watch followed the old
    folder's inode and saw nothing more, so every later edit was ignored until `edgeorch reload`."""
    path = workspace.pipeline("two", TWO)
    daemon.start()
    new = workspace.pipelines.with_name("pipelines.new")
    new.mkdir()
    (new / path.name).write_text(TWO + "[tasks.b]\ncommand = [\"true\"]\n")
    workspace.pipelines.rename(workspace.pipelines.with_name("pipelines.old"))
    new.rename(workspace.pipelines)
    poll(lambda: daemon.call("pipelines.show", {"name": "two"})["order"] == ["a", "b"])
    # Watched again: an edit of the new folder's file reloads it like any other.
    path.write_text(TWO + "[tasks.c]\ncommand = [\"true\"]\n")
    poll(lambda: daemon.call("pipelines.show", {"name": "two"})["order"] == ["a", "c"])
    assert "changed" in reloads(workspace)[-1]["message"]


def test_a_pipelines_folder_created_after_the_start_is_watched(workspace, daemon):
    workspace.pipelines.rmdir()
    daemon.start()
    assert "does not exist" in daemon.call("pipelines.list")["errors"][0]["message"]
    workspace.pipelines.mkdir()
    poll(lambda: daemon.call("pipelines.list")["errors"] == [])  # the folder is there: watched, reloaded
    workspace.pipeline("two", TWO)
    poll(lambda: [p["name"] for p in daemon.call("pipelines.list")["pipelines"]] == ["two"])


def test_a_reload_while_the_pipelines_folder_is_gone_keeps_every_pipeline_and_the_folder_back_is_read(
        workspace, daemon):
    """Found by an operator: `edgeorch reload` (or SIGHUP) while the folder was moved away unloaded every pipeline
    (`5 removed`), every schedule stopped, and the same folder moved back stayed unread (its watch follows the
    inode: nothing said it was back) until the next reload by hand."""
    workspace.pipeline("two", TWO)
    daemon.start()
    away = workspace.pipelines.with_name("pipelines.away")
    workspace.pipelines.rename(away)
    r = cli(workspace, "reload")
    assert r.returncode != 0 or "does not exist" in r.stdout + r.stderr, r.stdout + r.stderr
    listing = daemon.call("pipelines.list")
    assert [p["name"] for p in listing["pipelines"]] == ["two"]  # still served, from its last version
    assert "does not exist" in listing["errors"][0]["message"]
    away.rename(workspace.pipelines)  # the same folder back
    poll(lambda: daemon.call("pipelines.list")["errors"] == [])
    assert [p["name"] for p in daemon.call("pipelines.list")["pipelines"]] == ["two"]
    assert "removed" not in " ".join(e["message"] for e in reloads(workspace))


def test_a_pipeline_file_change_reloads_pipelines_only_not_a_half_edited_config(workspace, daemon):
    """Found by a tester: a `[[watch]]` appended to config.toml (not yet reloaded) went live when any pipeline file
    was saved: the file event's reload read the config too, and `edgeorch reload` then said "unchanged". The
    config file is read by `edgeorch reload` and SIGHUP only, as docs/config.md says."""
    takes = '[params]\ninput = { type = "path", default = "" }\n'  # a watch's pipeline takes the file's path
    workspace.pipeline("two", takes + TWO)
    daemon.start()
    drop = workspace.root / "drop4"
    drop.mkdir()
    workspace.write_config(f'[[watch]]\nfolder = "{drop}"\npipeline = "two"\n')  # a config edit under way
    workspace.pipeline("two", takes + TWO + '\n[tasks.b]\ncommand = ["true"]\n')  # a pipeline saved meanwhile
    poll(lambda: any("1 changed (two)" in (r["message"] or "") for r in reloads(workspace)))
    assert daemon.call("inputs.list", {})["watches"] == []  # not applied by the file event
    assert "drop4" not in " ".join(r["message"] or "" for r in reloads(workspace))
    answer = cli(workspace, "reload")
    assert answer.returncode == 0 and "[[watch]]: 1 added" in answer.stdout, answer.stdout
    assert [w["folder"] for w in daemon.call("inputs.list", {})["watches"]] == [str(drop)]
