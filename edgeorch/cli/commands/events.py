"""The daemon's live state (daemon only): ``edgeorch status`` and ``edgeorch events``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from ...model import STREAM_KINDS
from ...textui import format_duration, format_timestamp, print_json, printable
from ..backend import connect, if_the_daemon_goes, load
from ..exits import EXIT_OK, sigterm_as_interrupt
from ..parsing import run_id_type
from . import AddCommand


def register(add: AddCommand) -> None:
    add("status", cmd_status, "the daemon's state: uptime, runs, running tasks, pipelines")

    p = add("events", cmd_events, "stream the daemon's state changes (one line each; --json: JSON lines)")
    p.add_argument("--run", type=run_id_type, metavar="RUN_ID", help="this run's events, and those of no run meanwhile (schedules, reloads, a fatal stop), until it is over (its final state is the last line)")
    p.add_argument("--kind", action="append", choices=sorted(STREAM_KINDS), metavar="KIND",
                   help="only events of this kind (repeat for several): " + ", ".join(sorted(STREAM_KINDS)))


def cmd_status(args: argparse.Namespace) -> int:
    with connect(load(args), "daemon") as backend:
        st = backend.api.status()
    if args.json:
        print_json(st)
        return EXIT_OK
    schema = f", state file schema {st['schema']}" if st.get("schema") else ""  # (an older daemon's answer has none)
    print(f"edgeorch {st['version']} (pid {st['pid']}{schema}), up {format_duration(st['uptime_s'])}")
    print(f"  state      {st['state_file']}\n  socket     {st['socket']}")
    totals = ", ".join(f"{n} {s}" for s, n in sorted(st['runs']['total_by_state'].items()))
    # Counts of the runs the state file holds: retention removes older ones (read as lifetime totals, they fell).
    print(f"  runs       {st['runs']['active']} active" + (f"; in the state file: {totals}" if totals else ""))
    tasks = st["tasks"]
    retrying = ""
    if tasks.get("retry_wait"):  # (an older daemon's answer has none)
        due = max((tasks.get("next_retry_at") or time.time()) - time.time(), 0.0)
        retrying = f", {tasks['retry_wait']} between attempts (the next in {format_duration(due)})"
    print(f"  tasks      {tasks['running']} running, {tasks['ready']} waiting{retrying} "
          f"(parallelism {st['parallelism']})")
    print(f"  pipelines  {st['pipelines']} loaded" + (f", paused: {', '.join(st['paused'])}" if st["paused"] else ""))
    seen = st.get("attention") or {}  # (an older daemon's answer has none)
    failing = seen.get("state_writes_failing")
    if failing:
        print(f"  error      the state file cannot be written since {format_timestamp(failing['since'])}: "
              f"{failing['error']} (runs, inputs and fires wait; free space: docs/operations.md)")
    for r in seen.get("schedules_refused") or ():
        print(f"  error      schedule of {r['pipeline']}: its fire {r['fire_time']} was refused: "
              f"{printable(r['reason'])} (edgeorch events)")
    if seen.get("rules_firing"):
        print(f"  rules      firing: {', '.join(seen['rules_firing'])} (edgeorch monitors)")
    for b in seen.get("promotions_blocked") or ():
        print(f"  models     promotions of {b['model']} blocked" + (f" by rule {b['rule']}" if b.get("rule") else "")
              + f" (edgeorch models show {b['model']})")
    for d in seen.get("deployments_open") or ():
        print(f"  models     deployment {d['id']} of {d['model']} ({d['alias']}) {d['state']}")
    for err in st["pipeline_errors"]:
        print(f"  error      {err}")
    for err in st.get("watch_errors", ()):  # (an older daemon's answer has none)
        print(f"  error      not watched: {err} (edgeorch inputs)")
    return EXIT_OK


def cmd_events(args: argparse.Namespace) -> int:
    with connect(load(args), "daemon") as backend, if_the_daemon_goes(
            "the daemon stopped (a restart?): this stream ended; run `edgeorch events` again once it is back; what happened "
            "meanwhile is in the state file (`edgeorch runs`, `edgeorch show RUN`)"):
        backend.streams_only()
        with sigterm_as_interrupt():
            _follow(backend, args)
    return EXIT_OK


def _follow(backend: Any, args: argparse.Namespace) -> None:
    """Print the daemon's events as they come, until the followed run is over (or forever)."""
    for ev in backend.api.events(args.run, kinds=args.kind):
        if args.json:
            print(json.dumps(ev), flush=True)
        else:
            stamp = time.strftime("%H:%M:%S", time.localtime(ev.get("ts", time.time())))
            print(f"{stamp}  {ev.get('kind', '?'):<10} {event_fields(ev)}".rstrip(), flush=True)
        if args.run is not None and _run_over(ev, args.run):
            if "pipeline" not in ev and not (args.json or args.quiet):  # the daemon's item: over already
                print(f"note: run {args.run} was over before this stream began: `edgeorch show {args.run}` has "
                      f"its tasks and attempts, `edgeorch why {args.run}` what happened and why", file=sys.stderr,
                      flush=True)
            break  # following one run: it is over (its state is the stream's first line when it already was)


def _run_over(ev: dict[str, object], run_id: int) -> bool:
    """Whether ``ev`` says run ``run_id`` finished (succeeded, failed, cancelled)."""
    from ...model import RunState

    if ev.get("kind") != "run" or ev.get("run_id") != run_id:
        return False
    try:
        return RunState(str(ev.get("state"))).finished
    except ValueError:
        return False


LIST_SHOWN = 10
"""The longest list of numbers an event's line shows whole."""


def event_fields(ev: dict[str, object]) -> str:
    """An event's fields as ``key=value`` words (``ts`` and ``kind`` are said apart).

    Unset fields (None) and flags that are off (False) are left out; a text value
    with a space, a quote, an ``=`` or anything unprintable is quoted (``"..."``, a quote in it as ``\\"``), so
    a reason like ``exited with code 7; retry 1 of 2 in 0.2s`` reads as one value;
    every text is made :func:`~edgeorch.textui.printable` (a dropped file's name cannot rewrite the terminal or
    forge a line), with the escapes every human output shows (``\\x1b``, ``\\xff``: JSON's ``\\u001b`` and
    doubled backslashes could not be found in ``edgeorch inputs``' table). A list of more than :data:`LIST_SHOWN` numbers (a
    retention sweep's removed runs, hundreds) is said as its count and range (``runs=497 (56..555)``); ``--json``
    has every one.
    """
    words = []
    for k, v in ev.items():
        if k in ("ts", "kind") or v is None or v is False:
            continue
        if (isinstance(v, list) and len(v) > LIST_SHOWN
                and all(isinstance(x, int) and not isinstance(x, bool) for x in v)):
            words.append(f"{k}={len(v)} ({min(v)}..{max(v)})")
            continue
        if isinstance(v, str):
            quote = not v or not v.isprintable() or any(c in v for c in ' "=')
            shown = printable(v)
            words.append(f'{k}="{shown.replace(chr(34), chr(92) + chr(34))}"' if quote else f"{k}={shown}")
            continue
        words.append(f"{k}={printable(json.dumps(v, separators=(',', ':'), ensure_ascii=False))}")
    return " ".join(words)
