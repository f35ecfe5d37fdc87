"""Runs as the daemon reports them, as typed read-only objects (pure: no I/O but :meth:`Task.return_value`).

Each record is built from one document of the control protocol
(docs/protocol.md) by its ``from_dict`` and keeps that document:
``to_dict()`` gives it back unchanged (a deep copy), so ``edgeorch show
--json`` and ``Run.to_dict()`` are the same JSON. Fields are the
document's, with paths as :class:`~pathlib.Path`, states as the
:mod:`edgeorch.model` enums (a state this edgeorch does not know, from a
newer daemon, stays a plain string) and timestamps as Unix seconds.

A record is a snapshot: it never changes. :meth:`RunSummary.refresh` and
:meth:`RunSummary.wait` ask the client that made it for a new one; with an
:class:`edgeorch.AsyncClient` they return awaitables. A record built by hand
(``Run.from_dict(doc)``, e.g. from ``edgeorch show --json``) has no client.
"""

from __future__ import annotations

import copy
import json
from dataclasses import field
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

from ..errors import EdgeorchError, NotFoundError, UsageError
from ..model import AttemptState, RunState, TaskState
from ..records import frozen
from ..rundoc import last_start

E = TypeVar("E", bound=StrEnum)


def _state(cls: type[E], value: Any) -> E | str:
    try:
        return cls(value)
    except ValueError:
        return str(value)


def _path(value: Any) -> Path | None:
    return Path(value) if value else None


def _took(started: float | None, finished: float | None) -> float | None:
    return finished - started if started is not None and finished is not None else None


def _copy(value: Any) -> Any:
    """A deep copy of a daemon's document: its dicts and lists rebuilt, its strings and numbers shared (immutable);
    anything else through :func:`copy.deepcopy`. Half of ``deepcopy``'s time on a run of 200 tasks (the CLI
    copies the run it waited for twice)."""
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value if value is None or isinstance(value, (str, int, float)) else copy.deepcopy(value)


@frozen(kw_only=True)
class Artifact:
    """A file a task declared in ``outputs``, as recorded when its attempt (or cache hit) succeeded."""

    task: str
    name: str
    path: Path
    size: int
    """Bytes."""
    sha256: str
    """Hex digest of the content when it was recorded."""
    attempt_id: int
    created_at: float

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Artifact:
        return cls(task=doc["task"], name=doc["name"], path=Path(doc["path"]), size=doc["size"],
                   sha256=doc["sha256"], attempt_id=doc["attempt_id"], created_at=doc["created_at"])


@frozen(kw_only=True)
class Checkpoint:
    """A checkpoint file a task reported (docs/pipelines.md, in-task checkpoints)."""

    task: str
    name: str
    size: int
    sha256: str
    attempt_id: int
    recorded_at: float

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Checkpoint:
        return cls(task=doc["task"], name=doc["name"], size=doc["size"], sha256=doc["sha256"],
                   attempt_id=doc["attempt_id"], recorded_at=doc["recorded_at"])


@frozen(kw_only=True)
class ModelOutcome:
    """What one of the run's model outputs did (docs/models.md): ``state`` ``registered`` (it added
    ``version``, judged ``gate_verdict``: ``passed``, ``failed`` or ``none``) or ``unchanged`` (the same artifact
    and metrics as ``version``: none added, ``gate_verdict`` None)."""

    state: str
    model: str
    version: int | None
    task: str | None
    gate_verdict: str | None

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> ModelOutcome:
        return cls(state=doc["state"], model=doc["model"], version=doc.get("version"), task=doc.get("task"),
                   gate_verdict=doc.get("gate_verdict"))


@frozen(kw_only=True)
class CheckResult:
    """One row of a built-in check task's result (profile, drift, fairness, validate; docs/kernels.md).

    Only the rows of each task's latest attempt are reported.
    """

    task: str
    kind: str
    column: str | None
    metric: str | None
    value: float | None
    p_value: float | None
    threshold: float | None
    verdict: str | None
    details: Any

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> CheckResult:
        return cls(task=doc["task"], kind=doc["kind"], column=doc.get("column_name"), metric=doc.get("metric"),
                   value=doc.get("value"), p_value=doc.get("p_value"), threshold=doc.get("threshold"),
                   verdict=doc.get("verdict"), details=doc.get("details"))


@frozen(kw_only=True)
class Attempt:
    """One execution of a task: its process, how it ended, where its log is."""

    id: int
    task: str
    number: int
    """1 for the first attempt of the task in this run."""
    state: AttemptState | str
    pid: int | None
    exit_code: int | None
    """None while running, or when a signal ended it (see ``signal``)."""
    signal: int | None
    started_at: float | None
    finished_at: float | None
    log_path: Path | None
    attempt_dir: Path | None
    reason: str | None
    verdict: str | None
    """A built-in check's verdict (``ok``, ``violation``, ...); None for other tasks."""

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Attempt:
        return cls(id=doc["id"], task=doc["task"], number=doc["number"], state=_state(AttemptState, doc["state"]),
                   pid=doc.get("pid"), exit_code=doc.get("exit_code"), signal=doc.get("signal"),
                   started_at=doc.get("started_at"), finished_at=doc.get("finished_at"),
                   log_path=_path(doc.get("log_path")), attempt_dir=_path(doc.get("attempt_dir")),
                   reason=doc.get("reason"), verdict=doc.get("verdict"))

    @property
    def duration(self) -> float | None:
        """Seconds from start to end; None while running or never started."""
        return _took(self.started_at, self.finished_at)


@frozen(kw_only=True, repr=False)
class Task:
    """A task of a run: its state, every attempt (oldest first) and its latest artifacts."""

    name: str
    state: TaskState | str
    attempt_count: int
    """Attempts counted against the task's retries (the daemon's ``attempts``)."""
    attempts: tuple[Attempt, ...]
    artifacts: tuple[Artifact, ...]
    started_at: float | None
    finished_at: float | None
    next_attempt_at: float | None
    """When a task in ``retry_wait`` is tried again."""
    cached_from: int | None
    """The attempt id whose outputs a cache hit (state ``skipped``) reused."""
    reason: str | None

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Task:
        return cls(name=doc["name"], state=_state(TaskState, doc["state"]), attempt_count=doc.get("attempts", 0),
                   attempts=tuple(Attempt.from_dict(a) for a in doc.get("attempt_list", ())),
                   artifacts=tuple(Artifact.from_dict(a) for a in doc.get("artifacts", ())),
                   started_at=doc.get("started_at"), finished_at=doc.get("finished_at"),
                   next_attempt_at=doc.get("next_attempt_at"), cached_from=doc.get("cached_from"),
                   reason=doc.get("reason"))

    @property
    def succeeded(self) -> bool:
        """Finished with usable outputs: it succeeded, or was ``skipped`` as a cache hit."""
        return isinstance(self.state, TaskState) and self.state.done_ok

    @property
    def exit_code(self) -> int | None:
        """The latest attempt's exit code (None: no attempt, still running, or ended by a signal)."""
        return self.attempts[-1].exit_code if self.attempts else None

    def __repr__(self) -> str:
        return (f"Task(name={self.name!r}, state={str(self.state)!r}, attempts={len(self.attempts)}, "
                f"exit_code={self.exit_code!r}, artifacts={len(self.artifacts)})")

    def return_value(self) -> Any:
        """What the latest attempt returned: a ``call`` task's return value, a built-in kind's result document.

        Read from that attempt's ``result.json`` (docs/pipelines.md), on this
        machine. None when there is nothing to read: no attempt, a
        ``command`` task, a function that returned None or a value that is
        not JSON, or a cache hit (``skipped``: its value belongs to the run it
        was cached from). Raises :class:`EdgeorchError` naming the file when
        it exists but cannot be read (permissions: the run folders belong to
        the daemon's user) or is not JSON.
        """
        if not self.attempts or self.attempts[-1].attempt_dir is None:
            return None
        path = self.attempts[-1].attempt_dir / "result.json"
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise EdgeorchError(f"cannot read the task's return value: {exc.strerror or exc}", file=str(path),
                                hint="run folders belong to the daemon's user; read them as that user or a "
                                     "member of its group") from None
        try:
            return json.loads(text)
        except ValueError:
            raise EdgeorchError("the task's return value is not JSON", file=str(path)) from None


def _bound(client: Any, what: str) -> Any:
    if client is None:
        raise UsageError(f"cannot {what}: this run was not read from a daemon",
                         hint="get it from a client: edgeorch.Client().get_run(run_id)")
    return client


@frozen(kw_only=True, repr=False)
class RunSummary:
    """A run as ``runs.list`` reports it: state, params, times and task counts, without the tasks themselves.

    ``Client.runs()`` returns these; :meth:`refresh` gives the full :class:`Run`.
    """

    id: int
    pipeline: str
    state: RunState | str
    params: dict[str, Any]
    trigger: str
    """Who started it: ``cli``, ``python``, ``schedule``, ``input:<id>``, ... (the client's ``label``)."""
    actor: str | None
    """The user recorded for it (``alice (uid 1000)``)."""
    run_dir: Path
    created_at: float
    started_at: float | None
    """When it first started running (a resume does not move it: see ``resumed_at``)."""
    finished_at: float | None
    resumed_at: float | None
    """When it last started running again after ``edgeorch retry`` (None: never resumed)."""
    reason: str | None
    """Why it ended as it did (None for a success)."""
    cancel_reason: str | None
    """Why it was cancelled, as the cancel said (``edgeorch cancel --reason``; None: never cancelled)."""
    task_counts: dict[str, int]
    """Tasks per state, e.g. ``{"succeeded": 3, "skipped": 1}``."""
    _doc: dict[str, Any] = field(compare=False)
    _client: Any = field(default=None, compare=False)

    @classmethod
    def _fields(cls, doc: dict[str, Any]) -> dict[str, Any]:
        """The summary's fields of ``doc``, which the record keeps as it is (the caller copied it, or owns it)."""
        return dict(id=doc["id"], pipeline=doc["pipeline"], state=_state(RunState, doc["state"]),
                    params=_copy(doc.get("params") or {}), trigger=doc.get("trigger", ""),
                    actor=doc.get("actor"), run_dir=Path(doc.get("run_dir", "")), created_at=doc["created_at"],
                    started_at=doc.get("started_at"), finished_at=doc.get("finished_at"),
                    resumed_at=doc.get("resumed_at"), reason=doc.get("reason"),
                    cancel_reason=doc.get("cancel_reason"), _doc=doc)

    @classmethod
    def from_dict(cls, doc: dict[str, Any], client: Any = None) -> RunSummary:
        """A summary from a ``runs.list`` item (or ``edgeorch runs --json``); ``client``: for refresh/wait.

        The record keeps a copy of ``doc``: the caller may change ``doc`` afterwards."""
        return cls.adopt(_copy(doc), client)

    @classmethod
    def adopt(cls, doc: dict[str, Any], client: Any = None) -> RunSummary:
        """As :meth:`from_dict`, keeping ``doc`` itself: for a document nobody else holds or changes (a
        client's freshly decoded answer; a copy of a run of 200 tasks is ~15,000 objects)."""
        try:
            return cls(**cls._fields(doc), task_counts=dict(doc.get("tasks") or {}), _client=client)
        except (KeyError, TypeError) as exc:
            raise UsageError("is not a run document", field=str(exc), expected="a runs.list item") from None

    @property
    def finished(self) -> bool:
        """Final (succeeded, failed or cancelled); a retry may still queue it again."""
        return isinstance(self.state, RunState) and self.state.finished

    @property
    def succeeded(self) -> bool:
        return self.state == RunState.SUCCEEDED

    @property
    def duration(self) -> float | None:
        """Seconds from its last start (its resume, when it was resumed) to its end; None until it has
        started and ended (a run retried a day later did not take a day)."""
        return _took(last_start(self._doc), self.finished_at)

    def to_dict(self) -> dict[str, Any]:
        """The daemon's document this record was built from (a deep copy: change it freely)."""
        return _copy(self._doc)

    def refresh(self) -> Any:
        """The run as it is now: a new :class:`Run` (an awaitable of one with an ``AsyncClient``)."""
        return _bound(self._client, "refresh").get_run(self.id)

    def wait(self, timeout: float | None = None) -> Any:
        """Wait until the run has finished; returns the finished :class:`Run` (awaitable with an ``AsyncClient``).

        See ``Client.wait`` for ``timeout`` and the errors.
        """
        return _bound(self._client, "wait").wait(self.id, timeout=timeout)

    def __repr__(self) -> str:
        took = f", duration={self.duration:.3g}" if self.duration is not None else ""
        return (f"{type(self).__name__}(id={self.id}, pipeline={self.pipeline!r}, state={str(self.state)!r}"
                f"{took}, tasks={self.task_counts!r})")


@frozen(kw_only=True, repr=False)
class Run(RunSummary):
    """A run as ``runs.show`` reports it (``edgeorch show RUN_ID --json``): the summary's fields plus the
    pipeline file and content hash, and every task with its attempts, artifacts, check results and checkpoints."""

    pipeline_file: Path | None
    content_hash: str | None
    """sha256 of the pipeline file's content the run executes."""
    env: dict[str, Any]
    """Extra environment the run's tasks got (e.g. a drop-folder input's path)."""
    tasks: tuple[Task, ...]
    """In the pipeline's order."""
    results: tuple[CheckResult, ...]
    """The result rows of the run's built-in check tasks (latest attempt of each)."""
    checkpoints: tuple[Checkpoint, ...]
    models: tuple[ModelOutcome, ...] = ()
    """What the run's model outputs did, in order (empty from a daemon older than this field)."""

    @classmethod
    def from_dict(cls, doc: dict[str, Any], client: Any = None) -> Run:
        """A run from a ``runs.show`` document (or ``edgeorch show --json``); ``client``: for refresh/wait/logs.

        The record keeps a copy of ``doc``: the caller may change ``doc`` afterwards."""
        return cls.adopt(_copy(doc), client)

    @classmethod
    def adopt(cls, doc: dict[str, Any], client: Any = None) -> Run:
        """As :meth:`from_dict`, keeping ``doc`` itself: for a document nobody else holds or changes."""
        try:
            tasks = tuple(Task.from_dict(t) for t in doc["tasks"])
            counts: dict[str, int] = {}
            for t in tasks:
                counts[str(t.state)] = counts.get(str(t.state), 0) + 1
            return cls(**cls._fields(doc), task_counts=dict(sorted(counts.items())),
                       pipeline_file=_path(doc.get("pipeline_file")), content_hash=doc.get("content_hash"),
                       env=_copy(doc.get("env") or {}), tasks=tasks,
                       results=tuple(CheckResult.from_dict(r) for r in doc.get("results") or ()),
                       checkpoints=tuple(Checkpoint.from_dict(c) for c in doc.get("checkpoints") or ()),
                       models=tuple(ModelOutcome.from_dict(m) for m in doc.get("models") or ()), _client=client)
        except (KeyError, TypeError) as exc:
            raise UsageError("is not a run document", field=str(exc), expected="a runs.show document") from None

    @property
    def artifacts(self) -> tuple[Artifact, ...]:
        """Every task's latest artifacts, in task order."""
        return tuple(a for t in self.tasks for a in t.artifacts)

    def task(self, name: str) -> Task:
        """The task called ``name``; :class:`NotFoundError` listing the run's tasks when there is none."""
        for t in self.tasks:
            if t.name == name:
                return t
        raise NotFoundError(f"run {self.id} has no task {name!r}",
                            expected="one of " + ", ".join(t.name for t in self.tasks))

    def logs(self, task: str, attempt: int | None = None, *, follow: bool = False) -> Any:
        """The log of ``task``'s attempt (default: the latest) through the client: see ``Client.logs``."""
        return _bound(self._client, "read logs").logs(self.id, task, attempt, follow=follow)


@frozen(kw_only=True)
class Queued:
    """The daemon's receipt for a run it queued (the ``trigger`` op's answer; ``edgeorch trigger --json``)."""

    run_id: int
    pipeline: str
    params: dict[str, Any]
    """The run's params as resolved: defaults filled in, values typed."""
    content_hash: str | None
    file: Path | None
    """The pipeline file the run executes (for an ad-hoc file: the path it was sent from)."""
    _doc: dict[str, Any] = field(repr=False, compare=False)
    warnings: tuple[str, ...] = ()
    """What the caller should know (the pipeline's file has errors: the run starts from its last valid version)."""

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Queued:
        return cls(run_id=doc["run_id"], pipeline=doc["pipeline"], params=_copy(doc.get("params") or {}),
                   content_hash=doc.get("content_hash"), file=_path(doc.get("file")), _doc=_copy(doc),
                   warnings=tuple(str(w) for w in doc.get("warnings") or ()))

    def to_dict(self) -> dict[str, Any]:
        """The daemon's answer, unchanged (a deep copy)."""
        return _copy(self._doc)


def shared_document(record: RunSummary) -> dict[str, Any]:
    """The document ``record`` keeps, not copied: for a caller that only reads it (the CLI prints the run it
    waited for). Changing it would change the record; :meth:`RunSummary.to_dict` gives a copy to change."""
    return record._doc
