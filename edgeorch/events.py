"""Typed events and the one bus they are published on.

Every state change edgeorch announces is a frozen dataclass of this module,
built by the one component that decided the change and published on the one
:class:`Bus` the daemon (or an in-process ``edgeorch run``) wires:

* the engine publishes runs, tasks and attempts, GPU drains and budget
  actions, the executor's health and a fatal stop;
* the trigger service publishes schedule fires and drop-folder inputs;
* the daemon publishes reloads, its pipelines ops pauses and resumes, and removed runs (gc).

Subscribers today: the ``events`` op (each connected client's stream,
``edgeorch/daemon/ops/events.py``), the CLI's progress display, the daemon's
``STATUS=`` line and the trigger service (a finished run releases waiting
fires and settles its inputs), and the daemon's audit seal service (it
counts records; the audit records themselves are written by the store, in
the transaction of each change, before its event is published). Metrics and
monitoring subscribe to the same bus; none of them needs a publisher changed.

Contracts:

* ``ts`` is the publisher's injected clock (the engine's ``clock``; seconds
  since the epoch), never read at the publisher from ``time.time()`` when a
  clock is available, so tests on a fake clock see their own time.
* ``to_wire()`` is exactly the JSON item the ``events`` stream sends
  (docs/protocol.md): same keys, same order. Changing a wire shape is a
  protocol change.
* ``to_row()`` is the one place an event that is also a row of the state
  file's ``events`` table (the same fact: a reload, a drained GPU, ...)
  becomes that row; :func:`record` writes it. Events whose row is written by
  the store's own transition (a run's state, a pause) return ``None``: the
  row is part of that transaction, not written twice.

This module imports nothing from the engine, the store or the daemon.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol, Union

from .records import frozen

log = logging.getLogger("edgeorch.events")


@frozen
class Row:
    """A row of the ``events`` table, as :meth:`Event.to_row` describes it."""

    kind: str
    message: str
    run_id: int | None = None
    task: str | None = None
    actor: str | None = None
    data: dict[str, Any] | None = None


@frozen
class Event:
    """Base of every published event: ``ts`` is when the publisher's clock saw the change."""

    ts: float

    def to_wire(self) -> dict[str, Any]:  # pragma: no cover - every subclass defines its shape
        """The ``events`` stream's JSON item for this event (docs/protocol.md)."""
        raise NotImplementedError

    def to_row(self) -> Row | None:
        """The ``events`` table row recording the same fact, or None (see the module docstring)."""
        return None

    @property
    def run(self) -> int | None:
        """The run this event belongs to (None: not one run's; a run's follower sees it too)."""
        return getattr(self, "run_id", None)


# -- runs ------------------------------------------------------------------------------------


@frozen
class RunQueued(Event):
    """A run was created (its row, and its ``run_created`` event row, by ``store.runs.create``); ``trigger``: what
    started it (``schedule``, ``input:<id>``, ``cli``...: the log line says it; not on the wire, as before)."""

    run_id: int
    pipeline: str
    trigger: str | None = None

    def to_wire(self) -> dict[str, Any]:
        return {"kind": "run", "run_id": self.run_id, "pipeline": self.pipeline, "state": "queued", "ts": self.ts}


@frozen
class RunResumed(Event):
    """A finished run was queued again (``retry``); ``resumed``: the tasks to run again, sorted; ``pipeline``: its
    pipeline's name (for the log line's field: the run is not active yet when this is told)."""

    run_id: int
    resumed: tuple[str, ...]
    pipeline: str | None = None

    def to_wire(self) -> dict[str, Any]:
        return {"kind": "run", "run_id": self.run_id, "state": "queued", "resumed": list(self.resumed), "ts": self.ts}


@frozen
class RunStarted(Event):
    """A queued run became ``running``."""

    run_id: int
    pipeline: str

    def to_wire(self) -> dict[str, Any]:
        return {"kind": "run", "run_id": self.run_id, "pipeline": self.pipeline, "state": "running", "ts": self.ts}


@frozen
class RunFinished(Event):
    """A run ended (``state`` is a finished :class:`~edgeorch.model.RunState` value).

    ``pipeline`` is None only for the ``events`` op's own item telling a
    follower that the run was already over (the wire then has no
    ``pipeline`` key, as it always had).
    """

    run_id: int
    state: str
    reason: str | None
    pipeline: str | None = None

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {"kind": "run", "run_id": self.run_id}
        if self.pipeline is not None:
            wire["pipeline"] = self.pipeline
        wire.update(state=self.state, reason=self.reason, ts=self.ts)
        return wire


# -- tasks and attempts ----------------------------------------------------------------------


@frozen
class TaskStarted(Event):
    """An attempt of ``task`` was spawned; ``lease``/``resources``: what it holds, when it holds anything.
    ``set_aside``: what the engine moved out of the attempt's way before it (a previous attempt's checkpoints made
    from other inputs: the attempt starts without them), said where its start is watched."""

    run_id: int
    task: str
    attempt: int
    lease: Mapping[str, Any] | None = None
    resources: str | None = None
    set_aside: tuple[str, ...] = ()

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {"kind": "task", "run_id": self.run_id, "task": self.task, "state": "running",
                                "attempt": self.attempt}
        if self.lease is not None:
            wire["lease"] = dict(self.lease)
            wire["resources"] = self.resources
        if self.set_aside:
            wire["set_aside"] = list(self.set_aside)
        wire["ts"] = self.ts
        return wire


@frozen
class TaskCached(Event):
    """``task`` was skipped: a verified cache hit from attempt ``cached_from`` (its id), ``reason`` as the run's task
    says it (``cache hit: outputs of run 92 (train #1)``)."""

    run_id: int
    task: str
    cached_from: int
    reason: str = ""

    def to_wire(self) -> dict[str, Any]:
        return {"kind": "task", "run_id": self.run_id, "task": self.task, "state": "skipped",
                "cached_from": self.cached_from, "reason": self.reason, "ts": self.ts}


@frozen
class TaskFailed(Event):
    """``task`` failed before any attempt (it could not be scheduled or prepared)."""

    run_id: int
    task: str
    reason: str

    def to_wire(self) -> dict[str, Any]:
        return {"kind": "task", "run_id": self.run_id, "task": self.task, "state": "failed", "reason": self.reason,
                "ts": self.ts}


@frozen
class AttemptEnded(Event):
    """Attempt ``attempt`` of ``task`` ended; ``state``: the task's new state (succeeded, retry_wait, failed, ...)."""

    run_id: int
    task: str
    state: str
    attempt: int
    exit_code: int | None
    signal: int | None
    reason: str | None
    log_truncated: bool

    def to_wire(self) -> dict[str, Any]:
        return {"kind": "task", "run_id": self.run_id, "task": self.task, "state": self.state, "attempt": self.attempt,
                "exit_code": self.exit_code, "signal": self.signal, "reason": self.reason,
                "log_truncated": self.log_truncated, "ts": self.ts}


# -- resources and the executor --------------------------------------------------------------


@frozen
class GpuBudgetAction(Event):
    """The GPU watcher warned (``action="warn"``) or is stopping (``"stop"``) an attempt over its memory budget."""

    run_id: int
    task: str
    attempt: int
    attempt_id: int
    action: str
    reason: str

    def to_wire(self) -> dict[str, Any]:
        return {"kind": "task_warning" if self.action == "warn" else "task_stopping", "run_id": self.run_id,
                "task": self.task, "attempt": self.attempt, "reason": self.reason, "ts": self.ts}

    def to_row(self) -> Row:
        return Row("gpu_budget_stop" if self.action == "stop" else "gpu_budget_warning",
                   f"{self.task}: attempt {self.attempt} {self.reason}", run_id=self.run_id, task=self.task,
                   data={"attempt_id": self.attempt_id, "action": self.action})


@frozen
class GpuDrained(Event):
    """GPU ``uuid`` was drained (unhealthy): it gets no new lease."""

    uuid: str
    reason: str

    def to_wire(self) -> dict[str, Any]:
        return {"kind": "gpu", "uuid": self.uuid, "state": "drained", "reason": self.reason, "ts": self.ts}

    def to_row(self) -> Row:
        return Row("gpu_drained", f"{self.uuid} drained: {self.reason}; it gets no new lease",
                   data={"uuid": self.uuid, "reason": self.reason})


@frozen
class ExecutorHealth(Event):
    """The executor repaired itself (e.g. restarted its launcher); ``message`` says what happened."""

    message: str

    def to_wire(self) -> dict[str, Any]:
        return {"kind": "executor", "message": self.message, "ts": self.ts}

    def to_row(self) -> Row:
        return Row("executor_health", self.message)


@frozen
class EngineFatal(Event):
    """The engine stopped taking decisions (fail-stop); nothing is recorded: the state file may be unwritable."""

    message: str

    def to_wire(self) -> dict[str, Any]:
        return {"kind": "fatal", "message": self.message, "ts": self.ts}


# -- the daemon ------------------------------------------------------------------------------


@frozen
class PipelinePaused(Event):
    """``pipeline`` was paused (``paused``) or resumed by ``actor`` (``reason``: the pause's); its row is written by
    ``store.pipelines.set_paused`` with the state."""

    pipeline: str
    paused: bool
    actor: str | None = None
    reason: str | None = None

    def to_wire(self) -> dict[str, Any]:
        return {"kind": "pipeline", "pipeline": self.pipeline, "state": "paused" if self.paused else "resumed",
                "ts": self.ts}


@frozen
class Reloaded(Event):
    """The config's access lists and the pipelines folder were reloaded by ``actor``."""

    summary: str
    unchanged: bool
    actor: str
    errors: tuple[str, ...] = ()

    def to_wire(self) -> dict[str, Any]:
        return {"kind": "reload", "summary": self.summary, "unchanged": self.unchanged, "ts": self.ts}

    def to_row(self) -> Row:
        return Row("reload", f"reload by {self.actor}: {self.summary}", actor=self.actor,
                   data={"errors": list(self.errors), "unchanged": self.unchanged})


@frozen
class RunsRemoved(Event):
    """Finished runs were removed (``edgeorch gc --apply`` or the ``[retention]`` sweep) by ``actor``.

    Its ``runs_removed`` row is written by ``store.retention.remove`` in the deleting transaction.
    """

    runs: tuple[int, ...]
    actor: str

    def to_wire(self) -> dict[str, Any]:
        return {"kind": "gc", "runs": list(self.runs), "actor": self.actor, "ts": self.ts}


# -- triggers --------------------------------------------------------------------------------


@frozen
class ScheduleFired(Event):
    """A schedule's fire was handled: ``action`` start, skip, missed, paused or wait (docs/triggers.md).

    Its rows (``schedule_fire``, ``schedule_skip``, ...) depend on the outcome
    and are written by the trigger service, in the run's transaction when
    one starts.
    """

    pipeline: str
    fire_time: str
    action: str
    missed: int
    reason: str

    def to_wire(self) -> dict[str, Any]:
        return {"kind": "schedule", "ts": self.ts, "reason": self.reason, "pipeline": self.pipeline,
                "fire_time": self.fire_time, "action": self.action, "missed": self.missed}


@frozen
class InputChanged(Event):
    """A drop-folder input (or a watched folder) changed state; a field that does not apply is None and not sent.

    ``state``: done, refused, duplicate, claim_retry, waiting (its pipeline is paused), batched (it joined
    an open batch; ``reason`` says until when), lost, file_removed, or watch_missing / watch_restored (a
    watched folder, ``file``, vanished or came back).
    """

    state: str
    input_id: int | None = None
    run_id: int | None = None
    pipeline: str | None = None
    file: str | None = None
    reason: str | None = None

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {"kind": "input", "ts": self.ts}
        for key in ("input_id", "state", "run_id", "pipeline", "file", "reason"):
            value = getattr(self, key)
            if value is not None:
                wire[key] = value
        return wire


@frozen
class InputQuarantined(Event):
    """Input ``input_id`` (``source_name``) was moved to quarantine as ``file``; ``run_id`` may be None (no run)."""

    input_id: int
    run_id: int | None
    pipeline: str
    file: str
    reason: str
    source_name: str

    def to_wire(self) -> dict[str, Any]:
        return {"kind": "input", "ts": self.ts, "input_id": self.input_id, "state": "quarantined",
                "run_id": self.run_id, "pipeline": self.pipeline, "file": self.file, "reason": self.reason}

    def to_row(self) -> Row:
        return Row("input_quarantined", f"input {self.input_id} ({self.source_name}) quarantined: {self.reason}",
                   run_id=self.run_id, actor="watch", data={"input_id": self.input_id, "file": self.file})


# -- data versions ---------------------------------------------------------------------------


@frozen
class DatasetVersioned(Event):
    """``dataset`` got version ``version`` from ``source`` (``add``, ``input``, ``task``; docs/datasets.md).

    Its ``dataset_version`` row is written by ``store.datasets.record_version`` in the version's
    transaction. ``new_bytes``: what it added to the object store (the rest was stored already).
    """

    dataset: str
    version: int
    source: str
    files: int
    size: int
    new_bytes: int
    run_id: int | None = None
    input_id: int | None = None

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {"kind": "dataset", "state": "version", "dataset": self.dataset,
                                "version": self.version, "source": self.source, "files": self.files,
                                "size": self.size, "new_bytes": self.new_bytes, "ts": self.ts}
        for key in ("run_id", "input_id"):
            if getattr(self, key) is not None:
                wire[key] = getattr(self, key)
        return wire


@frozen
class DatasetsPruned(Event):
    """A prune removed data versions (``name@version`` each) and freed ``bytes_freed`` on disk.

    Its ``dataset_pruned`` row is written by ``store.datasets.prune`` in the removing transaction.
    """

    versions: tuple[str, ...]
    bytes_freed: int
    actor: str | None = None

    def to_wire(self) -> dict[str, Any]:
        return {"kind": "dataset", "state": "pruned", "versions": list(self.versions),
                "bytes_freed": self.bytes_freed, "actor": self.actor, "ts": self.ts}


# -- models (docs/models.md) ---------------------------------------------------------------------


@frozen
class ModelRegistered(Event):
    """A task's output became ``version`` of ``model``, judged by its gates (``gate_verdict``: passed, failed,
    none); ``deployment_id``: the promotion queued for it (None: blocked, manual, or nothing to do).

    Its rows (version, decision, deployment intent, a ``model_registered`` event row) are written by
    ``edgeorch.models.register`` in the attempt's outcome transaction.
    """

    model: str
    version: int
    gate_verdict: str
    run_id: int | None = None
    task: str | None = None
    deployment_id: int | None = None
    summary: str | None = None

    def to_wire(self) -> dict[str, Any]:
        return {"kind": "model", "state": "registered", "model": self.model, "version": self.version,
                "gate_verdict": self.gate_verdict, "run_id": self.run_id, "task": self.task,
                "deployment_id": self.deployment_id, "summary": self.summary, "ts": self.ts}


@frozen
class ModelUnchanged(Event):
    """A task's output was ``version`` of ``model`` again (the same artifact sha256 and metrics): no version
    was added, nothing was judged or deployed. Its ``model_unchanged`` event row is written by
    ``edgeorch.models.register`` in the attempt's outcome transaction."""

    model: str
    version: int
    run_id: int | None = None
    task: str | None = None

    def to_wire(self) -> dict[str, Any]:
        return {"kind": "model", "state": "unchanged", "model": self.model, "version": self.version,
                "run_id": self.run_id, "task": self.task, "ts": self.ts}


@frozen
class ModelDeployment(Event):
    """A deployment of ``model`` changed state (``running``, ``succeeded``, ``undone``, ``rolled_back``,
    ``failed``): ``alias`` moved (or not) from ``from_version`` to ``to_version``; recorded by ``store.models``."""

    model: str
    deployment_id: int
    alias: str
    state: str
    from_version: int | None
    to_version: int | None
    action: str
    outcome: str | None = None
    actor: str | None = None

    def to_wire(self) -> dict[str, Any]:
        return {"kind": "model", "state": self.state, "model": self.model, "deployment_id": self.deployment_id,
                "alias": self.alias, "from_version": self.from_version, "to_version": self.to_version,
                "action": self.action, "outcome": self.outcome, "actor": self.actor, "ts": self.ts}


@frozen
class ModelObserved(Event):
    """Metrics were observed for the versions aliases of ``model`` point at (``values``: alias -> metric ->
    value; ``run_id``: the batch's run, if any); recorded by ``store.models.observe`` before this is published.
    Monitoring rules over a model's realized metric evaluate on it (docs/monitoring.md)."""

    model: str
    values: Mapping[str, Mapping[str, float]]
    run_id: int | None = None

    def to_wire(self) -> dict[str, Any]:
        return {"kind": "model", "state": "observed", "model": self.model,
                "values": {a: dict(m) for a, m in self.values.items()}, "run_id": self.run_id, "ts": self.ts}


# -- monitoring rules (docs/monitoring.md) --------------------------------------------------------


@frozen
class RuleEvent(Event):
    """A monitoring rule's evaluation said something, or its responses ended (``action``: ``fire``, ``held``,
    ``deduped``, ``still_firing``, ``pending``, ``resolve``, ``reset``, ``responded``): the ``rule_<action>``
    event row, recorded (committed) before this is published. ``run_id``: the run whose result it read."""

    rule: str
    action: str
    message: str
    pipeline: str | None = None
    value: float | None = None
    run_id: int | None = None

    def to_wire(self) -> dict[str, Any]:
        return {"kind": "rule", "rule": self.rule, "action": self.action, "pipeline": self.pipeline,
                "value": self.value, "run_id": self.run_id, "message": self.message, "ts": self.ts}


# -- items of one client's stream (never published on the bus) -------------------------------


@frozen
class Subscribed(Event):
    """The first item of an ``events`` stream; ``run_id``: the run followed, or None for all."""

    run_id: int | None

    def to_wire(self) -> dict[str, Any]:
        return {"kind": "subscribed", "run_id": self.run_id, "ts": self.ts}

    @property
    def run(self) -> int | None:
        return None


@frozen
class Overflow:
    """Told to a client that reads too slowly: its oldest events were dropped (no ``ts``, as always)."""

    message: str = "events were dropped: the client reads too slowly"

    def to_wire(self) -> dict[str, Any]:
        return {"kind": "overflow", "message": self.message}


# -- recording and publishing ----------------------------------------------------------------


class EventLog(Protocol):
    """What :func:`record` needs of the store: ``store.events.add``."""

    def add(self, kind: str, message: str, *, run_id: int | None = None, task: str | None = None,
            actor: str | None = None, data: dict[str, Any] | None = None, ts: float | None = None) -> None: ...


def record(events_table: EventLog, event: Event) -> None:
    """Write ``event``'s row (:meth:`Event.to_row`) with the event's ``ts``; nothing when it has none.

    Errors are the store's (a ``StateError`` on a full disk) and reach the
    caller: a fact that cannot be recorded must not be published as if it were.
    """
    row = event.to_row()
    if row is not None:
        events_table.add(row.kind, row.message, run_id=row.run_id, task=row.task, actor=row.actor,
                         data=row.data, ts=event.ts)


Subscriber = Callable[[Event], None]
Where = Union[type, tuple[type, ...], Callable[[Event], bool], None]
"""Which events a subscriber gets: all (None), those of an event class (or tuple of classes), or a predicate."""


@dataclass(eq=False)
class _Subscription:
    """One subscriber of a :class:`Bus`: its callback, which events it wants, and whether it still does."""

    callback: Subscriber
    where: Callable[[Event], bool]
    active: bool = True


def _matcher(where: Where) -> Callable[[Event], bool]:
    if where is None:
        return lambda event: True
    if isinstance(where, (type, tuple)):
        kinds = where
        return lambda event: isinstance(event, kinds)
    return where


@dataclass(eq=False)
class Bus:
    """Synchronous fan-out of :class:`Event` to subscribers, in subscription order.

    Used from one thread (the event loop that owns the state). ``publish``
    never raises because of a subscriber: one that raises (or whose filter
    raises) is logged with its traceback and the others still get the event.
    A subscriber may unsubscribe itself, or others, while an event is being
    delivered; an unsubscribed one gets nothing more, not even the rest of
    the current delivery.
    """

    _subs: list[_Subscription] = field(default_factory=list)

    def subscribe(self, callback: Subscriber, where: Where = None) -> Callable[[], None]:
        """Deliver every published event matching ``where`` to ``callback``; returns ``unsubscribe()`` (idempotent)."""
        sub = _Subscription(callback, _matcher(where))
        self._subs.append(sub)

        def unsubscribe() -> None:
            if sub.active:
                sub.active = False
                self._subs.remove(sub)

        return unsubscribe

    def publish(self, event: Event) -> None:
        """Hand ``event`` to each matching subscriber; a failing subscriber is logged and isolated."""
        for sub in tuple(self._subs):
            if not sub.active:
                continue
            try:
                if sub.where(event):
                    sub.callback(event)
            except Exception:  # noqa: BLE001 - a broken subscriber must never break the publisher
                log.exception("event subscriber %r failed on %s", sub.callback, type(event).__name__)

    def __len__(self) -> int:
        """The number of current subscribers."""
        return len(self._subs)
