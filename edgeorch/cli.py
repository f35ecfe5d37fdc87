"""The ``edgeorch`` command.

Each subcommand is a small function ``cmd_<name>(args) -> int`` (the exit
code). Errors a user can cause are :class:`EdgeorchError` and print as one
clear message; tracebacks are reserved for bugs.

Exit codes: 0 success; 1 failure (run failed, invalid pipeline, drift found);
2 usage or configuration error; 3 not found; 4 state file unusable;
5 conflict (e.g. retrying a running run); 130 interrupted (run cancelled).
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
from .config import Config, load_config
from .errors import EdgeorchError, NotFoundError, UsageError
from .model import RunState
from .pipelines import parse_param_args, resolve_params, validate_path
from .textui import format_duration, format_timestamp, print_json, print_table

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

STATE_MARKS = {"succeeded": "ok", "failed": "FAILED", "skipped": "cached", "upstream_failed": "upstream failed",
               "cancelled": "cancelled", "running": "running", "retry_wait": "retry wait"}


def _config(args: argparse.Namespace) -> Config:
    cfg = load_config(args.config)
    os.environ.setdefault("NUMBA_CACHE_DIR", str(cfg.numba_cache_dir))
    return cfg


def _open_store(cfg: Config, *, readonly: bool):
    from .store import Store

    if readonly and not cfg.state_file.exists():
        return None
    return Store(cfg.state_file, readonly=readonly)


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
        run_id = action(engine)
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
    _print_run(cfg, run_id, json_out=json_out, summary=True)
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


def cmd_run(args: argparse.Namespace) -> int:
    cfg = _config(args)
    pipeline = _find_pipeline(cfg, args.pipeline)
    params = resolve_params(pipeline, parse_param_args(args.param or []))
    if not args.json:
        print(f"running {pipeline.name} ({len(pipeline.tasks)} tasks) with state in {cfg.state_dir}", flush=True)
    return _drive(cfg, lambda engine: engine.submit(pipeline, params, trigger="cli", actor=_actor()), json_out=args.json)


def cmd_retry(args: argparse.Namespace) -> int:
    cfg = _config(args)

    def action(engine: Any) -> int:
        redo = engine.resume(args.run_id, actor=_actor())
        if not args.json:
            print(f"resuming run {args.run_id}: {', '.join(redo)}", flush=True)
        return args.run_id

    return _drive(cfg, action, json_out=args.json)


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
    store = _open_store(cfg, readonly=True)
    runs = store.list_runs(limit=args.limit, pipeline=args.pipeline, state=args.state) if store else []
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


def _run_doc(store: Any, run_id: int) -> dict[str, Any]:
    run = store.get_run(run_id)
    run["tasks"] = store.tasks_of(run_id)
    attempts = store.attempts_of(run_id)
    for t in run["tasks"]:
        t["attempt_list"] = [a for a in attempts if a["task"] == t["name"]]
        t["artifacts"] = store.latest_artifacts(run_id, t["name"])
    run["results"] = store.results_of(run_id)
    run["checkpoints"] = store.checkpoints_of(run_id)
    return run


def _print_run(cfg: Config, run_id: int, *, json_out: bool, summary: bool = False) -> None:
    store = _open_store(cfg, readonly=True)
    if store is None:
        raise NotFoundError("no such run (no state file yet)", value=run_id)
    try:
        run = _run_doc(store, run_id)
    finally:
        store.close()
    if json_out:
        print_json(run)
        return
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
    failed = [t for t in run["tasks"] if t["state"] == "failed"]
    for t in failed:
        print(f"\nlast lines of {t['name']} (edgeorch logs {run_id} {t['name']}):")
        last = t["attempt_list"][-1] if t["attempt_list"] else None
        if last:
            for line in _tail(Path(last["log_path"]), 10):
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
    _print_run(cfg, args.run_id, json_out=args.json)
    if not args.json:
        store = _open_store(cfg, readonly=True)
        assert store is not None
        try:
            attempts = store.attempts_of(args.run_id)
            print("\nattempts:")
            print_table(["task", "#", "state", "pid", "started", "duration", "exit", "log"], [
                [a["task"], a["number"], a["state"], a["pid"], format_timestamp(a["started_at"]),
                 format_duration((a["finished_at"] or time.time()) - a["started_at"]),
                 a["exit_code"] if a["signal"] is None else f"sig {a['signal']}", a["log_path"]] for a in attempts])
            arts = store.artifacts_of(args.run_id)
            if arts:
                print("\nartifacts:")
                print_table(["task", "name", "size", "sha256", "path"],
                            [[a["task"], a["name"], a["size"], a["sha256"][:12], a["path"]] for a in arts])
        finally:
            store.close()
    return EXIT_OK


def cmd_logs(args: argparse.Namespace) -> int:
    cfg = _config(args)
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


# -- parser ---------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgeorch",
        description="A single-machine orchestrator for ML and data pipelines.",
        epilog="Exit codes: 0 ok, 1 failed/invalid, 2 usage or config error, 3 not found, 4 state file unusable, "
               "5 conflict, 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"edgeorch {__version__}")
    parser.add_argument("--config", "-c", metavar="PATH", help="config file (default: $EDGEORCH_CONFIG, ./config.toml, else embedded defaults)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(name: str, func: Callable[[argparse.Namespace], int], help_text: str, *, json_flag: bool = True) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(func=func)
        if json_flag:
            p.add_argument("--json", action="store_true", help="print JSON for scripts instead of tables")
        return p

    p = add("validate", cmd_validate, "check pipeline files without running anything (exit 0 valid, 1 invalid)")
    p.add_argument("path", nargs="?", help="a pipeline file or folder (default: the configured pipelines folder)")

    p = add("run", cmd_run, "run a pipeline now and show its progress (exit 0 only if the run succeeded)")
    p.add_argument("pipeline", help="a pipeline name from the pipelines folder, or a path to a pipeline .toml file")
    p.add_argument("-p", "--param", action="append", metavar="KEY=VALUE", help="set a parameter (repeatable)")

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

    p = add("retry", cmd_retry, "resume a finished run: rerun failed tasks and those whose outputs changed")
    p.add_argument("run_id", type=int, metavar="RUN_ID")

    try:
        from .kernels.cli import register as register_kernels
    except ImportError:
        register_kernels = None
    if register_kernels is not None:
        register_kernels(sub)
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
