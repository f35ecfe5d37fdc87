"""What only the bus knows between two scrapes: counts of changes and attempt durations since the daemon started.

Everything else the metrics show is read from the daemon's state when
someone scrapes (:mod:`edgeorch.observe.collectors`); counters of *changes*
cannot be read back from a state, so :class:`EventCounters` subscribes to the
one :class:`~edgeorch.events.Bus` and counts. Its callback runs inside the
engine's ``publish`` (the hot path), so it does the least it can: a dict
lookup on the event's class and one or two dict increments
(:mod:`edgeorch.observe.tally`); the families are built at scrape time.

Counters start at zero when the daemon starts (Prometheus reads a drop as a
counter reset, which ``rate()`` and ``increase()`` handle). Durations: from
an attempt's :class:`~edgeorch.events.TaskStarted` to its
:class:`~edgeorch.events.AttemptEnded` as the engine's clock saw them; for an
attempt adopted at start (started by an earlier daemon) from the start the
state file recorded (``seed``).

It also notes which check tasks (a built-in ``kind``) ended an attempt since
the last scrape (:meth:`EventCounters.take_checks_ended`), so the checks
collector reads just those from the state file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client.core import Metric

from ..events import (
    AttemptEnded,
    Event,
    GpuBudgetAction,
    GpuDrained,
    InputChanged,
    InputQuarantined,
    ModelDeployment,
    ModelRegistered,
    RunFinished,
    ScheduleFired,
    TaskCached,
    TaskFailed,
    TaskStarted,
)
from .tally import Counts, Histograms

AttemptKey = tuple[int, str, int]
"""(run id, task, attempt number): how the bus names an attempt."""


class EventCounters:
    """A bus subscriber (:meth:`on_event`) counting changes; :meth:`families` for a scrape.

    ``pipeline_of(run_id)`` names the pipeline of an *active* run (the
    engine's memory; None when unknown: the label is then ``""``);
    ``kind_of(run_id, task)`` the task's built-in ``kind`` (None: not a check).
    ``seed``: ``((run_id, task, attempt), started_at)`` of the attempts that
    were already live when counting began.
    """

    def __init__(self, pipeline_of: Callable[[int], str | None],
                 seed: Iterable[tuple[AttemptKey, float]] = (),
                 kind_of: Callable[[int, str], str | None] = lambda run_id, task: None) -> None:
        self._pipeline_of = pipeline_of
        self._kind_of = kind_of
        self._started: dict[AttemptKey, float] = dict(seed)
        # (pipeline, task) -> the newest run whose check ended an attempt since the last scrape: only a check's
        # latest attempt is shown, and a daemon nobody scrapes (metrics off) must not keep one entry per attempt.
        self._checks_ended: dict[tuple[str, str], int] = {}
        self.events = Counts("edgeorch_events", "Changes published on the daemon's event bus, by event class.",
                             ["event"])
        self.runs_finished = Counts("edgeorch_runs_finished", "Run ends since the daemon started (a run that is "
                                    "retried counts each time it ends).",
                                    ["pipeline", "state"])
        self.model_registrations = Counts(
            "edgeorch_model_registrations", "Model versions registered, by the verdict of their gates (passed, "
            "failed, none).", ["model", "gate_verdict"])
        self.model_deployments = Counts(
            "edgeorch_model_deployments", "Deployment state changes (promotions, rollbacks, canaries): running, "
            "succeeded, undone, rolled_back, failed.", ["model", "alias", "action", "state"])
        self.attempt_duration = Histograms(
            "edgeorch_attempt_duration_seconds",
            "Attempts that ended since the daemon started: seconds from start to settlement; state is the "
            "task's state after the attempt (succeeded, retry_wait, failed, cancelled).", ["pipeline", "state"])
        self.tasks_cached = Counts("edgeorch_tasks_cached", "Tasks skipped on a verified cache hit.", ["pipeline"])
        self.tasks_failed_unstarted = Counts(
            "edgeorch_tasks_failed_without_attempt",
            "Tasks that failed before any attempt (could not be scheduled or prepared).", ["pipeline"])
        self.drop_inputs = Counts(
            "edgeorch_drop_input_events",
            "Drop-folder inputs that reached a state since the daemon started (done, duplicate, refused, "
            "claim_retry, waiting, batched, quarantined, watch_missing, watch_restored).", ["pipeline", "state"])
        self.schedule_fires = Counts("edgeorch_schedule_fires",
                                     "Schedule fires handled, by action (start, skip, missed, paused, wait).",
                                     ["pipeline", "action"])
        self.gpu_drains = Counts("edgeorch_gpu_drains", "GPUs drained as unhealthy.", ["gpu"])
        self.gpu_budget_actions = Counts("edgeorch_gpu_budget_actions",
                                         "Attempts warned or stopped over their GPU memory budget.", ["action"])
        self._handlers: dict[type, Callable[[Any], None]] = {
            TaskStarted: self._task_started, AttemptEnded: self._attempt_ended, RunFinished: self._run_finished,
            TaskCached: self._task_cached, InputChanged: self._input_changed, InputQuarantined: self._quarantined,
            ScheduleFired: self._schedule_fired, GpuDrained: self._gpu_drained, GpuBudgetAction: self._gpu_budget,
            TaskFailed: self._task_failed, ModelRegistered: self._model_registered,
            ModelDeployment: self._model_deployment,
        }

    # -- the subscriber (the hot path: keep each branch to a few dict operations) ----------------

    def on_event(self, event: Event) -> None:
        """Count ``event``; never raises for an event class it does not know (the bus isolates errors anyway)."""
        cls = type(event)
        self.events.inc((cls.__name__,))
        handler = self._handlers.get(cls)
        if handler is not None:
            handler(event)

    def _pipeline(self, run_id: int | None) -> str:
        return (self._pipeline_of(run_id) if run_id is not None else None) or ""

    def _task_started(self, e: TaskStarted) -> None:
        self._started[(e.run_id, e.task, e.attempt)] = e.ts

    def _attempt_ended(self, e: AttemptEnded) -> None:
        if self._kind_of(e.run_id, e.task) is not None:
            key = (self._pipeline(e.run_id), e.task)
            self._checks_ended[key] = max(e.run_id, self._checks_ended.get(key, e.run_id))
        started = self._started.pop((e.run_id, e.task, e.attempt), None)
        if started is not None:
            self.attempt_duration.observe((self._pipeline(e.run_id), e.state), e.ts - started)

    def _run_finished(self, e: RunFinished) -> None:
        self.runs_finished.inc((e.pipeline or "", e.state))

    def _task_cached(self, e: TaskCached) -> None:
        self.tasks_cached.inc((self._pipeline(e.run_id),))

    def _task_failed(self, e: TaskFailed) -> None:
        self.tasks_failed_unstarted.inc((self._pipeline(e.run_id),))

    def _input_changed(self, e: InputChanged) -> None:
        self.drop_inputs.inc((e.pipeline or "", e.state))

    def _quarantined(self, e: InputQuarantined) -> None:
        self.drop_inputs.inc((e.pipeline, "quarantined"))

    def _schedule_fired(self, e: ScheduleFired) -> None:
        self.schedule_fires.inc((e.pipeline, e.action))

    def _gpu_drained(self, e: GpuDrained) -> None:
        self.gpu_drains.inc((e.uuid,))

    def _gpu_budget(self, e: GpuBudgetAction) -> None:
        self.gpu_budget_actions.inc((e.action,))

    def _model_registered(self, e: ModelRegistered) -> None:
        self.model_registrations.inc((e.model, e.gate_verdict))

    def _model_deployment(self, e: ModelDeployment) -> None:
        self.model_deployments.inc((e.model, e.alias, e.action, e.state))

    # -- a scrape -------------------------------------------------------------------------------

    def take_checks_ended(self) -> set[tuple[int, str]]:
        """``(run_id, task)`` of the check tasks that ended an attempt since the last call (then forgotten): the
        newest run of each pipeline's check task, at most one per (pipeline, task) however long since a scrape."""
        ended, self._checks_ended = self._checks_ended, {}
        return {(run_id, task) for (_, task), run_id in ended.items()}

    def families(self) -> list[Metric]:
        """Every counter and histogram as Prometheus families (a series appears once it has counted)."""
        return [c.family() for c in (self.events, self.runs_finished, self.attempt_duration, self.tasks_cached,
                                     self.tasks_failed_unstarted, self.drop_inputs, self.schedule_fires,
                                     self.gpu_drains, self.gpu_budget_actions, self.model_registrations,
                                     self.model_deployments)]
