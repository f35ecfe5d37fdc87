"""The daemon's side of the control socket: an asyncio Unix stream server.

Each connection is one task. It reads request lines, checks the peer's
access, and runs each request's handler in its own task, so a slow handler
or a long stream never blocks the other requests of the connection, nor
other connections. The server never blocks the event loop on a client: writes
wait for the client to read (back-pressure) under a timeout, and a line
larger than the cap is refused after at most about twice the cap has been
buffered (asyncio's reader pauses the transport there).

When a connection is closed
    - the line cannot be framed or parsed (too large, not JSON, not a request,
      wrong protocol version): an error response, then close, because the
      byte stream can no longer be trusted;
    - the client was silent for ``idle_timeout`` seconds while nothing of its
      was running (idle, or half-open with a partial line): a ``timeout``
      error, then close;
    - the client closed its side (EOF): streams stop at once, plain requests
      already read are still answered, then close;
    - the peer has no access at all (neither root, nor the daemon's uid, nor
      in ``control.readers``/``operators``): a ``permission_denied`` error
      (``id`` null) as soon as it connects, then close; also a connected peer
      whose access a reload took away, at its next request;
    - the server is at its client limit: a ``busy`` error, then close.

Who gets a slot: the peer is known at accept (``SO_PEERCRED``), so a peer
with no access never holds a slot, nor a descriptor past its one refusal: it
cannot lock anybody out however many connections it opens. Of
:attr:`ControlServer.max_clients`, :func:`owner_slots` (at most
:data:`OWNER_SLOTS`) are kept for root and the daemon's own uid, as
PostgreSQL keeps ``superuser_reserved_connections``: readers and operators
share the rest, so even they cannot fill every slot, while the daemon's user
can always run ``edgeorch status``; and one such user holds at most
:func:`per_user_slots` of them (half, at least 2), so a reader who opens
connections in a loop leaves the other readers and operators theirs. The owners are served within the limit,
not past it, because the limit is what keeps the daemon's own descriptors
(below) safe.

Refusals for lack of access are logged and handed to the ``on_denied`` hook
(the daemon's audit record) at most :data:`~edgeorch.control.refusals.AUDITED_PER_WINDOW`
times per uid a window; the rest are counted, and each count reaches the
``on_suppressed`` hook once (:mod:`edgeorch.control.refusals`).

Descriptors: at start the server raises the soft ``RLIMIT_NOFILE`` to the
hard limit and serves at most ``min(control.max_clients, (soft - reserve) //
2)`` clients, ``reserve`` being a quarter of the limit (at least 64): each
client may hold a socket and an open log (a log stream opens its file only to read a chunk, never across a
send, and one user other than the owners holds at most :func:`per_user_slots` streams), and the reserve keeps the daemon's
own work (claims of dropped files, logs, the state file) from ever meeting
``EMFILE`` because of idle clients. Excess clients are accepted, told
``busy`` and closed.

Socket activation: when systemd passes a listening socket (``LISTEN_PID`` is
this process, ``LISTEN_FDS`` >= 1, ``edgeorch.socket``), the server serves
the first one instead of binding, provided it is a Unix stream socket on the
configured path; it never removes a socket it did not bind.

Handler errors never close anything: an :class:`EdgeorchError` becomes an
error response with its code (after the ``on_refused`` hook has seen it: the
daemon records refused requests in the audit log); any other exception
becomes ``internal``, is logged with its traceback, and everyone keeps being served.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import errno
import grp
import inspect
import logging
import os
import socket
import stat
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

from .. import __version__
from ..config import ControlConfig
from ..errors import ConfigError, EdgeorchError, StateError, UsageError
from ..records import frozen
from . import protocol as P
from .auth import ACCESS_LEVELS, Access, AccessPolicy, Peer, peer_of
from .listening import LISTENING, activated_here, connect_errno, socket_address
from .refusals import RefusalLimiter, Suppressed

log = logging.getLogger("edgeorch.control")

SD_LISTEN_FDS_START = 3

"""The first descriptor systemd passes (sd_listen_fds(3))."""
MIN_RESERVED_FDS = 64
FDS_PER_CLIENT = 2
"""A connection's socket plus the file a stream (``logs``) may hold open."""
OWNER_SLOTS = 8
"""The most client slots kept for root and the daemon's uid (:func:`owner_slots`)."""
SHORT_LINE_BYTES = 64 * 1024
"""A connection reads its lines with this limit (or ``control.max_line_bytes``, when smaller): a longer line is read
on under one of its user's :data:`LONG_LINES_PER_USER` permits (:meth:`ControlServer.long_line`)."""
LONG_LINES_PER_USER = 2
"""Lines longer than :data:`SHORT_LINE_BYTES` one user other than the owners may have half read at once. Without
the bound a reader's 400 connections, each holding a partial line of up to ``max_line_bytes``, held ~500 MB of the
daemon's memory; a connection waiting for a permit holds at most twice :data:`SHORT_LINE_BYTES` (asyncio stops
reading its socket there)."""
FLUSH_MIN_DELAY_S = 1.0
"""The shortest wait of the timer that hands ended windows' refusal counts to ``on_suppressed``."""


def raise_nofile_limit() -> int:
    """Raise the soft ``RLIMIT_NOFILE`` to the hard limit; returns the soft limit now in force."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:  # a sandbox may refuse; serve within what we have
            log.warning("cannot raise the descriptor limit from %d to %d: %s", soft, target, exc)
    return soft


def client_limit(configured: int, nofile: int) -> int:
    """How many clients may be connected at once with ``nofile`` descriptors (see module docstring)."""
    reserve = max(MIN_RESERVED_FDS, nofile // 4)
    return max(1, min(configured, (nofile - reserve) // FDS_PER_CLIENT))


def per_user_slots(shared: int) -> int:
    """How many of the ``shared`` slots (those not kept for the owners) one other user may hold: half, at least 2
    (a person runs a follower, a ``top`` and a command at once), never more than ``shared``."""
    return min(shared, max(2, shared // 2))


def owner_slots(max_clients: int) -> int:
    """Of ``max_clients`` slots, how many only root and the daemon's uid may use: :data:`OWNER_SLOTS`, but
    never more than half (``max_clients = 1`` keeps none: that one slot is everybody's)."""
    return min(OWNER_SLOTS, max_clients // 2)


def inherited_socket(path: Path) -> socket.socket | None:
    """The listening socket systemd passed for ``path`` (socket activation), or None when none was passed.

    Clears ``LISTEN_PID``/``LISTEN_FDS``/``LISTEN_FDNAMES`` so children
    (shims, tasks) never believe they were passed it. Raises
    :class:`StateError` when the passed socket is not a Unix stream socket
    listening on ``path`` (the CLI would look elsewhere).
    """
    ours, count = activated_here(), os.environ.get("LISTEN_FDS", "")
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(name, None)
    if not (ours and count.isdigit() and int(count) >= 1):
        return None
    fd = SD_LISTEN_FDS_START
    try:
        sock = socket.socket(fileno=fd)
    except OSError as exc:
        raise StateError(f"systemd passed descriptor {fd}, which is not a socket: {exc.strerror or exc}") from None
    os.set_inheritable(fd, False)
    bound = sock.getsockname() if sock.family == socket.AF_UNIX else None
    if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM or not isinstance(bound, str):
        sock.detach()
        raise StateError("the socket systemd passed is not a Unix stream socket on a path",
                         hint="edgeorch.socket must use ListenStream=<path>")
    if os.path.realpath(bound) != os.path.realpath(path):
        sock.detach()
        raise StateError("the socket systemd passed is not the configured control socket",
                         value=bound, expected=str(path),
                         hint="make ListenStream= in edgeorch.socket and [control] socket name the same path")
    return sock

Handler = Callable[[dict[str, Any], Peer], Awaitable[Any]]
"""``async def h(args, peer) -> dict``: the result of a plain op."""
StreamHandler = Callable[[dict[str, Any], Peer], AsyncIterator[Any]]
"""``async def h(args, peer): yield item ...``: the items of a streaming op."""
DeniedHook = Callable[[Peer, "str | None"], "Awaitable[None] | None"]
"""Called with the peer and the op of a request refused for lack of access, or None for a connection refused
because its peer has no access at all (sync or async); at most ``AUDITED_PER_WINDOW`` times per uid a window."""
SuppressedHook = Callable[[Suppressed], "Awaitable[None] | None"]
"""Called once with the count of a uid's refusals that ``on_denied`` did not see in one window (sync or async)."""
RefusedHook = Callable[[Peer, str, str, dict[str, Any], EdgeorchError], "Awaitable[None] | None"]
"""Called with the peer, the op, its access, its args and the error of every request its handler refused
(an :class:`EdgeorchError`: bad arguments, not found, conflict...), before the error is answered (sync or async)."""


@frozen
class Operation:
    """A registered op; ``args``: the argument names it takes (None: not declared, any are passed on)."""

    name: str
    handler: Callable[..., Any]
    access: Access
    streaming: bool
    help: str
    args: frozenset[str] | None = None

    def describe(self) -> dict[str, Any]:
        doc = {"op": self.name, "access": self.access, "streaming": self.streaming, "help": self.help}
        if self.args is not None:
            doc["args"] = sorted(self.args)
        return doc

    def check_args(self, args: dict[str, Any]) -> None:
        """Raise :class:`UsageError` naming the first unknown key of ``args`` (sorted), with the keys the op takes
        and the closest of them; nothing when the op declared no list (``args`` None).

        Called before the handler runs (nothing has happened yet): a misspelled key was ignored, so a ``param``
        meant as ``params`` queued a run with the default params, and a ``sate`` filter listed every run.
        """
        if self.args is None:
            return
        unknown = sorted(set(args) - self.args)
        if not unknown:
            return
        from ..tomlcheck import suggest  # the did-you-mean of the pipeline and config files' unknown keys

        key = unknown[0]
        close = suggest(key, sorted(self.args))
        raise UsageError("unknown argument", field=f"args.{key}",
                         expected=f"one of {', '.join(sorted(self.args))}" if self.args
                         else f"no arguments (op {self.name!r} takes none)",
                         hint=f"did you mean {close!r}?" if close else "op 'ops' lists each op's arguments")


class ControlServer:
    """Serves registered ops on a Unix socket.

    Life cycle: build, :meth:`register` the ops, ``await start()`` (the
    socket accepts connections when it returns), ``await close()``. Built-in
    ops: ``ping``, ``version`` and ``ops`` (all ``read``). ``on_denied``,
    ``on_suppressed`` and ``on_refused`` are the hooks of refusals (the daemon
    records them); ``clock`` (seconds) times the windows of their rate limit.

    Must be used from one event loop; handlers run on it.
    """

    def __init__(
        self,
        socket_path: str | os.PathLike[str],
        control: ControlConfig | None = None,
        *,
        policy: AccessPolicy | None = None,
        on_denied: DeniedHook | None = None,
        on_refused: RefusedHook | None = None,
        on_suppressed: SuppressedHook | None = None,
        clock: Callable[[], float] = time.time,
        version: str = __version__,
        on_failure: Callable[[BaseException], EdgeorchError | None] | None = None,
    ) -> None:
        self.path = Path(socket_path)
        self.on_failure = on_failure
        """Asked about an op's unexpected exception: an error to answer with instead of "internal error" (the daemon
        says a corrupt state file so, and stops), or None."""
        self.control = control or ControlConfig()
        self.policy = policy or AccessPolicy.from_config(self.control)
        self.on_denied = on_denied
        self.on_refused = on_refused
        self.on_suppressed = on_suppressed
        self.refusals = RefusalLimiter(clock=clock)
        """Which refusals reach ``on_denied`` (the rule: :mod:`edgeorch.control.refusals`); ``clock`` is its time."""
        self._flush_timer: asyncio.TimerHandle | None = None
        self._flusher: asyncio.Task[None] | None = None
        self.version = version
        self.started_at: float | None = None
        self._ops: dict[str, Operation] = {}
        self._listener: socket.socket | None = None
        self._acceptor: asyncio.Task[None] | None = None
        self._conns: set[asyncio.Task[None]] = set()
        self._live: dict[asyncio.Task[Any], _Connection] = {}  # each open connection's task -> the connection
        self._shared: set[asyncio.Task[None]] = set()  # connections of peers other than root and the daemon's uid
        self._per_uid: dict[int, int] = {}  # of those, how many each uid holds (per_user_slots)
        self._streams_per_uid: dict[int, int] = {}  # streams (logs, events) open per uid other than the owners'
        # Per uid other than the owners': its long-line permits, and how many connections hold or wait (long_line).
        self._long_lines: dict[int, tuple[asyncio.Semaphore, int]] = {}
        self._ident: tuple[int, int] | None = None
        self.max_clients = self.control.max_clients
        """Clients served at once; lowered at start to fit the descriptor limit."""
        self.activated = False
        """True when serving a socket systemd passed (socket activation)."""
        self.register("ping", self._ping, access="read", help="Liveness check: {} -> {pong: true, time}.", args=())
        self.register(
            "version", self._version, access="read", help="Versions: {} -> {protocol, edgeorch}.", args=()
        )
        self.register("ops", self._list_ops, access="read", help="The ops this daemon serves.", args=())

    # -- registry ---------------------------------------------------------

    def register(
        self,
        op: str,
        handler: Handler | StreamHandler,
        *,
        access: Access,
        streaming: bool = False,
        help: str = "",
        args: Iterable[str] | None = None,
    ) -> None:
        """Serve ``op`` with ``handler``.

        ``access`` is what the peer needs: ``"read"`` or ``"act"``. A plain
        handler is ``async def h(args, peer) -> dict``; a streaming one
        (``streaming=True``) is an async generator ``async def h(args, peer):
        yield ...``, closed (``GeneratorExit``/``CancelledError`` at its await
        point, then its ``finally``) as soon as the client goes away. Results
        must be JSON-ready (``Path`` and sets are converted). ``args``: the
        argument names the op takes; a request with any other key is refused
        (``usage``, naming it) before the handler runs. None (embedding code,
        tests) passes every key on. Raises ``ValueError`` for a name already
        taken or a bad ``access``.
        """
        if op in self._ops:
            raise ValueError(f"op {op!r} is already registered")
        if access not in ACCESS_LEVELS:
            raise ValueError(f"access must be one of {ACCESS_LEVELS}, not {access!r}")
        # Any callable returning an async iterator may stream, but catch the
        # common slip of registering a plain coroutine as streaming.
        if streaming and inspect.iscoroutinefunction(handler):
            raise ValueError(f"op {op!r}: a streaming handler must be an async generator")
        self._ops[op] = Operation(op, handler, access, streaming, help, None if args is None else frozenset(args))

    @property
    def ops(self) -> dict[str, Operation]:
        """The registered ops by name (read-only view)."""
        return dict(self._ops)

    def set_policy(self, policy: AccessPolicy) -> None:
        """Replace the access policy (config reload); applies to the next request, and closes now the connections
        of users it no longer lets in: a stream they held open (``events``, ``logs -f``) went on sending after their
        access was taken away."""
        self.policy = policy
        for conn in list(self._live.values()):
            if policy.level(conn.peer) is None and any(conn.tasks.values()):  # it holds a stream open
                log.info("closing the control connection of %s (uid %d, pid %d): its access was taken away",
                         conn.peer.user, conn.peer.uid, conn.peer.pid)
                conn.revoke()

    @property
    def clients(self) -> int:
        """Connections open right now."""
        return len(self._conns)

    # -- built-in ops -----------------------------------------------------

    async def _ping(self, args: dict[str, Any], peer: Peer) -> dict[str, Any]:
        return {"pong": True, "time": time.time()}

    async def _version(self, args: dict[str, Any], peer: Peer) -> dict[str, Any]:
        return {"protocol": P.PROTOCOL_VERSION, "edgeorch": self.version}

    async def _list_ops(self, args: dict[str, Any], peer: Peer) -> dict[str, Any]:
        return {"ops": [o.describe() for o in sorted(self._ops.values(), key=lambda o: o.name)]}

    # -- life cycle -------------------------------------------------------

    async def start(self) -> None:
        """Listen on the socket (or serve the one systemd passed).

        Raises the descriptor limit and fixes :attr:`max_clients` first.
        Creates the socket's folder (0750, group from config) when missing; an
        existing folder is left as it is (it may be ``/run/edgeorch`` made by
        systemd, or a shared folder we must not chmod). A leftover socket file
        is replaced only when nothing answers on it. The socket is 0660 with
        the configured group before it starts listening.

        Raises :class:`StateError` when a live server answers on the path, the
        path is something other than a socket, binding fails, or systemd
        passed a socket on another path; :class:`ConfigError` for an unknown
        ``control.group``.
        """
        if self._listener is not None:
            raise RuntimeError("server already started")
        nofile = raise_nofile_limit()
        self.max_clients = client_limit(self.control.max_clients, nofile)
        if self.max_clients < self.control.max_clients:
            log.warning("serving at most %d clients (control.max_clients = %d) with %d descriptors",
                        self.max_clients, self.control.max_clients, nofile)
        sock = inherited_socket(self.path)
        self.activated = sock is not None
        self._listen(sock if sock is not None else self._bind())
        self.started_at = time.time()
        log.info("control socket %s on %s", "passed by systemd" if self.activated else "listening", self.path)

    async def _accept_loop(self, sock: socket.socket) -> None:
        """Accept one connection at a time: a client past :attr:`max_clients` is told ``busy`` and
        closed before the next accept, so excess clients never hold more than one descriptor."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, _ = await loop.sock_accept(sock)
            except (ConnectionAbortedError, InterruptedError):
                continue
            except OSError as exc:
                if exc.errno not in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    raise
                # Out of descriptors anyway (not because of clients): let the
                # daemon's own work finish rather than spin on accept.
                log.warning("cannot accept a control connection: %s", exc.strerror)
                await asyncio.sleep(0.1)
                continue
            try:
                peer = peer_of(conn)
            except OSError as exc:  # not a connected Unix socket any more: nobody to answer
                log.info("dropping a control connection without credentials: %s", exc.strerror or exc)
                conn.close()
                continue
            if self.policy.level(peer) is None:
                try:
                    await self._denied(peer, None)  # recorded before the answer, as a request's refusal is
                finally:
                    self._refuse(conn, self._no_access(peer))
                continue
            owner = self.policy.is_owner(peer)
            if len(self._conns) >= self.max_clients or (not owner and len(self._shared) >= self.shared_slots):
                self._refuse(conn, self._busy(owner))
                continue
            mine = self._per_uid.get(peer.uid, 0)
            if not owner and mine >= per_user_slots(self.shared_slots):
                self._refuse(conn, P.Busy(f"user {peer.user} (uid {peer.uid}) holds {mine} connections, the most one "
                                          f"user may (max {self.max_clients} in all)",
                                          hint="close some (an idle `edgeorch events` or `top`?) and try again"))
                continue
            task = loop.create_task(self._open(conn, peer), name="control:connection")
            self._conns.add(task)
            task.add_done_callback(self._conns.discard)

            if not owner:
                self._shared.add(task)
                self._per_uid[peer.uid] = mine + 1
                task.add_done_callback(functools.partial(self._release_shared, peer.uid))

    def _release_shared(self, uid: int, task: asyncio.Task[None]) -> None:
        self._shared.discard(task)
        left = self._per_uid.get(uid, 1) - 1
        if left > 0:
            self._per_uid[uid] = left
        else:
            self._per_uid.pop(uid, None)

    @contextlib.asynccontextmanager
    async def long_line(self, peer: Peer) -> AsyncIterator[None]:
        """Held while a line longer than :data:`SHORT_LINE_BYTES` of ``peer`` is read: root and the daemon's uid at
        once, any other user waits while :data:`LONG_LINES_PER_USER` of its lines are being read (its connection's
        idle timeout still runs)."""
        if self.policy.is_owner(peer):
            yield
            return
        permits, users = self._long_lines.get(peer.uid, (asyncio.Semaphore(LONG_LINES_PER_USER), 0))
        self._long_lines[peer.uid] = (permits, users + 1)
        try:
            async with permits:
                yield
        finally:
            permits, users = self._long_lines[peer.uid]
            if users > 1:
                self._long_lines[peer.uid] = (permits, users - 1)
            else:  # nobody else holds or waits: forgotten (no entry kept per uid ever seen)
                del self._long_lines[peer.uid]

    def stream_allowed(self, peer: Peer) -> bool:
        """Whether ``peer`` may open one more stream (``logs``, ``events``): root and the daemon's uid always; any
        other user while it holds fewer than :func:`per_user_slots` of them, in all its connections. Each
        connection may have MAX_INFLIGHT_PER_CONNECTION requests in flight: without this bound a reader's 190
        connections held 32 log streams each, and each following one polled its log five times a second (the
        daemon's CPU went to them; `status` took 10 s)."""
        return self.policy.is_owner(peer) or \
            self._streams_per_uid.get(peer.uid, 0) < per_user_slots(self.shared_slots)

    def streams_busy(self, peer: Peer) -> P.Busy:
        held = self._streams_per_uid.get(peer.uid, 0)
        return P.Busy(f"user {peer.user} (uid {peer.uid}) has {held} streams open (logs, events), the most one user "
                      "may", hint="end some (an `edgeorch logs -f` or `events` left running?) and try again")

    def stream_opened(self, peer: Peer, task: asyncio.Task[None]) -> None:
        """Count a stream of ``peer`` (not of the owners) until its task ends."""
        if self.policy.is_owner(peer):
            return
        self._streams_per_uid[peer.uid] = self._streams_per_uid.get(peer.uid, 0) + 1
        task.add_done_callback(functools.partial(self._stream_closed, peer.uid))

    def _stream_closed(self, uid: int, _task: asyncio.Task[None]) -> None:
        left = self._streams_per_uid.get(uid, 1) - 1
        if left > 0:
            self._streams_per_uid[uid] = left
        else:
            self._streams_per_uid.pop(uid, None)

    @property
    def shared_slots(self) -> int:
        """The slots of peers other than root and the daemon's uid: :attr:`max_clients` less :func:`owner_slots`."""
        return self.max_clients - owner_slots(self.max_clients)

    def _busy(self, owner: bool) -> P.Busy:
        kept = owner_slots(self.max_clients)
        if owner or not kept:
            return P.Busy(f"too many clients (max {self.max_clients})")
        return P.Busy(f"too many clients (max {self.max_clients}, {kept} of them kept for root and the daemon's user)")

    @staticmethod
    def _no_access(peer: Peer) -> P.PermissionDenied:
        return P.PermissionDenied(
            f"user {peer.user} (uid {peer.uid}) has no access to this daemon: every op is refused; closing",
            hint="control.readers / control.operators in the daemon's config say who may",
        )

    @staticmethod
    def _refuse(conn: socket.socket, error: EdgeorchError) -> None:
        """Send ``error`` (``id`` null) on a just-accepted connection and close it."""
        # A fresh socket's send buffer is empty, so the one short line always fits.
        try:
            conn.setblocking(False)
            conn.send(P.encode_error(None, error))
        except OSError:
            pass
        finally:
            conn.close()

    async def _open(self, conn: socket.socket, peer: Peer) -> None:
        try:
            reader, writer = await asyncio.open_unix_connection(
                sock=conn, limit=min(SHORT_LINE_BYTES, self.control.max_line_bytes))
        except BaseException:
            conn.close()
            raise
        await self._serve(reader, writer, peer)

    def _bind(self) -> socket.socket:
        gid = self._group_id()
        parent = self.path.parent
        if not parent.exists():
            parent.mkdir(mode=0o750, parents=True, exist_ok=True)
            os.chmod(parent, 0o750)  # mkdir's mode is filtered by the umask
            if gid is not None:
                os.chown(parent, -1, gid)
        self._clear_stale()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            try:
                with socket_address(self.path) as address:
                    sock.bind(address)
            except OSError as exc:
                raise StateError(f"cannot create the control socket: {exc.strerror or exc}", file=str(self.path)) from None
            # Permissions are set between bind and listen: no one can connect
            # to a socket that is not listening, so there is no window.
            os.chmod(self.path, 0o660)
            if gid is not None:
                os.chown(self.path, -1, gid)
            st = os.stat(self.path)
            self._ident = (st.st_dev, st.st_ino)
        except BaseException:
            sock.close()
            raise
        return sock

    def rebind_if_gone(self) -> bool:
        """Listen again at :attr:`path` when the socket file this server bound is gone; True when it did.

        A removed socket file (a clean-up script, ``rm`` in the state folder, the socket's folder removed)
        leaves the listening socket bound to nothing: no client can reach this daemon, and the CLI says no
        daemon runs while this one holds the state folder. Connections already open are kept; the new socket
        gets the same folder, mode and group as at the start. Nothing is done for a socket systemd passed
        (its unit owns the path), when the path holds another file (someone else's: left alone, as at the
        start), or before :meth:`start`. Raises :class:`StateError` when binding fails.
        """
        if self._listener is None or self.activated:
            return False
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            st = None
        if st is not None:
            if (st.st_dev, st.st_ino) == self._ident:
                return False  # ours
            # Another file (a folder made there, another socket): left alone, as at the start, but said: no client
            # reaches this daemon meanwhile (`status` waited, then said none runs), and nothing told why.
            raise StateError("something else stands at the control socket's path (not the socket this daemon "
                             "listens on): no client can reach this daemon", file=str(self.path),
                             hint="remove it: the daemon listens there again within 2 s")
        old = self._listener
        self._listen(self._bind())
        old.close()
        log.warning("the control socket %s was removed: listening there again", self.path)
        return True

    def _listen(self, sock: socket.socket) -> None:
        """Listen on ``sock`` and accept from it from now on (the accept loop of a former socket cancelled);
        ``sock`` is closed when it cannot listen."""
        try:
            sock.listen(max(128, min(self.max_clients, 4096)))
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        if self._acceptor is not None:
            self._acceptor.cancel()
        self._listener = sock
        self._acceptor = asyncio.get_running_loop().create_task(self._accept_loop(sock), name="control:accept")

    async def close(self) -> None:
        """Stop accepting, end every connection (streams are cancelled), remove the socket.

        Idempotent. The socket file is removed only if it is still the one we
        bound (a newer daemon may have replaced it).
        """
        listener, self._listener = self._listener, None
        acceptor, self._acceptor = self._acceptor, None
        if acceptor is not None:
            acceptor.cancel()
            with contextlib.suppress(BaseException):
                await acceptor
        if listener is not None:
            listener.close()
        tasks = list(self._conns)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        await self._close_refusal_counts()
        if self._ident is not None:
            with contextlib.suppress(OSError):
                st = os.stat(self.path)
                if (st.st_dev, st.st_ino) == self._ident:
                    os.unlink(self.path)
            self._ident = None

    async def _close_refusal_counts(self) -> None:
        """Report every pending count of suppressed refusals, ended or not: the log must say they happened."""
        timer, self._flush_timer = self._flush_timer, None
        if timer is not None:
            timer.cancel()
        flusher, self._flusher = self._flusher, None
        if flusher is not None:
            with contextlib.suppress(BaseException):
                await flusher
        await self._report_suppressed(self.refusals.drain())

    async def __aenter__(self) -> ControlServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _group_id(self) -> int | None:
        group = self.control.group
        if not group:
            return None
        try:
            return grp.getgrnam(group).gr_gid
        except KeyError:
            from .auth import group_problem  # the one rule (checked at a daemon's start before this)

            problem = group_problem(self.control)
            assert problem is not None
            raise problem from None

    def _clear_stale(self) -> None:
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(st.st_mode):
            raise StateError(
                "the control socket path exists and is not a socket; refusing to replace it",
                file=str(self.path),
            )
        code = connect_errno(self.path)
        if code == errno.ENOENT:
            return
        if code == errno.ECONNREFUSED:
            log.info("removing stale control socket %s", self.path)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
            return
        if code in LISTENING:
            raise StateError(
                "another edgeorch daemon is already listening on this socket",
                file=str(self.path),
                hint="stop it first, or set control.socket to another path",
            )
        raise StateError(f"cannot probe the existing control socket: {os.strerror(code)}", file=str(self.path))

    # -- connections ------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: Peer) -> None:
        conn: _Connection | None = None
        me = asyncio.current_task()
        try:
            conn = _Connection(self, reader, writer, peer)
            if me is not None:
                self._live[me] = conn
            await conn.run()
        except asyncio.CancelledError:
            pass  # server closing; the finally below cleans up
        except Exception:
            log.exception("control connection failed")
        finally:
            if me is not None:
                self._live.pop(me, None)
            if conn is not None:
                await conn.stop_all()
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1.0)

    async def _denied(self, peer: Peer, op: str | None) -> None:
        """Log a refusal for lack of access and hand it to ``on_denied``, within the rate rule
        (:mod:`edgeorch.control.refusals`): the counts of ended windows go first, a refusal past the
        limit is only counted. A failing hook is logged; the peer still gets its error."""
        ended, recorded = self.refusals.admit(peer.uid, peer.user)
        await self._report_suppressed(ended)
        if not recorded:
            self._arm_flush()
            return
        what = "its connection (no access)" if op is None else f"op {op!r}"
        log.info("refused %s for %s (uid %d, pid %d)", what, peer.user, peer.uid, peer.pid)
        await self._call_hook("on_denied", self.on_denied, peer, op)

    async def _report_suppressed(self, summaries: list[Suppressed]) -> None:
        for summary in summaries:
            log.warning("%s (in %g s)", summary.message(), summary.until - summary.since)
            await self._call_hook("on_suppressed", self.on_suppressed, summary)

    @staticmethod
    async def _call_hook(name: str, hook: Callable[..., Any] | None, *args: Any) -> None:
        if hook is None:
            return
        try:
            outcome = hook(*args)
            if inspect.isawaitable(outcome):
                await outcome
        except Exception:
            log.exception("%s hook failed", name)

    def _arm_flush(self) -> None:
        """Make sure the counts of windows with suppressed refusals are reported when they end, even if the
        peer never comes back (the next refusal of its uid would report them too)."""
        end = self.refusals.next_end()
        if end is None or self._flush_timer is not None or self._listener is None:
            return
        delay = max(FLUSH_MIN_DELAY_S, end - self.refusals.clock())
        self._flush_timer = asyncio.get_running_loop().call_later(delay, self._flush_due)

    def _flush_due(self) -> None:
        """The flush timer: hand the counts of ended windows to ``on_suppressed`` (in a task: hooks may await)."""
        timer, self._flush_timer = self._flush_timer, None
        if timer is not None:
            timer.cancel()  # called early (a test): its own timer is not needed any more
        if self._flusher is not None and not self._flusher.done():
            return

        async def flush() -> None:
            await self._report_suppressed(self.refusals.due())
            self._arm_flush()  # windows that have not ended yet (a clock behind the loop's)

        self._flusher = asyncio.get_running_loop().create_task(flush(), name="control:refusal-counts")

    async def _refused(self, peer: Peer, op: Operation, args: dict[str, Any], error: EdgeorchError) -> None:
        """Hand a handler's refusal to ``on_refused``; a failing hook is logged, the client still gets its error."""
        if self.on_refused is None:
            return
        try:
            outcome = self.on_refused(peer, op.name, op.access, args, error)
            if inspect.isawaitable(outcome):
                await outcome
        except EdgeorchError as exc:  # recording the refusal failed as writes do (a full disk): one line, no traceback
            log.warning("the refusal of %r was not recorded: %s", op.name, exc.one_line())
        except Exception:
            log.exception("on_refused hook failed")


REPLY_BACKLOG_BYTES = 256 * 1024
"""How many bytes of a connection's replies may wait unread before its next request's work waits for the client
to read them (:meth:`_Connection._writable`)."""


class _Connection:
    """One client connection: the read loop and the request tasks it spawns."""

    def __init__(self, server: ControlServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: Peer) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.peer = peer
        self.idle = server.control.idle_timeout
        self.loop = asyncio.get_running_loop()
        self.tasks: dict[asyncio.Task[None], bool] = {}  # task -> is a stream
        self.stream_ids: dict[asyncio.Task[None], P.RequestId] = {}  # a stream's task -> its request's id
        self.write_lock = asyncio.Lock()
        self.broken = False
        self._read_timeout: asyncio.Timeout | None = None

    async def run(self) -> None:
        while not self.broken:
            deadline = None if self.tasks else self.loop.time() + self.idle
            try:
                async with asyncio.timeout_at(deadline) as cm:
                    self._read_timeout = cm
                    line = await self._read_line()
            except asyncio.IncompleteReadError as exc:
                # EOF. A last line without its newline is still a request
                # (printf '...' | socat ...).
                if exc.partial.strip() and not await self._handle_line(exc.partial):
                    return
                break
            except asyncio.LimitOverrunError:
                cap = self.server.control.max_line_bytes
                await self._fatal(P.TooLarge(f"request line longer than {cap} bytes", expected=f"at most {cap} bytes per line"))
                return
            except TimeoutError:
                await self._fatal(P.Timeout(f"no complete request for {self.idle:g} s; closing"))
                return
            except (ConnectionError, OSError):
                return
            finally:
                self._read_timeout = None
            if not await self._handle_line(line):
                return
            # Yield between requests so a client that pipelines many lines
            # cannot keep the loop from serving everybody else.
            await asyncio.sleep(0)
        await self._finish_after_eof()

    async def _read_line(self) -> bytes:
        """The next line, its ``\\n`` included. A line longer than the reader's limit (:data:`SHORT_LINE_BYTES`) is
        read on in parts under one of the user's long-line permits, up to ``control.max_line_bytes``. Raises as
        ``readuntil`` does: ``IncompleteReadError`` at EOF (with all of the line read so far),
        ``LimitOverrunError`` for a line over the cap."""
        try:
            return await self.reader.readuntil(b"\n")
        except asyncio.LimitOverrunError as exc:
            cap = self.server.control.max_line_bytes
            if cap <= SHORT_LINE_BYTES:
                raise
            consumed = exc.consumed
        async with self.server.long_line(self.peer):
            line = bytearray()
            while True:
                # readuntil left the bytes it looked at in the buffer: taken, and looked for the newline after them.
                line += await self.reader.readexactly(consumed)
                if len(line) > cap:
                    raise asyncio.LimitOverrunError("request line over the cap", len(line))
                try:
                    end = await self.reader.readuntil(b"\n")
                except asyncio.LimitOverrunError as exc:
                    consumed = exc.consumed
                    continue
                except asyncio.IncompleteReadError as exc:
                    raise asyncio.IncompleteReadError(bytes(line) + exc.partial, None) from None
                if len(line) + len(end) - 1 > cap:
                    raise asyncio.LimitOverrunError("request line over the cap", len(line) + len(end))
                return bytes(line + end)

    async def _handle_line(self, line: bytes) -> bool:
        """Answer or dispatch one line; False when the connection must close."""
        if not line.strip():
            return True  # blank lines are harmless (handy with socat)
        try:
            req = P.parse_request(line)
        except P.RequestError as exc:
            if not exc.fatal:
                await self._send_error(exc.id, exc.error)
                return not self.broken
            await self._fatal(exc.error, exc.id)
            return False
        op = self.server._ops.get(req.op)
        level = self.server.policy.level(self.peer)
        if level is None:
            # Access taken away by a reload since it connected: as at connect, one refusal, then close.
            await self.server._denied(self.peer, req.op)
            await self._send_error(req.id, self.server._no_access(self.peer))
            return False
        if op is not None and not (level == "act" or op.access == "read"):
            await self.server._denied(self.peer, req.op)
            need = op.access
            await self._send_error(
                req.id,
                P.PermissionDenied(
                    f"user {self.peer.user} (uid {self.peer.uid}) may not use op {req.op!r} ({need} access)",
                    hint="control.readers / control.operators in the daemon's config say who may",
                ),
            )
            return not self.broken
        if op is None:
            await self._send_error(req.id, P.UnknownOp(f"unknown op {req.op!r}", hint="op 'ops' lists the available ops"))
            return not self.broken
        if len(self.tasks) >= P.MAX_INFLIGHT_PER_CONNECTION:
            await self._send_error(
                req.id, P.Busy(f"more than {P.MAX_INFLIGHT_PER_CONNECTION} requests in flight on one connection")
            )
            return not self.broken
        if op.streaming and not self.server.stream_allowed(self.peer):
            await self._send_error(req.id, self.server.streams_busy(self.peer))
            return not self.broken
        log.debug("op %s (id %r) from %s (uid %d, pid %d)", req.op, req.id, self.peer.user, self.peer.uid, self.peer.pid)
        runner = self._run_stream(req, op) if op.streaming else self._run_plain(req, op)
        task = self.loop.create_task(runner, name=f"control:{req.op}:{req.id}")
        self.tasks[task] = op.streaming
        if op.streaming:
            self.stream_ids[task] = req.id
        task.add_done_callback(self._task_done)
        if op.streaming:
            self.server.stream_opened(self.peer, task)
        return True

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self.tasks.pop(task, None)
        self.stream_ids.pop(task, None)
        if not task.cancelled() and task.exception() is not None:
            log.error("control request task failed", exc_info=task.exception())
        # Nothing runs any more: the idle clock starts now, also for the read
        # that is already waiting (it was started without a deadline).
        cm = self._read_timeout
        if not self.tasks and cm is not None and not cm.expired():
            cm.reschedule(self.loop.time() + self.idle)

    async def _writable(self) -> None:
        """Until the replies already written have mostly left (the transport's buffer below
        :data:`REPLY_BACKLOG_BYTES`): a request's work waits for a client that reads. A reader pipelining 32
        large requests on each of many connections, reading none of the answers, had every answer made and held:
        the daemon grew by gigabytes. Raises ConnectionError as :meth:`_send` does (the client never reads)."""
        if self.writer.transport.get_write_buffer_size() <= REPLY_BACKLOG_BYTES:
            return
        await self._send(b"")  # the writer that holds the lock drains first; then it is our turn to wait

    async def _run_plain(self, req: P.Request, op: Operation) -> None:
        try:
            await self._writable()
        except ConnectionError:
            return
        try:
            op.check_args(req.args)
            result = await op.handler(req.args, self.peer)
            data = P.encode(P.ok(req.id, result))
        except EdgeorchError as exc:
            await self.server._refused(self.peer, op, req.args, exc)
            data = P.encode_error(req.id, exc)
        except asyncio.CancelledError:
            raise
        except Exception:  # a handler bug, or a result that is not JSON
            data = P.encode_error(req.id, self._internal(req))
        await self._send_quiet(data)

    async def _run_stream(self, req: P.Request, op: Operation) -> None:
        stream: Any = None
        try:
            op.check_args(req.args)
            stream = op.handler(req.args, self.peer)
            async for item in stream:
                try:
                    data = P.encode(P.ok(req.id, item))
                except (TypeError, ValueError):
                    data = P.encode_error(req.id, self._internal(req))
                    await self._send(data)
                    return
                await self._send(data)
            await self._send(P.encode(P.end(req.id)))
        except ConnectionError:
            pass  # the client went away: just stop (the finally closes the handler)
        except EdgeorchError as exc:
            await self.server._refused(self.peer, op, req.args, exc)
            await self._send_quiet(P.encode_error(req.id, exc))
        except asyncio.CancelledError:
            raise
        except Exception:
            await self._send_quiet(P.encode_error(req.id, self._internal(req)))
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()

    def _internal(self, req: P.Request) -> EdgeorchError:
        """The answer to the exception being handled: the daemon's own (:attr:`ControlServer.on_failure`), else
        "internal error" (the traceback goes to the log)."""
        exc = sys.exc_info()[1]
        if exc is not None and self.server.on_failure is not None:
            answer = self.server.on_failure(exc)
            if answer is not None:
                return answer
        log.exception("op %r (request %r) failed", req.op, req.id)
        return P.InternalError(f"internal error in op {req.op!r}; details are in the daemon's log")

    async def _send(self, data: bytes) -> None:
        """Write one line (nothing: only wait for what is written to drain); raises ConnectionError when the client
        is gone or not reading."""
        async with self.write_lock:
            if self.broken or self.writer.is_closing():
                raise ConnectionResetError("connection closed")
            try:
                if data:
                    self.writer.write(data)
                async with asyncio.timeout(self.idle):
                    await self.writer.drain()
            except TimeoutError:
                # The client does not read its responses; drop it rather
                # than buffer without bound.
                self.broken = True
                self.writer.transport.abort()
                raise ConnectionResetError("client stopped reading") from None
            except (ConnectionError, OSError):
                self.broken = True
                raise ConnectionResetError("connection lost") from None

    async def _send_quiet(self, data: bytes) -> None:
        with contextlib.suppress(ConnectionError):
            await self._send(data)

    async def _send_error(self, request_id: P.RequestId, err: EdgeorchError) -> None:
        await self._send_quiet(P.encode_error(request_id, err))

    async def _fatal(self, err: EdgeorchError, request_id: P.RequestId = None) -> None:
        """Answer a line that breaks the stream, then stop everything of this connection."""
        log.info("closing control connection of %s (pid %d): %s", self.peer.user, self.peer.pid, err.code)
        await self.stop_all()
        await self._send_error(request_id, err)

    async def _finish_after_eof(self) -> None:
        # The client will send nothing more: streams have nobody to serve
        # (it may have closed entirely), plain requests still get answered.
        for task, is_stream in list(self.tasks.items()):
            if is_stream:
                task.cancel()
        pending = list(self.tasks)
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    def revoke(self) -> None:
        """Access taken away (a reload) while it holds a stream: each stream ends with a refusal (recorded as a
        request's is), then the connection closes. A stream went on sending after the user's access was gone."""
        if self.broken:
            return

        async def refuse() -> None:
            streams = {t: self.stream_ids.get(t) for t, is_stream in self.tasks.items() if is_stream}
            for task in streams:
                task.cancel()
            await asyncio.gather(*streams, return_exceptions=True)
            await self.server._denied(self.peer, None)
            for rid in streams.values():
                await self._send_error(rid, self.server._no_access(self.peer))
            self.broken = True
            self.writer.close()

        self.loop.create_task(refuse(), name="control:revoke")

    async def stop_all(self) -> None:
        """Cancel every request of this connection and wait for them to unwind."""
        pending = list(self.tasks)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
