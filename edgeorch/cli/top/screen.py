"""``edgeorch top``'s terminal: the refresh loop, the keys, and the ops each key calls.

The loop reads a :class:`~.model.Snapshot` through the daemon's ops every
``interval`` seconds (:class:`OpsSource`), draws it full-screen with
``rich.live.Live`` (the terminal's alternate screen), and between refreshes
waits in ``select`` for a key, so an idle ``top`` costs one round of ops per
interval. A lost daemon is shown in the header and asked again at the next
refresh; ``top`` keeps running.

A selected task's log is followed by :class:`LogFollower` in its own thread
through the ``logs`` op (``follow``), as ``edgeorch logs --follow`` does.
"""

from __future__ import annotations

import collections
import os
import select
import sys
import termios
import threading
import time
import tty
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from ...control.protocol import UnknownOp
from ...errors import EdgeorchError, NotFoundError
from ...rundoc import MAX_RUNS_LIMIT
from .keys import Action, ViewState, decode, on_key, reconcile
from .model import Item, Snapshot, runs_to_read, selectable, snapshot_of

RECENT_RUNS = 12
RECENT_INPUTS = 8
LOG_LINES_KEPT = 500


class OpsSource:
    """One snapshot through the ops: ``status``, ``resources``, ``runs.list``, ``runs.show``, ``inputs.list``,
    ``monitors.list`` (the same op as ``edgeorch monitors``; a daemon without it shows no rules)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def snapshot(self, now: float, *, rows: int = 0) -> Snapshot:
        """Read the ops once. ``rows``: how many rows a list panel can show (the terminal's height): recent runs
        and drop-folder inputs are read to fill it (at least :data:`RECENT_RUNS` / :data:`RECENT_INPUTS`)."""
        c = self.client
        status = c.call("status")
        resources = c.call("resources")  # before the run documents: a task starting meanwhile is in both, kept once
        active, retrying_unread = self._task_runs(resources)
        recent = c.call("runs.list", {"limit": max(RECENT_RUNS, rows)})["runs"]
        inputs = c.call("inputs.list", {"limit": max(RECENT_INPUTS, rows)})
        try:
            monitors = c.call("monitors.list", {})
        except UnknownOp:  # an older daemon: no rules
            monitors = None
        return snapshot_of(status, resources, recent, active, inputs, now, monitors, retrying_unread)

    def _task_runs(self, resources: dict[str, Any]) -> tuple[list[dict[str, Any]], int]:
        """The documents of the runs with a task running or between attempts, and the tasks between attempts of
        those not read (see :func:`~.model.runs_to_read`).

        No op lists the running attempts: ``resources``' leases leave out the tasks that hold nothing (only
        counted, ``running_unleased``) and ``status`` counts them. So: every active run with its task counts
        (one ``runs.list``, two queries in the daemon whatever the backlog), then ``runs.show`` of those
        with a running or retrying task only. The 20 newest active runs missed the oldest, a long training run.
        """
        c = self.client
        listed = c.call("runs.list", {"state": "running", "limit": MAX_RUNS_LIMIT})["runs"]
        ids, unread = runs_to_read(listed)
        # A leased attempt's run is read even past MAX_RUNS_LIMIT active runs.
        ids += sorted({lease["run_id"] for lease in resources.get("leases") or []} - set(ids))
        docs = []
        for run_id in ids:
            try:
                docs.append(c.call("runs.show", {"run_id": run_id}))
            except NotFoundError:  # removed between the two calls
                continue
        return docs, unread


class LogFollower:
    """Follows one task's log in a daemon thread; :attr:`lines` holds the last :data:`LOG_LINES_KEPT` lines.

    :meth:`stop` makes the thread drop its stream at the next chunk (or when
    the attempt ends and the daemon closes the stream).
    """

    def __init__(self, client: Any, run_id: int, task: str) -> None:
        self.client = client  # its stream() opens a connection of its own: safe beside the main thread's calls
        self.run_id = run_id
        self.task = task
        self.lines: collections.deque[str] = collections.deque(maxlen=LOG_LINES_KEPT)
        self.status = "following"
        self._partial = ""
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._follow, name=f"edgeorch-top-logs-{run_id}-{task}", daemon=True)

    def start(self) -> "LogFollower":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()

    def snapshot(self) -> list[str]:
        with self._lock:
            return [*self.lines, *([self._partial] if self._partial else [])]

    def _follow(self) -> None:
        try:
            for chunk in self.client.stream("logs", {"run_id": self.run_id, "task": self.task, "follow": True}):
                if self._stopped.is_set():
                    return  # leaving the loop closes the stream's connection
                self._add(chunk.get("data", ""))
            self.status = "ended"
        except EdgeorchError as exc:
            self.status = exc.render()

    def _add(self, data: str) -> None:
        with self._lock:
            text = self._partial + data
            *whole, self._partial = text.split("\n")
            self.lines.extend(whole)


@contextmanager
def cbreak(fd: int) -> Iterator[None]:
    """Keys arrive one by one, unechoed; the terminal's settings come back whatever happens."""
    old = termios.tcgetattr(fd)
    tty.setcbreak(fd)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, old)


class Top:
    """The interactive view (see the module docstring); :meth:`run` returns the exit code."""

    def __init__(self, client: Any, *, interval: float) -> None:
        self.client = client
        self.source = OpsSource(client)
        self.interval = interval
        self.state = ViewState()
        self.snap: Snapshot | None = None
        self.error: str | None = None
        self.follower: LogFollower | None = None
        self.items: list[Item] = []
        self.console: Any = None

    def refresh(self) -> None:
        try:
            rows = self.console.size.height if self.console is not None else 0
            self.snap = self.source.snapshot(time.time(), rows=rows)
            self.error = None
        except EdgeorchError as exc:
            self.error = exc.render().splitlines()[0]
        self.items = selectable(self.snap) if self.snap is not None else []
        reconcile(self.state, self.items)

    def draw(self) -> Any:
        from .render import screen

        lines: Sequence[str] = ()
        title, ended = "", False
        if self.follower is not None:
            lines = self.follower.snapshot()
            f = self.follower
            title, ended = f"log of run {f.run_id} {f.task} ({f.status})", f.status != "following"
        return screen(self.snap, self.state, height=self.console.size.height, error=self.error, log_lines=lines,
                      log_title=title, log_ended=ended)

    def act(self, action: Action) -> bool:
        """Carry out ``action`` through its op; False to quit. Refusals become the message line."""
        if action.kind == "quit":
            return False
        if action.kind == "close_logs":
            self._close_logs()
            return True
        item = action.item
        assert item is not None
        try:
            if action.kind == "logs":
                self._open_logs(item)
            elif action.kind == "cancel":
                self.client.call("cancel", {"run_id": item.run_id})
                self.state.message = f"cancel requested for run {item.run_id} ({item.pipeline})"
            elif action.kind in ("pause", "resume"):
                self.client.call(f"pipelines.{action.kind}", {"name": item.pipeline})
                self.state.message = f"pipeline {item.pipeline} {action.kind}d"
        except EdgeorchError as exc:
            self.state.message = exc.render().splitlines()[0]
        return True

    def _open_logs(self, item: Item) -> None:
        task = item.task
        if task is None:  # a run: the task that ran last
            doc = self.client.call("runs.show", {"run_id": item.run_id})
            attempts = [a for t in doc["tasks"] for a in t.get("attempt_list", [])]
            if not attempts:
                self.state.message = f"run {item.run_id} has no attempts yet"
                return
            task = max(attempts, key=lambda a: (a["started_at"], a["id"]))["task"]
        self._close_logs()
        self.follower = LogFollower(self.client, item.run_id, task).start()
        self.state.logs = Item(item.run_id, item.pipeline, task)

    def _close_logs(self) -> None:
        if self.follower is not None:
            self.follower.stop()
        self.follower = None
        self.state.logs = None

    def run(self) -> int:
        from rich.console import Console
        from rich.live import Live

        fd = sys.stdin.fileno()
        console = self.console = Console()
        with cbreak(fd), Live(console=console, screen=True, auto_refresh=False, redirect_stdout=False,
                              redirect_stderr=False) as live:
            next_refresh = 0.0
            while True:
                now = time.monotonic()
                if now >= next_refresh:
                    self.refresh()
                    next_refresh = now + self.interval
                live.update(self.draw(), refresh=True)
                # A followed log redraws more often than the rest: its lines arrive between refreshes.
                wait = max(0.0, next_refresh - time.monotonic())
                if self.follower is not None:
                    wait = min(wait, 0.25)
                ready, _, _ = select.select([fd], [], [], wait)
                if not ready:
                    continue
                data = os.read(fd, 256)
                if not data:  # the terminal went away
                    return 0
                for key in decode(data):
                    action = on_key(self.state, key, self.items, self.snap.paused if self.snap else frozenset())
                    if action is not None:
                        if not self.act(action):
                            self._close_logs()
                            return 0
                        if action.kind in ("cancel", "pause", "resume"):
                            next_refresh = 0.0  # show its effect now
