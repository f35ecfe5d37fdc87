"""Helpers: a ControlServer on a real Unix socket, served by an event loop in
a thread, with a few test ops, and helpers to talk raw bytes to it."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from edgeorch.config import ControlConfig
from edgeorch.control.auth import AccessPolicy, Peer
from edgeorch.control.refusals import Suppressed
from edgeorch.control.server import ControlServer
from edgeorch.errors import NotFoundError


class ServerThread:
    """Runs a ControlServer on its own loop in a daemon thread.

    ``denied`` collects ``(peer, op)`` of refused requests (``op`` None: a
    refused connection), ``suppressed`` the counts of refusals kept out of
    ``denied``, ``hooks`` both in the order they came; ``stream_closed``
    is set when the ``forever`` stream's generator is finalised. ``clock``:
    the server's (None: its default).
    """

    def __init__(self, path: Path, control: ControlConfig, policy: AccessPolicy | None = None,
                 clock: Callable[[], float] | None = None) -> None:
        self.path = path
        self.control = control
        self.policy = policy
        self.clock = clock
        self.denied: list[tuple[Peer, str | None]] = []
        self.suppressed: list[Suppressed] = []
        self.hooks: list[tuple[str, object]] = []
        self.suppressed_event = threading.Event()
        self.denied_event = threading.Event()
        self.stream_closed = threading.Event()
        self.big_calls = 0  # answers the ``big`` op (1 MB each) has made
        self.loop = asyncio.new_event_loop()
        self.server: ControlServer | None = None
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="control-server")
        self._thread.start()

    def run(self, coro: Any, timeout: float = 10) -> Any:
        """Run ``coro`` on the server's loop and return its result."""
        fut: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return fut.result(timeout)

    def start(self) -> ControlServer:
        async def build() -> ControlServer:
            def on_denied(peer: Peer, op: str | None) -> None:
                self.denied.append((peer, op))
                self.hooks.append(("denied", op))
                self.denied_event.set()

            def on_suppressed(summary: Suppressed) -> None:
                self.suppressed.append(summary)
                self.hooks.append(("suppressed", summary.count))
                self.suppressed_event.set()

            extra = {} if self.clock is None else {"clock": self.clock}
            server = ControlServer(self.path, self.control, policy=self.policy, on_denied=on_denied,
                                   on_suppressed=on_suppressed, **extra)
            register_test_ops(server, self)
            await server.start()
            return server

        self.server = self.run(build())
        return self.server

    def stop(self) -> None:
        if self.server is not None:
            self.run(self.server.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


def register_test_ops(server: ControlServer, owner: ServerThread) -> None:
    async def echo(args: dict[str, Any], peer: Peer) -> dict[str, Any]:
        return {"args": args, "actor": peer.actor()}

    async def missing(args: dict[str, Any], peer: Peer) -> dict[str, Any]:
        raise NotFoundError(f"no run {args.get('run')}", field="run")

    async def crash(args: dict[str, Any], peer: Peer) -> dict[str, Any]:
        raise RuntimeError("handler bug")

    async def clients(args: dict[str, Any], peer: Peer) -> dict[str, Any]:
        return {"clients": server.clients}

    async def count(args: dict[str, Any], peer: Peer) -> AsyncIterator[dict[str, Any]]:
        for i in range(int(args.get("n", 3))):
            yield {"i": i}

    async def forever(args: dict[str, Any], peer: Peer) -> AsyncIterator[dict[str, Any]]:
        try:
            yield {"started": True}
            await asyncio.Event().wait()
            yield {"never": True}
        finally:
            owner.stream_closed.set()

    async def big(args: dict[str, Any], peer: Peer) -> dict[str, Any]:
        owner.big_calls += 1
        return {"blob": "x" * 1_000_000}

    server.register("big", big, access="read")
    server.register("echo", echo, access="read")
    server.register("act", echo, access="act")
    server.register("missing", missing, access="read")
    server.register("crash", crash, access="read")
    server.register("clients", clients, access="read")
    server.register("count", count, access="read", streaming=True)
    server.register("forever", forever, access="read", streaming=True)


class Raw:
    """A raw connection: send bytes, read JSON lines, see EOF."""

    def __init__(self, path: Path, timeout: float = 5.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(str(path))
        self.file = self.sock.makefile("rb")

    def send(self, data: bytes | dict[str, Any]) -> None:
        if isinstance(data, dict):
            data = json.dumps(data).encode() + b"\n"
        self.sock.sendall(data)

    def recv(self) -> dict[str, Any]:
        line = self.file.readline()
        assert line, "server closed the connection"
        doc: dict[str, Any] = json.loads(line)
        return doc

    def at_eof(self) -> bool:
        """True when the server closed the connection (blocks until it does or timeout)."""
        try:
            return self.file.readline() == b""
        except ConnectionResetError:
            return True

    def close(self) -> None:
        self.file.close()
        self.sock.close()

    def __enter__(self) -> Raw:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def req(op: str, rid: int | str = 1, args: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"v": 1, "id": rid, "op": op}
    if args is not None:
        doc["args"] = args
    doc.update(extra)
    return doc


STRANGER = textwrap.dedent("""\
    import json, select, socket, sys, time
    path, count, line = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode() + b"\\n"
    held, out, rest = [], [], {}
    for i in range(count):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect(path)
        held.append(s)
        try:
            s.sendall(line)
        except OSError:
            pass  # refused and closed already: its answer is still there to read
        buf = b""
        try:
            while b"\\n" not in buf and (chunk := s.recv(65536)):
                buf += chunk
        except OSError:
            pass
        reply = json.loads(buf.split(b"\\n", 1)[0]) if b"\\n" in buf else None
        out.append({"reply": reply, "closed": None})
        if reply is None or not reply["ok"]:
            rest[s.fileno()] = i
    # After an error, did the daemon close? One deadline for all (it bounds the wait where one stays open).
    socks = {s.fileno(): s for s in held}
    deadline = time.monotonic() + 2
    while rest and (left := deadline - time.monotonic()) > 0:
        for fd in select.select(list(rest), [], [], left)[0]:
            try:
                data = socks[fd].recv(65536)
            except ConnectionResetError:
                data = b""
            if not data:
                out[rest.pop(fd)]["closed"] = True
    for i in rest.values():
        out[i]["closed"] = False
    print(json.dumps(out), flush=True)
    sys.stdin.read()  # hold every connection until told to go
    """)


class Stranger:
    """A real process running as ``nobody`` (``setpriv``, so the kernel reports its uid) that opens ``count``
    connections one after another, sends ``line`` on each and reads the first reply and, after an error,
    whether the daemon closed the connection; it holds every connection until :meth:`close`.

    ``replies``: per connection ``{"reply": <doc or None>, "closed": <bool, None after an ok>}``.
    """

    def __init__(self, path: Path, count: int, line: dict[str, Any] | None = None) -> None:
        doc = json.dumps(line or req("ping", 1))
        self.proc = subprocess.Popen(
            ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", sys.executable, "-c", STRANGER,
             str(path), str(count), doc],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd="/")
        assert self.proc.stdout is not None
        out = self.proc.stdout.readline()
        if not out:  # its stderr read before close() closes the pipe (that said only "read of closed file")
            said = self.proc.stderr.read().decode() if self.proc.stderr else ""
            self.close()
            raise AssertionError(f"the stranger failed: {said}")
        self.replies: list[dict[str, Any]] = json.loads(out)

    def close(self) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            self.proc.stdin.close()
        self.proc.wait(20)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()

    def __enter__(self) -> Stranger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def strangers(path: Path, count: int, line: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """:class:`Stranger`'s replies, its connections closed again at once."""
    with Stranger(path, count, line) as s:
        return s.replies
