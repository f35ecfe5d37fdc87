"""Paths a user names for a command to write never take edgeorch's own state (edgeorch/ownstate.py).

Found by a tester: ``datasets restore x@1 var --force`` removed the whole state folder (state file, audit log,
objects), ``. --force`` the project folder, an empty DEST (an unset ``$DEST``) the current folder; and
``lineage export --openlineage var/edgeorch.db`` (or ``audit export -o``, ``profile --html/--save``) replaced
the running daemon's state file: it stopped, and every run, model and audit record was gone.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from edgeorch.ownstate import check_output_file, check_replaced_folder
from edgeorch.errors import UsageError


@pytest.fixture
def added(workspace, tmp_path: Path) -> Path:
    """A workspace with a dataset ``x@1`` (and so a state file); the data file's path."""
    data = tmp_path / "d.csv"
    data.write_text("a,b\n1,2\n")
    proc = workspace.invoke("datasets", "add", "x", str(data), "-q")
    assert proc.returncode == 0, proc.stderr
    return data


def state_is_whole(workspace) -> None:
    conn = sqlite3.connect(workspace.state / "edgeorch.db")
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT count(*) FROM dataset_versions").fetchone()[0] == 1
    finally:
        conn.close()


@pytest.mark.parametrize("where, said", [
    ("state", "is in edgeorch's state folder"),
    ("state/datasets", "is in edgeorch's state folder"),
    ("root", "is or holds the state folder"),
    ("pipelines", "is or holds the pipelines folder"),
])
def test_a_restore_never_replaces_the_state_folder_or_what_holds_edgeorchs_own(workspace, added, where, said):
    dest = {"state": workspace.state, "state/datasets": workspace.state / "datasets", "root": workspace.root,
            "pipelines": workspace.pipelines}[where]
    before = sorted(p.name for p in dest.iterdir())
    proc = workspace.invoke("datasets", "restore", "x@1", str(dest), "--force")
    assert proc.returncode == 2, proc.stderr
    assert f"edgeorch: error: DEST: {said}" in proc.stderr and "Traceback" not in proc.stderr
    assert sorted(p.name for p in dest.iterdir()) == before
    state_is_whole(workspace)


def test_a_restore_refuses_an_empty_dest_and_the_folder_it_runs_in(workspace, added, tmp_path, monkeypatch):
    here = tmp_path / "here"
    here.mkdir()
    (here / "precious").write_text("kept\n")
    monkeypatch.chdir(here)
    for dest, said in (("", "DEST: is empty"), (".", "is or holds the folder this command runs in"),
                       ("..", "DEST: is or holds the"), ("/", "is the file system's root")):
        proc = workspace.invoke("datasets", "restore", "x@1", dest, "--force")
        assert proc.returncode == 2 and said in proc.stderr, (dest, proc.stderr)
    assert (here / "precious").read_text() == "kept\n"
    proc = workspace.invoke("datasets", "restore", "x@1", "out")  # a new folder here: restored
    assert proc.returncode == 0, proc.stderr
    assert (here / "out" / "d.csv").read_text() == "a,b\n1,2\n"


@pytest.mark.parametrize("argv, flag", [
    (["lineage", "export", "--openlineage", "{state}/edgeorch.db"], "--openlineage"),
    (["audit", "export", "-o", "{state}/edgeorch.db-wal"], "--output"),
    (["profile", "{data}", "--html", "{state}/report.html"], "--html"),
    (["profile", "{data}", "--save", "{state}/datasets/p.json"], "--save"),
    (["drift", "{data}", "{data}", "--html", "{state}/edgeorch.db"], "--html"),
])
def test_an_output_file_in_the_state_folder_is_refused_before_any_work(workspace, added, argv, flag):
    argv = [a.format(state=workspace.state, data=added) for a in argv]
    proc = workspace.invoke(*argv, env={"EDGEORCH_KEEP_WARM": "0"})
    assert proc.returncode == 2, proc.stderr
    assert f"edgeorch: error: {flag}: is in edgeorch's state folder {workspace.state}" in proc.stderr
    assert not (workspace.state / "report.html").exists() and not (workspace.state / "datasets" / "p.json").exists()
    state_is_whole(workspace)


def test_the_rule_itself(tmp_path):
    state = tmp_path / "var"
    (state / "runs" / "3" / "outputs").mkdir(parents=True)
    (state / "edgeorch.db").write_bytes(b"")
    link = tmp_path / "link"
    link.symlink_to(state)
    check_output_file(state / "runs" / "3" / "outputs" / "report.html", field="--html")  # a kernel task's report
    check_output_file(tmp_path / "report.html", field="--html")
    for bad in (state / "edgeorch.db", state / "x.json", link / "edgeorch.db", state / "serving" / "m"):
        with pytest.raises(UsageError, match="is in edgeorch's state folder"):
            check_output_file(bad, field="--html")
    check_replaced_folder(tmp_path / "new", field="DEST", own=[("the state folder", state)])
    for bad in (state, state / "runs" / "3", link, tmp_path):
        with pytest.raises(UsageError):
            check_replaced_folder(bad, field="DEST", own=[("the state folder", state)])
