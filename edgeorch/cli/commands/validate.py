"""``edgeorch validate``: check pipeline files without running anything (no daemon involved)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from ...errors import error_fields
from ...textui import print_json
from ..backend import load
from ..exits import EXIT_FAILED, EXIT_OK, follows_a_run
from . import AddCommand


def register(add: AddCommand) -> None:
    p = add("validate", cmd_validate, "check pipeline files (and the rules folder and the config's [[watch]] "
                                      "tables) without running anything (exit 0 valid, 1 invalid, 3 no such path)")
    p.add_argument("path", nargs="?", help="a pipeline file or folder, or a rules file (one in the rules folder, or "
                                           "one of [[on]] rules only) (default: the configured pipelines folder and "
                                           "its rules folder, [monitor] rules_dir)")


@follows_a_run
def cmd_validate(args: argparse.Namespace) -> int:
    """Exit 0 when every file under ``args.path`` (or the pipelines folder and the rules folder) is valid, else 1.

    A rules file given as the path (one in the rules folder, or one holding only ``[[on]]`` rules) is read as the
    daemon reads it: against the configured pipelines, and a rule whose name another declaration holds first is
    an error (:func:`~edgeorch.monitor.rulesdir.in_force`, the daemon's own rule for it)."""
    from ...errors import EdgeorchError, NotFoundError
    from ...monitor.rulesdir import in_force, is_rules_file, load_rules_dir, unknown_names_of
    from ...pipelines import validate_path

    if args.path is None:
        cfg = load(args)
    else:
        try:
            cfg = load(args)  # for the rules folder and the pipelines a rules file reads
        except EdgeorchError:
            cfg = None  # a pipeline file given by path needs no config
    path = Path(args.path) if args.path else cfg.pipelines_dir  # type: ignore[union-attr]
    rules_dir = cfg.rules_dir if cfg is not None else None
    if args.path is not None and is_rules_file(path, rules_dir):
        return _validate_rules_file(args, path, cfg)
    if args.path is not None and not os.path.lexists(path):  # the argument names nothing: exit 3, as elsewhere
        raise NotFoundError("no such file or folder", file=str(path),
                            expected="a pipeline .toml file or a folder of them")
    # The configured rules folder is read against the pipelines just validated, as the daemon reads it: with
    # the configured pipelines folder (no path, or that folder by name). A name two files declare goes where the
    # daemon gives it (the state file says which file served it).
    with_folder = cfg is not None and (args.path is None or _same(path, cfg.pipelines_dir))
    from ..holders import name_holders

    report = validate_path(path, name_holders(cfg) if with_folder and cfg is not None else None)
    folder_rules, rule_errors = load_rules_dir(rules_dir, report.pipelines) if with_folder else ([], [])
    in_use, duplicates = in_force(report.pipelines, folder_rules)  # the daemon's rule for a name declared twice
    rules = [r for r in folder_rules if in_use.get(r.name) is r]
    errors = [*report.errors, *rule_errors, *duplicates]
    warnings = unknown_names_of(in_use.values(), report.pipelines)
    if with_folder:  # the config's [[watch]] tables and their folders, as the daemon checks them (one rule)
        from ...triggers.drop.configured import startable_watches

        assert cfg is not None  # with_folder: a config was loaded
        try:  # the daemon's user (its folders are trusted), when this is another one's
            daemon_uid: int | None = os.stat(cfg.state_dir).st_uid
        except OSError:
            daemon_uid = None
        watches, watch_errors = startable_watches(cfg, report.pipelines, report.errors, daemon_uid=daemon_uid)
        errors += watch_errors
        from ...control.auth import group_problem, unknown_names
        from ...observe.textfile import textfile_problem  # the daemon's start checks them too: one rule

        from ...resources.cpus import reserved_cpus_problem

        src = str(cfg.source) if cfg.source else None
        errors += [p for p in (textfile_problem(cfg.metrics.textfile, src), group_problem(cfg.control, src),
                               reserved_cpus_problem(cfg.resources.reserved_cpus, src)) if p]
        warnings += unknown_names(cfg.control, src)
        from ..holders import model_owner_problems

        errors += model_owner_problems(cfg, report.pipelines)  # every run of such a pipeline is refused
    else:
        watches = []
    ok = not errors
    if args.json:
        print_json({"ok": ok, "files": [str(f) for f in report.files],
                    "watches": [{"folder": str(w.folder), "pipeline": w.pipeline, "file": w.source or
                                 (str(cfg.source) if cfg is not None and cfg.source else None)} for w in watches],
                    "pipelines": {n: {"file": p.source_file, "tasks": list(p.order), "content_hash": p.content_hash}
                                  for n, p in report.pipelines.items()},
                    "rules": {r.name: {"file": r.source_file, "pipeline": r.pipeline} for r in rules},
                    "errors": [error_fields(e) for e in errors], "warnings": [error_fields(w) for w in warnings]})
    else:
        for name, p in report.pipelines.items() if not args.quiet else ():  # -q: the errors alone
            print(f"ok     {name}: {len(p.tasks)} task(s) ({p.source_file})")
        for r in rules if not args.quiet else ():
            print(f"ok     rule {r.name} ({r.source_file})")
        for spec in watches if not args.quiet else ():  # what was checked of the config's (and pipelines') watches
            where = spec.source or (cfg.source if cfg is not None else None) or "the embedded defaults"
            print(f"ok     watch {spec.folder} -> {spec.pipeline} ({where})")
        for e in errors:
            print(f"error  {e.render()}")
        for w in warnings if not args.quiet else ():
            print(f"warning {w.render()}")
        if not args.quiet:
            if not report.files and report.ok:
                print(f"no pipeline files in {path}")
            print(f"{len(report.pipelines)} valid" + (f", {len(rules)} rule(s) in {rules_dir}" if rules else "")
                  + f", {len(errors)} error(s)")
    return EXIT_OK if ok else EXIT_FAILED


def _validate_rules_file(args: argparse.Namespace, path: Path, cfg: Any) -> int:
    """One rules file: its rules against the configured pipelines. A name another declaration holds first (a
    pipeline's rule, or an earlier file of the rules folder when it is in that folder) is an error: the daemon
    would ignore that rule."""
    from ...monitor.rulesdir import in_force, load_rules_dir, load_rules_file, unknown_names_of
    from ...pipelines import validate_path

    pipelines = validate_path(cfg.pipelines_dir).pipelines if cfg is not None else {}
    mine, errors = load_rules_file(path, pipelines)
    declared = mine
    if cfg is not None and _same(path.absolute().parent, cfg.rules_dir):  # with the folder, as the daemon reads it
        declared = [r for r in load_rules_dir(cfg.rules_dir, pipelines)[0]
                    if not (r.source_file is not None and _same(Path(r.source_file), path))]
        declared = sorted([*declared, *mine], key=lambda r: Path(r.source_file or "").name)  # stable: file order
    in_use, duplicates = in_force(pipelines, declared)
    errors = [*errors, *(e for e in duplicates if e.file is not None and _same(Path(e.file), path))]
    rules = [r for r in mine if in_use.get(r.name) is r]
    warnings = unknown_names_of(rules, pipelines) if cfg is not None else []
    ok = not errors
    if args.json:
        print_json({"ok": ok, "files": [str(path)], "pipelines": {},
                    "rules": {r.name: {"file": r.source_file, "pipeline": r.pipeline} for r in rules},
                    "errors": [error_fields(e) for e in errors], "warnings": [error_fields(w) for w in warnings]})
    else:
        for r in rules if not args.quiet else ():
            print(f"ok     rule {r.name} ({r.source_file})")
        for e in errors:
            print(f"error  {e.render()}")
        for w in warnings if not args.quiet else ():
            print(f"warning {w.render()}")
        if not args.quiet:
            print(f"{len(rules)} rule(s) in {path}, {len(errors)} error(s)")
    return EXIT_OK if ok else EXIT_FAILED


def _same(a: Path, b: Path) -> bool:
    """Whether two paths name the same folder entry (a link as itself, not its target)."""
    a, b = a.absolute(), b.absolute()
    return a.parent.resolve() / a.name == b.parent.resolve() / b.name
