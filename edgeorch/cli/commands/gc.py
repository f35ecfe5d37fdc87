"""``edgeorch gc``: remove old runs (rows and folders), a dry run unless ``--apply`` (docs/operations.md "Old runs")."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from ...textui import format_bytes, format_timestamp, print_json, print_table
from ..backend import Backend, connect, load
from ..exits import EXIT_OK
from . import AddCommand


def register(add: AddCommand) -> None:
    p = add("gc", cmd_gc, "remove runs finished before a bound, with their folders; "
                          "a dry run (prints what would go and what is held, and why) unless --apply")
    p.add_argument("--older-than", metavar="DURATION",
                   help="runs finished more than this long ago, e.g. 90d, 12h (default: [retention] runs)")
    p.add_argument("--pipeline", help="only runs of this pipeline")
    p.add_argument("--keep-last", type=int, metavar="N",
                   help="always keep the latest N runs of each pipeline (default: [retention] keep_last)")
    p.add_argument("--apply", action="store_true", help="remove them (default: only say what would be removed)")


def cmd_gc(args: argparse.Namespace) -> int:
    from ...retention.gc import parse_older_than, request_for

    cfg = load(args)
    older = None if args.older_than is None else parse_older_than(args.older_than, field="--older-than")
    request = request_for(cfg.retention, older_than=older, pipeline=args.pipeline, keep_last=args.keep_last,
                          apply=args.apply, actor=_actor(), config_file=str(cfg.source or "<embedded defaults>"))
    with connect(cfg, "prefer") as backend:
        if backend.online:
            # As long as it takes: the daemon removes a long history page by page (minutes for months of runs).
            report = backend.client.call("gc.apply" if request.apply else "gc",
                                         {"older_than": request.older_than, "pipeline": request.pipeline,
                                          "keep_last": request.keep_last}, unbounded=True)
        else:
            report = _offline(backend, request)
        if not report["runs"] and args.pipeline:  # a typo must not read as "nothing to remove"
            from .runs import require_known_pipeline

            require_known_pipeline(backend, args.pipeline)
    if args.json:
        print_json(report)
    elif getattr(args, "quiet", False):  # -q: the ids of the runs removed (or that would be), one a line
        for r in report["runs"]:
            print(r["run_id"])
    else:
        _print_report(report)
    for err in report["errors"]:
        print(f"edgeorch: warning: cannot remove {err} (the next gc tries again)", file=sys.stderr)
    return EXIT_OK


def _offline(backend: Backend, request: Any) -> dict[str, Any]:
    """No daemon: a dry run reads the state file; ``--apply`` holds the state lock (no engine may run meanwhile)."""
    from ...retention.gc import collect

    cfg = backend.cfg
    if not request.apply:
        store = backend.open_store(readonly=True)
        if store is None:
            return _empty(request)
        try:
            return collect(store, cfg.runs_dir, request)
        finally:
            store.close()
    with backend.state_lock():
        store = backend.open_store(readonly=False)
        assert store is not None  # a writer's store is created when missing
        try:
            return collect(store, cfg.runs_dir, request)
        finally:
            store.close()


def _empty(request: Any) -> dict[str, Any]:
    """The report of a gc with no state file yet: nothing to remove."""
    return {"apply": request.apply, "older_than": request.older_than, "cutoff": None, "pipeline": request.pipeline,
            "keep_last": request.keep_last, "runs": [], "held": [], "strays": [], "rows": {}, "bytes": 0, "errors": []}


def _print_report(r: dict[str, Any]) -> None:
    from ...retention.gc import human_duration

    verb = "removed" if r["apply"] else "would remove"
    scope = f" of {r['pipeline']}" if r["pipeline"] else ""
    print(f"runs{scope} finished more than {human_duration(r['older_than'])} ago"
          + (f" (before {format_timestamp(r['cutoff'])})" if r["cutoff"] is not None else "")
          + (f", keeping the latest {r['keep_last']} of each pipeline" if r["keep_last"] else ""))
    if r["runs"]:
        print(f"\n{verb} {len(r['runs'])} run(s):")
        print_table(["run", "pipeline", "state", "finished", "size", "folder"],
                    [[x["run_id"], x["pipeline"], x["state"], format_timestamp(x["finished_at"]),
                      format_bytes(x["bytes"]), x["folder"]] for x in r["runs"]])
    made = [f"{v} (run {x['run_id']})" for x in r["runs"] for v in x.get("models", [])]
    if made:
        shown = ", ".join(made[:SHOWN_MADE]) + (f" and {len(made) - SHOWN_MADE} more" if len(made) > SHOWN_MADE else "")
        print(f"\nmodel versions made by {'these' if r['apply'] else 'those'} runs: {shown}. Their registry records "
              f"stay (metrics, sha256, gates); their files and lineage {'went' if r['apply'] else 'go'} with the "
              "runs: `lineage` no longer finds what made them, and one can be promoted or rolled back to only "
              "while a deployment target still holds its staged copy. An alias's version, and what the next three "
              "rollbacks of an alias return to, are always held.")
    _print_datasets_read(r)
    if r["held"]:
        print(f"\nkept {len(r['held'])} run(s) past the bound:")
        print_table(["run", "pipeline", "state", "finished", "why"],
                    [[x["run_id"], x["pipeline"], x["state"], format_timestamp(x["finished_at"]),
                      _why(x["holds"])] for x in r["held"]])
    if r["strays"]:
        print("\nfolders no run names (left by an interrupted removal, or by a restored older state file):")
        print_table(["path", "kind", "size", "folder"],
                    [[x["path"], x["kind"], format_bytes(x["bytes"]), x["folder"]] for x in r["strays"]])
    rows = ", ".join(f"{t} {n}" for t, n in r["rows"].items() if n)
    if rows:
        print(f"\nrows {'deleted' if r['apply'] else 'to delete'}: {rows}")
    if not r["runs"] and not r["strays"]:
        print("\nnothing to remove")
    print(f"\n{'freed' if r['apply'] else 'would free'} {format_bytes(r['bytes'])}"
          + ("" if r["apply"] else "; a dry run: nothing was changed (--apply removes)"))


def _print_datasets_read(r: dict[str, Any]) -> None:
    """The note naming the data versions the gc's runs read (``datasets_read``): lineage keeps that they did."""
    readers: dict[str, list[int]] = {}
    for x in r["runs"]:
        for ref in x.get("datasets_read", []):
            readers.setdefault(ref, []).append(x["run_id"])
    if not readers:
        return
    items = [f"{ref} (run{'s' if len(ids) > 1 else ''} {_ids_text(ids)})" for ref, ids in sorted(readers.items())]
    shown = ", ".join(items[:SHOWN_MADE]) + (f" and {len(items) - SHOWN_MADE} more" if len(items) > SHOWN_MADE else "")
    print(f"\ndata versions read by {'these' if r['apply'] else 'those'} runs: {shown}. Each version "
          f"{'keeps' if r['apply'] else 'will keep'} a record that these runs read it and were removed by gc "
          "(`edgeorch lineage dataset:NAME@V --downstream` says so); what the runs made from it goes with them.")


def _ids_text(ids: list[int]) -> str:
    """Run ids, the first :data:`SHOWN_MADE` and how many more."""
    return ", ".join(map(str, ids[:SHOWN_MADE])) + (f" and {len(ids) - SHOWN_MADE} more" if len(ids) > SHOWN_MADE
                                                     else "")


SHOWN_MADE = 10
"""Model versions named in the note on what a gc's runs made (every one is in --json)."""

SHOWN_HOLDS = 3
"""Reasons shown per held run: a cache source reused by 500 runs has 1,000 (every one is in --json)."""


def _why(holds: list[dict[str, Any]]) -> str:
    """A held run's reasons, the first :data:`SHOWN_HOLDS` and how many more."""
    shown = "; ".join(h["reason"] for h in holds[:SHOWN_HOLDS])
    more = len(holds) - SHOWN_HOLDS
    return shown + (f"; and {more} more (--json lists them)" if more > 0 else "")


def _actor() -> str:
    """This user as a removal's actor, as the daemon records a peer (``alice (uid 1000)``)."""
    from ...control.auth import user_name

    uid = os.getuid()
    return f"{user_name(uid)} (uid {uid})"
