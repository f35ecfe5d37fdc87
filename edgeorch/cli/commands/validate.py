"""``edgeorch validate``: check pipeline files without running anything (no daemon involved)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ...pipelines import validate_path
from ...textui import print_json
from ..backend import load
from ..exits import EXIT_FAILED, EXIT_OK
from . import AddCommand


def register(add: AddCommand) -> None:
    p = add("validate", cmd_validate, "check pipeline files without running anything (exit 0 valid, 1 invalid)")
    p.add_argument("path", nargs="?", help="a pipeline file or folder (default: the configured pipelines folder)")


def cmd_validate(args: argparse.Namespace) -> int:
    """Exit 0 when every file under ``args.path`` (or the pipelines folder) is valid, else 1."""
    path = Path(args.path) if args.path else load(args).pipelines_dir
    report = validate_path(path)
    if args.json:
        print_json({"ok": report.ok, "files": [str(f) for f in report.files],
                    "pipelines": {n: {"file": p.source_file, "tasks": list(p.order), "content_hash": p.content_hash}
                                  for n, p in report.pipelines.items()},
                    "errors": [e.to_dict() for e in report.errors]})
    else:
        for name, p in report.pipelines.items() if not args.quiet else ():  # -q: the errors alone
            print(f"ok     {name}: {len(p.tasks)} task(s) ({p.source_file})")
        for e in report.errors:
            print(f"error  {e.render()}")
        if not args.quiet:
            if not report.files and report.ok:
                print(f"no pipeline files in {path}")
            print(f"{len(report.pipelines)} valid, {len(report.errors)} error(s)")
    return EXIT_OK if report.ok else EXIT_FAILED
