"""Helpers: a ControlServer on a real Unix socket, served by an event loop in
a thread, with a few test ops, and helpers to talk raw bytes to it."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import AsyncIterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from edgeorch.config import ControlConfig
from edgeorch.control.auth import AccessPolicy, Peer
from edgeorch.control.server import ControlServer
from edgeorch.errors import NotFoundError


class ServerThread:
    """Runs a ControlServer on its own loop in a daemon thread.

    ``denied`` collects ``(peer, op)`` of refused requests; ``stream_closed``
    is set when the ``forever`` stream's generator is finalised.
    """

    def __init__(self, path: Path, control: ControlConfig, policy: AccessPolicy | None = None) -> None:
        self.path = path
        self.control = control
        self.policy = policy
        self.denied: list[tuple[Peer, str]] = []
        self.denied_event = threading.Event()
        self.stream_closed = threading.Event()
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
            def on_denied(peer: Peer, op: str) -> None:
                self.denied.append((peer, op))
                self.denied_event.set()

            server = ControlServer(self.path, self.control, policy=self.policy, on_denied=on_denied)
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
