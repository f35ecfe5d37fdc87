"""The executor interface: how the engine starts, watches, stops, adopts and settles attempts.

The engine talks to an executor only through :class:`Executor` and the plain
data below. Implementations: :class:`~edgeorch.engine.executors.local.executor.LocalExecutor`
(a zygote forks supervising shims, one attempt at a time each) and
:class:`~edgeorch.engine.executors.ray.executor.RayExecutor` (one detached Ray
actor per attempt, on a node of a Ray cluster). One contract test suite
(``tests/contract/test_executors.py``) runs against every implementation, so
the docstrings here are the contract.

General rules for every executor:

- **Callbacks come on the engine's loop**, never from another thread, and
  never from inside the call that caused them (a callback never re-enters
  the engine while it is in the middle of a method).
- ``on_started(attempt_id, StartedInfo)`` comes at most once per attempt,
  before its ``on_exited``.
- ``on_exited(attempt_id, ExitInfo)`` comes **exactly once** per attempt the
  executor was given by :meth:`Executor.spawn` or adopted as
  :attr:`Verdict.LIVE` (unless :meth:`Executor.close` came first), and only
  after **no process of the attempt is alive**: its lease may be granted
  again at once.
- **edgeorch's own failures are never the task's**: when the executor's
  machinery (a launcher, a supervisor) fails before the task ran, the exit
  says ``uncharged=True`` and the engine relaunches without charging a retry.
- **Durability**: an attempt outlives the engine object and the daemon
  (live restore). Whatever the executor needs to find it again it keeps
  itself (the local one in files of the attempt folder); the engine keeps
  only :class:`AttemptRecord` in its state file.
- An executor owns its **health**: it repairs itself (restarts a dead
  launcher, backing off when it keeps dying) and reports each repair through
  ``on_health(message)``; :meth:`Executor.health` says how it is now.
"""

from __future__ import annotations

import abc
import enum
import json
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Callable

from ...records import frozen

if TYPE_CHECKING:
    from ...resources.cluster import ClusterNode


@dataclass
class SpawnRequest:
    """Everything needed to run one attempt (plain data; JSON-able)."""

    attempt_id: int
    argv: list[str]
    env: dict[str, str]
    cwd: str
    log_path: str
    attempt_dir: str
    """A folder of its own (new for each attempt); the executor may keep its records in it."""
    log_max_bytes: int
    cpus: list[int] | None = None
    cgroup: str | None = None
    """A cgroup v2 folder (with ``memory.max``) the attempt's processes join before the task starts."""
    kill_grace: float = 10.0
    """Seconds between the SIGTERM and the SIGKILL of a stop (and of what the task leaves behind)."""
    mkdirs: list[str] = field(default_factory=list)
    """Folders to create before the task starts (its output and checkpoint folders)."""
    resources: dict[str, Any] = field(default_factory=dict)
    """The task's resource request (the non-zero keys of a ``ResourceRequest``: cpus, memory, gpus,
    gpu_memory, gpu_model). An executor that places attempts itself (Ray) asks its scheduler for
    them; the local one applies the lease instead (``cpus``, ``cgroup``, the lease's variables in ``env``)."""
    cleanup: list[str] = field(default_factory=list)
    """A command (argv) that releases what the attempt holds outside its process tree (a container task:
    its container's record, ``podman rm --force``). Run once no process of the attempt is alive, when the
    supervisor had to stop or kill any of them (a stop, or processes the task left behind), before the exit
    record; and by :meth:`Executor.settle` for an attempt whose supervisor vanished. Empty: nothing to do.
    Its failure is never the task's: output is discarded, the exit status unchanged."""
    forwards_stop: bool = False
    """The task's leader runs a container (the runtime's client, ``run --sig-proxy=true``). A stop then sends
    SIGTERM to the container's own processes (those in its PID namespace, its PID 1 included) and not to the
    runtime's, while the leader runs; to the leader alone when the container has no process yet (it forwards
    it); to every other process of the attempt once the leader has ended; SIGKILL to all of them after
    ``kill_grace`` as always. The runtime's own processes (the client relaying the container's output, its
    monitor) must outlive the container: a SIGTERM of their own could lose its last output, or the signal's
    forward (a ``runc kill`` the client starts) on its way."""

    def to_json(self) -> str:
        """One JSON object of the fields (every value is plain JSON data: no nested dataclass).

        Built from the fields directly: ``dataclasses.asdict`` deep-copies each
        value (every variable of ``env``), which cost about as much CPU as the
        rest of an attempt's start on the engine's loop.
        """
        return json.dumps({f.name: getattr(self, f.name) for f in fields(self)})


@dataclass
class StartedInfo:
    """Where an attempt runs: the task's leader and its supervisor, each as (pid, start time).

    Pids are only meaningful with their start times (pids are reused);
    ``pgid`` is the task's process group. ``extra`` carries an executor's own
    facts (a Ray task id, …).
    """

    pid: int
    pid_start_time: int | None
    pgid: int
    shim_pid: int
    shim_start_time: int | None
    extra: dict[str, Any] = field(default_factory=dict)


ProcInfo = StartedInfo  # the name the engine and the store used before the contract


@dataclass
class ExitInfo:
    """How an attempt ended: ``exit_code``, or ``signal`` when killed by one (then ``exit_code`` is None).

    ``lost``: no exit status exists (the supervisor vanished, or the attempt
    never ran): the attempt is abandoned. ``uncharged``: the cause is
    edgeorch's own machinery, not the task: its retries are not charged.
    ``finished_at`` is wall-clock seconds (None when unknown).
    """

    exit_code: int | None
    signal: int | None
    finished_at: float | None
    log_truncated: bool = False
    lost: bool = False
    error: str | None = None
    uncharged: bool = False


@frozen
class AttemptRecord:
    """What the engine's state file holds about an attempt it started (input to :meth:`Executor.adopt`)."""

    attempt_id: int
    attempt_dir: str
    pgid: int | None = None
    """Recorded when the engine saw it start (None: it may have started after the engine stopped)."""


class Verdict(enum.Enum):
    """What became of an attempt while nobody watched it."""

    LIVE = "live"
    """Still running: the executor watches it again; ``on_exited`` follows."""
    FINISHED = "finished"
    """It ended and its exit record exists: ``Adoption.exit`` is it; no callback follows."""
    LOST = "lost"
    """It never ran, or ended with no exit record: ``Adoption.exit`` says ``lost``; no callback follows."""


@dataclass
class Adoption:
    """The answer of :meth:`Executor.adopt`."""

    verdict: Verdict
    started: StartedInfo | None = None
    """Where it runs (LIVE), when the executor knows; the engine records it if it had not."""
    exit: ExitInfo | None = None
    """How it ended (FINISHED, LOST)."""


@frozen
class Health:
    """How an executor is: ``ok`` False while its launcher is down (requests wait, nothing is lost)."""

    ok: bool
    detail: str
    restarts: int = 0
    """Repairs so far (launcher restarts)."""


OnStarted = Callable[[int, StartedInfo], None]
OnExited = Callable[[int, ExitInfo], None]
OnHealth = Callable[[str], None]


class Executor(abc.ABC):
    """Runs attempts for the engine; see the module rules. Constructed with the loop and the three callbacks."""

    #: Short name (``local``, ``ray``).
    name: str = "abstract"

    @abc.abstractmethod
    def start(self) -> None:
        """Bring the executor up (the local one starts its launcher). Raises OSError when it cannot.

        Called once, before any other method but :meth:`health`.
        """

    @abc.abstractmethod
    def spawn(self, req: SpawnRequest) -> None:
        """Start an attempt. Never raises for the attempt's sake and never blocks.

        ``on_started`` then ``on_exited`` follow; a task that cannot be
        started (no such program, bad cwd) is reported by ``on_exited`` with
        exit code 127 and ``error``. While the executor's launcher is down
        the request waits for it; if the launcher dies holding it, the
        attempt ends ``lost``/``uncharged`` unless it had already started.
        """

    @abc.abstractmethod
    def stop(self, attempt_id: int) -> None:
        """Stop every process of the attempt: SIGTERM now, SIGKILL ``kill_grace`` seconds later.

        Applies to the attempt's whole process tree (children that detached
        included), whatever its leader does, and survives a restart of the
        engine. With :attr:`SpawnRequest.forwards_stop` the SIGTERM goes to
        the container's processes, not the runtime's, while the leader runs
        (see there). A stop asked before the attempt started is applied when it
        starts. Idempotent; a no-op for an attempt that has ended.
        """

    @abc.abstractmethod
    def kill(self, attempt_id: int) -> None:
        """SIGKILL everything of the attempt that can still be found (the engine's safety net after a stop)."""

    def task_ended(self, attempt_id: int) -> bool:
        """Whether the attempt's task (its leader) has ended, while what it left running is being stopped before
        the attempt's end is reported: its timeout then no longer applies. False when not known (the default: an
        executor that cannot tell keeps the timeout)."""
        return False

    @abc.abstractmethod
    def adopt(self, record: AttemptRecord) -> Adoption:
        """Decide what became of an attempt started by an earlier engine (after a daemon restart).

        LIVE: it runs; from now on it is watched as if spawned here (stop,
        kill, ``on_exited``). FINISHED: it ended meanwhile; the exit is read
        from its durable record (:meth:`settle`). LOST: it never ran (the
        engine stopped while starting it: ``uncharged``) or it ended with no
        record; any process of it still found is killed. Never raises for a
        missing or unreadable record: that is LOST.
        """

    @abc.abstractmethod
    def settle(self, record: AttemptRecord) -> ExitInfo:
        """The exit of an attempt whose supervisor is gone, from its durable exit record.

        ``lost`` when there is no record; then whatever of the attempt still
        runs (an orphan nobody would collect) is killed first.
        """

    @abc.abstractmethod
    def pids(self, attempt_ids: list[int]) -> dict[int, list[int]]:
        """Host pids of the processes of each live attempt (for the GPU watcher). Missing: none known."""

    @abc.abstractmethod
    def health(self) -> Health:
        """How the executor is now (cheap; no I/O)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Stop watching; running attempts go on (a later :meth:`adopt` finds them). No callback comes after."""

    def nodes(self) -> Sequence["ClusterNode"] | None:
        """The machines attempts run on, for an executor that places them on a cluster (cheap: no I/O).

        None (the default): this machine only; the engine's admission reads
        its hardware. A sequence (empty before :meth:`start`, so the engine can
        tell the kind before starting it): the engine admits against these nodes
        (``resources/cluster.py``) and re-reads it when a different object
        is returned (a node joined or died).
        """
        return None

    def placements(self) -> dict[int, str]:
        """Attempt id → the node id it runs on, for the attempts a cluster executor placed (reports only)."""
        return {}


__all__ = ["Adoption", "AttemptRecord", "ExitInfo", "Executor", "Health", "OnExited", "OnHealth", "OnStarted",
           "ProcInfo", "SpawnRequest", "StartedInfo", "Verdict"]
