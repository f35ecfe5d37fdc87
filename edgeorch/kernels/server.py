"""The kernel server: one user's kernels kept warm for their next commands (see :mod:`.keepwarm`).

``python -m edgeorch.kernels.server FOLDER KEY CACHE_DIR IDLE_S``, started
in the background by a kernel command (:func:`.keepwarm.start_server`):

1. takes the lock ``kernels-KEY.lock`` (another holder: it exits at once);
2. warms the numba cache first when it is not (:mod:`.warmup`'s own process,
   compiling to the side at idle priority, as the daemon does), then loads
   every kernel from it (:func:`.warmup.compile_everything`), so that its
   first request pays nothing;
3. listens on ``kernels-KEY.sock`` (bound under a temporary name, listening,
   then renamed into place: a command never meets a socket nobody serves);
4. serves one request at a time: the requester's uid and the request's key
   must be its own (the command computed the key from the code on disk:
   after an upgrade or an edit it asks another server, and this one idles
   out); it enters the requester's working folder and umask and runs the
   task kind as the command would (:func:`.kinds.run_task`);
5. exits after ``IDLE_S`` seconds without a request, at SIGTERM or SIGINT
   (their default action: a handler of Python's would wait for a read
   stuck in C), within :data:`CHECK_S` seconds of its socket being removed
   or replaced (another server took the name, or :func:`.keepwarm.make_room`),
   and at once when the command of the request it is doing goes away
   (killed, interrupted, timed out: :func:`_end_at_hangup`).

A request whose kernels raise anything but an edgeorch error is answered
``internal`` (the traceback goes to the log): the command then does the work
itself and meets the same fault where it always did.
"""

from __future__ import annotations

import fcntl
import os
import select
import signal
import socket
import sys
import threading
import time
import traceback
import warnings
from pathlib import Path
from typing import Any, Callable

from ..errors import EdgeorchError
from . import keepwarm

CHECK_S = 2.0
"""Seconds between the server's looks at its socket path and its idle time."""


def _lock(folder: Path, key: str) -> int | None:
    fd = os.open(keepwarm.lock_path(folder, key), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def _warm(cache_dir: Path) -> None:
    """Warm the cache if needed (the daemon's way: a process at idle priority, to the side), then load it all."""
    import subprocess

    from .warmup import compile_everything, is_warm, staging_dir

    if not is_warm(cache_dir):
        subprocess.run([sys.executable, "-m", "edgeorch.kernels.warmup", str(cache_dir),
                        "--staging", str(staging_dir(cache_dir, os.getpid())), "--idle", "--parent", str(os.getpid())],
                       stdin=subprocess.DEVNULL, check=False)
    os.environ["NUMBA_CACHE_DIR"] = str(cache_dir)
    failures = compile_everything()
    for failure in failures:
        print(f"a kernel did not load (it compiles when first used): {failure}", file=sys.stderr, flush=True)


def _listen(path: Path) -> socket.socket:
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        tmp.unlink()
    except FileNotFoundError:
        pass
    srv.bind(str(tmp))
    srv.listen(16)
    os.rename(tmp, path)
    return srv


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _exit_now() -> None:
    print("the command went away during its request: exiting (the next command starts a fresh server)", flush=True)
    os._exit(0)


def _end_at_hangup(conn: socket.socket, done: threading.Event, on_hangup: Callable[[], None]) -> None:
    """Call ``on_hangup`` (the server's end) if ``conn``'s command goes away before ``done`` is set.

    The request's work is nobody's then, and it may never end: a path the command checked as a regular file
    can be a FIFO or a device by the time the server opens it (another user may rename into a shared
    folder). A server stuck so would hold its lock, and make every later command wait for it before doing
    its work itself. A thread, because the request runs in C most of the time (pyarrow, numba) where no
    signal handler of Python's runs.
    """
    poller = select.poll()
    poller.register(conn.fileno(), select.POLLRDHUP | select.POLLHUP | select.POLLERR)

    def watch() -> None:
        while not done.is_set():
            if poller.poll(CHECK_S * 250) and not done.is_set():  # milliseconds: a quarter of CHECK_S
                on_hangup()
                return

    threading.Thread(target=watch, name="hangup", daemon=True).start()


def _serve_one(conn: socket.socket, key: str, on_hangup: Callable[[], None] = _exit_now) -> str:
    """Answer one connection; returns what happened (the log's line). ``on_hangup``: what ends the server
    when the command goes away during its request (:func:`_end_at_hangup`; a test passes its own)."""
    conn.settimeout(keepwarm.START_TIMEOUT_S)
    if keepwarm.peer_uid(conn) != os.getuid():
        return "refused another user"
    try:
        req = keepwarm.read_line(conn.makefile("rb"))
    except (OSError, ValueError):
        return "no request"
    if req.get("key") != key:
        keepwarm.send_line(conn, {"refused": True})
        return "refused another key"
    kind, opts = req.get("kind"), req.get("opts")
    try:
        os.chdir(req["cwd"])  # the command's relative paths, as it would read and write them
        os.umask(int(req["umask"]) & 0o777)
        ok = isinstance(kind, str) and isinstance(opts, dict) and keepwarm.served(kind, opts)
    except (OSError, KeyError, TypeError, ValueError):
        ok = False
    if not ok:
        os.chdir("/")
        keepwarm.send_line(conn, {"refused": True})
        return f"not served: {kind!r}"
    keepwarm.send_line(conn, {"started": True})
    conn.settimeout(None)
    done = threading.Event()
    _end_at_hangup(conn, done, on_hangup)
    with warnings.catch_warnings(record=True) as caught:  # shown by the command, under its own filters
        warnings.simplefilter("always")
        try:
            from .kinds import run_task

            answer: dict[str, Any] = {"doc": run_task(kind, opts)}  # type: ignore[arg-type]
            what = f"served {kind}"
        except EdgeorchError as exc:
            answer, what = keepwarm.error_answer(exc), f"served {kind}: exit {exc.exit_code}"
        except OSError as exc:  # a file the command reports itself (its path, its exit code)
            answer, what = {"internal": True}, f"{kind}: {exc}; left to the command"
        except Exception:  # noqa: BLE001 - the command redoes it and meets the fault itself
            traceback.print_exc()
            answer, what = {"internal": True}, f"{kind}: internal error, left to the command"
        finally:
            done.set()
            os.chdir("/")
    answer["warnings"] = keepwarm.caught_warnings(caught)
    try:
        keepwarm.send_line(conn, answer)
    except (OSError, ValueError):
        what += " (not sent: the command went away or the document is not JSON)"
    return what


def serve(folder: Path, key: str, cache_dir: str, idle_s: float) -> int:
    lock = _lock(folder, key)
    if lock is None:
        return 0  # another server for this key is starting or serving
    path = keepwarm.socket_path(folder, key)
    started = time.monotonic()
    _warm(Path(cache_dir))
    srv = _listen(path)
    mine = _identity(path)
    print(f"serving {path} (warm in {time.monotonic() - started:.1f}s, pid {os.getpid()})", flush=True)
    last = time.monotonic()
    try:
        while True:
            srv.settimeout(CHECK_S)
            try:
                conn, _ = srv.accept()
            except TimeoutError:
                if _identity(path) != mine or time.monotonic() - last > idle_s:
                    return 0
                continue
            t0 = time.monotonic()
            with conn:
                try:
                    os.utime(path, follow_symlinks=False)  # most recently used (keepwarm.make_room)
                except (OSError, NotImplementedError):
                    pass
                try:
                    what = _serve_one(conn, key)
                except OSError as exc:
                    what = f"connection lost: {exc}"
            last = time.monotonic()
            print(f"{what} ({last - t0:.3f}s)", flush=True)
            if _identity(path) != mine:
                return 0
    finally:
        srv.close()
        if _identity(path) == mine:
            try:
                path.unlink()
            except OSError:
                pass
        os.close(lock)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 4:
        print("usage: python -m edgeorch.kernels.server FOLDER KEY CACHE_DIR IDLE_S", file=sys.stderr)
        return 2
    folder, key, cache_dir, idle = Path(args[0]), args[1], args[2], float(args[3])

    # The default actions: the process ends even inside a read in C. Its socket may be left behind: a
    # command meets a refused connection there and starts another server (keepwarm.make_room removes it).
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    return serve(folder, key, cache_dir, idle)


if __name__ == "__main__":
    sys.exit(main())
