"""Who is on the other end of a connection, and what they may do.

Identity comes from the kernel (``SO_PEERCRED``, taken when the client
connected), never from the request. The policy has two levels:

- ``read``: ask for state (status, runs, logs, events, ping ...);
- ``act``: change it (trigger, cancel, retry, pause, reload ...); implies read.

Root and the daemon's own uid may do everything. ``control.operators`` may
act, ``control.readers`` may read; entries are user names (``alice``) or group
names prefixed with ``@`` (``@ml``). Group membership is the user database's
(``grp``/``pwd``: primary group and supplementary groups), plus the effective
gid the client connected with. Everyone else has no access: the server
answers its connection with one ``permission_denied`` line and closes it.
"""

from __future__ import annotations

import grp
import logging
import os
import pwd
import socket
import struct
import time
from collections.abc import Callable, Iterable
from typing import Literal

from ..config import ControlConfig
from ..errors import ConfigError
from ..records import frozen

log = logging.getLogger("edgeorch.control")

Access = Literal["read", "act"]
ACCESS_LEVELS: tuple[Access, ...] = ("read", "act")

_UCRED = struct.Struct("3i")  # struct ucred {pid_t pid; uid_t uid; gid_t gid;}


@frozen
class Peer:
    """The process at the other end of a connection, as the kernel saw it on connect.

    ``user`` is the login name of ``uid``, or the uid in decimal when the user
    database has no entry for it. Actions record ``uid`` and ``user`` as
    their actor.
    """

    pid: int
    uid: int
    gid: int
    user: str

    def actor(self) -> dict[str, object]:
        """What to record as the actor of an action: ``{"uid": ..., "user": ...}``."""
        return {"uid": self.uid, "user": self.user}


def user_name(uid: int) -> str:
    """Login name of ``uid``, or ``str(uid)`` when it has none."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def peer_of(sock: socket.socket) -> Peer:
    """Credentials of the peer of a connected ``AF_UNIX`` socket (Linux ``SO_PEERCRED``).

    Raises ``OSError`` if the socket is not a connected Unix socket.
    """
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    pid, uid, gid = _UCRED.unpack(raw)
    return Peer(pid=pid, uid=uid, gid=gid, user=user_name(uid))


def _groups_from_db(peer: Peer) -> frozenset[int]:
    gids = {peer.gid}
    try:
        entry = pwd.getpwuid(peer.uid)
    except KeyError:
        return frozenset(gids)
    gids.add(entry.pw_gid)
    try:
        gids.update(os.getgrouplist(entry.pw_name, entry.pw_gid))
    except OSError:  # NSS trouble: fall back to what we already know
        log.warning("cannot list the groups of user %s", entry.pw_name)
    return frozenset(gids)


def _gid_of(name: str) -> int | None:
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        return None


def _uid_of(name: str) -> int | None:
    try:
        return pwd.getpwnam(name).pw_uid
    except KeyError:
        return None


GROUPS_TTL_S = 30.0
"""How long a peer's group membership, once read from the user database, is trusted before it is read again."""


class AccessPolicy:
    """Decides whether a peer may read or act.

    Names in the config are resolved once, when the policy is built (so build
    a new one on reload); a peer's groups are looked up once per (uid, gid)
    and kept :data:`GROUPS_TTL_S` (a user taken out of a group with ``gpasswd
    -d`` kept its access until the next reload). Lookups and the clock are
    injectable for tests.
    """

    def __init__(
        self,
        *,
        readers: Iterable[str] = (),
        operators: Iterable[str] = (),
        daemon_uid: int | None = None,
        groups_of: Callable[[Peer], frozenset[int]] = _groups_from_db,
        gid_of: Callable[[str], int | None] = _gid_of,
        uid_of: Callable[[str], int | None] = _uid_of,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.daemon_uid = os.getuid() if daemon_uid is None else daemon_uid
        self._groups_of = groups_of
        self._clock = clock
        self.unknown: list[str] = []
        """Config entries naming no existing user or group (likely typos)."""
        self._read = self._resolve(readers, gid_of, uid_of)
        self._act = self._resolve(operators, gid_of, uid_of)
        self._cache: dict[tuple[int, int], tuple[frozenset[int], float]] = {}  # (uid, gid) -> groups, when read

    @classmethod
    def from_config(cls, control: ControlConfig, *, daemon_uid: int | None = None,
                    file: str | None = None) -> AccessPolicy:
        """Policy for ``control.readers``/``control.operators``; logs each unknown name (:func:`unknown_names`:
        the config file, the field, the value)."""
        policy = cls(readers=control.readers, operators=control.operators, daemon_uid=daemon_uid)
        for problem in unknown_names(control, file):
            log.warning("%s", problem.one_line())
        return policy

    def _resolve(
        self,
        names: Iterable[str],
        gid_of: Callable[[str], int | None],
        uid_of: Callable[[str], int | None],
    ) -> tuple[frozenset[int], frozenset[int]]:
        uids: set[int] = set()
        gids: set[int] = set()
        for name in names:
            if name.startswith("@"):
                gid = gid_of(name[1:])
                if gid is None:
                    self.unknown.append(name)
                else:
                    gids.add(gid)
            else:
                uid = uid_of(name)
                if uid is None:
                    self.unknown.append(name)
                else:
                    uids.add(uid)
        return frozenset(uids), frozenset(gids)

    def _matches(self, peer: Peer, entry: tuple[frozenset[int], frozenset[int]]) -> bool:
        uids, gids = entry
        if peer.uid in uids:
            return True
        if not gids:
            return False
        key, now = (peer.uid, peer.gid), self._clock()
        cached = self._cache.get(key)
        if cached is None or now - cached[1] >= GROUPS_TTL_S:
            cached = self._cache[key] = (self._groups_of(peer), now)
        return not gids.isdisjoint(cached[0])

    def is_owner(self, peer: Peer) -> bool:
        """Whether ``peer`` is root or the daemon's own uid: always ``act``, and the only peers that may use
        the client slots the server keeps back (:func:`edgeorch.control.server.owner_slots`)."""
        return peer.uid == 0 or peer.uid == self.daemon_uid

    def level(self, peer: Peer) -> Access | None:
        """The highest access ``peer`` has: ``"act"``, ``"read"`` or None (no access: the server refuses the
        connection itself, see :mod:`edgeorch.control.server`)."""
        if self.is_owner(peer) or self._matches(peer, self._act):
            return "act"
        if self._matches(peer, self._read):
            return "read"
        return None

    def allows(self, peer: Peer, access: Access) -> bool:
        """Whether ``peer`` may use an op registered with ``access``."""
        level = self.level(peer)
        return level == "act" or (level == "read" and access == "read")


def unknown_names(control: ControlConfig, file: str | None = None) -> list[ConfigError]:
    """A warning (a :class:`ConfigError` not raised) for each name of ``control.readers``/``operators`` that no user
    or group of this machine has: a typo there gives nobody access, said only as a bare log line before. ``edgeorch
    validate`` lists them; the daemon logs them at start and reload."""
    out = []
    for key in ("readers", "operators"):
        for i, name in enumerate(getattr(control, key)):
            known = _gid_of(name[1:]) if name.startswith("@") else _uid_of(name)
            if known is None:
                out.append(ConfigError("names no user or group of this machine; ignored", file=file,
                                       field=f"control.{key}[{i}]", value=name,
                                       expected="a user name, or @group (a group's members)"))
    return out


def group_problem(control: ControlConfig, file: str | None = None) -> ConfigError | None:
    """The error when ``control.group`` (the socket's group) names no group of this machine: a start refuses it
    (before the state folder is touched), and ``edgeorch validate`` says it; None when it is unset or exists."""
    if not control.group or _gid_of(control.group) is not None:
        return None
    return ConfigError("no such group", file=file, field="control.group", value=control.group,
                       expected="a group of this machine (getent group NAME), owning the control socket")
