"""The control plane: the Unix-socket protocol, its server and client,
peer-credential authorisation, sd_notify and the state-dir lock.

See docs/protocol.md for the wire format.
"""

from .auth import AccessPolicy, Peer
from .client import Client, DaemonNotRunning
from .notify import notify, watchdog_interval, watchdog_loop
from .protocol import PROTOCOL_VERSION, PermissionDenied
from .server import ControlServer
from .statelock import StateLock, acquire_state_lock

__all__ = [
    "PROTOCOL_VERSION",
    "AccessPolicy",
    "Client",
    "ControlServer",
    "DaemonNotRunning",
    "PermissionDenied",
    "Peer",
    "StateLock",
    "acquire_state_lock",
    "notify",
    "watchdog_interval",
    "watchdog_loop",
]
