"""Engine side of process execution: the zygote, spawn requests, exit notifications.

The executor never decides anything; it starts attempts, watches their shims
through pidfds (which work for processes that are not our children, so an
engine restarted after a crash can adopt shims started by its predecessor),
and reports ``started`` / ``exited`` to the engine on the event loop.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .procinfo import is_same_process, open_pidfd
from .shim import ABANDONED, EXIT, OWNER, PROC, claim


@dataclass
class SpawnRequest:
    """Everything a shim needs to run one attempt."""

    attempt_id: int
    argv: list[str]
    env: dict[str, str]
    cwd: str
    log_path: str
    attempt_dir: str
    log_max_bytes: int
    cpus: list[int] | None = None
    cgroup: str | None = None
    """A cgroup v2 folder (with ``memory.max``) the shim joins before starting the task."""
    mkdirs: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(self.__dict__)


@dataclass
class ExitInfo:
    """How an attempt's process ended; ``exit_code`` None when killed by ``signal``.

    ``lost`` means no exit status exists (the shim vanished): the attempt is abandoned.
    """

    exit_code: int | None
    signal: int | None
    finished_at: float | None
    log_truncated: bool = False
    lost: bool = False
    error: str | None = None


@dataclass
class ProcInfo:
    pid: int
    pid_start_time: int | None
    pgid: int
    shim_pid: int
    shim_start_time: int | None
    extra: dict[str, Any] = field(default_factory=dict)


def read_exit(attempt_dir: str) -> ExitInfo | None:
    """The durable exit record of an attempt, or None when the shim has not written one."""
    try:
        data = json.loads(Path(attempt_dir, EXIT).read_text())
    except (OSError, ValueError):
        return None
    return ExitInfo(data.get("exit_code"), data.get("signal"), data.get("finished_at"),
                    bool(data.get("log_truncated")), error=data.get("error"))


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


class Executor:
    """Starts attempts under shims and reports their fate on the event loop."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        on_started: Callable[[int, ProcInfo], None],
        on_exited: Callable[[int, ExitInfo], None],
    ) -> None:
        self.loop = loop
        self.on_started = on_started
        self.on_exited = on_exited
        self._zygote: subprocess.Popen[bytes] | None = None
        self._buf = b""
        self._watched: dict[int, tuple[int, str]] = {}  # attempt_id -> (pidfd, attempt_dir)
        self._dirs: dict[int, str] = {}

    def start(self) -> None:
        """Start the zygote. Its stdin/stdout are our request/reply pipes."""
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        self._zygote = subprocess.Popen(
            [sys.executable, "-m", "edgeorch.engine.zygote"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True, env=env, close_fds=True,
        )
        assert self._zygote.stdout is not None
        os.set_blocking(self._zygote.stdout.fileno(), False)
        self.loop.add_reader(self._zygote.stdout.fileno(), self._on_reply)

    def spawn(self, req: SpawnRequest) -> None:
        """Ask the zygote for a shim; ``on_started`` or ``on_exited`` follows on the loop."""
        assert self._zygote is not None and self._zygote.stdin is not None
        self._dirs[req.attempt_id] = req.attempt_dir
        try:
            self._zygote.stdin.write((req.to_json() + "\n").encode())
            self._zygote.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            self.loop.call_soon(self.on_exited, req.attempt_id, ExitInfo(127, None, None, error=f"zygote is gone: {exc}"))

    def _on_reply(self) -> None:
        assert self._zygote is not None and self._zygote.stdout is not None
        try:
            chunk = os.read(self._zygote.stdout.fileno(), 1 << 16)
        except BlockingIOError:
            return
        if not chunk:
            self.loop.remove_reader(self._zygote.stdout.fileno())
            return
        self._buf += chunk
        *lines, self._buf = self._buf.split(b"\n")
        for line in lines:
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            attempt_id = msg.get("attempt_id")
            if attempt_id is None:
                continue
            if "error" in msg:
                self.on_exited(attempt_id, ExitInfo(127, None, None, error=msg["error"]))
                continue
            info = ProcInfo(msg["pid"], msg.get("pid_start_time"), msg["pgid"], msg["shim_pid"], msg.get("shim_start_time"))
            self.on_started(attempt_id, info)
            self.watch(attempt_id, self._dirs.get(attempt_id, ""), info.shim_pid, info.shim_start_time)

    def watch(self, attempt_id: int, attempt_dir: str, shim_pid: int, shim_start_time: int | None) -> bool:
        """Watch a shim until it exits. False when it is already gone (read exit.json instead)."""
        fd = open_pidfd(shim_pid, shim_start_time)
        if fd is None:
            self.loop.call_soon(self._settle, attempt_id, attempt_dir)
            return False
        self._watched[attempt_id] = (fd, attempt_dir)
        self.loop.add_reader(fd, self._on_shim_exit, attempt_id)
        return True

    def _on_shim_exit(self, attempt_id: int) -> None:
        fd, attempt_dir = self._watched.pop(attempt_id)
        self.loop.remove_reader(fd)
        os.close(fd)
        self._settle(attempt_id, attempt_dir)

    def _settle(self, attempt_id: int, attempt_dir: str) -> None:
        self._dirs.pop(attempt_id, None)
        info = read_exit(attempt_dir)
        if info is None:
            # The shim died without a record (killed, OOM): whatever the task did is unknown.
            proc = read_json(Path(attempt_dir, PROC))
            if proc and is_same_process(proc.get("pid"), proc.get("pid_start_time")):
                kill_group(proc["pgid"], signal.SIGKILL)  # an orphan nobody would collect
            info = ExitInfo(None, None, None, lost=True, error="the attempt's supervisor vanished without an exit record")
        self.on_exited(attempt_id, info)

    def close(self) -> None:
        """Stop watching and let the zygote exit; running shims and tasks go on."""
        for attempt_id, (fd, _) in list(self._watched.items()):
            self.loop.remove_reader(fd)
            os.close(fd)
        self._watched.clear()
        if self._zygote is not None:
            if self._zygote.stdout is not None:
                try:
                    self.loop.remove_reader(self._zygote.stdout.fileno())
                except Exception:
                    pass
            try:
                if self._zygote.stdin:
                    self._zygote.stdin.close()
            except OSError:
                pass
            try:
                self._zygote.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._zygote.kill()
            if self._zygote.stdout:
                self._zygote.stdout.close()
            self._zygote = None


def kill_group(pgid: int | None, sig: int) -> bool:
    """Signal a whole process group (grandchildren included); False when it is gone."""
    if not pgid or pgid <= 1:
        return False
    try:
        os.killpg(pgid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def settle_unowned(attempt_dir: str) -> bool:
    """Recovery for a ``starting`` attempt with no shim: claim it as abandoned.

    True when we won the claim (no shim will ever run it); False when a shim
    claimed it first (then ``owner.json`` names that shim).
    """
    Path(attempt_dir).mkdir(parents=True, exist_ok=True)
    return claim(attempt_dir, {ABANDONED: True})


__all__ = ["Executor", "ExitInfo", "ProcInfo", "SpawnRequest", "kill_group", "read_exit", "read_json",
           "settle_unowned", "OWNER", "PROC", "EXIT"]
