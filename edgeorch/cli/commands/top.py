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


def register(add: AddCommand) -> None:
    p = add("top", cmd_top, "a live full-screen view: running and waiting tasks with their reasons, cores and GPUs "
                            "with who holds them and live GPU use, monitoring rules not ok, recent runs, drop-folder "
                            "activity; keys show a "
                            "task's log, cancel a run, pause a pipeline (--json: one snapshot)")
    p.add_argument("--interval", type=float, default=1.0, metavar="SECONDS",
                   help="seconds between refreshes (default 1, at least 0.2)")


def cmd_top(args: argparse.Namespace) -> int:
    """Full-screen on a terminal; ``--json`` prints one snapshot (the same rows) and exits."""
    if args.interval < MIN_INTERVAL_S:
        raise UsageError("is too short", field="--interval", value=args.interval, expected="at least 0.2 seconds")
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
