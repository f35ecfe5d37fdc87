"""A kernel process kept warm between ``edgeorch profile | drift | fairness`` commands: the client side.

A kernel command pays ~0.6 s before its first result on a warm numba cache:
importing numba, numpy, pyarrow and scipy, and numba's target set-up when it
loads the first compiled function. That is the floor of any process that
runs the kernels (``benchmarks/bench_floor.py``). So, after a command has run
its kernels itself, it leaves a server behind (:mod:`edgeorch.kernels.server`)
that has all of that done and serves the next commands of the same user for
``keep_warm`` (``[kernels] keep_warm``, default 10 minutes; ``0`` turns it
off; ``$EDGEORCH_KEEP_WARM`` overrides the config, for scripts and test
suites). What a user sees is the same document, output files, message and
exit code either way: only where the work is done changes.

**Which commands are served**: the three kernel commands on files (no
differentially private release: it writes a privacy ledger, ``Kind.served``; no reference
``baseline:`` or ``model:``: it reads a state file), whose files add up to at
most :data:`SERVED_MAX_BYTES` (a long job shows its progress line, which only
its own process can draw; the import is a small part of it anyway).

**Trust.** The server runs as the user who ran the command and serves only
that user: its socket lies in a folder of theirs that nobody else may enter
(``$XDG_RUNTIME_DIR/edgeorch-kernels``, else ``<tmp>/edgeorch-kernels-<uid>``, mode 0700,
checked), and each side checks the other's uid with ``SO_PEERCRED``. A
server is keyed (:func:`server_key`) by everything that could make its
answer differ from the command's own: the Python, the edgeorch code (every
module's size and mtime), the numba cache folder, the ``NUMBA_*`` and
``EDGEORCH_*`` environment, the uid. A server with another key is another
server: after an upgrade or an edit the next command asks (and starts) a new
one, and the old one idles out or is retired.

**Faults.** Anything but a served answer (no server, a refused connection, a
server that does not start the request within :data:`START_TIMEOUT_S`, a
broken or refusing server, an unexpected exception inside it) makes the command
run the kernels itself, as it always did: an exception of edgeorch's own
(bad data, a missing file, an unknown column) is the one answer passed back
as it is (:func:`~edgeorch.control.protocol.error_from_dict`, with its exit
code). At most :data:`MAX_SERVERS` servers per user: starting another
retires the least recently used (its socket removed; it exits within
seconds), unless that one served in the last minute (then none starts). A
lock file held for a server's life keeps two commands from starting the
same server twice.

Light: imports nothing of numpy or numba (the served command never does).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import socket
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ..errors import EdgeorchError

ENV = "EDGEORCH_KEEP_WARM"
"""Overrides ``[kernels] keep_warm`` (a duration; ``0`` is off)."""

DEFAULT_KEEP_WARM_S = 600.0
SERVED_MAX_BYTES = 64 << 20
"""Files larger than this in all are worked on by the command itself (its progress line shows)."""
PATH_OPTIONS = ("input", "reference", "current", "reference_profile")
STORE_REFERENCES = ("baseline:", "model:")
START_TIMEOUT_S = 2.0
"""How long a command waits for a server to start its request (it serves one at a time) before doing it itself."""
MAX_SERVERS = 2
BUSY_S = 60.0
"""A server used this recently is not retired to make room for another (:func:`make_room`)."""
OLD_S = 86400.0
MAX_LINE = 64 << 20
PACKAGE = Path(__file__).resolve().parents[1]


# -- where, and which ---------------------------------------------------------------------------------------------

def server_folder(environ: dict[str, str] | None = None) -> Path | None:
    """This user's private folder for the servers' sockets, made when missing; None when it is not private.

    ``$XDG_RUNTIME_DIR/edgeorch-kernels`` when that variable names a folder of
    this uid's, else ``<tempdir>/edgeorch-kernels-<uid>`` (not the daemon's
    ``$XDG_RUNTIME_DIR/edgeorch``, whose mode is the socket's). Private means: a folder (not a link),
    owned by this uid, with no access for group or others; anything else
    (another user made it first in a shared /tmp) turns the servers off.
    """
    env = os.environ if environ is None else environ
    base = env.get("XDG_RUNTIME_DIR", "")
    folder = (Path(base) / "edgeorch-kernels" if base and _owned_folder(base)  # not another user's (sudo keeps it)
              else Path(tempfile.gettempdir()) / f"edgeorch-kernels-{os.getuid()}")
    from ..trust import private_folder

    return folder if private_folder(folder) else None


def _owned_folder(path: str) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid()


def server_key(cache_dir: str, environ: dict[str, str] | None = None) -> str:
    """The hex key of the server whose answers are this process's own (see the module's doc)."""
    env = os.environ if environ is None else environ
    h = hashlib.sha256()
    for part in (sys.executable, sys.version, str(PACKAGE), str(os.getuid()), cache_dir):
        h.update(part.encode("utf-8", "surrogateescape") + b"\0")
    for name, value in sorted(env.items()):
        if name.startswith(("NUMBA_", "EDGEORCH_")) and name != ENV:
            h.update(f"{name}={value}".encode("utf-8", "surrogateescape") + b"\0")
    for root, dirs, files in os.walk(PACKAGE):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if name.endswith(".py"):
                try:
                    st = os.stat(os.path.join(root, name))
                except OSError:
                    continue
                h.update(f"{root}/{name}:{st.st_size}:{st.st_mtime_ns}".encode("utf-8", "surrogateescape") + b"\0")
    return h.hexdigest()[:24]


def socket_path(folder: Path, key: str) -> Path:
    return folder / f"kernels-{key}.sock"


def lock_path(folder: Path, key: str) -> Path:
    return folder / f"kernels-{key}.lock"


def served(kind: str, opts: dict[str, Any]) -> bool:
    """Whether a server may do this request (see the module's doc): a kind that may be served (``Kind.served``),
    no store reference, small regular files.

    A path that is neither a regular file nor a folder (a FIFO, a device such as ``/dev/zero``, through a
    link or not) is left to the command: such a read may never end, or never stop growing, and a server
    is shared by the user's later commands. (A folder is refused by the kernels' reader at once.)
    """
    from .kinds import get_kind

    try:
        if not get_kind(kind).served:
            return False
    except EdgeorchError:  # not a kind at all
        return False
    total = 0
    for key in PATH_OPTIONS:
        value = opts.get(key)
        if not isinstance(value, str):
            continue
        if value.startswith(STORE_REFERENCES):
            return False
        try:
            st = os.stat(value)
        except (OSError, ValueError):
            continue  # the server says what is missing, as the command would
        if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
            return False
        total += st.st_size
    return total <= SERVED_MAX_BYTES


def keep_warm_seconds(configured: float | None, environ: dict[str, str] | None = None) -> float:
    """``$EDGEORCH_KEEP_WARM`` when set and valid, else ``configured``, else the default (10 minutes).

    0 inside a task of edgeorch's (``$EDGEORCH_RUN_ID`` set): a kernel command there runs its kernels
    itself, on the task's leased cores, under its timeout and its memory bound, and leaves nothing behind.
    """
    from ..units import parse_duration

    env = os.environ if environ is None else environ
    if env.get("EDGEORCH_RUN_ID"):
        return 0.0
    raw = env.get(ENV)
    if raw is not None:
        try:
            return parse_duration(raw.strip())
        except ValueError:  # ignored rather than failing a kernel command, but said (it was silent)
            import sys

            from ..textui import printable

            print(f"edgeorch: warning: {ENV}={printable(raw)!s} is not a duration (e.g. 10m; 0 for no kernel "
                  "server); ignored", file=sys.stderr)
    return DEFAULT_KEEP_WARM_S if configured is None else configured


# -- the wire: one JSON line each way, then the answer --------------------------------------------------------------

def peer_uid(sock: socket.socket) -> int:
    """The uid of the process at the other end of a connected Unix socket (the control socket's rule)."""
    from ..control.auth import peer_of

    return peer_of(sock).uid


def send_line(sock: socket.socket, doc: dict[str, Any]) -> None:
    """``doc`` as one line, written as the control protocol writes its messages (ValueError on non-JSON content)."""
    from ..control.protocol import encode

    sock.sendall(encode(doc))


def read_line(stream: Any) -> dict[str, Any]:
    """One JSON object line from ``stream`` (a socket's ``makefile("rb")``); ValueError for anything else."""
    line = stream.readline(MAX_LINE + 1)
    if not line or len(line) > MAX_LINE:
        raise ValueError("no line")
    doc = json.loads(line)
    if not isinstance(doc, dict):
        raise ValueError("not an object")
    return doc


def ask(kind: str, opts: dict[str, Any], *, folder: Path, key: str) -> dict[str, Any] | None:
    """The result document from the server for ``key``, or None when it did not serve this request.

    Raises the edgeorch error the kernels raised there (exit code kept).
    """
    path = socket_path(folder, key)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(START_TIMEOUT_S)
        try:
            sock.connect(str(path))
            if peer_uid(sock) != os.getuid():
                return None
            umask = os.umask(0o022)
            os.umask(umask)
            send_line(sock, {"key": key, "kind": kind, "opts": opts, "cwd": os.getcwd(), "umask": umask})
            stream = sock.makefile("rb")
            if read_line(stream).get("started") is not True:
                return None
            sock.settimeout(None)  # working: the kernels take what they take (Ctrl-C still interrupts)
            answer = read_line(stream)
        except (OSError, ValueError):
            return None
    finally:
        sock.close()
    if isinstance(answer.get("doc"), dict):
        _warn(answer.get("warnings"))
        return answer["doc"]
    err = answer.get("error")
    if isinstance(err, dict) and isinstance(answer.get("exit_code"), int):
        from ..control.protocol import error_from_dict

        _warn(answer.get("warnings"))

        exc = error_from_dict(err)
        exc.exit_code = answer["exit_code"]
        raise exc
    return None


def caught_warnings(caught: list[Any]) -> list[dict[str, Any]]:
    """The warnings the kernels raised in a server (``warnings.catch_warnings(record=True)``), to send."""
    return [{"category": w.category.__name__, "message": str(w.message), "filename": str(w.filename),
             "lineno": int(w.lineno or 0)} for w in caught]


def _warn(items: Any) -> None:
    """Raise again, in the command, the warnings the kernels raised in the server: the command's own warning
    filters decide what shows (``-W``, ``PYTHONWARNINGS``), as when the kernels ran in it. A category that is
    not a builtin warning is shown as a ``UserWarning``."""
    import builtins
    import warnings

    registry: dict[Any, Any] = {}  # a fresh process's: each warning once per place, as the default filter does
    for w in items if isinstance(items, list) else []:
        try:
            category = getattr(builtins, str(w["category"]), UserWarning)
            if not (isinstance(category, type) and issubclass(category, Warning)):
                category = UserWarning
            warnings.warn_explicit(str(w["message"]), category, str(w["filename"]), int(w["lineno"]),
                                   registry=registry)
        except (KeyError, TypeError, ValueError):
            continue


def error_answer(exc: EdgeorchError) -> dict[str, Any]:
    """What a server sends for an edgeorch error: the protocol's error body and the exit code."""
    return {"error": exc.to_dict(), "exit_code": exc.exit_code}


# -- starting one -------------------------------------------------------------------------------------------------

def held(lock: Path) -> bool:
    """Whether a process holds ``lock`` (a server starting or serving under that key)."""
    try:
        fd = os.open(lock, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except OSError:
        return True
    finally:
        os.close(fd)


def make_room(folder: Path, key: str = "", *, keep: int = MAX_SERVERS - 1, now: float | None = None) -> bool:
    """Before the server for ``key`` starts: retire all but the ``keep`` most recently used other servers (their
    sockets removed: each exits once it sees it); False, retiring none, when one of those to retire served in
    the last :data:`BUSY_S` seconds. ``key``'s own socket (left by a server that was killed) is not counted:
    the new server takes its place.

    So commands alternating between more caches than :data:`MAX_SERVERS` never start and retire a server at
    every command (each start loads every kernel: seconds of CPU): the later ones do their kernels themselves.
    """
    own = socket_path(folder, key).name if key else None
    socks = []
    for entry in os.scandir(folder):
        if entry.name.startswith("kernels-") and entry.name.endswith(".sock") and entry.name != own:
            try:
                socks.append((entry.stat(follow_symlinks=False).st_mtime, entry.path))
            except OSError:
                continue
    retire = sorted(socks, reverse=True)[keep:]
    now = time.time() if now is None else now
    if any(used > now - BUSY_S for used, _ in retire):
        return False
    for _, path in retire:
        try:
            os.unlink(path)
        except OSError:
            pass
    _forget_old(folder, now)
    return True


def _forget_old(folder: Path, now: float) -> None:
    """Remove the lock and log of servers gone for a day (each edgeorch upgrade or edit makes a new key)."""
    for lock in folder.glob("kernels-*.lock"):
        try:
            if lock.stat().st_mtime > now - OLD_S or held(lock):
                continue
            lock.unlink()
            lock.with_suffix(".log").unlink(missing_ok=True)
        except OSError:
            continue


def start_server(folder: Path, key: str, cache_dir: str, idle_s: float) -> bool:
    """Start the server for ``key`` in the background unless one holds its lock; True when one was started.

    Detached (a session of its own, no terminal, stdin/stdout closed); its
    messages go to ``kernels-<key>.log`` in ``folder``.
    """
    if held(lock_path(folder, key)) or not make_room(folder, key):
        return False
    try:
        log = open(folder / f"kernels-{key}.log", "wb")
    except OSError:
        return False
    try:
        subprocess.Popen([sys.executable, "-m", "edgeorch.kernels.server", str(folder), key, cache_dir, repr(idle_s)],
                         stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, close_fds=True,
                         cwd="/")
    except OSError:
        return False
    finally:
        log.close()
    return True
