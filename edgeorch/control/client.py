"""The CLI's side of the control socket: a small synchronous client.

One :class:`Client` keeps one connection for its :meth:`Client.call`\\ s
(opened on first use) and opens a dedicated one per :meth:`Client.stream`,
because stopping a stream means closing its connection.
"""

from __future__ import annotations

import itertools
import json
import os
import select
import socket
from collections.abc import Generator
from pathlib import Path
from types import TracebackType
from typing import Any

from ..errors import EdgeorchError
from . import protocol as P

DEFAULT_TIMEOUT = 30.0
MAX_RESPONSE_BYTES = 256 * 1024 * 1024
"""A response line longer than this is treated as a broken daemon."""


class DaemonNotRunning(EdgeorchError):
    """No daemon answers on the socket (missing, or nobody listening)."""

    code = "daemon_not_running"
    exit_code = 69  # EX_UNAVAILABLE

    def __init__(self, socket_path: str | os.PathLike[str], reason: str = "") -> None:
        self.socket_path = str(socket_path)
        text = f"no edgeorch daemon is running at {self.socket_path}"
        if reason:
            text += f" ({reason})"
        super().__init__(text, hint="start it with `edgeorch daemon` or `systemctl start edgeorch`")


def _cannot_reach(path: Path, why: str) -> P.PermissionDenied:
    return P.PermissionDenied(
        f"cannot reach the control socket {path}: {why}",
        hint="ask to be added to the socket's group (control.group in the daemon's config), "
        "or run the command as the daemon's user",
    )


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
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            sock.close()
            raise DaemonNotRunning(path, exc.strerror or "") from None
        except PermissionError:
            sock.close()
            raise _cannot_reach(path, "permission denied") from None
        except TimeoutError:
            sock.close()
            raise P.Timeout(f"the daemon at {path} does not accept connections (timed out)") from None
        except OSError as exc:
            sock.close()
            raise DaemonNotRunning(path, exc.strerror or str(exc)) from None
        self.sock = sock
        self.file = sock.makefile("rb")

    def send(self, doc: dict[str, Any]) -> None:
        try:
            self.sock.sendall(P.encode(doc))
        except TimeoutError:
            raise P.Timeout(f"the daemon at {self.path} is not reading (timed out)") from None
        except OSError as exc:
            raise P.BadResponse(f"connection to the daemon at {self.path} lost: {exc.strerror or exc}") from None

    def receive(self) -> dict[str, Any]:
        try:
            line = self.file.readline(MAX_RESPONSE_BYTES + 1)
        except TimeoutError:
            raise P.Timeout(f"no answer from the daemon at {self.path} (timed out)") from None
        except OSError as exc:
            raise P.BadResponse(f"connection to the daemon at {self.path} lost: {exc.strerror or exc}") from None
        if not line:
            raise P.BadResponse(f"the daemon at {self.path} closed the connection without answering")
        if len(line) > MAX_RESPONSE_BYTES:
            raise P.BadResponse(f"response from the daemon at {self.path} is too large")
        try:
            doc = json.loads(line)
        except ValueError:
            raise P.BadResponse("the daemon sent a line that is not JSON", value=line[:200].decode("utf-8", "replace")) from None
        if not isinstance(doc, dict) or not isinstance(doc.get("ok"), bool):
            raise P.BadResponse("the daemon sent something that is not a response", value=str(doc)[:200])
        return doc

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

    def call(self, op: str, args: dict[str, Any] | None = None) -> Any:
        """Run a plain op and return its ``result`` (a dict for every built-in op)."""
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
        if not doc["ok"]:
            if doc.get("id") != rid:
                self.close()  # a connection-level error (busy, timeout): the daemon hangs up
            raise P.error_from_dict(doc.get("error"))
        if doc.get("id") != rid:
            self.close()
            raise P.BadResponse(f"answer for request {doc.get('id')!r}, expected {rid}")
        return doc.get("result")

    def stream(self, op: str, args: dict[str, Any] | None = None, *, timeout: float | None = None) -> Generator[Any, None, None]:
        """Run a streaming op; yields each ``result`` until the stream ends.

        ``timeout`` bounds the wait for each item (None, the default: wait
        forever, as ``logs --follow`` needs). Closing the iterator (``break``,
        garbage collection) closes the connection, which stops the stream in
        the daemon. An error response raises as in :meth:`call`.
        """
        conn = _Line(self.socket_path, self.timeout)
        try:
            conn.send(P.request(op, args, 1))
            conn.settimeout(timeout)
            while True:
                doc = conn.receive()
                if not doc["ok"]:
                    raise P.error_from_dict(doc.get("error"))
                if doc.get("id") != 1:
                    raise P.BadResponse(f"answer for request {doc.get('id')!r}, expected 1")
                if doc.get("end"):
                    return
                yield doc.get("result")
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
