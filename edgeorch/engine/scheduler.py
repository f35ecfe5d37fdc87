"""Scheduling decisions as pure functions over plain data.

No processes, clocks or SQL here: the engine passes states in and applies
what comes out, so every rule is tested directly (tests/unit/test_scheduler.py).
"""

from __future__ import annotations

from typing import Iterable, Mapping

from ..model import RunState, TaskState


def retry_delay(attempt: int, *, base: float, backoff: float, max_delay: float, jitter: float, rand: float) -> float:
    """Seconds to wait before attempt ``attempt + 1`` after attempt ``attempt`` failed.

    Exponential: ``base * backoff ** (attempt - 1)``, capped at ``max_delay``,
    then spread by ``±jitter`` (a fraction) using ``rand`` in [0, 1) so that
    tasks failing together do not retry in lockstep. Never negative.
    """
    if attempt < 1:
        attempt = 1
    try:
        delay = base * (backoff ** (attempt - 1))
    except OverflowError:
        delay = max_delay
    delay = min(delay, max_delay)
    delay *= 1.0 + jitter * (2.0 * rand - 1.0)
    return max(delay, 0.0)


def ready_tasks(needs: Mapping[str, Iterable[str]], states: Mapping[str, TaskState]) -> list[str]:
    """Pending tasks whose every upstream finished with usable outputs, in ``needs`` order."""
    return [
        name for name, ups in needs.items()
        if states[name] == TaskState.PENDING and all(states[u].done_ok for u in ups)
    ]


def downstream(dependents: Mapping[str, Iterable[str]], roots: Iterable[str]) -> set[str]:
    """Every task that transitively needs one of ``roots`` (roots excluded unless reached)."""
    seen: set[str] = set()
    stack = list(roots)
    while stack:
        for d in dependents.get(stack.pop(), ()):
            if d not in seen:
                seen.add(d)
                stack.append(d)
    return seen


def failure_cascade(dependents: Mapping[str, Iterable[str]], failed: str, states: Mapping[str, TaskState]) -> list[str]:
    """Tasks to mark ``upstream_failed`` after ``failed`` failed: unfinished transitive dependents."""
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


def tasks_to_resume(
    states: Mapping[str, TaskState], dependents: Mapping[str, Iterable[str]], outputs_intact: Mapping[str, bool]
) -> set[str]:
    """Tasks a resume (``edgeorch retry``) must run again.

    Those that did not succeed, succeeded tasks whose recorded outputs are gone
    or changed (``outputs_intact[name]`` False), and everything downstream of
    either (their inputs will change).
    """
    redo = {n for n, s in states.items() if not s.done_ok}
    redo |= {n for n, s in states.items() if s.done_ok and not outputs_intact.get(n, True)}
    return redo | downstream(dependents, list(redo))
