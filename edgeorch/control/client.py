"""The low-level synchronous client of the control socket: ops in, results out.

One :class:`Client` keeps one connection for its :meth:`Client.call`\\ s
(opened on first use) and opens a dedicated one per :meth:`Client.stream`,
because stopping a stream means closing its connection. It is the transport
of :class:`edgeorch.Client` (``edgeorch/client/``), the typed client that
scripts and the CLI's run commands use; :mod:`edgeorch.control.aclient` is
its asyncio twin. Both read responses with the same pure functions
(:func:`~edgeorch.control.protocol.decode_response`,
:func:`~edgeorch.control.protocol.answer_of`) and map a failed connect the
same way (:func:`connect_error`).
"""

from __future__ import annotations

import errno
import itertools
import os
import select
import socket
import time
from collections.abc import Generator
from pathlib import Path
from types import TracebackType
from typing import Any

from ..errors import EdgeorchError
from . import protocol as P
from .listening import socket_address

DEFAULT_TIMEOUT = 30.0
MAX_RESPONSE_BYTES = P.MAX_RESPONSE_BYTES


class DaemonNotRunning(EdgeorchError):
    """No daemon answers on the socket (missing, or nobody listening)."""

    code = "daemon_not_running"
    exit_code = 69  # EX_UNAVAILABLE

    def __init__(self, socket_path: str | os.PathLike[str], reason: str = "", *, config: str | None = None) -> None:
        """``config``: the config file the caller read the socket's path from ("" for the embedded defaults; None:
        not said). A daemon of another config (a per-user install's, beside a checkout's ``./config.toml``)
        listens elsewhere: the message names the config, so that a user sees which one was read."""
        self.socket_path = str(socket_path)
        text = f"no edgeorch daemon is running at {self.socket_path}"
        if reason:
            text += f" ({reason})"
        if config is not None:
            text += f"; the socket of {config or 'the embedded defaults (no config file found)'}"
        super().__init__(text, hint="start it with `edgeorch daemon`, `systemctl start edgeorch`, or `systemctl --user "
                                    "start edgeorch` for a per-user install; a daemon started with another config "
                                    "listens where that config says: give it with --config or $EDGEORCH_CONFIG")


def _cannot_reach(path: Path, why: str) -> P.PermissionDenied:
    return P.PermissionDenied(
        f"cannot reach the control socket {path}: {why}",
        hint="ask to be added to the socket's group (control.group in the daemon's config), "
        "or run the command as the daemon's user",
    )


def connect_error(path: Path, exc: OSError) -> EdgeorchError:
    """What a failed connect to the socket at ``path`` means to the caller (both clients map it here).

    Nothing there or nobody listening: :class:`DaemonNotRunning` (exit 69);
    not allowed: ``PermissionDenied`` (exit 77); a full backlog that never
    accepts: ``Timeout`` (exit 75), as is a full backlog's ``EAGAIN`` (a daemon
    runs there: saying none does would send its user looking for the wrong fault).
    """
    if isinstance(exc, (FileNotFoundError, ConnectionRefusedError)):
        return DaemonNotRunning(path, exc.strerror or "")
    if isinstance(exc, BlockingIOError) or exc.errno == errno.EAGAIN:
        return P.Timeout(f"the daemon at {path} does not accept connections now: its queue of new connections "
                         "is full (a flood of connections?); try again")
    if isinstance(exc, PermissionError):
        return _cannot_reach(path, "permission denied")
    if isinstance(exc, TimeoutError):
        return P.Timeout(f"the daemon at {path} does not accept connections (timed out)")
    return DaemonNotRunning(path, exc.strerror or str(exc))


def connection_lost(path: Path, exc: OSError) -> EdgeorchError:
    """A connection to the daemon at ``path`` broke while sending or receiving (both clients)."""
    return P.ConnectionClosed(f"connection to the daemon at {path} lost: {exc.strerror or exc}")


def hung_up(path: Path, exc: OSError, goodbye: bytes) -> EdgeorchError:
    """The error for a request the daemon at ``path`` hung up on before it was sent.

    The daemon answers a connection it will not serve (every client slot
    taken: ``busy``) with one error line and closes it, possibly before the
    client has written its request, whose send then fails with EPIPE or
    ECONNRESET. ``goodbye`` is what could still be read from the connection:
    the error it carries is the true answer; an empty, partial or successful
    line means the connection was simply lost. (The asyncio client cannot
    use it: a failed write makes asyncio drop what it had read, so there such
    a refusal reads as a lost connection.)
    """
    try:
        doc = P.decode_response(goodbye, path)
    except EdgeorchError:
        return connection_lost(path, exc)
    if doc["ok"]:
        return connection_lost(path, exc)
    return P.error_from_dict(doc.get("error"))


def item_timeout(timeout: float | None, deadline: float | None) -> float | None:
    """How long to wait for the next item of a stream: ``timeout`` (None: forever), cut to what is left
    before ``deadline`` (a :func:`time.monotonic` value; None: none). Never 0, which would mean "do not wait"."""
    if deadline is None:
        return timeout
    left = max(deadline - time.monotonic(), 0.001)
    return left if timeout is None else min(timeout, left)


def socket_present(path: str | os.PathLike[str]) -> bool:
    """Whether something exists at ``path``; False when it is absent.

    Raises :class:`~edgeorch.control.protocol.PermissionDenied` (exit 77) when
    a folder on the way cannot be searched: whether a daemon runs cannot be
    known then, and saying "no daemon" would be wrong.
    """
    p = Path(path)
    try:
        os.stat(p)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except PermissionError:
        raise _cannot_reach(p, "permission denied on its folder") from None
    return True


def connect_if_running(path: str | os.PathLike[str], timeout: float | None = DEFAULT_TIMEOUT) -> Client | None:
    """A :class:`Client` that answered a ``ping`` at ``path``, or None when no daemon runs there.

    Raises ``PermissionDenied`` when the socket or its folder may not be used
    by this user, and the daemon's other errors (busy, timeout) as they come.
    """
    if not socket_present(path):
        return None
    client = Client(path, timeout=timeout)
    try:
        client.call("ping")
    except DaemonNotRunning:
        client.close()
        return None
    except BaseException:
        client.close()
        raise
    return client


class _Line:
    """A connected socket read line by line."""

    def __init__(self, path: Path, timeout: float | None) -> None:
        self.path = path
        deadline = time.monotonic() + (DEFAULT_TIMEOUT if timeout is None else timeout)
        pause = 0.002
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
            sock.settimeout(timeout)
            try:
                with socket_address(path) as address:
                    sock.connect(address)
                break
            except BlockingIOError as exc:  # the daemon's backlog is full (EAGAIN): it runs; wait for a place
                sock.close()
                if time.monotonic() + pause > deadline:
                    raise connect_error(path, exc) from None
                time.sleep(pause)  # nothing to wait on: the kernel tells no one when the backlog has room
                pause = min(pause * 2, 0.1)
            except OSError as exc:
                sock.close()
                raise connect_error(path, exc) from None
        self.sock = sock
        self.file = sock.makefile("rb")

    def send(self, doc: dict[str, Any]) -> None:
        try:
            self.sock.sendall(P.encode(doc))
        except TimeoutError:
            raise P.Timeout(f"the daemon at {self.path} is not reading (timed out)") from None
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise hung_up(self.path, exc, self._goodbye()) from None
        except OSError as exc:
            raise connection_lost(self.path, exc) from None

    def _goodbye(self) -> bytes:
        """What the daemon wrote before closing (b"" when nothing can be read).

        The peer has closed, so the read ends at once: at its line or at EOF."""
        try:
            return self.file.readline(MAX_RESPONSE_BYTES + 1)
        except OSError:
            return b""

    def receive(self) -> dict[str, Any]:
        try:
            line = self.file.readline(MAX_RESPONSE_BYTES + 1)
        except TimeoutError:
            raise P.Timeout(f"no answer from the daemon at {self.path} (timed out)") from None
        except OSError as exc:
            raise connection_lost(self.path, exc) from None
        return P.decode_response(line, self.path)

    def stale(self) -> bool:
        """True when an idle connection has something to read: the daemon
        closed it (idle timeout, restart) and maybe said why. It must not be
        reused, or the next answer read would be that goodbye."""
        readable, _, _ = select.select([self.sock], [], [], 0)
        return bool(readable)

    def settimeout(self, timeout: float | None) -> None:
        self.sock.settimeout(timeout)

    def close(self) -> None:
        self.file.close()
        self.sock.close()


class Client:
    """Talks to the daemon at ``socket_path``.

    ``timeout`` (seconds, None: wait forever) bounds connecting and each wait
    for an answer of :meth:`call`. Errors: :class:`DaemonNotRunning` when
    nothing listens; the server's errors as their ``EdgeorchError`` class
    (``not_found`` -> ``NotFoundError``, ``permission_denied`` ->
    :class:`~edgeorch.control.protocol.PermissionDenied`, unknown codes ->
    :class:`~edgeorch.control.protocol.RemoteError`) with the server's
    message; ``Timeout`` and ``BadResponse`` for a stuck or broken daemon.
    Not thread-safe: one client per thread.
    """

    def __init__(self, socket_path: str | os.PathLike[str], timeout: float | None = DEFAULT_TIMEOUT) -> None:
        self.socket_path = Path(socket_path)
        self.timeout = timeout
        self._conn: _Line | None = None
        self._ids = itertools.count(1)

    def call(self, op: str, args: dict[str, Any] | None = None, *, unbounded: bool = False) -> Any:
        """Run a plain op and return its ``result`` (a dict for every built-in op).

        ``unbounded``: the answer is waited for as long as the daemon works on it, not :attr:`timeout` (an op whose
        work grows with the history, ``gc.apply`` of months of runs: it answered after 84 s, while the CLI had said
        "timed out" at 30 s, exit 75, and the operator never saw the report). On a connection of its own."""
        if unbounded:
            self.close()
            self._conn = _Line(self.socket_path, None)
            try:
                return self.call(op, args)
            finally:
                self.close()
        conn = self._conn
        if conn is not None and conn.stale():
            self.close()
            conn = None
        if conn is None:
            conn = self._conn = _Line(self.socket_path, self.timeout)
        rid = next(self._ids)
        try:
            conn.send(P.request(op, args, rid))
            doc = conn.receive()
        except EdgeorchError:
            self.close()  # the connection's state is unknown now
            raise
        try:
            _, result = P.answer_of(doc, rid)
        except EdgeorchError:
            if doc.get("id") != rid:
                self.close()  # a connection-level error (busy, timeout) or a stray answer: the daemon hangs up
            raise
        return result

    def stream(self, op: str, args: dict[str, Any] | None = None, *, timeout: float | None = None,
               deadline: float | None = None) -> Generator[Any, None, None]:
        """Run a streaming op; yields each ``result`` until the stream ends.

        ``timeout`` bounds the wait for each item (None, the default: wait
        forever, as ``logs --follow`` needs); ``deadline`` (a
        :func:`time.monotonic` value) bounds the whole stream: no item is
        waited for past it. Either running out raises ``Timeout``. Closing the
        iterator (``break``, garbage collection) closes the connection, which
        stops the stream in the daemon. An error response raises as in :meth:`call`.
        """
        conn = _Line(self.socket_path, self.timeout)
        try:
            conn.send(P.request(op, args, 1))
            while True:
                conn.settimeout(item_timeout(timeout, deadline))
                ended, result = P.answer_of(conn.receive(), 1)
                if ended:
                    return
                yield result
        finally:
            conn.close()

    def close(self) -> None:
        """Close the connection of :meth:`call` (a later call reconnects)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
