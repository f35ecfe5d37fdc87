"""``edgeorch.Client``: drive a running daemon from a Python script.

    import edgeorch

    with edgeorch.Client() as client:              # the daemon the CLI would use
        run = client.run("house_prices", {"epochs": 3}, timeout=600)
        print(run.state, [a.path for a in run.artifacts])

Every method is one request built by :mod:`edgeorch.client.calls` over the
low-level :class:`edgeorch.control.Client` (one connection, opened on first
use; one more per stream); :class:`edgeorch.AsyncClient` is the same over
asyncio. The CLI's run commands use this class too.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from contextlib import closing
from types import TracebackType
from typing import Any, TypeVar

from ..config import Config
from ..control import protocol as P
from ..control.client import DEFAULT_TIMEOUT
from ..control.client import Client as Transport
from ..model import RunState
from . import calls
from .locate import find_socket
from .records import Queued, Run, RunSummary

T = TypeVar("T")


class Client:
    """A connection to the edgeorch daemon, found as the CLI finds it.

    ``socket`` (a path) wins; else ``config`` (a :class:`~edgeorch.config.Config`
    or a config file's path; None: the lookup order of
    :func:`edgeorch.config.find_config`) names the socket
    (:func:`~edgeorch.client.locate.find_socket`). Nothing is connected
    until the first request. ``timeout`` (seconds; None: forever) bounds
    connecting and each answer; waits for a run are bounded by their own
    ``timeout``.

    Errors are :class:`~edgeorch.errors.EdgeorchError`\\ s with a complete
    message: ``DaemonNotRunning`` (nobody listens on the socket, naming it),
    ``NotFoundError`` (no such run, pipeline, task or attempt),
    ``UsageError`` (a bad argument or param, naming it), ``PipelineError``,
    ``ConflictError`` (a paused pipeline, a run still active), the
    ``PermissionDenied`` of the control socket, :class:`~edgeorch.client.WaitTimeout`.
    Not thread-safe: one client per thread.
    """

    def __init__(self, config: Config | str | os.PathLike[str] | None = None, socket: str | os.PathLike[str] | None = None,
                 timeout: float | None = DEFAULT_TIMEOUT) -> None:
        self._transport = Transport(find_socket(config, socket), timeout=timeout)

    @classmethod
    def from_transport(cls, transport: Transport) -> Client:
        """A client over an open low-level :class:`edgeorch.control.Client` (the CLI's, which it closes itself)."""
        client = cls.__new__(cls)
        client._transport = transport
        return client

    @property
    def socket_path(self) -> os.PathLike[str]:
        """The control socket this client talks to."""
        return self._transport.socket_path

    @property
    def timeout(self) -> float | None:
        return self._transport.timeout

    def _do(self, call: calls.Call[T]) -> T:
        return call.read(self._transport.call(call.op, call.args), self)

    def _stream(self, call: calls.Call[T], timeout: float | None = None,
                deadline: float | None = None) -> Generator[T, None, None]:
        per_item = self.timeout if call.bounded and timeout is None else timeout
        for item in self._transport.stream(call.op, call.args, timeout=per_item, deadline=deadline):
            yield call.read(item, self)

    # -- runs ---------------------------------------------------------------------------------

    def submit(self, pipeline: str | os.PathLike[str], params: Mapping[str, Any] | None = None, *,
               label: str = calls.DEFAULT_LABEL, no_cache: bool = False) -> Queued:
        """Queue a run and return the daemon's receipt at once (no further request; see :meth:`trigger`).

        ``pipeline``: a loaded pipeline's name, or a pipeline file (a
        :class:`~pathlib.Path`, or a string ending in ``.toml`` or naming a
        file) sent to the daemon and run ad hoc, as ``edgeorch run FILE``.
        ``params``: values as Python str/int/float/bool (or paths), converted
        to each param's type by the daemon. ``label``: recorded as the run's
        ``trigger``. Every start passes the daemon's front door: an unknown
        pipeline is ``NotFoundError`` (with a did-you-mean), a bad param
        ``UsageError`` naming it, a paused pipeline ``ConflictError``, a task
        the machine can never serve ``UnsatisfiableError``; nothing is
        recorded then. ``no_cache``: the run uses no recorded result (every task runs; its result is recorded
        and serves later runs), as ``edgeorch run --no-cache``.
        """
        return self._do(calls.submit(pipeline, params, label, no_cache))

    def trigger(self, pipeline: str | os.PathLike[str], params: Mapping[str, Any] | None = None, *,
                label: str = calls.DEFAULT_LABEL, no_cache: bool = False) -> Run:
        """Queue a run (as :meth:`submit`) and return it as the daemon shows it right after (usually ``queued``)."""
        return self.get_run(self.submit(pipeline, params, label=label, no_cache=no_cache).run_id)

    def run(self, pipeline: str | os.PathLike[str], params: Mapping[str, Any] | None = None, *,
            timeout: float | None = None, label: str = calls.DEFAULT_LABEL,
            on_event: Callable[[dict[str, Any]], None] | None = None,
            on_queued: Callable[[Queued], None] | None = None, no_cache: bool = False) -> Run:
        """Queue a run and wait until it has finished (:meth:`submit`, then :meth:`wait`).

        Returns the finished run whatever its outcome: check ``run.succeeded``.
        :class:`~edgeorch.client.WaitTimeout` after ``timeout`` seconds (the
        run goes on; its id is ``err.run_id``). The events stream is opened
        before the run is queued, so ``on_event`` sees every item of the run
        from its ``queued`` on (a task that ends at once included);
        ``on_queued`` is called with the queued run as soon as it is.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with closing(self._transport.stream("events", calls.follow(None, on_event), deadline=deadline)) as items:
            first = next(items, None)  # "subscribed": from here on nothing is missed
            queued = self.submit(pipeline, params, label=label, no_cache=no_cache)
            if on_queued is not None:
                on_queued(queued)
            if on_event is not None and first is not None:
                on_event(first)
            return self._follow(items, queued.run_id, timeout, deadline, on_event, unfiltered=True)

    def wait(self, run: int | RunSummary | Queued, timeout: float | None = None, *,
             on_event: Callable[[dict[str, Any]], None] | None = None) -> Run:
        """Block until ``run`` has finished; return it as the daemon shows it then.

        Follows the daemon's ``events`` stream for the run (no polling): an
        already finished run returns at once. ``timeout`` (seconds, None:
        forever) bounds the whole wait: :class:`~edgeorch.client.WaitTimeout`
        when it runs out (the run goes on). ``on_event`` is called with each
        item of the stream (docs/protocol.md, ``events``) as it arrives, e.g.
        to print progress. ``NotFoundError`` for an unknown run.
        """
        run_id = calls.run_id_of(run)
        deadline = None if timeout is None else time.monotonic() + timeout
        with closing(self._transport.stream("events", calls.follow(run_id, on_event), deadline=deadline)) as items:
            return self._follow(items, run_id, timeout, deadline, on_event)

    def _follow(self, items: Iterator[Any], run_id: int, timeout: float | None, deadline: float | None,
                on_event: Callable[[dict[str, Any]], None] | None, *, unfiltered: bool = False) -> Run:
        """Read ``items`` (an ``events`` stream; ``unfiltered``: of every run) until ``run_id`` has finished."""
        f = calls.Follower(run_id, timeout, deadline, on_event, unfiltered=unfiltered)
        try:
            for item in items:
                step = f.take(item)
                if step == "finished":
                    break
                if step == "recheck" and (now := self.get_run(run_id)).finished:
                    return now
            else:
                raise f.ended_early()
        except P.Timeout as exc:
            raise f.timed_out(exc) from None
        except P.ConnectionClosed as exc:
            raise f.lost(exc) from None
        return self.get_run(run_id)

    def get_run(self, run: int | RunSummary | Queued) -> Run:
        """The run as it is now: tasks, attempts, exit codes, artifacts, results. ``NotFoundError`` if unknown."""
        return self._do(calls.get_run(run))

    def runs(self, *, pipeline: str | None = None, state: RunState | str | None = None, limit: int = 20) -> list[RunSummary]:
        """Recent runs, newest first (``limit``: 1..10000), optionally of one pipeline or in one state."""
        return self._do(calls.runs(pipeline, state, limit))

    def cancel(self, run: int | RunSummary | Queued, reason: str | None = None) -> dict[str, Any]:
        """Ask the daemon to cancel an active run (``reason`` is recorded); returns its answer
        (``{"run_id": ..., "cancel_requested": true}``) at once. ``ConflictError`` when the run is already over.
        :meth:`wait` for it to end ``cancelled``."""
        return self._do(calls.cancel(run, reason))

    def rerun(self, run: int | RunSummary | Queued, *, timeout: float | None = None,
              on_event: Callable[[dict[str, Any]], None] | None = None,
              on_resumed: Callable[[list[str]], None] | None = None, current: bool = False) -> Run:
        """:meth:`retry` a finished run and wait until it has finished again; returns it then.

        The events stream is opened before the retry is asked for (as :meth:`run` opens it before it queues),
        so ``on_event`` sees every item of the rerun, a task that ends at once included (:meth:`retry` then
        :meth:`wait` missed those, and a rerun over before the wait began showed no progress at all).
        ``on_resumed`` is called with the tasks that run again as soon as the daemon said them.
        """
        run_id = calls.run_id_of(run)
        deadline = None if timeout is None else time.monotonic() + timeout
        with closing(self._transport.stream("events", calls.follow(None, on_event), deadline=deadline)) as items:
            first = next(items, None)  # "subscribed": from here on nothing is missed
            tasks = self.retry(run_id, current=current)
            if on_resumed is not None:
                on_resumed(tasks)
            if on_event is not None and first is not None:
                on_event(first)
            return self._follow(items, run_id, timeout, deadline, on_event, unfiltered=True)

    def retry(self, run: int | RunSummary | Queued, *, current: bool = False) -> list[str]:
        """Resume a finished run (failed tasks, and those whose outputs changed, plus everything downstream);
        returns the names of the tasks that will run again. ``ConflictError`` when the run is active or has
        nothing to retry. :meth:`wait` for it. ``current``: they run under the pipeline file as it is now (a longer
        timeout, a fixed command), recorded as the run's definition from then on; its tasks, needs and params
        must be the run's (else ``ConflictError``). Default: the run's own definition."""
        return self._do(calls.retry(run, current))

    def logs(self, run: int | RunSummary | Queued, task: str, attempt: int | None = None, *,
             follow: bool = False) -> Iterator[str]:
        """The log of ``task``'s attempt (default: the latest) as chunks of text (bad UTF-8 replaced).

        ``follow=True`` keeps the stream open while the attempt runs and ends
        it when the attempt has ended and its log is read. Stop early by
        closing the iterator (``break`` in a ``for`` loop does).
        ``NotFoundError`` names the missing run, task, attempt or log file.
        """
        return self._stream(calls.logs(run, task, attempt, follow))

    def events(self, run: int | RunSummary | Queued | None = None, *, kinds: Iterable[str] | None = None,
               timeout: float | None = None) -> Iterator[dict[str, Any]]:
        """The daemon's state changes as they happen, each as a dict (docs/protocol.md, ``events``).

        First a ``{"kind": "subscribed"}`` item (from then on nothing is
        missed), then one item per change, forever: stop by closing the
        iterator. ``run``: only that run's events (and those of no run).
        ``kinds``: only items of these kinds (``"run"``, ``"task"``,
        ``"input"``, ...: :data:`edgeorch.model.STREAM_KINDS`; an unknown
        one is a ``UsageError``); overflow notices are always sent.
        ``timeout``: the longest wait for one item (``Timeout`` after it).

        Subscribed by the call itself, before it returns: a run triggered after ``client.events()`` and before
        the first ``next()`` is seen from its ``queued`` on (subscribing at the first ``next()``, as a plain
        generator would, missed those).
        """
        stream = self._stream(calls.events(run, kinds), timeout=timeout)
        return _Subscribed(next(stream), stream)  # the "subscribed" item read: the daemon has subscribed it

    # -- the daemon -----------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """The daemon's state: pid, uptime, runs by state, running tasks, pipelines (``edgeorch status --json``)."""
        return self._do(calls.status())

    def pipelines(self) -> list[dict[str, Any]]:
        """The loaded pipelines: name, description, params, schedule, paused, warnings (``pipelines.list``)."""
        return self._do(calls.pipelines())

    def close(self) -> None:
        """Close the connection (a later request opens a new one)."""
        self._transport.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"edgeorch.Client(socket={str(self.socket_path)!r})"


class _Subscribed(Iterator[dict[str, Any]]):
    """:meth:`Client.events`' iterator: its ``subscribed`` item (read already), then the stream's; ``close()`` ends
    the stream whether or not it was iterated."""

    def __init__(self, first: dict[str, Any], rest: Generator[dict[str, Any], None, None]) -> None:
        self._first: dict[str, Any] | None = first
        self._rest = rest

    def __next__(self) -> dict[str, Any]:
        if self._first is not None:
            first, self._first = self._first, None
            return first
        return next(self._rest)

    def close(self) -> None:
        self._first = None
        self._rest.close()
