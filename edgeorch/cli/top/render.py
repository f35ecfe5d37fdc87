"""``edgeorch top``'s screen as ``rich`` renderables (no I/O: the screen module prints them).

Five panels under a one-line header: tasks (running and waiting, with what
each holds or why it waits), cores and GPUs (who holds them, live GPU use),
monitoring rules that are not ok (pending, firing, cooling, silenced, with
their last values; under the cores and GPUs), recent runs, drop-folder
activity; the log of the selected task replaces
them while it is open. The footer holds the message line and the
keys. The cursor's row is shown in reverse video.

The layout follows the terminal (:func:`plan`): side by side when the tasks
and runs panels get the width their identifying columns (run, pipeline,
task, state) and some of the reason a task waits need; otherwise stacked at
full width, the cores/GPUs, rules and drop-folder panels below them only
where the height leaves room (a hint names what is hidden). Panels get
the rows their lists have, the recent runs what is left.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.layout import Layout
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from ...resources.cpus import core_groups
from ...textui import format_bytes, format_duration, printable
from .keys import HELP, ViewState
from .model import InputRow, Item, RunRow, Snapshot, TaskRow, short_uuid

STATE_STYLES = {"running": "green", "waiting": "yellow", "retry_wait": "magenta", "succeeded": "green",
                "failed": "red", "cancelled": "dim", "queued": "yellow", "quarantined": "red", "done": "green",
                "duplicate": "dim", "refused": "red", "firing": "bold red", "cooling": "magenta",
                "pending": "yellow", "silenced": "dim"}


NAME_MAX = 24
"""Pipeline and task names are cut (…) past this: a long name would take the room of the reason a task waits."""
TASK_REASON_MIN = 20
"""Side by side only when the tasks panel shows at least this much of why a task waits (HOLDS / WAITS FOR)."""
FLEX_MIN = 10
"""The least of the other panels' last column (REASON, FILE, HELD BY) that side by side must leave."""
PANEL_EXTRA = 4
"""A panel's border and padding, left and right."""
GAP = 2
"""Between two columns of a table (padding (0, 1), none at its edges)."""
CHROME = 3
"""A list panel's rows that are not list rows: its two borders and the table's header."""
NARROW_RUNS_ROWS = 10
"""Stacked: the recent runs' rows before the cores/GPUs, rules and drop-folder panels get any height."""


def screen(snap: Snapshot | None, state: ViewState, *, height: int, error: str | None = None,
           log_lines: Sequence[str] = (), log_title: str = "", log_ended: bool = False) -> Layout:
    """The whole screen for a terminal ``height`` lines high; ``snap`` None (no answer yet) shows ``error``.

    While a log is open it fills the body, showing its last lines that fit. The panels are laid out when
    drawn, for the width and height they get (see :func:`plan`).
    """
    root = Layout()
    root.split_column(Layout(name="header", size=1), Layout(name="body"), Layout(name="footer", size=2))
    root["header"].update(Header(snap, error))
    root["footer"].update(Group(Text(state.message or error or "", style="bold" if state.confirm else ""),
                                Text(HELP, style="dim")))
    if snap is None:
        root["body"].update(Panel(Text(error or "asking the daemon…"), title="edgeorch top"))
        return root
    if state.logs is not None:
        fits = max(1, height - 3 - 2)  # header, footer, the panel's borders
        shown = "\n".join(map(printable, log_lines[-fits:])) or ("(it printed nothing)" if log_ended
                                                                 else "(no output yet)")
        root["body"].update(Panel(Text(shown, no_wrap=True, overflow="ellipsis"),
                                  title=log_title, subtitle="q or Esc closes the log"))
        return root
    root["body"].update(Body(snap, state.cursor))
    return root


class Header:
    """The one-line header, as much of it as the width holds (see :func:`header_text`)."""

    def __init__(self, snap: Snapshot | None, error: str | None) -> None:
        self.snap, self.error = snap, error

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield header_text(self.snap, self.error, options.max_width)


class Body:
    """The panels, laid out for the region they are drawn in (its size is known only then)."""

    def __init__(self, snap: Snapshot, cursor: Item | None) -> None:
        self.snap, self.cursor = snap, cursor

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width, height = options.max_width, options.height or console.height
        yield arrange(self.snap, self.cursor, plan(self.snap, width, height), width)


@dataclass(frozen=True)
class Plan:
    """Where the panels go: side by side (``wide``) or stacked; each panel's height, 0 for a hidden one.

    Side by side, the tasks panel and the cores/GPUs over rules column share the upper ``tasks`` lines, the
    recent runs and drop folders the lower ``runs`` lines.
    """

    wide: bool
    tasks: int
    runs: int
    hardware: int
    rules: int
    inputs: int

    def hidden(self) -> list[str]:
        """The panels left out, as the hint names them."""
        return [name for name, h in (("cores/GPUs", self.hardware), ("rules", self.rules),
                                     ("drop folders", self.inputs)) if not h]


def plan(snap: Snapshot, width: int, height: int) -> Plan:
    """The layout for a body ``width`` × ``height``.

    Side by side when the tasks and runs panels (3/5 of the width) hold their identifying columns whole and
    :data:`TASK_REASON_MIN` of the reason, and the right-hand panels (the rest) theirs; else stacked (at 80
    columns the right-hand panels took the width and cut run ids to ``R…`` and the reason to 2 characters).
    Each panel gets the rows it has; the recent runs, read to fill the terminal, the rest.
    """
    left = width * 3 // 5
    side = max(_inputs_width(snap), _hardware_width(snap))
    if _tasks_width(snap) <= left and _runs_width(snap) <= left and side <= width - left:
        return _plan_wide(snap, height)
    return _plan_stacked(snap, height)


def _needs(snap: Snapshot) -> dict[str, int]:
    """The lines each panel needs to show all its rows (at least one)."""
    cores = len(core_groups((c.core, c.holder) for c in snap.cores))
    return {"tasks": max(1, len(snap.tasks)) + CHROME, "runs": max(1, len(snap.runs)) + CHROME,
            "hardware": max(1, len(snap.gpus) + cores) + CHROME, "rules": max(1, len(snap.rules)) + CHROME,
            "inputs": max(1, len(snap.inputs)) + CHROME}


def _plan_wide(snap: Snapshot, height: int) -> Plan:
    """Upper row as high as its panels' rows need, leaving the lower row at least its rows up to 2/5."""
    need = _needs(snap)
    lower_floor = min(max(need["runs"], need["inputs"]), height * 2 // 5)
    upper = max(0, min(max(need["tasks"], need["hardware"] + need["rules"]), height - lower_floor))
    hardware = min(need["hardware"], max(upper - need["rules"], upper * 3 // 5))
    return Plan(True, upper, height - upper, hardware, upper - hardware, height - upper)


def _plan_stacked(snap: Snapshot, height: int) -> Plan:
    """Tasks, then recent runs, at full width; the other panels below them only where they fit whole."""
    need = _needs(snap)
    runs_floor = min(need["runs"], max(CHROME + 2, height * 2 // 5))
    tasks = max(0, min(need["tasks"], height - runs_floor))
    runs = min(need["runs"], NARROW_RUNS_ROWS + CHROME, height - tasks)
    rest = height - tasks - runs
    extra = {"hardware": 0, "rules": 0, "inputs": 0}
    # Rules that need attention first; "every rule ok" alone is not worth lines here.
    for name in (("rules",) if snap.rules else ()) + ("hardware", "inputs"):
        if need[name] <= rest:
            extra[name], rest = need[name], rest - need[name]
    runs += rest  # what is left: more recent runs
    return Plan(False, tasks, runs, extra["hardware"], extra["rules"], extra["inputs"])


def arrange(snap: Snapshot, cursor: Item | None, p: Plan, width: int) -> Layout:
    """The panels as ``p`` places them, in a body ``width`` columns wide."""
    body = Layout()
    runs = _runs(snap, cursor, hint=_hint(snap, p))
    if p.wide:
        upper, lower = Layout(name="upper", size=p.tasks), Layout(name="lower", size=p.runs)
        body.split_column(upper, lower)
        side = Layout(name="side")
        side.split_column(Layout(_hardware(snap), size=p.hardware), Layout(_rules(snap), size=p.rules))
        upper.split_row(Layout(_tasks(snap, cursor), size=width * 3 // 5), side)
        lower.split_row(Layout(runs, size=width * 3 // 5), Layout(_inputs(snap)))
        return body
    parts = [Layout(_tasks(snap, cursor), size=p.tasks), Layout(runs, size=p.runs)]
    parts += [Layout(panel, size=h) for panel, h in ((_rules(snap), p.rules), (_hardware(snap), p.hardware),
                                                      (_inputs(snap), p.inputs)) if h]
    body.split_column(*parts)
    return body


def _hint(snap: Snapshot, p: Plan) -> str | None:
    """The runs panel's subtitle when panels are hidden: which, and whether a rule fires."""
    hidden = p.hidden()
    if not hidden:
        return None
    firing = sum(r.state == "firing" for r in snap.rules)
    named = [f"rules ({firing} firing)" if name == "rules" and firing else name for name in hidden]
    return "hidden (small terminal): " + ", ".join(named)


HEADER_DROPS = ("version", "clients", "parallelism", "up")
"""What the header leaves out, in this order, while it does not fit: the counts and the clock stay."""


def header_text(snap: Snapshot | None, error: str | None, width: int) -> Text:
    """The header line, shortened (see :data:`HEADER_DROPS`) to fit ``width`` (at 80 columns it lost the
    parallelism, clients and clock off its edge)."""
    if snap is None:
        return Text("edgeorch top", style="bold")
    for n in range(len(HEADER_DROPS) + 1):
        text = _header_line(snap, error, HEADER_DROPS[:n])
        if cell_len(text.plain) <= width:
            break
    return text


def _header_line(snap: Snapshot, error: str | None, dropped: Sequence[str]) -> Text:
    """The header without the ``dropped`` parts."""
    parts = {"version": f"  {snap.version}", "up": f"  up {format_duration(snap.uptime_s)}",
             "parallelism": f", parallelism {snap.parallelism}", "clients": f", {snap.clients} client(s)"}
    for name in dropped:
        parts[name] = ""
    clock = time.strftime("%H:%M:%S", time.localtime(snap.taken_at))
    text = Text.assemble(("edgeorch top", "bold"), parts["version"], parts["up"], "  ", *_counts(snap),
                         f", {snap.active_runs} active run(s)", parts["parallelism"], parts["clients"], f"  {clock}")
    if error:
        text.append(f"  (stale: {error})", style="red")
    return text


def _counts(snap: Snapshot) -> list[tuple[str, str] | str]:
    """``N running, N waiting[, N retrying]``: the task rows the panel shows, counted."""
    parts: list[tuple[str, str] | str] = [(f"{snap.running} running", "green"), ", ",
                                          (f"{snap.waiting} waiting", "yellow")]
    if snap.retrying or snap.retrying_unread:
        unread = f" (+{snap.retrying_unread} not listed)" if snap.retrying_unread else ""
        parts += [", ", (f"{snap.retrying} retrying{unread}", "magenta")]
    return parts


def _styled(state: str) -> Text:
    return Text(state, style=STATE_STYLES.get(state, ""))


def _width(headers: Sequence[str], rows: Sequence[Sequence[str]], caps: dict[int, int], flex_min: int) -> int:
    """The panel width that shows every column but the last whole (up to ``caps``) and ``flex_min`` of the last."""
    widths = [max([cell_len(h), *(cell_len(r[i]) for r in rows)]) for i, h in enumerate(headers[:-1])]
    widths = [min(w, caps[i]) if i in caps else w for i, w in enumerate(widths)]
    return sum(widths) + flex_min + GAP * (len(headers) - 1) + PANEL_EXTRA


TASK_HEADERS = ("RUN", "PIPELINE", "TASK", "STATE", "TRY", "TIME", "HOLDS / WAITS FOR")
RUN_HEADERS = ("RUN", "PIPELINE", "STATE", "TRIGGER", "TOOK", "REASON")
INPUT_HEADERS = ("INPUT", "PIPELINE", "STATE", "RUN", "FILE")
HARDWARE_HEADERS = ("DEVICE", "USE", "HELD BY")


def _task_cells(snap: Snapshot, row: TaskRow) -> tuple[str, ...]:
    """A task row's cells as text (the state styled by the caller)."""
    if row.state == "running" and row.since is not None:
        when = format_duration(snap.taken_at - row.since)
    elif row.state == "retry_wait" and row.since is not None:
        when = "in " + format_duration(row.since - snap.taken_at)
    else:
        when = ""
    return (str(row.run_id), row.pipeline, row.task, row.state, str(row.attempt) if row.attempt else "", when,
            printable(row.detail))


def _tasks_width(snap: Snapshot) -> int:
    return _width(TASK_HEADERS, [_task_cells(snap, r) for r in snap.tasks], {1: NAME_MAX, 2: NAME_MAX},
                  TASK_REASON_MIN)


def _tasks(snap: Snapshot, cursor: Item | None) -> Panel:
    t = Table(expand=True, box=None, pad_edge=False)
    for col in TASK_HEADERS[:-1]:
        capped = col in ("PIPELINE", "TASK")
        t.add_column(col, no_wrap=True, max_width=NAME_MAX if capped else None)
    t.add_column(TASK_HEADERS[-1], ratio=1, overflow="ellipsis", no_wrap=True)
    for row in snap.tasks:
        cells = _task_cells(snap, row)
        selected = cursor == Item(row.run_id, row.pipeline, row.task)
        t.add_row(*cells[:3], _styled(row.state), *cells[4:], style="reverse" if selected else None)
    if not snap.tasks:  # in the flexible column: in TASK it squeezed the others (the header lost RUN)
        t.add_row("", "", "", "", "", "", Text("nothing running or waiting", style="dim"))
    title = Text.assemble("Tasks: ", *_counts(snap))
    return Panel(t, title=title)


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


def _run_cells(snap: Snapshot, r: RunRow) -> tuple[str, ...]:
    """A recent run's cells as text."""
    # As `edgeorch runs` counts it: from the last start (a retried run did not take the hours before its retry).
    took = format_duration((r.finished_at or snap.taken_at) - r.started_at) if r.started_at else "-"
    took += " (resumed)" if r.resumed and r.started_at else ""
    paused = " (paused)" if r.pipeline in snap.paused else ""
    return str(r.run_id), r.pipeline + paused, r.state, r.trigger, took, printable(r.reason or "")


def _runs_width(snap: Snapshot) -> int:
    return _width(RUN_HEADERS, [_run_cells(snap, r) for r in snap.runs], {1: NAME_MAX, 3: NAME_MAX}, FLEX_MIN)


def _runs(snap: Snapshot, cursor: Item | None, hint: str | None = None) -> Panel:
    t = Table(expand=True, box=None, pad_edge=False)
    for col in RUN_HEADERS[:-1]:
        capped = col in ("PIPELINE", "TRIGGER")
        t.add_column(col, no_wrap=True, max_width=NAME_MAX if capped else None)
    t.add_column(RUN_HEADERS[-1], ratio=1, overflow="ellipsis", no_wrap=True)
    for r in snap.runs:
        cells = _run_cells(snap, r)
        t.add_row(*cells[:2], _styled(r.state), *cells[3:],
                  style="reverse" if cursor == Item(r.run_id, r.pipeline) else None)
    return Panel(t, title="Recent runs", subtitle=Text(hint, style="dim") if hint else None)


def _input_cells(i: InputRow) -> tuple[str, ...]:
    return str(i.input_id), i.pipeline, i.state, str(i.run_id or ""), printable(i.name)


def _inputs_width(snap: Snapshot) -> int:
    return _width(INPUT_HEADERS, [_input_cells(i) for i in snap.inputs], {1: NAME_MAX}, FLEX_MIN)


def _hardware_width(snap: Snapshot) -> int:
    """The cores/GPUs panel's width: device names and GPU use (an error read as at most :data:`NAME_MAX`)."""
    rows = [(short_uuid(g.uuid), "9999% 99.9G/99.9G", "") for g in snap.gpus]
    rows += [(which, "", "") for _, which in core_groups((c.core, c.holder) for c in snap.cores)]
    return _width(HARDWARE_HEADERS, rows, {0: NAME_MAX}, FLEX_MIN)


def _inputs(snap: Snapshot) -> Panel:
    t = Table(expand=True, box=None, pad_edge=False)
    for col in INPUT_HEADERS[:-1]:
        t.add_column(col, no_wrap=True, max_width=NAME_MAX if col == "PIPELINE" else None)
    t.add_column(INPUT_HEADERS[-1], ratio=1, overflow="ellipsis", no_wrap=True)
    for i in snap.inputs:
        cells = _input_cells(i)
        t.add_row(*cells[:2], _styled(i.state), *cells[3:])
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
