"""``edgeorch baseline set|list|show``: named, versioned data profiles a drift task compares with
(``reference = "baseline:NAME"``; docs/monitoring.md "Baselines").

With a daemon running every action goes through it (``baselines.*`` ops; a file is read with your rights);
without one, ``set`` profiles the file in this process and records the version under the state-dir lock, and
``list``/``show`` read the state file read-only.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from ...errors import UsageError
from ...textui import format_timestamp, print_json, print_table
from ..backend import connect, load, read
from ..exits import EXIT_OK
from ..parsing import run_id_type
from . import AddCommand, subcommand_adder


def register(add: AddCommand) -> None:
    p = add("baseline", cmd_list, "named, versioned data profiles a drift task compares with "
                                  "(reference = \"baseline:NAME\")")
    action = subcommand_adder(p.add_subparsers(dest="action", metavar="ACTION"))
    a = action("set", cmd_set, "record the next version of a baseline: the profile of FILE (a data file or a saved "
                               "profile .json), or the profile a run's task saved")
    a.add_argument("name", metavar="NAME")
    a.add_argument("file", metavar="FILE", nargs="?", help="a data file (CSV, Parquet, ...) or a saved profile (.json)")
    a.add_argument("--from-run", metavar="RUN", type=run_id_type, help="instead of FILE: the profile this run's --task saved")
    a.add_argument("--task", metavar="TASK", help="with --from-run: the profile task (save = \"NAME.json\")")
    a.add_argument("--description", metavar="TEXT", help="what it is (recorded with the version)")
    action("list", cmd_list, "every baseline: versions, latest, when it was set")
    a = action("show", cmd_show, "a baseline's version (newest by default): where it came from, its columns")
    a.add_argument("name", metavar="NAME")
    a.add_argument("--version", metavar="V", type=int, help="this version instead of the newest")


def cmd_set(args: argparse.Namespace) -> int:
    from ...monitor import baselines

    baselines.check_name(args.name)
    if (args.file is None) == (args.from_run is None):
        raise UsageError("needs FILE or --from-run RUN --task TASK (one of them)", field="FILE",
                         expected="edgeorch baseline set NAME data.csv, or --from-run 12 --task profile")
    if args.from_run is not None and not args.task:
        raise UsageError("needs --task", field="--task", expected="the task of run "
                         f"{args.from_run} that saved a profile")
    if args.file is not None and args.task:
        raise UsageError("is only valid with --from-run", field="--task", value=args.task)
    op_args: dict[str, Any] = {"name": args.name, "description": args.description}
    if args.file is not None:
        op_args["path"] = os.path.abspath(args.file)
    else:
        op_args.update(run=args.from_run, task=args.task)
    with connect(load(args), "prefer") as backend:
        if backend.online:
            client = backend.client
            client.close()
            client.timeout = None  # profiling a large file takes as long as it takes
            res = client.call("baselines.set", {k: v for k, v in op_args.items() if v is not None})
        else:
            res = _offline_set(backend, op_args)
    row = res["baseline"]
    if args.json:
        print_json(res)
    elif getattr(args, "quiet", False):
        print(f"{row['name']}@{row['version']}")
    else:
        print(f"baseline {row['name']} version {row['version']}: {len(row['columns'])} column(s), {row['rows']} "
              f"row(s) from {row['source'].get('path')}")
    return EXIT_OK


def _offline_set(backend: Any, op_args: dict[str, Any]) -> dict[str, Any]:
    from ...monitor import baselines
    from .runs import _actor  # the one rule for how this CLI's user is recorded as an actor

    lock = backend.state_lock()
    try:
        store = backend.open_store(readonly=False)
        try:
            source = None
            if "run" in op_args:
                file = baselines.profile_path_of_run(store, op_args["run"], op_args["task"])
                source = {"kind": "run", "run_id": op_args["run"], "task": op_args["task"], "path": str(file)}
            else:
                file = op_args["path"]
            snap = baselines.snapshot_file(file, source=source)
            row = store.baselines.add(op_args["name"], profile=snap.profile, sha256=snap.sha256, source=snap.source,
                                      columns=snap.columns, rows=snap.rows, description=op_args.get("description"),
                                      actor=_actor())
        finally:
            store.close()
    finally:
        lock.release()
    return {"baseline": row}


def cmd_list(args: argparse.Namespace) -> int:
    res = read(args, "baselines.list", {}, lambda store: {"baselines": store.baselines.listing() if store else []})
    if args.json:
        print_json(res)
    elif getattr(args, "quiet", False):
        for b in res["baselines"]:
            print(b["name"])
    else:
        print_table(["baseline", "versions", "latest", "set"],
                    [[b["name"], b["versions"], b["latest"], format_timestamp(b["updated_at"])]
                     for b in res["baselines"]],
                    empty="no baselines yet (`edgeorch baseline set NAME FILE` records one)")
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    from ...monitor import baselines

    baselines.check_name(args.name)

    def offline(store: Any) -> dict[str, Any]:
        if store is None:
            from ...errors import NotFoundError

            raise NotFoundError(f"no baseline named {args.name!r}", value=args.name, expected="(none set yet)")
        return baselines.show_doc(store, args.name, args.version)

    res = read(args, "baselines.show", {"name": args.name, "version": args.version}, offline)
    if args.json:
        print_json(res)
        return EXIT_OK
    src = res["source"]
    origin = (f"run {src['run_id']} task {src['task']} ({src.get('path')})" if src.get("run_id") is not None
              else f"{src.get('path')} (sha256 {str(src.get('file_sha256'))[:12]})")
    print(f"baseline {res['name']} version {res['version']} of {len(res['versions'])}: {res['rows']} row(s) from "
          f"{origin}, set {format_timestamp(res['created_at'])} by {res['actor'] or '-'}"
          + (f": {res['description']}" if res.get("description") else ""))
    print(f'(a drift task compares with it as reference = "baseline:{res["name"]}" or '
          f'"baseline:{res["name"]}@{res["version"]}")')
    print_table(["column", "type", "count", "nulls", "mean", "min", "max", "top"],
                [[c["column"], c["type"], c["count"], c["nulls"], _num(c.get("mean")), _num(c.get("min")),
                  _num(c.get("max")), ", ".join(str(v) for v, _ in (c.get("top") or [])[:3])]
                 for c in res["summary"]])
    return EXIT_OK


def _num(v: Any) -> str:
    if v is None:
        return ""
    return f"{v:.4g}" if isinstance(v, float) else str(v)
