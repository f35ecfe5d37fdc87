"""The daemon side of drop folders: :class:`DropFolders`, wired to the store and the front door.

Runs on the daemon's event loop (the one-writer rule). It follows the "Wiring" section of
``docs/triggers.md``: at start ``reconcile`` store and disk, then an :class:`ArrivalLoop`;
ready files are claimed in groups (intents in one transaction, renames + hashes in a worker
thread with one fsync per folder per group, then per file: duplicate check, run + ``started``
in one transaction); a finished run settles its input (``done``, or ``quarantined`` with a
``.reason.json`` when the run failed).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...errors import EdgeorchError, StateError
from ...control.refusals import RefusalLimiter
from ...textui import format_timestamp
from ...trust import close_folder, named_owner
from ...events import DatasetVersioned, Event, InputChanged
from ...model import InputState, TaskState
from .claim import (
    ClaimDeferred,
    ClaimedFile,
    ClaimError,
    ClaimIntent,
    ClaimInterrupted,
    ClaimNotPermitted,
    ClaimRefused,
    NotQuick,
    changed_since,
    claim_dest,
    claim_folder_name,
    hash_file,
    is_transient,
    make_claim_folder,
    perform_claim,
)
from ...durable import sync_dirs, write_atomic
from .trust import UNTRUSTED_HINT
from ...engine.files import make_run_dirs, remove_empty_in_a_row
from ...loopslices import sliced
from .inspection import Refuse, inspect, scan
from .names import display_path
from .quarantine import quarantine, quarantine_input, quarantine_run_inputs
from .reconcile import InputRecord, file_ids, list_inbox, reconcile
from .refusals import Refusal, RefusedFiles
from .retention import FINISHED_STATES, remove_kept_file, sweep_interval
from .settle import Batcher
from .configured import startable_watches
from .spec import (
    DEFAULT_ENV,
    WatchSpec,
)

if TYPE_CHECKING:  # pragma: no cover
    from ...config import Config
    from ...engine.engine import Engine
    from ...engine.requests import RunRequests
    from ...pipelines import PipelineRegistry
    from ...store.store import Store

log = logging.getLogger("edgeorch.triggers")

STRAY_REASON = ("found in the inbox with no input record (not run by this state file: claimed in the lost future "
                "of a state file restored from a backup, or left by hand); it may have run already (a run folder "
                "newer than the state file's last run names it): requeue it only if it did not")
"""The reason document of an inbox file that no record names (recovery's ``adopt``)."""

CLAIM_GROUP = 500
"""Ready files claimed per group (one intent transaction, one fsync per folder)."""

FOLDERS_AHEAD_FROM = 8
"""From this many files in a group on, their claim folders are made ahead, before the intents' transaction (in
slices on the loop: :mod:`edgeorch.loopslices`), so that the transaction holds the loop for its records only."""

LOOP_CLAIM_BYTES = 1 << 20
"""A file under this size is claimed (renamed, checked, hashed) on the loop, in slices
(:mod:`edgeorch.loopslices`: a worker thread's many short system calls each wait for the GIL while the loop is
busy, which a burst's loop is); a bigger one in a worker thread, where its long reads cost one hand-over each."""

RETRY_BASE = 0.5
RETRY_MAX = 60.0
"""Backoff of a claim step that met a transient error (disk full, out of descriptors, EIO):
``RETRY_BASE * 2**n`` seconds, at most ``RETRY_MAX``; retried until it succeeds or the file goes."""


LONG_CLAIM_BYTES = 64 << 20
"""A file of this size or more is claimed (renamed, hashed) in a long-file lane, not by the claim worker:
its hash takes long (a second per GB or so), and the other files, of its folder and of every other, must
not wait for it. One lane per watched folder, one file at a time, on :data:`LONG_CLAIM_LANES` threads."""

LONG_CLAIM_LANES = 2
"""Threads that hash long files: a folder flooded with huge files holds one of them, never every one."""

SWEEP_BATCH = 500
"""Retention candidates read per query; a sweep reads batch after batch until none is left."""


ENDED_WITH_RUN = frozenset({"succeeded", "cancelled"})
"""The ends of a run whose inputs are settled (``done``) in the transaction that records that end."""


def retry_delay(attempt: int) -> float:
    """Seconds before retry number ``attempt`` (1, 2, ...) of a transient claim failure."""
    return float(min(RETRY_MAX, RETRY_BASE * 2 ** max(0, min(attempt - 1, 16))))


@dataclass
class _Ready:
    """A settled file of a watched folder, ready to be claimed."""

    spec: WatchSpec
    path: Path


@dataclass
class _PathRetry:
    """A step that met a transient error and is tried again later (a dropped file's inspection or record, or a
    recorded intent's claim): how often so far, the last why, and when next (loop time)."""

    attempts: int
    pipeline: str
    reason: str
    due: float


@dataclass
class _Pending:
    """A recorded intent (``claiming``) whose rename/hash must be done or tried again."""

    iid: int
    spec: WatchSpec
    intent: ClaimIntent
    attempts: int = 0


class DropFolders:
    """The drop folders of one daemon (see the module docstring)."""

    def __init__(self, *, store: Store, requests: RunRequests, engine: Engine, registry: PipelineRegistry,
                 config: Config, loop: asyncio.AbstractEventLoop,
                 publish: Callable[[Event], None]) -> None:
        """``engine`` is asked which runs are live and whether it stopped on a fatal error, and records the end
        of a run with its inputs' (:meth:`record_run_end`, one of its ``run_end_writers`` from here on);
        ``config`` gives the inbox, the state dir and config.toml's ``[[watch]]`` tables."""
        self.store = store
        self.requests = requests
        self.engine = engine
        self.registry = registry
        self.config = config
        self.loop = loop
        self.publish = publish
        self.watches: list[WatchSpec] = []
        self.watch_errors: list[EdgeorchError] = []
        self._config_watch_errors: list[EdgeorchError] = []
        self.arrivals: Any = None
        self._queue: list[_Ready] = []
        self._pending: list[_Pending] = []  # intents due for (another) claim attempt
        self._path_attempts: dict[Path, _PathRetry] = {}  # drop files not recorded yet, handed on again later
        self._claim_retries: dict[int, _PathRetry] = {}  # recorded intents (claiming) whose claim is tried again
        self._waiting_retries: dict[str | None, int] = {}  # resumes whose waiting inputs could not all be started
        self._retry_handles: set[asyncio.TimerHandle] = set()
        self.missing_folders: dict[Path, EdgeorchError] = {}
        self._worker: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self.stopped = False
        self.sweep_batch = SWEEP_BATCH
        self._batchers: dict[Path, Batcher] = {}
        self._batch_timer: asyncio.TimerHandle | None = None
        self._sweep_timer: asyncio.TimerHandle | None = None
        self._versions: list[int] = []  # inputs whose data version the current transaction records
        self._refused = RefusedFiles()  # refusals of files still in the folders: recorded once (refusals.py)
        # Which refusals are recorded (an input row, its audit record, a log line): the socket's rate rule, per
        # owner of the refused file; the rest are counted, the count recorded once its window ends. A dropper
        # who made and removed 1,500 links with 4 KB targets a round grew the state file by 42 MB a minute.
        self._refusals = RefusalLimiter(clock=self.store.clock)
        self._refusals_timer: asyncio.TimerHandle | None = None
        self._cancel = threading.Event()  # set by stop(): a hash in progress ends at its next chunk
        self._long: dict[Path, list[_Pending]] = {}  # long files waiting for their folder's lane
        self._long_now: dict[Path, _Pending] = {}  # the file each lane hashes now
        self._long_tasks: dict[Path, asyncio.Task[None]] = {}
        self._long_pool: ThreadPoolExecutor | None = None
        self._hashed: list[tuple[_Pending, ClaimedFile | BaseException]] = []  # lanes' results, for the worker
        self._stored: dict[int, Any] = {}  # input id -> a long file's version, stored by its lane (or its error)
        engine.run_end_writers.append(self.record_run_end)

    def _publish(self, state: str, **fields: Any) -> None:
        """Publish an :class:`InputChanged` stamped by the engine's clock (see :meth:`_emit`)."""
        self._emit(InputChanged(self.engine.clock(), state, **fields))

    def _emit(self, event: Any) -> None:
        """Publish ``event`` once the change it reports is committed: at once outside a transaction, at the
        commit of a claim group's transaction inside one, never when the change rolls back."""
        self.store.after_commit(functools.partial(self.publish, event))

    # -- paths -----------------------------------------------------------------------

    @property
    def inbox(self) -> Path:
        return self.config.inbox_dir

    @property
    def quarantine_dir(self) -> Path:
        return self.config.state_dir / "quarantine"


    # -- lifecycle -----------------------------------------------------------------------

    def recover_and_collect(self) -> None:
        """Collect the watches and recover every input (before schedules and before watching)."""
        self.watches = self._collect_watches()
        self.recover()

    def watch(self) -> None:
        """Start watching the folders, the claim worker and the inbox retention sweep."""
        self._start_arrivals()
        self._worker = self.loop.create_task(self._claim_worker())
        self._arm_sweep(0.0)

    def stop(self) -> None:
        """Stop watching and claiming now. A hash in progress ends at its next 1 MiB chunk (its input stays
        ``claiming``; the next start's recovery finishes it): a stop never waits for a long file."""
        self.stopped = True
        self._cancel.set()
        for task in self._long_tasks.values():
            task.cancel()
        if self._long_pool is not None:
            self._long_pool.shutdown(wait=False, cancel_futures=True)
        if self.arrivals is not None:
            self.arrivals.stop()
            self.arrivals = None
        if self._worker is not None:
            self._worker.cancel()
        if self._batch_timer is not None:
            self._batch_timer.cancel()
        if self._sweep_timer is not None:
            self._sweep_timer.cancel()
            self._sweep_timer = None
        if self._refusals_timer is not None:
            self._refusals_timer.cancel()
            self._refusals_timer = None
        self._flush_refusals(all_pending=True)  # the counts of windows still open: said before the stop
        for snap in self._stored.values():  # stored by a lane, never recorded: its chunks need no pins
            if hasattr(snap, "release"):
                snap.release()
        self._stored.clear()
        for h in self._retry_handles:
            h.cancel()
        self._retry_handles.clear()

    def check_folders(self) -> None:
        """Watch again a drop folder replaced at its path or back (``ArrivalLoop.check_folders``); none: nothing."""
        if self.arrivals is not None:
            self.arrivals.check_folders()

    def reload(self, config: Config | None = None) -> None:
        """After the pipelines (or config) changed: rebuild the folder watch if it changed."""
        if config is not None:
            self.config = config
            if self._worker is not None:  # watching: a changed [inbox] keep applies from now on
                self._arm_sweep(0.0)
        new = self._collect_watches()
        if new != self.watches:
            self._close_left_batches(new)
            self.watches = new
            if self.arrivals is not None:
                self.arrivals.stop()
                self.arrivals = None
            self._start_arrivals()

    # -- inbox retention ([inbox] keep) --------------------------------------------------------

    def _arm_sweep(self, delay: float) -> None:
        """(Re)arm the one retention timer; none when ``keep`` is ``"forever"`` or after :meth:`stop`."""
        if self._sweep_timer is not None:
            self._sweep_timer.cancel()
            self._sweep_timer = None
        if self.config.inbox_keep is not None and not self.stopped:
            self._sweep_timer = self.loop.call_later(delay, self._on_sweep_timer)

    def _on_sweep_timer(self) -> None:
        self._sweep_timer = None
        try:
            self.sweep_inbox()
        except Exception:  # noqa: BLE001 - retention is housekeeping: never fatal, tried again next time
            log.exception("inbox retention sweep failed")
        keep = self.config.inbox_keep
        if keep is not None:
            self._arm_sweep(sweep_interval(keep))

    def sweep_inbox(self) -> list[int]:
        """Remove the kept files of inputs final for longer than ``[inbox] keep``; returns their ids.

        Time is the store's clock (the one that stamps ``updated_at``). An input whose run is
        active (a retry in progress) is never touched. Each removal is recorded
        (``removed_at``); a failed one is logged and tried again at the next sweep.
        """
        keep = self.config.inbox_keep
        if keep is None:
            return []
        gone: list[dict[str, Any]] = []
        cutoff = self.store.clock() - keep
        with self.store.transaction():  # one commit for the sweep; a crash before it: the next sweep finds
            after: tuple[float, int] | None = None  # the file gone
            while True:  # batch after batch: rows left behind (not ours, failing) never hide the rest
                rows = self.store.inputs.past_keep(FINISHED_STATES, cutoff, limit=self.sweep_batch, after=after)
                for row in rows:
                    if self._sweep_one(row):
                        gone.append(row)
                if len(rows) < self.sweep_batch:
                    break
                after = (rows[-1]["updated_at"], rows[-1]["id"])
        for row in gone:  # after the commit: an event describes what is recorded
            self._publish("file_removed", input_id=row["id"], run_id=row["run_id"], file=row["inbox_path"],
                          reason=f"[inbox] keep = {keep:g}s")
        if gone:
            log.info("inbox retention: removed the files of %d finished input(s) older than %gs", len(gone), keep)
        return [row["id"] for row in gone]

    def _sweep_one(self, row: dict[str, Any]) -> bool:
        """Remove one candidate's kept file and record it (in the sweep's transaction); False when left as it is."""
        if row["run_id"] is not None and row["run_id"] in self.engine.runs:
            return False
        try:
            remove_kept_file(row["inbox_path"], self.quarantine_dir)
        except ValueError:
            log.debug("input %s: %s is not edgeorch's to remove", row["id"], row["inbox_path"])
            return False
        except OSError as exc:
            log.warning("input %s: cannot remove its kept file %s: %s (tried again at the next sweep)",
                        row["id"], display_path(row["inbox_path"]), exc.strerror or exc)
            return False
        self.store.inputs.record_removed(row["id"])
        # A batch's path list (named by its first input, its run's EDGEORCH_INPUT) goes with that input's file:
        # it stayed forever, one file per batch (the inbox grew without bound).
        with contextlib.suppress(OSError):
            os.unlink(self.inbox / batch_listing_name(row["id"]))
        return True

    # -- run finished -----------------------------------------------------------------------

    def record_run_end(self, run_id: int, state: str, reason: str | None) -> None:
        """Inside the transaction that records run ``run_id``'s end (the engine's ``run_end_writers``): a run that
        succeeded or was cancelled has its ``started`` inputs ``done`` in that transaction, their events told
        once it commits. One durable commit per ingested file's end, not two; and no crash between the run's
        end and its inputs' (a restart's recovery settled those). A failed run's inputs are quarantined by
        :meth:`on_run_finished`, after the commit: a file's move is no part of a transaction."""
        if state in ENDED_WITH_RUN:
            self.on_run_finished(run_id, state, reason, ended_with_run=True)

    def on_run_finished(self, run_id: Any, state: str, reason: str | None, *, ended_with_run: bool = False) -> None:
        """A run ended: settle each of its inputs still ``started`` (those of a run that succeeded or was
        cancelled were, with its end: :meth:`record_run_end`; ``ended_with_run`` is that call)."""
        if not isinstance(run_id, int) or (state in ENDED_WITH_RUN and not ended_with_run):
            return
        for rec in self.store.inputs.all_of_run(run_id):
            if rec["state"] == "started":
                self._settle_input(rec, state, reason)

    def _settle_input(self, rec: dict[str, Any], state: str, reason: str | None) -> None:
        store = self.store
        if state == "succeeded":  # a reason left by an earlier end of its run (cancelled, then retried) goes
            store.inputs.record_state(rec["id"], "done", reason="" if rec.get("reason") else None)
            self._publish(input_id=rec["id"], state="done", run_id=rec["run_id"], pipeline=rec["pipeline"],
                          file=display_path(rec["source_name"]))
            return
        if state == "cancelled":
            store.inputs.record_state(rec["id"], "done", reason=f"run {rec['run_id']} was cancelled")
            self._publish(input_id=rec["id"], state="done", run_id=rec["run_id"], pipeline=rec["pipeline"],
                          file=display_path(rec["source_name"]))
            return
        if rec.get("run_id") is None:
            why = reason or "no run could be started"
        else:
            why = f"run {rec['run_id']} of {rec['pipeline']} failed" + self._failed_tasks(rec["run_id"], reason)
        try:
            quarantine_input(store, rec, self.quarantine_dir, why, clock=self.engine.clock, publish=self._emit)
        except OSError as exc:
            log.error("input %s: cannot quarantine %s: %s", rec["id"], rec.get("inbox_path"), exc)

    def _failed_tasks(self, run_id: int, reason: str | None, shown: int = 3) -> str:
        """`` (task: its reason; ...)`` for the run's failed tasks (what a quarantined file's reason should
        say: why, not only which task), else `` (reason)``, else nothing."""
        failed = [f"{t['name']}: {t['reason']}" if t["reason"] else t["name"]
                  for t in self.store.runs.tasks_of(run_id) if t["state"] == TaskState.FAILED]
        if failed:
            more = f"; and {len(failed) - shown} more" if len(failed) > shown else ""
            return f" ({'; '.join(failed[:shown])}{more})"
        return f" ({reason})" if reason else ""

    def quarantine_run_inputs(self, run_id: int, why: str, details: dict[str, Any] | None = None) -> list[str]:
        """A rule's ``quarantine`` response: :func:`quarantine_run_inputs` with this service's folder and bus."""
        return quarantine_run_inputs(self.store, run_id, self.quarantine_dir, why, clock=self.engine.clock,
                                     publish=self._emit, details=details)

    # -- drop folders: configuration ----------------------------------------------------------

    def _collect_watches(self) -> list[WatchSpec]:
        cfg = self.config
        out, errors = startable_watches(cfg, self.registry.pipelines, self.registry.errors)
        seen = {s.folder for s in out}
        for s in out:
            if not s.folder.is_dir():  # watched as soon as it appears (ArrivalLoop): a warning, not an error
                log.warning("watched folder %s (%s) does not exist yet: watched as soon as it appears",
                            s.folder, s.source or cfg.source or "<embedded defaults>")
        for e in errors:
            log.error("watch not started: %s", e.one_line())
        # A folder no watch names any more (its [[watch]] changed or went) is nobody's missing folder: its error
        # stayed in `status` and `inputs` after the reload that replaced it.
        self.missing_folders = {f: e for f, e in self.missing_folders.items() if f in seen}
        self._config_watch_errors = errors
        self.watch_errors = errors + list(self.missing_folders.values())
        return out

    def _spec_for(self, folder: str | Path, pipeline: str) -> WatchSpec | None:
        for s in self.watches:
            if str(s.folder) == str(folder) and s.pipeline == pipeline:
                return s
        return next((s for s in self.watches if s.pipeline == pipeline), None)

    def _start_arrivals(self) -> None:
        if not self.watches or self.stopped:
            return
        from ..arrivals import ArrivalLoop

        self.arrivals = ArrivalLoop(self.loop, self.watches, self._on_ready, on_folder=self._on_folder)
        self.arrivals.start()

    def _on_folder(self, folder: Path, missing: bool, why: str | None = None) -> None:
        """A watched folder disappeared (``missing``; ``why``: it is there, but its path is one another user could
        change, :mod:`.trust`) or is back and watched again: surface it."""
        if missing:
            # Named against the file that declares the watch, and its pipeline, as every other watch error is (a
            # watch in a pipeline file was said with neither); and not "deleted" when it never was there.
            spec = next((w for w in self.watches if w.folder == folder), None)
            file = spec.source if spec is not None and spec.source else str(self.config.source or "") or None
            pipeline = spec.pipeline if spec is not None else None
            if why:
                self.missing_folders[folder] = EdgeorchError(
                    f"not watched: {why}", field="watch.folder", value=str(folder), file=file, pipeline=pipeline,
                    expected="a folder whose path only root and the daemon's user can change", hint=UNTRUSTED_HINT)
            else:
                self.missing_folders[folder] = EdgeorchError(
                    "the watched folder does not exist (not made yet, or deleted or moved away); it is watched as "
                    "soon as it is there", field="watch.folder", value=str(folder), expected="an existing folder",
                    file=file, pipeline=pipeline)
        else:
            self.missing_folders.pop(folder, None)
        self.watch_errors = list(getattr(self, "_config_watch_errors", [])) + list(self.missing_folders.values())
        self._publish(state="watch_missing" if missing else "watch_restored", file=str(folder))

    # -- drop folders: recovery (before the watcher starts) -------------------------------------

    def recover(self) -> list[str]:
        """``reconcile`` store and disk and apply each action; also settle inputs whose run ended while down.

        Every input record takes part, whatever its state (a processed input's file stays in the
        inbox: docs/triggers.md "Inbox lifecycle"). One input can never stop the daemon from
        starting: each action runs on its own, an error is logged and recorded as an event, and
        recovery goes on with the next.
        """
        store = self.store
        for folder in (self.inbox, self.quarantine_dir):  # an older edgeorch's, 0755
            if folder.is_dir():
                try:
                    close_folder(folder)
                except OSError as exc:
                    log.warning("cannot close %s to other users: %s", folder, exc.strerror)
        _remove_left_claim_folders(self.inbox, store.inputs.next_id())
        active = {r["id"]: r for r in store.inputs.to_reconcile()}  # whole rows: what the actions need
        records = [_record_of(row) for row in store.inputs.records()]  # every state, just reconcile's columns
        _remove_emptied_claim_folders(self.inbox, records)
        drop = file_ids(p for s in self.watches for p in self._scan_quietly(s))
        self._refused.load(self._refusals_of(records, drop), drop)
        runs = store.runs.by_input()
        actions = reconcile(records, drop, list_inbox(self.inbox), {k: str(v) for k, v in runs.items()})
        kinds: list[str] = []
        for a in actions:
            if a.kind == "ingest":
                continue  # the ArrivalLoop's first rescan hands it over (after its settle check)
            kinds.append(a.kind)
            try:
                self._recover_one(a, active)
            except Exception as exc:  # noqa: BLE001 - one input must never stop the start
                self._recovery_failed(a.kind, a.record.id if a.record else None,
                                      display_path(a.path) if a.path else None, exc)
        # Runs that finished while the daemon was away (or before their input was settled).
        for r in store.inputs.to_reconcile():
            if r["state"] != "started" or r["run_id"] is None or r["run_id"] in self.engine.runs:
                continue
            try:
                run = store.runs.get(int(r["run_id"]))
                if run["state"] in ("succeeded", "failed", "cancelled"):
                    self._settle_input(r, run["state"], run.get("reason"))
            except Exception as exc:  # noqa: BLE001
                self._recovery_failed("settle", r["id"], None, exc)
        if kinds:
            from collections import Counter

            log.info("inputs recovered: %s", ", ".join(f"{k} x{n}" for k, n in Counter(kinds).items()))
        if adopted := kinds.count("adopt"):  # files no record names: a restored older state file, most often
            log.warning("%d file(s) in the inbox that no input record names (the state file is older than the inbox: "
                        "a restored backup?) moved to quarantine, not run: `edgeorch inputs --quarantine` lists "
                        "them; drop a file again to run it", adopted)
        return kinds

    def _refusals_of(self, records: list[InputRecord], drop: dict[Path, Any]) -> list[tuple[str, Refusal]]:
        """The recorded refusals of the files now in the folders (a whole row read for those only)."""
        here = {display_path(p) for p in drop}
        return [(row["source_path"], Refusal.of_row(row)) for r in records
                if r.state == InputState.REFUSED and str(r.source) in here
                for row in (self.store.inputs.get(r.id),)]

    def _recover_one(self, a: Any, active: dict[int, dict[str, Any]]) -> None:
        store = self.store
        rec = a.record
        if a.kind in ("rename", "finish"):
            assert rec is not None and rec.inbox_path is not None
            row = active[rec.id]
            spec = self._spec_for(row["watch_folder"], row["pipeline"])
            if spec is None:  # the watch is gone: claim anyway (the file is ours), the run reports the rest
                spec = WatchSpec(folder=Path(row["watch_folder"]), pipeline=row["pipeline"])
            # Its size picks its lane (LONG_CLAIM_BYTES); its size and mtime know a copy made of another user's file.
            intent = ClaimIntent(rec.inbox_path.parent.name, rec.source, rec.inbox_path, int(row.get("size") or 0),
                                 int(row.get("mtime_ns") or 0), rec.dev or 0, rec.ino or 0,
                                 spec.max_size, spec.allow_sparse)
            self._pending.append(_Pending(rec.id, spec, intent))
            self._wake.set()
        elif a.kind == "submit":
            assert rec is not None and rec.inbox_path is not None
            self._submit_recovered(active[rec.id], rec.inbox_path)
        elif a.kind == "link_run":
            assert rec is not None and a.run_id is not None
            store.inputs.record_started(rec.id, int(a.run_id))
        elif a.kind in ("forget", "lost"):
            assert rec is not None
            store.inputs.record_state(rec.id, "vanished" if a.kind == "forget" else "lost", reason=a.reason)
        elif a.kind == "adopt":
            assert a.path is not None
            quarantine(a.path, self.quarantine_dir, STRAY_REASON)
            try:
                os.rmdir(a.path.parent)
            except OSError:
                pass

    def _submit_recovered(self, row: dict[str, Any], path: Path, attempt: int = 0) -> None:
        """Start the run of a claimed input recovery found without one. When it cannot be recorded now (a
        full disk: :class:`StateError`) it is tried again after a backoff, shown by ``edgeorch inputs`` as
        the input's reason meanwhile (it waited for the next restart before)."""
        iid = int(row["id"])
        try:
            self._start_input(row, path)
        except StateError as exc:
            self._hold_input(iid, row["pipeline"], row["source_path"], f"its start was not recorded: {exc.one_line()}",
                             attempt + 1, functools.partial(self._submit_recovered, row, path, attempt + 1))
            return
        self._claim_retries.pop(iid, None)
        self._publish_versions()
        self._arm_batches()

    def _recovery_failed(self, kind: str, input_id: int | None, path: str | None, exc: BaseException) -> None:
        """Log and record one failed recovery step (the others go on)."""
        what = f"input {input_id}" if input_id is not None else (path or "?")
        why = exc.one_line() if isinstance(exc, EdgeorchError) else f"{type(exc).__name__}: {exc}"
        log.error("input recovery (%s) of %s failed: %s", kind, what, why)
        try:
            self.store.events.add("input_recovery_failed", f"recovery ({kind}) of {what} failed: {why}",
                                   actor="watch", data={"input_id": input_id, "path": path, "action": kind})
        except Exception:  # noqa: BLE001 - recording is best effort, the start is not
            log.exception("cannot record the recovery failure")

    def _scan_quietly(self, spec: WatchSpec) -> list[Path]:
        try:
            return scan(spec.folder, spec.patterns)
        except OSError as exc:
            log.error("cannot scan %s: %s", spec.folder, exc.strerror)
            return []

    # -- drop folders: arrivals ---------------------------------------------------------------

    def _on_ready(self, spec: WatchSpec, path: Path) -> None:
        self._queue.append(_Ready(spec, path))
        self._wake.set()

    def _later(self, delay: float, callback: Any, *args: Any) -> None:
        """``call_later`` whose handle :meth:`stop` cancels."""
        handle: asyncio.TimerHandle | None = None

        def run() -> None:
            self._retry_handles.discard(handle)  # type: ignore[arg-type]
            if not self.stopped:
                callback(*args)

        handle = self.loop.call_later(delay, run)
        self._retry_handles.add(handle)

    def _retry_path(self, spec: WatchSpec, path: Path, why: str) -> None:
        """A drop file could not be inspected now (transient): hand it over again after a backoff."""
        prev = self._path_attempts.get(path)
        n = prev.attempts + 1 if prev is not None else 1
        delay = retry_delay(n)
        self._path_attempts[path] = _PathRetry(n, spec.pipeline, why, self.loop.time() + delay)
        log.warning("input %s: %s; retry %d in %.1fs", display_path(path), why, n, delay)
        self._publish(state="claim_retry", pipeline=spec.pipeline, file=display_path(path), reason=why)
        self._later(delay, self._on_ready, spec, path)

    def retrying(self) -> list[dict[str, Any]]:
        """The dropped files not recorded yet that wait to be handed on again (a transient error: a full
        disk, too many open files), oldest first: what ``edgeorch inputs`` shows of them (they have no
        input record yet). ``next_in_s``: seconds to the next try."""
        now = self.loop.time()
        return [{"file": display_path(path), "pipeline": r.pipeline, "attempts": r.attempts, "reason": r.reason,
                 "next_in_s": round(max(0.0, r.due - now), 1)} for path, r in self._path_attempts.items()]

    def _retry_claim(self, pending: _Pending, why: str) -> None:
        """A recorded claim met a transient error: it stays ``claiming``; try the step again later."""
        pending.attempts += 1

        def due() -> None:
            self._pending.append(pending)
            self._wake.set()

        self._hold_input(pending.iid, pending.spec.pipeline, pending.intent.source, why, pending.attempts, due)

    def _hold_input(self, iid: int, pipeline: str, source: Path | str, why: str, attempt: int,
                    again: Callable[[], None]) -> None:
        """A recorded input's step met a transient error (try ``attempt``): held, said (a warning, a
        ``claim_retry`` event, its reason in ``edgeorch inputs``), and ``again()`` after the backoff."""
        delay = retry_delay(attempt)
        self._claim_retries[iid] = _PathRetry(attempt, pipeline, why, self.loop.time() + delay)
        shown = display_path(source)
        log.warning("input %s (%s): %s; retry %d in %.1fs", iid, shown, why, attempt, delay)
        self._publish(input_id=iid, state="claim_retry", pipeline=pipeline, file=shown, reason=why)
        self._later(delay, again)

    async def _claim_worker(self) -> None:
        while not self.stopped:
            await self._wake.wait()
            self._wake.clear()
            while (self._queue or self._pending or self._hashed) and not self.stopped:
                try:
                    if self._hashed:  # long files a lane claimed: their runs are started here
                        done, self._hashed = self._hashed[:CLAIM_GROUP], self._hashed[CLAIM_GROUP:]
                        await self._start_hashed(done)
                    elif self._pending:
                        batch, self._pending = self._pending[:CLAIM_GROUP], self._pending[CLAIM_GROUP:]
                        await self._finish_claims(batch)
                    else:
                        group, self._queue = self._queue[:CLAIM_GROUP], self._queue[CLAIM_GROUP:]
                        await self._claim_group(group)
                except EdgeorchError as exc:
                    log.error("claiming failed: %s", exc.one_line())
                    if self.engine.fatal_error is not None:
                        return
                except Exception:
                    log.exception("claiming failed")

    async def _claim_group(self, group: list[_Ready]) -> None:
        """Inspect each ready file, record refusals and intents (each file isolated), then claim."""
        store = self.store
        pendings: list[_Pending] = []
        refused: list[tuple[WatchSpec, Refuse]] = []
        checked: list[tuple[WatchSpec, Any]] = []
        for item in group:
            verdict = inspect(item.path, item.spec.folder, max_size=item.spec.max_size,
                              allow_sparse=item.spec.allow_sparse)
            if isinstance(verdict, Refuse) and verdict.code == "transient":
                self._retry_path(item.spec, item.path, verdict.reason)
                continue
            if isinstance(verdict, Refuse):
                if verdict.final and self._refused.recorded(item.path):
                    log.debug("input %s: refused already, unchanged since: not recorded again",
                              display_path(item.path))
                elif verdict.final:
                    refused.append((item.spec, verdict))
                continue
            checked.append((item.spec, verdict))
        retried: set[Path] = set()

        def retry(spec: WatchSpec, path: Path, why: str) -> None:
            retried.add(path)
            self._retry_path(spec, path, why)

        # The claim folders of the ids the intents will get, made ahead for a group of a burst (a mkdir each, in
        # slices on the loop, outside the transaction); the intents take those ids, then the refusals new ones.
        # Those no record took are removed. A few files make theirs in the transaction.
        planned: list[int | None] = [None] * len(checked)
        ahead: dict[int, Path] = {}
        if len(checked) >= FOLDERS_AHEAD_FROM:
            first = store.inputs.next_id()
            ids = list(range(first, first + len(checked)))
            made = await _make_claim_folders(self.inbox, ids)
            planned, ahead = [*ids], {iid: folder for iid, folder in made if isinstance(folder, Path)}
        try:
            with store.transaction():
                for (spec, acc), iid in zip(checked, planned):
                    p = self._isolated(acc.path, self._record_intent, spec, acc, iid, ahead,
                                       retry=functools.partial(retry, spec, acc.path))
                    if p is not None:
                        pendings.append(p)
                for spec, ref in refused:
                    self._isolated(ref.path, self._record_refusal, spec, ref,
                                   retry=functools.partial(retry, spec, ref.path))
        except StateError as exc:  # the group's commit failed (a full disk): nothing of it is recorded
            for p in pendings:
                _remove_claim_folder(p.intent.dest.parent)
            for spec, found in [*refused, *checked]:
                self._retry_path(spec, found.path, f"not recorded: {exc.one_line()}")
            return
        finally:
            for folder in ahead.values():
                _remove_claim_folder(folder)
        for _, found in [*refused, *checked]:  # recorded: its next transient error backs off from the start
            if found.path not in retried:
                self._path_attempts.pop(found.path, None)
        if pendings:
            await self._finish_claims(pendings)

    def _isolated(self, path: Path, fn: Any, *args: Any, retry: Callable[[str], None] | None = None) -> Any:
        """Run one file's records in its own savepoint: its failure never drops the other files' records.

        A failure to write the state file (:class:`StateError`: a full disk, an I/O error) is transient:
        ``retry(why)`` hands the file's step over again later, when given. Anything else is logged.
        """
        try:
            with self.store.transaction():
                return fn(*args)
        except Exception as exc:  # noqa: BLE001 - this file only; logged, the group goes on
            why = exc.one_line() if isinstance(exc, EdgeorchError) else f"{type(exc).__name__}: {exc}"
            if retry is not None and isinstance(exc, StateError):
                retry(f"not recorded: {why}")
            else:
                log.error("input %s not recorded: %s", display_path(path), why)
            return None

    def _record_refusal(self, spec: WatchSpec, ref: Refuse) -> None:
        """Record a refused file (an input row, its audit record, a warning, an event), unless its owner's refusals
        passed the rate rule's limit in this window (:class:`~edgeorch.control.refusals.RefusalLimiter`): then
        it is only counted, the count recorded when the window has ended (:meth:`_record_unrecorded`). Either
        way the file is noted as refused while it stays unchanged (a rescan does not count it again)."""
        shown = display_path(ref.path)
        try:
            uid = os.lstat(ref.path).st_uid
        except OSError:
            uid = -1
        ended, admitted = self._refusals.admit(*refusal_owner(uid))
        self._record_unrecorded(ended)
        if admitted:
            self.store.inputs.record_refused(pipeline=spec.pipeline, folder=str(spec.folder), source=shown,
                                              reason=ref.reason)
            log.warning("input refused: %s: %s", shown, ref.reason)
            self._publish(state="refused", pipeline=spec.pipeline, file=shown, reason=ref.reason)
        elif self._refusals_timer is None:  # the count is recorded when the window ends, more refusals or not
            self._arm_refusals_timer()
        refusal = Refusal(self.store.clock())  # not earlier than the record's time: the rule holds for both
        self.store.after_commit(functools.partial(self._refused.note, ref.path, refusal))

    def _record_unrecorded(self, summaries: list[Any]) -> None:
        """Each owner's refused files counted but not recorded in a window that has ended: one event and one
        warning each (in the caller's transaction)."""
        for s in summaries:
            text = (f"{s.count} more refused file{'s' if s.count != 1 else ''} of {s.user} not recorded in the "
                    f"minute after {format_timestamp(s.since)} (at most {self._refusals.limit} a minute per owner "
                    "are)")
            self.store.events.add("inputs_refused_unrecorded", text, actor=s.user,
                                  data={"count": s.count, "uid": s.uid, "since": s.since, "until": s.until})
            log.warning("%s", text)

    def _arm_refusals_timer(self) -> None:
        """Flush the counts when the earliest window holding one ends (none pending: no timer)."""
        end = self._refusals.next_end()
        if end is not None and not self.stopped:
            self._refusals_timer = self.loop.call_later(max(0.0, end - self.store.clock()) + 0.01,
                                                        self._on_refusals_timer)

    def _on_refusals_timer(self) -> None:
        self._refusals_timer = None
        self._flush_refusals()
        self._arm_refusals_timer()  # another owner's window, still open

    def _flush_refusals(self, *, all_pending: bool = False) -> None:
        """Record the counts of ended windows now (``all_pending``: every window's, ended or not: a stop)."""
        summaries = self._refusals.drain() if all_pending else self._refusals.due()
        if not summaries:
            return
        try:
            with self.store.transaction():
                self._record_unrecorded(summaries)
        except EdgeorchError as exc:
            log.error("cannot record the count of unrecorded refused files: %s", exc.one_line())

    def _record_intent(self, spec: WatchSpec, acc: Any, planned: int | None, ahead: dict[int, Path]) -> _Pending:
        """Record the intent, under id ``planned`` when that id is still free and its claim folder was made
        ahead (``ahead``: id -> folder, made before the transaction for the group's ids); the id the record gets takes
        its folder from ``ahead``, or has it made now, inside the transaction. Either way the folder was
        made exclusively for this id (:func:`make_claim_folder`: ``in-<id>``, suffixed when a restored
        backup reused the id), and its real path is what is recorded. A folder taken here for a record
        that does not keep it (its id was taken meanwhile, or it rolls back) is removed."""
        taken: list[Path] = []  # the inbox path given for each id asked (a second one: the first id was taken)

        def inbox_for(iid: int) -> str:
            folder = ahead.pop(iid, None) or make_claim_folder(self.inbox, iid)
            taken.append(claim_dest(folder.parent, folder.name, acc.path.name))
            return str(taken[-1])

        try:
            iid = self.store.inputs.record_intent(pipeline=spec.pipeline, folder=str(spec.folder),
                                                   source=str(acc.path), dev=acc.dev, ino=acc.ino, size=acc.size,
                                                   mtime_ns=acc.mtime_ns, inbox_for=inbox_for,
                                                   input_id=planned if planned in ahead else None)
        except BaseException:
            for dest in taken:
                _remove_claim_folder(dest.parent)  # made for a record that rolls back
            raise
        for unused in taken[:-1]:  # asked for an id that was taken meanwhile
            _remove_claim_folder(unused.parent)
        dest = taken[-1]
        return _Pending(iid, spec, ClaimIntent(dest.parent.name, acc.path, dest, acc.size, acc.mtime_ns,
                                               acc.dev, acc.ino, spec.max_size, spec.allow_sparse))

    async def _finish_claims(self, pendings: list[_Pending]) -> None:
        """Rename + verify + hash each recorded intent (:func:`_claim_all`: the folders synced together),
        settle what cannot finish, then start a run per claimed file.

        Transient errors leave the record ``claiming`` and retry with backoff; only a
        vanished file (``vanished``) or a refused one (``refused``) is final.
        """
        store = self.store
        for p in pendings:  # being tried now: held again below only if this try meets a transient error too
            self._claim_retries.pop(p.iid, None)
        pendings = [p for p in pendings if not self._to_long_lane(p)]
        if not pendings:
            return
        # The folders of the runs these claims will start (one per file not batched) are made with the claims,
        # before the group's transaction; those no run took are released once the group's runs are recorded.
        folders = self.engine.run_folders
        run_ids = folders.plan(store.runs.next_id(), sum(p.spec.mode != "batch" for p in pendings))
        results, made = await _claim_all([p.intent for p in pendings], self.engine.config.runs_dir, run_ids,
                                         self._cancel)
        folders.keep(made)
        try:
            await self._start_claimed(pendings, results)
        finally:
            folders.release()

    def _to_long_lane(self, p: _Pending) -> bool:
        """Hand a long file (:data:`LONG_CLAIM_BYTES`) to its folder's lane; False for another file."""
        if p.intent.size < LONG_CLAIM_BYTES or self.stopped:
            return False
        folder = p.spec.folder
        self._long.setdefault(folder, []).append(p)
        if folder not in self._long_tasks:
            self._long_tasks[folder] = self.loop.create_task(self._long_lane(folder))
        return True

    async def _long_lane(self, folder: Path) -> None:
        """Claim the long files of ``folder`` one after another on the long-file threads; each result goes
        to the claim worker (:meth:`_start_hashed`), which records it and starts its run."""
        try:
            while (queue := self._long.get(folder)) and not self.stopped:
                p = self._long_now[folder] = queue.pop(0)
                if self._long_pool is None:
                    self._long_pool = ThreadPoolExecutor(LONG_CLAIM_LANES, thread_name_prefix="edgeorch-long-claim")
                res, snap = await self.loop.run_in_executor(self._long_pool, _claim_and_store, p.intent,
                                                            self._cancel, self._store_of(p))
                if snap is not None:
                    self._stored[p.iid] = snap
                self._hashed.append((p, res))
                self._wake.set()
        finally:
            self._long_now.pop(folder, None)
            self._long_tasks.pop(folder, None)
            if not self._long.get(folder):
                self._long.pop(folder, None)

    async def _start_hashed(self, done: list[tuple[_Pending, ClaimedFile | BaseException]]) -> None:
        """Start the runs of long files their lane claimed (run folders made ahead, as for a group)."""
        pendings = [p for p, _ in done]
        folders = self.engine.run_folders
        run_ids = folders.plan(self.store.runs.next_id(), sum(p.spec.mode != "batch" for p in pendings))
        made = await make_run_dirs(self.engine.config.runs_dir, run_ids)
        folders.keep(made)
        try:
            await self._start_claimed(pendings, [r for _, r in done])
        finally:
            folders.release()

    async def _start_claimed(self, pendings: list[_Pending], results: list[ClaimedFile | BaseException]) -> None:
        """Settle each claim's outcome (``results``, in the order of ``pendings``), then start a run for each
        claimed file: one transaction for the group."""
        store = self.store
        started: list[tuple[dict[str, Any], ClaimedFile]] = []
        for pending, res in zip(pendings, results):
            try:
                if isinstance(res, ClaimedFile):
                    changed = changed_since(res.path, res.stamp) if res.stamp is not None else None
                    if changed is not None:  # written through another handle after hashing: hash again
                        self._retry_claim(pending, changed)
                        continue
                    rec: dict[str, Any] = {"id": pending.iid, "pipeline": pending.spec.pipeline,
                           "watch_folder": str(pending.spec.folder), "source_name": pending.intent.source.name,
                           "source_path": str(pending.intent.source), "sha256": res.sha256}
                    started.append((rec, res))
                elif is_transient(res):
                    self._retry_claim(pending, res.one_line() if isinstance(res, EdgeorchError) else str(res))
                elif isinstance(res, ClaimRefused):
                    self._refuse_claimed(pending, res)
                elif isinstance(res, ClaimNotPermitted):
                    self._refuse_unmovable(pending, res)
                elif isinstance(res, ClaimError):
                    store.inputs.record_state(pending.iid, "vanished", reason=res.one_line())
                else:
                    why = f"cannot claim: {res}"
                    log.error("input %s: %s", pending.iid, why)
                    store.inputs.record_state(pending.iid, "refused", reason=why)
                    _remove_claim_folder(pending.intent.dest.parent)  # left empty: the file was not moved
            except Exception as exc:  # noqa: BLE001 - this input only
                log.error("input %s: settling its claim failed: %s", pending.iid, exc)
        if not started:
            return
        started = await self._snapshot_inputs(started, {p.iid: p for p in pendings})
        # One transaction (one fsync) for the group's runs: each run row, its input's ``claimed`` (size,
        # sha256) and ``started`` state commit together (each file in its own savepoint), with the
        # input's data version when its watch names a dataset. A crash before the commit leaves
        # ``claiming`` records whose files are in the inbox: recovery's ``finish`` hashes them again
        # and starts them.
        by_id = {p.iid: p for p in pendings}
        try:
            with store.transaction():
                for rec, res in started:
                    self._isolated(res.path, self._start_input, rec, res.path, (res.size, res.sha256),
                                   retry=functools.partial(self._retry_claim, by_id[rec["id"]]))
        except StateError as exc:  # the group's commit failed (a full disk): each claim is tried again later
            for rec, _ in started:
                self._retry_claim(by_id[rec["id"]], f"its start was not recorded: {exc.one_line()}")
        finally:
            for rec, _ in started:
                if rec.get("snapshot") is not None:
                    rec["snapshot"].release()  # committed (or not): its chunks need no pins any more
        self._publish_versions()
        self._arm_batches()

    async def _snapshot_inputs(self, started: list[tuple[dict[str, Any], ClaimedFile]],
                               pendings: dict[int, _Pending]) -> list[tuple[dict[str, Any], ClaimedFile]]:
        """Chunk and store the claimed files of watches that name a dataset (worker thread), before
        their claims are recorded: each version commits with its claim (docs/datasets.md). A file
        that cannot be stored now (a full disk) keeps its claim ``claiming`` and is retried like any
        transient claim step."""
        jobs = [(i, spec.dataset) for i, (rec, _) in enumerate(started)
                if (spec := self._spec_for(rec["watch_folder"], rec["pipeline"])) is not None
                and spec.dataset is not None]
        if not jobs:
            return started
        from ...datasets.service import object_store

        objects = object_store(self.config.state_dir)
        stored = {i: self._stored.pop(started[i][0]["id"]) for i, _ in jobs if started[i][0]["id"] in self._stored}
        todo = [(i, decl) for i, decl in jobs if i not in stored]  # a long file's lane stored it already
        made = await self.loop.run_in_executor(
            None, _snapshot_all, objects,
            [(started[i][1].path, decl.compress, started[i][0]["source_name"]) for i, decl in todo],
            self._cancel) if todo else []
        by_job = {**stored, **{i: res for (i, _), res in zip(todo, made)}}
        results = [by_job[i] for i, _ in jobs]
        failed: set[int] = set()
        for (i, decl), res in zip(jobs, results):
            rec = started[i][0]
            if isinstance(res, BaseException):
                failed.add(i)
                why = res.one_line() if isinstance(res, EdgeorchError) else str(res)
                self._retry_claim(pendings[rec["id"]], f"cannot store it as a version of dataset {decl.name}: {why}")
            else:
                rec["snapshot"] = res
        return [item for i, item in enumerate(started) if i not in failed]

    def _store_of(self, p: _Pending) -> tuple[Any, bool, str] | None:
        """What a long file is stored with, in its lane: ``(object store, compress, the file's name in the
        version)`` when its watch names a dataset (as :meth:`_snapshot_inputs` stores it), else None."""
        if p.spec.dataset is None:
            return None
        from ...datasets.service import object_store

        return object_store(self.config.state_dir), p.spec.dataset.compress, p.intent.source.name

    def _record_version(self, spec: WatchSpec | None, rec: dict[str, Any], claimed_path: Path) -> None:
        """The claimed file as the next version of its watch's dataset, in the caller's transaction (once
        per input: an input recovered after its claim was recorded already has its version)."""
        if spec is None or spec.dataset is None:
            return
        iid = int(rec["id"])
        if self.store.datasets.of_input(iid) is not None:
            return
        snap: Any = rec.get("snapshot")
        own = snap is None
        if own:  # recovery of a claim recorded before the watch named a dataset: chunked here (rare)
            from ...datasets.service import object_store, take_snapshot

            snap = take_snapshot(claimed_path, object_store(self.config.state_dir),
                                 compress=spec.dataset.compress, name=rec["source_name"])
        try:
            self.store.datasets.record_version(spec.dataset.name, snap, source="input",
                                               source_path=rec["source_path"], input_id=iid, actor="watch")
        finally:
            if own:
                snap.release()
        self._versions.append(iid)

    def _publish_versions(self) -> None:
        """Announce the versions recorded by the last transaction (those it really committed)."""
        ids, self._versions = self._versions, []
        for iid in ids:
            v = self.store.datasets.of_input(iid)
            if v is not None:
                self.publish(DatasetVersioned(self.engine.clock(), v["dataset"], v["version"], "input", v["files"],
                                              v["size"], v["new_bytes"], input_id=iid))

    def _refuse_claimed(self, pending: _Pending, exc: ClaimRefused) -> None:
        """The moved file is not the inspected one (hard link / swap): refused, never run."""
        store = self.store
        why = exc.message if hasattr(exc, "message") else str(exc)
        inbox_path = None
        if not exc.removed and os.path.lexists(pending.intent.dest):
            q = quarantine(pending.intent.dest, self.quarantine_dir, f"refused at claim: {why}",
                           source_name=pending.intent.source.name,
                           details={"pipeline": pending.spec.pipeline, "input_id": pending.iid,
                                    "watch_folder": str(pending.spec.folder)})
            inbox_path = str(q.path)
        store.inputs.record_state(pending.iid, "refused", reason=why, inbox_path=inbox_path)
        log.warning("input %s refused at claim: %s", pending.iid, why)
        self._publish(input_id=pending.iid, state="refused", pipeline=pending.spec.pipeline,
                      file=display_path(pending.intent.source), reason=why)
        try:
            os.rmdir(pending.intent.dest.parent)
        except OSError:
            pass

    def _refuse_unmovable(self, pending: _Pending, exc: ClaimNotPermitted) -> None:
        """The system refused the move into the inbox (a sticky folder the inspection could not foresee, an
        immutable file): refused with the reason, the file left where it is, its empty claim folder removed;
        recorded once while the file stays unchanged (:mod:`.refusals`)."""
        why = exc.message if hasattr(exc, "message") else str(exc)
        intent = pending.intent
        self.store.inputs.record_state(pending.iid, "refused", reason=why)
        _remove_claim_folder(intent.dest.parent)
        shown = display_path(intent.source)
        log.warning("input refused: %s: %s", shown, why)
        self._publish(input_id=pending.iid, state="refused", pipeline=pending.spec.pipeline, file=shown, reason=why)
        self._refused.note(intent.source, Refusal(self.store.clock(), intent.dev, intent.ino, intent.size))

    def _start_input(self, rec: dict[str, Any], claimed_path: Path,
                     claimed: tuple[int, str] | None = None) -> int | None:
        """Duplicate check, then the run and the input's ``started`` state in one transaction.

        ``claimed=(size, sha256)``: the claim is recorded in that transaction too (else it already was).
        """
        from ...engine.requests import RunRequest

        store = self.store
        iid = int(rec["id"])
        if claimed is not None:
            store.inputs.record_claimed(iid, *claimed)
        spec = self._spec_for(rec["watch_folder"], rec["pipeline"])
        sha = rec.get("sha256")
        if sha is None:
            _, sha = hash_file(claimed_path)
        skip = spec.skip_duplicates if spec is not None else True
        if skip and sha:
            prior = store.inputs.processed_sha(rec["pipeline"], sha, exclude=iid)
            if prior is not None:
                # Said as it is: a copy dropped while the first one's run is still going was not "processed" yet.
                how = (f"which {rec['pipeline']} was processing when it arrived (run {prior['run_id']})" if prior["state"] == "started"
                       else f"already processed by {rec['pipeline']} (run {prior['run_id']})")
                store.inputs.record_state(iid, "duplicate", reason=f"same content (sha256 {sha[:12]}) as input "
                                          f"{prior['id']}, {how}; skip_duplicates = true")
                self._publish(input_id=iid, state="duplicate", pipeline=rec["pipeline"], file=str(claimed_path))
                return None
        self._record_version(spec, rec, claimed_path)
        paused = self.requests.paused_reason(rec["pipeline"])
        if paused is not None:  # held, not refused: it starts when the pipeline is resumed (start_waiting)
            self._wait(iid, rec, paused, claimed_path)
            return None
        if spec is not None and spec.mode == "batch":
            # Into the open batch once its claim is committed (a rolled-back claim never joins one).
            self.store.after_commit(functools.partial(self._join_batch, spec, iid, claimed_path))
            return None
        try:  # the front door checks paused, shutting down, params and resources
            param = spec.param if spec is not None else "input"
            run_id = self.requests.start(RunRequest(
                rec["pipeline"], {param: str(claimed_path)}, trigger=f"input:{iid}", actor="watch", source="watch",
                within=lambda rid: store.inputs.record_started(iid, rid),
                env={spec.env if spec is not None else DEFAULT_ENV: str(claimed_path)})).run_id
        except StateError:
            raise  # not recorded (a full disk): transient, the claim is tried again (_isolated's retry)
        except EdgeorchError as exc:
            # The run cannot be created (pipeline gone, unsatisfiable params or resources): quarantine with the reason.
            self._settle_input(store.inputs.get(iid) | {"run_id": None}, "failed", f"not started: {exc.one_line()}")
            return None
        return run_id

    def _wait(self, iid: int, rec: dict[str, Any], paused: str, path: Path) -> None:
        """Hold claimed input ``iid`` while its pipeline is paused (``waiting``; said once: recovery submits a
        waiting input again and it simply waits on)."""
        if rec.get("state") == InputState.WAITING:
            return
        pipeline = rec["pipeline"]
        reason = f"{paused}; it starts when the pipeline is resumed (`edgeorch pipelines resume {pipeline}`)"
        self.store.inputs.record_state(iid, InputState.WAITING, reason=reason)  # logged as an input event
        self._publish(input_id=iid, state="waiting", pipeline=pipeline, file=str(path), reason=reason)

    def start_waiting(self, pipeline: str | None = None) -> list[int]:
        """Start the inputs that waited for ``pipeline`` (for any pipeline no longer paused, when None), in
        their order of arrival, as a group's claims start (one transaction, each input isolated). An input
        whose claimed file left the inbox meanwhile is ``lost``. Returns the ids handed on."""
        rows = [r for r in self.store.inputs.waiting(pipeline) if self.requests.paused_reason(r["pipeline"]) is None]
        if not rows:
            self._waiting_retries.pop(pipeline, None)
            return []
        failed: dict[int, str] = {}
        try:
            with self.store.transaction():
                for r in rows:
                    path = Path(r["inbox_path"] or "")
                    if not r["inbox_path"] or not path.is_file():
                        why = "its claimed file left the inbox while it waited"
                        self.store.inputs.record_state(r["id"], InputState.LOST, reason=why)
                        self._publish(input_id=r["id"], state="lost", pipeline=r["pipeline"], file=str(path),
                                      reason=why)
                        continue
                    self._isolated(path, self._start_input, r, path,
                                   retry=functools.partial(failed.__setitem__, int(r["id"])))
        except StateError as exc:  # the commit failed (a full disk): every one of them waits on
            failed = {int(r["id"]): exc.one_line() for r in rows}
        handed = [int(r["id"]) for r in rows if int(r["id"]) not in failed]
        if failed:  # not recorded (a full disk): they still wait; handed on again after a backoff
            n = self._waiting_retries[pipeline] = self._waiting_retries.get(pipeline, 0) + 1
            delay = retry_delay(n)
            log.warning("%d waiting input(s) of %s not handed on: %s; retry %d in %.1fs", len(failed),
                        pipeline or "their pipelines", next(iter(failed.values())), n, delay)
            self._later(delay, self.start_waiting, pipeline)
        else:
            self._waiting_retries.pop(pipeline, None)
        if handed:
            log.info("%d waiting input(s) handed on: %s resumed", len(handed), pipeline or "their pipelines")
        self._publish_versions()
        self._arm_batches()
        return handed


    # -- batch mode ------------------------------------------------------------------------------

    def _batcher(self, spec: WatchSpec) -> Batcher:
        b = self._batchers.get(spec.folder)
        if b is None:
            b = self._batchers[spec.folder] = Batcher(spec.batch_size, spec.batch_window)
        return b

    def _join_batch(self, spec: WatchSpec, iid: int, path: Path) -> None:
        """Add claimed input ``iid`` to its watch's open batch; start the batch's run when that fills it, else
        say (event ``batched``) where it waits and until when: a follower sees why it has not started yet."""
        batcher = self._batcher(spec)
        full = batcher.add((iid, path), self.loop.time())
        if full:
            try:
                self._start_batch(spec, full)
            except EdgeorchError as exc:
                log.error("batch of %s not started: %s", spec.folder, exc.one_line())
            return
        self._publish(input_id=iid, state="batched", pipeline=spec.pipeline, file=str(path),
                      reason=self._batch_reason(spec, batcher, len(batcher)))

    def _batch_reason(self, spec: WatchSpec, batcher: Batcher, position: int) -> str:
        """Where a file of an open batch waits and until when (its ``batched`` event; ``edgeorch inputs``)."""
        deadline = batcher.next_deadline()
        left = max(0.0, deadline - self.loop.time()) if deadline is not None else spec.batch_window
        return (f"file {position} of {spec.batch_size} of the open batch of {spec.folder}; its run starts when "
                f"the batch is full or in {left:.1f}s (batch_window), whichever comes first")

    def held(self) -> dict[int, str]:
        """Input id -> why it has not started yet, for each recorded input this service holds in memory:
        a ``claiming`` one whose claim is tried again later or that waits for (or is in) its long-file lane, a
        ``claimed`` one in an open batch (what ``edgeorch inputs`` shows as its reason; none of it is in the
        state file)."""
        now = self.loop.time()
        out: dict[int, str] = {iid: f"{r.reason}; claim attempt {r.attempts + 1} in {max(0.0, r.due - now):.1f}s"
                               for iid, r in self._claim_retries.items()}
        for folder, p in self._long_now.items():
            out[p.iid] = f"being hashed ({p.intent.size} bytes) in the long-file lane of {folder}"
        for folder, queue in self._long.items():
            for ahead, p in enumerate(queue, 1 if folder in self._long_now else 0):
                out[p.iid] = f"waits for the long-file lane of {folder} ({ahead} long file(s) before it)"
        for spec in self.watches:
            batcher = self._batchers.get(spec.folder)
            if batcher is None:
                continue
            for position, (iid, _) in enumerate(batcher.items(), 1):
                out[iid] = self._batch_reason(spec, batcher, position)
        return out

    def _close_left_batches(self, new: list[WatchSpec]) -> None:
        """Before a reload's watches replace :attr:`watches`: the open batch of a batch watch that goes (or stops
        being one, or now names another pipeline) starts its run now, under the watch it was opened by. It stayed
        in memory, its files ``claimed`` with no run (`edgeorch inputs` said nothing), and the next start ran
        each as a single file, breaking the batch contract (the param a JSON array, the variable a list file)."""
        for spec in self.watches:
            batcher = self._batchers.get(spec.folder)
            if spec.mode != "batch" or batcher is None:
                continue
            after = next((s for s in new if s.folder == spec.folder), None)
            if after is not None and after.mode == "batch" and after.pipeline == spec.pipeline:
                continue
            del self._batchers[spec.folder]
            items = batcher.close()
            if items:
                log.info("batch watch of %s %s: its open batch of %d file(s) starts now", spec.folder,
                         "removed" if after is None else "changed", len(items))
                try:
                    self._start_batch(spec, items)
                except EdgeorchError as exc:
                    log.error("batch of %s not started: %s", spec.folder, exc.one_line())
        self._arm_batches()

    def _arm_batches(self) -> None:
        """One ``call_at`` for the earliest open batch's window (no timer when none is open)."""
        if self._batch_timer is not None:
            self._batch_timer.cancel()
            self._batch_timer = None
        deadlines = [d for b in self._batchers.values() if (d := b.next_deadline()) is not None]
        if deadlines and not self.stopped:
            self._batch_timer = self.loop.call_at(min(deadlines), self._on_batch_timer)

    def _on_batch_timer(self) -> None:
        self._batch_timer = None
        now = self.loop.time()
        for folder, b in list(self._batchers.items()):
            items = b.due(now)
            spec = next((s for s in self.watches if s.folder == folder), None)
            if items and spec is not None:
                try:
                    self._start_batch(spec, items)
                except EdgeorchError as exc:
                    log.error("batch of %s not started: %s", folder, exc.one_line())
        self._arm_batches()

    def _start_batch(self, spec: WatchSpec, items: list[tuple[int, Path]]) -> int | None:
        """One run for a closed batch: the param holds a JSON array of the claimed paths, and the
        watch's variable (``EDGEORCH_INPUT``) the path of a file listing them, one per line
        (``<inbox>/batch-in-<first id>.paths``; a claimed name never holds a newline, so the list
        splits unambiguously, whatever ``:`` or spaces the names contain).

        The run and every input's ``started`` commit together. A batch is held in memory only
        while open; after a crash its inputs are ``claimed`` with no run and recovery
        (``submit``) puts them into a new batch.
        """
        import json

        from ...engine.requests import RunRequest

        store = self.store
        ids = [i for i, _ in items]
        paths = [str(p) for _, p in items]
        paused = self.requests.paused_reason(spec.pipeline)
        if paused is not None:  # the batch closed during a pause: its inputs wait, a new batch at the resume
            with store.transaction():
                for iid, path in items:
                    self._isolated(path, lambda i, p: self._wait(i, store.inputs.get(i), paused, p), iid, path)
            return None
        try:
            listing = self.inbox / batch_listing_name(ids[0])
            write_atomic(listing, "".join(p + "\n" for p in paths).encode("utf-8", "surrogateescape"))
        except OSError as exc:  # e.g. the inbox's disk is full: the batch waits and is tried again
            log.warning("batch of %s: cannot write its path list: %s; retrying", spec.folder, exc.strerror)
            self._later(retry_delay(1), self._start_batch, spec, items)
            return None
        try:

            def within(run_id: int) -> None:
                for iid in ids:
                    store.inputs.record_started(iid, run_id)

            run_id = self.requests.start(RunRequest(
                spec.pipeline, {spec.param: json.dumps(paths)}, trigger=f"input:{ids[0]}", actor="watch",
                source="watch", within=within, env={spec.env: str(listing)})).run_id
        except StateError as exc:  # not recorded (a full disk): the batch is tried again, its files kept
            log.warning("batch of %s: its run was not recorded: %s; retrying", spec.folder, exc.one_line())
            self._later(retry_delay(1), self._start_batch, spec, items)
            return None
        except EdgeorchError as exc:
            for iid in ids:
                self._settle_input(store.inputs.get(iid) | {"run_id": None}, "failed", f"not started: {exc.one_line()}")
            return None
        log.info("batch of %d file(s) from %s started run %s", len(ids), spec.folder, run_id)
        return run_id


def batch_listing_name(first_input: int) -> str:
    """The name, in the inbox, of the path list of the batch whose first input is ``first_input``."""
    return f"batch-in-{first_input}.paths"


def _remove_claim_folder(folder: Path) -> None:
    """Remove the (empty) claim folder made for an intent whose record rolled back or was never made; left
    as it is when anything is in it or it is gone (``rmdir`` never removes a non-empty folder nor follows a
    link)."""
    try:
        os.rmdir(folder)
    except OSError:
        pass


def _remove_left_claim_folders(inbox: Path, next_id: int) -> None:
    """Remove the empty claim folders ``in-<id>`` of the ids from ``next_id`` on (no record has such an id)
    that a daemon killed between making a group's folders and committing its intents left; else the next
    inputs would get those ids with folders named ``in-<id>-1``. The ids of a group are consecutive: up to
    the first missing folder, at most a group's worth; a folder with anything in it stays."""
    remove_empty_in_a_row([inbox / claim_folder_name(i) for i in range(next_id, next_id + CLAIM_GROUP)])


def _remove_emptied_claim_folders(inbox: Path, records: list[InputRecord]) -> None:
    """Remove the empty claim folder ``in-<id>`` of each settled input whose file lives elsewhere now (quarantine):
    a daemon killed between moving the file out and removing its folder left it, and no later start did. A folder
    with anything in it stays; an input still being claimed keeps its folder. One listing of the inbox."""
    try:
        names = set(os.listdir(inbox))
    except OSError:
        return
    for rec in records:
        name = claim_folder_name(rec.id)
        if name not in names or rec.state in ("claiming", "claimed", "waiting", "started"):
            continue
        if rec.inbox_path is not None and rec.inbox_path.parent == inbox / name:
            continue  # its file is (or was kept) there
        _remove_claim_folder(inbox / name)


async def _make_claim_folders(inbox: Path, ids: list[int]) -> list[tuple[int, Path | BaseException]]:
    """:func:`make_claim_folder` for each input id, in slices on the loop: ``(id, folder)``, or ``(id, why
    not)``; never raises (an intent whose folder was not made makes it in its transaction, and meets the error
    there)."""
    out: list[tuple[int, Path | BaseException]] = []
    async for iid in sliced(ids):
        try:
            out.append((iid, make_claim_folder(inbox, iid)))
        except Exception as exc:  # noqa: BLE001 - this intent's own outcome
            out.append((iid, exc))
    return out


def _claim_one(intent: ClaimIntent, cancel: threading.Event) -> ClaimedFile | BaseException:
    """:func:`perform_claim` of one long file (with its own fsyncs), in a long-file lane's thread; never
    raises: the outcome is the claimed file or the exception."""
    try:
        return perform_claim(intent, cancel=cancel)
    except Exception as exc:  # noqa: BLE001 - the file's own outcome
        return exc


async def _claim_all(intents: list[ClaimIntent], runs_dir: Path, run_ids: list[int], cancel: threading.Event | None = None
                     ) -> tuple[list[ClaimedFile | BaseException], dict[int, Path]]:
    """:func:`perform_claim` each intent (no per-file fsync), then the folders synced together (one call in a
    worker thread); then the folders of ``run_ids`` (:func:`~edgeorch.engine.files.make_run_dirs`, the runs the
    claims are about to start).

    A file of the daemon's user under :data:`LOOP_CLAIM_BYTES` is claimed on the loop, in slices; a bigger one in
    a worker thread, meanwhile; so is one found to need more after its rename on the loop (another user's file,
    whose copy is fsynced; one grown since it was inspected: :class:`NotQuick`). Never raises: each intent's
    outcome is its result or its exception, in the order of ``intents``. When the folders cannot be synced, every
    claimed file of the group becomes a :class:`ClaimDeferred` (its rename is not known to be durable; the retry
    syncs again).
    """
    loop = asyncio.get_running_loop()
    threaded: list[tuple[list[int], asyncio.Future[list[ClaimedFile | BaseException]]]] = []

    def in_thread(ids: list[int]) -> None:
        if ids:
            threaded.append((ids, loop.run_in_executor(None, _claim_each, [intents[i] for i in ids], cancel)))

    in_thread([i for i, intent in enumerate(intents) if intent.size >= LOOP_CLAIM_BYTES])
    out: list[ClaimedFile | BaseException] = [ClaimInterrupted("not claimed")] * len(intents)
    later: list[int] = []
    async for i in sliced([i for i, intent in enumerate(intents) if intent.size < LOOP_CLAIM_BYTES]):
        out[i] = _claim_unsynced(intents[i], cancel, quick_max=LOOP_CLAIM_BYTES)
        if isinstance(out[i], NotQuick):
            later.append(i)
    in_thread(later)
    for ids, fut in threaded:
        for i, res in zip(ids, await fut):
            out[i] = res
    dirs: set[Path] = set()
    for intent, res in zip(intents, out):
        if not isinstance(res, BaseException):  # the inbox too: the claim folder's own entry
            dirs.update((intent.dest.parent, intent.dest.parent.parent, intent.source.parent))
    try:
        await loop.run_in_executor(None, sync_dirs, sorted(dirs))
    except OSError as exc:
        why = ClaimDeferred(f"cannot make the claims durable now: {exc.strerror} (will retry)")
        out = [why if isinstance(r, ClaimedFile) else r for r in out]
    return out, await make_run_dirs(runs_dir, run_ids)


def _claim_each(intents: list[ClaimIntent], cancel: threading.Event | None) -> list[ClaimedFile | BaseException]:
    """:func:`_claim_unsynced` of each intent (a group's big files, in a worker thread)."""
    return [_claim_unsynced(intent, cancel) for intent in intents]


def _claim_unsynced(intent: ClaimIntent, cancel: threading.Event | None,
                    quick_max: int | None = None) -> ClaimedFile | BaseException:
    """:func:`perform_claim` without its folder fsyncs (the caller syncs a group's folders together); never
    raises: the outcome is the claimed file or the exception (a stop under way: :class:`ClaimInterrupted`, the
    file left claiming for the next start; ``quick_max`` given: :class:`NotQuick` for a file that needs more)."""
    if cancel is not None and cancel.is_set():
        return ClaimInterrupted("not claimed: the daemon is stopping; the next start claims it")
    try:
        return perform_claim(intent, fsync=False, cancel=cancel, quick_max=quick_max)
    except Exception as exc:  # noqa: BLE001 - one file's failure is that file's result
        return exc


def _snapshot_all(objects: Any, files: list[tuple[Path, bool, str]],
                  cancel: threading.Event | None = None) -> list[Any]:
    """:func:`~edgeorch.datasets.snapshot.take_snapshot` of each ``(path, compress, name)``; runs in a
    worker thread and never raises: each file's outcome is its snapshot or its exception (``SnapshotCancelled``
    once ``cancel`` is set: a stop ends a long file's storing at its next chunk, as a claim's hash)."""
    from ...datasets.snapshot import take_snapshot

    out: list[Any] = []
    for path, compress, name in files:
        try:
            out.append(take_snapshot(path, objects, compress=compress, name=name, cancel=cancel))
        except Exception as exc:  # noqa: BLE001 - one file's failure is that file's result
            out.append(exc)
    return out


def _claim_and_store(intent: ClaimIntent, cancel: threading.Event, store: tuple[Any, bool, str] | None
                     ) -> tuple[ClaimedFile | BaseException, Any]:
    """A long file's claim (:func:`_claim_one`) and, when its watch names a dataset (``store``: the object store,
    compress, the name), its version's chunks stored too, in the same lane thread: ``(claim result, snapshot or
    its exception or None)``. Stored by the claim worker, a 600 MB file held up every folder's claims."""
    res = _claim_one(intent, cancel)
    if store is None or not isinstance(res, ClaimedFile):
        return res, None
    objects, compress, name = store
    return res, _snapshot_all(objects, [(res.path, compress, name)], cancel)[0]


def _record_of(row: tuple[Any, ...]) -> InputRecord:
    """The :class:`InputRecord` of one ``store.inputs.records`` tuple (any state)."""
    iid, pipeline, state, source, inbox, dev, ino, sha, run_id = row
    return InputRecord(iid, pipeline, state, Path(source), Path(inbox) if inbox else None, dev, ino, sha,
                       str(run_id) if run_id is not None else None)


UNNAMED_OWNERS = -2
"""The rate rule's one bucket for files whose owner has no name in the user database."""


def refusal_owner(uid: int) -> tuple[int, str]:
    """Whose refusals a refused file counts among (``(key, who)`` for the rate rule): its owner when the user
    database names it; one bucket for every uid it does not name. A user with subordinate uids (``useradd``
    gives 65,536) chowned FIFOs to each of them in a user namespace, and each uid had its own 10 a minute: 650k
    records a minute."""
    if uid < 0:
        return -1, "an unknown user"
    named = named_owner(uid)
    if named is None:
        return UNNAMED_OWNERS, "owners not in the user database (subordinate or container uids)"
    return uid, named
