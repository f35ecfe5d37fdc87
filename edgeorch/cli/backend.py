"""The one place where a command chooses between a running daemon and this machine's state.

Every command asks :func:`connect` for a :class:`Backend` and never probes
the socket itself. The choice has three forms, one per ``need``:

- ``"prefer"``: the daemon when one answers on the configured socket, else
  the offline path (read the state file, run an engine in this process);
- ``"daemon"``: the daemon, or :class:`~edgeorch.control.DaemonNotRunning`
  (exit 69) for commands that only a live daemon can serve;
- ``"offline"``: never ask the daemon (``edgeorch run --here``).

The offline path opens the state file (:meth:`Backend.open_store`) and, for a
writer, takes the state directory's lock (:meth:`Backend.state_lock`), so a
daemon and an in-process engine never write the same state.
"""

from __future__ import annotations

import contextlib

import argparse
import logging
import sys
from types import TracebackType
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Iterator, Literal

from ..errors import StateError

if TYPE_CHECKING:  # runtime imports stay lazy: `edgeorch --help` must not pay for them
    from ..config import Config
    from ..client import Client as Api
    from ..control.client import Client
    from ..control.statelock import StateLock
    from ..store import Store

Need = Literal["prefer", "daemon", "offline"]

DAEMON_TIMEOUT_S = 30
"""How long a command waits for one answer from the daemon."""

log = logging.getLogger("edgeorch.cli")


def load(args: argparse.Namespace) -> Config:
    """The config the parsed ``--config`` (or the lookup order) names, with numba's cache folder named from it
    (made only if numba is needed)."""
    from ..config import load_config
    from ..errors import ConfigError

    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        if not exc.hint:  # every command reads the same file: say what it means for a running daemon
            exc.hint = ("every edgeorch command reads this file, so none runs until it is fixed; a running daemon "
                        "goes on with the config it loaded (a reload refuses this one). To reach it meanwhile, name "
                        "a copy of the good file: edgeorch --config GOOD.toml status")
        raise
    log.debug("config: %s", cfg.source or "the embedded defaults")
    from ..kernels.cache import prefer_numba_cache_dir

    # The folder numba will use if this command needs it (one rule for every path: edgeorch/kernels/cache.py);
    # made only then, not by every command.
    prefer_numba_cache_dir(cfg.numba_cache_dir)
    return cfg


def local_actor() -> str:
    """Who acts when a command changes the state file itself (no daemon to ask the peer's credentials): this
    process's user, as ``alice (uid 1000)`` (the daemon's actor for a peer), or ``uid N`` when unnamed."""
    import os
    import pwd

    uid = os.getuid()
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


class DaemonTookState(StateError):
    """The state's lock is held by a daemon that started after :func:`connect` found none answering: a command
    that would run pipelines here may ask that daemon instead (``edgeorch run`` does: a cron job's run in the
    first second of a daemon's start was refused, exit 4, "in use by another edgeorch daemon")."""


BUSY_WAIT_S = 2.0
"""How long a command that writes the state without a daemon asks again for a lock another such command holds."""


class Backend:
    """Where a command's requests go: :attr:`client` when a daemon answers, else the offline path.

    Use it as a context manager; leaving the block closes the connection.
    """

    def __init__(self, cfg: Config, client: Client | None) -> None:
        self.cfg = cfg
        self._client = client

    @property
    def online(self) -> bool:
        """True when a daemon answered: requests go to it."""
        return self._client is not None

    @property
    def client(self) -> Client:
        """The daemon connection; raises ``DaemonNotRunning`` (exit 69) on the offline path."""
        if self._client is None:
            from ..control import DaemonNotRunning

            raise DaemonNotRunning(self.cfg.socket_path, config=str(self.cfg.source or ""))
        return self._client

    @property
    def api(self) -> Api:
        """The daemon through the Python client (``edgeorch.Client``) over :attr:`client`'s connection,
        so a command drives the daemon with the same calls a script makes; raises like :attr:`client`."""
        from ..client import Client as Api

        return Api.from_transport(self.client)

    def streams_only(self) -> None:
        """Close the request connection before a stream that is all this command does (``events``, ``logs -f``):
        the stream has its own, and this one sat idle until the daemon closed it, holding a client slot."""
        if self._client is not None:
            self._client.close()

    def open_store(self, *, readonly: bool) -> Store | None:
        """The state file, opened directly (offline path); None when reading and no state file exists yet."""
        from ..store import Store

        if readonly and not self.cfg.state_file.exists():
            return None
        return Store(self.cfg.state_file, readonly=readonly)

    def state_lock(self) -> StateLock:
        """Hold the state dir's lock while this process writes state (one writer at a time; refused beside a
        daemon that answers on the config's socket, even when its lock file was removed). Held by another
        command without a daemon, it is asked again for up to :data:`BUSY_WAIT_S` (a `pipelines pause` holds it
        for milliseconds: a cron job's `run` beside it failed, exit 75), then refused as busy."""
        import time

        from ..control.statelock import acquire_state_lock, state_holder
        from ..errors import StateBusyError

        deadline = time.monotonic() + BUSY_WAIT_S
        while True:
            try:
                return acquire_state_lock(self.cfg.state_dir, socket=self.cfg.socket_path)
            except StateBusyError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.05)  # polled: a POSIX record lock has no wait with a timeout
            except StateError as exc:
                holder = state_holder(self.cfg.state_dir)
                if holder is not None and holder[1]:  # a daemon holds it: one started since connect() looked
                    raise DaemonTookState(exc.message, hint=exc.hint, file=exc.file) from None
                raise

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def connect(cfg: Config, need: Need = "prefer", *, runs_here: bool = False) -> Backend:
    """Make the daemon/no-daemon choice for one command (see the module's docstring for ``need``).

    ``runs_here``: without a daemon the command runs pipelines in this process, holding the state for as long
    (``run``, ``retry``). When the daemon that held the state last was killed or crashed (a service manager is
    starting it again: its restart window), such a command waits up to :data:`DAEMON_RETURN_WAIT_S` for it to
    answer rather than take the state over (the daemon would then wait for the whole run). Such a command, and
    one that needs a daemon, also waits up to :data:`DAEMON_START_WAIT_S` for a daemon that holds the state but
    does not answer yet (it is starting: its lock comes before its socket), rather than be refused.

    Raises ``PermissionDenied`` when the socket may not be used by this user,
    ``DaemonNotRunning`` when ``need`` is ``"daemon"`` and none answers, and
    the daemon's other errors (busy, timeout) as they come.
    """
    if need == "offline":
        log.info("not asking a daemon: using the state file %s", cfg.state_file)
        return Backend(cfg, None)
    from ..control.client import connect_if_running

    backend = Backend(cfg, connect_if_running(cfg.socket_path, timeout=DAEMON_TIMEOUT_S))
    if not backend.online and (runs_here or need == "daemon"):
        backend = Backend(cfg, _await_daemon(cfg, restart=runs_here))
    if backend.online:  # -v says which of the two a command used
        log.info("using the daemon at %s", cfg.socket_path)
    else:
        log.info("no daemon answers at %s: using the state file %s", cfg.socket_path, cfg.state_file)
    if need == "daemon" and not backend.online:  # refuse now, before the command does any work
        raise _no_daemon(cfg)
    return backend


def _no_daemon(cfg: Config) -> Exception:
    """The error of a command that needs a daemon and finds none answering: ``DaemonNotRunning``, saying so when
    an ``edgeorch run`` holds the state (a daemon started now waits for it); ``StateBusyError`` (75: try again)
    when a daemon already waits for that run to end (it answers then: starting another is not the fix)."""
    from ..control import DaemonNotRunning
    from ..control.statelock import holder_description, state_holder, waiting_daemon
    from ..errors import StateBusyError

    holder = state_holder(cfg.state_dir)
    if holder is None or holder[1]:
        return DaemonNotRunning(cfg.socket_path, config=str(cfg.source or ""))
    run = f"`{holder_description(holder[0])}` (pid {holder[0]})"
    waiting = waiting_daemon(cfg.state_dir)
    if waiting is None:
        return DaemonNotRunning(cfg.socket_path, f"{run} runs pipelines without one and holds the state: a daemon "
                                                 "started now waits for it to end", config=str(cfg.source or ""))
    return StateBusyError(f"no daemon answers yet: the daemon of this state (pid {waiting}) waits for {run}, which "
                          "runs pipelines without a daemon, to end before it starts",
                          hint="it starts by itself once that run is over; meanwhile `edgeorch runs` and `edgeorch "
                               "show RUN` read the state file")



DAEMON_RETURN_WAIT_S = 5.0
"""How long a command that would run pipelines itself waits for a killed daemon to come back (systemd restarts
it within seconds: ``RestartSec=2s`` in the shipped unit)."""


DAEMON_START_WAIT_S = 30.0
"""How long a command waits for a daemon that holds the state and does not answer yet (starting: it opens the
state file, reads the pipelines and starts its engine before its socket listens)."""


def _await_daemon(cfg: Config, *, restart: bool) -> Any:
    """A connection to the daemon when one is on its way: the state's live holder is a daemon that does not answer
    yet (:data:`DAEMON_START_WAIT_S`), or, with ``restart``, the one that held it last is gone without letting it
    go and a new one answers within :data:`DAEMON_RETURN_WAIT_S`; else None (no daemon: the command goes on as
    it does without one)."""
    import time

    from ..control.client import connect_if_running
    from ..control.statelock import crashed_daemon, state_holder

    holder = state_holder(cfg.state_dir)
    if holder is not None and holder[1]:
        wait = DAEMON_START_WAIT_S
        _note(f"the daemon of this state (pid {holder[0]}) does not answer yet (starting?): waiting up to "
              f"{wait:g}s for it")
    else:
        pid = crashed_daemon(cfg.state_dir) if restart else None
        if pid is None:
            return None
        wait = DAEMON_RETURN_WAIT_S
        _note(f"the daemon of this state (pid {pid}) stopped without letting it go (killed?): waiting up to "
              f"{wait:g}s for it to come back before running here")
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        time.sleep(0.2)  # polled: a daemon's socket has no event a client can wait on before it exists
        client = connect_if_running(cfg.socket_path, timeout=DAEMON_TIMEOUT_S)
        if client is not None:
            return client
    return None


def _note(text: str) -> None:
    """A note on stderr (``note: ...``) unless the CLI's log level hides warnings (``-q``): a wait it says
    nothing of otherwise; -q promises results and errors only."""
    if log.isEnabledFor(logging.WARNING):
        print(f"note: {text}", file=sys.stderr, flush=True)


def read(args: argparse.Namespace, op: str, op_args: dict[str, Any], offline: Callable[[Any], Any]) -> Any:
    """A read-only command's answer: the daemon's op ``op`` when one runs, else ``offline(store)``.

    ``op_args`` without its None values go to the daemon; ``offline`` gets the state file opened
    read-only (None when there is none yet) and the same answer shape is expected of both.
    """
    with connect(load(args), "prefer") as backend:
        if backend.online:
            return backend.client.call(op, {k: v for k, v in op_args.items() if v is not None})
        store = backend.open_store(readonly=True)
        try:
            return offline(store)
        finally:
            if store is not None:
                store.close()


@contextlib.contextmanager
def if_the_daemon_goes(hint: str) -> Iterator[None]:
    """Around a stream from the daemon (``logs -f``, ``events``): a daemon that goes away mid-stream (a restart)
    ends it with exit 75 and ``hint`` (how to go on), unless the error says one already."""
    from ..control.protocol import BadResponse

    try:
        yield
    except BadResponse as exc:
        if not exc.hint:
            exc.hint = hint
        raise
