"""The per-attempt supervisor ("shim"), forked from the zygote.

Contract, in order:

1. **Claim** the attempt folder: create ``owner.json`` with ``O_EXCL`` holding
   the shim's pid and start time. Recovery settles a ``starting`` attempt by
   creating the same file ("abandoned"); whoever creates it first wins, so an
   attempt is either run by exactly one shim or never run.
2. Start the task in its own session and process group (``setsid``), pinned
   to the leased CPUs, stdin from /dev/null, stdout+stderr into a pipe.
3. Write ``proc.json`` (task pid, start time, pgid) atomically and tell the
   engine over the reply pipe (best effort: the engine may be gone).
4. Copy the pipe into the log file up to the cap, then a marker line, then
   drain without writing (the task must never block on a full pipe).
5. Wait for the task and write ``exit.json`` (temp file, rename).
   This is the record of truth for the exit status, read by the engine now
   or after a restart.

The shim outlives the daemon; it never touches the state file.
"""

from __future__ import annotations

import errno
import json
import os
import select
import subprocess  # imported before the zygote forks, so shims do not pay for it
import sys
import time
from typing import Any

from edgeorch.engine.procinfo import process_start_time

OWNER = "owner.json"
PROC = "proc.json"
EXIT = "exit.json"
ABANDONED = "abandoned"


def write_json_atomically(path: str, data: dict[str, Any], *, sync: bool) -> None:
    """Write ``data`` to ``path`` by temp file + rename, so readers see all or nothing.

    ``sync`` also fsyncs the content before the rename. The shim's records
    must survive the *daemon's* death, which the page cache already ensures,
    so the hot path does not fsync: after a power cut no task survives
    either, and an attempt whose exit record was lost is marked abandoned and
    retried by policy, never reported as succeeded (its outcome was never
    committed to the state file).
    """
    tmp = f"{path}.tmp.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, json.dumps(data).encode())
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, path)


def claim(attempt_dir: str, content: dict[str, Any]) -> bool:
    """Create ``owner.json`` exclusively; False if someone (recovery or a shim) already did."""
    try:
        fd = os.open(os.path.join(attempt_dir, OWNER), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    try:
        # No fsync: the claim only has to be seen by other processes (page cache), not survive power loss.
        os.write(fd, json.dumps(content).encode())
    finally:
        os.close(fd)
    return True


def run_shim(req: dict[str, Any], reply_fd: int) -> int:
    """Body of a forked shim process; returns the shim's exit code. Never raises."""
    attempt_dir = req["attempt_dir"]
    me = os.getpid()
    try:
        # Folders are made here, off the engine's loop (metadata writes are slow on some disks).
        for folder in (attempt_dir, *req.get("mkdirs", ())):
            os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        _reply(reply_fd, {"attempt_id": req["attempt_id"], "error": f"cannot create {exc.filename}: {exc.strerror}"})
        return 0
    if not claim(attempt_dir, {"shim_pid": me, "shim_start_time": process_start_time(me), "attempt_id": req["attempt_id"]}):
        _reply(reply_fd, {"attempt_id": req["attempt_id"], "error": "attempt already settled (abandoned by recovery)"})
        return 0
    try:
        log_fd = os.open(req["log_path"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    except OSError as exc:
        write_json_atomically(os.path.join(attempt_dir, EXIT), {"exit_code": 127, "signal": None, "finished_at": time.time(),
                                                                "error": f"cannot open log file: {exc}"}, sync=True)
        _reply(reply_fd, {"attempt_id": req["attempt_id"], "error": f"cannot open log file: {exc}"})
        return 0
    rfd, wfd = os.pipe()
    try:
        pid = _spawn_task(req, wfd)
    except OSError as exc:
        os.close(wfd)
        os.close(rfd)
        argv0 = req["argv"][0] if req.get("argv") else "?"
        what = f"cannot enter workdir {req['cwd']}" if exc.filename == req.get("cwd") else f"cannot execute {argv0!r}"
        _write_all(log_fd, f"edgeorch: {what}: {exc.strerror}\n".encode())
        os.close(log_fd)
        result = {"exit_code": 127, "signal": None, "finished_at": time.time(), "error": f"{what}: {exc.strerror}"}
        write_json_atomically(os.path.join(attempt_dir, EXIT), result, sync=True)
        _reply(reply_fd, {"attempt_id": req["attempt_id"], "error": result["error"]})
        return 0
    os.close(wfd)
    start = process_start_time(pid)
    proc = {"pid": pid, "pid_start_time": start, "pgid": pid, "started_at": time.time()}
    write_json_atomically(os.path.join(attempt_dir, PROC), proc, sync=False)
    _reply(reply_fd, {"attempt_id": req["attempt_id"], "shim_pid": me, "shim_start_time": process_start_time(me), **proc})
    try:
        os.close(reply_fd)  # do not hold the engine's pipe open for the task's lifetime
    except OSError:
        pass
    truncated = _pump(rfd, log_fd, int(req.get("log_max_bytes", 0)), pid)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    result = {
        "exit_code": code if code >= 0 else None,
        "signal": -code if code < 0 else None,
        "finished_at": time.time(),
        "log_truncated": truncated,
    }
    os.close(log_fd)
    write_json_atomically(os.path.join(attempt_dir, EXIT), result, sync=False)
    return 0


def _spawn_task(req: dict[str, Any], wfd: int) -> int:
    """Start the task in its own session; returns its pid. Raises OSError when it cannot start.

    ``subprocess`` uses vfork+exec here (no preexec function), about twice as
    cheap as fork on a Python process. Pinning is applied to the shim itself
    first and inherited by the task and all its descendants. The shim keeps
    SIGPIPE ignored (a write to a dead engine's pipe must not kill it); the
    task gets it back at its default through ``restore_signals``.
    """
    cpus = req.get("cpus")
    if cpus:
        os.sched_setaffinity(0, cpus)
    cgroup = req.get("cgroup")
    if cgroup:
        # Joined by the shim itself, like the affinity: the task and its descendants
        # inherit the cgroup, so memory.max covers the whole process tree.
        with open(os.path.join(cgroup, "cgroup.procs"), "w") as f:
            f.write("0\n")
    proc = subprocess.Popen(
        req["argv"], cwd=req["cwd"], env=req["env"], stdin=subprocess.DEVNULL, stdout=wfd, stderr=wfd,
        start_new_session=True, close_fds=True, restore_signals=True,
    )
    # The Popen object is dropped without wait(): the shim reaps the pid itself with waitpid.
    proc.returncode = 0  # keeps Popen.__del__ from warning about a child it thinks is still running
    return proc.pid


def _pump(rfd: int, log_fd: int, cap: int, pid: int) -> bool:
    """Copy task output to the log until EOF or until the task exits and the pipe is drained.

    A grandchild that keeps the pipe open must not keep the shim waiting
    forever, so once the task itself has exited we only drain what is buffered.
    Returns True when the cap cut the output.
    """
    written = 0
    truncated = False
    pidfd = None
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        pass
    exited = False
    watch = [rfd] + ([pidfd] if pidfd is not None else [])
    while True:
        try:
            ready, _, _ = select.select(watch, [], [], None if not exited else 0)
        except InterruptedError:
            continue
        if pidfd is not None and pidfd in ready:
            exited = True
            watch = [rfd]
            os.set_blocking(rfd, False)
            ready = [rfd]
        if rfd not in ready:
            if exited:
                break
            continue
        try:
            chunk = os.read(rfd, 1 << 16)
        except BlockingIOError:
            break
        except InterruptedError:
            continue
        if not chunk:
            break
        if cap and written + len(chunk) > cap:
            if not truncated:
                keep = max(cap - written, 0)
                _write_all(log_fd, chunk[:keep])
                written += keep
                _write_all(log_fd, f"\n[edgeorch: log cap of {cap} bytes reached; further output dropped]\n".encode())
                truncated = True
            continue
        _write_all(log_fd, chunk)
        written += len(chunk)
    os.close(rfd)
    if pidfd is not None:
        os.close(pidfd)
    return truncated


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except InterruptedError:
            continue
        except OSError as exc:
            if exc.errno == errno.ENOSPC:  # disk full: drop log output rather than block the task
                return
            raise
        view = view[n:]


def _reply(fd: int, msg: dict[str, Any]) -> None:
    """One JSON line to the engine; atomic (< PIPE_BUF) and best effort."""
    if fd < 0:
        return
    try:
        os.write(fd, (json.dumps(msg) + "\n").encode())
    except OSError:
        pass  # the engine went away; it will read proc.json / exit.json when it comes back


if __name__ == "__main__":  # pragma: no cover - run via the zygote
    sys.exit("edgeorch.engine.shim is started by the zygote, not directly")
