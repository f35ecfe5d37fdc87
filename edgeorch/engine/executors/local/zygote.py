"""The zygote: a small single-threaded process that forks shims cheaply.

Started once by the engine (``python -m edgeorch.engine.executors.local.zygote``) with a
request pipe on stdin and a reply pipe on stdout. Each request line is a JSON
spawn request; the zygote forks a shim for it and goes back to reading. The
shim answers on the reply pipe itself. Forking this small process costs far
less than starting a Python interpreter per task, and forking the daemon
itself would be unsafe (it has threads).

On EOF (the engine exited or crashed) the zygote exits; running shims are
re-parented and go on (live restore). ``SIGCHLD`` is ignored so exited shims
are reaped by the kernel (shims reset it for their own children).
"""

from __future__ import annotations

import gc
import json
import os
import signal
import sys


def main() -> int:
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    # Writes to the pipe of an engine that died must fail with EPIPE, never kill us or a
    # shim (shims inherit this; tasks get the default back through restore_signals).
    # Terminal signals do not reach us: the engine starts us in a session of our own.
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    from edgeorch.engine.executors.local.shim import run_shim  # noqa: F401  (imported before forking: shims inherit it)

    # Every object that exists now is left out of the cyclic GC from here on: a collection in a shim
    # would otherwise touch (copy on write) the zygote's pages it shares. Nothing here imports
    # ``threading`` either (its at-fork handler alone costs a fork ~0.8 ms of CPU on a small VM).
    gc.freeze()

    reply_fd = sys.stdout.fileno()
    stdin = sys.stdin.buffer
    spare = _fork_spare(reply_fd)
    while True:
        line = stdin.readline()
        if not line:
            os.close(spare)  # the spare reads EOF and exits
            return 0
        # Hand the request to the waiting spare, then fork the next spare while it works:
        # the fork's cost is paid off the critical path of the task just requested.
        try:
            os.write(spare, line)
        except OSError:
            pass
        os.close(spare)
        spare = _fork_spare(reply_fd)


def _fork_spare(reply_fd: int) -> int:
    """Fork a shim that waits for one request on a pipe; returns the pipe's write end."""
    from edgeorch.engine.executors.local.shim import run_shim

    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid:
        os.close(rfd)
        return wfd
    code = 1
    req: dict = {}
    try:
        os.close(wfd)
        os.close(0)
        os.setsid()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        data = b""
        while chunk := os.read(rfd, 1 << 16):
            data += chunk
        os.close(rfd)
        if not data.strip():
            os._exit(0)  # the zygote is shutting down; we were never used
        req = json.loads(data)
        code = run_shim(req, reply_fd)
    except BaseException as exc:  # a shim must never unwind into the zygote's code
        try:
            os.write(reply_fd, (json.dumps({"attempt_id": req.get("attempt_id"), "error": f"shim failed: {exc!r}"}) + "\n").encode())
        except OSError:
            pass
    finally:
        os._exit(code)
    return -1  # pragma: no cover


if __name__ == "__main__":
    sys.exit(main())
