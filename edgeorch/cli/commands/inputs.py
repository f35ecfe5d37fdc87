"""Drop-folder inputs: ``edgeorch inputs`` (the daemon, or the state file without one) and ``edgeorch requeue``
(daemon only: it moves a file back into a watched folder)."""

from __future__ import annotations

import argparse
import os
from typing import Any

from ...model import InputState
from ...textui import format_bytes, print_json, print_table, printable, shorten_middle
from ..backend import connect, load, read
from ..exits import EXIT_OK
from . import AddCommand


FILE_SHOWN = 60
"""The most characters of a file's name the table shows (`--json` has it whole)."""


def register(add: AddCommand) -> None:
    p = add("inputs", cmd_inputs, "files that arrived in drop folders: state, size, sha256, run; and the quarantine")
    p.add_argument("--pipeline", help="only inputs of this pipeline")
    p.add_argument("--state", choices=[s.value for s in InputState], metavar="STATE",
                   help="only inputs in this state: " + ", ".join(s.value for s in InputState))
    p.add_argument("--limit", "-n", type=int, default=None, help="how many (default 100)")
    p.add_argument("--quarantine", action="store_true", help="list the quarantined files with their reasons")

    p = add("requeue", cmd_requeue, "send a quarantined file back into its drop folder (it is processed again)")
    p.add_argument("file", metavar="FILE", help="a file in <state>/quarantine")


def cmd_inputs(args: argparse.Namespace) -> int:
    from ...triggers.inputs_view import inputs_doc

    cfg = load(args)
    query = {"pipeline": args.pipeline, "state": args.state, "limit": args.limit}
    # Without a daemon, the state file read-only: what arrived and what was quarantined while it is down.
    res = read(args, "inputs.list", query, lambda store: inputs_doc(store, cfg.state_dir / "quarantine", **query))
    if args.json:
        print_json(res)
        return EXIT_OK
    if args.quiet:  # the ids alone (with --quarantine: the files), one a line
        for line in ([d.get("path") for d in res["quarantine"]] if args.quarantine else [i["id"] for i in res["inputs"]]):
            print(line)
        return EXIT_OK
    if args.quarantine:
        print_table(["file", "pipeline", "run", "reason"],
                    [[d.get("path"), d.get("pipeline", "-"), d.get("run_id", "-"), d.get("reason")]
                     for d in res["quarantine"]], empty="the quarantine is empty")
        return EXIT_OK
    print_table(["id", "file", "pipeline", "state", "size", "sha256", "run", "run state", "reason"],
                [[i["id"], shorten_middle(i["source_name"], FILE_SHOWN), i["pipeline"], i["state"], "-" if i["size"] is None else format_bytes(i["size"]),
                  (i["sha256"] or "-")[:12], i["run_id"] or "-", i["run_state"] or "-", _reason(i)]
                 for i in res["inputs"]],
                empty="no inputs match" if args.pipeline or args.state else
                "no inputs yet (files dropped into a watched folder appear here)")
    if res["quarantine"]:
        print(f"quarantine: {len(res['quarantine'])} file(s) in {cfg.state_dir / 'quarantine'} "
              "(`edgeorch inputs --quarantine`; `edgeorch requeue FILE` sends one back)")
    for r in res.get("retrying", []):  # dropped, not recorded yet: no row above says so
        print(f"retrying  {printable(r['file'])} ({r['pipeline']}): {r['reason']}; attempt {r['attempts']}, "
              f"next in {r['next_in_s']:g}s")
    for e in res.get("watch_errors", []):
        print(f"error  {e}")
    return EXIT_OK


def cmd_requeue(args: argparse.Namespace) -> int:
    with connect(load(args), "daemon") as backend:
        # A bare name not in this folder is one in the quarantine (the daemon's folder, as `inputs --quarantine`).
        bare = os.sep not in args.file and not os.path.lexists(args.file)
        res = backend.client.call("inputs.requeue", {"file": args.file if bare else os.path.abspath(args.file)})
    if args.json:
        print_json(res)
    elif not args.quiet:
        print(f"{printable(res['file'])} -> {printable(res['requeued_to'])}")
    return EXIT_OK


def _reason(row: dict[str, Any]) -> str:
    """An input's reason, and that its kept file is gone when ``[inbox] keep`` removed it (a ``quarantined`` one
    read as if the file were still in quarantine: only `edgeorch retry` said otherwise)."""
    reason = row.get("reason") or ""
    if row.get("removed_at"):
        reason = (reason + "; " if reason else "") + "its file was removed ([inbox] keep)"
    return reason
