"""``edgeorch pipelines [list|show|validate|pause|resume]`` and the offline pipeline lookup that ``run`` shares."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...errors import EdgeorchError, NotFoundError, UsageError
from ...textui import print_json, print_table, printable
from ..backend import Backend, connect, load
from ..exits import EXIT_OK
from . import AddCommand
from .validate import cmd_validate

if TYPE_CHECKING:  # pragma: no cover
    from ...config import Config


def register(add: AddCommand) -> None:
    p = add("pipelines", cmd_pipelines, "list, show, validate, pause or resume pipelines")
    p.add_argument("action", nargs="?", choices=["list", "show", "validate", "pause", "resume"], help="default: list")
    name = p.add_argument("name", nargs="?", metavar="NAME", help="pipeline name (validate: a file or folder)")
    # edgeorch/cli/cmdtree.py: completed with the pipelines' names (an attribute of our own on the Action)
    setattr(name, "completion", "pipelines")
    p.add_argument("--reason", help="why (recorded with pause)")


def require_pipeline_file(ref: str) -> None:
    """A pipeline reference that names a file (``edgeorch run nofile.toml``) where there is none: not found, exit 3,
    said as ``validate`` says it (it said "no such file or folder" with exit 1, and through a daemon "cannot read
    file: No such file or directory", exit 1, where `validate nofile.toml` and `run nosuch` exit 3). A name, or a
    file that is there (readable or not), is left to the lookup."""
    import os

    from ...pipelines import names_a_file

    if names_a_file(ref) and not os.path.lexists(ref):  # validate's test (a dangling link is there: its error)
        raise NotFoundError("no such file or folder", file=ref,
                            expected="a pipeline .toml file, or the name of a pipeline in the pipelines folder")


def find_pipeline(cfg: Config, ref: str) -> Any:
    """The pipeline ``ref`` names: a pipeline file, or a name in the pipelines folder (offline path).

    Raises the file's own error when the named pipeline's file is invalid, and
    ``NotFoundError`` (with a close match when there is one) when no file defines it.
    """
    from ...pipelines import load_named, names_a_file, not_loaded_error, validate_path
    from ..holders import name_holders

    p = Path(ref)
    if names_a_file(ref):
        require_pipeline_file(ref)
        report = validate_path(p) if not p.is_dir() else None
        if report is None:  # validate_path reads a folder of pipelines: one would run, two "expected exactly one"
            raise UsageError("is a folder, not a pipeline file", file=ref,
                             expected="a pipeline's name or one .toml file (`edgeorch validate FOLDER` checks a folder)")
    else:
        named = load_named(cfg.pipelines_dir, ref)  # its own file alone, when that is sure to be the answer
        if named is not None:
            return named
        report = validate_path(cfg.pipelines_dir, name_holders(cfg))
        if ref not in report.pipelines:
            bad = [e for e in report.errors]
            broken = not_loaded_error(ref, bad)
            if broken is not None:  # the pipeline's file is there but invalid: say which and why
                raise broken
            from ...tomlcheck import suggest

            close = suggest(ref, list(report.pipelines))
            raise NotFoundError(
                f"no pipeline named {ref!r} in {cfg.pipelines_dir}", value=ref,
                expected=f"one of {', '.join(report.pipelines) or '(none)'}",
                hint=(f"did you mean {close!r}?" if close else None) or (
                    f"{len(bad)} file(s) there have errors: run `edgeorch validate`" if bad else None),
            )
        return report.pipelines[ref]
    if not report.ok:
        raise report.errors[0] if len(report.errors) == 1 else EdgeorchError(
            f"{len(report.errors)} problems:\n  " + "\n  ".join(e.render() for e in report.errors), file=ref)
    if len(report.pipelines) != 1:
        raise UsageError("expected exactly one pipeline", file=ref)
    return next(iter(report.pipelines.values()))


def cmd_pipelines(args: argparse.Namespace) -> int:
    cfg = load(args)
    action = args.action or "list"
    if action == "validate":
        return cmd_validate(argparse.Namespace(**{**vars(args), "path": args.name}))
    with connect(cfg, "prefer") as backend:
        if action in ("pause", "resume", "show") and not args.name:
            raise UsageError(f"`edgeorch pipelines {action}` needs a pipeline name", field="NAME")
        if action in ("pause", "resume"):
            if backend.online:
                res = backend.client.call(f"pipelines.{action}", {"name": args.name, "reason": args.reason})
                # The keys of the answer without a daemon too (a script reads one shape): a daemon starts the
                # waiting inputs at once, so none is left waiting.
                res = {"inputs_started": 0, **res, "inputs_waiting": 0, "daemon": True}
            else:
                res = _pause_here(backend, args.name, action == "pause", args.reason)
            if args.json:
                print_json(res)
            elif not args.quiet and res.get("changed") is False:
                print(f"{res['name']} was not paused: nothing to resume")
            elif not args.quiet:
                started = res.get("inputs_started") or 0
                print(f"{res['name']} {'paused' if res['paused'] else 'resumed'}"
                      + (f"; {started} waiting input(s) handed on (`edgeorch inputs`)" if started else "")
                      + ("" if backend.online else " (no daemon runs: recorded in the state file"
                         + (f"; {res['inputs_waiting']} waiting input(s) start when a daemon does)"
                            if res.get("inputs_waiting") else ")")))
            return EXIT_OK
        if action == "show":
            return _show(args, backend)
        items, errors = _listing(backend)
    if args.json:
        print_json({"pipelines": items, "errors": errors, "daemon": backend.online})
        return EXIT_OK
    if args.quiet:  # the names alone, one a line (for scripts and shell completion); errors on stderr
        for i in items:
            print(i["name"])
        for e in errors:
            print(f"error  {e}", file=sys.stderr)
        return EXIT_OK
    print_table(["pipeline", "tasks", "paused", "next fire", "description"],
                [[i["name"], i["tasks"], {True: "yes", False: "no", None: "-"}[i["paused"]],
                  "paused" if i["paused"] else _fire_text(i.get("next_fire"))
                  + (" (held: starts when a run ends, max_active_runs)" if i.get("fire_held") else
                     f" (starts {_fire_text(i['next_start']).split(' ')[1]}, its jitter)"
                     if i.get("next_start") and i["next_start"] != i.get("next_fire") else ""),
                  i["description"]] for i in items])
    for i in items:
        for w in i.get("warnings") or []:
            print(f"warning  pipeline {i['name']}: {w}")
        refused = i.get("fire_refused")
        if refused:  # every fire refused says so here too, not in the daemon's log alone
            print(f"error  pipeline {i['name']}: its scheduled fire {refused['fire_time']} was refused: "
                  f"{printable(refused['reason'])}")
    for e in errors:
        print(f"error  {e}")
    if not backend.online and any(i.get("next_fire") and not i["paused"] for i in items):
        # The times are the schedules' own; without a daemon nothing starts at them (a reader took them for
        # what would happen).
        print("note   no daemon runs: no schedule fires until one does (`edgeorch daemon`, or systemctl start "
              "edgeorch); the next fires are when it would")
    return EXIT_OK


def _show(args: argparse.Namespace, backend: Backend) -> int:
    """``pipelines show NAME``: the daemon's loaded source, else the file's."""
    if backend.online:
        res = backend.client.call("pipelines.show", {"name": args.name})
        print_json(res) if args.json else print(res["source"], end="")
        return EXIT_OK
    from ...pipelines import pipeline_document

    p = find_pipeline(backend.cfg, args.name)
    print_json(pipeline_document(p)) if args.json else print(p.source_text, end="")
    return EXIT_OK


def _declared(folder: Path, name: str) -> bool:
    """Whether a file of ``folder`` declares pipeline ``name``, loaded or not (a broken file's pipeline may be
    paused: that is when one wants to, and a daemon pauses it too)."""
    from ...pipelines import not_loaded_error, validate_path

    report = validate_path(folder)
    return name in report.pipelines or not_loaded_error(name, report.errors) is not None


def _pause_here(backend: Backend, name: str, paused: bool, reason: str | None) -> dict[str, Any]:
    """``pipelines pause|resume`` without a daemon: the pause recorded in the state file under its lock, as the
    daemon's op records it (a pipeline paused while a daemon ran, that daemon gone: `edgeorch run` refused it, and
    the hint to resume it needed a daemon). Pausing needs a pipeline of the folder; resuming, a paused one (its
    file may be broken or gone). Waiting inputs start when a daemon does (its start submits them)."""
    from ..backend import local_actor

    lock = backend.state_lock()
    try:
        store = backend.open_store(readonly=False)
        assert store is not None  # a writer's store is created when missing
        try:
            known = store.pipelines.paused()
            if not (name in known and not paused) and not _declared(backend.cfg.pipelines_dir, name):
                raise NotFoundError(f"no pipeline named {name!r}", value=name,
                                    hint="`edgeorch pipelines` lists them"
                                         + ("" if paused else " (and which are paused)"))
            changed = paused or name in known
            if changed:  # resuming one that is not paused records nothing
                store.pipelines.set_paused(name, paused, reason=reason if paused else None, actor=local_actor())
            waiting = 0 if paused else len(store.inputs.waiting(name))
        finally:
            store.close()
    finally:
        lock.release()
    return {"name": name, "paused": paused, "inputs_started": 0, "inputs_waiting": waiting, "daemon": False,
            "changed": changed}


def _listing(backend: Backend) -> tuple[list[dict[str, Any]], list[str]]:
    """The pipelines and the load errors: the daemon's view, else the folder's (the same item shape)."""
    if backend.online:
        res = backend.client.call("pipelines.list")
        return res["pipelines"], [e["message"] for e in res["errors"]]
    from ...pipelines import pipeline_summary, validate_path
    from ..holders import name_holders

    report = validate_path(backend.cfg.pipelines_dir, name_holders(backend.cfg))
    if not report.pipelines:
        return [], [e.render() for e in report.errors]
    pauses, watermarks = _stored_pauses_and_fires(backend, list(report.pipelines))
    refusals = _refusals(backend, list(report.pipelines.values()))
    items = [pipeline_summary(p, pauses=pauses, refusals=refusals.get(n, ()),
                              **_offline_next_fire(p, watermarks.get(n), paused=bool(pauses and n in pauses)))
             | {"fire_held": False, "fire_refused": None}  # held and refused fires live in a daemon's memory only
             for n, p in report.pipelines.items()]
    return items, [e.render() for e in report.errors]


def _refusals(backend: Backend, pipelines: list[Any]) -> dict[str, list[tuple[str, str]]]:
    """Each pipeline's tasks this machine can never serve, judged as the daemon's front door judges them.

    When the machine's resources cannot be read (a broken GPU backend), the
    listing still comes, without these warnings, and the reason is logged.
    """
    from ...resources.admission import Admission

    try:
        admission = Admission.open(backend.cfg.resources, prepare_cgroup=False, config_file=backend.cfg.source)
    except EdgeorchError as exc:
        logging.getLogger("edgeorch.cli").warning("cannot check the pipelines against this machine: %s", exc.render())
        return {}
    try:
        return {p.name: admission.check_pipeline(p) for p in pipelines}
    finally:
        admission.close()


def _stored_pauses_and_fires(backend: Backend, names: list[str]) -> tuple[dict[str, Any] | None, dict[str, str]]:
    """Pauses and the schedule watermarks of ``names`` from the state file.

    No state file yet: nothing is paused. A state file that cannot be read:
    pauses are unknown (None, so each item's ``paused`` is null).
    """
    try:
        st = backend.open_store(readonly=True)
    except EdgeorchError as exc:  # said, not hidden: PAUSED '-' with exit 0 read as "not paused"
        print(f"note: paused states and schedule watermarks unknown: {exc.one_line()}", file=sys.stderr)
        return None, {}
    if st is None:
        return {}, {}
    try:
        fires = {n: f for n in names if (f := st.schedules.last_fire(n))}
        return st.pipelines.paused(), fires
    finally:
        st.close()


def _fire_text(iso_text: str | None) -> str:
    """A next fire time in local time, as every table says a time (``2026-11-27 14:00:00 UTC``; ``-`` when
    unscheduled)."""
    if not iso_text:
        return "-"
    from datetime import datetime

    from ...textui import format_timestamp

    return format_timestamp(datetime.fromisoformat(iso_text).timestamp())


def _offline_next_fire(pipeline: Any, stored: str | None, *, paused: bool) -> dict[str, Any]:
    """Without a daemon: ``next_fire`` after the stored watermark ``stored`` (or now), none while paused; ``schedule``."""
    from datetime import UTC, datetime

    from ...pipelines import pipeline_triggers
    from ...triggers.schedule import next_fire, start_time

    spec, _ = pipeline_triggers(pipeline)
    if spec is None:
        return {"next_fire": None, "next_start": None, "schedule": None}
    after = datetime.now(UTC)
    if stored:
        after = max(after, datetime.fromisoformat(stored))
    fire = None if paused else next_fire(spec, after)
    return {"next_fire": fire.isoformat() if fire else None,
            "next_start": start_time(spec, fire).isoformat() if fire else None, "schedule": spec.describe()}
