"""``edgeorch daemon``: the wiring. One process, one event loop that owns every state change.

:class:`Daemon` builds the collaborators (store, registry, engine, the front
door, the trigger service, the control server) and hands each group of ops
(:mod:`edgeorch.daemon.ops`) exactly the ones it uses; nothing it builds
imports it back.

Start-up order (systemd sees READY=1 only at the end):

1. load the config, take the state dir's lock (a second daemon is refused, also when another one answers on
   the socket: its lock file was removed);
2. open the state file (migrating it), load the pipelines folder;
3. start the engine: adopt live attempts, collect those that ended while we
   were away, abandon the rest, resume unfinished runs;
4. listen on the control socket; watch the pipelines folder;
5. ``READY=1``, then ``STATUS=`` on every change and ``WATCHDOG=1`` while the
   loop advances.

Signals only set flags (asyncio events) that the loop acts on: SIGTERM/SIGINT
stop (running tasks go on under live restore unless
``engine.stop_tasks_on_shutdown``), SIGHUP reloads the config's access lists
and the pipelines.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import os
import signal
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

from .. import __version__
from ..config import Config, load_config, one_error
from ..capabilities import can_lease_any_file, keep_from_children
from ..repeats import Repeats
from ..textui import printable
from ..control import AccessPolicy, ControlServer, acquire_state_lock, watchdog_loop
from ..control.statelock import StateLock
from ..control.notify import notify
from ..audit.keyfile import key_path
from ..audit.sealer import Sealer, SealService
from ..datasets.service import object_store
from ..engine.engine import Engine
from ..engine.requests import RunRequests
from ..errors import EdgeorchError, StateError
from ..events import (Bus, Event, ModelDeployment, ModelObserved, ModelRegistered, PipelinePaused, Reloaded, RunFinished,
                      record)
from ..kernels.cache import numba_cache_dir
from ..kernels.warmer import Warmer
from ..models.service import ModelService
from ..monitor.service import Monitors
from ..observe.eventlog import EventLog
from ..observe.service import MetricsService
from ..pipelines import PipelineRegistry
from ..retention.service import RunRetention
from ..store import Store
from ..store.db import REMOVED, REPLACED, WAL_REMOVED, damaged_while_running, is_corruption
from ..triggers.drop.retry import restore_inputs_for_retry
from ..triggers.service import Triggers
from .ops import (AuditOps, BaselineOps, DatasetOps, EventOps, GcOps, InputOps, LineageOps, MetricsOps, ModelOps,
                  MonitorOps, PipelineOps, PrivacyOps, RunOps, StatusOps, register)
from .ops.audit import record_denied, record_refused, record_suppressed
from .ops.pipelines import refusals
from .ops.status import status_line

if TYPE_CHECKING:  # pragma: no cover
    from ..triggers.watcher import FolderWatcher, WatchEvent

log = logging.getLogger("edgeorch.daemon")

STATUS_DEBOUNCE_S = 0.5
RELOAD_DEBOUNCE_S = 0.2
CONTENT_EVENTS = frozenset({"created", "closed", "moved_to", "deleted"})
"""The folder watcher's events that can change a pipeline file's content (create, close-write, move in,
delete or move out); an ``overflow`` (events lost) reloads too."""
PATHS_CHECK_S = 2.0
"""How often the daemon checks the paths it serves from (one ``stat`` each): the pipelines and rules folders it
watches must still be the folders at their paths (a folder replaced by a deployment's rename or a fresh checkout,
or created after the start, is watched and reloaded), and its control socket must still be there (a removed one
is bound again: :meth:`ControlServer.rebind_if_gone`), and so must the state lock's file (a removed one is
locked again: :meth:`StateLock.relock_if_replaced`; one another process holds stops this daemon)."""


class Daemon:
    """Owns the engine, the socket server and the folder watcher for one state dir."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.started_at = time.time()
        self._config_refused: str | None = None  # the last reload's config error (its answer says it)
        self.store: Store | None = None  # type: ignore[assignment]
        self.engine: Engine = None  # type: ignore[assignment]
        self.server: ControlServer | None = None
        self.registry = PipelineRegistry(config.pipelines_dir)
        self.bus = Bus()  # the one bus: engine, triggers and ops publish; streams, STATUS= and triggers subscribe
        self.stop_requested = asyncio.Event()
        self.reload_requested = asyncio.Event()
        self._status_handle: asyncio.TimerHandle | None = None
        self._reload_handle: asyncio.TimerHandle | None = None
        self._scanned_at = 0.0  # when the last reload began reading the pipelines folder (wall clock)
        self._reload_lock = asyncio.Lock()
        self._background: set[asyncio.Task[Any]] = set()
        self.requests: RunRequests = None  # type: ignore[assignment]  # the front door, once the engine exists
        self._folders: FolderWatcher | None = None  # the pipelines and rules folders' watch (triggers/watcher.py)
        self._paths_check: asyncio.TimerHandle | None = None  # PATHS_CHECK_S
        self._lock: StateLock | None = None  # the state folder's lock, held from the start to the exit
        self._displaced: StateError | None = None  # another process locked this state: stop, exit 4
        self._repeats = Repeats(log)  # the path check's standing problems, said once each
        self.triggers: Triggers | None = None
        self.seals: SealService | None = None  # seals the audit log (docs/audit.md)
        self.retention: RunRetention | None = None  # gc ops and the [retention] sweep
        self.metrics: MetricsService | None = None  # [metrics] and the metrics op (docs/operations.md)
        self.models: ModelService | None = None  # promotions, rollbacks, canaries (docs/models.md)
        self.monitors: Monitors | None = None  # rules and their responses (docs/monitoring.md)
        self.warmer: Warmer | None = None  # the numba cache's background warm-up ([kernels] warm_up)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.banner: str | None = None  # printed on stderr once the state is locked (run_daemon sets it)
        self._stopping_started = False  # _stop_started ran (once per daemon)

    def _note_loaded(self, pipelines: dict[str, Any]) -> None:
        """Record the versions now served from valid files (``store.pipelines.note_loaded``): after a restart
        with a broken file, the one served before it is the one kept. A stale one (its file broken) is not."""
        assert self.store is not None and self.registry is not None
        self.store.pipelines.note_loaded(p for n, p in pipelines.items() if self.registry.stale(n) is None)

    def _last_stored_version(self, file: Path) -> Any:
        """The last version of a pipeline the state file holds from ``file`` (parsed), or None."""
        from ..pipelines.load import load_pipeline_bytes

        assert self.store is not None
        row = self.store.pipelines.latest_of_file(str(file.resolve()))
        if row is None:
            return None
        pipe, _errors = load_pipeline_bytes(row["source_text"].encode("utf-8"), Path(row["source_file"]))
        return pipe

    # -- lifecycle -------------------------------------------------------------------

    async def _lock_state(self) -> StateLock:
        """The state folder's lock. While an ``edgeorch run`` without a daemon holds it (a script's run that began
        while this daemon was down: its restart window), wait for that run to end instead of exiting 75: a service
        manager that restarts a daemon exiting at once gives up after a few tries (systemd's start limit), and the
        box would stay without its daemon for good. Said once in the log and in systemd's status, and in the state
        folder (:func:`~edgeorch.control.statelock.announce_waiting`: a command then says a daemon is on its way,
        not that none runs); the start timeout is extended meanwhile. Another daemon holding it, or already
        waiting for it, still refuses the start (exit 4)."""
        from ..control.statelock import announce_waiting, stop_waiting
        from ..errors import StateBusyError, StateError

        cfg, said, mark = self.config, False, None
        try:
            while True:
                try:
                    return acquire_state_lock(cfg.state_dir, socket=cfg.socket_path, daemon=True)
                except StateBusyError as exc:
                    if not said:
                        mark, other = announce_waiting(cfg.state_dir)  # taken at once, or held by another
                        if other is not None:
                            who = f"another edgeorch daemon (pid {other})" if other > 0 else "another process"
                            raise StateError(f"{exc.message}, and {who} already waits for it",
                                             hint="that daemon starts once the run is over: this one is not "
                                                  "needed") from None
                        log.warning("%s: waiting for it to end before starting (its run goes on as it would; this "
                                    "daemon's schedules, drop folders and commands wait until then)", exc.message)
                        said = True
                    notify({"STATUS": f"waiting for the state folder: {exc.message}",
                            "EXTEND_TIMEOUT_USEC": int(STATE_WAIT_EXTEND_S * 1e6)})
                    await asyncio.sleep(STATE_WAIT_POLL_S)
        finally:
            if mark is not None:
                stop_waiting(cfg.state_dir, mark)

    async def run(self) -> int:
        self.loop = asyncio.get_running_loop()
        cfg = self.config
        keep_from_children()  # CAP_LEASE (the shipped unit's) is the daemon's, never its tasks' or commands'
        lock = await self._lock_state()  # before anything is read or started
        self._lock = lock
        self.metrics = MetricsService(cfg.metrics)
        try:
            # Before anything else starts: a [metrics] address or textfile folder it cannot use stops the start
            # (before the banner, which says how to talk to a daemon that then never served).
            self.metrics.open(self.loop, file=str(cfg.source) if cfg.source else None)
            if self.banner:
                print(self.banner, file=sys.stderr, flush=True)
            self.store = Store(cfg.state_file, check=True)  # a file damaged since its clean close is refused
            self.store.audit.record(None, "daemon_started", "daemon", {"version": __version__, "pid": os.getpid()})
            self.registry.stored_holders = self.store.pipelines.holders  # a name two files declare stays put
            self._scanned_at = time.time()
            result = self.registry.reload()
            for err in result.errors:
                log.warning("pipeline error: %s", err.one_line())
            for name in self.registry.keep_last_valid(self._last_stored_version):
                log.warning("pipeline %s: its file has errors; serving its last valid version from the state file "
                            "until it is fixed (as before this start)", name)
            self._note_loaded(self.registry.pipelines)
            log.info("pipelines: %s from %s", ", ".join(self.registry.pipelines) or "(none)", cfg.pipelines_dir)
            self.engine = Engine(cfg, self.store, bus=self.bus)
            self.requests = RunRequests(self.engine, self.registry.get)
            # A retried drop-folder run gets its quarantined input back (the CLI's offline retry does the same).
            self.requests.before_resume.append(functools.partial(restore_inputs_for_retry, self.store))
            self.bus.subscribe(self._on_event)
            self.bus.subscribe(EventLog.for_engine(self.engine).on_event)  # runs, tasks, inputs: lines with fields
            self.models = ModelService(self.store, serving_dir=cfg.state_dir / "serving", publish=self.bus.publish,
                                       clock=self.engine.clock)
            self.bus.subscribe(self.models.on_event, ModelRegistered)  # a passing candidate's deployment
            self.metrics.count(store=self.store, engine=self.engine, bus=self.bus)  # what the start does counts too
            await self.engine.start()
            self.models.start_in_background()  # interrupted deployments finished, redone or undone; targets repaired
            self._warn_unsatisfiable()
            # Inputs recovered (reconcile), schedules armed, drop folders watched: docs/triggers.md "Wiring".
            self.triggers = Triggers(store=self.store, requests=self.requests, engine=self.engine,
                                     registry=self.registry, config=cfg, loop=self.loop, publish=self.bus.publish)
            self.bus.subscribe(self.triggers.on_engine_event, (RunFinished, PipelinePaused, Reloaded))
            self.triggers.start()
            self._warn_unleasable_drops()
            # Rules: firings whose responses never finished redone, runs that ended meanwhile evaluated.
            self.monitors = Monitors(store=self.store, requests=self.requests, registry=self.registry, loop=self.loop,
                                     quarantine_inputs=self.triggers.drops.quarantine_run_inputs, models=self.models,
                                     rules_dir=cfg.rules_dir, publish=self.bus.publish)
            self.bus.subscribe(self.monitors.on_run_finished, RunFinished)
            self.bus.subscribe(self.monitors.on_model_event, (ModelObserved, ModelDeployment))  # model_metric rules
            self.monitors.start()
            self.retention = RunRetention(store=self.store, runs_dir=cfg.runs_dir, config=cfg.retention,
                                          loop=self.loop, publish=self.bus.publish)
            # Sealed now (what an in-process run appended meanwhile), every [audit] seal_every records or
            # seal_interval seconds, and at stop.
            self.seals = SealService(Sealer(self.store.audit, key_path(cfg.state_dir), clock=time.time),
                                     every=cfg.audit.seal_every, interval=cfg.audit.seal_interval)
            self.seals.start(self.loop)
            self.bus.subscribe(self.seals.on_event)
            found = self.engine.recovered
            # Refusals are recorded within one rate rule, timed by the engine's clock (edgeorch/control/refusals.py).
            source = str(cfg.source) if cfg.source else None
            self.server = ControlServer(cfg.socket_path, cfg.control, on_denied=self._on_denied,
                                        policy=AccessPolicy.from_config(cfg.control, file=source),
                                        on_refused=self._on_refused, on_suppressed=self._on_suppressed,
                                        clock=self.engine.clock, on_failure=self._on_op_failure)
            server = self.server
            self.metrics.attach(config=cfg, store=self.store, engine=self.engine, registry=self.registry,
                                bus=self.bus, triggers=self.triggers, monitors=self.monitors,
                                clients=lambda: server.clients,
                                started_at=self.started_at)
            # An answer never reads an outcome that is not durable yet (Engine.sync_outcomes).
            register(self.server, self._op_groups(self.server, self.triggers), before=self.engine.sync_outcomes)
            await self.server.start()
            self.metrics.start_textfile()
            self._watch_paths()
            self.retention.start()  # the [retention] sweep, when set: off the start-up path
            for sig, event in ((signal.SIGTERM, self.stop_requested), (signal.SIGINT, self.stop_requested),
                               (signal.SIGHUP, self.reload_requested)):
                # The handler only sets a flag (and says which signal: a stop nobody remembers asking for is
                # then explained in the log); the loop does the work.
                self.loop.add_signal_handler(sig, self._on_signal, sig, event)
            notify({"READY": 1, "STATUS": self.status_line(), "MAINPID": os.getpid()})
            log.info("edgeorch %s ready: socket %s, state %s, %d attempt(s) adopted (still running), %d collected "
                     "(ended while it was away), %d abandoned (no exit record)", __version__, cfg.socket_path,
                     cfg.state_file, found.get("live", 0), found.get("finished", 0), found.get("lost", 0))
            # After READY, at idle priority: the first kernel task on a new machine finds compiled code.
            self.warmer = Warmer(numba_cache_dir(cfg.numba_cache_dir), enabled=cfg.kernels.warm_up)
            self.warmer.start()
            watchdog = asyncio.create_task(watchdog_loop())
            try:
                await self._serve_until_stopped()
            finally:
                watchdog.cancel()
            if self.engine.fatal_error is not None:
                # Fail-stop: nothing more can be recorded. Tasks go on; the next start collects them.
                fatal = self.engine.fatal_error
                message = fatal.render() if isinstance(fatal, EdgeorchError) else repr(fatal)
                notify({"STOPPING": 1, "STATUS": f"stopped: {message}"})
                log.error("stopping after a fatal engine error: %s",
                          fatal.one_line() if isinstance(fatal, EdgeorchError) else message)
                print(f"edgeorch: error: {message}", file=sys.stderr, flush=True)
                await self._stop_started(stop_tasks=False)
                self.seals.close()  # most likely fails (logged): the state file may be unwritable
                return 4
            notify("STOPPING=1")
            log.info("stopping: %s", "stopping running tasks" if cfg.engine.stop_tasks_on_shutdown
                     else f"{len(self.engine.live)} running task(s) continue under live restore")
            self.engine.accepting = False
            await self._stop_started(stop_tasks=cfg.engine.stop_tasks_on_shutdown)
            self._audit_stop()
            return 4 if self._displaced is not None else 0
        except BaseException:
            # A start that failed half-way (a damaged state page met by the rules' start, a socket in use): what
            # did start is stopped before the state file closes; its timers and background starts ran on a closed
            # state file and logged tracebacks above the one error the user needs.
            await self._stop_started(stop_tasks=False, after_failure=True)
            raise
        finally:
            if self.warmer is not None:
                await self.warmer.close()  # killed, never waited for: a stop does not wait for a compile
            await self.metrics.close()  # the textfile stays with the last numbers
            if self.store is not None:
                self.store.close()
            lock.release()

    async def _stop_started(self, *, stop_tasks: bool, after_failure: bool = False) -> None:
        """Stop the parts this daemon started, each only when it exists: triggers, rules and the retention sweep
        (nothing new is asked for), the socket, the deployments (each stops at its recorded step; the next start
        ends it), the engine (running tasks go on under live restore unless ``stop_tasks``), the paths' watch.
        The one order for a clean stop, a fatal engine error and a failed start (``after_failure``: a part that
        fails to stop is logged at debug level, never raised over the error that stopped the start)."""
        if self._stopping_started:
            return  # a clean stop that failed part-way is not stopped twice
        self._stopping_started = True
        steps: list[tuple[str, Callable[[], Any] | None]] = [
            ("triggers", self.triggers.stop if self.triggers is not None else None),
            ("rules", self.monitors.stop if self.monitors is not None else None),
            ("retention", self.retention.stop if self.retention is not None else None),
            ("socket", self.server.close if self.server is not None else None),
            ("models", self.models.close if self.models is not None else None),
            ("engine", functools.partial(self.engine.close, stop_tasks=stop_tasks) if self.engine is not None
             else None),
            ("paths' watch", self._stop_watching_paths),
        ]
        for what, step in steps:
            if step is None:
                continue
            try:
                done = step()
                if inspect.isawaitable(done):
                    await done
            except Exception as exc:  # noqa: BLE001 - only after a failed start, whose error is the one said
                if not after_failure:
                    raise
                log.debug("after the failed start, stopping the %s failed too: %r", what, exc)

    async def _serve_until_stopped(self) -> None:
        while not self.stop_requested.is_set() and not self.engine.fatal_event.is_set():
            waits = [asyncio.ensure_future(e.wait()) for e in (self.stop_requested, self.reload_requested,
                                                                self.engine.fatal_event)]
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for w in waits:
                w.cancel()
            if self.engine.fatal_event.is_set():
                return
            if self.reload_requested.is_set() and not self.stop_requested.is_set():
                self.reload_requested.clear()
                notify("RELOADING=1")
                await self.reload(actor="SIGHUP")
                notify({"READY": 1, "STATUS": self.status_line()})

    # -- reload ------------------------------------------------------------------------

    async def reload(self, *, actor: str, explicit: bool = True) -> dict[str, Any]:
        """Re-read the config's access lists and the pipelines folder (parsed in a worker thread).

        Reloads are serialised. A reload caused by a file event (``explicit=False``)
        that finds no file changed in content records, logs and publishes
        nothing: reading a pipeline file (``cat``, ``validate``, this reload's own
        reads) is never a change. An explicit one (``edgeorch reload``, SIGHUP)
        is always recorded, with the summary ``unchanged`` when nothing changed.
        """
        async with self._reload_lock:
            self._scanned_at = time.time()
            warnings = []
            if explicit:
                self._config_refused = None  # judged again below; a file event reads no config and keeps the verdict
            new_watches = None
            new: Config | None = None
            applied: list[str] = []
            # A pipeline or rules file changed (explicit False): the config file is read only when asked to (a
            # half-made edit of config.toml went live at the next save of a pipeline file).
            if explicit:
                try:
                    new = load_daemon_config(self.config.source) if self.config.source else self.config
                    new_watches = new.watches
                    if self.server is not None:
                        self.server.set_policy(AccessPolicy.from_config(
                            new.control, file=str(new.source) if new.source else None))
                    if self.retention is not None:  # a changed [retention] applies from now on
                        self.retention.reconfigure(new.retention)
                    # What was applied is the config in force now (the next reload compares with it); the rest waits.
                    self.config, applied, later = reload_config(self.config, new)
                    if later:
                        warnings.append(f"{', '.join(later)} changed: applied at the next restart (a reload applies "
                                        f"{', '.join(APPLIED_NAMES)})")
                except EdgeorchError as exc:
                    warnings.append(f"config not reloaded: {exc.render()}")
                    self._config_refused = exc.render()
            for warning in warnings:  # said in the journal too: SIGHUP (`systemctl reload`) has no one to answer
                log.warning("reload (%s): %s", actor, warning)
            scan = await asyncio.to_thread(self.registry.scan)
            result = self.registry.apply(scan)
            watches_changed = new_watches is not None and new_watches != self.config.watches
            # What the reload did to the config, said with the pipelines' summary ("unchanged" read as nothing done).
            # A refused config is said there too: "reloaded (SIGHUP): unchanged" after its warning read as a contradiction.
            old_watches = self.config.watches
            # The [[watch]] part is said from what the drop folders watch after the reload when there are drop
            # folders ("1 added" was said of a watch its pipeline's error kept from starting).
            watch_note = [_watch_changes(old_watches, new_watches or ())] if watches_changed and self.triggers is None \
                else []
            config_note = "; ".join([*watch_note,
                                     *([f"applied {', '.join(applied)}"] if applied else []),
                                     *(["the config file was refused (the one in force stays)"]
                                       if explicit and self._config_refused else [])]) or None
            if not explicit and result.unchanged and not watches_changed:
                if self.monitors is not None and self.monitors.rules_folder_changed():
                    self.monitors.reload()  # a rules-folder file changed: only the rules are read again
                    log.info("rules folder reloaded: %d rule(s), %d problem(s)", len(self.monitors.rules),
                             len(self.monitors.problems))
                else:
                    log.debug("pipelines folder event without a content change: nothing reloaded")
                return self._reload_answer(result, warnings, config_note)
            assert self.store is not None
            self._note_loaded({n: self.registry.pipelines[n] for n in (*result.added, *result.changed)
                               if n in self.registry.pipelines})
            for err in result.errors:
                log.warning("pipeline error: %s", err.one_line())
            self._warn_unsatisfiable()
            if self.triggers is not None:
                if watches_changed:
                    assert new_watches is not None  # watches_changed says so
                    self.config = replace(self.config, watches=new_watches)
                watched_before = _watched(self.triggers.watches)
                refused_before = _refused(self.triggers.watch_errors)
                self.triggers.reload(self.config)
                # A watch the config names but that could not start: said in the answer, not only in `inputs`.
                warnings += [f"[[watch]] not watched: {e.one_line()}" for e in self.triggers.watch_errors]
                # What the drop folders watch now against before (one refused before and watched now, its folder
                # fixed: "started"), and what the config asks that they do not (its own warning says why).
                note = _watches_applied(watched_before, _watched(self.triggers.watches), refused_before,
                                        _refused(self.triggers.watch_errors),
                                        (old_watches, new_watches or ()) if watches_changed else None)
                if note:
                    config_note = "; ".join([*([config_note] if config_note else []), note])
            reloaded = Reloaded(self.engine.clock(), _summary(result, config_note), result.unchanged and not config_note,
                                actor, tuple(e.render() for e in result.errors))
            record(self.store.events, reloaded)
            if self.monitors is not None:
                self.monitors.reload()
            log.info("reloaded (%s): %s", actor, reloaded.summary)
            self.bus.publish(reloaded)
            return self._reload_answer(result, warnings, config_note)

    def _on_op_failure(self, exc: BaseException) -> StateError | None:
        """An op met a corrupt state file (SQLite: malformed, not a database, an I/O error): the daemon stops,
        and the client is told why instead of "internal error". Anything else: None (an internal error)."""
        if not is_corruption(exc):
            return None
        self.state_lost(f"cannot be read ({exc})", damaged=exc)
        return self._displaced

    def _on_signal(self, sig: int, event: asyncio.Event) -> None:
        if event is self.stop_requested and not event.is_set():
            log.info("%s received: stopping (systemctl stop, kill, Ctrl-C)", signal.Signals(sig).name)
        event.set()

    def state_lost(self, problem: str, *, damaged: BaseException | None = None) -> None:
        """The state file cannot be the daemon's any more (``problem``: it was removed, replaced, truncated, or
        SQLite found it corrupt): stop at once, exit 4, and never close it (SQLite's close would remove the
        ``-wal`` file at its path, which may be another file's now). Running tasks go on under live restore; a
        daemon started on the right file collects them."""
        if self._displaced is not None or self.store is None:
            return
        self.store.db.displaced = True
        if damaged is not None:  # a malformed page, not a file changed under the daemon: said as such
            self._displaced = damaged_while_running(damaged, self.store.db.path)
            self.engine.fail_stop(self._displaced)
            return
        saved = problem == WAL_REMOVED and self.store.db.rescue_wal()
        note = " (its commits were copied into the state file first: nothing is lost)" if saved else ""
        if problem in (REPLACED, REMOVED) and self.store.db.drop_own_wal():
            note = " (and its -wal file removed: the next start would have replayed it into the file there now)"
        self._displaced = StateError(
            f"the state file {problem} while the daemon ran: stopping, so that nothing more is written to it{note}",
            file=str(self.store.db.path),
            hint="start the daemon again: running tasks go on and are collected then" if saved else
                 "put the daemon's state file back, or restore a backup (docs/operations.md, \"Back up the state file\"), then "
                 "start the daemon again; running tasks go on and are collected then")
        self.engine.fail_stop(self._displaced)  # the fail-stop path: logged, said on stderr, exit 4

    def _reload_answer(self, result: Any, warnings: list[str], config_note: str | None = None) -> dict[str, Any]:
        """The reload op's answer; ``summary`` also says what the reload did to the config (``config_note``: the
        ``[[watch]]`` tables, what it applied; the pipelines "unchanged" while a watch was added read as nothing)."""
        return {"summary": _summary(result, config_note), "unchanged": result.unchanged and config_note is None,
                "added": result.added, "changed": result.changed, "removed": result.removed, "kept": result.kept,
                "errors": [e.to_dict() for e in result.errors], "warnings": warnings,
                "pipelines": sorted(self.registry.pipelines),
                # The config file was refused (the one in force stays): `edgeorch reload` exits 2 on it.
                "config_error": self._config_refused}

    def _op_groups(self, server: ControlServer, triggers: Triggers) -> list[Any]:
        """Every group of ops, each given only what it uses (see :mod:`edgeorch.daemon.ops`)."""
        assert self.store is not None and self.retention is not None and self.metrics is not None
        assert self.seals is not None and self.models is not None and self.monitors is not None
        store, engine, cfg, monitors = self.store, self.engine, self.config, self.monitors
        objects = object_store(cfg.state_dir)
        objects.close_existing()  # an older edgeorch's 0755 folder: closed now, not at the next add
        return [
            StatusOps(config=cfg, store=store, engine=engine, registry=self.registry, started_at=self.started_at,
                      clients=lambda: server.clients, watch_errors=lambda: triggers.watch_errors,
                      rules_loaded=lambda: monitors.rules, refused_fires=triggers.refused_fires),
            PipelineOps(registry=self.registry, store=store, engine=engine, schedules=triggers,
                        pipelines_dir=cfg.pipelines_dir, publish=self.bus.publish, reload=self.reload),
            RunOps(requests=self.requests, store=store, engine=engine, stale=self.registry.stale,
                   reload_pending=self.reload_pending),
            EventOps(bus=self.bus, store=store, engine=engine),
            InputOps(store=store, quarantine_dir=cfg.state_dir / "quarantine", watches=triggers),
            DatasetOps(store=store, objects=objects, publish=self.bus.publish, clock=engine.clock),
            ModelOps(store=store, service=self.models, pipelines=lambda: self.registry.pipelines),
            MonitorOps(store=store, monitors=self.monitors, waiting=engine.waiting_reasons),
            PrivacyOps(store=store),
            BaselineOps(store=store),
            LineageOps(store=store),
            GcOps(retention=self.retention),
            MetricsOps(metrics=self.metrics),
            AuditOps(store=store, seals=self.seals, state_file=cfg.state_file,
                     settings={"seal_every": cfg.audit.seal_every, "seal_interval": cfg.audit.seal_interval},
                     is_owner=lambda peer: server.policy.is_owner(peer)),  # the policy a reload set
        ]

    def _warn_unleasable_drops(self) -> None:
        """Say once, at start, which drop folders other users may write to while this daemon cannot ask the kernel
        whether a file another user dropped is still open for writing (not root, no ``CAP_LEASE``): such a file
        can be changed after its sha256 was recorded, through a descriptor its dropper kept open."""
        if can_lease_any_file() or self.triggers is None:
            return
        from ..trust import group_only

        for spec in self.triggers.drops.watches:
            try:
                st = os.stat(spec.folder)
            except OSError:
                continue
            # A group whose members are this daemon's user (its private group under umask 002) and root is no other
            # user: said of it, the warning was false, and its remedy (the system unit's CAP_LEASE) out of reach.
            if st.st_mode & 0o002 or (st.st_mode & 0o020 and not group_only(st.st_gid, (os.geteuid(), 0))):
                log.warning("drop folder %s: other users may write to it, and this daemon (not root, without "
                            "CAP_LEASE) cannot tell whether a file they drop is still open for writing: it could "
                            "change after its sha256 is recorded. Give the daemon CAP_LEASE (the shipped unit "
                            "does: AmbientCapabilities=CAP_LEASE), or let only trusted users write there",
                            printable(str(spec.folder)))

    def _warn_unsatisfiable(self) -> None:
        """Log tasks of loaded pipelines this machine can never serve (a trigger is refused with the same text)."""
        for name, p in self.registry.pipelines.items():
            for task, why in refusals(self.engine, p):
                log.warning("pipeline %s: task %s %s: its runs will be refused", name, task, why)

    def _watch_paths(self) -> None:
        """Reload when a pipeline file or a rules-folder file changes (inotify -> loop, debounced), and when either
        folder is replaced or first appears; bind the control socket again when it is removed (both checked every
        :data:`PATHS_CHECK_S`).

        A watch follows its folder's inode: a folder moved away and replaced by another at its path (a
        deployment's atomic rename, a fresh checkout) would be watched no more, and one missing at the start
        never; the same check as the drop folders' (``FolderWatcher.watching``) finds both. A folder that is
        gone keeps its pipelines loaded until one is there again (as a file that no longer parses keeps its
        last valid version); ``edgeorch reload`` says it is missing.
        """
        from ..triggers.watcher import FolderWatcher

        assert self.loop is not None
        self._folders = FolderWatcher(self.loop, self._on_pipeline_file)
        for folder in self._pipeline_folders():
            if folder.is_dir():
                self._folders.add(folder)
        self._folders.start()
        self._paths_check = self.loop.call_later(PATHS_CHECK_S, self._check_paths)

    def _pipeline_folders(self) -> list[Path]:
        """The pipelines folder, and the rules folder when it is another one (``[monitor] rules_dir``)."""
        folder, rules = self.config.pipelines_dir, self.config.rules_dir
        return [folder] if rules.resolve() == folder.resolve() else [folder, rules]

    def _on_pipeline_file(self, event: WatchEvent) -> None:
        # Only content changes: opens and closes without a write (``cat``, ``validate``, the reload's own reads)
        # and attribute changes (atime) never reload.
        if event.kind == "overflow" or (event.kind in CONTENT_EVENTS and str(event.path).endswith(".toml")):
            self._schedule_reload()

    def _check_paths(self) -> None:
        """Every :data:`PATHS_CHECK_S`: the state lock's file and the control socket made again if they were
        removed; a pipelines or rules folder that is not the one watched watched, and reloaded (see
        :meth:`_watch_paths`); a drop folder replaced at its path watched and scanned (``Triggers.check_folders``)."""
        assert self.loop is not None
        if self.store is not None and self._displaced is None:
            problem = self.store.db.check_in_place()
            if problem is not None:
                self.state_lost(problem)
                return
        if self._lock is not None:
            try:
                if self._lock.relock_if_replaced():
                    log.warning("the state folder's lock file %s was removed or replaced: locked the one there now",
                                self._lock.path)
                self._repeats.over("lock", f"the state folder's lock file {self._lock.path} is locked again")
            except OSError as exc:
                self._repeats.problem("lock", f"cannot lock a new state lock file {self._lock.path}: {exc}")
            except StateError as exc:  # another writer on this state: two would run the same runs
                log.error("stopping: %s", exc.one_line())
                self._displaced = exc
                self.stop_requested.set()
                return
        if self.server is not None:
            try:
                self.server.rebind_if_gone()
                self._repeats.over("socket", f"listening at {self.server.path} again")
            except (EdgeorchError, OSError) as exc:  # its folder cannot be made, say: the next check tries again
                self._repeats.problem("socket", f"cannot listen at {self.server.path} again: "
                                      + (exc.render() if isinstance(exc, EdgeorchError) else str(exc)))
        assert self._folders is not None
        for folder in self._pipeline_folders():
            if not folder.is_dir():
                continue
            if self._folders.watching(folder):
                if folder == self.config.pipelines_dir and self.registry.folder_missing:  # back, the same folder
                    log.info("%s is there again: reloading", folder)
                    self.registry.folder_missing = False  # one reload asked (it sets it again if gone again)
                    self._schedule_reload()
                continue
            try:
                self._folders.rearm(folder)
            except OSError:  # gone again meanwhile: the next check
                continue
            log.info("%s is another folder than the one watched (replaced, or created since): watching it, reloading",
                     folder)
            self._schedule_reload()
        if self.triggers is not None:
            self.triggers.check_folders()
        self._paths_check = self.loop.call_later(PATHS_CHECK_S, self._check_paths)

    def _stop_watching_paths(self) -> None:
        if self._paths_check is not None:
            self._paths_check.cancel()
            self._paths_check = None
        if self._folders is not None:
            self._folders.stop()

    def _schedule_reload(self) -> None:
        """Debounce: one reload RELOAD_DEBOUNCE_S after the last content event."""
        if self._reload_handle is not None:
            self._reload_handle.cancel()
        assert self.loop is not None
        self._reload_handle = self.loop.call_later(RELOAD_DEBOUNCE_S, self._reload_after_change)

    async def reload_pending(self) -> bool:
        """Run now the reload a file change has asked for and that waits for its events to settle (True), else
        nothing (False): a run of a pipeline saved a moment ago is not told "no pipeline named". A file whose change
        event has not reached the loop yet (written, then run at once) counts too: the folder's files are newer
        than the last reload's reading of them."""
        if self._reload_handle is None and not self._folder_newer(self._scanned_at):
            return False
        if self._reload_handle is not None:
            self._reload_handle.cancel()
            self._reload_handle = None
        await self.reload(actor="file change", explicit=False)
        return True

    def _folder_newer(self, since: float) -> bool:
        """Whether the pipelines folder or one of its ``*.toml`` files changed after ``since`` (its mtime; a folder
        of more than 1,000 entries is not looked through: the file event will come)."""
        folder = self.config.pipelines_dir
        try:
            if folder.stat().st_mtime > since:
                return True
            with os.scandir(folder) as entries:
                for i, entry in enumerate(entries):
                    if i >= 1000:
                        return False
                    if entry.name.endswith(".toml") and entry.stat().st_mtime > since:
                        return True
        except OSError:
            return False
        return False

    def _reload_after_change(self) -> None:
        self._reload_handle = None
        task = asyncio.ensure_future(self.reload(actor="file change", explicit=False))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- status ------------------------------------------------------------------------

    def status_line(self) -> str:
        return status_line(self.engine)

    def _on_event(self, event: Event) -> None:
        """Any published change: send a new ``STATUS=`` line (debounced)."""
        if self._status_handle is None and self.loop is not None:
            self._status_handle = self.loop.call_later(STATUS_DEBOUNCE_S, self._send_status)

    def _send_status(self) -> None:
        self._status_handle = None
        notify({"STATUS": self.status_line()})

    def _audit_stop(self) -> None:
        """The last audit record of this daemon, then the last seal; a failure is logged (the stop goes on)."""
        assert self.store is not None and self.seals is not None
        try:
            self.store.audit.record(None, "daemon_stopped", "daemon", {"tasks_left_running": len(self.engine.live)})
        except EdgeorchError as exc:
            log.error("cannot record the stop in the audit log: %s", exc.one_line())
        self.seals.close()

    def _on_refused(self, peer: Any, op: str, access: str, args: dict[str, Any], error: EdgeorchError) -> None:
        """A request its handler refused: an audit record when it asked for a change (see ops/audit.py)."""
        assert self.store is not None
        record_refused(self.store.audit, peer, op, access, args, error)

    def _on_denied(self, peer: Any, op: str | None) -> None:
        """A refusal for lack of access, of a request or (``op`` None) a connection (see ops/audit.py)."""
        assert self.store is not None
        record_denied(self.store.events, peer, op)

    def _on_suppressed(self, summary: Any) -> None:
        """How many refusals of one uid the rate rule kept out of the log in one window (see ops/audit.py)."""
        assert self.store is not None
        record_suppressed(self.store.events, summary)


STATE_WAIT_POLL_S = 0.5
"""How often a starting daemon asks again for a state folder an ``edgeorch run`` holds."""
STATE_WAIT_EXTEND_S = 30.0
"""How far each ask pushes systemd's start timeout (``EXTEND_TIMEOUT_USEC``) while the daemon waits."""


def load_daemon_config(path: str | os.PathLike[str] | None) -> Config:
    """:func:`load_config`, then what of the file would stop or cripple a daemon, checked before the state folder
    is touched: each ``[[watch]]`` table's own fields (a typo such as ``setle`` left the watch unstarted while
    the daemon ran on; the checks that need the pipelines stay the drop folders', as a pipeline can be fixed
    later) and ``[metrics] textfile``'s folder. Raises one :class:`ConfigError` naming the file and every
    problem: a start stops, a reload keeps the config in force (docs/config.md)."""
    from ..control.auth import group_problem
    from ..observe.textfile import textfile_problem
    from ..triggers.drop.spec import check_watches

    cfg = load_config(path)
    src = str(cfg.source) if cfg.source else None
    errors = check_watches(cfg.watches, src or "<embedded defaults>",
                           base=cfg.source.parent if cfg.source else None)[1]
    problem = textfile_problem(cfg.metrics.textfile, src)
    if problem is not None:
        errors.append(problem)
    group = group_problem(cfg.control, src)  # it stopped the start later, naming no file (the socket's bind)
    if group is not None:
        errors.append(group)
    if errors:
        raise one_error(errors, src)
    return cfg


def run_daemon(config_path: str | None, *, log_level: str | None = None, verbosity: int = 0) -> int:
    """Entry point of ``edgeorch daemon``; returns the exit code.

    The log level is ``log_level`` when given (``--log-level``), else the
    config's ``[daemon] log_level`` moved ``verbosity`` steps (``-v`` is +1,
    ``-q`` is -1; :func:`~edgeorch.loglevel.shift_log_level`). A bad config
    raises its ``ConfigError`` before anything is logged or opened.
    """
    from ..loglevel import configure_logging, shift_log_level
    from ..observe.logsetup import log_handler

    cfg = load_daemon_config(config_path)
    level = log_level or shift_log_level(cfg.daemon.log_level, verbosity)
    # [daemon] log_format: the journal with fields under systemd, JSON lines, or text (docs/operations.md).
    configure_logging(level, "%(asctime)s %(levelname)s %(name)s: %(message)s",
                      handler=log_handler(cfg.daemon.log_format, source=cfg.source))
    from ..kernels.cache import use_numba_cache_dir

    use_numba_cache_dir(cfg.numba_cache_dir)  # one rule for every path (edgeorch/kernels/cache.py)
    if cfg.daemon.log_format == "json":
        # A log shipper reading stderr gets every line as JSON, the error that stops a start too (it was the CLI's
        # plain `edgeorch: error: ...` line).
        from ..observe.jsonlog import fatal_as_json

        with fatal_as_json(log) as outcome:
            outcome.code = _run(cfg, level)
        return outcome.code
    return _run(cfg, level)


def _run(cfg: Config, level: str) -> int:
    """:func:`run_daemon` once the config is read and logging set up."""
    daemon = Daemon(cfg)
    # The banner is information: `-q` (warning) leaves it out, and JSON lines stay JSON lines only. Said once the
    # state is locked: a start refused because another process holds it says that alone.
    if log.isEnabledFor(logging.INFO) and cfg.daemon.log_format != "json":
        daemon.banner = (f"edgeorch daemon {__version__} (log level {level})\n  state:     {cfg.state_file}\n"
                         f"  socket:    {cfg.socket_path}\n  pipelines: {cfg.pipelines_dir}\n  talk to it: "
                         f"edgeorch status | edgeorch pipelines | edgeorch run <pipeline> (or socat - "
                         f"UNIX-CONNECT:{cfg.socket_path})")
    code = asyncio.run(daemon.run())
    # The last line: a clean stop's log ended at "stopping: ...", which read the same as a hang or a kill.
    log.info("stopped (exit %d)", code)
    if daemon.store is not None and daemon.store.db.displaced:
        # Its connection is left open (Database.close): ending the interpreter would close it. Leave now.
        logging.shutdown()
        os._exit(code)
    return code


RELOADED = {"retention": "[retention]", "inbox_keep": "[inbox] keep"}
"""The config fields a reload puts in force at once, by the name the file gives them; with them the
``[control]`` access lists (:data:`CONTROL_RELOADED`) and the ``[[watch]]`` tables, which the drop folders take
on. Everything else waits for a restart (:func:`reload_config` names it)."""

CONTROL_RELOADED = ("readers", "operators")
"""Of ``[control]``, what a reload applies: the access lists (the socket, its group and the limits are the
listening socket's, made at the start)."""

APPLIED_NAMES = (*RELOADED.values(), "[control] access lists", "[[watch]] tables")

_SECTION = {"state_dir": "[state] dir", "pipelines_dir": "[pipelines] dir", "inbox_dir": "[inbox] dir"}
_NOT_COMPARED = frozenset({*RELOADED, "control", "watches", "source", "runtime_dir"})


def _summary(result: Any, note: str | None) -> str:
    """A reload's summary: the pipelines', and what it did to the config."""
    if note is None:
        return str(result.summary())
    return note if result.unchanged else f"{result.summary()}; {note}"


def reload_config(old: Config, new: Config) -> tuple[Config, list[str], list[str]]:
    """``(in force, applied, later)``: ``old`` with what a reload applies taken from ``new``; the names of those
    that changed; the sections (or ``[control]`` keys) that changed and only a restart applies."""
    import dataclasses

    applied = [name for f, name in RELOADED.items() if getattr(old, f) != getattr(new, f)]
    if any(getattr(old.control, k) != getattr(new.control, k) for k in CONTROL_RELOADED):
        applied.append("[control] access lists")
    later = [_SECTION.get(f.name, f"[{f.name}]") for f in dataclasses.fields(Config)
             if f.name not in _NOT_COMPARED and getattr(old, f.name) != getattr(new, f.name)]
    later += [f"[control] {f.name}" for f in dataclasses.fields(old.control)
              if f.name not in CONTROL_RELOADED and getattr(old.control, f.name) != getattr(new.control, f.name)]
    in_force = replace(old, **{f: getattr(new, f) for f in RELOADED},
                       control=replace(old.control, **{k: getattr(new.control, k) for k in CONTROL_RELOADED}))
    return in_force, applied, later


def _watched(specs: Iterable[Any]) -> set[tuple[str, str]]:
    """``(folder, pipeline)`` of each watch the drop folders run."""
    return {(str(s.folder), s.pipeline) for s in specs}


def _refused(errors: Iterable[Any]) -> set[str]:
    """The folders of the watches these errors keep from starting."""
    return {str(e.watch[0]) for e in errors if getattr(e, "watch", None)}


def _watches_applied(before: set[tuple[str, str]], after: set[tuple[str, str]], refused_before: set[str],
                     refused: set[str], tables: tuple[tuple[dict[str, Any], ...], tuple[dict[str, Any], ...]] | None
                     ) -> str | None:
    """What a reload did to the drop folders, from what they watched before and after it: ``[[watch]]: 1 added
    (FOLDER), 1 started (FOLDER), 1 removed (FOLDER), 1 changed (FOLDER), 1 not watched (FOLDER)``; None when
    nothing changed. "started": refused before (``refused_before``) and watched now, its folder or pipeline
    fixed. ``tables``: the config's ``[[watch]]`` tables before and after, when they changed: a table changed in
    place, and a watch the config asks for that did not start (``refused``: "not watched", its warning says why;
    it was "1 added")."""
    new = after - before
    added = sorted(f for f, _ in new if f not in refused_before)
    started = sorted(f for f, _ in new if f in refused_before)
    removed = sorted(f for f, _ in before - after)
    changed = [f for f in _tables_changed(*tables) if f not in added] if tables is not None else []
    not_watched = sorted(refused - refused_before) if tables is None else sorted(refused)
    parts = _counted((("added", added), ("started", started), ("removed", removed), ("changed", changed),
                      ("not watched", not_watched)))
    if not parts:
        return "[[watch]]: changed" if tables is not None else None
    return "[[watch]]: " + parts


def _tables_changed(old: tuple[dict[str, Any], ...], new: tuple[dict[str, Any], ...]) -> list[str]:
    """The folders (as the config writes them) of the ``[[watch]]`` tables present in both with another content."""
    key = lambda w: (str(w.get("folder")), str(w.get("pipeline")))  # noqa: E731
    before = {key(w): w for w in old}
    return [k[0] for k, w in ((key(w), w) for w in new) if k in before and before[k] != w]


def _counted(groups: Iterable[tuple[str, list[str]]]) -> str:
    """``1 added (A); 2 removed (B, C)``: each non-empty group, its folders made printable."""
    return "; ".join(f"{len(v)} {what} ({', '.join(printable(x) for x in v)})" for what, v in groups if v)


def _watch_changes(old: tuple[dict[str, Any], ...], new: tuple[dict[str, Any], ...]) -> str:
    """``[[watch]]: 1 added (FOLDER), 1 removed (FOLDER)``: what a reload did to the config's tables (a daemon without
    drop folders: :func:`_watches_applied` says what they watch)."""
    key = lambda w: (str(w.get("folder")), str(w.get("pipeline")))  # noqa: E731
    before, after = {key(w): w for w in old}, {key(w): w for w in new}
    added = [f for f, _ in after if (f, _) not in before]
    removed = [f for f, _ in before if (f, _) not in after]
    return "[[watch]]: " + (_counted((("added", added), ("removed", removed), ("changed", _tables_changed(old, new))))
                            or "changed")
