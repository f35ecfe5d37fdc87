"""sd_notify over real AF_UNIX datagram sockets (path and abstract)."""

from __future__ import annotations

import asyncio
import os
import socket
import tempfile
from collections.abc import Iterator

import pytest

from edgeorch.control.notify import format_state, notify, watchdog_interval, watchdog_loop


@pytest.fixture
def path_socket(monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    d = tempfile.mkdtemp(prefix="eon-")
    path = os.path.join(d, "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(5)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    yield sock
    sock.close()
    os.unlink(path)
    os.rmdir(d)


@pytest.fixture
def abstract_socket(monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    name = f"edgeorch-test-{os.getpid()}-{id(monkeypatch)}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(5)
    monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
    yield sock
    sock.close()


def test_ready_reaches_a_path_socket(path_socket: socket.socket) -> None:
    assert notify("READY=1") is True
    assert path_socket.recv(4096) == b"READY=1"


def test_mapping_reaches_an_abstract_socket(abstract_socket: socket.socket) -> None:
    assert notify({"READY": 1, "STATUS": "2 running, 5 queued"}) is True
    assert abstract_socket.recv(4096) == b"READY=1\nSTATUS=2 running, 5 queued"


def test_each_notification_is_one_datagram(path_socket: socket.socket) -> None:
    for msg in ("WATCHDOG=1", "STOPPING=1"):
        notify(msg)
    assert [path_socket.recv(4096) for _ in range(2)] == [b"WATCHDOG=1", b"STOPPING=1"]


def test_newlines_in_values_cannot_inject_assignments() -> None:
    assert format_state({"STATUS": "a\nREADY=1"}) == b"STATUS=a READY=1"


def test_without_notify_socket_it_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert notify("READY=1") is False


@pytest.mark.parametrize("value", ["vsock:2:1234", "relative/path"])
def test_unsupported_address_is_a_no_op(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", value)
    assert notify("READY=1") is False


def test_nobody_listening_returns_false(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", "/nonexistent/notify")
    assert notify("READY=1") is False


@pytest.mark.parametrize(
    ("usec", "pid", "expected"),
    [
        (None, None, None),
        ("30000000", None, 30.0),
        ("30000000", "self", 30.0),
        ("30000000", "other", None),
        ("0", None, None),
        ("abc", None, None),
    ],
)
def test_watchdog_interval(monkeypatch: pytest.MonkeyPatch, usec: str | None, pid: str | None, expected: float | None) -> None:
    for key, value in (("WATCHDOG_USEC", usec), ("WATCHDOG_PID", pid)):
        if value is None:
            monkeypatch.delenv(key, raising=False)
        else:
            monkeypatch.setenv(key, {"self": str(os.getpid()), "other": str(os.getpid() + 1)}.get(value, value))
    assert watchdog_interval() == expected


def test_watchdog_loop_pings_while_the_loop_runs(path_socket: socket.socket) -> None:
    async def main() -> None:
        task = asyncio.create_task(watchdog_loop(0.02))
        got = [await asyncio.to_thread(path_socket.recv, 64) for _ in range(3)]
        task.cancel()
        assert got == [b"WATCHDOG=1"] * 3

    asyncio.run(main())


def test_watchdog_loop_skips_pings_when_unhealthy(path_socket: socket.socket) -> None:
    answers = iter([False, True])

    async def main() -> None:
        task = asyncio.create_task(watchdog_loop(0.02, healthy=lambda: next(answers, True)))
        assert await asyncio.to_thread(path_socket.recv, 64) == b"WATCHDOG=1"
        task.cancel()

    asyncio.run(main())
    assert next(answers, "done") == "done"  # the first (unhealthy) answer was consumed


def test_watchdog_loop_returns_without_a_watchdog(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    asyncio.run(asyncio.wait_for(watchdog_loop(), 5))
