"""The engine: runs pipelines on one asyncio event loop, the only writer of state.

Lifecycle: ``Engine(config, store)`` → ``await start()`` (zygote up, live
attempts adopted or settled, unfinished runs resumed) → ``submit`` /
``resume`` / ``cancel`` → ``await wait_run(run_id)`` → ``await close()``.

Every state change goes through :class:`~edgeorch.store.Store` in one
transaction and is then published as a typed event (:mod:`edgeorch.events`,
stamped by the injected ``clock``) on the injected ``bus``, which the CLI's
progress display, the daemon's ``events`` stream and the trigger service
subscribe to.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import dataclasses
import functools
import logging
import json
import os
import random
import shlex
import signal
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping

from ..config import Config
from ..errors import StateError, ConflictError, EdgeorchError, PipelineError
from ..events import (AttemptEnded, Bus, DatasetVersioned, ModelRegistered, ModelUnchanged, EngineFatal, Event, ExecutorHealth, GpuBudgetAction,
                      GpuDrained, RunFinished, RunQueued, RunResumed, RunStarted, TaskCached, TaskFailed, TaskStarted,
                      record)
from ..kernels.cache import numba_cache_dir
from ..selfexec import PACKAGE_ROOT, module_argv
from ..model import INPUTS_UNWATCHED, AttemptState, Pipeline, RunState, TaskSpec, TaskState, inputs_moved_text
from ..pipelines import parse_pipeline, substitute, substitute_deep
from ..pipelines.envnames import env_name
from ..pipelines.inputs import is_dataset, parse_dataset_input, substitute_input
from ..pipelines.substitute import (FIRE_DATE_ENV, FIRE_PLACEHOLDERS, FIRE_TIME_ENV, fire_names_used,
                                    fire_of_created, strings_in)
from ..resources import Lease, ResourceRequest, UnsatisfiableError, critical_paths, lease_env
from ..resources.admission import WATCH_INTERVAL_S, Admission, boot_time, holds_anything, request_dict, request_of
from ..store import NewAttempt, Store
from ..store.db import make_state_folder
from . import privacy, scheduler, settlement
from .callrunner import EXIT_VIOLATION
from .executors.base import AttemptRecord, Executor, ExitInfo, SpawnRequest, StartedInfo, Verdict
from ..resources.memory import oom_kills
from ..resources.oom import explain as oom_reason
from .files import (FileOutcome, RunFolders, folder_elsewhere, has_entries, hash_outcome, intact, last_log_line, link_cached_outputs,
                    own_links, read_json, remove_if_empty, still_linked, with_dataset, with_written)
from .inputs import InputError, InputsSnapshot, changed_since, hash_inputs, place_datasets, upstream_items

if TYPE_CHECKING:
    from .executors.local.launch import EarlyZygote

log = logging.getLogger("edgeorch.engine")

KILL_NET_S = 1.0
"""After the grace period, how long the engine waits for the shim's own SIGKILLs before sending its own."""

RUNNING_MARK_DELAY_S = 0.05
"""How long a started attempt's processes (pid, pgid, shim) may wait to be written to the state file: the marks
of the attempts started meanwhile go in one transaction, and an attempt that ends sooner has its mark written
with its outcome. Recovery never needs the mark (the shim's proc.json has the same facts)."""

COLLECT_WAIT_S = 60.0
"""How long :meth:`Engine.start` waits for the attempts that ended while no engine ran to be settled (their
outputs hashed, their outcomes recorded) before it returns anyway, saying so: triggers armed after it must see
those runs as they are now (a finished run does not hold a schedule's fire back)."""

OUTCOME_SYNC_DELAY_S = 0.005
"""How long an attempt's outcome that nothing waits for (no task made ready, the run not over, no model or
dataset version, a success) may stay committed without a sync: the outcomes of that window share one
``fdatasync`` of the state file (:meth:`Engine.sync_outcomes`), and each one's event is published once it is
durable. An outcome something waits for is committed durably at once, and syncs those before it."""

_DAEMON_ONLY_ENV = frozenset({"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID",
                              "LISTEN_FDNAMES"})


def _raise(exc: BaseException) -> Any:
    """A job for :meth:`Engine._in_order` that fails with ``exc`` (an outcome known before any hashing)."""
    raise exc


def _no_files() -> FileOutcome:
    """The files of an attempt with no outputs to hash and an empty (or absent) checkpoint folder."""
    return FileOutcome([], [])


def _fail_stop(method: Callable[..., Any]) -> Callable[..., Any]:
    """Run an event-loop callback; an exception escaping it stops the engine (fail-stop).

    A transition that cannot be recorded (disk full, I/O error) or a bug must
    not leave runs hanging with state half in memory. The engine stops
    accepting work, fails every waiter with the error and sets
    ``fatal_event``; the daemon then exits non-zero and systemd restarts it.
    Nothing is lost: running tasks go on under live restore, and their exit
    records are collected by the next engine.
    """

    @functools.wraps(method)
    def guarded(self: "Engine", *args: Any, **kwargs: Any) -> Any:
        if self.fatal_error is not None:
            return None
        try:
            return method(self, *args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - everything here is fatal by design
            self._fatal(exc)
            return None

    return guarded


def _fail_waiters(futures: Iterable["asyncio.Future[Any]"], error: BaseException) -> None:
    """Fail each of ``futures`` not done yet with ``error``.

    A waiter still there gets the error; a future nobody waits on (a run started by a trigger, a resume whose
    client went away) is marked retrieved, so that asyncio does not log "Future exception was never retrieved"
    with a traceback when it is collected (after a full disk, once per run; formatting that traceback inside
    another thread's ``ast.parse`` also broke it on Python 3.11)."""
    for fut in futures:
        if not fut.done():
            fut.set_exception(error)
            fut.exception()


class TaskStates(dict):  # type: ignore[type-arg]
    """Task name -> TaskState, counting unfinished tasks as states are set.

    The count lets the engine ask "is the run over?" in O(1) after every
    transition instead of scanning every task (O(n^2) over a large run).
    """

    def __init__(self, items: Any = ()) -> None:
        super().__init__()
        self.unfinished = 0
        for k, v in items:
            self[k] = v

    def __setitem__(self, key: str, value: TaskState) -> None:
        old = self.get(key)
        if old is not None and not old.finished:
            self.unfinished -= 1
        if not value.finished:
            self.unfinished += 1
        super().__setitem__(key, value)


class PipelineCaps:
    """The ``max_parallel`` of the pipelines that have active runs, kept as runs become active and finish.

    What the resources policy reads at every dispatch; recomputing it over every active run there cost
    O(active runs) per dispatch (a drop folder's burst holds thousands). Per pipeline name the value
    is that of its run made active last that has one (a run of an edited file may carry a new cap).
    """

    def __init__(self) -> None:
        self._by_name: dict[str, dict[int, int]] = {}  # name -> {run_id: max_parallel}, in activation order

    def add(self, run_id: int, pipeline: Pipeline) -> None:
        if pipeline.max_parallel:
            self._by_name.setdefault(pipeline.name, {})[run_id] = pipeline.max_parallel

    def remove(self, run_id: int, pipeline: Pipeline) -> None:
        runs = self._by_name.get(pipeline.name)
        if runs is not None and runs.pop(run_id, None) is not None and not runs:
            del self._by_name[pipeline.name]

    def current(self) -> dict[str, int]:
        """Pipeline name -> its cap, for the pipelines with an active run that has one."""
        return {name: next(reversed(runs.values())) for name, runs in self._by_name.items()}


def _unused(path: Path) -> Path:
    """``path``, or ``path.2``, ``path.3``, ... : the first name nothing holds."""
    candidate, n = path, 1
    while os.path.lexists(candidate):
        n += 1
        candidate = path.with_name(f"{path.name}.{n}")
    return candidate


class _NothingMoved(Exception):
    """Rolls back the records of a move of outputs that did not happen (:meth:`Engine._set_aside`)."""


@dataclass
class RunCtx:
    """In-memory view of one active run (the store holds the truth)."""

    run_id: int
    pipeline: Pipeline
    params: dict[str, Any]
    run_dir: Path
    task_ids: dict[str, int]
    env: dict[str, str]
    states: TaskStates
    attempts: dict[str, int]
    dependents: dict[str, list[str]]
    needs: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Task -> its upstreams, every task in pipeline order (settlement's view of the graph)."""
    order_index: dict[str, int] = field(default_factory=dict)
    unmet: dict[str, int] = field(default_factory=dict)
    """Per task, how many of its upstreams have not finished with usable outputs."""
    requests: dict[str, ResourceRequest] = field(default_factory=dict)
    critical: dict[str, float] = field(default_factory=dict)
    """Per task, predicted seconds from its start to the end of the run (the policy's order key)."""
    uncharged: dict[str, int] = field(default_factory=dict)
    """Per task, attempts lost to edgeorch's own machinery: they do not count against ``retries``."""
    retries_from: dict[str, int] = field(default_factory=dict)
    """Per task, its charged attempts before the run was last resumed: they do not count against ``retries``."""
    outputs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """Per task, its latest outcome's artifacts as read from the store (each dependent's start and cache
    check read them): forgotten when the engine records a new outcome of that task, the only writer."""
    cancel_requested: bool = False
    cancel_reason: str | None = None  # the cancel's reason (a cancelled task's reason starts with it)
    no_cache: bool = False
    """The run uses no recorded result (``edgeorch run --no-cache``): each task runs, its result recorded."""
    first: bool = False
    """Its ready tasks go before every other run's (:attr:`Engine.own_runs_first`)."""
    done: asyncio.Future[RunState] | None = None
    task_env: dict[str, str] | None = None
    """What every task's environment of this run has alike (:meth:`Engine._run_env`), made at its first start."""
    datasets: dict[str, int] = field(default_factory=dict)
    """Dataset name -> the version this run reads (``dataset:`` inputs: one version per run, see
    :mod:`edgeorch.engine.datasetinputs`); filled from the state file at the run's first such input."""
    _folders: dict[str, tuple[Path, Path]] = field(default_factory=dict, repr=False)

    @functools.cached_property
    def pipeline_dir(self) -> Path:
        """The folder of the pipeline's file: ``{pipeline_dir}``, and a task's working folder unless it names one."""
        return Path(self.pipeline.source_file).parent

    def task_folders(self, name: str) -> tuple[Path, Path]:
        """Task ``name``'s ``outputs/<task>`` and ``checkpoints/<task>`` folders in the run's folder (every attempt
        of the task shares them), made once per task: its start and its end both need them."""
        folders = self._folders.get(name)
        if folders is None:
            folders = self._folders[name] = (self.run_dir / "outputs" / name, self.run_dir / "checkpoints" / name)
        return folders

    @functools.cached_property
    def task_names(self) -> dict[int, tuple[int, str]]:
        """Task id -> ``(run_id, name)``: what the audit records of task changes name (no lookup per change)."""
        return {tid: (self.run_id, name) for name, tid in self.task_ids.items()}


Activation = tuple[RunCtx, settlement.Settlement, bool]
"""A run's start as recorded (:meth:`Engine._record_activation`): its context, its first settlement, and whether
it was queued (then ``RunStarted`` is announced); what :meth:`Engine._install` puts in memory."""


@dataclass
class LiveAttempt:
    """An attempt the engine has started (or adopted) and not yet settled: what stopping and settling it needs."""

    attempt_id: int
    run_id: int
    task: str
    number: int
    attempt_dir: Path
    pgid: int | None = None
    timer: asyncio.TimerHandle | None = None
    kill_timer: asyncio.TimerHandle | None = None
    stop_reason: str | None = None  # "timeout", "cancelled", "shutdown", "gpu_memory" once we decided to stop it
    exited: bool = False  # the executor reported its end: nothing left to stop, its outcome is being settled
    started_at: float | None = None  # engine clock at start (None: adopted), for predicted durations
    stop_detail: str | None = None  # the watcher's sentence when it stopped the attempt
    leased: bool = True  # a lease row was recorded with it (adopted: not known, so assumed)
    inputs: Any = None  # the declared inputs as hashed for its key (InputsSnapshot; None: none, or adopted)
    inputs_moved: str | None = None  # the first of them that changed while it ran (checked at its end)


@dataclass
class Engine:
    """See the module docstring. ``clock`` and ``rand`` are injected for tests; ``bus`` by the daemon;
    ``early_zygote`` by an in-process run that started the local executor's zygote before importing the
    engine (:class:`~.executors.local.launch.EarlyZygote`; its owner discards it after the engine closes)."""

    config: Config
    store: Store
    clock: Callable[[], float] = time.time
    rand: Callable[[], float] = random.random
    bus: Bus = field(default_factory=Bus)
    early_zygote: EarlyZygote | None = None

    def __post_init__(self) -> None:
        self.runs: dict[int, RunCtx] = {}
        self._caps = PipelineCaps()  # the active runs' max_parallel (kept with self.runs)
        self.live: dict[int, LiveAttempt] = {}
        self.recovered: dict[str, int] = {}
        """What :meth:`start` found of the attempts recorded as live, by verdict: ``live`` (adopted: still running),
        ``finished`` (ended while edgeorch was away: collected), ``lost`` (no exit record: abandoned)."""
        # Ready tasks wait in the resources policy's queue (``self.res.queue``), keyed
        # "<run_id>/<task>"; every live attempt holds a lease in ``self.res.held`` until its process tree has
        # ended (``_free_slot``): from then until its outcome is recorded it is live and holds nothing, so the
        # attempts that occupy a slot are exactly those in ``self.res.held``.
        self.res: Admission | None = None
        self._pin_at_start: dict[int, tuple[int, ...]] = {}  # attempt -> cores, moved before its task started
        self._collecting: set[int] = set()  # attempts that ended while no engine ran, not settled yet
        self._collected = asyncio.Event()
        self._running_marks: dict[int, StartedInfo] = {}  # started attempts whose mark is not written yet
        self._unsynced: list[Event] = []  # events of outcomes committed without a sync, in order (sync_outcomes)
        self._announced_held = 0  # how many such events were ever told (the first of _unsynced is the next one)
        self._sync_timer: asyncio.TimerHandle | None = None
        self._syncing = False  # a timer's sync is under way in _syncer
        # The timer's fdatasync runs here, off the loop: on the loop it held the loop for the disk's sync (a third of
        # a 200-task fan's loop time), while no task could be started or ended.
        self._syncer = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="edgeorch-sync")
        self._marks_timer: asyncio.TimerHandle | None = None
        self.watch_interval = WATCH_INTERVAL_S
        self._watch_timer: asyncio.TimerHandle | None = None
        self._dispatch_scheduled = False
        self._retry_timers: dict[tuple[int, str], asyncio.TimerHandle] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        self.executor: Executor | None = None
        self.accepting = True
        # The environment every task starts from, computed once (os.environ does not change under us).
        self._base_env = {k: v for k, v in os.environ.items() if k not in _DAEMON_ONLY_ENV}
        # A Python task's output reaches its log as it prints, not in 8 KiB blocks: block-buffered under systemd (a
        # pipe), a training script's log stayed empty live (`logs -f`), and empty after a timeout or kill -9; a
        # crash's reason quoted its last print, not its traceback. Under the daemon's own value and the task's env.
        self._base_env.setdefault("PYTHONUNBUFFERED", "1")
        self._numba_dir: str | None = None  # chosen at the first task that needs it (a mkdir and checks), then kept
        self._all_stopped: asyncio.Event | None = None
        self.fatal_error: BaseException | None = None
        self.fatal_event = asyncio.Event()
        # Hashing jobs (ended attempts' files, cache hits' recorded outputs) and what to do with each
        # outcome, applied strictly in the order they were queued (see _in_order).
        self._settling: collections.deque[tuple[concurrent.futures.Future[Any], Callable[[Any], None]]] = \
            collections.deque()
        self._closed = False  # set by close(): nothing more is recorded through this engine
        self._cache_checks: set[str] = set()  # "<run_id>/<task>" whose cache hit is being verified
        self._cache_missed: set[str] = set()  # verified as no usable hit: queued for a real start
        # Successes of each cache = true task (pipeline, task), counted; and, per queued task, the count when its
        # cache was asked: a task that waited for its turn (a backlog of runs of one pipeline) while a run with
        # the same inputs recorded a result asks again at its start instead of running for nothing.
        self._cache_epoch: dict[tuple[str, str], int] = {}
        self._cache_asked: dict[str, int] = {}
        # Declared inputs hashed for a ready task ("<run_id>/<task>"), used by its cache check and its
        # start; and those being hashed. A task that leaves ``ready`` forgets its snapshot.
        self._inputs: dict[str, InputsSnapshot] = {}
        self._inputs_hashing: set[str] = set()
        self._tolerated: set[int] = set()  # stored definitions whose problems were logged (stored_pipeline)
        self._hasher = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="edgeorch-hash")
        self._resumes: set[asyncio.Future[list[str]]] = set()  # resumes whose outputs are being verified
        self.run_folders = RunFolders()  # each new run's folder; a claim group's made ahead, before its transaction
        self._unhold_datasets: Callable[[], None] = lambda: None  # the prune holder registered by start()
        self.run_end_writers: list[Callable[[int, RunState, str | None], None]] = []
        self.own_runs_first = False
        """Set by ``edgeorch run``/``retry`` without a daemon once :meth:`start` has taken the runs left active:
        the runs held from then on (the one it was asked for) start their tasks before those (it waited behind
        400 runs of a drop folder's burst, 2.5 minutes, for its own 0.1 s)."""
        """Called as ``writer(run_id, state, reason)`` inside the transaction that records a run's end, so what
        each writes commits with that end or not at all (the drop folders' ``done`` of the run's inputs: one
        durable commit per run's end, not two). A writer must only write records (and register what follows
        with ``store.after_commit``): no file moves, no waiting. What it raises rolls the run's end back with it."""

    # -- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        """Start the zygote, settle attempts left by a previous engine, resume unfinished runs."""
        self.loop = asyncio.get_running_loop()
        make_state_folder(self.config.runs_dir, what="the runs folder", inner=True,
                          hint="move what is at that path away: edgeorch keeps its runs' folders there")
        newest = self.store.runs.next_id() - 1
        RunFolders.sweep_left(self.config.runs_dir, newest)
        unknown = RunFolders.newer_than(self.config.runs_dir, newest)
        if unknown:
            shown = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
            log.warning("the runs folder %s holds %d run folder(s) newer than the state file's last run (%s): %s; "
                        "the state file is older than its runs folder (a restored backup, a copy made without "
                        "its -wal file, or a -wal file damaged or cut short, whose last commits SQLite dropped?) "
                        "and knows nothing of them: what they did may be done again (docs/"
                        "operations.md, \"Back up the state file\")", self.config.runs_dir, len(unknown),
                        newest or "none", shown)
        active = self.store.runs.active()  # read once: checked here, activated below
        self._refuse_runs_elsewhere(active)
        from ..datasets.holders import register_holder  # a small module: no chunker, no numba

        self._unhold_datasets = register_holder(self._dataset_holds)
        self.executor = self._make_executor(self.loop)
        if self.executor.nodes() is None:
            # This machine: its hardware read (and the daemon moved into its cgroup leaf) before the launcher starts.
            self.res = Admission.open(self.config.resources, config_file=self.config.source)
            self.executor.start()
        else:  # a cluster executor (Ray): connected first, then its nodes are what the admission counts
            self.executor.start()
            self.res = Admission.for_cluster(self.config.resources, self.executor.nodes() or ())
        # GPU readings arrive on the GPU reader's thread; a GPU task that waited for one is reconsidered.
        loop = self.loop
        self.res.on_gpu_update(lambda: loop.call_soon_threadsafe(self._schedule_dispatch))
        self.res.restore_drains(self.store.events.daemon_rows("gpu_drained", since=boot_time()))
        self.res.seed_durations(self.store.attempts.successful_durations())
        for run in active:
            self._activate(run["id"])
        self._recover_attempts()
        for ctx in list(self.runs.values()):
            self._requeue_after_restart(ctx)
        self._arm_watch()
        self._schedule_dispatch()
        if self._collecting:
            # What ended while no engine ran is settled before start() returns: a schedule armed next counts the
            # runs still active, and one whose last task ended meanwhile must not hold back (skip) a fire.
            waits = [asyncio.ensure_future(e.wait()) for e in (self._collected, self.fatal_event)]
            done, _ = await asyncio.wait(waits, timeout=COLLECT_WAIT_S, return_when=asyncio.FIRST_COMPLETED)
            for w in waits:
                w.cancel()
            if not done:
                log.warning("%d attempt(s) that ended while no engine ran are still being settled after %.0f s; "
                            "starting anyway", len(self._collecting), COLLECT_WAIT_S)

    def _make_executor(self, loop: asyncio.AbstractEventLoop) -> Executor:
        """The executor ``[executor] kind`` names; the engine uses only its contract.

        Ray is imported only here, only for ``kind = "ray"``.
        """
        if self.config.executor.kind == "ray":
            from .executors.ray.executor import RayExecutor

            return RayExecutor(loop, self._on_started, self._on_exited, self._on_executor_health,
                               config=self.config.executor)
        from .executors.local.executor import LocalExecutor

        return LocalExecutor(loop, self._on_started, self._on_exited, self._on_executor_health,
                             early=self.early_zygote)

    def _sync_cluster(self) -> None:
        """A cluster executor's nodes changed (one joined or died): admit against them from now on."""
        if self.executor is not None and self.res is not None and self.res.cluster is not None:
            nodes = self.executor.nodes()
            if nodes is not None and tuple(nodes) != self.res.cluster:
                self.res.set_cluster(nodes)

    async def close(self, *, stop_tasks: bool = False) -> None:
        """Stop the engine. Running tasks go on (live restore) unless ``stop_tasks``."""
        self.accepting = False
        self._unhold_datasets()
        if stop_tasks:
            for la in list(self.live.values()):
                self._stop_attempt(la, "shutdown")
            if self.live and self.fatal_error is None:
                self._all_stopped = asyncio.Event()
                # Set when the last attempt's end is recorded, or by _fatal: after a fail-stop no end
                # is recorded any more (the next engine collects them), so nothing is left to wait for.
                await self._all_stopped.wait()
        for h in self._retry_timers.values():
            h.cancel()
        if self._marks_timer is not None:
            self._marks_timer.cancel()
            self._marks_timer = None
        if self._running_marks and self.fatal_error is None:
            self._write_running_marks()  # for whoever reads the state file before the next engine adopts them
        if self._watch_timer is not None:
            self._watch_timer.cancel()
            self._watch_timer = None
        for la in self.live.values():
            for t in (la.timer, la.kill_timer):
                if t:
                    t.cancel()
        if self._unsynced and self.fatal_error is None:
            self.sync_outcomes()  # for whoever follows the runs: their last outcomes told, once durable
        if self._sync_timer is not None:
            self._sync_timer.cancel()
            self._sync_timer = None
        if self.executor:
            self.executor.close()
        # Attempts still being hashed (or hashed but not yet applied) stay unsettled in the state
        # file: their exit records are durable and the next engine collects them. Nothing may be
        # applied after this point: the store is closed right after the engine.
        self._closed = True
        self._settling.clear()
        self._fail_resumes(ConflictError("the engine stopped before the retry was applied; nothing was recorded",
                                         hint="retry the run again"))
        self._hasher.shutdown(wait=False, cancel_futures=True)
        self._syncer.shutdown(wait=False, cancel_futures=True)
        self.run_folders.release()
        if self.res is not None:
            self.res.close()

    def _dataset_holds(self, store: Store) -> dict[int, str]:
        """The data versions the active runs read or will read (a prune's holder, :mod:`edgeorch.datasets.holders`):
        each run's pinned versions and the ones its tasks name by number. A task that became ready after a prune
        removed the version it names failed "it was pruned". Called on the prune's thread: reads copies."""
        out: dict[int, str] = {}
        for ctx in list(self.runs.values()):
            refs = dict(ctx.datasets)
            for spec in ctx.pipeline.tasks.values():
                for text in spec.inputs:
                    if is_dataset(text) and "{" not in text:
                        try:
                            name, version = parse_dataset_input(text)
                        except EdgeorchError:
                            continue
                        if version is not None:
                            refs.setdefault(name, version)
            for name, version in refs.items():
                try:
                    out[int(store.datasets.version(name, version)["id"])] = f"run {ctx.run_id} reads it"
                except EdgeorchError:
                    continue  # gone already: its task fails saying so
        return out

    def _refuse_runs_elsewhere(self, active: list[dict[str, Any]]) -> None:
        """A :class:`StateError` when an active run's recorded folder is not in this runs folder
        (:func:`~edgeorch.engine.files.folder_elsewhere`). Moved: started anyway, the engine took the attempts for
        abandoned and ran them again beside the ones still running, writing to the old path (made anew); their
        logs read "gone". Copied: it adopted the other folder's live attempts, timed them out and stopped them,
        and started the run's next tasks in that folder's run folder."""
        runs_dir = self.config.runs_dir
        for run in active:
            recorded = Path(run["run_dir"])
            where = folder_elsewhere(recorded, runs_dir)
            if where == "moved":
                raise StateError(
                    f"run {run['id']} is {run['state']} and its folder is recorded as {recorded}, which is gone, "
                    f"while {runs_dir / recorded.name} is here: the state folder was moved (or [state] dir changed) "
                    "while runs were active; started here, their tasks would run a second time beside the running "
                    "ones", file=str(self.store.db.path),
                    hint=f"move the state folder back to {recorded.parent.parent} (or point [state] dir there) until "
                         "its runs have ended (`edgeorch runs --state running`), then move it")
            if where == "copied":
                raise StateError(
                    f"run {run['id']} is {run['state']} and its folder is recorded as {recorded}, outside this "
                    f"state's runs folder ({runs_dir}): this state file is a copy of that folder's, made "
                    "while runs were active (or [state] dir points at such a copy); started here, the engine would "
                    "follow and stop that folder's running tasks and write into its run folders",
                    file=str(self.store.db.path),
                    hint=f"use the state folder {recorded.parent.parent} itself (its daemon follows those runs); to "
                         "have a copy, make it again once no run is active there (`edgeorch runs --state running` "
                         "lists none), or with its daemon stopped and nothing running")

    def fail_stop(self, exc: EdgeorchError) -> None:
        """Stop taking decisions because of ``exc`` (the daemon found its state file gone): what a transition that
        cannot be recorded does (:func:`_fail_stop`); running tasks go on under live restore."""
        if self.fatal_error is None:
            self._fatal(exc)

    def _fatal(self, exc: BaseException) -> None:
        """Stop taking decisions: see :func:`_fail_stop`."""
        self.fatal_error = exc
        self.accepting = False
        if isinstance(exc, EdgeorchError):
            log.error("engine stopped: %s", exc.one_line())
        else:
            log.exception("engine stopped by an internal error", exc_info=exc)
        error = exc if isinstance(exc, EdgeorchError) else EdgeorchError(f"internal error: {exc!r}")
        _fail_waiters((ctx.done for ctx in self.runs.values() if ctx.done is not None), error)
        self._fail_resumes(error)
        if self._all_stopped is not None:
            self._all_stopped.set()  # close(stop_tasks=True) waits for ends that will no longer be recorded
        self._announce(EngineFatal(self.clock(), error.render()))
        self.fatal_event.set()

    def _fail_resumes(self, error: BaseException) -> None:
        """Answer every resume still waiting for its verification: the engine will not apply it."""
        _fail_waiters(list(self._resumes), error)
        self._resumes.clear()

    def _hold_until_synced(self, event: Event) -> None:
        """Publish ``event`` (of an outcome committed without a sync) once it is durable: at the latest
        :data:`OUTCOME_SYNC_DELAY_S` from the first one held, sooner when a durable commit or a reader comes."""
        self._unsynced.append(event)
        if self._sync_timer is None and self.loop is not None:
            self._sync_timer = self.loop.call_later(OUTCOME_SYNC_DELAY_S, self._sync_due)

    @_fail_stop
    def _sync_due(self) -> None:
        """The timer's sync, in :attr:`_syncer` (a worker thread): the loop goes on meanwhile. The events held when
        it starts are told once it returns (an outcome committed while it runs waits for the next one: a sync
        covers only what was written before it began). At most one is under way; the next is armed at its end."""
        self._sync_timer = None
        if not self._unsynced or self._syncing or self.loop is None:
            return
        upto = self._announced_held + len(self._unsynced)
        self._syncing = True
        fut = self.loop.run_in_executor(self._syncer, self.store.sync)
        fut.add_done_callback(functools.partial(self._sync_done, upto))

    @_fail_stop
    def _sync_done(self, upto: int, fut: "asyncio.Future[None]") -> None:
        self._syncing = False
        if self._closed or fut.cancelled():
            return
        fut.result()  # a sync the disk refused raises StateError: fail-stop, nothing more is told
        self._synced(upto)
        if self._unsynced and self._sync_timer is None and self.loop is not None:
            self._sync_timer = self.loop.call_later(OUTCOME_SYNC_DELAY_S, self._sync_due)

    def sync_outcomes(self) -> None:
        """Make the outcomes committed without a sync durable (one ``fdatasync``), then publish their events in
        order. Called by their timer, by a reader of the state (the daemon's control ops: nothing they report
        may precede its durability), at close. Nothing to do, nothing done. A sync the disk refuses raises
        ``StateError`` (fail-stop: what is not durable is not announced)."""
        if not self._unsynced:
            return
        self.store.sync()
        self._synced()

    def _synced(self, upto: int | None = None) -> None:
        """Every commit so far is durable (a sync, or a durable commit): publish the events that waited for it, in
        order. ``upto``: only the events held before that count (:meth:`_sync_done`: what its sync covered; those
        a durable commit told meanwhile are not told again)."""
        n = len(self._unsynced) if upto is None else max(0, upto - self._announced_held)
        held, self._unsynced = self._unsynced[:n], self._unsynced[n:]
        self._announced_held += n
        for event in held:
            self._announce(event)

    def _announce(self, event: Event) -> None:
        """Record ``event``'s own row if it has one (:func:`edgeorch.events.record`), then publish it on the bus.

        A row that cannot be written raises (fail-stop), before anything is published.
        """
        record(self.store.events, event)
        self.bus.publish(event)

    # -- requests ----------------------------------------------------------------------

    def submit(self, pipeline: Pipeline, params: dict[str, Any], *, trigger: str = "manual", actor: str | None = None,
               check_resources: bool = True, within: Callable[[int], None] | None = None,
               env: dict[str, str] | None = None, no_cache: bool = False) -> int:
        """Queue a run of ``pipeline`` with resolved ``params``; returns the run id.

        ``within(run_id)`` is called inside the transaction that creates the run
        (triggers record their watermark / input state with it, or neither).
        ``env`` is recorded with the run and given to every task of it (after
        the lease's variables, before the task's own ``env``). ``no_cache``: no task of the run is served from
        a recorded result (each runs; its result is recorded as any other).

        Raises :class:`UnsatisfiableError` (nothing recorded) when a task asks for
        resources this machine can never grant; ``check_resources=False`` skips
        that check (the task then fails at admission with the same reason).
        """
        if check_resources:
            self.check_resources(pipeline)
        version_id = self.store.pipelines.record_version(pipeline.name, pipeline.content_hash, pipeline.source_file, pipeline.source_text)
        runs_dir = self.config.runs_dir

        def run_dir_for(rid: int) -> str:
            path = self.run_folders.take(runs_dir, rid)
            # A run whose creation rolls back leaves no folder: the run that gets its id next takes ``<id>``.
            self.store.on_rollback(functools.partial(remove_if_empty, path))
            return str(path)

        # The run, its tasks, its start and its first ready tasks in one transaction: one durable commit per
        # run (two before; an fsync is most of a run's start on slow flash). Memory follows the record once
        # it is committed: at once, or when a caller's transaction around this one commits (a claim group's
        # runs); never for a run whose creation rolled back.
        with self.store.transaction():
            run_id = self.store.runs.create(
                pipeline=pipeline.name, version_id=version_id, params=params, trigger=trigger, actor=actor,
                run_dir_for=run_dir_for,
                tasks=[(name, pipeline.tasks[name].definition_hash) for name in pipeline.order],
                within=within, env=env, no_cache=no_cache, pipeline_file=pipeline.source_file,
            )
            activation = self._record_activation(run_id, pipeline)
            self.store.after_commit(functools.partial(self._hold_new_run, activation, trigger))
        return run_id

    @_fail_stop
    def _hold_new_run(self, activation: Activation, trigger: str | None = None) -> None:
        """A submitted run's creation is committed: announce it, hold it in memory, dispatch its ready tasks."""
        ctx = activation[0]
        self._announce(RunQueued(self.clock(), ctx.run_id, ctx.pipeline.name, trigger))
        self._install(*activation)
        self._schedule_dispatch()

    def check_resources(self, pipeline: Pipeline) -> None:
        """Raise :class:`UnsatisfiableError` naming each task whose request no state of this machine grants."""
        assert self.res is not None, "start() the engine first"
        self._sync_cluster()
        bad = self.res.check_pipeline(pipeline)
        if bad:
            task, why = bad[0]
            more = "; ".join(f"{t}: {w}" for t, w in bad[1:])
            raise UnsatisfiableError(
                f"task {task} {why}" + (f" (also {more})" if more else ""), file=pipeline.source_file,
                field=f"tasks.{task}", pipeline=pipeline.name,
                hint="lower the request or change [resources] in the daemon's config")

    async def resume(self, run_id: int, *, actor: str | None = None,
                     before: Callable[[int], None] | None = None, pipeline: Pipeline | None = None) -> list[str]:
        """Resume a finished run: rerun what failed and what lost its outputs (see ``tasks_to_resume``).

        Returns the tasks to run again, in pipeline order. The recorded outputs of
        the tasks that succeeded are re-hashed in the hashing worker (a model can be
        gigabytes; the loop keeps answering), then the decision is applied on the
        loop in order with the other hashed outcomes (:meth:`_in_order`): the run's
        state is checked again there, ``before(run_id)`` is called (the owner's
        preparations, e.g. inputs brought back; it may raise to refuse), and the
        tasks are reset and the run queued in one transaction.

        ``pipeline``: the tasks run again under this definition of the run's pipeline (its file as it is now:
        a longer timeout, more retries, a fixed command), recorded as the run's own from then on; it must keep
        the run's tasks, needs and params (:func:`~.scheduler.definition_change_problem`). None: the run's own.

        Raises :class:`ConflictError` when the run is not finished, has nothing to
        retry, or the engine stops before the retry is applied, or ``pipeline`` does not fit it; whatever
        ``before`` raises. Nothing is recorded when it raises.
        """
        run = self.store.runs.get(run_id)
        self._check_resumable(run_id, run["state"])
        own = self.stored_pipeline(run["pipeline_version_id"])
        if pipeline is not None and pipeline.content_hash != own.content_hash:
            problem = scheduler.definition_change_problem(own, pipeline)
            if problem is not None:
                where = pipeline.source_file or pipeline.name
                raise ConflictError(f"run {run_id} cannot go on under {where}: {problem}",
                                    hint=f"start a new run (`edgeorch run {where}`), or retry without --current "
                                         "(the run's own definition)")
        else:
            pipeline = own
        states = {r["name"]: TaskState(r["state"]) for r in self.store.runs.tasks_of(run_id)}
        outputs = self.store.outputs.latest_artifacts_of_run(run_id)
        recorded = {n: outputs.get(n, []) for n, s in states.items() if s.done_ok}
        # A cache hit's files are the earlier run's, linked into this run's folder, where its downstream tasks
        # and `{run_dir}/outputs/<task>/...` readers find them: a link removed there is a lost output too (the
        # retry said "every task succeeded and its outputs are intact").
        linked = {n: Path(run["run_dir"]) / "outputs" / n for n, s in states.items() if s == TaskState.SKIPPED}
        assert self.loop is not None, "start() the engine first"
        if self._closed:
            raise ConflictError("the engine is stopping and resumes no runs")
        answer: asyncio.Future[list[str]] = self.loop.create_future()
        self._resumes.add(answer)
        answer.add_done_callback(self._resumes.discard)
        self._in_order(functools.partial(_intact_map, recorded, linked),
                       functools.partial(self._apply_resume, run_id, pipeline, actor, before, answer),
                       inline=not any(recorded.values()))
        return await answer

    def _check_resumable(self, run_id: int, state: str) -> None:
        """Raise :class:`ConflictError` unless run ``run_id`` (in ``state``) is finished and not active here."""
        check_resumable(run_id, state, active=run_id in self.runs)

    def _apply_resume(self, run_id: int, pipeline: Pipeline, actor: str | None, before: Callable[[int], None] | None,
                      answer: asyncio.Future[list[str]], fut: concurrent.futures.Future[dict[str, bool]]) -> None:
        """Apply a resume whose outputs were verified (on the loop, in order); the outcome goes to ``answer``.

        Every refusal goes to the caller, never to the engine: the run is checked
        again (another retry or a trigger may have queued it while its outputs
        were hashed) before ``before`` runs and anything is recorded.
        """
        if answer.done():  # the caller went away (cancelled): nothing is recorded
            return
        try:
            redo, activation = self._record_resume(run_id, pipeline, fut.result(), actor, before)
        except Exception as exc:  # noqa: BLE001 - a refusal (or a write that did not commit) is the caller's answer
            answer.set_exception(exc)
            return
        # Recorded: what follows is the engine's own bookkeeping, and a failure in it is fail-stop
        # (_drain_settlements), which also fails ``answer`` (see _fail_resumes).
        self._announce(RunResumed(self.clock(), run_id, tuple(sorted(redo)), pipeline.name))
        self._install(*activation)
        self._schedule_dispatch()
        answer.set_result([n for n in pipeline.order if n in redo])

    def _record_resume(self, run_id: int, pipeline: Pipeline, intact_map: dict[str, bool], actor: str | None,
                       before: Callable[[int], None] | None) -> tuple[set[str], Activation]:
        """Decide a resume and record it with the run's new start in one transaction (on the loop, one durable
        commit); returns the tasks to run again and what :meth:`_install` needs.

        Raises (nothing recorded) when the run cannot be resumed or ``before`` refuses.
        """
        self._check_resumable(run_id, self.store.runs.get(run_id)["state"])
        rows = self.store.runs.tasks_of(run_id)
        # The run is finished, so its tasks' states are those its outputs were verified for.
        states = {r["name"]: TaskState(r["state"]) for r in rows}
        redo = scheduler.tasks_to_resume(states, pipeline.dependents(), intact_map)
        if not redo:
            raise ConflictError(f"run {run_id} has nothing to retry: every task succeeded and its outputs are intact")
        if before is not None:
            before(run_id)
        with self.store.transaction():
            self.store.runs.reset_tasks([r["id"] for r in rows if r["name"] in redo])
            changed = ""
            if pipeline.content_hash != self.store.pipelines.version(
                    self.store.runs.get(run_id)["pipeline_version_id"])["content_hash"]:
                # The run's definition from now on (a restart reloads it, `show` prints it): the file as it is.
                version_id = self.store.pipelines.record_version(pipeline.name, pipeline.content_hash,
                                                                 pipeline.source_file, pipeline.source_text)
                self.store.runs.set_pipeline_version(run_id, version_id, actor=actor)
                changed = f" under the pipeline file as it is now (content_hash {pipeline.content_hash[:12]})"
            self.store.runs.set_state(run_id, RunState.QUEUED,
                                      reason=f"resumed: {len(redo)} task(s) to run{changed}", actor=actor)
            activation = self._record_activation(run_id, pipeline)
        run_dir = activation[0].run_dir
        hits = {r["name"]: r["cached_from"] for r in rows}
        for name in sorted(n for n in redo if states[n] == TaskState.SKIPPED):
            # A cache hit's links (link_cached_outputs) share the earlier run's files: the rerun must not write
            # into them. Set aside like a failed attempt's outputs, kept for reading, under a name no earlier
            # retry of the hit took (a second one failed with "Directory not empty", and left stale links for
            # good); the hit's records, which name its links, follow them.
            dest = _unused(run_dir / "attempts" / f"{name}.cached") / "outputs"
            self._set_aside_with_records(run_id, name, hits.get(name), run_dir / "outputs" / name, dest,
                                         "the cache hit's outputs", keep_name=True)
        return redo, activation

    def _set_aside_with_records(self, run_id: int, name: str, attempt_id: int | None, folder: Path, dest: Path,
                                what: str, *, keep_name: bool = False) -> tuple[bool, int] | None:
        """Rename ``folder`` to ``dest`` (:meth:`_move_aside_folder`) and, in the transaction whose commit stands
        for it, make the records of ``attempt_id``'s files under ``folder`` name ``dest``
        (:meth:`~edgeorch.store.outputs.Outputs.follow_moved_files`). ``(moved, records followed)``; None when
        it could not move (logged): then the records stay with the files. Nothing to move, the records follow
        all the same: the files went there before a crash ended the transaction of their records, or someone
        removed them (missing is the truth; a rerun's new file at the old path is not theirs). ``keep_name``:
        the name records took stays taken (made, empty) though nothing moved, for the next one to take another."""
        try:
            with self.store.transaction():
                followed = (self.store.outputs.follow_moved_files(int(attempt_id), str(folder), str(dest))
                            if attempt_id is not None else 0)
                moved = self._move_aside_folder(run_id, name, folder, dest, what)
                if moved is None:
                    raise _NothingMoved
                if keep_name and not moved and followed:
                    dest.mkdir(parents=True, exist_ok=True)
        except _NothingMoved:
            return None
        except OSError as exc:  # the name could not be taken: the records stay where the files were
            log.warning("run %s: task %s: cannot set the records of %s aside: %s", run_id, name, what, exc)
            return None
        return moved, followed

    def cancel(self, run_id: int, *, actor: str | None = None, reason: str = "cancelled") -> None:
        """Cancel an active run: nothing new starts, running attempts are stopped."""
        ctx = self.runs.get(run_id)
        if ctx is None:
            run = self.store.runs.get(run_id)
            raise ConflictError(f"run {run_id} has already finished ({run['state']}): there is nothing to cancel")
        decided = settlement.settle_cancel(self._view(ctx), reason)
        with self.store.transaction():
            self.store.events.add("cancel_requested", f"run {run_id}: {reason}", run_id=run_id, actor=actor)
            self.store.runs.request_cancel(run_id, reason)
            self._record(ctx, decided)
        ctx.cancel_requested, ctx.cancel_reason = True, reason
        assert self.res is not None

        def stop_the_rest() -> None:
            for name in ctx.states:
                self.res.remove(f"{run_id}/{name}")  # type: ignore[union-attr]
            for la in list(self.live.values()):
                if la.run_id == run_id:
                    self._stop_attempt(la, "cancelled")

        self._apply(ctx, decided, stop_the_rest)

    async def wait_run(self, run_id: int) -> RunState:
        """Wait until the run finishes; returns its final state."""
        ctx = self.runs.get(run_id)
        if ctx is None:
            state = RunState(self.store.runs.get(run_id)["state"])
            if not state.finished and self.fatal_error is not None:  # stopped before it held the run
                raise self.fatal_error
            return state
        assert ctx.done is not None
        return await asyncio.shield(ctx.done)

    # -- activation and recovery -------------------------------------------------------

    def stored_pipeline(self, version_id: int) -> Pipeline:
        """The exact definition a run was created with, parsed from the stored text (what its retry runs
        under, unless ``retry --current``).

        A definition an earlier edgeorch recorded may break a rule added since (an upgrade with runs active): it
        is built anyway, as that edgeorch ran it (``parse_pipeline(stored=True)``), and what this edgeorch
        refuses in it is logged once per definition. One that broke the start of every later daemon, and every
        `run` and `cancel` without one, made an upgrade unrecoverable but from a backup. Raises the first problem
        only when no pipeline can be built from it at all.
        """
        v = self.store.pipelines.version(version_id)
        try:
            data = tomllib.loads(v["source_text"])
        except tomllib.TOMLDecodeError as exc:  # pragma: no cover - it was valid when stored
            raise PipelineError(f"stored definition no longer parses: {exc}", file=v["source_file"]) from None
        pipe, errors = parse_pipeline(data, file=Path(v["source_file"]), text=v["source_text"], stored=True)
        if pipe is None:
            raise errors[0]
        if errors and version_id not in self._tolerated:
            self._tolerated.add(version_id)
            log.warning("the definition of pipeline %s recorded by an earlier edgeorch (version %d: what its runs "
                        "run as, and a retry without --current) breaks %d rule(s) of this one; it runs as recorded: "
                        "%s", pipe.name, version_id, len(errors), "; ".join(e.one_line() for e in errors))
        return pipe

    def _activate(self, run_id: int, pipeline: Pipeline | None = None) -> RunCtx:
        """Make a recorded run active here: its start recorded (:meth:`_record_activation`), then held in memory."""
        with self.store.transaction():  # running, and its first ready tasks, together
            activation = self._record_activation(run_id, pipeline)
        return self._install(*activation)

    def _record_activation(self, run_id: int,
                           pipeline: Pipeline | None = None) -> Activation:
        """Build the run's context and record its start (``running``, its first ready tasks) in the caller's
        transaction; nothing in memory changes. Returns what :meth:`_install` needs once that is recorded."""
        run = self.store.runs.get(run_id)
        if pipeline is None:
            pipeline = self.stored_pipeline(run["pipeline_version_id"])
        rows = self.store.runs.tasks_of(run_id)
        assert self.loop is not None
        ctx = RunCtx(
            run_id=run_id, pipeline=pipeline, params=run["params"], run_dir=Path(run["run_dir"]),
            env={**fire_of_created(run["created_at"]), **(run["env"] or {})},  # a schedule's fire, else its creation
            task_ids={r["name"]: r["id"] for r in rows}, states=TaskStates((r["name"], TaskState(r["state"])) for r in rows),
            attempts={r["name"]: r["attempts"] for r in rows}, dependents=pipeline.dependents(),
            order_index={n: i for i, n in enumerate(pipeline.order)},
            done=self.loop.create_future(),
            # Cancelled before a restart, its attempts still stopping: nothing more starts, and recovery stops them.
            cancel_requested=run.get("cancel_reason") is not None, cancel_reason=run.get("cancel_reason"),
            no_cache=bool(run.get("no_cache")),
        )
        ctx.needs = {n: pipeline.tasks[n].needs for n in pipeline.order}
        ctx.unmet = settlement.unmet_upstreams(ctx.needs, ctx.states)
        # A run that never started has no attempts to count (every new run: spares a query per submit).
        ctx.uncharged = self.store.attempts.uncharged(run_id) if run["started_at"] is not None else {}
        ctx.retries_from = {r["name"]: r["retries_from"] for r in rows if r["retries_from"]}
        assert self.res is not None
        ctx.requests = {n: request_of(t) for n, t in pipeline.tasks.items()}
        model = self.res.durations
        ctx.critical = critical_paths({n: t.needs for n, t in pipeline.tasks.items()},
                                      {n: model.predict(f"{pipeline.name}/{n}") for n in pipeline.tasks})
        starting = run["state"] == RunState.QUEUED
        decided = settlement.settle_ready(self._view(ctx))
        if starting:
            self.store.runs.set_state(run_id, RunState.RUNNING)
        self._record(ctx, decided)
        return ctx, decided, starting

    def _install(self, ctx: RunCtx, decided: settlement.Settlement, starting: bool) -> RunCtx:
        """Hold a run whose activation is recorded: in :attr:`runs`, ``RunStarted`` announced, its ready tasks queued."""
        self.runs[ctx.run_id] = ctx
        ctx.first = self.own_runs_first
        self._caps.add(ctx.run_id, ctx.pipeline)
        if starting:
            self._announce(RunStarted(self.clock(), ctx.run_id, ctx.pipeline.name))
        self._apply(ctx, decided)
        return ctx

    def _requeue_after_restart(self, ctx: RunCtx) -> None:
        for name, st in ctx.states.items():
            if st == TaskState.READY:
                self._push_ready(ctx, name)
            elif st == TaskState.RETRY_WAIT:
                row = next(r for r in self.store.runs.tasks_of(ctx.run_id) if r["name"] == name)
                self._arm_retry(ctx, name, row["next_attempt_at"] or self.clock())
        decided = settlement.settle_run_end(self._view(ctx))
        if decided.run_finished is not None:  # every task finished before the restart: record the run's end
            self._settle(ctx, decided)

    def _recover_attempts(self) -> None:
        """Adopt live shims, collect attempts that ended while we were away, abandon the rest (counted by verdict
        in :attr:`recovered`)."""
        assert self.executor is not None
        for a in self.store.attempts.live():
            adir = a["attempt_dir"]
            la = LiveAttempt(a["id"], a["run_id"], a["task"], a["number"], Path(adir), pgid=a["pgid"])
            if a["run_id"] not in self.runs:
                self._activate(a["run_id"])
            self.live[a["id"]] = la
            self._restore_lease(a)
            adoption = self.executor.adopt(AttemptRecord(a["id"], adir, a["pgid"]))
            self.recovered[adoption.verdict.value] = self.recovered.get(adoption.verdict.value, 0) + 1
            started = adoption.started
            if started is not None and la.pgid is None:
                la.pgid = started.pgid
                self._record_running(a["id"], started)
            if adoption.verdict is Verdict.LIVE:
                self.store.events.add("attempt_adopted", f"{a['task']}: attempt {a['number']} adopted after restart",
                                      run_id=a["run_id"], task=a["task"])
                # Its timeout counts from its start (recorded), not from this adoption.
                self._arm_timeout(la, elapsed=max(0.0, self.clock() - (a["started_at"] or self.clock())))
                if self.runs[a["run_id"]].cancel_requested:  # its run was cancelled before the restart: stop it
                    self._stop_attempt(la, "cancelled")
            else:
                assert adoption.exit is not None
                assert self.loop is not None  # start() set it before recovering
                if self._timed_out_while_away(la, a, adoption.exit):
                    la.stop_reason = "timeout"
                self._collecting.add(a["id"])
                self.loop.call_soon(self._on_exited, a["id"], adoption.exit)

    def _restore_lease(self, a: dict[str, Any]) -> None:
        """Hold again the lease recorded for a live attempt, so nothing is granted twice after a restart."""
        assert self.res is not None
        rec = self.store.attempts.lease_of(a["id"])
        holder = f"{a['run_id']}/{a['task']}"
        try:
            lease = Lease.from_dict(rec) if rec else Lease(holder)
        except EdgeorchError:
            lease = Lease(holder)
        ctx = self.runs[a["run_id"]]
        predicted = self.res.durations.predict(f"{ctx.pipeline.name}/{a['task']}")
        end = (a["started_at"] or self.clock()) + predicted
        cgroup = None
        if lease.memory and self.res.cgroup.enforced and self.res.cgroup.path is not None:
            path = self.res.cgroup.path / f"task-{a['id']}"
            cgroup = str(path) if path.is_dir() else None
        self.res.grant(a["id"], a["run_id"], a["task"], lease, ctx.pipeline.name, end, a["started_at"] or self.clock(),
                       cgroup)

    # -- scheduling --------------------------------------------------------------------

    def _push_ready(self, ctx: RunCtx, name: str) -> None:
        assert self.res is not None
        tid = f"{ctx.run_id}/{name}"
        if tid in self.res.queue:
            return
        req = ctx.requests[name]
        why = self.res.never(req)  # O(1) for plain tasks
        if why is not None:
            # Fail at once, even while every slot is busy (a decision stops looking when full).
            assert self.loop is not None
            self.loop.call_soon(self._fail_unsatisfiable, ctx.run_id, name, why)
            return
        spec = ctx.pipeline.tasks[name]
        if (spec.inputs or spec.container is not None) and tid not in self._inputs:
            self._hash_declared_inputs(ctx, name, spec)
            return  # queued (or failed) once its inputs are hashed, in order with other outcomes
        if spec.cache and not ctx.no_cache and ctx.attempts[name] == 0 and tid not in self._cache_missed:
            self._cache_asked[tid] = self._cache_epoch.get((ctx.pipeline.name, name), 0)
            if tid in self._cache_checks or self._check_cache(ctx, name, spec):
                return  # a recorded result is being verified: skipped or queued once known
        self.res.push(tid, req, ctx.pipeline.name, ctx.pipeline.priority, ctx.critical[name],
                      self.res.durations.predict(f"{ctx.pipeline.name}/{name}"), self.clock(), first=ctx.first)
        # Whoever queues a task asks for a decision: a task queued back from its start (its second cache question)
        # left its slot idle until some other task ended.
        self._schedule_dispatch()

    def _hash_declared_inputs(self, ctx: RunCtx, name: str, spec: TaskSpec) -> None:
        """Hash a ready task's declared ``inputs`` in the hashing worker (a folder can hold gigabytes).

        Placeholders are those of the coming attempt; relative paths are relative
        to its working directory. :meth:`_apply_inputs` then queues the task (its
        cache check first) or fails it, in order with the other hashed outcomes.
        """
        tid = f"{ctx.run_id}/{name}"
        if tid in self._inputs_hashing:
            return
        number = ctx.attempts[name] + 1
        values = self._placeholders(ctx, name, number, *ctx.task_folders(name))
        declared = [(text, substitute_input(text, values)) for text in spec.inputs]
        self._inputs_hashing.add(tid)
        datasets: dict[int, Any] = {}
        if any(is_dataset(text) for _written, text in declared):
            # Imported here (tasks that read a data version only): not on a plain run's start-up.
            from .datasetinputs import resolve as resolve_datasets

            try:  # on the loop: the versions are read from the state file (docs/lineage.md, "Data versions")
                datasets = resolve_datasets(self.store, self.config.state_dir, ctx.run_id, ctx.run_dir,
                                            ctx.datasets, name, declared)
            except InputError as exc:
                self._in_order(functools.partial(_raise, exc), functools.partial(self._apply_inputs, ctx.run_id, name),
                               inline=True)
                return
        # A cached task's data versions are named now (the key needs their hashes only) and put in the run's
        # folder once the cache missed (_start_task): a hit never restores them.
        place = not (spec.cache and ctx.attempts[name] == 0)
        job: Callable[[], InputsSnapshot] = functools.partial(hash_inputs, name, declared,
                                                              self._workdir(ctx, spec, values), datasets, place=place)
        if spec.container is not None:  # its image, resolved to a digest, is one more input (docs/containers.md)
            # Imported here (container tasks only): not on a plain run's start-up.
            from ..containers.image import snapshot_with_image

            job = functools.partial(snapshot_with_image, job, name, spec.container,
                                    substitute(spec.container.image, values), self.config.containers,
                                    gpus=bool(spec.gpus or spec.gpu_memory))
        self._in_order(job, functools.partial(self._apply_inputs, ctx.run_id, name))

    def _apply_inputs(self, run_id: int, name: str, fut: concurrent.futures.Future[InputsSnapshot]) -> None:
        """A ready task's inputs are hashed: keep the snapshot and queue it, or fail it (no attempt, no retry)."""
        tid = f"{run_id}/{name}"
        self._inputs_hashing.discard(tid)
        ctx = self.runs.get(run_id)
        if ctx is None or ctx.cancel_requested or ctx.states.get(name) != TaskState.READY:
            return  # cancelled or failed meanwhile
        try:
            snapshot = fut.result()
        except InputError as exc:
            self._fail_without_attempt(ctx, name, str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - an unreadable input fails the task, never the engine
            self._fail_without_attempt(ctx, name, f"cannot hash the declared inputs: {exc!r}")
            return
        self._inputs[tid] = snapshot
        self._push_ready(ctx, name)

    @_fail_stop
    def _fail_unsatisfiable(self, run_id: int, name: str, why: str) -> None:
        ctx = self.runs.get(run_id)
        if ctx is not None and ctx.states.get(name) == TaskState.READY:
            self._fail_without_attempt(ctx, name, f"cannot be scheduled: {why}")

    def _max_parallel(self) -> dict[str, int]:
        return self._caps.current()

    def retry_waits(self) -> list[float]:
        """When each task in ``retry_wait`` tries again, on :attr:`clock` (earliest first): a task between attempts is
        neither running nor waiting for a slot, and a summary that counted only those looked idle."""
        assert self.loop is not None or not self._retry_timers
        if not self._retry_timers:
            return []
        now, mono = self.clock(), self.loop.time()  # type: ignore[union-attr]
        return sorted(now + max(h.when() - mono, 0.0) for h in self._retry_timers.values())

    def waiting(self) -> int:
        """How many tasks wait for resources or a slot (the resources policy's queue; its order and each one's
        reason are :meth:`resources_report`'s)."""
        assert self.res is not None
        return len(self.res.queue)

    def waiting_reasons(self, run_id: int) -> dict[str, str]:
        """Task -> why it waits now, for run ``run_id``'s tasks in the resources queue and those whose files are
        being hashed (:meth:`hashing`) (``edgeorch why``); {} when the run is not active here or none of its tasks
        waits."""
        ctx = self.runs.get(run_id)
        if ctx is None or self.res is None:
            return {}
        reasons = self.hashing(run_id)
        if any(f"{run_id}/{n}" in self.res.queue for n in ctx.states):
            prefix = f"{run_id}/"
            reasons.update({q["task"].removeprefix(prefix): q["reason"] for q in self.resources_report()["queue"] or ()
                            if q["task"].startswith(prefix)})
        return reasons

    def hashing(self, run_id: int) -> dict[str, str]:
        """Task -> what of its files the hashing worker reads now or has queued, for run ``run_id``: its declared
        inputs (before it is queued; its state says ready), a recorded result's files (the cache's check), or
        its ended attempt's outputs and checkpoints (its state still says running). Gigabytes take seconds to
        minutes: ``show`` and ``why`` say it rather than a bare state. {} when the run is not active here."""
        ctx = self.runs.get(run_id)
        if ctx is None:
            return {}
        now: dict[str, str] = {}
        for name in ctx.states:
            tid = f"{run_id}/{name}"
            if tid in self._inputs_hashing:
                now[name] = "hashing its declared inputs before it is queued"
            elif tid in self._cache_checks:
                now[name] = "checking the files of a recorded result (cache) before it is reused"
        for la in self.live.values():
            if la.run_id == run_id and la.exited:
                now[la.task] = f"attempt {la.number} ended: hashing and recording its outputs and checkpoints"
        return now

    def resources_report(self, *, queue: bool = True) -> dict[str, Any]:
        """Cores, memory, GPUs with live readings, who holds what, the queue with reasons (JSON-ready).

        ``queue`` False leaves the queue out (``"queue": None``): its reasons are the policy's whole decision
        and a sort of every waiting task, which a summary (``status``) does not show.
        """
        assert self.res is not None
        self._sync_cluster()
        rep = self.res.report(self.clock(), parallelism=self.config.engine.parallelism,
                              max_parallel=self._max_parallel(), queue=queue,
                              placements=self.executor.placements() if self.executor is not None else None)
        rep["parallelism"] = self.config.engine.parallelism
        rep["running"] = len(self.live)
        # The attempt's number within its task, as `show` and `logs --attempt` name it (attempt_id is the row's id).
        cluster = rep.get("cluster") or {}
        placed = [a for n in cluster.get("nodes", ()) for a in n["attempts"]]
        for item in [*(rep.get("leases") or ()), *placed, *cluster.get("unplaced", ())]:
            live = self.live.get(item["attempt_id"])
            item["attempt"] = live.number if live is not None else None
        return rep

    def _schedule_dispatch(self) -> None:
        if not self._dispatch_scheduled and self.loop is not None:
            self._dispatch_scheduled = True
            self.loop.call_soon(self._dispatch)

    @_fail_stop
    def _dispatch(self) -> None:
        """Start what the resources policy admits now; fail what it never could.

        Order (the policy's): pipeline priority, then critical path, then
        arrival; EASY backfilling around a reserved head. Caps:
        ``engine.parallelism``, each pipeline's ``max_parallel``, the pools.
        """
        self._dispatch_scheduled = False
        res = self.res
        if not self.accepting or res is None or not len(res.queue):
            return
        parallelism = self.config.engine.parallelism
        if len(res.held) >= parallelism:
            return  # cheap exit: no decision can start anything
        self._sync_cluster()
        # One decision per pass over the whole queue (cost O(buckets + running), not O(ready tasks)).
        decision = res.decide(self.clock(), parallelism=parallelism, max_parallel=self._max_parallel())
        for uuid, why in res.take_new_drains().items():  # found by this decision's health reading
            self._announce(GpuDrained(self.clock(), uuid, why))
        for task, why in decision.unsatisfiable:  # normally caught at push; kept as the policy's safety net
            res.remove(task.id)
            self._fail_unsatisfiable(*_split_id(task.id), why)
        for task, lease in decision.start:
            res.remove(task.id)
            run_id, name = _split_id(task.id)
            ctx = self.runs.get(run_id)
            if ctx is None or ctx.states.get(name) != TaskState.READY:
                continue
            try:
                self._start_task(ctx, name, lease)
            except StateError:
                raise  # the state file cannot be written: fail-stop, not a task failure
            except EdgeorchError as exc:
                self._fail_without_attempt(ctx, name, exc.render())
            except OSError as exc:
                self._fail_without_attempt(ctx, name, f"cannot prepare the attempt: {exc}")

    def _rebalance_shared(self, res: Admission) -> None:
        """Move running tasks that asked for no cores onto the cores nobody leased now (docs/resources.md): off
        cores just leased (dedicated cores are never shared with them), onto those a lease gave back. On this
        machine only (a cluster's tasks run on its nodes)."""
        moved = res.rebalance_shared()
        if not moved:
            return
        from ..resources.cpus import format_cpu_list, pin_processes

        assert self.executor is not None
        pids = self.executor.pids([aid for aid, _ in moved])
        for aid, cores in moved:
            if aid not in pids:  # its shim has not started the task yet: moved when it says it has
                self._pin_at_start[aid] = cores
                continue
            n = pin_processes(pids[aid], cores)
            log.debug("attempt %s: %d thread(s) moved to the unleased cores %s", aid, n, format_cpu_list(cores))

    # -- starting an attempt -------------------------------------------------------------

    def _placeholders(self, ctx: RunCtx, name: str, number: int, out_dir: Path, ckpt_dir: Path) -> dict[str, Any]:
        return {**ctx.params, "run_id": ctx.run_id, "task": name, "attempt": number, "output_dir": str(out_dir),
                "checkpoint_dir": str(ckpt_dir), "run_dir": str(ctx.run_dir), "pipeline_dir": str(ctx.pipeline_dir),
                "fire_time": ctx.env.get(FIRE_TIME_ENV, ""), "fire_date": ctx.env.get(FIRE_DATE_ENV, "")}

    def _upstream_outputs(self, ctx: RunCtx, spec: TaskSpec) -> dict[str, list[dict[str, Any]]]:
        """Each upstream's latest artifacts, read from the store once per outcome (:attr:`RunCtx.outputs`): one
        query for one upstream not read yet, one for the whole run when there are more (a fan's sink)."""
        missing = [up for up in spec.needs if up not in ctx.outputs]
        if len(missing) == 1:
            ctx.outputs[missing[0]] = self.store.outputs.latest_artifacts(ctx.run_id, missing[0])
        elif missing:
            of_run = self.store.outputs.latest_artifacts_of_run(ctx.run_id)
            for up in missing:
                ctx.outputs[up] = of_run.get(up, [])
        return {up: ctx.outputs[up] for up in spec.needs}

    def _set_aside(self, ctx: RunCtx, name: str, out_dir: Path, ckpt_dir: Path, input_hash: str) -> tuple[str, ...]:
        """Before a later attempt of task ``name``: what the last attempt left that the new one must not take as
        its own moves into that attempt's folder (``attempts/<task>.<n>/outputs``, ``.../checkpoints``), kept
        for reading: a rename in the run's folder, no copy.

        - **Outputs**, always: a partial file of a crashed attempt passed for the output of the next attempt that
          wrote nothing (a "skip if it exists" script), and was cached; a rerun by ``edgeorch retry`` that wrote
          nothing had the succeeded attempt's file recorded as its own; and a rerun that rewrote a succeeded
          attempt's file in place changed it under the runs whose cache hits hard-linked it (their folders
          showed the new model beside the old data). A succeeded attempt's records follow its files
          (:meth:`~edgeorch.store.outputs.Outputs.follow_moved_files`: the cache hits' copies, the model versions
          and the lineage that name them), in the transaction whose commit stands for the move.
        - **Checkpoints** made from other inputs (the new attempt's input hash differs: a rerun after an
          upstream changed): a training task resumed "from epoch 5" of the old features and skipped its work.
          A retry of the same inputs resumes from them, as checkpoints are for.
        """
        last = self.store.attempts.of_run(ctx.run_id, name)
        if not last:
            return ()
        prev = last[-1]
        said: list[str] = []
        if prev["state"] == AttemptState.EXITED and prev["exit_code"] == 0 and prev["reason"] is None:
            dest = Path(prev["attempt_dir"]) / "outputs"
            done = self._set_aside_with_records(ctx.run_id, name, prev["id"], out_dir, dest,
                                                f"attempt {prev['number']}'s outputs")
            if done is not None and done[0]:
                said.append(f"attempt {prev['number']}'s outputs were moved to {dest} (the records of its "
                            f"{done[1]} file(s) follow them); this attempt writes new ones")
            elif done is not None and done[1]:
                said.append(f"attempt {prev['number']}'s files were no longer in {out_dir} (set aside before a "
                            f"restart, or removed): the records of its {done[1]} file(s) name {dest} now")
        else:
            self._move_aside(ctx, name, prev, out_dir, "outputs")
        if prev["input_hash"] != input_hash and self._move_aside(ctx, name, prev, ckpt_dir, "checkpoints"):
            how = ("by another definition of the task (its command, options or env changed)"
                   if prev["definition_hash"] != ctx.pipeline.tasks[name].definition_hash
                   else "from other inputs (an upstream's outputs changed)")
            said.append(f"attempt {prev['number']}'s checkpoints were made {how}: moved to "
                        f"{Path(prev['attempt_dir']) / 'checkpoints'}, this attempt starts without them")
        return tuple(said)

    @classmethod
    def _move_aside(cls, ctx: RunCtx, name: str, prev: dict[str, Any], folder: Path, what: str) -> bool | None:
        """``folder`` (when not empty) renamed to ``<prev attempt's folder>/<what>``: see :meth:`_move_aside_folder`."""
        return cls._move_aside_folder(ctx.run_id, name, folder, Path(prev["attempt_dir"]) / what,
                                      f"attempt {prev['number']}'s {what}")

    @staticmethod
    def _move_aside_folder(run_id: int, name: str, folder: Path, dest: Path, what: str) -> bool | None:
        """``folder`` (when not empty) renamed to ``dest`` (its parents made); ``what`` names it in the log.
        True when it moved, False when there was nothing to move, None when it could not (logged)."""
        try:
            with os.scandir(folder) as entries:
                if next(entries, None) is None:
                    return False
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.rename(folder, dest)
        except FileNotFoundError:
            return False  # nothing written (or its attempt folder is gone): nothing to set aside
        except OSError as exc:  # the task starts on what is there, as before, and the log says why
            log.warning("run %s: task %s: cannot set %s aside: %s", run_id, name, what, exc)
            return None
        log.info("run %s: task %s: %s moved to %s", run_id, name, what, dest)
        return True

    def _start_task(self, ctx: RunCtx, name: str, lease: Lease) -> None:
        spec = ctx.pipeline.tasks[name]
        tid = f"{ctx.run_id}/{name}"
        asked = self._cache_asked.pop(tid, None)
        if asked is not None and asked != self._cache_epoch.get((ctx.pipeline.name, name), 0):
            # A run of this pipeline recorded a result of this task while this one waited for its turn: it may be
            # this task's own (same inputs). Ask the cache again (its inputs stay hashed), then start or skip.
            log.info("run %s: task %s: a result of %s was recorded while it waited; asking the cache again",
                     ctx.run_id, name, name)
            self._cache_missed.discard(tid)
            self._push_ready(ctx, name)  # a miss queues it back and asks for a dispatch: its slot is offered again
            return
        snapshot = self._inputs.pop(tid, None)
        if snapshot is not None and snapshot.unplaced:
            # Its cache missed: its data versions go into the run's folder first (hashing worker), then it is
            # queued again, keeping its verified miss.
            self._inputs_hashing.add(tid)
            self._in_order(functools.partial(place_datasets, snapshot),
                           functools.partial(self._apply_inputs, ctx.run_id, name))
            return
        if spec.inputs or spec.container is not None:
            moved = changed_since(snapshot) if snapshot is not None else "(not hashed yet)"
            if moved is not None:
                # An input changed while the task waited for its turn: what it would read is not what was
                # hashed (nor what its cache key said). Hash again, check the cache again, then start.
                log.info("run %s: task %s: input %s changed since it was hashed; hashing again", ctx.run_id, name, moved)
                self._cache_missed.discard(tid)
                self._push_ready(ctx, name)
                return
        number = ctx.attempts[name] + 1
        out_dir, ckpt_dir = ctx.task_folders(name)
        values = self._placeholders(ctx, name, number, out_dir, ckpt_dir)
        upstream = self._upstream_outputs(ctx, spec)
        input_hash = _input_hash(spec, ctx.params, upstream, snapshot, self._references(ctx, spec), ctx.env)
        set_aside = self._set_aside(ctx, name, out_dir, ckpt_dir, input_hash) if number > 1 else ()
        consumed = [c.to_row() for c in (*(snapshot.items if snapshot else ()), *upstream_items(upstream))]
        self._cache_missed.discard(tid)
        # The shim creates these folders; the attempt's own folder is new (numbers never repeat in one state file).
        attempt_dir = ctx.run_dir / "attempts" / f"{name}.{number}"
        if os.path.lexists(attempt_dir):  # a restored backup: the folder of an attempt the state file never knew
            self._move_foreign_attempt(ctx, name, attempt_dir)
        argv, env, cwd, own = self._command(ctx, spec, values, upstream, attempt_dir)
        res = self.res
        assert res is not None
        env.update(self._lease_env(lease))
        cleanup: list[str] = []
        if spec.container is not None:  # before anything is recorded: a refusal fails the task, no attempt
            assert snapshot is not None
            argv, cleanup = self._container_argv(ctx, spec, values, argv, env, own, lease, snapshot, attempt_dir,
                                                 number)
            # The client (and podman's conmon) runs in the attempt folder: what it drops in its working folder (the
            # OOM marker, containers/command.py) lands there, never in the pipeline's folder.
            cwd = str(attempt_dir)
        log_path = attempt_dir / "output.log"
        recorded = holds_anything(lease)
        note = None
        if recorded:
            image = snapshot.image if snapshot is not None and spec.container is not None else None
            memory_note = res.memory_note(lease, container=image.runtime if image is not None else None)
            note = _describe_lease(lease) + (f"; {memory_note}" if memory_note else "")
        # The lease (and its event) go into the same transaction as the attempt: nothing held without a record;
        # so does what it consumed (lineage), when it consumes anything.
        new = NewAttempt(
            task_id=ctx.task_ids[name], run_id=ctx.run_id, task=name, number=number, log_path=str(log_path),
            attempt_dir=str(attempt_dir), definition_hash=spec.definition_hash, input_hash=input_hash,
        )
        if consumed:
            with self.store.transaction(durable=False):  # as the attempt's own record (see Attempts.start)
                attempt_id = self.store.attempts.start(new, lease.to_dict() if recorded else None, note)
                self.store.lineage.record_consumed(ctx.run_id, name, attempt_id, consumed)
        else:
            attempt_id = self.store.attempts.start(new, lease.to_dict() if recorded else None, note)
        cgroup, cgroup_failed = res.memory_cgroup(attempt_id, lease)
        if cgroup_failed:
            note = f"{note}; {cgroup_failed}"
            self.store.events.add("memory_not_enforced", f"{name}: attempt {number}: {cgroup_failed}",
                                  run_id=ctx.run_id, task=name)
        now = self.clock()
        res.grant(attempt_id, ctx.run_id, name, lease, ctx.pipeline.name,
                  now + res.durations.predict(f"{ctx.pipeline.name}/{name}"), now, cgroup)
        if lease.cpus and res.cluster is None:
            # The running tasks that asked for no cores leave this lease's cores before its task is asked to
            # start: moved after the dispatch pass (a loaded machine delays the rest of it), they shared the cores
            # with the task for a moment, the task having started first.
            self._rebalance_shared(res)
        ctx.attempts[name] = number
        ctx.states[name] = TaskState.RUNNING
        la = LiveAttempt(attempt_id, ctx.run_id, name, number, attempt_dir, started_at=now, leased=recorded,
                         inputs=snapshot if snapshot is not None and snapshot.stamps else None)
        self.live[attempt_id] = la
        assert self.executor is not None
        self.executor.spawn(SpawnRequest(
            attempt_id=attempt_id, argv=argv, env=env, cwd=cwd, log_path=str(log_path), attempt_dir=str(attempt_dir),
            log_max_bytes=self.config.engine.log_max_bytes, mkdirs=[str(out_dir), str(ckpt_dir)],
            cpus=res.shared_affinity(lease), cgroup=cgroup, kill_grace=self.config.engine.kill_grace,
            resources=request_dict(ctx.requests[name]), cleanup=cleanup,
            # A container's client forwards the stop's SIGTERM to the container (docs/containers.md, "Stops").
            forwards_stop=spec.container is not None,
        ))
        # The timeout is armed when the attempt starts (_on_started): it counts the task's own run.
        if recorded and lease.gpus:
            self._arm_watch()
        self._announce(TaskStarted(self.clock(), ctx.run_id, name, number, lease.to_dict() if recorded else None,
                                   note if recorded else None, set_aside))

    def _lease_env(self, lease: Lease) -> dict[str, str]:
        """Thread counts and visible GPUs for an attempt.

        With no GPU backend, a task without a GPU lease keeps the inherited CUDA
        variables (there is nothing edgeorch hands out to protect, and hiding
        devices edgeorch cannot see would break undeclared GPU users).
        """
        assert self.res is not None
        if not lease.cpus and not lease.gpus and self.res.backend is None:
            return {}
        env = lease_env(lease, self.res.index_of)
        if not lease.gpus and self.res.backend is None:
            env.pop("CUDA_VISIBLE_DEVICES", None)
            env.pop("NVIDIA_VISIBLE_DEVICES", None)
        return env

    def _command(self, ctx: RunCtx, spec: TaskSpec, values: dict[str, Any], upstream: dict[str, list[dict[str, Any]]],
                 attempt_dir: Path) -> tuple[list[str], dict[str, str], str, set[str]]:
        """argv, environment and working directory of an attempt (placeholders substituted), and the names of the
        task's own variables (what edgeorch, the run and ``env`` set over the daemon's environment)."""
        cwd = self._workdir(ctx, spec, values)
        # The task's own variables; the daemon's environment goes under them at the end (without its own service
        # plumbing: a task must not speak sd_notify for the daemon, nor inherit its socket-activation fds).
        env = dict(self._run_env(ctx))
        env.update({
            "EDGEORCH_TASK": spec.name, "EDGEORCH_ATTEMPT": str(values["attempt"]),
            "EDGEORCH_OUTPUT_DIR": values["output_dir"], "EDGEORCH_CHECKPOINT_DIR": values["checkpoint_dir"],
            "EDGEORCH_RESULT_FILE": str(attempt_dir / "result.json"),
            "EDGEORCH_UPSTREAM_OUTPUTS": json.dumps({u: [a["path"] for a in arts] for u, arts in upstream.items()}),
        })
        for up, arts in upstream.items():
            env[f"EDGEORCH_UPSTREAM_{env_name(up)}"] = os.pathsep.join(a["path"] for a in arts)
        python_path = [str(ctx.pipeline_dir), PACKAGE_ROOT]
        if spec.call or spec.kind:
            base = self._base_env.get("PYTHONPATH")
            env["PYTHONPATH"] = os.pathsep.join(python_path + ([base] if base else []))
        env.update(ctx.env)  # the run's own variables (e.g. the file a drop folder delivered)
        for k, v in spec.env.items():
            env[k] = substitute(v, values)
        if spec.call or spec.kind:
            # The callrunner must be this edgeorch whatever the pipeline folder or workdir holds (a folder
            # named `edgeorch` there would shadow it): it starts with this package alone on its path (`-P`:
            # not even the workdir) and puts the task's path back in front itself (callrunner.main), so the
            # task's code and its children see the PYTHONPATH they always saw.
            env["EDGEORCH_TASK_PYTHONPATH"] = env.get("PYTHONPATH", "")
            env["PYTHONPATH"] = PACKAGE_ROOT
            argv = module_argv("edgeorch.engine.callrunner")
        if spec.kind:
            env["EDGEORCH_KIND"] = spec.kind
            env["EDGEORCH_KIND_OPTIONS"] = json.dumps(substitute_deep(spec.options, values))
        elif spec.call:
            env["EDGEORCH_CALL"] = spec.call
        elif isinstance(spec.command, str):
            argv = ["/bin/sh", "-c", substitute(spec.command, _shell_quoted(values))]
        else:
            assert spec.command is not None
            argv = [substitute(a, values) for a in spec.command]
        return argv, {**self._base_env, **env}, str(cwd), set(env)

    def _run_env(self, ctx: RunCtx) -> dict[str, str]:
        """The variables edgeorch gives every task of ``ctx``'s run alike (made at its first start, then kept:
        the run's params never change): its id, pipeline, folder and params, the state file, numba's cache."""
        if ctx.task_env is None:
            ctx.task_env = {
                "EDGEORCH_RUN_ID": str(ctx.run_id), "EDGEORCH_PIPELINE": ctx.pipeline.name,
                "EDGEORCH_RUN_DIR": str(ctx.run_dir),
                # Read-only, for a drift task's reference = "baseline:NAME" / "model:NAME" (docs/monitoring.md).
                "EDGEORCH_STATE_FILE": str(self.config.state_file),
                "EDGEORCH_PARAMS": json.dumps(ctx.params, sort_keys=True),
                # An operator's NUMBA_CACHE_DIR wins (the unit sets one); else the state dir's
                # (never numba's fallback into the package: edgeorch/kernels/cache.py).
                "NUMBA_CACHE_DIR": self._numba_cache(),
            } | {f"EDGEORCH_PARAM_{env_name(k)}": "true" if v is True else "false" if v is False else str(v)
                 for k, v in ctx.params.items()}
        return ctx.task_env

    def _numba_cache(self) -> str:
        """The numba cache folder of every task: chosen once per engine (it creates and checks folders)."""
        if self._numba_dir is None:
            self._numba_dir = str(numba_cache_dir(self.config.numba_cache_dir))
        return self._numba_dir

    def _container_argv(self, ctx: RunCtx, spec: TaskSpec, values: dict[str, Any], argv: list[str],
                        env: dict[str, str], own: set[str], lease: Lease, snapshot: InputsSnapshot,
                        attempt_dir: Path, number: int) -> tuple[list[str], list[str]]:
        """The ``run`` command line of a container attempt (the task's ``argv`` inside) and its cleanup command.

        ``env`` is the client's environment: GPUs are named by UUID inside
        (indices differ in a container that sees only its own). Raises
        :class:`EdgeorchError` when the CDI spec has no device for a leased
        GPU (the task fails before any attempt).
        """
        # Imported here (container tasks only): not on a plain run's start-up.
        from ..containers import command as container_command
        from ..containers.image import CDI_HINT
        from ..pipelines.inputs import glob_base

        assert spec.container is not None and snapshot.image is not None
        image = snapshot.image
        runtime = image.runtime
        where = f"tasks.{spec.name}.container"
        if lease.gpus:
            missing = [u for u in lease.gpus if image.gpu_names is not None and u not in image.gpu_names]
            if missing:
                raise EdgeorchError(f"{where}: the CDI specs name no {', '.join(f'nvidia.com/gpu={u}' for u in missing)}"
                                    f" (devices must be named by UUID); {CDI_HINT}")
            env["CUDA_VISIBLE_DEVICES"] = env["NVIDIA_VISIBLE_DEVICES"] = ",".join(lease.gpus)
            env.pop("CUDA_DEVICE_ORDER", None)
        c = container_command.substitute_container(spec.container, values)
        pipeline_dir = str(ctx.pipeline_dir)
        read = [str(Path(a["path"]).parent) for arts in self._upstream_outputs(ctx, spec).values() for a in arts]
        read += [item.path if item.kind != "glob" else glob_base(item.path) or "/" for item in snapshot.items
                 if item.kind in ("file", "folder", "glob")]
        asked = [(m.source if os.path.isabs(m.source) else os.path.join(pipeline_dir, m.source), m.target, m.read_only)
                 for m in c.mounts]
        name = container_command.container_name(ctx.run_id, spec.name, number, str(attempt_dir))
        res = self.res
        assert res is not None
        cpus = res.shared_affinity(lease)
        names = container_command.env_names(sorted(own), container_command.lease_names(env))
        given = tuple((n, env[n]) for n in names if container_command.client_reads(n))
        for n, _ in given:  # the client keeps the daemon's own value (client_reads); the container gets the task's
            if n in self._base_env:
                env[n] = self._base_env[n]
            else:
                env.pop(n, None)
        plan = container_command.AttemptPlan(
            runtime_command=self.config.containers.command(runtime), runtime=runtime, spec=c,
            image_ref=image.run_ref, name=name, cidfile=str(attempt_dir / "container.id"), command=tuple(argv),
            env_names=tuple(n for n in names if not container_command.client_reads(n)), env_values=given,
            mounts=container_command.mounts_for(output_dir=values["output_dir"], checkpoint_dir=values["checkpoint_dir"],
                                                run_dir=str(ctx.run_dir), pipeline_dir=pipeline_dir, read=read,
                                                asked=asked),
            workdir=c.workdir or pipeline_dir, cpus=tuple(cpus) if cpus else None, memory=lease.memory, gpus=lease.gpus,
            labels=container_command.labels_of(ctx.run_id, spec.name, number, ctx.pipeline.name,
                                               str(self.config.state_dir)),
        )
        return (container_command.run_argv(plan),
                container_command.cleanup_for(runtime, self.config.containers.command(runtime), name))

    @staticmethod
    def _workdir(ctx: RunCtx, spec: TaskSpec, values: dict[str, Any]) -> Path:
        """An attempt's working directory: ``workdir`` (substituted; relative to the pipeline's folder), else that folder."""
        if not spec.workdir:
            return ctx.pipeline_dir
        cwd = Path(substitute(spec.workdir, values))
        return cwd if cwd.is_absolute() else ctx.pipeline_dir / cwd

    def _references(self, ctx: RunCtx, spec: TaskSpec) -> dict[str, str] | None:
        """A kind task's options that are ``baseline:``/``model:`` references (after the run's params), each
        with what it resolves to now (``monitor.baselines.reference_version``); None when it has none."""
        if spec.kind is None or not spec.options:
            return None
        from ..monitor.baselines import reference_version

        out: dict[str, str] = {}
        for key, raw in spec.options.items():
            if not isinstance(raw, str) or (":" not in raw and "{" not in raw):
                continue
            try:
                text = substitute(raw, ctx.params)
            except (KeyError, IndexError, ValueError):  # a built-in placeholder ({run_dir}): not a reference
                continue
            version = reference_version(self.store, text)
            if version is not None:
                out[key] = version
        return out or None

    def _check_cache(self, ctx: RunCtx, name: str, spec: TaskSpec) -> bool:
        """Look for a recorded result of the same inputs; True when one is being verified (off the loop).

        The recorded outputs are re-hashed in the hashing worker (a cached
        model can be gigabytes); :meth:`_apply_cache_check` then skips the
        task or queues it for a real start, in order with other outcomes.
        """
        input_hash = _input_hash(spec, ctx.params, self._upstream_outputs(ctx, spec),
                                 self._inputs.get(f"{ctx.run_id}/{name}"), self._references(ctx, spec), ctx.env)
        hit = self.store.outputs.find_cache_hit(ctx.pipeline.name, name, spec.definition_hash, input_hash)
        if hit is None:
            return False
        arts = self.store.outputs.artifacts_of_attempt(hit["id"])
        # The names this run's outputs have (they take placeholders: `m-{run_id}.txt` differs in every run): the
        # hit must have recorded exactly those, or a reader of `{run_dir}/outputs/<task>/<name>` finds nothing.
        values = self._placeholders(ctx, name, 1, *ctx.task_folders(name))
        if {a["name"] for a in arts} != {substitute(o, values) for o in spec.outputs}:
            return False
        tid = f"{ctx.run_id}/{name}"
        self._cache_checks.add(tid)
        self._in_order(functools.partial(intact, arts),
                       functools.partial(self._apply_cache_check, ctx.run_id, name, input_hash, hit["id"], arts),
                       inline=not arts)
        return True

    def _apply_cache_check(self, run_id: int, name: str, input_hash: str, hit_id: int,
                           arts: list[dict[str, Any]], fut: concurrent.futures.Future[bool]) -> None:
        tid = f"{run_id}/{name}"
        self._cache_checks.discard(tid)
        ctx = self.runs.get(run_id)
        if ctx is None or ctx.cancel_requested or ctx.states.get(name) != TaskState.READY:
            return  # cancelled or finished meanwhile
        try:
            ok = fut.result()
        except Exception:  # noqa: BLE001 - an unreadable recorded output is simply not a usable hit
            ok = False
        # The source's run may have been removed (edgeorch gc) while its files were verified: then
        # the hit would record artifacts of a deleted attempt, whose files are going. A plain miss.
        ok = ok and self.store.attempts.exists(hit_id)
        if not ok:
            self._cache_missed.add(tid)
            self._push_ready(ctx, name)
            return
        out_dir = ctx.task_folders(name)[0]
        problem = link_cached_outputs(arts, out_dir)  # where `{run_dir}/outputs/<task>` readers look
        if problem is not None:  # the hit stands (its records name the files); path readers will not find them
            log.warning("run %s: task %s: cache hit: its outputs are not linked into %s: %s (tasks that read "
                        "them there fail; $EDGEORCH_UPSTREAM_%s names the files)", run_id, name, out_dir, problem,
                        env_name(name))
        # The hit's records name its links, where linked: the run's own files, which a retry of the earlier run
        # never moves or rewrites (named by the earlier run's path, a task of this run read the retry's new file
        # while its lineage said the old one).
        arts = own_links(arts, out_dir)
        decided = settlement.settle_cached(self._view(ctx), name)
        snapshot = self._inputs.pop(tid, None)
        consumed = [c.to_row() for c in (*(snapshot.items if snapshot else ()),
                                         *upstream_items(self._upstream_outputs(ctx, ctx.pipeline.tasks[name])))]
        ctx.outputs.pop(name, None)
        with self.store.transaction():  # skipped (mark_cached writes the row), dependents ready, maybe the run's end
            said = self.store.outputs.mark_cached(ctx.task_ids[name], ctx.run_id, name, input_hash, hit_id, arts)
            if consumed:  # what the hit stands for: the same inputs its key was computed from
                self.store.lineage.record_consumed(ctx.run_id, name, None, consumed)
            self._record(ctx, decided, skip_task=True)
        self._apply(ctx, decided, lambda: self._announce(TaskCached(self.clock(), ctx.run_id, name, hit_id, said)))

    def _fail_without_attempt(self, ctx: RunCtx, name: str, reason: str) -> None:
        """``name`` fails before any attempt (cannot be scheduled or prepared): no retry; the cascade follows."""
        self._settle(ctx, settlement.settle_failure(self._view(ctx), name, reason),
                     lambda: self._announce(TaskFailed(self.clock(), ctx.run_id, name, reason)))

    # -- timeouts and stopping ------------------------------------------------------------

    def _timeout_of(self, la: LiveAttempt) -> float | None:
        """The attempt's task's timeout in seconds (its own, else the engine's default); None: none."""
        ctx = self.runs.get(la.run_id)
        if ctx is None:
            return None
        return ctx.pipeline.tasks[la.task].timeout or self.config.engine.default_timeout or None

    def _timed_out_while_away(self, la: LiveAttempt, row: dict[str, Any], end: ExitInfo) -> bool:
        """Whether an attempt that ended while no engine of this state held it was stopped by its timeout: ended by
        SIGTERM or SIGKILL no earlier than its timeout after its recorded start. The engine that stopped it knew
        why only in memory: an `edgeorch run` without a daemon that adopted it past its timeout stopped it and
        exited before its end, or a daemon killed after the signal; the next one said "killed by signal SIGTERM"
        (who sent it, at 3 a.m.?). Its recorded start is no later than the start the timeout counts from, so a
        signal before the deadline is never taken for it; one after it, from anyone, ended a task that had
        overrun its time."""
        timeout = self._timeout_of(la)
        started = row.get("started_at")
        return (timeout is not None and started is not None and end.finished_at is not None and not end.lost
                and end.signal in (signal.SIGTERM, signal.SIGKILL) and end.finished_at - started >= timeout)

    def _arm_timeout(self, la: LiveAttempt, elapsed: float = 0.0) -> None:
        """Stop the attempt when its task's timeout is up; ``elapsed``: seconds it already ran (an adopted one: a
        daemon that restarts, even in a loop, never gives a hung task a new timeout)."""
        timeout = self._timeout_of(la)
        if timeout and self.loop is not None:
            la.timer = self.loop.call_later(max(0.0, timeout - elapsed), self._stop_attempt, la, "timeout")

    @_fail_stop
    def _move_foreign_attempt(self, ctx: RunCtx, name: str, attempt_dir: Path) -> None:
        """Move aside the folder of an attempt this state file never recorded under that number (a backup restored in
        place: the lost timeline's attempt left it). Its ``exit.json`` made the new attempt "abandoned" at once and
        `show` listed the old run's log as the new attempt's. Logged, and said as an event of the run."""
        aside = _unused(attempt_dir.with_name(f"{attempt_dir.name}.unrecorded"))
        try:
            os.rename(attempt_dir, aside)
        except OSError as exc:
            log.error("run %s: %s: cannot move aside %s, an attempt folder the state file does not know: %s",
                      ctx.run_id, name, attempt_dir, exc.strerror or exc)
            return
        said = (f"{name}: the folder of attempt {attempt_dir.name.rsplit('.', 1)[-1]} was there already, not known to "
                f"the state file (a backup restored?): moved to {aside}")
        log.warning("run %s: %s", ctx.run_id, said)
        self.store.events.add("attempt_folder_moved", said, run_id=ctx.run_id, task=name)

    def _stop_attempt(self, la: LiveAttempt, reason: str) -> None:
        """Stop every process of the attempt: SIGTERM now, SIGKILL after ``kill_grace`` (the executor's contract)."""
        if la.attempt_id not in self.live or la.exited:
            return
        assert self.executor is not None
        if reason == "timeout" and la.stop_reason is None and self.executor.task_ended(la.attempt_id):
            # The task ended in time; its shim is stopping what it left running (a helper that ignores SIGTERM
            # takes kill_grace), and the task's own exit decides: that clean-up made a task that had exited 0
            # "timed out" (failed, retried).
            log.info("run %s: %s attempt %s: its timeout passed while the processes its task left running were "
                     "being stopped; the task's own exit decides", la.run_id, la.task, la.number)
            return
        if la.stop_reason is None:
            la.stop_reason = reason
        self.executor.stop(la.attempt_id)
        if la.kill_timer is None and self.loop is not None:
            # The shim SIGKILLs at the end of the grace period itself; this is the net for a shim that cannot.
            la.kill_timer = self.loop.call_later(self.config.engine.kill_grace + KILL_NET_S, self._kill_hard, la)

    @_fail_stop
    def _kill_hard(self, la: LiveAttempt) -> None:
        la.kill_timer = None
        if la.attempt_id in self.live and not la.exited:
            assert self.executor is not None
            self.executor.kill(la.attempt_id)
            if self.loop is not None:  # again, until the executor reports the end
                la.kill_timer = self.loop.call_later(KILL_NET_S, self._kill_hard, la)

    @_fail_stop
    def _on_executor_health(self, message: str) -> None:
        """The executor repaired itself (e.g. restarted its launcher): record and announce it."""
        log.warning("%s", message)
        self._announce(ExecutorHealth(self.clock(), message))

    # -- executor callbacks ------------------------------------------------------------------

    @_fail_stop
    def _on_started(self, attempt_id: int, info: StartedInfo) -> None:
        la = self.live.get(attempt_id)
        if la is None:
            return
        la.pgid = info.pgid
        self._running_marks[attempt_id] = info
        if self._pin_at_start:
            cores = self._pin_at_start.pop(attempt_id, None)
            if cores is not None:  # its shared cores were leased while its shim started it (_rebalance_shared)
                from ..resources.cpus import pin_processes

                assert self.executor is not None
                pin_processes(self.executor.pids([attempt_id]).get(attempt_id, [info.pid]), cores)
        if self._marks_timer is None and self.loop is not None:
            self._marks_timer = self.loop.call_later(RUNNING_MARK_DELAY_S, self._write_running_marks)
        if la.timer is None and la.stop_reason is None:
            # The timeout counts the task's own run, from here: waiting for a Ray node to place it
            # (or for a busy launcher) is not the task's time.
            self._arm_timeout(la)

    @_fail_stop
    def _write_running_marks(self) -> None:
        """Write the running marks waiting (:data:`RUNNING_MARK_DELAY_S`), all in one relaxed transaction."""
        self._marks_timer = None
        marks, self._running_marks = self._running_marks, {}
        if marks:
            with self.store.transaction(durable=False):  # as each mark alone was (see Attempts.set_running)
                for attempt_id, info in marks.items():
                    self._record_running(attempt_id, info)

    def _record_running(self, attempt_id: int, info: StartedInfo) -> None:
        self.store.attempts.set_running(attempt_id, pid=info.pid, pid_start_time=info.pid_start_time or 0, pgid=info.pgid,
                                        shim_pid=info.shim_pid, shim_start_time=info.shim_start_time or 0)

    @_fail_stop
    def _on_exited(self, attempt_id: int, info: ExitInfo) -> None:
        """The executor reports an attempt's end: hash its files in a worker, then settle it in order.

        Hashing outputs and checkpoints (gigabytes, for a model) must not
        freeze the loop, so it runs in :attr:`_hasher`; the outcomes are
        applied strictly in the order the ends were reported
        (:meth:`_drain_settlements`), each after its own hashes.
        """
        if self._pin_at_start:
            self._pin_at_start.pop(attempt_id, None)
        la = self.live.get(attempt_id)
        if la is None or la.exited:
            return
        la.exited = True  # nothing left to stop; the stop reason is final from here on
        for t in (la.timer, la.kill_timer):
            if t:
                t.cancel()
        ctx = self.runs[la.run_id]
        spec = ctx.pipeline.tasks[la.task]
        if not info.lost:  # an OOM kill is reported as one (resources/oom.py), read before the cgroup goes
            info = self._explain_exit(la, spec, info)
            if spec.container is None and not spec.cache:
                self._free_slot(la)
        exit_ok = (not info.lost and info.signal is None and info.exit_code == 0 and la.stop_reason is None)
        if exit_ok and la.inputs is not None:
            # Hashed before it started, stat'ed again at its start: one written while it ran may have been read
            # in either version, so its outputs are recorded but never reused by the cache (a result built
            # from v2 was keyed as v1, and served for v1 later). stat calls only: cheap on the loop.
            la.inputs_moved = changed_since(la.inputs)
        elif exit_ok and la.started_at is None and spec.inputs:
            # Adopted after a restart: its inputs' stamps died with the engine that started it, and one changed
            # while the daemon was down was served later as the old content's result. Never reused either. A
            # container's image is no such input: it runs by the digest its key holds (`run sha256:...`), which
            # cannot change under it (an adopted container task without inputs was never reused: hours of training).
            la.inputs_moved = INPUTS_UNWATCHED
        out_dir, ckpt_dir = ctx.task_folders(la.task)
        names: list[str] = []
        dataset = spec.dataset if exit_ok else None
        model = spec.model if exit_ok else None
        workdir = None
        written: list[str] = []  # a kind task's save/report files in its output folder (bare names)
        kind_files = exit_ok and spec.kind and any(isinstance(spec.options.get(k), str) for k in KIND_FILE_OPTIONS)
        promised = bool(exit_ok and (spec.outputs or dataset is not None or model is not None))
        # Output names take the same placeholders as the command (params and built-ins): read once for both.
        values = self._placeholders(ctx, la.task, la.number, out_dir, ckpt_dir) if kind_files or promised else {}
        if kind_files:
            written = [f for k in KIND_FILE_OPTIONS if isinstance(spec.options.get(k), str)
                       and (f := substitute(spec.options[k], values)) and os.path.basename(f) == f]
        if promised:
            names = [substitute(o, values) for o in spec.outputs]
            workdir = self._workdir(ctx, spec, values) if names else None
        # Nothing to hash and no checkpoint (the usual short task): its files are known without a thread hop
        # or a walk of its (empty) checkpoint folder.
        nothing = not names and not written and dataset is None and model is None and not has_entries(ckpt_dir)
        job = _no_files if nothing else functools.partial(hash_outcome, out_dir, names if exit_ok else None,
                                                             ckpt_dir, workdir)
        if written:
            declared = job
            job = lambda: with_written(declared(), out_dir, written)  # noqa: E731
        if dataset is not None:  # the declared dataset output is snapshotted by the same worker, after the hashes
            hashed, rel = job, substitute(dataset.path, values) if dataset.path else ""
            job = lambda: with_dataset(hashed(), out_dir, rel, dataset.name, self.config.state_dir,  # noqa: E731
                                       dataset.compress)
        if model is not None:  # the declared model output is described by the same worker, after the hashes
            from ..models.register import with_model

            job = functools.partial(with_model, job, out_dir, model, values)

        def apply(fut: concurrent.futures.Future[FileOutcome]) -> None:
            try:
                files = fut.result()
            except Exception as exc:  # noqa: BLE001 - a file that cannot be read fails the attempt, not the engine
                files = FileOutcome([], [], f"cannot record the task's files: {exc}")
            self._apply_exit(attempt_id, info, files)

        self._in_order(job, apply, inline=nothing)

    def _free_slot(self, la: LiveAttempt) -> None:
        """An attempt whose exit record says nothing of it runs any more gives back its slot and lease now.

        So the next ready task starts while this outcome is hashed and committed (the durable commit is the
        longest step of a short task's end: a slot left idle meanwhile was a tenth of a short task's wall time).
        Its dependents still wait for the commit; the outcome is still announced only once durable. The lease's
        row is released with the outcome, as before: a restart in between holds both leases again until this
        outcome is settled (a moment of double counting, never a double grant of what runs). Not for a lost
        attempt (its group may still be dying from the SIGKILL) nor a container's (its runtime cleans up after),
        nor a ``cache = true`` task's: a run of the same pipeline waiting for the slot would start its own copy of
        the task before this result is recorded, and run what it could have reused (:meth:`_start_task`).
        """
        assert self.res is not None
        held = self.res.release(la.attempt_id)
        self._dispatch()  # now, before this outcome is even queued: the next start goes first
        if held is not None and held.running.lease.cpus and self.res.cluster is None:
            self._rebalance_shared(self.res)  # its cores are free: the shared tasks take them back

    def _explain_exit(self, la: LiveAttempt, spec: TaskSpec, info: ExitInfo) -> ExitInfo:
        """``info`` with a container's exit read as a host task's and an OOM kill's reason (docs/containers.md).

        The OOM record: a container's marker in the attempt folder, or the
        ``oom_kill`` count of a host task's own memory cgroup (one stat or read).
        """
        assert self.res is not None
        held = self.res.held.get(la.attempt_id)
        memory = held.running.lease.memory if held is not None else 0
        stopped = la.stop_reason is not None
        if spec.container is not None:
            # Imported here (container tasks only): not on a plain run's start-up.
            from ..containers import command as container_command

            runtime_code = info.signal is None and info.exit_code in (125, 126, 127)
            code, sig, why = container_command.exit_as_host(
                info.exit_code, info.signal, memory=memory, oom=container_command.oom_recorded(la.attempt_dir),
                stopped=stopped, last_line=last_log_line(la.attempt_dir / "output.log") if runtime_code else None,
                created=(la.attempt_dir / "container.id").exists() if runtime_code else None)
            return dataclasses.replace(info, exit_code=code, signal=sig, error=info.error or why)
        if held is None or not held.cgroup or (info.signal is None and info.exit_code == 0):
            return info
        kills = oom_kills(Path(held.cgroup))
        why = oom_reason(info.exit_code, info.signal, memory=memory, killed=None if kills is None else kills > 0,
                         stopped=stopped)
        return dataclasses.replace(info, error=info.error or why) if why else info

    def _in_order(self, job: Callable[[], Any], apply: Callable[[Any], None], *, inline: bool = False) -> None:
        """Run ``job`` (hashing) in :attr:`_hasher`, then ``apply(future)`` on the loop, in the order of the calls.

        Every outcome that depends on hashing files goes through here, so a
        large file never stalls the loop and outcomes are never reordered
        (an attempt's end is applied before a later one's, a cache check
        before what follows it). ``inline``: ``job`` is cheap, run it now
        (still applied in order, after what is queued before it).
        """
        if self._closed:
            return  # the exit record stays on disk for the next engine (see close)
        fut: concurrent.futures.Future[Any]
        if inline:
            fut = concurrent.futures.Future()
            try:
                fut.set_result(job())
            except Exception as exc:  # noqa: BLE001 - handed to apply, as from the worker
                fut.set_exception(exc)
        else:
            fut = self._hasher.submit(job)
        self._settling.append((fut, apply))
        loop = self.loop
        assert loop is not None
        if inline:  # on the loop already: no wake-up through the self-pipe (call_soon_threadsafe) per task
            loop.call_soon(self._drain_settlements)
            return
        fut.add_done_callback(lambda _f: self._post_drain(loop))

    def _post_drain(self, loop: asyncio.AbstractEventLoop) -> None:
        """Ask the loop to drain the queue (called from the hashing worker when a job is done)."""
        try:
            loop.call_soon_threadsafe(self._drain_settlements)
        except RuntimeError:
            pass  # the loop is closed: the engine is gone, the next one collects the outcome

    @_fail_stop
    def _drain_settlements(self) -> None:
        """Apply the outcomes at the head of the queue whose hashing is done (order of :meth:`_in_order` calls).

        After :meth:`close` nothing is applied (a worker may still finish a hash and post here).
        """
        while not self._closed and self._settling and self._settling[0][0].done():
            fut, apply = self._settling.popleft()
            apply(fut)

    def _apply_exit(self, attempt_id: int, info: ExitInfo, files: "FileOutcome") -> None:
        """Record an attempt's outcome and what follows it (one transaction), then apply both to memory."""
        la = self.live.get(attempt_id)
        if la is None:
            if files.dataset is not None:
                files.dataset.release()
            if not self.live and self._all_stopped is not None:
                self._all_stopped.set()
            return
        assert self.res is not None
        ctx = self.runs[la.run_id]
        spec = ctx.pipeline.tasks[la.task]
        # Only built-in kinds return a check-result document; a call's return value is free-form (not read).
        check = (read_json(la.attempt_dir / "result.json") or None) if spec.kind else None
        verdict = check.get("verdict") if check else None
        artifacts: list[dict[str, Any]] = []
        reason: str | None = None
        free = info.uncharged and settlement.relaunch_is_free(ctx.uncharged.get(la.task, 0))
        if free:
            astate, reason = AttemptState.ABANDONED, f"{info.error}; relaunched (not counted as a retry)"
        elif info.uncharged:
            astate, reason = AttemptState.ABANDONED, (
                f"{info.error}; counted as a retry: edgeorch lost {settlement.FREE_RELAUNCHES} attempts of this "
                "task already (see the log and `edgeorch events` for the launcher's health)")
        elif info.lost:
            astate, reason = AttemptState.ABANDONED, info.error
        elif la.stop_reason == "gpu_memory":
            astate = AttemptState.SIGNALLED if info.signal is not None else AttemptState.EXITED
            reason = f"stopped by the GPU watcher: {la.stop_detail}"
        elif la.stop_reason == "timeout":
            astate, reason = AttemptState.TIMED_OUT, f"timed out after {spec.timeout or self.config.engine.default_timeout:g}s"
        elif info.signal is not None:
            astate, reason = AttemptState.SIGNALLED, info.error or f"killed by signal {_signal_name(info.signal)}"
        else:
            astate = AttemptState.EXITED
            if info.exit_code != 0:
                # The log's last line says why, most of the time (a traceback's last line, a tool's error):
                # where the person reading `edgeorch show`, a quarantine reason or a retry line looks first.
                said = last_log_line(la.attempt_dir / "output.log")  # a capped log keeps its end (the shim)
                reason = info.error or f"exited with code {info.exit_code}" + (f": {said}" if said else "")
        was = AttemptState.STARTING if la.pgid is None else AttemptState.RUNNING
        if not AttemptState.can_transition(was, astate):  # pragma: no cover - a bug in the lines above
            raise AssertionError(f"attempt {attempt_id}: {was} -> {astate} is not an attempt transition")
        ok = astate == AttemptState.EXITED and info.exit_code == 0 and la.stop_reason is None
        ran_ok = ok  # for the duration model: the process did its work, whatever its files
        if ok and files.refused:
            ok, reason = False, files.refused
        elif ok:
            artifacts = files.artifacts
        checkpoints = files.checkpoints
        # A DP release is charged to its dataset's privacy budget, or refused and withdrawn (engine/privacy.py).
        claim = privacy.claim_of(check) if ok and spec.kind else None
        budget_refused = privacy.decide(self.store, claim) if claim is not None else None
        if budget_refused is not None:
            privacy.withdraw(check, la.attempt_dir)
            ok, reason, check, verdict, claim = False, budget_refused, None, None, None
        rows = [{"kind": spec.kind, **r} for r in (check or {}).get("rows", []) if isinstance(r, dict)] \
            if isinstance((check or {}).get("rows"), list) else []
        violation = (not ok and verdict == "violation" and info.exit_code == EXIT_VIOLATION)
        if violation:
            reason = f"violation: {check.get('message', '')}" if check else "violation"
        end = settlement.AttemptEnd(la.task, la.number, ok, reason, uncharged=free,
                                    stopped_for_cancel=la.stop_reason in ("cancelled", "shutdown"),
                                    stop_why=SHUTDOWN_STOP if la.stop_reason == "shutdown" else None,
                                    retryable=not violation and budget_refused is None)
        decided = settlement.settle_attempt(self._view(ctx), end, settlement.RetryPolicy.of(spec),
                                            now=self.clock(), rand=self.rand())
        change = decided.task
        assert change is not None
        snap, version, registered = files.dataset, None, None
        ctx.outputs.pop(la.task, None)  # its artifacts are about to change (an outcome records them)
        # An outcome nothing waits for is committed without a sync (OUTCOME_SYNC_DELAY_S); any other is durable
        # at once. Not before start() (no loop to sync later) and not for a failure (retries, cascades).
        later = (self.loop is not None and ok and decided.run_finished is None and files.model is None
                 and snap is None and claim is None and all(c.state != TaskState.READY for c in decided.changes))
        try:
            with self.store.transaction(durable=not later):
                started = self._running_marks.pop(attempt_id, None)
                if started is not None:  # it ended before its running mark was written: written with the outcome
                    self._record_running(attempt_id, started)
                self.store.attempts.finish(
                    attempt_id, state=astate, exit_code=info.exit_code, signal=info.signal, reason=reason,
                    task_change=(ctx.task_ids[la.task], change.state, change.reason, change.retry_at),
                    artifacts=artifacts, checkpoints=checkpoints, results=rows, verdict=verdict,
                    finished_at=info.finished_at, charged=not free, leased=la.leased,
                    inputs_moved=la.inputs_moved if ok else None,
                )
                if ok and la.inputs_moved is not None:
                    said = (f"{la.task}: attempt {la.number}: {inputs_moved_text(la.inputs_moved)}: its outputs are "
                            "kept, never reused by the cache")
                    log.warning("run %s: %s", ctx.run_id, said)  # (an unwatched one read "input (not watched...")
                    self.store.events.add("input_changed", said, run_id=ctx.run_id, task=la.task)
                if ok and claim is not None:  # the release's spend, with the rows it recorded
                    privacy.charge(self.store, claim, run_id=ctx.run_id, task=la.task)
                if ok and snap is not None and spec.dataset is not None:  # the output's version, with the outcome
                    version = self.store.datasets.record_version(spec.dataset.name, snap, source="task",
                                                                 source_path=snap.source, run_id=ctx.run_id,
                                                                 task=la.task)
                if ok and files.model is not None:  # the model version, judged by its gates, with the outcome
                    from ..models.register import register as register_model

                    registered = register_model(self.store, files.model, pipeline=ctx.pipeline, task=la.task,
                                                run_id=ctx.run_id, attempt_id=attempt_id, params=ctx.params)
                # Collected after a restart: the run ended when its task did, not when this engine saw it.
                run_ended = info.finished_at if self._collecting and attempt_id in self._collecting else None
                self._record(ctx, decided, skip_task=True, ended_at=run_ended)
        finally:
            if snap is not None:
                snap.release()  # committed (or not): its chunks need no pins any more
        # Memory follows the commit: the attempt is over, its lease free (its row was released with the outcome).
        del self.live[attempt_id]
        if not self.live and self._all_stopped is not None:
            self._all_stopped.set()
        if self._collecting:
            self._collecting.discard(attempt_id)
            if not self._collecting:
                self._collected.set()
        held = self.res.release(attempt_id)
        if held is not None and held.running.lease.cpus and self.res.cluster is None:
            self._rebalance_shared(self.res)  # its cores are free: the shared tasks take them back
        if ran_ok and la.started_at is not None:
            finished = info.finished_at if info.finished_at is not None else self.clock()
            self.res.durations.observe(f"{ctx.pipeline.name}/{la.task}", finished - la.started_at)
        if free:
            ctx.uncharged[la.task] = ctx.uncharged.get(la.task, 0) + 1
        if not later:
            self._synced()  # this commit synced the outcomes committed before it: theirs are told first
        if registered is not None and registered["unchanged"]:  # the same artifact and metrics: no version added
            v = registered["version"]
            self.bus.publish(ModelUnchanged(self.clock(), v["model"], v["version"], run_id=ctx.run_id, task=la.task))
        elif registered is not None:  # before the run's end is announced: a follower of the run sees it
            v, dep, dec = registered["version"], registered["deployment"], registered["decision"]
            self.bus.publish(ModelRegistered(self.clock(), v["model"], v["version"], v["gate_verdict"],
                                             run_id=ctx.run_id, task=la.task, deployment_id=dep["id"] if dep else None,
                                             summary=dec["summary"] if dec else None))
        ended = AttemptEnded(self.clock(), ctx.run_id, la.task, str(change.state), la.number, info.exit_code,
                             info.signal, change.reason, info.log_truncated)
        self._apply(ctx, decided, lambda: self._hold_until_synced(ended) if later else self._announce(ended))
        if version is not None:
            self.bus.publish(DatasetVersioned(self.clock(), version["dataset"], version["version"], "task",
                                              version["files"], version["size"], version["new_bytes"],
                                              run_id=ctx.run_id))

    # -- settlement: decide (pure, settlement.py), record (one transaction), then memory ------------

    def _view(self, ctx: RunCtx) -> settlement.RunView:
        """The run's state as settlement reads it (the engine's own maps, not copies: O(1))."""
        return settlement.RunView(ctx.needs, ctx.dependents, ctx.states, ctx.unmet, ctx.states.unfinished,
                                  ctx.cancel_requested, ctx.uncharged, ctx.retries_from, ctx.cancel_reason)

    def _settle(self, ctx: RunCtx, decided: settlement.Settlement, then: Callable[[], None] | None = None) -> None:
        """Record ``decided`` in one transaction, then apply it to memory (see :meth:`_apply`)."""
        with self.store.transaction():
            self._record(ctx, decided)
        self._apply(ctx, decided, then)

    def _record(self, ctx: RunCtx, decided: settlement.Settlement, *, skip_task: bool = False,
                ended_at: float | None = None) -> None:
        """Write ``decided``'s task changes and the run's end (in the caller's transaction, or one of its own).

        ``skip_task``: the caller writes the task's own change itself (with
        the attempt's outcome, or a cache hit's record). ``ended_at``: when the run ended, if not now (its last
        attempt ended while no engine ran: a run collected a minute after a restart did not take that minute).
        """
        changes = decided.changes[1:] if skip_task and decided.task is not None else decided.changes
        self.store.runs.set_task_states([(ctx.task_ids[c.task], c.state, c.reason) for c in changes], names=ctx.task_names)
        if decided.run_finished is not None:
            if not RunState.can_transition(RunState.RUNNING, decided.run_finished):  # pragma: no cover - a bug
                raise AssertionError(f"run {ctx.run_id}: running -> {decided.run_finished} is not a run transition")
            self.store.runs.set_state(ctx.run_id, decided.run_finished, reason=decided.run_reason, at=ended_at)
            for write in self.run_end_writers:
                write(ctx.run_id, decided.run_finished, decided.run_reason)

    def _apply(self, ctx: RunCtx, decided: settlement.Settlement, then: Callable[[], None] | None = None) -> None:
        """Memory follows a recorded settlement, then acts on it.

        Task states and upstream counts first; then ``then()`` (the event
        announcing it, or a cancel's stops); then what it sets in motion:
        ready tasks queued, retries armed, the run's end, a dispatch pass.
        """
        for c in decided.changes:
            ctx.states[c.task] = c.state
            if c.state == TaskState.SUCCEEDED and ctx.pipeline.tasks[c.task].cache:
                key = (ctx.pipeline.name, c.task)
                self._cache_epoch[key] = self._cache_epoch.get(key, 0) + 1
            if c.state != TaskState.READY:
                self._cache_asked.pop(f"{ctx.run_id}/{c.task}", None)
                # A verified cache miss holds only while the task waits to start; one that leaves
                # ``ready`` otherwise (cancel, cascade) must not outlive it (nor skip a later check);
                # nor its hashed inputs (the next time it is ready, they are hashed again).
                self._cache_missed.discard(f"{ctx.run_id}/{c.task}")
                self._inputs.pop(f"{ctx.run_id}/{c.task}", None)
            if c.state != TaskState.RETRY_WAIT:  # a task that left its retry wait (cancel, cascade) needs no timer
                timer = self._retry_timers.pop((ctx.run_id, c.task), None)
                if timer is not None:
                    timer.cancel()
        ctx.unmet.update(decided.unmet)
        if then is not None:
            then()
        for c in decided.changes:
            if c.state == TaskState.READY:
                self._push_ready(ctx, c.task)
            elif c.state == TaskState.RETRY_WAIT and c.retry_at is not None:
                self._arm_retry(ctx, c.task, c.retry_at)
        if decided.run_finished is not None:
            self._finish_run(ctx, decided.run_finished, decided.run_reason)
        self._schedule_dispatch()

    # -- GPU watcher ------------------------------------------------------------------

    def _arm_watch(self) -> None:
        """Schedule the next GPU check, only while a GPU backend exists and GPU leases are held."""
        res = self.res
        if (self._watch_timer is None and self.loop is not None and res is not None and res.backend is not None
                and res.gpu_leases_held):
            self._watch_timer = self.loop.call_later(self.watch_interval, self._watch_tick)

    @_fail_stop
    def _watch_tick(self) -> None:
        """Police GPU memory budgets, drain unhealthy GPUs, record both."""
        self._watch_timer = None
        res = self.res
        if res is None or not self.accepting:
            return
        assert self.executor is not None
        gpu_attempts = [aid for aid in self.live if aid in res.held and res.held[aid].running.lease.gpus]
        actions, drains = res.watch(self.executor.pids(gpu_attempts))
        for uuid, why in drains.items():
            self._announce(GpuDrained(self.clock(), uuid, why))
        for aid, action in actions:
            la = self.live.get(aid)
            if la is None:
                continue
            self._announce(GpuBudgetAction(self.clock(), la.run_id, la.task, la.number, aid, action.action,
                                           action.reason))
            if action.action == "stop":
                la.stop_detail = action.reason
                self._stop_attempt(la, "gpu_memory")
        if drains:
            self._schedule_dispatch()
        self._arm_watch()

    def _arm_retry(self, ctx: RunCtx, name: str, at: float) -> None:
        assert self.loop is not None
        delay = max(at - self.clock(), 0.0)
        self._retry_timers[(ctx.run_id, name)] = self.loop.call_later(delay, self._retry_due, ctx.run_id, name)

    @_fail_stop
    def _retry_due(self, run_id: int, name: str) -> None:
        self._retry_timers.pop((run_id, name), None)
        ctx = self.runs.get(run_id)
        if ctx is None:
            return
        decided = settlement.settle_retry_due(self._view(ctx), name)
        if decided.task is not None:  # still waiting for it (not cancelled meanwhile)
            self._settle(ctx, decided)

    def _finish_run(self, ctx: RunCtx, outcome: RunState, reason: str | None) -> None:
        """The run's end, once recorded: forget the run, announce it, wake its waiters."""
        # A run ends in a durable commit, which synced the outcomes held before it: theirs are told first.
        self._synced()
        del self.runs[ctx.run_id]
        self._caps.remove(ctx.run_id, ctx.pipeline)
        self._announce(RunFinished(self.clock(), ctx.run_id, str(outcome), reason, ctx.pipeline.name))
        if ctx.done is not None and not ctx.done.done():
            ctx.done.set_result(outcome)


def _split_id(task_id: str) -> tuple[int, str]:
    """``"<run_id>/<task>"`` → (run_id, task); task names may not contain "/" but split once anyway."""
    run, _, name = task_id.partition("/")
    return int(run), name


def _describe_lease(lease: Lease) -> str:
    """One line for events: ``cores 0,1; GPU-… (share 4.0G); pool db``."""
    from ..resources.allocator import _fmt
    from ..resources.cpus import format_cpu_list

    parts = []
    if lease.cpus:
        parts.append(f"cores {format_cpu_list(lease.cpus)}")
    if lease.memory:
        parts.append(f"memory {_fmt(lease.memory)}")
    if lease.gpus:
        share = f" (share {_fmt(lease.gpu_memory)})" if not lease.gpu_exclusive else " (whole)"
        parts.append("GPUs " + ",".join(lease.gpus) + share)
    if lease.pool:
        parts.append(f"pool {lease.pool}")
    return "leased " + "; ".join(parts)


def _shell_quoted(values: dict[str, Any]) -> dict[str, str]:
    """Every placeholder value as one shell word (``shlex.quote`` of its text as ``substitute`` writes it).

    A value reaches ``/bin/sh -c`` as data, never as code: a param or a file
    name like ``a;touch X`` or ``$(id)`` is passed literally.
    """
    return {k: shlex.quote(substitute("{v}", {"v": v})) for k, v in values.items()}


KIND_FILE_OPTIONS = ("save", "report")
"""A kind task's options that name a file it writes (a bare name: in its output folder), recorded as its artifacts."""

SHUTDOWN_STOP = "stopped when edgeorch stopped ([engine] stop_tasks_on_shutdown = true)"
"""A task's reason when the engine's close stopped it (said as a cancel's reason is: a shutdown with
``stop_tasks_on_shutdown`` read as an unexplained "cancelled", the run failed with no reason)."""


def check_resumable(run_id: int, state: str, *, active: bool = False, unowned: bool = False) -> None:
    """Raise :class:`ConflictError` unless run ``run_id`` (in ``state``) is finished and not ``active``: the one
    rule of a retry's first step. ``unowned``: asked before an engine took the state over (``edgeorch retry``
    without a daemon), for a run no process drives now: the refusal says who goes on with it (the retry refused
    after its engine had started had begun the unfinished runs' next tasks, then exited)."""
    if not active and RunState.can_transition(state, RunState.QUEUED):
        return
    if unowned:
        raise ConflictError(f"run {run_id} is still {state}: a process that stopped (a daemon, or an `edgeorch run` "
                            "that was killed) left it unfinished, and it has not ended",
                            hint=f"a daemon, once started, goes on with it (its tasks may still run); or stop it with "
                                 f"`edgeorch cancel {run_id}`; retry it once it has ended")
    raise ConflictError(f"run {run_id} is still {state}", hint="wait for it to finish, or cancel it first")


def _intact_map(recorded: dict[str, list[dict[str, Any]]], linked: dict[str, Path]) -> dict[str, bool]:
    """Task -> whether its recorded outputs are all still there, unchanged (hashes them: run in the worker); for
    a cache hit (``linked``: task -> its output folder in this run), also whether each is still linked there."""
    return {name: intact(arts) and (name not in linked or still_linked(arts, linked[name]))
            for name, arts in recorded.items()}


def _signal_name(num: int) -> str:
    try:
        return signal.Signals(num).name
    except ValueError:
        return str(num)


_FIRE_NAMES: dict[str, tuple[str, ...]] = {}


def _fire_names(spec: TaskSpec) -> tuple[str, ...]:
    """``fire_time``/``fire_date`` as the task's strings name them (remembered per definition)."""
    found = _FIRE_NAMES.get(spec.definition_hash)
    if found is None:
        texts = [t for _p, t in strings_in([spec.command, spec.env, spec.options, list(spec.inputs),
                                            list(spec.outputs), spec.workdir])]
        found = _FIRE_NAMES[spec.definition_hash] = fire_names_used(texts)
    return found


def _input_hash(spec: TaskSpec, params: dict[str, Any], upstream: dict[str, list[dict[str, Any]]],
                inputs: InputsSnapshot | None = None, references: dict[str, str] | None = None,
                run_env: Mapping[str, str] | None = None) -> str:
    """What a task's result depends on besides its definition: params, upstream file contents, declared inputs,
    what its stored references resolve to now, and the fire it processes when it names one.

    ``inputs`` counts only for a task that declares some or runs in a
    container (its image digest), ``references`` only for a kind task
    with a ``baseline:``/``model:`` option (:meth:`Engine._references`), and
    the fire (``run_env``'s) only for a task whose strings name
    ``{fire_time}`` or ``{fire_date}``, so the key of any other task is the
    one it had before those existed.
    """
    import hashlib

    doc: dict[str, Any] = {
        "definition": spec.definition_hash,
        "params": params,
        "upstream": {u: sorted((a["name"], a["sha256"]) for a in arts) for u, arts in sorted(upstream.items())},
    }
    if spec.inputs or spec.container is not None:  # a container's image digest is one of its inputs
        doc["inputs"] = inputs.key() if inputs is not None else None
    if references:
        doc["references"] = references
    fire = _fire_names(spec)
    if fire and run_env is not None:
        doc["fire"] = {n: run_env.get(FIRE_PLACEHOLDERS[n], "") for n in fire}
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()
