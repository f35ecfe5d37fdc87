"""sd_notify, spoken directly (no libsystemd).

The protocol: one ``AF_UNIX`` datagram to the socket named by
``$NOTIFY_SOCKET``, holding newline-separated ``KEY=VALUE`` assignments
(``READY=1``, ``STATUS=...``, ``WATCHDOG=1``, ``STOPPING=1``, ``RELOADING=1``).
A name starting with ``@`` is a Linux abstract socket (``@`` stands for the
leading NUL byte). See sd_notify(3).

Everything here is a no-op when not started by systemd (``NOTIFY_SOCKET``
unset), so the daemon calls it unconditionally.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable, Mapping

log = logging.getLogger("edgeorch.control")


def _address(name: str) -> str | bytes | None:
    if name.startswith("@"):
        return b"\0" + name[1:].encode()
    if name.startswith("/"):
        return name
    return None  # vsock:… and other transports are not supported


def format_state(state: str | Mapping[str, object]) -> bytes:
    """The datagram for ``state``: a string as is, a mapping as ``KEY=VALUE`` lines.

    Newlines inside a value would start a new assignment, so they are turned
    into spaces (STATUS= texts are the usual victims).
    """
    if isinstance(state, str):
        return state.encode()
    lines = []
    for key, value in state.items():
        text = str(value).replace("\n", " ")
        lines.append(f"{key}={text}")
    return "\n".join(lines).encode()


def notify(state: str | Mapping[str, object]) -> bool:
    """Send ``state`` to the service manager.

    ``state`` is ``"READY=1"`` (several lines allowed) or a mapping such as
    ``{"READY": 1, "STATUS": "3 running"}``. Returns True when the datagram
    was sent, False when ``$NOTIFY_SOCKET`` is unset, names an unsupported
    transport, or the send failed (logged; a notification is never worth
    crashing the daemon for). Never blocks for long: the datagram is small
    and the socket is non-blocking.
    """
    name = os.environ.get("NOTIFY_SOCKET")
    if not name:
        return False
    address = _address(name)
    if address is None:
        log.warning("NOTIFY_SOCKET=%r: unsupported address, notifications disabled", name)
        return False
    data = format_state(state)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.setblocking(False)
            sock.sendto(data, address)
    except OSError as exc:
        log.warning("sd_notify to %s failed: %s", name, exc)
        return False
    return True


def watchdog_interval() -> float | None:
    """The watchdog interval in seconds, or None when no watchdog is asked for.

    From ``$WATCHDOG_USEC``; None also when ``$WATCHDOG_PID`` is set and is
    not this process (the variables were inherited, not meant for us) or the
    values are malformed. Send ``WATCHDOG=1`` at about half this interval, and
    only when the event loop really advances.
    """
    usec = os.environ.get("WATCHDOG_USEC")
    if not usec:
        return None
    pid = os.environ.get("WATCHDOG_PID")
    if pid:
        try:
            if int(pid) != os.getpid():
                return None
        except ValueError:
            return None
    try:
        value = int(usec)
    except ValueError:
        return None
    return value / 1_000_000 if value > 0 else None


async def watchdog_loop(interval: float | None = None, *, healthy: Callable[[], bool] | None = None) -> None:
    """Send ``WATCHDOG=1`` every ``interval / 2`` seconds until cancelled.

    Run it as a task on the daemon's event loop: it can only send while the
    loop advances, so a hung loop stops the pings and systemd restarts the
    service. ``healthy`` (optional) is asked before each ping; a False answer
    skips that ping (say, the scheduler has not ticked for too long).
    ``interval`` defaults to :func:`watchdog_interval`; returns at once when
    there is none.
    """
    period = watchdog_interval() if interval is None else interval
    if not period:
        return
    while True:
        if healthy is None or healthy():
            notify("WATCHDOG=1")
        await asyncio.sleep(period / 2)
