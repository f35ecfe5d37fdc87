"""Run commands: ``run``, ``trigger``, ``retry``, ``cancel``, ``runs``, ``show``, ``logs``.

``run`` and ``retry`` go to the daemon when one answers (and follow its
``events`` stream), else drive an engine in this process until the run ends
(:func:`_drive`); the choice is :func:`edgeorch.cli.backend.connect`'s.
With a daemon every command goes through the Python client
(``backend.api``, an :class:`edgeorch.Client`), the same calls a script makes.
"""

from __future__ import annotations

import argparse
import errno
import functools
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from ...errors import EdgeorchError, NotFoundError, StateError, UsageError
from ...model import RunState
from ...textui import format_duration, format_timestamp, print_json, print_table, printable
from ..backend import Backend, DaemonTookState, connect, if_the_daemon_goes, load
from ..exits import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, follows_a_run, sigterm_as_interrupt
from ..parsing import run_id_type
from . import AddCommand
from .pipelines import require_pipeline_file

if TYPE_CHECKING:
    from ...engine.executors.local.launch import EarlyZygote
    from ...store import Store

STATE_MARKS = {"succeeded": "ok", "failed": "FAILED", "skipped": "cached", "upstream_failed": "upstream failed",
               "cancelled": "cancelled", "running": "running"}


def register(add: AddCommand) -> None:
    p = add("run", cmd_run, "run a pipeline now and show its progress (exit 0 only if the run succeeded); "
                            "through the daemon when one runs, else in this process")
    p.add_argument("pipeline", help="a pipeline name from the pipelines folder, or a path to a pipeline .toml file")
    p.add_argument("-p", "--param", action="append", metavar="KEY=VALUE", help="set a parameter (repeatable)")
    p.add_argument("--detach", "-d", action="store_true", help="queue the run on the daemon and return its id at once "
                                                                   "(like trigger: exit 69 when no daemon runs)")
    p.add_argument("--here", action="store_true", help="run in this process, never through a daemon (it needs the "
                                                        "state folder to itself: refused while a daemon uses it)")
    _no_cache_option(p)

    p = add("trigger", cmd_trigger, "queue a run on the daemon and print its id (like run --detach)")
    p.add_argument("pipeline", help="a pipeline name")
    p.add_argument("-p", "--param", action="append", metavar="KEY=VALUE", help="set a parameter (repeatable)")
    _no_cache_option(p)

    p = add("cancel", cmd_cancel, "cancel an active run (without a daemon: stop its tasks here and wait)")
    p.add_argument("run_id", type=run_id_type, metavar="RUN_ID")
    p.add_argument("--reason", help="recorded with the cancellation")

    p = add("runs", cmd_runs, "list recent runs")
    p.add_argument("--limit", "-n", type=int, default=20, help="how many runs (default 20)")
    p.add_argument("--pipeline", help="only runs of this pipeline")
    p.add_argument("--state", choices=[s.value for s in RunState], help="only runs in this state")

    p = add("show", cmd_show, "show a run: tasks, attempts, exit codes, durations, results, artifacts")
    p.add_argument("run_id", type=run_id_type, metavar="RUN_ID")

    p = add("logs", cmd_logs, "print the log of a task's attempt (the latest by default)", json_flag=False)
    p.add_argument("run_id", type=run_id_type, metavar="RUN_ID")
    p.add_argument("task", metavar="TASK")
    p.add_argument("--attempt", type=int, metavar="N", help="attempt number (default: the latest)")
    p.add_argument("--follow", "-f", action="store_true", help="keep printing while the attempt runs, then the task's retries (waits for a task "
                   "that has not started; needs the daemon)")
    p.add_argument("--raw", action="store_true", help="the bytes as the task wrote them, control sequences too (on "
                   "a terminal, only colours are kept by default; a pipe always gets the bytes)")

    p = add("retry", cmd_retry, "resume a finished run: rerun failed tasks and those whose outputs changed")
    p.add_argument("run_id", type=run_id_type, metavar="RUN_ID")
    p.add_argument("--current", action="store_true",
                   help="run them under the pipeline file as it is now, not the run's own definition (a longer "
                        "timeout, more retries, a fixed command; its tasks, needs and params must be the run's); "
                        "the run keeps its checkpoints and finished tasks")


# -- run / retry / trigger ------------------------------------------------------------------

def _no_cache_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-cache", action="store_true", help="use no recorded result: every task runs (after a fix to "
                                                            "a script the cache key does not cover); its results are "
                                                            "recorded and serve later runs")


@follows_a_run
def cmd_run(args: argparse.Namespace) -> int:
    if args.detach and args.here:
        raise UsageError("--detach and --here exclude each other", field="--detach",
                         expected="--detach (queue it on the daemon) or --here (run it in this process), not both")
    if args.detach:  # nothing can run a detached run but a daemon: never in this process (a script waits for an id)
        return cmd_trigger(args)
    cfg = load(args)
    require_pipeline_file(args.pipeline)  # daemon or not: not found (exit 3), as `validate FILE` and `run NAME`
    if args.here:
        _refuse_here_beside_a_daemon(cfg)
    with connect(cfg, "offline" if args.here else "prefer", runs_here=True) as backend:
        if backend.online:
            return _run_on_daemon(args, backend)
    return _here_else_daemon(cfg, functools.partial(_run_here, args, backend),
                             functools.partial(_run_on_daemon, args), must_be_here=args.here)


def _here_else_daemon(cfg: Any, here: Callable[[], int], on_daemon: Callable[[Backend], int], *,
                      must_be_here: bool = False) -> int:
    """``here()``, a command's offline path (:func:`connect` found no daemon); when a daemon took the state between
    that look and this process's lock (it was starting: :class:`DaemonTookState`), nothing ran here, and the
    request goes to it (``on_daemon``), as it would have a moment later: before, the command said "in use by
    another edgeorch daemon", exit 4. ``must_be_here`` (``run --here``): the refusal stands."""
    try:
        return here()
    except DaemonTookState:
        if must_be_here:
            raise
    with connect(cfg, "daemon", runs_here=True) as backend:
        return on_daemon(backend)


def _refuse_here_beside_a_daemon(cfg: Any) -> None:
    """``run --here`` needs the state folder's lock, which a running daemon always holds: say so before anything
    is printed or parsed, with what to do instead (the lock itself is still what decides, later)."""
    from ...control.statelock import state_holder

    holder = state_holder(cfg.state_dir)
    if holder is not None and holder[1]:
        raise StateError(f"--here runs in this process, but the state folder {cfg.state_dir} is in use by the "
                         f"edgeorch daemon (pid {holder[0]})", hint="run it through the daemon (leave out --here), or "
                                                                   "stop the daemon first")


def cmd_trigger(args: argparse.Namespace) -> int:
    """``run --detach`` that refuses (exit 69) instead of running in this process when no daemon runs."""
    args.detach, args.here = True, False
    cfg = load(args)
    require_pipeline_file(args.pipeline)
    with connect(cfg, "daemon") as backend:
        return _run_on_daemon(args, backend)


def _run_on_daemon(args: argparse.Namespace, backend: Backend) -> int:
    """Queue the run on the daemon (a pipeline name, or a file whose content it runs); follow it unless ``--detach``."""
    from ...pipelines import parse_param_args

    params = parse_param_args(args.param or [])

    def say_queued(queued: Any) -> None:
        if not (args.json or args.quiet):  # -q: no progress, only the run's summary
            print(f"run {queued.run_id} of {queued.pipeline} queued on the daemon at {backend.cfg.socket_path}", flush=True)
        if not args.quiet:  # what the caller should know (a stale pipeline): on stderr, --json too
            for w in queued.warnings:
                print(f"warning: pipeline {printable(queued.pipeline)}: {printable(w)}", file=sys.stderr, flush=True)

    if args.detach:
        queued = backend.api.submit(args.pipeline, params, label="cli", no_cache=args.no_cache)
        say_queued(queued)
        if args.json:
            print_json(queued.to_dict())
        elif args.quiet:  # the run id alone: `id=$(edgeorch trigger p -q)`
            print(queued.run_id)
        return EXIT_OK

    def submit(printer: _ProgressPrinter, queued: Callable[[Any], None]) -> Any:
        def on_queued(q: Any) -> None:
            say_queued(q)  # first: a Ctrl-C held until the run is known is raised by queued()
            queued(q)

        # Client.run subscribes to the events before it queues the run: a task that ends at once is shown too.
        return backend.api.run(args.pipeline, params, label="cli", on_event=printer.shown, on_queued=on_queued,
                               no_cache=args.no_cache)

    return _follow_remote(backend, None, json_out=args.json, quiet=args.quiet, submit=submit)


def _run_here(args: argparse.Namespace, backend: Backend) -> int:
    """Run the pipeline with an engine in this process (the offline path)."""
    from ...pipelines import parse_param_args, resolve_params
    from .pipelines import find_pipeline

    raw_params = parse_param_args(args.param or [])
    pipeline = find_pipeline(backend.cfg, args.pipeline)
    resolve_params(pipeline, dict(raw_params), source="-p")  # a bad -p is said before "running ...", as a daemon does
    banner = None
    if not (args.json or args.quiet):  # -q: no progress, only the run's summary
        banner = f"running {pipeline.name} ({len(pipeline.tasks)} task(s)) with state in {backend.cfg.state_dir}"

    async def action(engine: Any) -> int:
        from ...engine.requests import RunRequest, RunRequests

        # The same front door as the daemon's: paused, params and resources are checked there.
        # The folder's pipeline of a name is what a file run here is compared with (its models: rule 5), as the
        # daemon compares a client's file: a copy with `gates = []` registered past the owner's gates here.
        door = RunRequests(engine, functools.partial(find_pipeline, backend.cfg))
        run_id = door.start(RunRequest(pipeline, raw_params, trigger="cli", actor=_actor(), source="-p",
                                       no_cache=args.no_cache)).run_id
        if banner is not None:  # once the run exists: a refused one (paused, resources) says that alone
            print(banner, flush=True)
        return run_id

    return _drive(backend, action, json_out=args.json, quiet=args.quiet)


@follows_a_run
def cmd_retry(args: argparse.Namespace) -> int:
    cfg = load(args)
    with connect(cfg, runs_here=True) as backend:
        if backend.online:
            return _retry_on_daemon(args, backend)
    return _here_else_daemon(cfg, functools.partial(_retry_here, args, backend),
                             functools.partial(_retry_on_daemon, args))


def _retry_on_daemon(args: argparse.Namespace, backend: Backend) -> int:
    """Ask the daemon to resume the run, and follow it as ``run`` does."""
    run = backend.api.get_run(args.run_id)

    def submit(printer: _ProgressPrinter, queued: Callable[[Any], None]) -> Any:
        def on_resumed(tasks: list[str]) -> None:
            if not (args.json or args.quiet):  # -q: no progress, only the run's summary
                print(f"resuming run {args.run_id}: {', '.join(tasks)}"
                      + (" (under the pipeline file as it is now)" if args.current else ""), flush=True)
            if not args.quiet and not args.current:
                _note_definition(args.run_id, run.pipeline, run.pipeline_file, run.content_hash)
            from types import SimpleNamespace

            queued(SimpleNamespace(run_id=args.run_id))  # its id: a Ctrl-C from here on cancels it

        # Subscribed before the retry is asked for: a rerun task that ends at once is shown too.
        return backend.api.rerun(args.run_id, on_event=printer.shown, on_resumed=on_resumed,
                                 current=args.current)

    return _follow_remote(backend, None, json_out=args.json, quiet=args.quiet, submit=submit)


def _retry_here(args: argparse.Namespace, backend: Backend) -> int:
    """Resume the run in this process (no daemon): an engine of its own, as ``run`` without a daemon."""

    async def action(engine: Any) -> int:
        from ...engine.requests import RunRequests
        from ...events import RunResumed
        from ...triggers.drop.retry import restore_inputs_for_retry

        from .pipelines import find_pipeline

        door = RunRequests(engine, functools.partial(find_pipeline, backend.cfg))
        # As the daemon wires its front door: a drop-folder run's quarantined input comes back for the retry.
        door.before_resume.append(functools.partial(restore_inputs_for_retry, engine.store))
        announced: list[bool] = []

        def announce(redo: Any) -> None:
            if announced:
                return
            announced.append(True)
            order = [t["name"] for t in engine.store.runs.tasks_of(args.run_id)]  # the pipeline's order
            _announce_retry(args, [n for n in order if n in redo], engine.store)

        def resumed(event: Any) -> None:
            if event.run_id == args.run_id:
                announce(event.resumed)

        # Said when the engine has recorded the resume (its RunResumed), before its dispatch starts a task: said
        # after `door.resume` returned, it came after the first task's "started" line.
        unsubscribe = engine.bus.subscribe(resumed, RunResumed)
        try:
            redo = await door.resume(args.run_id, actor=_actor(), current=args.current)
        finally:
            unsubscribe()
        announce(redo)  # (the event always comes first: this is for a bus that did not deliver it)
        return args.run_id

    def unfinished(store: Store) -> None:  # refused before this process takes any run over (start_nothing's why)
        from ...engine.engine import check_resumable

        check_resumable(args.run_id, store.runs.get(args.run_id)["state"], unowned=True)

    return _drive(backend, action, json_out=args.json, quiet=args.quiet, check=unfinished)


def _announce_retry(args: argparse.Namespace, redo: list[str], store: Store) -> None:
    """``resuming run N: TASKS`` (not with ``-q``/``--json``) and the note about a changed pipeline file (not with
    ``-q``), of a retry in this process: before any progress line of the rerun."""
    if not (args.json or args.quiet):  # -q: no progress, only the run's summary
        print(f"resuming run {args.run_id}: {', '.join(redo)}"
              + (" (under the pipeline file as it is now)" if args.current else ""), flush=True)
    if not args.quiet and not args.current:
        run = store.runs.get(args.run_id)
        version = store.pipelines.version(run["pipeline_version_id"])
        _note_definition(args.run_id, run["pipeline"], store.pipelines.file_of_run(run), version["content_hash"])


def _note_definition(run_id: int, pipeline: str, file: str | Path | None, content_hash: str | None) -> None:
    """Say on stderr when a retry reruns a definition that is no longer its pipeline file's (an operator fixed a
    timeout in the file and retried: the retry ran the old one, silently). A retry always reruns the run's own
    definition (what its finished tasks' outputs were made with); the edited file takes effect in a new run."""
    if file is None or content_hash is None:
        return
    shown = printable(str(file))
    now = _file_hash(file)
    if now == content_hash:
        return
    what = "cannot be read now" if now is None else "changed since the run was created"
    print(f"note: {shown} {what}; the retry reruns run {run_id}'s own definition, not the file as it is now. "
          + (f"`edgeorch retry {run_id} --current` runs them under the file as it is (a longer timeout, a fixed "
             f"command), keeping this run's checkpoints and finished tasks; a new run (`edgeorch run "
             f"{printable(pipeline)}`) starts from scratch" if now is not None else
             "It is stored with the run: the retry needs no file"), file=sys.stderr, flush=True)


def _file_hash(file: str | Path) -> str | None:
    """The content hash a pipeline file has now (as a run records its definition's), None when it cannot be read."""
    from ...model import text_hash
    from ...pipelines.load import read_pipeline_bytes

    try:
        return text_hash(read_pipeline_bytes(Path(file)).decode("utf-8"))
    except (EdgeorchError, UnicodeDecodeError):
        return None


def _actor() -> str:
    from ..backend import local_actor

    return local_actor()


class _ProgressPrinter:
    """Prints one line per task transition (humans) and remembers what happened."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.started: dict[tuple[Any, str], float] = {}  # (run, task) -> when its attempt started
        self._seen: set[tuple[Any, str, int | None]] = set()  # (run, task, attempt) already said to be running
        self.others: set[Any] = set()
        """Runs an engine in this process found active when it started (a killed `edgeorch run` left them, it goes
        on with them): their lines say whose they are, as every line while ``starting`` (none is this run's)."""
        self.starting = False
        self.pipelines: dict[Any, str] = {}

    @property
    def shown(self) -> Callable[[dict[str, Any]], None] | None:
        """What a daemon's follower hands each stream item to: this printer, or None when it prints nothing
        (``-q``, ``--json``), so the stream carries only the run's own items (``Client.wait``)."""
        return self if self.enabled else None

    def __call__(self, ev: dict[str, Any]) -> None:
        if self.enabled and ev.get("kind") == "model":
            from ...models.views import event_line

            print(f"{time.strftime('%H:%M:%S', time.localtime(ev['ts']))}  {printable(event_line(ev))}", flush=True)
            return
        if not self.enabled or ev.get("kind") != "task":
            return
        name, state, run = ev["task"], ev["state"], ev.get("run_id")
        stamp = time.strftime("%H:%M:%S", time.localtime(ev["ts"]))
        if self.starting or run in self.others:  # another run this engine went on with: said whose
            stamp += f"  run {run} {printable(self.pipelines.get(run, ''))}".rstrip() + ":"
        if state == "running":
            if (run, name, ev.get("attempt")) in self._seen:
                return  # a daemon's catch-up of a run already under way and the bus can both carry it
            self._seen.add((run, name, ev.get("attempt")))
            self.started[(run, name)] = ev["ts"]
            # A limit the task asked for and this machine does not enforce is said where the task is watched.
            unenforced = [part for part in str(ev.get("resources") or "").split("; ") if "not enforced" in part]
            print(f"{stamp}  {name:<24} started (attempt {ev.get('attempt')})"
                  + "".join(f"; warning: {printable(u)}" for u in unenforced), flush=True)
            for note in ev.get("set_aside") or ():  # a retry that starts over: said where the retry is watched
                print(f"{stamp}  {name:<24} note: {printable(note)}", flush=True)
            return
        took = ev["ts"] - self.started[(run, name)] if (run, name) in self.started else None
        detail = f" in {format_duration(took)}" if took is not None else ""
        reason = f": {printable(ev['reason'])}" if ev.get("reason") else ""  # a task's last line: its own text
        trunc = " (log truncated at cap)" if ev.get("log_truncated") else ""
        mark = STATE_MARKS.get(state, state)
        if state == "retry_wait":  # the attempt failed and another follows: "retry wait in 0.0s" read as the wait
            mark = f"attempt {ev['attempt']} failed" if ev.get("attempt") else "failed"
        print(f"{stamp}  {name:<24} {mark}{detail}{reason}{trunc}", flush=True)


def _drive(backend: Backend, action: Callable[[Any], Awaitable[int]], *, json_out: bool, quiet: bool = False,
           start_nothing: bool = False, banner: str | None = None, check: Callable[[Store], None] | None = None) -> int:
    """Run an engine in this process until the run started (or resumed) by ``await action(engine)`` finishes.

    Ctrl-C (or SIGTERM) cancels the run cleanly: running tasks get SIGTERM and
    the grace period, the cancellation is recorded, exit code 130. ``start_nothing``: the engine starts no
    attempt at all (``cancel``: it only stops the run's tasks; other runs' queued tasks must not start under an
    engine that is about to exit, unsupervised). ``banner``: printed once the state is this process's (a state
    another run holds is refused first, with nothing said to be running). ``check(store)``: raises to refuse the
    command once the state is this process's, before its engine starts (takes over no run, starts no task).
    """
    cfg = backend.cfg
    # The lock first, then the state file: opened for writing, a new or older file is created or migrated, which
    # only the lock's holder may do (beside a daemon starting at that moment both made the tables: "table
    # datasets already exists", exit 4). A refusal here (a daemon took the state meanwhile) left nothing done.
    lock = backend.state_lock()
    try:
        store = backend.open_store(readonly=False)
    except BaseException:
        lock.release()
        raise
    assert store is not None  # a writer's store is created when missing
    if check is not None:
        try:
            check(store)
        except BaseException:
            store.close()
            lock.release()
            raise
    if banner is not None:
        print(banner, flush=True)
    # The zygote boots on another core while this process imports the engine (most of a short run's time).
    zygote = None
    if cfg.executor.kind == "local":
        from ...engine.executors.local.launch import EarlyZygote

        zygote = EarlyZygote.start()
    try:
        run_id, state = _drive_engine(backend, store, action, zygote, progress=not (json_out or quiet),
                                      start_nothing=start_nothing)
    finally:
        if zygote is not None:
            zygote.discard()  # a no-op once the engine took it (its close let it exit)
        store.close()
        lock.release()
    run = _run_document(backend, run_id)  # offline: the state file this engine just wrote
    print_json(run) if json_out else _print_run(run, summary=True, after_progress=not quiet)
    if state == RunState.SUCCEEDED:
        return EXIT_OK
    return EXIT_INTERRUPTED if state == RunState.CANCELLED else EXIT_FAILED


def _drive_engine(backend: Backend, store: Store, action: Callable[[Any], Awaitable[int]],
                  zygote: EarlyZygote | None, *, progress: bool, start_nothing: bool = False) -> tuple[int, RunState]:
    """:func:`_drive`'s engine in this process, the state file open and locked (closed by the caller):
    the run's id and final state."""
    import asyncio

    from ...engine.engine import Engine

    cfg = backend.cfg
    printer = _ProgressPrinter(enabled=progress)

    async def main() -> tuple[int, RunState]:
        from ...events import ModelRegistered

        engine = Engine(cfg, store, early_zygote=zygote)
        if start_nothing:
            engine.accepting = False  # before start(): its recovery queues other runs' tasks, and nothing starts them
        if printer.enabled:  # the same items a daemon's stream sends (none made for -q, --json)
            engine.bus.subscribe(lambda event: printer(event.to_wire()))
        # A registered model's promotion runs here too, as in a daemon (docs/models.md); the run waits for it.
        # The service is imported once the engine has started; a registration published before it exists
        # is handed to it then.
        early: list[Any] = []
        to_models: list[Callable[[Any], None]] = [early.append]
        engine.bus.subscribe(lambda event: to_models[0](event), ModelRegistered)
        printer.starting = True
        if printer.enabled:  # the lines of its recovery are said whose too ("run 1326:  check" had no pipeline)
            printer.pipelines = {r["id"]: r["pipeline"] for r in store.runs.active()}
        await engine.start()
        engine.own_runs_first = True  # the run asked for starts its tasks before those of the runs taken over
        printer.starting = False
        printer.others = set(engine.runs)  # what it went on with: runs a killed `edgeorch run` left
        printer.pipelines = {rid: ctx.pipeline.name for rid, ctx in engine.runs.items()}
        if printer.enabled and printer.others:
            shown = ", ".join(f"{rid} ({printable(name)})" for rid, name in sorted(printer.pipelines.items()))
            if not start_nothing:  # (cancel starts nothing of theirs: they wait for the next daemon or run)
                print(f"note: this process also goes on with run(s) {shown}, left unfinished by a process that "
                      "stopped (a daemon, or an `edgeorch run` that was killed), after its own run's tasks, until "
                      "its own run ends: their lines say so", flush=True)
        from ...models.service import ModelService

        models = ModelService(store, serving_dir=cfg.state_dir / "serving", publish=engine.bus.publish,
                              clock=engine.clock)
        to_models[0] = models.on_event
        for event in early:
            models.on_event(event)
        await models.start()
        loop = asyncio.get_running_loop()
        try:
            run_id = await action(engine)
        except BaseException:  # refused by the front door: nothing started, stop the engine cleanly
            await models.close()
            await engine.close()
            raise
        interrupted: list[bool] = []

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
            await models.drain()
        finally:
            await models.close()
            await engine.close()
        return run_id, state

    return asyncio.run(main())


def _follow_remote(backend: Backend, run_id: int | None, *, json_out: bool, quiet: bool = False,
                   submit: Callable[[_ProgressPrinter, Callable[[Any], None]], Any] | None = None) -> int:
    """Print a daemon-run's progress from the ``events`` stream until it finishes (``Client.wait``).

    With ``submit`` instead of a ``run_id``, the run is queued by it (``Client.run``, given the printer and a
    callback for the queued run), after the stream was opened. Ctrl-C asks the daemon to cancel the run and
    keeps following until it has.
    """
    api = backend.api
    printer = _ProgressPrinter(enabled=not (json_out or quiet))
    ids: list[int] = [] if run_id is None else [run_id]
    cancel_sent = False
    # SIGTERM (`timeout 600 edgeorch run ...`, a CI job stopped) as Ctrl-C: the run is cancelled, not left going
    # with nobody following it (as the run without a daemon does).
    signals: list[str] = []
    previous_term = signal.signal(signal.SIGTERM, functools.partial(_interrupted_by, signals, "SIGTERM"))

    def request_cancel() -> None:
        nonlocal cancel_sent
        if not cancel_sent:
            cancel_sent = True
            how = signals[0] if signals else "Ctrl-C"
            try:
                api.cancel(ids[0], reason=f"interrupted by the user ({how})")
            except EdgeorchError as exc:
                print(f"edgeorch: {exc.render()}", file=sys.stderr)

    def cancel_once_subscribed(item: dict[str, Any]) -> None:
        # The cancel is sent once the new stream is subscribed: it opens with the attempts running then,
        # so the ones the interrupted stream had not shown yet are still said to have started.
        printer(item)
        if item.get("kind") == "subscribed":
            request_cancel()

    try:
        run = _follow_until_done(api, ids, printer, submit, cancel_once_subscribed, request_cancel, signals)
    finally:
        signal.signal(signal.SIGTERM, previous_term)
    if isinstance(run, int):
        return run
    from ...client.records import shared_document  # loaded with the client already

    doc = shared_document(run)  # only read here: not copied
    print_json(doc) if json_out else _print_run(doc, summary=True, after_progress=not quiet)
    return {"succeeded": EXIT_OK, "cancelled": EXIT_INTERRUPTED}.get(run.state, EXIT_FAILED)


def _interrupted_by(signals: list[str], name: str, signum: int, frame: Any) -> None:
    """A signal handler that interrupts as Ctrl-C does, noting which signal it was (the cancel's reason)."""
    signals.append(name)
    raise KeyboardInterrupt


def _follow_until_done(api: Any, ids: list[int], printer: "_ProgressPrinter", submit: Any,
                       cancel_once_subscribed: Callable[[dict[str, Any]], None], request_cancel: Callable[[], None],
                       signals: list[str]) -> Any:
    """:func:`_follow_remote`'s loop: the finished run, or the exit code when it stops waiting first."""
    from ...control.protocol import BadResponse  # here: loaded with the daemon's client, not for `--help`

    run = None
    cancelled = False
    while run is None:
        try:
            if ids:
                run = api.wait(ids[0], on_event=cancel_once_subscribed if cancelled else printer.shown)
            else:
                assert submit is not None
                run = _submit_then_interruptible(submit, printer, ids, signals)
        except BadResponse as exc:  # the daemon went away while we followed: the run is not lost with it
            # (The client's own hint for this, `client.wait(N)`, is a script's words: a person is told the command.)
            if ids and (not exc.hint or getattr(exc, "run_id", None) == ids[0]):
                exc.hint = (f"run {ids[0]} goes on when the daemon is back (its tasks keep running meanwhile): "
                            f"`edgeorch show {ids[0]}`")
            if ids and exc.value is None:  # the run a script waits on again (`--json`: the error's field/value);
                exc.rendered = exc.render()  # the text a person reads stays as it was
                exc.field, exc.value = exc.field or "run_id", ids[0]
            raise
        except KeyboardInterrupt:
            if not ids:
                print("\ninterrupted before the daemon said the run was queued; `edgeorch runs` shows whether it was",
                      file=sys.stderr)
                return EXIT_INTERRUPTED
            if cancelled:
                request_cancel()  # not sent yet when the new stream had not subscribed
                print("\nstopped waiting; the daemon goes on cancelling the run", file=sys.stderr)
                return EXIT_INTERRUPTED
            cancelled = True
            how = signals[-1] if signals else "Ctrl-C"
            again = "Ctrl-C" if how == "Ctrl-C" else "the same signal"
            print(f"\ninterrupted ({how}): asking the daemon to cancel the run ({again} again to stop waiting)",
                  file=sys.stderr, flush=True)
    return run


def _submit_then_interruptible(submit: Callable[[_ProgressPrinter, Callable[[Any], None]], Any],
                               printer: _ProgressPrinter, ids: list[int], signals: list[str]) -> Any:
    """``submit(printer, on_queued)`` with a first Ctrl-C held until the daemon has said which run it queued.

    A Ctrl-C while the request is on its way would otherwise leave a run the
    user meant to stop going on with nobody to cancel it (its id not known
    yet). So the first one is noted and raised as soon as the run's id is in
    ``ids`` (the caller then cancels that run); a second one interrupts at
    once (a daemon that does not answer must not hold the terminal).
    """
    held: list[bool] = []

    def on_signal(signum: int, frame: Any) -> None:
        if signum == signal.SIGTERM:
            signals.append("SIGTERM")  # the cancel's reason says which
        if held:
            raise KeyboardInterrupt
        held.append(True)

    def restore() -> None:
        signal.signal(signal.SIGINT, previous)
        signal.signal(signal.SIGTERM, previous_term)

    def queued(q: Any) -> None:
        ids.append(q.run_id)
        restore()
        if held:
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, on_signal)
    previous_term = signal.signal(signal.SIGTERM, on_signal)  # (SIGTERM is Ctrl-C's twin while following)
    try:
        return submit(printer, queued)
    finally:
        restore()


# -- cancel ---------------------------------------------------------------------------------

@follows_a_run
def cmd_cancel(args: argparse.Namespace) -> int:
    """Through the daemon: ask it (at once). Without one (a run an ``edgeorch run`` left when it was killed): an
    engine in this process adopts the run's attempts, stops them, and waits until the run ends cancelled."""
    with connect(load(args)) as backend:
        if backend.online:
            res = backend.api.cancel(args.run_id, reason=args.reason or None)
            if args.json:
                print_json(res)
            elif not args.quiet:  # -q: the exit code says it
                print(f"run {args.run_id}: cancel requested")
            return EXIT_OK

    _run_document(backend, args.run_id)  # an unknown run (or no state file yet): not found, nothing made or locked

    async def action(engine: Any) -> int:
        who = _actor()
        # The reason names the user as the daemon's does (`cancelled by alice`); the actor keeps the uid.
        engine.cancel(args.run_id, actor=who, reason=args.reason or f"cancelled by {who.split(' (uid ', 1)[0]}")
        if not (args.json or args.quiet):
            print(f"run {args.run_id}: cancelling (no daemon runs: this command stops its tasks and waits)",
                  flush=True)
        return args.run_id

    rc = _drive(backend, action, json_out=args.json, quiet=args.quiet, start_nothing=True)
    return EXIT_OK if rc == EXIT_INTERRUPTED else rc  # the run ended cancelled: what was asked


# -- read-only views ------------------------------------------------------------------------

def cmd_runs(args: argparse.Namespace) -> int:
    from ...rundoc import MAX_RUNS_LIMIT

    # One more than shown, to say that more match (20 rows of 52 read as all there were).
    asked = args.limit + 1 if 0 < args.limit < MAX_RUNS_LIMIT else args.limit  # out of range: refused as asked
    with connect(load(args)) as backend:
        if backend.online:
            from ...client.records import shared_document  # loaded with the client already

            runs = [shared_document(r) for r in backend.api.runs(limit=asked, pipeline=args.pipeline,
                                                                  state=args.state)]
        else:
            from ...rundoc import runs_page

            store = backend.open_store(readonly=True)
            try:
                runs = runs_page(store, limit=asked, pipeline=args.pipeline, state=args.state)
            finally:
                if store is not None:
                    store.close()
        if not runs and args.pipeline:  # a typo must not read as "no runs match"
            require_known_pipeline(backend, args.pipeline)
        stale = not (args.json or args.quiet) and _unfollowed(backend, runs)
    more = len(runs) > args.limit > 0
    runs = runs[:args.limit] if more else runs
    if args.json:
        print_json(runs)
        return EXIT_OK
    if args.quiet:  # the ids alone, one a line (for scripts and shell completion)
        for r in runs:
            print(r["id"])
        return EXIT_OK
    rows = []
    for r in runs:
        counts = ", ".join(f"{n} {s}" for s, n in sorted(r["tasks"].items()))
        rows.append([r["id"], r["pipeline"], r["state"], format_timestamp(r["created_at"]), _run_duration(r),
                     r["trigger"], counts])
    filtered = args.pipeline or args.state
    print_table(["run", "pipeline", "state", "created", "duration", "trigger", "tasks"], rows,
                empty="no runs match" if filtered else "no runs yet (`edgeorch run PIPELINE` starts one)")
    if more or stale:
        sys.stdout.flush()
    if more:
        print(f"note: the newest {args.limit} shown; more match (--limit N shows more)", file=sys.stderr)
    if stale:  # their durations grew with the clock, as if they still ran
        print("note: no daemon and no `edgeorch run` follows the queued and running runs above: their states and "
              "durations are as last recorded (their tasks may have ended since); the next daemon start settles "
              "them", file=sys.stderr)
    return EXIT_OK


def _unfollowed(backend: Backend, runs: list[dict[str, Any]]) -> bool:
    """Whether ``runs`` include a queued or running one that no process follows: read without a daemon, while no
    daemon and no ``edgeorch run`` holds the state (what the file says is what the last process left)."""
    if backend.online or not any(r["state"] in (RunState.QUEUED, RunState.RUNNING) for r in runs):
        return False
    from ...control.statelock import state_in_use

    return not state_in_use(backend.cfg.state_dir)


KNOWN_FROM_RUNS = 1000
"""How many of the newest runs name the pipelines with runs a did-you-mean offers (besides the loaded ones)."""


def require_known_pipeline(backend: Backend, name: str) -> None:
    """``runs --pipeline NAME`` that matched nothing: fine when ``name`` is loaded or has runs (none in the
    filter); else :class:`NotFoundError` with a did-you-mean over the known names (the loaded pipelines, and
    those of the newest :data:`KNOWN_FROM_RUNS` runs)."""
    from ...rundoc import runs_page

    if backend.online:
        api = backend.api
        if api.runs(limit=1, pipeline=name):
            return
        loaded = [p["name"] for p in api.pipelines()]
        with_runs = [r.pipeline for r in api.runs(limit=KNOWN_FROM_RUNS)]
    else:
        from ...pipelines import not_loaded_error, validate_path

        store = backend.open_store(readonly=True)
        try:
            if runs_page(store, limit=1, pipeline=name):
                return
            with_runs = [r["pipeline"] for r in runs_page(store, limit=KNOWN_FROM_RUNS)]
        finally:
            if store is not None:
                store.close()
        report = validate_path(backend.cfg.pipelines_dir)
        if not_loaded_error(name, report.errors) is not None:  # its file is there, broken: a pipeline all the same
            return
        loaded = list(report.pipelines)
    if name in loaded:
        return
    from ...tomlcheck import suggest

    known = sorted({*loaded, *with_runs})
    close = next((n for n in known if n.casefold() == name.casefold()), None) or suggest(name, known)
    raise NotFoundError(f"no pipeline named {name!r}: none is loaded and no run has that name", value=name,
                        expected=f"one of {', '.join(printable(n) for n in known)}" if known else
                        "a pipeline name (none is loaded and nothing has run yet)",
                        hint=f"did you mean {close!r}?" if close else None)


def _run_document(backend: Backend, run_id: int) -> dict[str, Any]:
    """The run's document from the daemon when one answers, else from the state file."""
    if backend.online:
        from ...client.records import shared_document  # loaded with the client already

        return shared_document(backend.api.get_run(run_id))
    from ...rundoc import run_document

    store = backend.open_store(readonly=True)
    if store is None:
        raise NotFoundError("no such run (no state file yet)", value=run_id)
    try:
        return run_document(store, run_id)
    finally:
        store.close()


def _run_duration(run: dict[str, Any]) -> str:
    """A run's DURATION: from its last start (its resume, ``resumed_at``, when it was retried) to its end or
    now; a resumed run says so (its first start may be hours before)."""
    from ...rundoc import last_start

    start = last_start(run)
    if not start:
        return format_duration(None)
    took = format_duration((run["finished_at"] or time.time()) - start)
    return f"{took} (resumed)" if run.get("resumed_at") else took


def _print_run(run: dict[str, Any], *, summary: bool = False, after_progress: bool = False) -> None:
    """The run as a person reads it; ``after_progress``: a blank line first, after the progress lines (never the
    first line of `show` or of a quiet run's output). Who cancelled it: the document's ``cancelled_by``
    (:func:`~edgeorch.rundoc.cancelled_by`; an older daemon's document has none)."""
    if after_progress:
        print()
    print(f"run {run['id']}  {run['pipeline']}  {run['state'].upper()}  {_run_duration(run)}"
          + (f"  ({run['reason']})" if run["reason"] else ""))
    if not summary:
        print(f"created {format_timestamp(run['created_at'])} by {run['trigger']}"
              + (f" ({run['actor']})" if run["actor"] else "") + f"; params {json.dumps(run['params'])}")
        if run.get("resumed_at"):
            print(f"resumed at {format_timestamp(run['resumed_at'])} (first started "
                  f"{format_timestamp(run['started_at'])})")
        print(f"run folder {run['run_dir']}")
        if run.get("no_cache"):
            print("cache: not used (--no-cache): every task ran, none was served from a recorded result")
        if run.get("cancel_reason"):  # who and why, as the cancel said it
            reason, cancelled_by = run["cancel_reason"], run.get("cancelled_by")
            if cancelled_by is None:
                print(f"cancel requested: {printable(reason)}")
            else:  # the reason given (a cancel without --reason says `cancelled by alice`: said once)
                plain = reason == f"cancelled by {cancelled_by.split(' (uid ', 1)[0]}"
                print(f"cancel requested by {printable(cancelled_by)}" + ("" if plain else f": {printable(reason)}"))
        if run.get("content_hash"):  # what it executes: the file and the content it was started from
            print(f"pipeline file {run.get('pipeline_file') or '(sent by content)'} (content_hash "
                  f"{run['content_hash'][:12]}; `edgeorch show {run['id']} --json` has it whole)")
    rows = []
    for t in run["tasks"]:
        last = t["attempt_list"][-1] if t["attempt_list"] else None
        if last is not None and t["state"] == "failed" and last["state"] == "exited" and last["exit_code"] == 0 \
                and not last.get("reason"):
            last = None  # it failed before an attempt of its own (a retry's version pruned): not that success's
        took_t = (last["finished_at"] or time.time()) - last["started_at"] if last else None
        code = None
        if last:
            code = last["exit_code"] if last["signal"] is None else f"sig {last['signal']}"
        reason = t["reason"] or t.get("now") or ""  # now: what the daemon does with its files (with_hashing)
        if t["state"] == "running" and run.get("cancel_reason"):  # SIGTERM sent, SIGKILL after the grace
            reason = f"stopping: {run['cancel_reason']}"
        elif not reason and last is not None and last.get("inputs_moved"):  # said in --json and the events alone
            from ...model import inputs_moved_text

            reason = f"not reused by the cache: {inputs_moved_text(last['inputs_moved'])}"
        rows.append([t["name"], t["state"], t["attempts"], format_duration(took_t), code, printable(reason)])
    print_table(["task", "state", "attempts", "duration", "exit", "reason"], rows)
    if run["results"]:
        print()
        print_table(["task", "column", "metric", "value", "p-value", "threshold", "verdict"],
                    [[r["task"], r["column_name"], r["metric"], _result_cell(r, "value"), r["p_value"],
                      _result_cell(r, "threshold"), r["verdict"]] for r in run["results"]])
    if run.get("models") and not summary:  # (an older daemon's document has none; a run's progress said them)
        from ...models.views import event_line

        print()
        for m in run["models"]:
            print(f"{m['task']}: {event_line(m)}")
    for t in run["tasks"]:
        if t["state"] != "failed" or not t["attempt_list"]:
            continue
        lines = _tail(Path(t["attempt_list"][-1]["log_path"]), 10)
        if not lines:  # a header over nothing looked like lines lost
            print(f"\n{t['name']} wrote nothing to its log (edgeorch logs {run['id']} {t['name']})")
            continue
        print(f"\nlast lines of {t['name']} (edgeorch logs {run['id']} {t['name']}):")
        for line in lines:  # text the task may have copied from its input: escaped (`logs` shows it exactly)
            print(f"  {printable(line)}")
    hint = retry_hint(run)
    if hint:
        print(f"\n{hint}")


def retry_hint(run: dict[str, Any]) -> str | None:
    """What to do next about a failed or cancelled run, said where the person reading its end looks (3 a.m.: "can
    I resume it?"): ``edgeorch retry`` and the tasks it runs again, with how many checkpoint files each finds (those
    its latest attempt recorded: the folder as that attempt left it; a set-aside folder is no attempt's). Tasks
    that finished stay done unless their outputs changed since (the retry checks, this cannot). None for a run in
    any other state."""
    if run["state"] not in ("failed", "cancelled"):
        return None
    redo = [t for t in run["tasks"] if t["state"] not in ("succeeded", "skipped")]
    if not redo:
        return None
    files: dict[int, int] = {}  # attempt id -> checkpoint files it recorded
    for c in run.get("checkpoints") or ():
        files[c["attempt_id"]] = files.get(c["attempt_id"], 0) + 1
    kept = [f"{printable(t['name'])} finds its checkpoints ({n} file(s))" for t in redo
            if t["attempt_list"] and (n := files.get(t["attempt_list"][-1]["id"], 0))]
    names = ", ".join(printable(t["name"]) for t in redo)
    file, recorded = run.get("pipeline_file"), run.get("content_hash")
    changed = []  # a timeout fixed in the file: the plain retry runs the old one again (said after it failed too)
    if file and recorded and (now := _file_hash(file)) is not None and now != recorded:
        changed = [f"its pipeline file changed since: `edgeorch retry {run['id']} --current` runs them under the "
                   "file as it is"]
    return "; ".join([f"next: `edgeorch retry {run['id']}` runs {names} again (and any finished task whose outputs "
                      "changed since), with this run's definition", *changed, *kept])


def _result_cell(row: dict[str, Any], key: str) -> Any:
    """A check result's ``value`` or ``threshold``: the number, else what the row said when it was no number
    (kept in its details: a type's ``float``, a range's ``[0, 100]``, ``store.attempts``), else None."""
    if row[key] is not None:
        return row[key]
    kept = (row.get("details") or {}).get(key)
    return None if kept is None else json.dumps(kept) if isinstance(kept, (list, dict)) else kept


def _tail(path: Path, n: int) -> list[str]:
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(size - 8192, 0))
            return f.read().decode(errors="surrogateescape").splitlines()[-n:]  # printable() shows a bad byte as \xNN
    except PermissionError:  # there, but not this user's to read: "(no log)" read as none written
        return ["(its log is not readable by you: `edgeorch logs` gets it through the daemon)"]
    except FileNotFoundError:
        return ["(no log file: removed since, or the attempt never got to make one)"]
    except OSError as exc:
        return [f"(cannot read its log: {exc.strerror or exc})"]


def cmd_show(args: argparse.Namespace) -> int:
    with connect(load(args)) as backend:
        run = _run_document(backend, args.run_id)
        if args.json:
            print_json(run)
            return EXIT_OK
    _print_run(run)
    if _unfollowed(backend, [run]):
        # What the state file says is what the last process left: nobody settles the run until one starts.
        print(f"\nnote: no daemon and no `edgeorch run` follows this run: the states above are as last "
              f"recorded (its tasks may have ended since). The next daemon start settles it, or "
              f"`edgeorch cancel {run['id']}` stops it.")
    attempts = [a for t in run["tasks"] for a in t["attempt_list"]]
    print("\nattempts:")
    # Every task a cache hit (or none started yet): said, not an empty table's bare header.
    print_table(["task", "#", "state", "pid", "started", "duration", "exit", "log"], [
        [a["task"], a["number"], a["state"], a["pid"], format_timestamp(a["started_at"]),
         format_duration((a["finished_at"] or time.time()) - a["started_at"]),
         a["exit_code"] if a["signal"] is None else f"sig {a['signal']}", a["log_path"]]
        for a in sorted(attempts, key=lambda a: a["id"])],
        empty="  none: " + ("every task was a cache hit (their reasons above name the runs reused)"
                            if run["tasks"] and all(t["state"] == "skipped" for t in run["tasks"])
                            else "no task has started an attempt yet"))
    ran_in = [a for a in sorted(attempts, key=lambda a: a["id"]) if a.get("image")]
    if ran_in:  # a container's: the image by reference and by what ran (a retag to new content changes the digest)
        print("\nimages:")
        print_table(["task", "#", "image", "digest"],
                    [[a["task"], a["number"], a["image"]["reference"], a["image"]["digest"][:19]] for a in ran_in])
    arts = [a for t in run["tasks"] for a in t["artifacts"]]
    if arts:
        print("\nartifacts:")
        print_table(["task", "name", "size", "sha256", "path"],
                    [[a["task"], a["name"], a["size"], a["sha256"][:12], a["path"]] for a in arts])
    return EXIT_OK


def cmd_logs(args: argparse.Namespace) -> int:
    """Print an attempt's log: ``--follow`` streams it from the daemon; otherwise the file named in the state, read
    here, or through the daemon when this user may not read the state folder (a member of the socket's group).

    On a terminal, what the task wrote is shown with its colours but no other control sequence
    (:func:`~edgeorch.textui.terminal_safe`: a dropped file echoed by a task cleared the screen, set the window
    title, wrote the clipboard); ``--raw``, or a pipe, gets the bytes as written."""
    cfg = load(args)
    raw = args.raw or not sys.stdout.isatty()
    write = _log_writer(raw=raw)
    if args.follow:
        from ...client.calls import LogNote

        again = f"edgeorch logs {args.run_id} {args.task or ''}".rstrip() + " -f"
        with connect(cfg, "daemon") as backend, if_the_daemon_goes(
                f"the task goes on while the daemon is away (live restore); `{again}` follows it again once the "
                "daemon is back"):
            backend.streams_only()
            with sigterm_as_interrupt():
                for text in backend.api.logs(args.run_id, args.task, args.attempt, follow=True):
                    if isinstance(text, LogNote) and raw:  # edgeorch's line: stdout takes the task's bytes alone
                        print(printable(text.strip("\n")), file=sys.stderr, flush=True)
                    else:
                        write(text.encode("utf-8", "surrogateescape"))
        return EXIT_OK
    # A finished log is a file: read the state directly (WAL readers do not disturb a running daemon).
    try:
        path = _log_path(cfg, args)
    except (StateError, PermissionError):  # this user may not read the state or the log: the daemon may answer
        with connect(cfg, "prefer") as backend:
            if not backend.online:
                raise
            for text in backend.api.logs(args.run_id, args.task, args.attempt, follow=False):
                write(text.encode("utf-8", "surrogateescape"))
        return EXIT_OK
    with open(path, "rb") as f:
        while chunk := f.read(1 << 16):
            write(chunk)
    write(b"", final=True)
    return EXIT_OK


def _log_path(cfg: Any, args: argparse.Namespace) -> Path:
    """The attempt's log file, from the state file read here; raises StateError or PermissionError when this user
    may not read them, NotFoundError when there is none."""
    store = connect(cfg, "offline").open_store(readonly=True)
    if store is None:
        raise NotFoundError("no such run (no state file yet)", value=args.run_id)
    from ...rundoc import log_attempt

    try:
        attempt = log_attempt(store, args.run_id, args.task, args.attempt)
    finally:
        store.close()
    path = Path(attempt["log_path"])
    if not path.exists():
        if not os.access(path.parent, os.X_OK):
            raise PermissionError(errno.EACCES, "cannot reach the log file", str(path))
        raise NotFoundError("the log file is gone", file=str(path))
    if not os.access(path, os.R_OK):
        raise PermissionError(errno.EACCES, "cannot read the log file", str(path))
    return path


def _log_writer(*, raw: bool) -> Callable[..., None]:
    """``write(chunk, final=False)``: a log's bytes to stdout, as they are (``raw``) or made
    :func:`~edgeorch.textui.terminal_safe` (decoded as UTF-8 across chunks, a byte that is not UTF-8 shown as its
    ``\\xNN`` escape, as every human output shows one: U+FFFD lost its value)."""
    import codecs

    from ...textui import terminal_safe

    decoder = codecs.getincrementaldecoder("utf-8")("surrogateescape")

    def write(chunk: bytes, final: bool = False) -> None:
        if raw:
            sys.stdout.buffer.write(chunk)
        else:
            sys.stdout.write(terminal_safe(decoder.decode(chunk, final)))
        sys.stdout.flush()

    return write
