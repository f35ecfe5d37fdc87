"""``show`` of a cancelled run says who asked for the cancel, and why: with ``--reason`` it said only
``cancel requested: test cancel`` (without one, "cancelled by root": the user's name was the default reason), though
the exit-130 row of docs/cli.md says ``show`` "says by whom and why". The actor is the ``cancel_requested`` event's
(an audit record), read the same way through a daemon and from the state file."""

from __future__ import annotations

import os
import pwd

import pytest

HANG = """
[tasks.hang]
command = ["sh", "-c", "touch {pipeline_dir}/started; exec sleep 300"]
"""

ME = f"{pwd.getpwuid(os.getuid()).pw_name} (uid {os.getuid()})"


def _cancel_line(workspace, run_id: int) -> str:
    proc = workspace.invoke("show", str(run_id))
    assert proc.returncode == 0, proc.stderr
    (line,) = [ln for ln in proc.stdout.splitlines() if ln.startswith("cancel requested")]
    return line


@pytest.mark.parametrize("daemon_at_show", [True, False], ids=["daemon", "state-file"])
def test_show_says_who_cancelled_the_run_and_the_reason_they_gave(workspace, daemon, daemon_at_show):
    workspace.pipeline("hang", HANG)
    daemon.start()
    for run_id, reason in ((1, ["--reason", "test cancel"]), (2, [])):
        assert daemon.call("trigger", {"pipeline": "hang"})["run_id"] == run_id
        workspace.wait_file(workspace.pipelines / "started")
        (workspace.pipelines / "started").unlink()
        assert workspace.invoke("cancel", str(run_id), *reason).returncode == 0
        assert daemon.wait_run(run_id) == "cancelled"
    if not daemon_at_show:
        assert daemon.stop() == 0
    assert _cancel_line(workspace, 1) == f"cancel requested by {ME}: test cancel"
    # Without --reason the reason is "cancelled by <user>": said once, with the uid.
    assert _cancel_line(workspace, 2) == f"cancel requested by {ME}"


def test_show_says_who_cancelled_a_run_this_cli_stopped_without_a_daemon(workspace, daemon):
    """`cancel` without a daemon (a run a killed daemon left) records this user as the actor: `show` says it."""
    workspace.pipeline("hang", HANG)
    daemon.start()
    daemon.call("trigger", {"pipeline": "hang"})
    workspace.wait_file(workspace.pipelines / "started")
    daemon.kill9()  # its task goes on, unowned
    proc = workspace.invoke("cancel", "1", "--reason", "disk full")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _cancel_line(workspace, 1) == f"cancel requested by {ME}: disk full"


def test_a_user_who_may_not_read_the_state_folder_is_told_the_same_through_the_daemon(workspace, daemon, monkeypatch):
    """A member of the socket's group cannot open the state file (its folder is 0700): the actor comes with the
    run's document from the daemon (`cancelled_by`), the same answer."""
    from edgeorch.cli.backend import Backend

    workspace.pipeline("hang", HANG)
    daemon.start()
    daemon.call("trigger", {"pipeline": "hang"})
    workspace.wait_file(workspace.pipelines / "started")
    assert workspace.invoke("cancel", "1", "--reason", "test cancel").returncode == 0
    assert daemon.wait_run(1) == "cancelled"
    opened: list[bool] = []

    def refused(self, *, readonly):
        opened.append(readonly)
        raise PermissionError(13, "Permission denied", str(self.cfg.state_file))

    monkeypatch.setattr(Backend, "open_store", refused)
    assert _cancel_line(workspace, 1) == f"cancel requested by {ME}: test cancel"
    assert opened == []  # the run's document, who cancelled it included, came from the daemon
