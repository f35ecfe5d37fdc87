"""The control plane: the Unix-socket protocol, its server and client,
peer-credential authorisation, sd_notify and the state-dir lock.

See docs/protocol.md for the wire format. Wiring, in the daemon::

    lock = acquire_state_lock(config.state_dir)          # before touching state
    server = ControlServer(config.socket_path, config.control, on_denied=record_refusal)
    server.register("status", status, access="read", help="...")
    server.register("trigger", trigger, access="act")
    server.register("events", events, access="read", streaming=True)
    ...recover...  (notify: edgeorch.control.notify.notify; the name is its module's)
    await server.start()
    notify({"READY": 1, "STATUS": "0 running"})
    watchdog = asyncio.create_task(watchdog_loop())
    ...on SIGHUP: server.set_policy(AccessPolicy.from_config(new.control))
    ...on stop: notify("STOPPING=1"); await server.close(); lock.release()
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazyexports import lazy_exports

# Loaded on first use (PEP 562): the CLI's blocking client must not pay for asyncio, the server or the
# lock just by importing this package (issue 11: a command's start-up).
_EXPORTS: dict[str, str] = {
    "AsyncClient": "aclient", "AccessPolicy": "auth", "Peer": "auth", "Client": "client",
    "DaemonNotRunning": "client", "watchdog_interval": "notify", "watchdog_loop": "notify",
    "PROTOCOL_VERSION": "protocol", "PermissionDenied": "protocol", "ControlServer": "server",
    "StateLock": "statelock", "acquire_state_lock": "statelock",
}

if TYPE_CHECKING:  # pragma: no cover
    from .aclient import AsyncClient
    from .auth import AccessPolicy, Peer
    from .client import Client, DaemonNotRunning
    from .notify import watchdog_interval, watchdog_loop
    from .protocol import PROTOCOL_VERSION, PermissionDenied
    from .server import ControlServer
    from .statelock import StateLock, acquire_state_lock


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

__all__ = [
    "PROTOCOL_VERSION",
    "AccessPolicy",
    "AsyncClient",
    "Client",
    "ControlServer",
    "DaemonNotRunning",
    "PermissionDenied",
    "Peer",
    "StateLock",
    "acquire_state_lock",
    "watchdog_interval",
    "watchdog_loop",
]
