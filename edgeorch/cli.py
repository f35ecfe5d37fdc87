"""The ``edgeorch`` command.

Each subcommand is a small function ``cmd_<name>(args) -> int`` (the exit
code). Errors a user can cause are :class:`EdgeorchError` and print as one
clear message; tracebacks are reserved for bugs.

Exit codes: :data:`EXIT_CODES` (listed by ``--help`` and the README).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any, Callable

from . import __version__
from .config import Config, add_config_option, load_config
from .errors import EdgeorchError, NotFoundError, UsageError
from .model import RunState
from .pipelines import not_loaded_error, parse_param_args, read_pipeline_bytes, validate_path
from .textui import format_bytes, format_duration, format_timestamp, print_json, print_table

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

EXIT_CODES: tuple[tuple[int, str], ...] = (
    (0, "ok"), (1, "failed/invalid (run failed, invalid pipeline, drift found)"),
    (2, "usage or config error (also a request this machine can never serve)"), (3, "not found"),
    (4, "state file unusable"), (5, "conflict (paused pipeline, run still active)"),
    (69, "no daemon running"), (75, "daemon busy or timed out, try again"), (77, "permission denied"),
    (130, "interrupted"),
)
"""Every exit code the CLI uses, with its meaning: the one list ``--help`` prints (errors carry theirs)."""

STATE_MARKS = {"succeeded": "ok", "failed": "FAILED", "skipped": "cached", "upstream_failed": "upstream failed",
               "cancelled": "cancelled", "running": "running", "retry_wait": "retry wait"}


def _config(args: argparse.Namespace) -> Config:
    cfg = load_config(args.config)
    from .kernels.cache import use_numba_cache_dir

    use_numba_cache_dir(cfg.numba_cache_dir)  # one rule for every path (edgeorch/kernels/cache.py)
    return cfg


def _open_store(cfg: Config, *, readonly: bool):
    from .store import Store

    if readonly and not cfg.state_file.exists():
        return None
    return Store(cfg.state_file, readonly=readonly)


def _daemon(cfg: Config):
    """A connected client when a daemon answers on the configured socket, else None."""
    from .control.client import connect_if_running

    return connect_if_running(cfg.socket_path, timeout=30)


def _require_daemon(cfg: Config):
    """A client, or a clear DaemonNotRunning error for commands that change a live daemon's state."""
    from .control import DaemonNotRunning

    client = _daemon(cfg)
    if client is None:
        raise DaemonNotRunning(cfg.socket_path)
    return client


# -- validate -----------------------------------------------------------------------------

def cmd_validate(args: argparse.Namespace) -> int:
    if args.path:
        path = Path(args.path)
    else:
        path = _config(args).pipelines_dir
    report = validate_path(path)
    if args.json:
        print_json({"ok": report.ok, "files": [str(f) for f in report.files],
                    "pipelines": {n: {"file": p.source_file, "tasks": list(p.order), "content_hash": p.content_hash}
                                  for n, p in report.pipelines.items()},
                    "errors": [e.to_dict() for e in report.errors]})
    else:
        for name, p in report.pipelines.items():
            print(f"ok     {name}: {len(p.tasks)} task(s) ({p.source_file})")
        for e in report.errors:
            print(f"error  {e.render()}")
        if not report.files and report.ok:
            print(f"no pipeline files in {path}")
        print(f"{len(report.pipelines)} valid, {len(report.errors)} error(s)")
    return EXIT_OK if report.ok else EXIT_FAILED


# -- run / retry (in-process engine) -------------------------------------------------------

def _find_pipeline(cfg: Config, ref: str):
    p = Path(ref)
    if ref.endswith(".toml") or p.is_file():
        report = validate_path(p)
    else:
        report = validate_path(cfg.pipelines_dir)
        if ref not in report.pipelines:
            bad = [e for e in report.errors]
            broken = not_loaded_error(ref, bad)
            if broken is not None:  # the pipeline's file is there but invalid: say which and why
                raise broken
            from .tomlcheck import suggest

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


class _ProgressPrinter:
    """Prints one line per task transition (humans) and remembers what happened."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.started: dict[str, float] = {}

    def __call__(self, ev: dict[str, Any]) -> None:
        if not self.enabled or ev.get("kind") != "task":
            return
        name, state = ev["task"], ev["state"]
        stamp = time.strftime("%H:%M:%S", time.localtime(ev["ts"]))
        if state == "running":
            self.started[name] = ev["ts"]
            print(f"{stamp}  {name:<24} started (attempt {ev.get('attempt')})", flush=True)
            return
        took = ev["ts"] - self.started[name] if name in self.started else None
        detail = f" in {format_duration(took)}" if took is not None else ""
        reason = f": {ev['reason']}" if ev.get("reason") else ""
        trunc = " (log truncated at cap)" if ev.get("log_truncated") else ""
        print(f"{stamp}  {name:<24} {STATE_MARKS.get(state, state)}{detail}{reason}{trunc}", flush=True)


def _drive(cfg: Config, action: Callable[[Any], int], *, json_out: bool) -> int:
    """Run an engine in this process until the run started by ``action`` finishes.

    Ctrl-C (or SIGTERM) cancels the run cleanly: running tasks get SIGTERM and
    the grace period, the cancellation is recorded, exit code 130.
    """
    from .engine.engine import Engine

    store = _open_store(cfg, readonly=False)
    lock = _state_lock(cfg)
    printer = _ProgressPrinter(enabled=not json_out)

    async def main() -> tuple[int, RunState]:
        engine = Engine(cfg, store)
        engine.listeners.append(printer)
        await engine.start()
        loop = asyncio.get_running_loop()
        try:
            run_id = action(engine)
        except BaseException:  # refused by the front door: nothing started, stop the engine cleanly
            await engine.close()
            raise
        interrupted = []

        def on_signal() -> None:
            if not interrupted:
                print("\ninterrupted: cancelling the run (Ctrl-C again to stop waiting)", file=sys.stderr, flush=True)
                interrupted.append(True)
                try:
                    engine.cancel(run_id, reason="interrupted by the user (Ctrl-C)")
                except EdgeorchError:
                    pass
            else:
                for la in list(engine.live.values()):
                    engine._kill_hard(la)

        loop.add_signal_handler(signal.SIGINT, on_signal)
        loop.add_signal_handler(signal.SIGTERM, on_signal)
        try:
            state = await engine.wait_run(run_id)
        finally:
            await engine.close()
        return run_id, state

    try:
        run_id, state = asyncio.run(main())
    finally:
        store.close()
        if lock is not None:
            lock.release() if hasattr(lock, "release") else None
    run = _run_document(cfg, run_id)
    print_json(run) if json_out else _print_run(run, summary=True)
    if state == RunState.SUCCEEDED:
        return EXIT_OK
    return EXIT_INTERRUPTED if state == RunState.CANCELLED else EXIT_FAILED


def _state_lock(cfg: Config):
    """Hold the state dir's lock while this process writes state (one writer at a time)."""
    try:
        from .control.statelock import acquire_state_lock
    except ImportError:  # pragma: no cover - control package absent
        return None
    return acquire_state_lock(cfg.state_dir)


def _follow_remote(cfg: Config, client: Any, run_id: int, *, json_out: bool) -> int:
    """Print a daemon-run's progress from the ``events`` stream until it finishes.

    Ctrl-C asks the daemon to cancel the run and keeps following until it has.
    """
    printer = _ProgressPrinter(enabled=not json_out)
    state = None
    cancelled = False
    while state is None:
        try:
            for ev in client.stream("events", {"run_id": run_id}):
                printer(ev)
                if ev.get("kind") == "run" and ev.get("run_id") == run_id and ev.get("state") in ("succeeded", "failed", "cancelled"):
                    state = ev["state"]
                    break
        except KeyboardInterrupt:
            if cancelled:
                print("\nstopped waiting; the daemon goes on cancelling the run", file=sys.stderr)
                return EXIT_INTERRUPTED
            cancelled = True
            print("\ninterrupted: asking the daemon to cancel the run (Ctrl-C again to stop waiting)", file=sys.stderr, flush=True)
            try:
                client.call("cancel", {"run_id": run_id, "reason": "interrupted by the user (Ctrl-C)"})
            except EdgeorchError as exc:
                print(f"edgeorch: {exc.render()}", file=sys.stderr)
    run = client.call("runs.show", {"run_id": run_id})
    print_json(run) if json_out else _print_run(run, summary=True)
    return {"succeeded": EXIT_OK, "cancelled": EXIT_INTERRUPTED}.get(state, EXIT_FAILED)


def _is_file_ref(ref: str) -> bool:
    """``edgeorch run REF``: REF is a pipeline file (not a name) when it ends in .toml or names a file."""
    return ref.endswith(".toml") or Path(ref).is_file()


def cmd_run(args: argparse.Namespace) -> int:
    cfg = _config(args)
    client = _daemon(cfg)
    raw_params = parse_param_args(args.param or [])
    if client is not None and not args.here:
        with client:
            request: dict[str, Any] = {"params": raw_params, "trigger": "cli"}
            if _is_file_ref(args.pipeline):
                # An ad-hoc file is run by the daemon: it gets the content (recorded with its hash), not a path.
                path = Path(args.pipeline).absolute()
                request |= {"source": read_pipeline_bytes(path).decode("utf-8", errors="surrogateescape"),
                            "file": str(path)}
            else:
                request["pipeline"] = args.pipeline
            res = client.call("trigger", request)
            if not args.json:
                print(f"run {res['run_id']} of {res['pipeline']} queued on the daemon at {cfg.socket_path}", flush=True)
            if args.detach:
                if args.json:
                    print_json(res)
                return EXIT_OK
            return _follow_remote(cfg, client, res["run_id"], json_out=args.json)
    pipeline = _find_pipeline(cfg, args.pipeline)
    if not args.json:
        print(f"running {pipeline.name} ({len(pipeline.tasks)} tasks) with state in {cfg.state_dir}", flush=True)

    def action(engine: Any) -> int:
        from .engine.requests import RunRequest, RunRequests

        # The same front door as the daemon's: paused, params and resources are checked there.
        door = RunRequests(engine, lambda name: pipeline)
        return door.start(RunRequest(pipeline, raw_params, trigger="cli", actor=_actor(), source="-p")).run_id

    return _drive(cfg, action, json_out=args.json)


def cmd_retry(args: argparse.Namespace) -> int:
    cfg = _config(args)
    client = _daemon(cfg)
    if client is not None:
        with client:
            res = client.call("retry", {"run_id": args.run_id})
            if not args.json:
                print(f"resuming run {args.run_id}: {', '.join(res['tasks'])}", flush=True)
            return _follow_remote(cfg, client, args.run_id, json_out=args.json)

    def action(engine: Any) -> int:
        from .engine.requests import RunRequests

        redo = RunRequests(engine, _no_lookup).resume(args.run_id, actor=_actor())
        if not args.json:
            print(f"resuming run {args.run_id}: {', '.join(redo)}", flush=True)
        return args.run_id

    return _drive(cfg, action, json_out=args.json)


def _no_lookup(name: str) -> Any:
    raise NotFoundError(f"no pipeline named {name!r}", value=name)  # pragma: no cover - retry looks nothing up


def _actor() -> str:
    import pwd

    uid = os.getuid()
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


# -- read-only views -------------------------------------------------------------------------

def cmd_runs(args: argparse.Namespace) -> int:
    cfg = _config(args)
    client = _daemon(cfg)
    if client is not None:
        with client:
            runs = client.call("runs.list", {"limit": args.limit, "pipeline": args.pipeline, "state": args.state})["runs"]
    else:
        store = _open_store(cfg, readonly=True)
        try:
            runs = store.list_runs(limit=args.limit, pipeline=args.pipeline, state=args.state) if store else []
        finally:
            if store is not None:
                store.close()
    if args.json:
        print_json(runs)
        return EXIT_OK
    rows = []
    for r in runs:
        took = (r["finished_at"] or time.time()) - r["started_at"] if r["started_at"] else None
        counts = ", ".join(f"{n} {s}" for s, n in sorted(r["tasks"].items()))
        rows.append([r["id"], r["pipeline"], r["state"], format_timestamp(r["created_at"]), format_duration(took), r["trigger"], counts])
    print_table(["run", "pipeline", "state", "created", "duration", "trigger", "tasks"], rows)
    return EXIT_OK


def _run_document(cfg: Config, run_id: int) -> dict[str, Any]:
    """The run's document from the daemon when one runs, else from the state file."""
    client = _daemon(cfg)
    if client is not None:
        with client:
            return client.call("runs.show", {"run_id": run_id})
    from .rundoc import run_document

    store = _open_store(cfg, readonly=True)
    if store is None:
        raise NotFoundError("no such run (no state file yet)", value=run_id)
    try:
        return run_document(store, run_id)
    finally:
        store.close()


def _print_run(run: dict[str, Any], *, summary: bool = False) -> None:
    took = (run["finished_at"] or time.time()) - run["started_at"] if run["started_at"] else None
    print(f"\nrun {run['id']}  {run['pipeline']}  {run['state'].upper()}  {format_duration(took)}"
          + (f"  ({run['reason']})" if run["reason"] else ""))
    if not summary:
        print(f"created {format_timestamp(run['created_at'])} by {run['trigger']}"
              + (f" ({run['actor']})" if run["actor"] else "") + f"; params {json.dumps(run['params'])}")
        print(f"run folder {run['run_dir']}")
    rows = []
    for t in run["tasks"]:
        last = t["attempt_list"][-1] if t["attempt_list"] else None
        took_t = (last["finished_at"] or time.time()) - last["started_at"] if last else None
        code = None
        if last:
            code = last["exit_code"] if last["signal"] is None else f"sig {last['signal']}"
        rows.append([t["name"], t["state"], t["attempts"], format_duration(took_t), code, t["reason"] or ""])
    print_table(["task", "state", "attempts", "duration", "exit", "reason"], rows)
    if run["results"]:
        print()
        print_table(["task", "column", "metric", "value", "p-value", "threshold", "verdict"],
                    [[r["task"], r["column_name"], r["metric"], r["value"], r["p_value"], r["threshold"], r["verdict"]]
                     for r in run["results"]])
    for t in run["tasks"]:
        if t["state"] != "failed" or not t["attempt_list"]:
            continue
        print(f"\nlast lines of {t['name']} (edgeorch logs {run['id']} {t['name']}):")
        for line in _tail(Path(t["attempt_list"][-1]["log_path"]), 10):
            print(f"  {line}")


def _tail(path: Path, n: int) -> list[str]:
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(size - 8192, 0))
            return f.read().decode(errors="replace").splitlines()[-n:]
    except OSError:
        return ["(no log)"]


def cmd_show(args: argparse.Namespace) -> int:
    cfg = _config(args)
    run = _run_document(cfg, args.run_id)
    if args.json:
        print_json(run)
        return EXIT_OK
    _print_run(run)
    attempts = [a for t in run["tasks"] for a in t["attempt_list"]]
    print("\nattempts:")
    print_table(["task", "#", "state", "pid", "started", "duration", "exit", "log"], [
        [a["task"], a["number"], a["state"], a["pid"], format_timestamp(a["started_at"]),
         format_duration((a["finished_at"] or time.time()) - a["started_at"]),
         a["exit_code"] if a["signal"] is None else f"sig {a['signal']}", a["log_path"]]
        for a in sorted(attempts, key=lambda a: a["id"])])
    arts = [a for t in run["tasks"] for a in t["artifacts"]]
    if arts:
        print("\nartifacts:")
        print_table(["task", "name", "size", "sha256", "path"],
                    [[a["task"], a["name"], a["size"], a["sha256"][:12], a["path"]] for a in arts])
    return EXIT_OK


def cmd_logs(args: argparse.Namespace) -> int:
    cfg = _config(args)
    if args.follow:
        with _require_daemon(cfg) as client:
            for item in client.stream("logs", {"run_id": args.run_id, "task": args.task, "attempt": args.attempt,
                                               "follow": True}):
                sys.stdout.write(item["data"])
                sys.stdout.flush()
        return EXIT_OK
    store = _open_store(cfg, readonly=True)
    if store is None:
        raise NotFoundError("no such run (no state file yet)", value=args.run_id)
    try:
        store.get_run(args.run_id)
        attempts = store.attempts_of(args.run_id, args.task)
    finally:
        store.close()
    if not attempts:
        raise NotFoundError(f"run {args.run_id} has no attempts of task {args.task!r}", value=args.task)
    if args.attempt is not None:
        match = [a for a in attempts if a["number"] == args.attempt]
        if not match:
            raise NotFoundError(f"task {args.task} has no attempt {args.attempt}", value=args.attempt,
                                expected=f"1..{attempts[-1]['number']}")
        attempt = match[0]
    else:
        attempt = attempts[-1]
    path = Path(attempt["log_path"])
    if not path.exists():
        raise NotFoundError("the log file is gone", file=str(path))
    with open(path, "rb") as f:
        while chunk := f.read(1 << 16):
            sys.stdout.buffer.write(chunk)
    sys.stdout.flush()
    return EXIT_OK


# -- daemon and the commands that need it --------------------------------------------------

def cmd_daemon(args: argparse.Namespace) -> int:
    from .daemon import run_daemon

    return run_daemon(args.config)


def cmd_status(args: argparse.Namespace) -> int:
    cfg = _config(args)
    with _require_daemon(cfg) as client:
        st = client.call("status")
    if args.json:
        print_json(st)
        return EXIT_OK
    print(f"edgeorch {st['version']} (pid {st['pid']}), up {format_duration(st['uptime_s'])}")
    print(f"  state      {st['state_file']}\n  socket     {st['socket']}")
    print(f"  runs       {st['runs']['active']} active; " + ", ".join(f"{n} {s}" for s, n in sorted(st['runs']['total_by_state'].items())))
    print(f"  tasks      {st['tasks']['running']} running, {st['tasks']['ready']} waiting (parallelism {st['parallelism']})")
    print(f"  pipelines  {st['pipelines']} loaded" + (f", paused: {', '.join(st['paused'])}" if st["paused"] else ""))
    for err in st["pipeline_errors"]:
        print(f"  error      {err}")
    return EXIT_OK


def cmd_resources(args: argparse.Namespace) -> int:
    """Cores, memory, GPUs, leases and the queue from the daemon; without one, this machine's inventory."""
    cfg = _config(args)
    client = _daemon(cfg)
    if client is not None:
        with client:
            rep = client.call("resources")
        rep["daemon"] = True
    else:
        from .resources.admission import static_report

        rep = static_report(cfg.resources)
        rep["daemon"] = False
    if args.json:
        print_json(rep)
        return EXIT_OK
    for line in _resources_lines(rep):
        print(line)
    return EXIT_OK


def _size(n: int | None) -> str:
    """Sizes in tables: one rule (:func:`~edgeorch.textui.format_bytes`): 29 KB is ``28.3K``, never ``0M``."""
    return format_bytes(n)


def _resources_lines(rep: dict[str, Any]) -> list[str]:
    """The text form of ``edgeorch resources`` (one fact per line, grep-able)."""
    cpus, mem = rep["cpus"], rep["memory"]
    out = [f"cores     {cpus['usable']} usable" + (f" (reserved for the daemon: {cpus['reserved']})" if cpus["reserved"] else "")
           + f", free: {cpus['free'] or 'none'}"]
    for c in cpus["cores"]:
        node = f" (NUMA node {c['numa_node']})" if c["numa_node"] >= 0 else ""
        out.append(f"  core {c['id']}{node}: " + (f"held by {c['held_by']}" if c["held_by"] else "free"))
    out.append(f"memory    {_size(mem['available_now'])} available now, {_size(mem['leased'])} leased; {mem['enforcement']}")
    out.append(f"GPUs      {rep['gpu_backend']}")
    for g in rep["gpus"]:
        live = ""
        if "memory_free" in g:
            util = f", util {g['utilization']}%" if g.get("utilization") is not None else ""
            temp = f", {g['temperature']}C" if g.get("temperature") is not None else ""
            ecc = f", uncorrected ECC {g['ecc_uncorrected']}" if g.get("ecc_uncorrected") else ""
            live = f", free {_size(g['memory_free'])}{util}{temp}{ecc}"
        elif g.get("error"):
            live = f", reading failed: {g['error']}"
        drained = f"  DRAINED: {g['drained']}" if g.get("drained") else ""
        out.append(f"  {g['uuid']} {g['name']} {_size(g['memory_total'])}{live}{drained}")
    for name, p in rep["pools"].items():
        out.append(f"pool      {name}: {p['free']}/{p['size']} free")
    if not rep["daemon"]:
        out.append("no daemon is running: inventory only, no leases and no queue")
        return out
    out.append(f"running   {rep['running']} task(s) (parallelism {rep['parallelism']}), "
               f"{rep['running_unleased']} without a lease")
    out.append(f"leases    {len(rep['leases'])}")
    for lease in rep["leases"]:
        parts = [f"cores {','.join(map(str, lease['cores']))}" if lease["cores"] else f"shares cores {lease['affinity']}"]
        if lease["memory"]:
            parts.append(f"memory {_size(lease['memory'])}")
        if lease["gpus"]:
            kind = "whole" if lease["gpu_exclusive"] else f"share {_size(lease['gpu_memory'])}"
            parts.append(f"GPUs {','.join(lease['gpus'])} ({kind})")
        if lease["pool"]:
            parts.append(f"pool {lease['pool']}")
        out.append(f"  run {lease['run_id']} {lease['task']} (attempt {lease['attempt_id']}): " + "; ".join(parts))
    out.append(f"queue     {len(rep['queue'])} waiting")
    for q in rep["queue"]:
        out.append(f"  {q['task']} ({q['pipeline']}, critical path {q['critical_path_s']:g}s): {q['reason']}")
    return out


def cmd_pipelines(args: argparse.Namespace) -> int:
    cfg = _config(args)
    action = args.action or "list"
    if action == "validate":
        return cmd_validate(argparse.Namespace(path=args.name, json=args.json, config=args.config))
    client = _daemon(cfg)
    if action in ("pause", "resume", "show") and not args.name:
        raise UsageError(f"`edgeorch pipelines {action}` needs a pipeline name", field="NAME")
    if action in ("pause", "resume"):
        if client is None:
            from .control import DaemonNotRunning

            raise DaemonNotRunning(cfg.socket_path)
        with client:
            res = client.call(f"pipelines.{action}", {"name": args.name, "reason": args.reason})
        print_json(res) if args.json else print(f"{res['name']} {'paused' if res['paused'] else 'resumed'}")
        return EXIT_OK
    if client is not None:
        with client:
            if action == "show":
                res = client.call("pipelines.show", {"name": args.name})
                if args.json:
                    print_json(res)
                else:
                    print(res["source"], end="")
                return EXIT_OK
            res = client.call("pipelines.list")
        items, errors = res["pipelines"], [e["message"] for e in res["errors"]]
    else:
        report = validate_path(cfg.pipelines_dir)
        if action == "show":
            p = _find_pipeline(cfg, args.name)
            print_json({"name": p.name, "file": p.source_file, "source": p.source_text}) if args.json else print(p.source_text, end="")
            return EXIT_OK
        items = [{"name": n, "description": p.description, "tasks": len(p.tasks), "file": p.source_file,
                  "paused": None, "content_hash": p.content_hash, **_offline_next_fire(cfg, p)}
                 for n, p in report.pipelines.items()]
        errors = [e.render() for e in report.errors]
    if args.json:
        print_json({"pipelines": items, "errors": errors, "daemon": client is not None})
        return EXIT_OK
    print_table(["pipeline", "tasks", "paused", "next fire", "description"],
                [[i["name"], i["tasks"], {True: "yes", False: "no", None: "-"}[i["paused"]],
                  "paused" if i["paused"] else _fire_text(i.get("next_fire")), i["description"]] for i in items])
    for i in items:
        for w in i.get("warnings") or []:
            print(f"warning  pipeline {i['name']}: {w}")
    for e in errors:
        print(f"error  {e}")
    return EXIT_OK


def _fire_text(iso_text: str | None) -> str:
    """A next fire time in local time, as ``2026-11-27 14:00:00`` (``-`` when unscheduled)."""
    if not iso_text:
        return "-"
    from datetime import datetime

    return datetime.fromisoformat(iso_text).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _offline_next_fire(cfg: Any, pipeline: Any) -> dict[str, Any]:
    """Without a daemon: the next fire after the stored watermark (or now); none while paused."""
    from datetime import UTC, datetime

    from .pipelines import pipeline_triggers
    from .triggers.schedule import next_fire

    spec, _ = pipeline_triggers(pipeline)
    if spec is None:
        return {"next_fire": None, "schedule": None}
    after = datetime.now(UTC)
    paused = None
    try:
        from .store import Store

        if cfg.state_file.exists():
            st = Store(cfg.state_file, readonly=True)
            try:
                stored = st.schedule_last_fire(pipeline.name)
                paused = pipeline.name in st.paused_pipelines()
            finally:
                st.close()
            if stored:
                after = max(after, datetime.fromisoformat(stored))
    except EdgeorchError:
        pass
    return {"next_fire": None if paused else next_fire(spec, after).isoformat(), "schedule": spec.describe(),
            "paused": paused}


def cmd_inputs(args: argparse.Namespace) -> int:
    cfg = _config(args)
    with _require_daemon(cfg) as client:
        res = client.call("inputs.list", {k: v for k, v in (("pipeline", args.pipeline), ("state", args.state),
                                                             ("limit", args.limit)) if v is not None})
    if args.json:
        print_json(res)
        return EXIT_OK
    if args.quarantine:
        print_table(["file", "pipeline", "run", "reason"],
                    [[d.get("path"), d.get("pipeline", "-"), d.get("run_id", "-"), d.get("reason")]
                     for d in res["quarantine"]])
        return EXIT_OK
    print_table(["id", "file", "pipeline", "state", "size", "sha256", "run", "run state", "reason"],
                [[i["id"], i["source_name"], i["pipeline"], i["state"], "-" if i["size"] is None else _size(i["size"]),
                  (i["sha256"] or "-")[:12], i["run_id"] or "-", i["run_state"] or "-", i["reason"] or ""]
                 for i in res["inputs"]])
    if res["quarantine"]:
        print(f"quarantine: {len(res['quarantine'])} file(s) in {cfg.state_dir / 'quarantine'} "
              "(`edgeorch inputs --quarantine`; `edgeorch requeue FILE` sends one back)")
    for e in res.get("watch_errors", []):
        print(f"error  {e}")
    return EXIT_OK


def cmd_requeue(args: argparse.Namespace) -> int:
    cfg = _config(args)
    with _require_daemon(cfg) as client:
        res = client.call("inputs.requeue", {"file": os.path.abspath(args.file)})
    print_json(res) if args.json else print(f"{res['file']} -> {res['requeued_to']}")
    return EXIT_OK


def cmd_trigger(args: argparse.Namespace) -> int:
    args.detach, args.here = True, False
    cfg = _config(args)
    with _require_daemon(cfg):
        pass
    return cmd_run(args)


def cmd_cancel(args: argparse.Namespace) -> int:
    cfg = _config(args)
    with _require_daemon(cfg) as client:
        res = client.call("cancel", {"run_id": args.run_id, "reason": args.reason} if args.reason else {"run_id": args.run_id})
    print_json(res) if args.json else print(f"run {args.run_id}: cancel requested")
    return EXIT_OK


def cmd_events(args: argparse.Namespace) -> int:
    cfg = _config(args)
    with _require_daemon(cfg) as client:
        for ev in client.stream("events", {"run_id": args.run} if args.run else {}):
            if args.json:
                print(json.dumps(ev), flush=True)
            else:
                stamp = time.strftime("%H:%M:%S", time.localtime(ev.get("ts", time.time())))
                rest = {k: v for k, v in ev.items() if k not in ("ts", "kind") and v is not None}
                print(f"{stamp}  {ev.get('kind', '?'):<10} " + " ".join(f"{k}={v}" for k, v in rest.items()), flush=True)
    return EXIT_OK


def cmd_reload(args: argparse.Namespace) -> int:
    cfg = _config(args)
    with _require_daemon(cfg) as client:
        res = client.call("reload")
    if args.json:
        print_json(res)
    else:
        print(f"reloaded: {res['summary']}")
        for e in res["errors"]:
            print(f"error  {e['message']}")
        for w in res["warnings"]:
            print(f"note   {w}")
    return EXIT_OK if not res["errors"] else EXIT_FAILED


# -- parser ---------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgeorch",
        description="A single-machine orchestrator for ML and data pipelines.",
        epilog="Exit codes: " + ", ".join(f"{code} {meaning}" for code, meaning in EXIT_CODES) + ".",
    )
    parser.add_argument("--version", action="version", version=f"edgeorch {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(name: str, func: Callable[[argparse.Namespace], int], help_text: str, *, json_flag: bool = True) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(func=func)
        if json_flag:
            p.add_argument("--json", action="store_true", help="print JSON for scripts instead of tables")
        return p

    p = add("validate", cmd_validate, "check pipeline files without running anything (exit 0 valid, 1 invalid)")
    p.add_argument("path", nargs="?", help="a pipeline file or folder (default: the configured pipelines folder)")

    p = add("daemon", cmd_daemon, "run the daemon in the foreground (systemd runs it as a service)", json_flag=False)

    p = add("status", cmd_status, "the daemon's state: uptime, runs, running tasks, pipelines")

    p = add("run", cmd_run, "run a pipeline now and show its progress (exit 0 only if the run succeeded); "
                            "through the daemon when one runs, else in this process")
    p.add_argument("pipeline", help="a pipeline name from the pipelines folder, or a path to a pipeline .toml file")
    p.add_argument("-p", "--param", action="append", metavar="KEY=VALUE", help="set a parameter (repeatable)")
    p.add_argument("--detach", "-d", action="store_true", help="with a daemon: queue the run and return its id at once")
    p.add_argument("--here", action="store_true", help="run in this process even if a daemon runs (needs the state lock)")

    p = add("trigger", cmd_trigger, "queue a run on the daemon and print its id (like run --detach)")
    p.add_argument("pipeline", help="a pipeline name")
    p.add_argument("-p", "--param", action="append", metavar="KEY=VALUE", help="set a parameter (repeatable)")

    p = add("pipelines", cmd_pipelines, "list, show, validate, pause or resume pipelines")
    p.add_argument("action", nargs="?", choices=["list", "show", "validate", "pause", "resume"], help="default: list")
    p.add_argument("name", nargs="?", metavar="NAME", help="pipeline name (validate: a file or folder)")
    p.add_argument("--reason", help="why (recorded with pause)")

    p = add("inputs", cmd_inputs, "files that arrived in drop folders: state, size, sha256, run; and the quarantine")
    p.add_argument("--pipeline", help="only inputs of this pipeline")
    p.add_argument("--state", help="only inputs in this state (claimed, started, done, duplicate, refused, quarantined, ...)")
    p.add_argument("--limit", "-n", type=int, default=None, help="how many (default 100)")
    p.add_argument("--quarantine", action="store_true", help="list the quarantined files with their reasons")

    p = add("requeue", cmd_requeue, "send a quarantined file back into its drop folder (it is processed again)")
    p.add_argument("file", metavar="FILE", help="a file in <state>/quarantine")

    p = add("resources", cmd_resources, "cores, memory and GPUs (live readings), who holds what, and the queue "
                                        "with each waiting task's reason; without a daemon: the inventory only")

    p = add("cancel", cmd_cancel, "cancel an active run on the daemon")
    p.add_argument("run_id", type=int, metavar="RUN_ID")
    p.add_argument("--reason", help="recorded with the cancellation")

    p = add("events", cmd_events, "stream the daemon's state changes (one line each; --json: JSON lines)")
    p.add_argument("--run", type=int, metavar="RUN_ID", help="only this run's events")

    p = add("reload", cmd_reload, "reload the pipelines folder and the config's access lists (like SIGHUP)")

    p = add("runs", cmd_runs, "list recent runs")
    p.add_argument("--limit", "-n", type=int, default=20, help="how many runs (default 20)")
    p.add_argument("--pipeline", help="only runs of this pipeline")
    p.add_argument("--state", choices=[s.value for s in RunState], help="only runs in this state")

    p = add("show", cmd_show, "show a run: tasks, attempts, exit codes, durations, results, artifacts")
    p.add_argument("run_id", type=int, metavar="RUN_ID")

    p = add("logs", cmd_logs, "print the log of a task's attempt (the latest by default)", json_flag=False)
    p.add_argument("run_id", type=int, metavar="RUN_ID")
    p.add_argument("task", metavar="TASK")
    p.add_argument("--attempt", type=int, metavar="N", help="attempt number (default: the latest)")
    p.add_argument("--follow", "-f", action="store_true", help="keep printing while the attempt runs (needs the daemon)")

    p = add("retry", cmd_retry, "resume a finished run: rerun failed tasks and those whose outputs changed")
    p.add_argument("run_id", type=int, metavar="RUN_ID")

    try:
        from .kernels.cli import register as register_kernels
    except ImportError:
        register_kernels = None
    if register_kernels is not None:
        register_kernels(sub)
    add_config_option(parser)  # last: every subcommand, the kernels' too, accepts --config
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return args.func(args)
    except EdgeorchError as exc:
        print(f"edgeorch: error: {exc.render()}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("edgeorch: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `edgeorch logs ... | head`
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
