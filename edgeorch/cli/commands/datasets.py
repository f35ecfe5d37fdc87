"""``edgeorch datasets list|show|add|restore|prune``: data versions (docs/datasets.md).

With a daemon running, ``list``, ``show``, ``add`` and ``prune`` go through it
(``datasets.*`` ops; an add streams its progress); without one, they read the
state file, and ``add`` and ``prune`` write it under the state-dir lock.
``restore`` always runs here, with the caller's own rights on DEST: it gets
the version's manifest from the daemon (or the state file) and reads the
objects under ``<state dir>/datasets`` itself.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from ...textui import Progress, format_bytes, format_timestamp, print_json, print_table, printable
from ..backend import Backend, connect, load
from ..exits import EXIT_OK
from . import AddCommand, subcommand_adder

ADD_ITEM_TIMEOUT_S = 60
"""How long an add through the daemon may go without a progress item before the CLI gives up waiting."""


def register(add: AddCommand) -> None:
    p = add("datasets", cmd_list, "data versions: named, versioned, deduplicated snapshots of files and folders")
    action = subcommand_adder(p.add_subparsers(dest="action", metavar="ACTION"))

    action("list", cmd_list, "every dataset: versions, latest, sizes; the store's totals")
    a = action("show", cmd_show, "a dataset's versions (NAME), or one version's files (NAME@VERSION, NAME@latest)")
    a.add_argument("ref", metavar="NAME[@VERSION]")
    a = action("add", cmd_add, "snapshot a file or folder as the next version of NAME (identical chunks stored once)")
    a.add_argument("name", metavar="NAME", help="the dataset (made on first use): letters, digits, '_', '.', '-'")
    a.add_argument("path", metavar="PATH", help="a file, or a folder (its regular files; links are refused)")
    a.add_argument("--compress", action="store_true", help="store new chunks zstd-compressed (when that is smaller)")
    a = action("restore", cmd_restore, "rebuild a version as the folder DEST (every chunk verified; DEST replaced whole)")
    a.add_argument("ref", metavar="NAME[@VERSION]", help="the version (default: the latest)")
    a.add_argument("dest", metavar="DEST", help="a new or empty folder")
    a.add_argument("--force", action="store_true", help="replace DEST even when it is not empty")
    a = action("prune", cmd_prune, "remove old versions by a retention rule; held versions and each latest stay")
    a.add_argument("name", metavar="NAME", nargs="?", help="only this dataset (default: all)")
    a.add_argument("--keep", type=int, metavar="N", help="keep the newest N versions of each dataset")
    a.add_argument("--max-age", metavar="DURATION", help="keep the versions at most this old (30d, 12h)")
    a.add_argument("--dry-run", action="store_true", help="say what would be removed; remove nothing")


# -- list and show -----------------------------------------------------------------------------


def cmd_list(args: argparse.Namespace) -> int:
    cfg = load(args)
    with connect(cfg, "prefer") as backend:
        res = _read(backend, lambda client: client.call("datasets.list"), _offline_listing)
    if args.json:
        print_json(res)
        return EXIT_OK
    if args.quiet:  # the names alone, one a line
        for d in res["datasets"]:
            print(d["name"])
        return EXIT_OK
    print_table(["dataset", "versions", "latest", "updated", "files", "size", "all versions"],
                [[d["name"], d["versions"], d["latest"], format_timestamp(d["updated_at"]), d["latest_files"],
                  format_bytes(d["latest_size"]), format_bytes(d["logical_bytes"])] for d in res["datasets"]],
                empty="no datasets yet (`edgeorch datasets add NAME PATH` records one)")
    t = res["totals"]
    if res["datasets"]:
        logical = sum(d["logical_bytes"] for d in res["datasets"])
        print(f"stored: {format_bytes(t['stored_bytes'])} on disk in {t['chunks']} chunk(s) for "
              f"{format_bytes(logical)} of versions{_ratio(logical, t['stored_bytes'])}")
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    from ...datasets.names import parse_ref

    cfg = load(args)
    name, version = parse_ref(args.ref)
    one = "@" in args.ref
    with connect(cfg, "prefer") as backend:
        res = _read(backend, lambda client: client.call("datasets.show", {"ref": args.ref, "files": one}),
                    lambda store: _offline_show(store, name, version, one))
    if args.json:
        print_json(res)
        return EXIT_OK
    if args.quiet:  # NAME: the version refs, one a line; NAME@V: its file paths
        lines = [v["ref"] for v in res["versions"]] if not one else [f["path"] for f in res["entries"]]
        for line in lines:
            print(line)
        return EXIT_OK
    if not one:
        print_table(["version", "created", "source", "files", "size", "new on disk", "held"],
                    [[v["version"], format_timestamp(v["created_at"]), _source_text(v), v["files"],
                      format_bytes(v["size"]), format_bytes(v["new_bytes"]), v.get("held") or ""]
                     for v in res["versions"]])
        print(f"{res['dataset']}: {len(res['versions'])} version(s), {format_bytes(res['logical_bytes'])} of "
              f"content in {format_bytes(res['stored_bytes'])} on disk"
              f"{_ratio(res['logical_bytes'], res['stored_bytes'])}")
        _print_pruned(res.get("pruned", []))
        return EXIT_OK
    print(f"{res['ref']}  {format_timestamp(res['created_at'])}  {_source_text(res)}  {res['files']} file(s), "
          f"{format_bytes(res['size'])}, {format_bytes(res['new_bytes'])} new on disk")
    print_table(["path", "size", "mode", "sha256", "chunks"],
                [[f["path"], format_bytes(f["size"]), f"{f['mode']:o}", f["sha256"][:12], len(f["chunks"])]
                 for f in res["entries"]])
    return EXIT_OK


# -- add -----------------------------------------------------------------------------------------


def cmd_add(args: argparse.Namespace) -> int:
    from ...datasets.names import check_name

    cfg = load(args)
    name = check_name(args.name)
    path = Path(os.path.abspath(args.path))
    if not os.path.lexists(path):
        from ...errors import NotFoundError

        raise NotFoundError("no such file or folder", file=str(path), expected="a file or folder to add")
    progress = Progress(enabled=None if not (args.json or args.quiet) else False)
    with connect(cfg, "prefer") as backend:
        try:
            if backend.online:
                doc = None
                for item in backend.client.stream("datasets.add", {"name": name, "path": str(path),
                                                                   "compress": args.compress},
                                                  timeout=ADD_ITEM_TIMEOUT_S):
                    if "progress" in item:
                        p = item["progress"]
                        progress.update(p["done"], p["total"] or None, f"{format_bytes(p['done'])} {name}")
                    else:
                        doc = item["version"]
                assert doc is not None
            else:
                doc = _offline_add(backend, name, path, args.compress, progress)
        finally:
            progress.close()
    if args.json:
        print_json(doc)
        return EXIT_OK
    if args.quiet:  # the new version's ref alone: `ref=$(edgeorch datasets add sales ./batch -q)`
        print(doc["ref"])
        return EXIT_OK
    print(f"{doc['ref']}: {doc['files']} file(s), {format_bytes(doc['size'])}; "
          f"{format_bytes(doc['new_bytes'])} new on disk{_dedupe_text(doc)}")
    for folder in doc.get("left_out", []):
        print(f"left out {printable(folder)}/: edgeorch's own state folder (its database, socket and stored data)")
    return EXIT_OK


def _offline_add(backend: Backend, name: str, path: Path, compress: bool, progress: Progress) -> dict[str, Any]:
    from ...datasets import service

    lock = backend.state_lock()
    try:
        store = backend.open_store(readonly=False)
        assert store is not None
        try:
            return service.add(store, service.object_store(backend.cfg.state_dir), name, path, compress=compress,
                               actor=_me(), progress=lambda done, total: progress.update(
                                   done, total or None, f"{format_bytes(done)} {name}"))
        finally:
            store.close()
    finally:
        lock.release()


# -- restore -------------------------------------------------------------------------------------


def cmd_restore(args: argparse.Namespace) -> int:
    from ...datasets import service
    from ...datasets.names import parse_ref
    from ...datasets.restore import check_dest, restore

    from ...ownstate import check_replaced_folder

    cfg = load(args)
    name, version = parse_ref(args.ref)
    own = [("the state folder", cfg.state_dir), ("the pipelines folder", cfg.pipelines_dir),
           *((("the config file", cfg.source),) if cfg.source is not None else ())]
    check_replaced_folder(args.dest, field="DEST", own=own, cwd=Path.cwd())
    dest = Path(os.path.abspath(args.dest))
    check_dest(dest, force=args.force)  # before any work: a DEST that would be refused anyway
    ref = args.ref if "@" in args.ref else f"{name}@latest"
    with connect(cfg, "prefer") as backend:
        doc = _read(backend, lambda client: client.call("datasets.show", {"ref": ref, "files": True}),
                    lambda store: _offline_show(store, name, version, True))
    progress = Progress(enabled=None if not (args.json or args.quiet) else False)
    try:
        res = restore(service.manifest_of(doc), service.object_store(cfg.state_dir), dest, force=args.force,
                      progress=lambda done, total: progress.update(done, total or None, doc["ref"]))
    finally:
        progress.close()
    if args.json:
        print_json(res)
        return EXIT_OK
    if args.quiet:
        return EXIT_OK
    print(f"{res['dataset']} -> {res['dest']} ({res['files']} file(s), {format_bytes(res['bytes'])})")
    for kept in res["left_behind"]:  # hidden folders of killed restores: they can hold gigabytes
        print(f"note: left {printable(kept['path'])} (what a killed restore left) in place: {kept['why']}; "
              "`rm -r` it once no restore uses it", file=sys.stderr)
    return EXIT_OK


# -- prune ---------------------------------------------------------------------------------------


def cmd_prune(args: argparse.Namespace) -> int:
    from ...datasets.names import check_name
    from ...datasets.retention import Rule

    cfg = load(args)
    if args.name is not None:
        check_name(args.name)
    rule = Rule.parse(args.keep, args.max_age)  # a bad rule is refused before the daemon is asked
    with connect(cfg, "prefer") as backend:
        if backend.online:
            res = backend.client.call("datasets.prune", {"name": args.name, "keep": args.keep,
                                                         "max_age": args.max_age, "dry_run": args.dry_run})
        else:
            res = _offline_prune(backend, rule, args.name, args.dry_run)
    if args.json:
        print_json(res)
        return EXIT_OK
    refs = [v["ref"] for v in res["removed"]]
    if args.quiet:  # the removed (with --dry-run: the removable) versions, one a line
        for ref in refs:
            print(ref)
        return EXIT_OK
    verb = "would remove" if args.dry_run else "removed"
    print(f"{verb} {len(refs)} version(s)" + (f": {', '.join(refs)}" if refs else ""))
    _print_readers(res["removed"], args.dry_run)
    if not args.dry_run:
        print(f"freed {format_bytes(res['bytes_freed'])} ({res['objects_removed']} object(s); "
              f"{res['chunks_removed']} chunk(s) no version uses)")
    if args.verbose or args.dry_run:
        for k in res["kept"]:
            print(f"kept {k['ref']}: {k['reason']}")
    return EXIT_OK


def _print_pruned(pruned: list[dict[str, Any]]) -> None:
    """The pruned versions under ``show NAME``'s table: their records stay (lineage shows where they came from)."""
    if not pruned:
        return
    refs = ", ".join(v["ref"] for v in pruned[-SHOWN_PRUNED:])
    more = f" (the last {SHOWN_PRUNED} of {len(pruned)})" if len(pruned) > SHOWN_PRUNED else ""
    print(f"pruned{more}: {refs}; their content is gone, their records stay "
          "(`edgeorch lineage dataset:NAME@V` shows where one came from and what read it)")


def _print_readers(removed: list[dict[str, Any]], dry_run: bool) -> None:
    """Warn, per version a prune removes (or would), of the finished runs that read it (``read_by``)."""
    for v in removed:
        ids = v.get("read_by") or []
        if not ids:
            continue
        shown = ", ".join(map(str, ids[:SHOWN_PRUNED])) + (f" and {len(ids) - SHOWN_PRUNED} more"
                                                           if len(ids) > SHOWN_PRUNED else "")
        print(f"warning: {v['ref']} was read by finished run(s) {shown}: their "
              f"lineage {'would show' if dry_run else 'shows'} it pruned (its record stays, its content goes), and a "
              "retry of them that reads it fails")


SHOWN_PRUNED = 10
"""Versions or run ids named in a line about pruned versions (every one is in --json)."""


def _offline_prune(backend: Backend, rule: Any, name: str | None, dry_run: bool) -> dict[str, Any]:
    from ...datasets import service

    lock = backend.state_lock()
    try:
        store = backend.open_store(readonly=False)
        assert store is not None
        try:
            res = service.prune(store, service.object_store(backend.cfg.state_dir), rule, name=name, actor=_me(),
                                dry_run=dry_run)
        finally:
            store.close()
    finally:
        lock.release()
    return res | {"dry_run": dry_run, "rule": rule.describe()}


# -- shared --------------------------------------------------------------------------------------


def _read(backend: Backend, online: Any, offline: Any) -> Any:
    """``online(client)`` with a daemon, else ``offline(store)`` on the state file opened read-only."""
    if backend.online:
        return online(backend.client)
    store = backend.open_store(readonly=True)
    if store is None:  # no state file yet: nothing was ever added
        return offline(None)
    try:
        return offline(store)
    finally:
        store.close()


def _offline_listing(store: Any) -> dict[str, Any]:
    from ...datasets import service

    if store is None:
        return {"datasets": [], "totals": {"chunks": 0, "chunk_bytes": 0, "stored_bytes": 0}}
    return service.listing(store)


def _offline_show(store: Any, name: str, version: int | None, one: bool) -> dict[str, Any]:
    from ...datasets import service
    from ...errors import NotFoundError

    if store is None:
        raise NotFoundError(f"no dataset named {name!r}", value=name, expected="(none yet: nothing was added)")
    if one:
        return service.show(store, name, version, with_files=True)
    return service.overview(store, name)


def _source_text(v: dict[str, Any]) -> str:
    if v["source"] == "input":
        return f"input {v['input_id']}"
    if v["source"] == "task":
        return f"run {v['run_id']} {v['task']}"
    return f"add {v['source_path'] or ''}".strip()


def _dedupe_text(doc: dict[str, Any]) -> str:
    if not doc["size"]:
        return ""
    stored_already = max(0, doc["size"] - doc["new_bytes"])
    return f" ({stored_already * 100 // doc['size']}% was stored already or compressed away)"


def _ratio(logical: int, stored: int) -> str:
    return f" ({logical / stored:.1f}x)" if stored else ""


def _me() -> str:
    from .runs import _actor  # the one rule for how this CLI's user is recorded as an actor

    return _actor()
