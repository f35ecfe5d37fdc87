"""``edgeorch top``'s screen as ``rich`` renderables (no I/O: the screen module prints them).

Five panels under a one-line header: tasks (running and waiting, with what
each holds or why it waits), cores and GPUs (who holds them, live GPU use),
monitoring rules that are not ok (pending, firing, cooling, silenced, with
their last values; under the cores and GPUs), recent runs, drop-folder
activity; the log of the selected task replaces
them while it is open. The footer holds the message line and the
keys. The cursor's row is shown in reverse video.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from rich.console import Group
from rich.layout import Layout
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from ...resources.cpus import core_groups
from ...textui import format_bytes, format_duration, printable
from .keys import HELP, ViewState
from .model import Item, Snapshot, short_uuid

STATE_STYLES = {"running": "green", "waiting": "yellow", "retry_wait": "magenta", "succeeded": "green",
                "failed": "red", "cancelled": "dim", "queued": "yellow", "quarantined": "red", "done": "green",
                "duplicate": "dim", "refused": "red", "firing": "bold red", "cooling": "magenta",
                "pending": "yellow", "silenced": "dim"}


def screen(snap: Snapshot | None, state: ViewState, *, height: int, error: str | None = None,
           log_lines: Sequence[str] = (), log_title: str = "") -> Layout:
    """The whole screen for a terminal ``height`` lines high; ``snap`` None (no answer yet) shows ``error``.

    While a log is open it fills the body, showing its last lines that fit.
    """
    root = Layout()
    root.split_column(Layout(name="header", size=1), Layout(name="body"), Layout(name="footer", size=2))
    root["header"].update(_header(snap, error))
    root["footer"].update(Group(Text(state.message or error or "", style="bold" if state.confirm else ""),
                                Text(HELP, style="dim")))
    if snap is None:
        root["body"].update(Panel(Text(error or "asking the daemon…"), title="edgeorch top"))
        return root
    if state.logs is not None:
        fits = max(1, height - 3 - 2)  # header, footer, the panel's borders
        shown = "\n".join(map(printable, log_lines[-fits:])) or "(no output yet)"
        root["body"].update(Panel(Text(shown, no_wrap=True, overflow="ellipsis"),
                                  title=log_title, subtitle="q or Esc closes the log"))
        return root
    cursor = state.cursor
    upper, lower = Layout(name="upper", ratio=3), Layout(name="lower", ratio=2)
    root["body"].split_column(upper, lower)
    side = Layout(name="side", ratio=2)
    side.split_column(Layout(_hardware(snap), ratio=3), Layout(_rules(snap), ratio=2))
    upper.split_row(Layout(_tasks(snap, cursor), ratio=3), side)
    lower.split_row(Layout(_runs(snap, cursor), ratio=3), Layout(_inputs(snap), ratio=2))
    return root


def _header(snap: Snapshot | None, error: str | None) -> Text:
    if snap is None:
        return Text("edgeorch top", style="bold")
    clock = time.strftime("%H:%M:%S", time.localtime(snap.taken_at))
    text = Text.assemble(("edgeorch top", "bold"), f"  {snap.version}  up {format_duration(snap.uptime_s)}  ",
                         (f"{snap.running} running", "green"), ", ", (f"{snap.waiting} waiting", "yellow"),
                         f", {snap.active_runs} active run(s), parallelism {snap.parallelism}, "
                         f"{snap.clients} client(s)  {clock}")
    if error:
        text.append(f"  (stale: {error})", style="red")
    return text


def _styled(state: str) -> Text:
    return Text(state, style=STATE_STYLES.get(state, ""))


def _tasks(snap: Snapshot, cursor: Item | None) -> Panel:
    t = Table(expand=True, box=None, pad_edge=False)
    for col in ("RUN", "PIPELINE", "TASK", "STATE", "TRY", "TIME"):
        t.add_column(col, no_wrap=True)
    t.add_column("HOLDS / WAITS FOR", ratio=1, overflow="ellipsis", no_wrap=True)
    for row in snap.tasks:
        if row.state == "running" and row.since is not None:
            when = format_duration(snap.taken_at - row.since)
        elif row.state == "retry_wait" and row.since is not None:
            when = "in " + format_duration(row.since - snap.taken_at)
        else:
            when = ""
        selected = cursor == Item(row.run_id, row.pipeline, row.task)
        t.add_row(str(row.run_id), row.pipeline, row.task, _styled(row.state), str(row.attempt) if row.attempt else "",
                  when, printable(row.detail), style="reverse" if selected else None)
    if not snap.tasks:
        t.add_row("", "", Text("nothing running or waiting", style="dim"), "", "", "", "")
    return Panel(t, title=f"Tasks: {snap.running} running, {snap.waiting} waiting")


def _hardware(snap: Snapshot) -> Panel:
    t = Table(expand=True, box=None, pad_edge=False)
    t.add_column("DEVICE", no_wrap=True)
    t.add_column("USE", no_wrap=True)
    t.add_column("HELD BY", ratio=1, overflow="ellipsis", no_wrap=True)
    for g in snap.gpus:
        if g.error:
            use = Text(f"reading failed: {g.error}", style="red")
        else:
            util = f"{g.utilization}%" if g.utilization is not None else "?%"
            used = format_bytes(g.memory_used) if g.memory_used is not None else "?"
            use = Text(f"{util} {used}/{format_bytes(g.memory_total)}")
        held = Text(f"DRAINED: {g.drained}", style="red") if g.drained else Text(", ".join(g.holders) or "free",
                                                                                 style="" if g.holders else "dim")
        t.add_row(short_uuid(g.uuid), use, held)
    for holder, which in core_groups((c.core, c.holder) for c in snap.cores):  # a row per holder, not per core
        t.add_row(which, "", Text(holder or "free", style="" if holder else "dim"))
    mem = f"memory {format_bytes(snap.memory_leased)} leased, {format_bytes(snap.memory_available)} available"
    return Panel(t, title="Cores and GPUs", subtitle=f"{mem}; GPUs: {snap.gpu_backend}" if snap.gpu_backend else mem)


def _runs(snap: Snapshot, cursor: Item | None) -> Panel:
    t = Table(expand=True, box=None, pad_edge=False)
    for col in ("RUN", "PIPELINE", "STATE", "TRIGGER", "TOOK"):
        t.add_column(col, no_wrap=True)
    t.add_column("REASON", ratio=1, overflow="ellipsis", no_wrap=True)
    for r in snap.runs:
        # As `edgeorch runs` counts it: from the last start (a retried run did not take the hours before its retry).
        took = format_duration((r.finished_at or snap.taken_at) - r.started_at) if r.started_at else "-"
        took += " (resumed)" if r.resumed and r.started_at else ""
        paused = " (paused)" if r.pipeline in snap.paused else ""
        t.add_row(str(r.run_id), r.pipeline + paused, _styled(r.state), r.trigger, took, printable(r.reason or ""),
                  style="reverse" if cursor == Item(r.run_id, r.pipeline) else None)
    return Panel(t, title="Recent runs")


def _inputs(snap: Snapshot) -> Panel:
    t = Table(expand=True, box=None, pad_edge=False)
    for col in ("INPUT", "PIPELINE", "STATE", "RUN"):
        t.add_column(col, no_wrap=True)
    t.add_column("FILE", ratio=1, overflow="ellipsis", no_wrap=True)
    for i in snap.inputs:
        t.add_row(str(i.input_id), i.pipeline, _styled(i.state), str(i.run_id or ""), printable(i.name))
    counts = ", ".join(f"{n} {s}" for s, n in sorted(snap.input_counts.items())) or "none yet"
    return Panel(t, title="Drop folders", subtitle=counts)


def _rules(snap: Snapshot) -> Panel:
    t = Table(expand=True, box=None, pad_edge=False)
    for col in ("RULE", "STATE", "VALUE"):
        t.add_column(col, no_wrap=True)
    t.add_column("NOTE", ratio=1, overflow="ellipsis", no_wrap=True)  # the condition is in `edgeorch monitors`
    for r in snap.rules:
        value = "-" if r.last_value is None else f"{r.last_value:.4g}"
        t.add_row(r.name, _styled(r.state), value, printable(r.note))
    if not snap.rules:
        t.add_row(Text("every rule ok", style="dim"), "", "", "")
    firing = sum(r.state == "firing" for r in snap.rules)
    return Panel(t, title=f"Rules: {firing} firing" if firing else "Rules", subtitle="edgeorch monitors")
