"""``edgeorch lineage THING`` (upstream and downstream as a tree, ``--json``, ``--dot``) and
``edgeorch lineage export --openlineage FILE`` (OpenLineage run events). docs/lineage.md.

Through the daemon when one answers (ops ``lineage``, ``lineage.export``), else
reading the state file directly; both answer with :func:`edgeorch.lineage.query`
and :func:`edgeorch.lineage.run_events`, so the output is the same.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import IO, Any, Iterator, TextIO

from ...errors import EdgeorchError, NotFoundError, UsageError
from ...textui import dumps, print_json
from ..backend import DAEMON_TIMEOUT_S, Backend, connect, load
from ..exits import EXIT_OK
from ..parsing import run_id_type
from . import AddCommand

EXPORT = "export"
"""The THING that means "export" (a file named so is ``./export`` or ``file:export``)."""


def register(add: AddCommand) -> None:
    from ...lineage import DEFAULT_DEPTH, DEFAULT_MAX_NODES, DEFAULT_NAMESPACE

    p = add("lineage", cmd_lineage,
            "what a run, task or file was made from (upstream) and what was made from it (downstream); "
            "`lineage export --openlineage FILE` writes OpenLineage run events")
    p.add_argument("thing", metavar="THING",
                   help="a run (5), a task (5/train), a file path, sha256:HEX, input:ID (a drop-folder input), "
                        "dataset:NAME@V or model:NAME@V (@latest or no @: the newest), or `export`")
    way = p.add_mutually_exclusive_group()
    way.add_argument("--upstream", action="store_true", help="only what it was made from")
    way.add_argument("--downstream", action="store_true", help="only what was made from it")
    p.add_argument("--depth", type=int, default=DEFAULT_DEPTH, metavar="N",
                   help=f"steps to follow in each direction (default {DEFAULT_DEPTH})")
    p.add_argument("--max-nodes", type=int, default=DEFAULT_MAX_NODES, metavar="N",
                   help=f"stop adding nodes after N (default {DEFAULT_MAX_NODES}; the output says truncated)")
    p.add_argument("--dot", action="store_true", help="print a Graphviz digraph instead (e.g. `| dot -Tsvg`)")
    ex = p.add_argument_group("export (edgeorch lineage export ...)")
    ex.add_argument("--openlineage", metavar="FILE", help="write the events as JSON lines to FILE ('-': stdout)")
    ex.add_argument("--command", metavar="CMD", help="pipe the JSON lines into CMD's standard input (run by sh)")
    ex.add_argument("--since", type=run_id_type, default=0, metavar="RUN_ID", help="only runs after this id")
    ex.add_argument("--run", type=run_id_type, metavar="RUN_ID", help="only this run")
    ex.add_argument("--namespace", default=DEFAULT_NAMESPACE,
                    help=f"the OpenLineage job namespace (default {DEFAULT_NAMESPACE!r})")


def cmd_lineage(args: argparse.Namespace) -> int:
    if args.thing == EXPORT:
        return _export(args)
    for flag, value in (("--openlineage", args.openlineage), ("--command", args.command), ("--run", args.run)):
        if value is not None:
            raise UsageError("is only for `edgeorch lineage export`", field=flag, value=value)
    if args.dot and args.json:
        raise UsageError("--dot and --json print different formats; choose one", field="--dot")
    directions = ["upstream"] if args.upstream else ["downstream"] if args.downstream else ["upstream", "downstream"]
    request = {"thing": args.thing, "cwd": os.getcwd(), "sha256": _current_sha256(args.thing),
               "directions": directions, "depth": args.depth, "max_nodes": args.max_nodes}
    cfg = load(args)
    with connect(cfg, "prefer") as backend:
        if backend.online:
            doc = backend.client.call("lineage", request)
        else:
            doc = _offline(backend, request)
    from ...lineage import dot, tree

    if args.json:
        print_json(doc)
    elif args.dot:
        sys.stdout.write(dot(doc))
    else:
        print(tree(doc))
    return EXIT_OK


def _current_sha256(thing: str) -> str | None:
    """The sha256 of the file a THING names when it exists here (that version's lineage), else None."""
    from ...engine.files import sha256_file
    from ...lineage import parse_thing

    parsed = parse_thing(thing, cwd=os.getcwd())  # a bad THING is refused here, before any connection
    if parsed.kind != "file" or parsed.path is None or not os.path.isfile(parsed.path):
        return None
    try:
        return sha256_file(Path(parsed.path))
    except OSError:
        return None  # unreadable here: the newest recorded version


def _offline(backend: Backend, request: dict[str, Any]) -> dict[str, Any]:
    from ...lineage import query

    store = backend.open_store(readonly=True)
    if store is None:
        raise NotFoundError("nothing is recorded yet (no state file)", file=str(backend.cfg.state_file))
    try:
        return query(store, request["thing"], cwd=request["cwd"], sha256=request["sha256"],
                     directions=request["directions"], depth=request["depth"], max_nodes=request["max_nodes"])
    finally:
        store.close()


def _export(args: argparse.Namespace) -> int:
    if (args.openlineage is None) == (args.command is None):
        raise UsageError("needs exactly one destination", field="export",
                         expected="--openlineage FILE (or - for stdout), or --command CMD")
    if args.dot or args.upstream or args.downstream:
        raise UsageError("--dot, --upstream and --downstream are for a lineage query, not export", field="export")
    if args.openlineage not in (None, "-"):
        from ...ownstate import check_output_file

        check_output_file(args.openlineage, field="--openlineage")
    cfg = load(args)
    request: dict[str, Any] = {"namespace": args.namespace, "since": args.since}
    if args.run is not None:
        request["run_id"] = args.run
    with connect(cfg, "prefer") as backend:
        if backend.online:
            events: Iterator[dict[str, Any]] = (item["event"] for item in backend.client.stream(
                "lineage.export", request, timeout=DAEMON_TIMEOUT_S))
            count, runs = _write(events, args)
        else:
            store = backend.open_store(readonly=True)
            if store is None:
                raise NotFoundError("nothing is recorded yet (no state file)", file=str(cfg.state_file))
            try:
                from ...lineage import export

                count, runs = _write(export(store, namespace=args.namespace, since=args.since, run_id=args.run), args)
            finally:
                store.close()
    where = args.openlineage if args.openlineage is not None else f"command {args.command!r}"
    summary = {"events": count, "runs": runs, "to": where}
    if args.json:
        print_json(summary, out=sys.stderr if args.openlineage == "-" else None)
    elif args.openlineage != "-":
        print(f"{count} OpenLineage event(s) of {runs} run(s) written to {where}")
    return EXIT_OK


def _write(events: Iterator[dict[str, Any]], args: argparse.Namespace) -> tuple[int, int]:
    """Write ``events`` as JSON lines to the export's destination; returns (events, distinct runs)."""
    if args.command is not None:
        import subprocess

        proc = subprocess.Popen(args.command, shell=True, stdin=subprocess.PIPE, text=True)
        assert proc.stdin is not None
        try:
            counts = _lines(events, proc.stdin)
            proc.stdin.close()
        except BrokenPipeError:  # the command stopped reading: what it took is unknown
            counts = (0, 0)
            try:
                proc.stdin.close()  # drops what is buffered; left open, it fails again when collected
            except BrokenPipeError:
                pass
        code = proc.wait()
        if code != 0:
            raise EdgeorchError(f"the export command exited with code {code}", field="--command", value=args.command)
        return counts
    if args.openlineage == "-":
        return _lines(events, sys.stdout)
    from ...durable import replacing

    try:
        with replacing(args.openlineage, text=True, durable=False) as out:  # a reader never sees half an export
            counts = _lines(events, out)
    except OSError as exc:
        raise UsageError(f"cannot write the export: {exc.strerror or exc}", field="--openlineage",
                         value=args.openlineage) from None
    return counts


def _lines(events: Iterator[dict[str, Any]], out: TextIO | IO[Any]) -> tuple[int, int]:
    count, runs = 0, set()
    for event in events:
        out.write(dumps(event, indent=None) + "\n")
        count += 1
        parent = event["run"].get("facets", {}).get("parent")
        runs.add(parent["run"]["runId"] if parent else event["run"]["runId"])
    out.flush()
    return count, len(runs)
