"""``edgeorch top``: a live full-screen view of the daemon (edgeorch/cli/top/), or one snapshot as JSON."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time

from ...errors import UsageError
from ...textui import print_json
from ..backend import connect, load
from ..exits import EXIT_OK
from . import AddCommand

MIN_INTERVAL_S = 0.2
MAX_INTERVAL_S = 3600.0
"""An hour: a view that refreshes less often shows nothing live (an infinite one overflowed a timestamp)."""


def register(add: AddCommand) -> None:
    p = add("top", cmd_top, "a live full-screen view: running and waiting tasks with their reasons, cores and GPUs "
                            "with who holds them and live GPU use, monitoring rules not ok, recent runs, drop-folder "
                            "activity; keys show a "
                            "task's log, cancel a run, pause a pipeline (--json: one snapshot)")
    p.add_argument("--interval", type=float, default=1.0, metavar="SECONDS",
                   help="seconds between refreshes (default 1, 0.2 to 3600)")


def cmd_top(args: argparse.Namespace) -> int:
    """Full-screen on a terminal; ``--json`` prints one snapshot (the same rows) and exits."""
    if not MIN_INTERVAL_S <= args.interval <= MAX_INTERVAL_S:  # nan fails both; inf overflowed a timestamp
        raise UsageError("is out of range", field="--interval", value=args.interval,
                         expected=f"{MIN_INTERVAL_S:g} to {MAX_INTERVAL_S:g} seconds")
    interactive = not args.json
    if interactive and not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise UsageError("edgeorch top needs a terminal (stdin and stdout)",
                         hint="`edgeorch top --json` prints one snapshot for scripts")
    cfg = load(args)
    with connect(cfg, "daemon") as backend:
        from ..top.screen import OpsSource, Top

        if not interactive:
            snap = OpsSource(backend.client).snapshot(time.time())
            doc = dataclasses.asdict(snap)
            doc["paused"] = sorted(snap.paused)
            print_json(doc)
            return EXIT_OK
        return Top(backend.client, interval=args.interval).run()
