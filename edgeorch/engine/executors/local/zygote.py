"""The zygote: a small single-threaded process that forks shims cheaply and keeps the idle ones.

Started once by the engine (``python -m edgeorch.engine.executors.local.zygote``) with a
request pipe on stdin and a reply pipe on stdout. Forking this small process
costs far less than starting a Python interpreter per task, and forking the
daemon itself would be unsafe (it has threads). Shims answer on the reply
pipe themselves.

Lines on stdin, from the engine:

- a spawn request (a JSON object with ``attempt_id``): handed to an idle
  shim, the most recently used first, or to a newly forked one;
- ``{"release": PID}``: shim PID reported its attempt's end and the engine
  has settled that attempt, so the shim may be given another. A shim is
  never handed a request before this: a stop the engine meant for its
  previous attempt (a signal to the shim) can only have been sent before.

Each shim reads its requests from a pipe of its own. A fork in a process
with a large heap makes the child copy every page it writes to (Python
writes to every object it touches), which costs far more than the fork on
a small VM; a reused shim has made those copies already. One idle shim is
kept spare, forked right after a request is handed over, so that cost is
off the critical path when none can be reused.

On EOF (the engine exited or crashed) the zygote closes every request pipe
and exits at once (``os._exit``: no interpreter finalization to wait for):
idle shims read EOF and exit, busy ones exit after their attempt (live
restore: they are re-parented and go on). ``SIGCHLD`` is ignored so exited
shims are reaped by the kernel (shims reset it for their own children). A
shim that exits (its attempt could not be reused: see ``shim.py``) closes its
pipe's read end, which the zygote sees as an error on the write end and
forgets it.
"""

from __future__ import annotations

import gc
import json
import os
import select
import signal
import sys

RELEASE = b'{"release":'
"""How a release line starts (the engine writes it in exactly this form)."""


class _Shims:
    """The shims this zygote forked and has not seen exit: each one's request pipe, and which are idle."""

    def __init__(self, reply_fd: int) -> None:
        self.reply_fd = reply_fd
        self.pipes: dict[int, int] = {}  # shim pid -> write end of its request pipe
        self.by_fd: dict[int, int] = {}  # write end -> shim pid
        self.idle: list[int] = []  # pids; the last one is used first (its pages are the warmest)
        self.handed: dict[int, bytes] = {}  # shim pid -> the attempt id of the request it was last given
        self.outbox: list[bytes] = []  # our own messages to the engine that the reply pipe had no room for
        self.poll = select.poll()

    def fork(self) -> None:
        """Fork an idle shim (it waits for its first request on its own pipe)."""
        from edgeorch.engine.executors.local.shim import serve

        rfd, wfd = os.pipe()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                os.close(wfd)
                for fd in self.pipes.values():  # other shims' pipes: held here, they would never see EOF
                    os.close(fd)
                os.close(0)
                os.setsid()
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                code = serve(rfd, self.reply_fd)
            finally:
                os._exit(code)
        os.close(rfd)
        self.pipes[pid] = wfd
        self.by_fd[wfd] = pid
        self.poll.register(wfd, 0)  # no events asked: POLLERR alone says its reader (the shim) is gone
        self.idle.append(pid)

    def gone(self, pid: int) -> None:
        """Shim ``pid`` exited. If it was given a request and not released since, tell the engine: when the
        shim died before answering it (killed between the hand-over and its claim), the request is
        the engine's to settle, as one the zygote took with it (``LocalExecutor._settle_orphans``)."""
        attempt_id = self.handed.pop(pid, None)
        if attempt_id is not None:
            self.outbox.append(b'{"attempt_id": ' + attempt_id + b', "shim_gone": true}\n')
            self.flush()
        self.forget(pid)

    def flush(self) -> None:
        """Write what waits in :attr:`outbox` while the reply pipe has room, never blocking: the engine may
        be blocked writing to us meanwhile (then it reads its replies only after we read its requests).
        What is left waits for the pipe to be writable (the main loop polls for it)."""
        while self.outbox:
            if not select.select([], [self.reply_fd], [], 0)[1]:
                break  # writable means room for at least one page: a message this short fits whole
            try:
                os.write(self.reply_fd, self.outbox[0])
            except OSError:
                self.outbox.clear()  # the engine is gone: nobody to tell
                break
            self.outbox.pop(0)
        if self.outbox:
            self.poll.register(self.reply_fd, select.POLLOUT)
        else:
            try:
                self.poll.unregister(self.reply_fd)  # polled only while something waits (else its errors spin)
            except KeyError:
                pass

    def forget(self, pid: int) -> None:
        wfd = self.pipes.pop(pid, None)
        if wfd is None:
            return
        del self.by_fd[wfd]
        self.poll.unregister(wfd)
        os.close(wfd)
        if pid in self.idle:
            self.idle.remove(pid)

    def hand_over(self, line: bytes) -> None:
        """Give a request to an idle shim (forking one if none is); then keep one spare."""
        while True:
            if not self.idle:
                self.fork()
            pid = self.idle.pop()
            if _write_all(self.pipes[pid], line):
                self.handed[pid] = _attempt_id(line)
                break
            self.forget(pid)  # it died while idle: the next one
        if not self.idle:
            self.fork()  # paid now, while the shim just handed a request starts its task

    def release(self, line: bytes) -> None:
        try:
            pid = json.loads(line)["release"]
        except (ValueError, KeyError, TypeError):
            return
        if pid in self.pipes and pid not in self.idle:
            self.handed.pop(pid, None)
            self.idle.append(pid)
        # else: a shim of another generation of the zygote, or one that exited meanwhile

    def close(self) -> None:
        for pid in list(self.pipes):
            self.forget(pid)


def _attempt_id(line: bytes) -> bytes:
    """The ``attempt_id`` of a spawn request, as its JSON text (requests start with it: ``SpawnRequest.to_json``)."""
    head = b'{"attempt_id": '
    if line.startswith(head):
        end = line.find(b",", len(head))
        if end > 0 and line[len(head):end].isdigit():
            return line[len(head):end]
    try:
        return json.dumps(json.loads(line).get("attempt_id")).encode()
    except (ValueError, AttributeError):
        return b"null"  # not a request the engine wrote; its shim answers for it


def _write_all(fd: int, data: bytes) -> bool:
    """Write all of ``data`` (a request longer than the pipe's atomic size is read by its one shim anyway);
    False when the shim is gone."""
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view):]
    except OSError:
        return False
    return True


def _batch_scheduling() -> tuple[int, os.sched_param] | None:
    """Run this zygote, and the shims it forks, as ``SCHED_BATCH``; returns the policy tasks start with again.

    A woken ``SCHED_BATCH`` process does not preempt the one running on its CPU: a request or a release line
    no longer takes the engine's loop off the CPU in the middle of its write (3-4 % of a short task's wall
    time on two cores). Only from ``SCHED_OTHER`` (the usual policy; nice values are kept), which tasks are
    spawned with again (``posix_spawn``'s scheduler); another policy (an operator's choice) is left as it is
    and inherited by the tasks. None when nothing was changed.
    """
    try:
        if os.sched_getscheduler(0) != os.SCHED_OTHER:
            return None
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    except OSError:
        return None
    return (os.SCHED_OTHER, os.sched_param(0))


def main() -> int:
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    # Writes to the pipe of an engine that died must fail with EPIPE, never kill us or a
    # shim (shims inherit this; tasks get the default back through restore_signals).
    # Terminal signals do not reach us: the engine starts us in a session of our own.
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    from edgeorch.engine.executors.local import shim  # imported before forking: shims inherit it

    shim.TASK_SCHEDULER = _batch_scheduling()

    # Every object that exists now is left out of the cyclic GC from here on: a collection in a shim
    # would otherwise touch (copy on write) the zygote's pages it shares. Nothing here imports
    # ``threading`` either (its at-fork handler alone costs a fork ~0.8 ms of CPU on a small VM).
    gc.freeze()

    shims = _Shims(sys.stdout.fileno())
    shims.poll.register(0, select.POLLIN)
    shims.fork()
    buf = b""
    while True:
        for fd, _ in shims.poll.poll():
            if fd == shims.reply_fd:
                shims.flush()
                continue
            if fd != 0:
                pid = shims.by_fd.get(fd)
                if pid is not None:
                    shims.gone(pid)
                continue
            chunk = os.read(0, 1 << 16)
            if not chunk:
                shims.close()  # idle shims read EOF and exit; busy ones after their attempt
                return 0
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for line in lines:
                if line.startswith(RELEASE):
                    shims.release(line)
                elif line.strip():
                    shims.hand_over(line + b"\n")


if __name__ == "__main__":
    # The engine waits for this exit (its close reaps us). Nothing here needs the interpreter's
    # finalization: every write went out with os.write, no exit handler is registered, the shims
    # hold their own pipes; it cost ~8 ms per engine stop on a small VM. An exception still ends
    # the usual way (traceback, exit 1).
    code = main()
    sys.stderr.flush()
    os._exit(code)
