"""Plain data: pipeline definitions and the states of runs, tasks and attempts.

No I/O here. The store persists these states; the scheduler reasons about
them; the CLI renders them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class RunState(StrEnum):
    """``queued → running → succeeded | failed | cancelled``."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED)


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


PARAM_TYPES = ("str", "int", "float", "bool", "path")


@dataclass(frozen=True)
class Param:
    """A typed pipeline parameter. ``default`` is None when the param is required."""

    name: str
    type: str
    default: Any
    help: str = ""

    @property
    def required(self) -> bool:
        return self.default is None


@dataclass(frozen=True)
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
    cache: bool = False
    cpus: int = 0
    memory: int | None = None
    gpus: int = 0
    gpu_memory: int | None = None
    gpu_model: str | None = None
    pool: str | None = None
    definition_hash: str = ""


@dataclass(frozen=True)
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

    def dependents(self) -> dict[str, list[str]]:
        """Task name -> the tasks that need it (declaration order)."""
        out: dict[str, list[str]] = {name: [] for name in self.tasks}
        for spec in self.tasks.values():
            for up in spec.needs:
                out[up].append(spec.name)
        return out
