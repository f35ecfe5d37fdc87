"""The daemon's log lines about runs, tasks and inputs, each with its structured fields.

:class:`EventLog` subscribes to the bus and writes one line per change worth
reading in a log: a run queued, resumed, finished; an attempt ended; a task
cached or failed before any attempt; a drop-folder input done, a duplicate,
quarantined; a GPU drained or an attempt over its GPU budget. Each line
carries ``run``, ``task``, ``attempt``, ``pipeline`` and ``input`` as fields
(:mod:`.logfields`), so ``journalctl -u edgeorch RUN_ID=42`` shows run 42's
history. Levels: failures are ``warning``, the rest ``info``; an attempt's
start and a run's activation are ``debug`` (the attempt's end says it all).
Changes other modules already log in words (refused inputs, claim retries,
schedule fires) are ``debug`` here, so they are not said twice at ``info``.

Logger ``edgeorch.events``. Runs inside ``publish``: a filtered-out level
costs one ``isEnabledFor`` check.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..events import (
    AttemptEnded,
    Event,
    GpuBudgetAction,
    GpuDrained,
    InputChanged,
    InputQuarantined,
    PipelinePaused,
    RunFinished,
    RunQueued,
    RunResumed,
    RunStarted,
    TaskCached,
    TaskFailed,
    TaskStarted,
)
from .logfields import log_fields

if TYPE_CHECKING:  # pragma: no cover
    from ..engine.engine import Engine

log = logging.getLogger("edgeorch.events")

QUIET_INPUT_STATES = frozenset({"refused", "claim_retry", "watch_missing", "watch_restored", "file_removed"})
"""Input changes the drop-folder service already logs in its own words (``debug`` here)."""


class EventLog:
    """A bus subscriber writing :mod:`edgeorch.events` as log lines with fields (see the module docstring).

    ``pipeline_of(run_id)``: the pipeline of an active run (None when unknown).
    """

    def __init__(self, pipeline_of: Callable[[int], str | None]) -> None:
        self._pipeline_of = pipeline_of
        self._handlers: dict[type, Callable[[Any], None]] = {
            RunQueued: self._run_queued, RunStarted: self._run_started, RunResumed: self._run_resumed,
            RunFinished: self._run_finished, TaskStarted: self._task_started, AttemptEnded: self._attempt_ended,
            TaskCached: self._task_cached, TaskFailed: self._task_failed, InputChanged: self._input_changed,
            InputQuarantined: self._input_quarantined, GpuDrained: self._gpu_drained,
            GpuBudgetAction: self._gpu_budget, PipelinePaused: self._pipeline_paused,
        }

    @classmethod
    def for_engine(cls, engine: "Engine") -> "EventLog":
        """An event log naming pipelines from ``engine``'s active runs."""
        def pipeline_of(run_id: int) -> str | None:
            ctx = engine.runs.get(run_id)
            return ctx.pipeline.name if ctx is not None else None

        return cls(pipeline_of)

    def on_event(self, event: Event) -> None:
        handler = self._handlers.get(type(event))
        if handler is not None:
            handler(event)

    def _run_queued(self, e: RunQueued) -> None:
        log.info("run %s of %s queued%s", e.run_id, e.pipeline, f" ({e.trigger})" if e.trigger else "",
                 extra=log_fields(run=e.run_id, pipeline=e.pipeline))

    def _run_started(self, e: RunStarted) -> None:
        log.debug("run %s of %s running", e.run_id, e.pipeline, extra=log_fields(run=e.run_id, pipeline=e.pipeline))

    def _run_resumed(self, e: RunResumed) -> None:
        pipeline = e.pipeline or self._pipeline_of(e.run_id)
        log.info("run %s of %s resumed: %s run again", e.run_id, pipeline, ", ".join(e.resumed) or "nothing",
                 extra=log_fields(run=e.run_id, pipeline=pipeline))

    def _run_finished(self, e: RunFinished) -> None:
        level = logging.INFO if e.state == "succeeded" else logging.WARNING
        log.log(level, "run %s of %s %s%s", e.run_id, e.pipeline, e.state, f" ({e.reason})" if e.reason else "",
                extra=log_fields(run=e.run_id, pipeline=e.pipeline))

    def _task_started(self, e: TaskStarted) -> None:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("run %s: %s attempt %s started%s", e.run_id, e.task, e.attempt,
                      f" ({e.resources})" if e.resources else "",
                      extra=log_fields(run=e.run_id, task=e.task, attempt=e.attempt,
                                       pipeline=self._pipeline_of(e.run_id)))

    def _attempt_ended(self, e: AttemptEnded) -> None:
        level = logging.WARNING if e.state in ("failed", "retry_wait") else logging.INFO
        if not log.isEnabledFor(level):
            return
        outcome = {"retry_wait": "failed, to be retried", "succeeded": "succeeded"}.get(e.state, e.state)
        log.log(level, "run %s: %s attempt %s %s%s", e.run_id, e.task, e.attempt, outcome,
                f": {e.reason}" if e.reason else "",
                extra=log_fields(run=e.run_id, task=e.task, attempt=e.attempt, pipeline=self._pipeline_of(e.run_id)))

    def _pipeline_paused(self, e: PipelinePaused) -> None:
        # In the log too: "skipped: pipeline nightly is paused" at each fire said neither who paused it nor why.
        if e.paused:
            log.info("pipeline %s paused by %s%s: new runs are refused, its schedule's fires skipped until it is "
                     "resumed", e.pipeline, e.actor or "?", f" ({e.reason})" if e.reason else "",
                     extra=log_fields(pipeline=e.pipeline))
        else:
            log.info("pipeline %s resumed by %s", e.pipeline, e.actor or "?", extra=log_fields(pipeline=e.pipeline))

    def _task_cached(self, e: TaskCached) -> None:
        # Said as `show` says it: "attempt 96" (an attempt's internal id) read as a run that reused itself.
        log.info("run %s: %s skipped: a verified %s", e.run_id, e.task, e.reason or f"cache hit (attempt id {e.cached_from})",
                 extra=log_fields(run=e.run_id, task=e.task, pipeline=self._pipeline_of(e.run_id)))

    def _task_failed(self, e: TaskFailed) -> None:
        log.warning("run %s: %s failed before any attempt: %s", e.run_id, e.task, e.reason,
                    extra=log_fields(run=e.run_id, task=e.task, pipeline=self._pipeline_of(e.run_id)))

    def _input_changed(self, e: InputChanged) -> None:
        level = logging.DEBUG if e.state in QUIET_INPUT_STATES else logging.INFO
        what = (f"watched folder {e.file}" if e.input_id is None
                else f"input {e.input_id} ({e.file})" if e.file and e.state == "done" else f"input {e.input_id}")
        log.log(level, "%s %s%s%s", what, e.state, f" (run {e.run_id})" if e.run_id is not None else "",
                f": {e.reason}" if e.reason else "",
                extra=log_fields(input=e.input_id, run=e.run_id, pipeline=e.pipeline))

    def _input_quarantined(self, e: InputQuarantined) -> None:
        log.warning("input %s (%s) quarantined as %s: %s", e.input_id, e.source_name, e.file, e.reason,
                    extra=log_fields(input=e.input_id, run=e.run_id, pipeline=e.pipeline))

    def _gpu_drained(self, e: GpuDrained) -> None:
        log.warning("GPU %s drained: %s; it gets no new lease", e.uuid, e.reason)

    def _gpu_budget(self, e: GpuBudgetAction) -> None:
        log.warning("run %s: %s attempt %s %s", e.run_id, e.task, e.attempt, e.reason,
                    extra=log_fields(run=e.run_id, task=e.task, attempt=e.attempt,
                                     pipeline=self._pipeline_of(e.run_id)))
