"""Scheduling primitives as pure functions over plain data: backoff, the dependency graph, resume.

No processes, clocks or SQL here. What follows an attempt's end (retry,
cascade, readiness, the run's end) is decided in :mod:`.settlement`, which
builds on these; tests: tests/unit/engine/test_scheduler.py.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from ..model import TaskState


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


def definition_change_problem(old: Any, new: Any) -> str | None:
    """Why run tasks of pipeline ``old`` (a run's own definition) cannot go on under ``new`` (its file as it is now,
    ``edgeorch retry --current``), or None when they can: the same tasks, each needing the same upstreams, and the
    same params with the same types (the run's values were converted by the old ones; a changed default is nothing
    to it, its values are recorded; its finished tasks' outputs stand as they are). Any other change (a timeout,
    retries, a command, resources) is what such a retry is for."""
    tasks = _names_differ(old.tasks, new.tasks)
    if tasks:
        return f"its tasks differ from the run's ({tasks})"
    moved = [n for n in old.order if tuple(old.tasks[n].needs) != tuple(new.tasks[n].needs)]
    if moved:
        return f"the needs of {', '.join(moved)} differ from the run's"
    params = _names_differ(old.params, new.params)
    if params:
        return f"its params differ from the run's ({params})"
    retyped = [n for n in old.params if old.params[n].type != new.params[n].type]
    if retyped:  # the run's values were converted by the old types: under the new ones they may mean nothing
        return "the type of param " + ", ".join(f"{n} ({old.params[n].type} -> {new.params[n].type})"
                                                 for n in retyped) + " differs from the run's"
    return None


def _names_differ(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    """``added a, b; removed c`` for the keys of ``new`` not in ``old`` and the other way round ('' when none)."""
    added, removed = sorted(set(new) - set(old)), sorted(set(old) - set(new))
    return "; ".join([*([f"added {', '.join(added)}"] if added else []),
                      *([f"removed {', '.join(removed)}"] if removed else [])])
