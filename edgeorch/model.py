"""Plain data: pipeline definitions and the states of runs, tasks, attempts and drop-folder inputs.

No I/O here. The store persists these states; settlement
(:mod:`edgeorch.engine.settlement`) reasons about them; the CLI renders
them. Each state machine has its transition table here (``*_TRANSITIONS``)
and a ``can_transition(old, new)`` check that the code taking a transition
asks; a state's ``finished`` says whether it is final for its run.
"""

from __future__ import annotations

from dataclasses import field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from .records import frozen

if TYPE_CHECKING:  # pragma: no cover
    from .containers.spec import ContainerSpec
    from .datasets.names import DatasetDecl
    from .models.spec import ModelDecl, ModelPolicy


STREAM_KINDS = frozenset({"run", "task", "task_warning", "task_stopping", "gpu", "executor", "fatal", "pipeline",
                          "reload", "gc", "schedule", "input", "dataset", "model", "rule"})
"""The ``kind`` of every item the bus's events become on the ``events`` stream (docs/protocol.md): what the
stream's ``kinds`` argument picks from (``edgeorch events --kind``). ``subscribed`` and ``overflow`` are the
stream's own items and always sent. Each event class of :mod:`edgeorch.events` says one of these in its
``to_wire()`` (tested)."""


class RunState(StrEnum):
    """``queued → running → succeeded | failed | cancelled``."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        """Final: nothing runs any more (a resume may still queue it again)."""
        return self in (RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED)

    @staticmethod
    def can_transition(old: "RunState | str", new: "RunState | str") -> bool:
        """Whether ``old → new`` is in :data:`RUN_TRANSITIONS`."""
        return RunState(new) in RUN_TRANSITIONS[RunState(old)]


class TaskState(StrEnum):
    """``pending → ready → running → succeeded | failed | upstream_failed | skipped | cancelled``.

    ``retry_wait`` sits between attempts; ``skipped`` means a cache hit.
    """

    PENDING = "pending"
    READY = "ready"
    RUNNING = "running"
    RETRY_WAIT = "retry_wait"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    UPSTREAM_FAILED = "upstream_failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in FINISHED_TASK_STATES

    @property
    def done_ok(self) -> bool:
        """Finished with usable outputs (ran or cache hit)."""
        return self in (TaskState.SUCCEEDED, TaskState.SKIPPED)

    @staticmethod
    def can_transition(old: "TaskState | str", new: "TaskState | str") -> bool:
        """Whether ``old → new`` is in :data:`TASK_TRANSITIONS`."""
        return TaskState(new) in TASK_TRANSITIONS[TaskState(old)]


FINISHED_TASK_STATES = frozenset(
    {TaskState.SUCCEEDED, TaskState.FAILED, TaskState.UPSTREAM_FAILED, TaskState.SKIPPED, TaskState.CANCELLED}
)


class AttemptState(StrEnum):
    """``starting → running → exited | signalled | timed_out | abandoned``.

    ``abandoned``: the process was lost while the daemon was away; its exit
    status is unknown.
    """

    STARTING = "starting"
    RUNNING = "running"
    EXITED = "exited"
    SIGNALLED = "signalled"
    TIMED_OUT = "timed_out"
    ABANDONED = "abandoned"

    @property
    def finished(self) -> bool:
        return self not in (AttemptState.STARTING, AttemptState.RUNNING)

    @staticmethod
    def can_transition(old: "AttemptState | str", new: "AttemptState | str") -> bool:
        """Whether ``old → new`` is in :data:`ATTEMPT_TRANSITIONS`."""
        return AttemptState(new) in ATTEMPT_TRANSITIONS[AttemptState(old)]


class InputState(StrEnum):
    """A drop-folder input (docs/triggers.md): ``claiming → claimed → started → done | quarantined``.

    ``claiming``: intent recorded, the rename into the inbox maybe not done;
    ``claimed``: in the inbox and hashed, no run yet; ``waiting``: claimed
    while its pipeline is paused, started when the pipeline is resumed
    (nothing arriving during a pause is lost or needs a requeue); ``started``: its run
    was created. ``done``: the run finished (kept for lineage); a monitoring
    rule's ``quarantine`` response may still move it to ``quarantined``. Final:
    ``quarantined`` (the run failed or could not start; a retry of the run
    brings it back to ``started``), ``duplicate`` (same content as an
    earlier input), ``refused`` (not a file edgeorch takes), ``vanished``
    (gone before the claim), ``lost`` (the claimed file left the inbox),
    ``requeued`` (its quarantined file was sent back to the drop folder, where
    it arrives as a new input).
    """

    CLAIMING = "claiming"
    CLAIMED = "claimed"
    WAITING = "waiting"
    STARTED = "started"
    DUPLICATE = "duplicate"
    REFUSED = "refused"
    QUARANTINED = "quarantined"
    DONE = "done"
    VANISHED = "vanished"
    LOST = "lost"
    REQUEUED = "requeued"

    @property
    def finished(self) -> bool:
        """Final: recovery (``reconcile``) takes no action for it."""
        return self not in (InputState.CLAIMING, InputState.CLAIMED, InputState.WAITING, InputState.STARTED)

    @staticmethod
    def can_transition(old: "InputState | str", new: "InputState | str") -> bool:
        """Whether ``old → new`` is in :data:`INPUT_TRANSITIONS`."""
        return InputState(new) in INPUT_TRANSITIONS[InputState(old)]


_RUN_FINAL = frozenset({RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED})
RUN_TRANSITIONS: dict[RunState, frozenset[RunState]] = {
    RunState.QUEUED: frozenset({RunState.RUNNING}),
    RunState.RUNNING: _RUN_FINAL,
    # A resume (``edgeorch retry``) queues a finished run again.
    **{s: frozenset({RunState.QUEUED}) for s in _RUN_FINAL},
}
"""Run state -> the states it may move to."""

_T = TaskState
TASK_TRANSITIONS: dict[TaskState, frozenset[TaskState]] = {
    # readiness, the failure cascade, a cancel
    _T.PENDING: frozenset({_T.READY, _T.UPSTREAM_FAILED, _T.CANCELLED}),
    # an attempt starts, a cache hit, fails before any attempt, cascade, cancel
    _T.READY: frozenset({_T.RUNNING, _T.SKIPPED, _T.FAILED, _T.UPSTREAM_FAILED, _T.CANCELLED}),
    # an attempt ended: settled (``ready`` again: lost to edgeorch's machinery, not charged)
    _T.RUNNING: frozenset({_T.SUCCEEDED, _T.FAILED, _T.RETRY_WAIT, _T.READY, _T.CANCELLED}),
    _T.RETRY_WAIT: frozenset({_T.READY, _T.UPSTREAM_FAILED, _T.CANCELLED}),
    # a resume resets a finished task to pending
    **{s: frozenset({_T.PENDING}) for s in FINISHED_TASK_STATES},
}
"""Task state -> the states it may move to."""

_ATTEMPT_ENDS = frozenset({AttemptState.EXITED, AttemptState.SIGNALLED, AttemptState.TIMED_OUT,
                           AttemptState.ABANDONED})
ATTEMPT_TRANSITIONS: dict[AttemptState, frozenset[AttemptState]] = {
    AttemptState.STARTING: frozenset({AttemptState.RUNNING}) | _ATTEMPT_ENDS,  # may end before it is seen running
    AttemptState.RUNNING: _ATTEMPT_ENDS,
    **{s: frozenset() for s in _ATTEMPT_ENDS},
}
"""Attempt state -> the states it may move to (an ended attempt is never reopened)."""

_I = InputState
INPUT_TRANSITIONS: dict[InputState, frozenset[InputState]] = {
    _I.CLAIMING: frozenset({_I.CLAIMED, _I.VANISHED, _I.REFUSED}),
    _I.CLAIMED: frozenset({_I.STARTED, _I.WAITING, _I.DUPLICATE, _I.REFUSED, _I.QUARANTINED, _I.LOST}),
    # its pipeline was paused at the claim: started at the resume (or settled as a claimed one would be)
    _I.WAITING: frozenset({_I.STARTED, _I.DUPLICATE, _I.QUARANTINED, _I.LOST}),
    _I.STARTED: frozenset({_I.DONE, _I.QUARANTINED}),
    # a retry of its run brings it back from quarantine; `edgeorch requeue` sends it back to the drop folder
    _I.QUARANTINED: frozenset({_I.STARTED, _I.REQUEUED}),
    # a monitoring rule's `quarantine` response, after the run ended (docs/monitoring.md)
    _I.DONE: frozenset({_I.QUARANTINED}),
    **{s: frozenset() for s in (_I.DUPLICATE, _I.REFUSED, _I.VANISHED, _I.LOST, _I.REQUEUED)},
}
"""Drop-folder input state -> the states it may move to."""


PARAM_TYPES = ("str", "int", "float", "bool", "path")


@frozen
class Param:
    """A typed pipeline parameter. ``default`` is None when the param is required."""

    name: str
    type: str
    default: Any
    help: str = ""

    @property
    def required(self) -> bool:
        return self.default is None


@frozen
class TaskSpec:
    """One task of a pipeline, as declared (placeholders not yet substituted).

    Exactly one of ``command``, ``call`` or ``kind`` is set. ``definition_hash``
    covers everything that changes what the task computes (not retries or
    timeouts), and keys the cache.
    """

    name: str
    command: tuple[str, ...] | str | None = None
    shell: bool = False
    call: str | None = None
    kind: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    needs: tuple[str, ...] = ()
    retries: int = 0
    retry_delay: float = 1.0
    retry_backoff: float = 2.0
    retry_max_delay: float = 300.0
    retry_jitter: float = 0.1
    timeout: float | None = None
    env: dict[str, str] = field(default_factory=dict)
    workdir: str | None = None
    outputs: tuple[str, ...] = ()
    inputs: tuple[str, ...] = ()
    """Files, folders or globs the task reads (as written; see :mod:`edgeorch.pipelines.inputs`)."""
    cache: bool = False
    cpus: int = 0
    memory: int | None = None
    gpus: int = 0
    gpu_memory: int | None = None
    gpu_model: str | None = None
    pool: str | None = None
    dataset: DatasetDecl | None = None
    """The dataset the task's output becomes a version of, when it succeeds (docs/datasets.md)."""
    model: ModelDecl | None = None
    """The model the task's output becomes a version of, when it succeeds (docs/models.md)."""
    container: ContainerSpec | None = None
    """The image the command runs in (docs/containers.md); None: on the host."""
    definition_hash: str = ""


def text_hash(text: str) -> str:
    """:attr:`Pipeline.content_hash` of a pipeline file whose text is ``text``: sha256 of its UTF-8 (hex)."""
    import hashlib

    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@frozen
class Pipeline:
    """A validated pipeline. ``tasks`` keeps declaration order; ``order`` is a topological order."""

    name: str
    description: str
    params: dict[str, Param]
    tasks: dict[str, TaskSpec]
    order: tuple[str, ...]
    source_file: str
    content_hash: str
    source_text: str
    priority: int = 0
    max_parallel: int | None = None
    models: dict[str, ModelPolicy] = field(default_factory=dict)
    """``[models.NAME]``: gates and deployment of the models its tasks register (docs/models.md)."""

    def dependents(self) -> dict[str, list[str]]:
        """Task name -> the tasks that need it (declaration order)."""
        out: dict[str, list[str]] = {name: [] for name in self.tasks}
        for spec in self.tasks.values():
            for up in spec.needs:
                out[up].append(spec.name)
        return out


RESERVED_TRIGGERS = ("schedule", "rule")
"""Trigger labels only edgeorch gives (with ``input:<id>``, a drop-folder input's): a run a client labels so would
be taken for one (a drop folder's recovery marked input N done by an operator's unrelated run labelled
``input:N``; `why` and `runs` would say a schedule or a rule started it)."""
LABEL_MAX = 100
"""The longest trigger label a client may give (it is shown in `edgeorch runs`)."""


def label_problem(label: object) -> str | None:
    """Why ``label`` cannot be a client's trigger label (:data:`RESERVED_TRIGGERS`, ``input:...``, not a short
    printable string), else None. For the requests that come from outside (the ``trigger`` op)."""
    if (not isinstance(label, str) or not label or len(label) > LABEL_MAX or not label.isprintable()
            or label != label.strip()):
        return (f"is not a label: a non-empty printable string of at most {LABEL_MAX} characters, no space at either "
                "end")
    import unicodedata

    # As a person reads it: `Schedule`, full-width `ｓｃｈｅｄｕｌｅ` and `input :1` pass for edgeorch's own in a table.
    folded = unicodedata.normalize("NFKC", label).casefold().replace(" ", "")
    if folded in RESERVED_TRIGGERS or folded.startswith("input:"):
        return "is a trigger only edgeorch gives (its schedules, rules and drop folders' runs), or looks like one"
    return None


INPUTS_UNWATCHED = "(not watched: the daemon restarted while it ran)"
"""``attempts.inputs_moved`` of an adopted attempt whose task declares inputs: whether one changed while it ran
cannot be told (its stamps were the engine's before the restart), so it is never a cache hit either."""


def inputs_moved_text(value: str) -> str:
    """``attempts.inputs_moved`` as a clause (the event, the log, ``show`` and ``why`` say it alike): "its input
    /data/cfg.txt changed while it ran", or that its declared inputs were not watched (:data:`INPUTS_UNWATCHED`)."""
    if value == INPUTS_UNWATCHED:
        return "its declared inputs were not watched while it ran (the daemon restarted meanwhile)"
    return f"its input {value} changed while it ran"
