"""Settlement: what follows when a task's state changes, as pure functions over a run's state.

When an attempt ends (or a task fails before any attempt, is found in the
cache, is cancelled, or its retry falls due) the engine asks one function
here for a :class:`Settlement` and applies it: first the store transaction
that records it, then its own memory. Nothing here does I/O, reads a clock
or draws a random number: the engine passes ``now`` and ``rand`` in, so
every rule is tested directly (tests/unit/engine/test_settlement.py).

Each rule exists once:

* retry or fail: :func:`settle_attempt` (backoff: :func:`retry_delay`;
  attempts lost to edgeorch's machinery are not charged);
* the failure cascade (``upstream_failed``, or ``cancelled`` under a
  cancel): :func:`failure_cascade`;
* readiness: :func:`is_ready`, over per-task counts of upstreams without
  usable outputs (:func:`unmet_upstreams`, kept up to date by
  :func:`_release_dependents` so that a wide fan-in stays O(1) per end);
* the run's end: :func:`run_outcome`;
* every change is checked against the transition table in
  :mod:`edgeorch.model` (:meth:`TaskState.can_transition`).
"""

from __future__ import annotations

from dataclasses import field, replace
from typing import Iterable, Mapping, Sequence

from ..model import RunState, TaskSpec, TaskState
from ..records import frozen
from .scheduler import downstream, retry_delay

__all__ = [
    "AttemptEnd", "Change", "RetryPolicy", "RunView", "Settlement", "failure_cascade", "is_ready", "ready_tasks",
    "retry_delay", "run_outcome", "settle_attempt", "settle_cached", "settle_cancel", "settle_failure",
    "settle_ready", "settle_retry_due", "settle_run_end", "unmet_upstreams",
]


# -- plain data in ------------------------------------------------------------------------------


@frozen
class RetryPolicy:
    """How often and how soon a task is retried (a task's ``retries`` and ``retry_*`` fields)."""

    retries: int = 0
    delay: float = 1.0
    backoff: float = 2.0
    max_delay: float = 300.0
    jitter: float = 0.1

    @classmethod
    def of(cls, spec: TaskSpec) -> "RetryPolicy":
        return cls(spec.retries, spec.retry_delay, spec.retry_backoff, spec.retry_max_delay, spec.retry_jitter)


@frozen
class RunView:
    """A run's state as settlement needs it (read only; the engine's memory or a test's dicts).

    ``needs`` lists every task (pipeline order) with its upstreams;
    ``dependents`` the reverse. ``unmet``: per task, how many upstreams have
    not finished with usable outputs; ``unfinished``: how many tasks are not
    finished. Both are derived from ``states`` (:meth:`of` computes them);
    the engine keeps them up to date so a settlement costs O(changes), not
    O(tasks). ``uncharged``: per task, attempts lost to edgeorch's own
    machinery so far (they do not count against ``retries``).
    """

    needs: Mapping[str, Sequence[str]]
    dependents: Mapping[str, Sequence[str]]
    states: Mapping[str, TaskState]
    unmet: Mapping[str, int]
    unfinished: int
    cancel_requested: bool = False
    uncharged: Mapping[str, int] = field(default_factory=dict)
    retries_from: Mapping[str, int] = field(default_factory=dict)
    """Per task, its charged attempts before the run was last resumed: a resume gives ``retries`` afresh."""
    cancel_reason: str | None = None
    """Why the run was cancelled (``cancelled by alice``): a cancelled task's reason says it first."""

    @classmethod
    def of(cls, needs: Mapping[str, Sequence[str]], states: Mapping[str, TaskState], *,
           cancel_requested: bool = False, uncharged: Mapping[str, int] | None = None) -> "RunView":
        """A view computed from scratch (O(tasks + edges)): activation, resume, tests."""
        dependents: dict[str, list[str]] = {n: [] for n in needs}
        for name, ups in needs.items():
            for u in ups:
                dependents[u].append(name)
        return cls(needs, dependents, states, unmet_upstreams(needs, states),
                   sum(1 for s in states.values() if not s.finished), cancel_requested, dict(uncharged or {}))


@frozen
class AttemptEnd:
    """How an attempt of ``task`` ended, as the engine classified it.

    ``number``: the attempt's number among all of the task's attempts.
    ``ok``: exited 0, not stopped, outputs recorded. ``reason``: why not
    (for the task's row). ``uncharged``: lost to edgeorch's machinery (the
    launcher died): relaunched, never charged to ``retries``.
    ``stopped_for_cancel``: the engine stopped it because of a cancel.
    ``retryable``: False for an outcome a retry cannot change (a check's
    violation verdict).
    """

    task: str
    number: int
    ok: bool
    reason: str | None = None
    uncharged: bool = False
    stopped_for_cancel: bool = False
    retryable: bool = True
    stop_why: str | None = None
    """Why the engine stopped it when not for the run's cancel (its close: a shutdown), said as a cancel's
    reason is."""


# -- plain data out ----------------------------------------------------------------------------


@frozen
class Change:
    """One task's next state (``retry_at``: engine-clock time of the next attempt, for ``retry_wait``)."""

    task: str
    state: TaskState
    reason: str | None = None
    retry_at: float | None = None


@frozen
class Settlement:
    """What to record, then apply, after one event of a run.

    ``task``: the change of the task the event is about (None for a
    cancel, which changes many). ``cascade``: dependents (or, for a cancel,
    every waiting task) that finish with it. ``newly_ready``: tasks that
    become ``ready`` (their changes are in :attr:`changes`). ``unmet``: new
    counts of tasks whose count changed. ``run_finished``: the run's final
    state when this settlement ends it, else None; ``run_reason`` goes with it.
    """

    task: Change | None
    cascade: tuple[Change, ...] = ()
    newly_ready: tuple[str, ...] = ()
    unmet: Mapping[str, int] = field(default_factory=dict)
    run_finished: RunState | None = None
    run_reason: str | None = None

    @property
    def changes(self) -> list[Change]:
        """Every task change, in the order they are recorded: the task, its cascade, then readiness."""
        ready = [Change(n, TaskState.READY) for n in self.newly_ready]
        return ([self.task] if self.task is not None else []) + list(self.cascade) + ready


# -- the rules -----------------------------------------------------------------------------------


FREE_RELAUNCHES = 10
"""How many attempts of one task in one run that edgeorch itself lost (its launcher died, it stopped while
starting them, a cluster node could not start their supervisor) are relaunched free of charge. A fault
that repeats (every shim killed as it starts, a node that never starts a supervisor) would otherwise
relaunch forever, an attempt row and its audit records each time; later losses count as retries."""


def relaunch_is_free(lost_free_so_far: int) -> bool:
    """Whether an attempt lost to edgeorch is relaunched free (``uncharged``), after ``lost_free_so_far``
    such attempts of its task in its run; if not, it is a charged failure (retry with delay, or fail)."""
    return lost_free_so_far < FREE_RELAUNCHES


RELAUNCH_DELAY_MAX_S = 30.0
"""The longest wait before an attempt lost to edgeorch is relaunched (:func:`relaunch_delay`)."""


def relaunch_delay(lost_so_far: int) -> float:
    """Seconds before a free relaunch, after ``lost_so_far`` earlier losses of the task in its run: none for the
    first (a launcher killed once), then 1, 2, 4, ... up to :data:`RELAUNCH_DELAY_MAX_S`. A full disk failed
    every attempt's preparation at once: ten relaunches in 5 ms, all lost before anyone could free a byte."""
    return 0.0 if lost_so_far <= 0 else min(RELAUNCH_DELAY_MAX_S, 2.0 ** (lost_so_far - 1))


def unmet_upstreams(needs: Mapping[str, Sequence[str]], states: Mapping[str, TaskState]) -> dict[str, int]:
    """Per task, how many of its upstreams have not finished with usable outputs (ran or cache hit)."""
    return {n: sum(1 for u in ups if not states[u].done_ok) for n, ups in needs.items()}


def is_ready(name: str, states: Mapping[str, TaskState], unmet: Mapping[str, int]) -> bool:
    """The readiness rule: a pending task whose every upstream finished with usable outputs."""
    return states[name] == TaskState.PENDING and unmet[name] == 0


def ready_tasks(needs: Mapping[str, Iterable[str]], states: Mapping[str, TaskState]) -> list[str]:
    """Every task :func:`is_ready` now, in ``needs`` order."""
    unmet = unmet_upstreams({n: tuple(u) for n, u in needs.items()}, states)
    return [n for n in needs if is_ready(n, states, unmet)]


def failure_cascade(dependents: Mapping[str, Iterable[str]], failed: str, states: Mapping[str, TaskState]) -> list[str]:
    """The cascade: tasks that finish because ``failed`` did not succeed.

    Every transitive dependent that has neither finished nor is running (a
    running one ends on its own), sorted by name.
    """
    return [t for t in sorted(downstream(dependents, [failed])) if not states[t].finished and states[t] != TaskState.RUNNING]


def run_outcome(states: Iterable[TaskState], *, cancel_requested: bool) -> RunState | None:
    """The run's final state once every task has finished, else None.

    cancelled if a cancel was requested; failed if any task failed, was
    cancelled or could not run because upstream failed; otherwise succeeded.
    """
    states = list(states)
    if not all(s.finished for s in states):
        return None
    if cancel_requested:
        return RunState.CANCELLED
    if any(s in (TaskState.FAILED, TaskState.UPSTREAM_FAILED, TaskState.CANCELLED) for s in states):
        return RunState.FAILED
    return RunState.SUCCEEDED


# -- settling events -------------------------------------------------------------------------------


def settle_attempt(view: RunView, end: AttemptEnd, policy: RetryPolicy, *, now: float, rand: float) -> Settlement:
    """The decisions after an attempt ended: the task's next state, cascade, readiness, the run's end.

    In order: stopped for a cancel, or failed under a cancel → ``cancelled``;
    succeeded → ``succeeded``; lost to edgeorch's machinery → ``ready`` again
    (uncharged; from its second loss in ``retry_wait`` for :func:`relaunch_delay` first); a charged failure with retries left (and ``retryable``) →
    ``retry_wait`` until ``now + retry_delay(...)`` (``rand`` in [0, 1)
    spreads it); else ``failed``.
    """
    # Charged attempts since the run was last resumed, this one included (a resume grants ``retries`` again).
    charged = (end.number - view.uncharged.get(end.task, 0) - (1 if end.uncharged else 0)
               - view.retries_from.get(end.task, 0))
    if end.stopped_for_cancel or (view.cancel_requested and not end.ok):
        why = end.stop_why or view.cancel_reason or "cancelled"
        change = Change(end.task, TaskState.CANCELLED, f"{why}: stopped ({end.reason})" if end.reason else why)
    elif end.ok:
        change = Change(end.task, TaskState.SUCCEEDED)
    elif end.uncharged and (wait := relaunch_delay(view.uncharged.get(end.task, 0))) == 0:
        change = Change(end.task, TaskState.READY, end.reason)
    elif end.uncharged:  # again: what lost it (a full disk, no memory) may not have passed yet
        change = Change(end.task, TaskState.RETRY_WAIT, f"{end.reason}; relaunched in {wait:g}s", now + wait)
    elif charged <= policy.retries and end.retryable:
        delay = retry_delay(charged, base=policy.delay, backoff=policy.backoff, max_delay=policy.max_delay,
                            jitter=policy.jitter, rand=rand)
        change = Change(end.task, TaskState.RETRY_WAIT,
                        f"{end.reason}; retry {charged} of {policy.retries} in {delay:.1f}s", now + delay)
    else:
        change = Change(end.task, TaskState.FAILED, end.reason)
    return _settle(view, change)


def settle_failure(view: RunView, task: str, reason: str) -> Settlement:
    """``task`` fails before any attempt (cannot be scheduled or prepared): no retry, cascade follows."""
    return _settle(view, Change(task, TaskState.FAILED, reason))


def settle_cached(view: RunView, task: str, reason: str | None = None) -> Settlement:
    """``task`` is skipped: a recorded result of the same inputs stands for it (its dependents may become ready)."""
    return _settle(view, Change(task, TaskState.SKIPPED, reason))


def settle_retry_due(view: RunView, task: str) -> Settlement:
    """``task``'s retry wait is over: ready again (nothing when it left ``retry_wait`` meanwhile)."""
    if view.states.get(task) != TaskState.RETRY_WAIT:
        return Settlement(None)
    return _settle(view, Change(task, TaskState.READY))


def settle_ready(view: RunView) -> Settlement:
    """Tasks ready now, from scratch (a run activated or resumed); nothing under a cancel.

    Never the run's end (activation does not finish a run: :func:`settle_run_end`).
    """
    ready = () if view.cancel_requested else tuple(n for n in view.needs if is_ready(n, view.states, view.unmet))
    for n in ready:
        _check(view, Change(n, TaskState.READY))
    return Settlement(None, (), ready)


def settle_run_end(view: RunView) -> Settlement:
    """The run's end as its tasks stand (after a restart, every task may have finished already)."""
    return Settlement(None, (), (), {}, *_run_end(view, {}))


def settle_cancel(view: RunView, reason: str) -> Settlement:
    """A cancel: every task still waiting (pending, ready, retry wait) is cancelled; running ones are stopped.

    ``view.cancel_requested`` need not be set yet: the outcome is computed as if it were.
    """
    view = replace(view, cancel_requested=True)
    waiting = (TaskState.PENDING, TaskState.READY, TaskState.RETRY_WAIT)
    cascade = tuple(Change(n, TaskState.CANCELLED, reason) for n, s in view.states.items() if s in waiting)
    for c in cascade:
        _check(view, c)
    return Settlement(None, cascade, (), {}, *_run_end(view, {c.task: c.state for c in cascade}))


# -- composition -----------------------------------------------------------------------------------


def _settle(view: RunView, change: Change) -> Settlement:
    """``change`` of one task, and what follows from it: cascade or readiness, then the run's end."""
    _check(view, change)
    cascade: tuple[Change, ...] = ()
    ready: tuple[str, ...] = ()
    unmet: dict[str, int] = {}
    if change.state in (TaskState.FAILED, TaskState.CANCELLED):
        to = TaskState.UPSTREAM_FAILED if change.state == TaskState.FAILED else TaskState.CANCELLED
        cascade = tuple(Change(t, to, f"upstream {change.task} {change.state}")
                        for t in failure_cascade(view.dependents, change.task, view.states))
    elif change.state.done_ok:
        unmet = _release_dependents(view, change.task)
        if not view.cancel_requested:
            ready = tuple(d for d in view.dependents.get(change.task, ()) if is_ready(d, view.states, unmet))
    for c in cascade:
        _check(view, c)
    after = {change.task: change.state, **{c.task: c.state for c in cascade}, **{n: TaskState.READY for n in ready}}
    return Settlement(change, cascade, ready, unmet, *_run_end(view, after))


def _release_dependents(view: RunView, done: str) -> dict[str, int]:
    """New unmet counts of ``done``'s dependents once ``done`` has usable outputs (was it not already)."""
    if view.states[done].done_ok:
        return {}
    return {d: view.unmet[d] - 1 for d in view.dependents.get(done, ())}


def _run_end(view: RunView, after: Mapping[str, TaskState]) -> tuple[RunState | None, str | None]:
    """The run's end and its reason once ``after`` is applied (None, None while a task is unfinished).

    O(changes), unless every task has then finished (once per run).
    """
    unfinished = view.unfinished
    for name, new in after.items():
        unfinished += (not new.finished) - (not view.states[name].finished)
    if unfinished:
        return None, None
    states = {n: after.get(n, s) for n, s in view.states.items()}
    outcome = run_outcome(states.values(), cancel_requested=view.cancel_requested)
    failed = [n for n, s in states.items() if s == TaskState.FAILED]
    if failed and outcome is not None:
        return outcome, f"failed: {', '.join(failed)}"
    stopped = [n for n, s in states.items() if s == TaskState.CANCELLED]
    if outcome == RunState.FAILED and stopped:  # stopped without a cancel of the run (a shutdown): said, not blank
        return outcome, f"stopped: {', '.join(stopped)}"
    return outcome, None


def _check(view: RunView, change: Change) -> None:
    """A settlement never proposes a transition the table forbids (that would be a bug here)."""
    old = view.states[change.task]
    if not TaskState.can_transition(old, change.state):
        raise AssertionError(f"task {change.task}: {old} -> {change.state} is not a task transition")
