"""``edgeorch retry RUN --current``: the run's failed tasks again under the pipeline file as it is now (a longer
timeout, more retries, a fixed command), keeping the run's finished tasks, and its checkpoints unless the task's
definition changed. A retry reran the run's own definition only, so the most common overnight fix (a timeout too
short) could not be applied to the run that needed it."""

from __future__ import annotations

import json
import sqlite3
import subprocess

import pytest

from edgeorch.model import text_hash

# Each attempt leaves one more checkpoint; the fourth succeeds. With no retries each try is one attempt.
TRAIN = """
[tasks.prep]
command = ["true"]
[tasks.train]
needs = ["prep"]
command = ["sh", "-c", "n=$(ls $EDGEORCH_CHECKPOINT_DIR | wc -l); touch $EDGEORCH_CHECKPOINT_DIR/ep$n; test $n -ge 3"]
retries = {retries}
retry_delay = "0s"
"""


def _cli(workspace, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*workspace.cli(), *args], env=workspace.cli_env(), capture_output=True, text=True,
                          timeout=120)


def _attempts(workspace, run_id: int) -> dict[str, int]:
    conn = sqlite3.connect(workspace.state / "edgeorch.db")
    try:
        return dict(conn.execute("SELECT name, attempts FROM tasks WHERE run_id = ?", (run_id,)).fetchall())
    finally:
        conn.close()


@pytest.mark.parametrize("with_daemon", [False, True], ids=["no-daemon", "daemon"])
def test_a_retry_runs_the_edited_file_only_when_asked_and_keeps_the_runs_checkpoints(workspace, daemon, with_daemon):
    path = workspace.pipeline("fit", TRAIN.format(retries=0))

    def edit(text: str) -> None:
        path.write_text(text)
        if with_daemon:
            assert workspace.invoke("reload").returncode == 0

    if with_daemon:
        daemon.start()
    assert _cli(workspace, "run", "fit").returncode == 1
    edit(TRAIN.format(retries=5))
    again = _cli(workspace, "retry", "1")  # the run's own definition: one attempt, fails; says how to use the file
    assert again.returncode == 1
    assert "`edgeorch retry 1 --current` runs them under the file as it is" in again.stderr, again.stderr
    # The failed retry's last line, where the next step is read, said the plain retry again (and -q hid the note).
    assert "its pipeline file changed since: `edgeorch retry 1 --current` runs them under the file as it is" \
        in again.stdout, again.stdout
    fixed = _cli(workspace, "retry", "1", "--current")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "resuming run 1: train (under the pipeline file as it is now)" in fixed.stdout
    assert "note:" not in fixed.stdout + fixed.stderr  # retries are no part of the definition: checkpoints kept
    assert _attempts(workspace, 1) == {"prep": 1, "train": 4}  # prep stayed done; train went on from ep1
    doc = json.loads(_cli(workspace, "show", "1", "--json").stdout)
    assert doc["content_hash"] == text_hash(TRAIN.format(retries=5))  # the run's definition from now on
    why = _cli(workspace, "why", "1").stdout  # each retry, and which one changed the run's definition
    assert "resumed by" in why and ": 1 task(s) to run\n" in why, why
    assert f"1 task(s) to run under the pipeline file as it is now (content_hash {doc['content_hash'][:12]})" in why

    # A changed command is another definition: the retry starts without the old checkpoints, and says why.
    edit(TRAIN.format(retries=0))
    assert _cli(workspace, "run", "fit", "-q").returncode == 1  # run 2
    edit(TRAIN.format(retries=5).replace("test $n -ge 3", "test $n -ge 1"))
    redone = _cli(workspace, "retry", "2", "--current")
    assert redone.returncode == 0, redone.stdout + redone.stderr
    assert "attempt 1's checkpoints were made by another definition of the task" in redone.stdout, redone.stdout
    assert _attempts(workspace, 2) == {"prep": 1, "train": 3}  # from an empty folder: ep0 fails, ep1 succeeds

    # A file whose tasks are not the run's cannot carry it on: said, nothing recorded.
    edit(TRAIN.format(retries=0))
    assert _cli(workspace, "run", "fit", "-q").returncode == 1  # run 3
    edit(TRAIN.format(retries=5) + '[tasks.extra]\ncommand = ["true"]\n')
    refused = _cli(workspace, "retry", "3", "--current")
    assert refused.returncode == 5, refused.stdout + refused.stderr
    assert "run 3 cannot go on under" in refused.stderr and "its tasks differ from the run's (added extra)" in refused.stderr
    assert _attempts(workspace, 3) == {"prep": 1, "train": 1}


def test_a_daemon_reads_the_runs_own_file_again_never_its_loaded_copy(workspace, daemon):
    """Through a daemon, `edit && retry --current` ran the copy loaded before the edit (its reload came after),
    saying it used the file; a broken file was served from its last valid version. The file is read again."""
    path = workspace.pipeline("fit", TRAIN.format(retries=0))
    daemon.start()
    assert _cli(workspace, "run", "fit").returncode == 1
    path.write_text(TRAIN.format(retries=5) + "[tasks.bad\n")
    refused = _cli(workspace, "retry", "1", "--current")
    assert refused.returncode == 5, refused.stdout + refused.stderr
    assert f"run 1's pipeline file {path} cannot be used now: {path}:" in refused.stderr, refused.stderr
    assert _attempts(workspace, 1) == {"prep": 1, "train": 1}
    path.write_text(TRAIN.format(retries=5))  # no reload asked for: the retry reads the file itself
    fixed = _cli(workspace, "retry", "1", "--current")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert _attempts(workspace, 1) == {"prep": 1, "train": 4}


@pytest.mark.parametrize("with_daemon", [False, True], ids=["no-daemon", "daemon"])
def test_current_is_the_runs_own_file_not_a_pipeline_of_the_same_name(workspace, daemon, tmp_path, with_daemon):
    """An ad-hoc run's file, and a folder where another file declares the name: the run's own file is read, and
    one that declares another pipeline now is refused."""
    impostor = workspace.pipeline("fit", TRAIN.format(retries=5).replace("test $n -ge 3", "echo IMPOSTOR"))
    own = tmp_path / "mine.toml"
    own.write_text('name = "fit"\n' + TRAIN.format(retries=0))
    if with_daemon:
        daemon.start()
    assert _cli(workspace, "run", str(own)).returncode == 1
    own.write_text('name = "fit"\n' + TRAIN.format(retries=5))
    fixed = _cli(workspace, "retry", "1", "--current")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert _attempts(workspace, 1) == {"prep": 1, "train": 4}  # its own file's retries, not the impostor's command
    assert json.loads(_cli(workspace, "show", "1", "--json").stdout)["pipeline_file"] == str(own)
    assert impostor.exists()
    own.write_text('name = "other"\n' + TRAIN.format(retries=0))
    assert _cli(workspace, "run", "-q", "fit").returncode == 0  # run 2 (the folder's file)
    own.write_text('name = "fit"\n' + TRAIN.format(retries=0))
    assert _cli(workspace, "run", "-q", str(own)).returncode == 1  # run 3
    own.write_text('name = "renamed"\n' + TRAIN.format(retries=5))
    refused = _cli(workspace, "retry", "3", "--current")
    assert refused.returncode == 5 and f"declares pipeline 'renamed' now, not 'fit'" in refused.stderr, refused.stderr


@pytest.mark.parametrize("with_daemon", [False, True], ids=["no-daemon", "daemon"])
def test_a_file_another_user_may_write_is_not_read_again_to_run_its_commands(workspace, daemon, tmp_path,
                                                                             with_daemon):
    """An operator ran a pipeline file from a shared folder; another user rewrote its command; `retry --current`
    read it again and ran that as the daemon's user. A file outside the pipelines folder is read again only when
    it and its folder belong to the daemon's user, the user who asks or root, and not every user may write them."""
    import os

    shared = tmp_path / "shared"
    shared.mkdir()
    job = shared / "job.toml"
    job.write_text('name = "fit"\n' + TRAIN.format(retries=0))
    if with_daemon:
        daemon.start()
    assert _cli(workspace, "run", str(job)).returncode == 1
    job.write_text('name = "fit"\n' + TRAIN.format(retries=5).replace("test $n -ge 3", "touch PWNED"))
    job.chmod(0o666)
    refused = _cli(workspace, "retry", "1", "--current")
    assert refused.returncode == 5, refused.stdout + refused.stderr
    assert f"{job}: every user may write it" in refused.stderr and "is not read again" in refused.stderr
    job.chmod(0o664)  # its group's members may rewrite it too (they need no access to the daemon) ...
    if os.getuid() == 0:
        os.chown(job, 0, 65534)  # ... nogroup's: nobody is in it
        refused = _cli(workspace, "retry", "1", "--current")
        assert refused.returncode == 5 and f"{job}: the users of its group may write it" in refused.stderr, \
            refused.stderr
        os.chown(job, 0, 0)  # ... not root's own group (its only member is root): a umask-002 file of one's own
    shared.chmod(0o777)  # a folder everyone writes to: the file can be replaced there
    refused = _cli(workspace, "retry", "1", "--current")
    assert refused.returncode == 5 and f"{shared}: every user may write it" in refused.stderr, refused.stderr
    shared.chmod(0o755)
    if os.getuid() == 0:  # another user's file (root can give it away)
        os.chown(job, 65534, 65534)
        refused = _cli(workspace, "retry", "1", "--current")
        assert refused.returncode == 5 and "not to you or root" in refused.stderr, refused.stderr
        os.chown(job, 0, 0)
    assert _attempts(workspace, 1) == {"prep": 1, "train": 1}  # nothing ran meanwhile
    # One's own file (group-writable by one's private group, as umask 002 makes it), in one's own folder. A new
    # user's find: every file a user made on a Debian or Ubuntu default was refused, and the hint's copy was too.
    if os.getuid() == 0:
        assert oct(job.stat().st_mode & 0o777) == "0o664" and job.stat().st_gid == 0
    assert _cli(workspace, "retry", "1", "--current").returncode == 0


FAILS = '[tasks.prepare]\ncommand = ["sh", "-c", "exit 3"]\n'


@pytest.mark.parametrize("with_daemon", [False, True], ids=["no-daemon", "daemon"])
def test_a_run_of_a_copy_names_and_retries_the_file_it_ran_not_the_first_one_with_that_content(
        workspace, daemon, tmp_path, with_daemon):
    """A new user's find: the same text in the pipelines folder and in ~/p3/nightly.toml. `edgeorch run
    ~/p3/nightly.toml` was recorded under the folder's file (a version is content, and it kept the first path):
    `show` named the folder's file, and `retry --current` reread it, ignoring the fix made to the file that ran."""
    workspace.pipeline("nightly", FAILS)
    copy = tmp_path / "p3" / "nightly.toml"
    copy.parent.mkdir(mode=0o755)
    copy.write_text(FAILS)
    if with_daemon:
        daemon.start()
    assert _cli(workspace, "run", "nightly").returncode == 1  # the folder's file, first
    assert _cli(workspace, "run", str(copy)).returncode == 1  # the same content, from the copy
    doc = json.loads(_cli(workspace, "show", "2", "--json").stdout)
    assert doc["pipeline_file"] == str(copy), doc["pipeline_file"]
    assert json.loads(_cli(workspace, "show", "1", "--json").stdout)["pipeline_file"] == str(
        workspace.pipelines / "nightly.toml")
    copy.write_text('[tasks.prepare]\ncommand = ["true"]\n')  # fixed, in the file that ran
    fixed = _cli(workspace, "retry", "2", "--current")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
