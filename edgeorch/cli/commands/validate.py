"""``edgeorch validate``: check pipeline files without running anything (no daemon involved)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ...textui import print_json
from ..backend import load
from ..exits import EXIT_FAILED, EXIT_OK
from . import AddCommand


def register(add: AddCommand) -> None:
    p = add("validate", cmd_validate, "check pipeline files (and the rules folder) without running anything "
                                      "(exit 0 valid, 1 invalid)")
    p.add_argument("path", nargs="?", help="a pipeline file or folder (default: the configured pipelines folder and "
                                           "its rules folder, [monitor] rules_dir)")


def cmd_validate(args: argparse.Namespace) -> int:
    """Exit 0 when every file under ``args.path`` (or the pipelines folder and the rules folder) is valid, else 1."""
    from ...monitor.rulesdir import load_rules_dir
    from ...pipelines import validate_path

    cfg = None if args.path else load(args)
    path = Path(args.path) if args.path else cfg.pipelines_dir  # type: ignore[union-attr]
    report = validate_path(path)
    # The configured rules folder is read against the pipelines just validated, as the daemon reads it.
    rules, rule_errors = load_rules_dir(cfg.rules_dir, report.pipelines) if cfg is not None else ([], [])
    errors = [*report.errors, *rule_errors]
    ok = report.ok and not rule_errors
    if args.json:
        print_json({"ok": ok, "files": [str(f) for f in report.files],
                    "pipelines": {n: {"file": p.source_file, "tasks": list(p.order), "content_hash": p.content_hash}
                                  for n, p in report.pipelines.items()},
                    "rules": {r.name: {"file": r.source_file, "pipeline": r.pipeline} for r in rules},
                    "errors": [e.to_dict() for e in errors]})
    else:
        for name, p in report.pipelines.items() if not args.quiet else ():  # -q: the errors alone
            print(f"ok     {name}: {len(p.tasks)} task(s) ({p.source_file})")
        for r in rules if not args.quiet else ():
            print(f"ok     rule {r.name} ({r.source_file})")
        for e in errors:
            print(f"error  {e.render()}")
        if not args.quiet:
            if not report.files and report.ok:
                print(f"no pipeline files in {path}")
            print(f"{len(report.pipelines)} valid" + (f", {len(rules)} rule(s) in {cfg.rules_dir}" if rules else "")  # type: ignore[union-attr]
                  + f", {len(errors)} error(s)")
    return EXIT_OK if ok else EXIT_FAILED
