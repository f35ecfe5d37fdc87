"""`edgeorch run` that found no daemon, whose daemon took the state before this process could: the run goes to it."""

from __future__ import annotations

import time

import edgeorch.cli.commands.runs as runs_cmd
from edgeorch.cli.backend import Backend


def test_a_run_whose_daemon_started_between_its_look_and_its_lock_goes_to_that_daemon(workspace, daemon,
                                                                                        monkeypatch) -> None:
    """Found by an operator: `edgeorch run` in the first second of a daemon's start (after `systemctl restart`)
    found no daemon answering and none holding the state, then met the lock the daemon took meanwhile: "in use
    by another edgeorch daemon", exit 4, the run never made. Nothing had run here: it is asked of the daemon."""
    workspace.pipeline("p", '[tasks.a]\ncommand = ["sh", "-c", "echo ran"]\n')
    runs = _asked_of_the_daemon_started_meanwhile(workspace, daemon, monkeypatch, ["run", "p"], "queued on the daemon")
    assert [(r["pipeline"], r["state"]) for r in runs] == [("p", "succeeded")]


def test_a_retry_whose_daemon_started_between_its_look_and_its_lock_goes_to_that_daemon(workspace, daemon,
                                                                                          monkeypatch) -> None:
    """The same race for `edgeorch retry` (noticed at the last stop, not fixed then): it failed "in use by another
    edgeorch daemon", exit 4, the run not resumed. It is asked of the daemon, which resumes the failed task."""
    flag = workspace.root / "fixed"
    workspace.pipeline("p", f'[tasks.a]\ncommand = ["sh", "-c", "test -e {flag}"]\n')
    first = workspace.invoke("run", "p")
    assert first.returncode != 0, first.stdout  # no daemon yet: it ran here and failed
    flag.write_text("")
    runs = _asked_of_the_daemon_started_meanwhile(workspace, daemon, monkeypatch, ["retry", "1"], "resuming run 1: a")
    assert [(r["id"], r["state"]) for r in runs] == [(1, "succeeded")]


def _asked_of_the_daemon_started_meanwhile(workspace, daemon, monkeypatch, argv: list[str], said: str) -> list:
    """``edgeorch ARGV`` whose daemon starts right after its first look (:func:`_daemon_starts_after_the_look`):
    it succeeds, having looked again for the daemon, and says ``said``. Returns the daemon's runs."""
    looks = _daemon_starts_after_the_look(workspace, daemon, monkeypatch)
    out = workspace.invoke(*argv)
    assert out.returncode == 0, out.stderr
    assert looks == ["prefer", "daemon"]
    assert said in out.stdout, out.stdout
    return daemon.call("runs.list")["runs"]


def _daemon_starts_after_the_look(workspace, daemon, monkeypatch) -> list[str]:
    """The CLI's first look for a daemon finds none; right after it the daemon starts and takes the state (waited
    for: its lock names it). Returns the list of each look's ``need``, filled as the command looks."""
    real_connect = runs_cmd.connect
    looks: list[str] = []

    def connect_then_daemon_starts(cfg, need="prefer", **kw):  # type: ignore[no-untyped-def]
        looks.append(need)
        if len(looks) == 1:
            daemon.start(wait_ready=False)
            lock = workspace.state / "edgeorch.lock"
            deadline = time.monotonic() + 60
            while not (lock.exists() and lock.read_text() == f"{daemon.proc.pid} daemon\n"):
                assert time.monotonic() < deadline, "the daemon never took the state"
                time.sleep(0.01)
            return Backend(cfg, None)
        return real_connect(cfg, need, **kw)

    monkeypatch.setattr(runs_cmd, "connect", connect_then_daemon_starts)
    return looks
