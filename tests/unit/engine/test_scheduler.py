"""Pure scheduling rules (backoff, graph, resume) and the settlement rules they feed."""

from __future__ import annotations

import pytest

from edgeorch.engine import scheduler, settlement
from edgeorch.model import RunState, TaskState as T


@pytest.mark.parametrize("attempt,rand,expected", [
    (1, 0.5, 1.0), (2, 0.5, 2.0), (3, 0.5, 4.0), (10, 0.5, 30.0),  # capped
    (1, 0.0, 0.9), (1, 0.999999, 1.1),  # ±10% jitter
])
def test_retry_delay_is_exponential_capped_and_jittered(attempt, rand, expected):
    got = scheduler.retry_delay(attempt, base=1.0, backoff=2.0, max_delay=30.0, jitter=0.1, rand=rand)
    assert got == pytest.approx(expected, rel=1e-5)


def test_retry_delay_survives_huge_exponents():
    assert scheduler.retry_delay(10_000, base=1, backoff=10, max_delay=5, jitter=0, rand=0) == 5


NEEDS = {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"]}
DEPS = {"a": ["b", "c"], "b": ["d"], "c": ["d"], "d": []}


def test_ready_tasks_need_every_upstream_done():
    states = {"a": T.SUCCEEDED, "b": T.SKIPPED, "c": T.RUNNING, "d": T.PENDING}
    assert settlement.ready_tasks(NEEDS, states) == []
    states["c"] = T.SUCCEEDED
    assert settlement.ready_tasks(NEEDS, states) == ["d"]


def test_roots_are_ready_at_once():
    assert settlement.ready_tasks(NEEDS, {n: T.PENDING for n in NEEDS}) == ["a"]


def test_failure_cascades_to_every_unfinished_descendant():
    states = {"a": T.FAILED, "b": T.PENDING, "c": T.PENDING, "d": T.PENDING}
    assert settlement.failure_cascade(DEPS, "a", states) == ["b", "c", "d"]


@pytest.mark.parametrize("states,cancel,expected", [
    ([T.SUCCEEDED, T.SKIPPED], False, RunState.SUCCEEDED),
    ([T.SUCCEEDED, T.FAILED], False, RunState.FAILED),
    ([T.UPSTREAM_FAILED, T.SUCCEEDED], False, RunState.FAILED),
    ([T.CANCELLED, T.SUCCEEDED], True, RunState.CANCELLED),
    ([T.RUNNING, T.SUCCEEDED], False, None),
    ([T.RETRY_WAIT], False, None),
])
def test_run_outcome(states, cancel, expected):
    assert settlement.run_outcome(states, cancel_requested=cancel) == expected


def test_resume_takes_failures_changed_outputs_and_everything_downstream():
    states = {"a": T.SUCCEEDED, "b": T.FAILED, "c": T.SUCCEEDED, "d": T.UPSTREAM_FAILED}
    assert scheduler.tasks_to_resume(states, DEPS, {"a": True, "c": True}) == {"b", "d"}
    assert scheduler.tasks_to_resume(states, DEPS, {"a": False, "c": True}) == {"a", "b", "c", "d"}
