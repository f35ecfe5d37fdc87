"""``edgeorch top`` driven in a real terminal: tmux runs it, send-keys presses keys, capture-pane reads the screen.

The daemon is real; every key's effect is checked on the screen and, for the
keys that act, through the daemon's own ops (a cancelled run, a paused
pipeline). tmux is installed by ``.ci/run``; elsewhere the tests are skipped
when it is missing.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

if shutil.which("tmux") is None:
    if os.environ.get("CI"):
        raise RuntimeError("tmux is missing on CI: .ci/run installs it")
    pytest.skip("tmux is not installed (.ci/run installs it)", allow_module_level=True)

REPO = Path(__file__).resolve().parents[3]


class Tmux:
    """One tmux server of our own (its socket in the test's folder) running one command in a 160x40 window."""

    def __init__(self, tmp: Path, command: str, env: dict[str, str]) -> None:
        self.socket = tmp / "tmux.sock"
        self.exit_file = tmp / "top.exit"
        setenv = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
        # COLUMNS/LINES (pytest may export them) would override the window's size for rich.
        wrapped = f"env -u COLUMNS -u LINES {setenv} {command}; echo $? > {shlex.quote(str(self.exit_file))}"
        self._tmux("new-session", "-d", "-s", "top", "-x", "160", "-y", "40", "sh", "-c", wrapped)

    def _tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-S", str(self.socket), "-f", "/dev/null", *args], check=True,
                              capture_output=True, text=True).stdout

    def keys(self, *keys: str) -> None:
        self._tmux("send-keys", "-t", "top", *keys)

    def screen(self, *, escapes: bool = False) -> str:
        return self._tmux("capture-pane", "-p", "-t", "top", *(["-e"] if escapes else []))

    def wait_for(self, *texts: str, timeout: float = 30) -> str:
        """The screen once it shows every one of ``texts`` (polled: tmux has no event to wait on)."""
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if all(t in screen for t in texts):
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"the screen never showed {texts}; it shows:\n{screen}")
            time.sleep(0.1)

    def wait_exit(self, timeout: float = 30) -> int:
        deadline = time.monotonic() + timeout
        while not self.exit_file.exists() or not self.exit_file.read_text().strip():
            if time.monotonic() > deadline:
                raise AssertionError(f"edgeorch top did not exit; the screen shows:\n{self.screen()}")
            time.sleep(0.1)
        return int(self.exit_file.read_text())

    def close(self) -> None:
        subprocess.run(["tmux", "-S", str(self.socket), "kill-server"], capture_output=True)


LONG = textwrap.dedent("""\
    [tasks.train]
    command = ["sh", "-c", "echo epoch 1; echo epoch 2; while [ ! -f {pipeline_dir}/release ]; do sleep 0.05; done"]
    cpus = 1
    """)


@pytest.fixture
def top(workspace, daemon, tmp_path):
    workspace.write_config(parallelism=1)
    workspace.pipeline("long", LONG)
    workspace.pipeline("behind", '[tasks.next]\ncommand = ["true"]\n')
    daemon.start()
    env = {k: v for k, v in workspace.cli_env().items() if k in ("EDGEORCH_CONFIG", "PYTHONPATH", "PATH", "HOME")}
    env["TERM"] = "xterm-256color"
    t = Tmux(tmp_path, f"{shlex.quote(sys.executable)} -m edgeorch.cli top --interval 0.3", env)
    yield t
    t.close()


def test_top_shows_tasks_cores_and_runs_and_its_keys_act_through_the_ops(top, workspace, daemon):
    long_run = daemon.call("trigger", {"pipeline": "long"})["run_id"]
    behind_run = daemon.call("trigger", {"pipeline": "behind"})["run_id"]
    screen = top.wait_for("Tasks: 1 running, 1 waiting", "train", "running", "cores", "next", "waiting",
                          "waits for a run slot", f"{long_run}/train", "Recent runs", "Drop folders")
    assert "Cores and GPUs" in screen and "l logs" in screen
    assert "every rule ok" in screen  # the rules panel (monitors.list): no [[on]] rules here
    cursor_line = next(line for line in top.screen(escapes=True).splitlines() if "\x1b[7m" in line)
    assert "train" in cursor_line  # the cursor starts on the first task, in reverse video

    top.keys("l")  # the selected task's log, followed live
    top.wait_for(f"log of run {long_run} train", "epoch 1", "epoch 2")
    top.keys("q")  # closes the log, not top
    top.wait_for("Recent runs", "Tasks:")

    top.keys("j", "p")  # the waiting task's pipeline: pause it...
    top.wait_for("pipeline behind paused")
    assert daemon.call("status")["paused"] == ["behind"]
    top.keys("p")  # ...and resume it
    top.wait_for("pipeline behind resumed")
    assert daemon.call("status")["paused"] == []

    top.keys("k", "c")  # cancel asks first
    top.wait_for(f"cancel run {long_run} (long)? y/n")
    assert daemon.call("runs.show", {"run_id": long_run})["state"] == "running"
    top.keys("y")
    top.wait_for(f"cancel requested for run {long_run} (long)")
    assert daemon.wait_run(long_run) == "cancelled"
    assert daemon.wait_run(behind_run) == "succeeded"  # the slot came free
    top.wait_for("Tasks: 0 running, 0 waiting", "cancelled")

    top.keys("q")
    assert top.wait_exit() == 0


def test_top_says_when_the_daemon_goes_away_and_keeps_running(top, daemon):
    top.wait_for("Tasks: 0 running, 0 waiting")
    assert daemon.stop() == 0
    top.wait_for("stale: no edgeorch daemon is running")
    top.keys("q")
    assert top.wait_exit() == 0
