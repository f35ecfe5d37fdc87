"""A gc killed (SIGKILL) after its commit, or in the middle of deleting a folder, is finished by the next one.

The gc runs in a real process that kills itself at the chosen point; the next ``edgeorch gc``
finds the folders without rows (strays) and removes them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

KILL_BEFORE_FOLDERS = """
import os, signal, sys
import edgeorch.retention.folders as folders
folders.remove = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)  # right after the commit
from edgeorch.cli import main
sys.exit(main(["gc", "--older-than", "30d", "--apply"]))
"""

KILL_INSIDE_RMTREE = """
import os, signal, sys
import edgeorch.retention.folders as folders
def rmtree_then_die(path, *a, **k):
    for root, dirs, files in os.walk(path):
        for f in files:
            os.unlink(os.path.join(root, f))  # part of the tree is gone...
            os.kill(os.getpid(), signal.SIGKILL)  # ...when the process dies
rmtree_then_die.avoids_symlink_attacks = True
folders.shutil.rmtree = rmtree_then_die
from edgeorch.cli import main
sys.exit(main(["gc", "--older-than", "30d", "--apply"]))
"""


def _killed_gc(workspace, script: str) -> None:
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], env=workspace.cli_env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr


def _report(proc) -> dict:
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_a_gc_killed_between_its_commit_and_the_folders_is_finished_by_the_next(old_runs, gc, workspace):
    old = old_runs.make("plain", 2, days_ago=100)
    (kept,) = old_runs.make("plain", 1, days_ago=0)
    folders = [Path(old_runs.row(r)["run_dir"]) for r in old]
    _killed_gc(workspace, KILL_BEFORE_FOLDERS)
    assert old_runs.run_ids() == [kept]  # the rows went, all at once...
    assert all(f.is_dir() for f in folders)  # ...their folders did not
    with old_runs.db() as conn:
        assert conn.execute("SELECT COUNT(*) FROM events WHERE kind = 'runs_removed'").fetchone()[0] == 1
    dry = _report(gc("--older-than", "30d", "--json"))
    assert [(Path(s["path"]), s["kind"], s["folder"]) for s in dry["strays"]] == [
        (f.resolve(), "orphan", "would be removed") for f in folders]
    assert all(f.is_dir() for f in folders)
    done = _report(gc("--older-than", "30d", "--apply", "--json"))
    assert done["runs"] == [] and [s["folder"] for s in done["strays"]] == ["removed", "removed"]
    assert not any(f.exists() for f in folders)
    assert Path(old_runs.row(kept)["run_dir"]).is_dir() and old_runs.run_ids() == [kept]


def test_a_gc_killed_while_deleting_a_folder_leaves_trash_that_any_later_gc_removes(old_runs, gc, workspace):
    (old,) = old_runs.make("plain", 1, days_ago=100)
    (kept,) = old_runs.make("plain", 1, days_ago=0)
    runs_dir = workspace.config().runs_dir
    _killed_gc(workspace, KILL_INSIDE_RMTREE)
    trash = [p for p in runs_dir.iterdir() if p.name.startswith(".removing-")]
    assert len(trash) == 1 and trash[0].is_dir()  # renamed, half deleted
    assert old_runs.run_ids() == [kept]
    done = _report(gc("--older-than", "365d", "--apply", "--json"))  # whatever the bound: trash is ours
    assert [(s["kind"], s["folder"]) for s in done["strays"]] == [("trash", "removed")]
    assert not trash[0].exists() and sorted(p.name for p in runs_dir.iterdir()) == [str(kept)]


def test_a_folder_no_run_names_is_removed_only_once_older_than_the_bound(old_runs, gc, workspace):
    """A restored older state file forgets runs whose folders stay: kept until they are as old as the bound."""
    (kept,) = old_runs.make("plain", 1, days_ago=0)
    runs_dir = workspace.config().runs_dir
    recent, old, other = runs_dir / "500", runs_dir / "501-2", runs_dir / "notes"
    for folder in (recent, old, other):
        (folder / "outputs").mkdir(parents=True)
        (folder / "outputs" / "x").write_text("x")
    old_runs.age_folder(old, 100)
    old_runs.age_folder(other, 100)
    done = _report(gc("--older-than", "30d", "--apply", "--json"))
    assert [(Path(s["path"]).name, s["kind"]) for s in done["strays"]] == [("501-2", "orphan")]
    assert recent.is_dir() and other.is_dir() and not old.exists()  # a name not a run folder's: not ours
    assert _report(gc("--older-than", "30d", "--pipeline", "plain", "--json"))["strays"] == []
    os.utime(recent, (0, 0))
    assert [Path(s["path"]).name for s in _report(gc("--older-than", "30d", "--json"))["strays"]] == ["500"]
