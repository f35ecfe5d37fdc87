"""Settlement: the engine's decisions after an attempt ends, on an injected clock, without processes.

Each test builds a run's state as plain dicts, asks a ``settle_*`` function
for its decision and, where a run goes on, applies it the way the engine
does (states, then unmet counts) to take the next decision.
"""

from __future__ import annotations

import dataclasses

from dataclasses import dataclass, field

import pytest

from edgeorch.engine import settlement as st
from edgeorch.engine.settlement import AttemptEnd, Change, RetryPolicy, RunView
from edgeorch.model import (ATTEMPT_TRANSITIONS, INPUT_TRANSITIONS, RUN_TRANSITIONS, TASK_TRANSITIONS, AttemptState,
                            InputState, RunState, TaskState as T)

# a → b → c, a → d; e alone
NEEDS = {"a": (), "b": ("a",), "c": ("b",), "d": ("a",), "e": ()}


@dataclass
class FakeRun:
    """A run's state as the engine keeps it, driven by settlements only (the engine's apply, minus I/O)."""

    needs: dict[str, tuple[str, ...]]
    states: dict[str, T]
    cancel_requested: bool = False
    uncharged: dict[str, int] = field(default_factory=dict)
    unmet: dict[str, int] = field(default_factory=dict)
    ended: RunState | None = None
    cancel_reason: str | None = None

    def __post_init__(self) -> None:
        self.unmet = st.unmet_upstreams(self.needs, self.states)

    def view(self) -> RunView:
        full = RunView.of(self.needs, self.states, cancel_requested=self.cancel_requested, uncharged=self.uncharged)
        # The engine's incrementally kept counts must equal the from-scratch ones at every step.
        assert self.unmet == full.unmet
        return RunView(full.needs, full.dependents, self.states, self.unmet, full.unfinished, self.cancel_requested,
                       self.uncharged, cancel_reason=self.cancel_reason)

    def apply(self, s: st.Settlement) -> st.Settlement:
        for c in s.changes:
            self.states[c.task] = c.state
        self.unmet.update(s.unmet)
        if s.run_finished is not None:
            assert self.ended is None, "a run ends once"
            self.ended = s.run_finished
        return s


def policy(retries: int = 0, **kw: float) -> RetryPolicy:
    return RetryPolicy(retries=retries, **kw)  # type: ignore[arg-type]


def fail(task: str, number: int, **kw: object) -> AttemptEnd:
    return AttemptEnd(task, number, ok=False, reason="exited with code 1", **kw)  # type: ignore[arg-type]


def ok(task: str, number: int = 1) -> AttemptEnd:
    return AttemptEnd(task, number, ok=True)


# -- retry or fail ------------------------------------------------------------------------------


@pytest.mark.parametrize("number,rand,expected", [
    (1, 0.5, 2.0), (2, 0.5, 6.0), (3, 0.5, 18.0),  # base 2, backoff 3
    (1, 0.0, 1.0), (2, 0.0, 3.0),  # rand 0: -50 % jitter
    (3, 0.999999, 27.0),  # rand → 1: +50 %, capped at max_delay before the jitter
])
def test_a_failed_attempt_with_retries_left_waits_the_backoff_from_the_injected_clock_and_rand(number, rand, expected):
    run = FakeRun(NEEDS, {"a": T.RUNNING, "b": T.PENDING, "c": T.PENDING, "d": T.PENDING, "e": T.PENDING})
    s = st.settle_attempt(run.view(), fail("a", number), policy(3, delay=2.0, backoff=3.0, max_delay=18.0, jitter=0.5),
                          now=1000.0, rand=rand)
    assert s.task is not None and s.task.state == T.RETRY_WAIT
    assert s.task.retry_at == pytest.approx(1000.0 + expected, rel=1e-5)
    assert s.task.reason.startswith(f"exited with code 1; retry {number} of 3 in ")
    assert s.cascade == () and s.newly_ready == () and s.run_finished is None


def test_retries_exhausted_fail_the_task_and_cascade_upstream_failed_transitively():
    run = FakeRun(NEEDS, {"a": T.RUNNING, "b": T.PENDING, "c": T.PENDING, "d": T.PENDING, "e": T.SUCCEEDED})
    s = run.apply(st.settle_attempt(run.view(), fail("a", 3), policy(2), now=0.0, rand=0.5))
    assert s.task == Change("a", T.FAILED, "exited with code 1")
    assert s.cascade == tuple(Change(t, T.UPSTREAM_FAILED, "upstream a failed") for t in ("b", "c", "d"))
    assert s.newly_ready == ()
    assert (s.run_finished, s.run_reason) == (RunState.FAILED, "failed: a")


def test_the_cascade_leaves_running_and_finished_dependents_alone():
    needs = {"a": (), "b": (), "c": ("a", "b"), "d": ("a",)}
    run = FakeRun(needs, {"a": T.RUNNING, "b": T.RUNNING, "c": T.PENDING, "d": T.SUCCEEDED})
    s = run.apply(st.settle_failure(run.view(), "a", "cannot be scheduled: 99 cores"))
    assert s.task == Change("a", T.FAILED, "cannot be scheduled: 99 cores")
    assert [c.task for c in s.cascade] == ["c"]
    assert s.run_finished is None  # b still runs
    s = run.apply(st.settle_attempt(run.view(), ok("b"), policy(), now=0.0, rand=0.0))
    assert s.newly_ready == () and s.run_finished == RunState.FAILED


def test_a_violation_is_never_retried():
    run = FakeRun({"check": ()}, {"check": T.RUNNING})
    end = AttemptEnd("check", 1, ok=False, reason="violation: drift", retryable=False)
    s = st.settle_attempt(run.view(), end, policy(5), now=0.0, rand=0.0)
    assert s.task == Change("check", T.FAILED, "violation: drift")


# -- uncharged attempts -----------------------------------------------------------------------------


def test_an_attempt_lost_to_edgeorch_is_relaunched_at_once_without_a_retry_or_wait():
    run = FakeRun({"t": ()}, {"t": T.RUNNING})
    end = AttemptEnd("t", 1, ok=False, reason="launcher died; relaunched", uncharged=True)
    s = st.settle_attempt(run.view(), end, policy(0), now=50.0, rand=0.0)
    assert s.task == Change("t", T.READY, "launcher died; relaunched")


def test_a_task_lost_again_waits_longer_before_each_free_relaunch():
    """A full disk failed each attempt's preparation at once: ten free relaunches in 5 ms, all lost before anyone
    could free a byte, then charged failures. From the second loss each waits: 1, 2, 4 ... 30 s."""
    waits = []
    for lost in range(1, 9):
        run = FakeRun({"t": ()}, {"t": T.RUNNING}, uncharged={"t": lost})
        end = AttemptEnd("t", lost + 1, ok=False, reason="cannot make its folder: No space left on device",
                         uncharged=True)
        s = st.settle_attempt(run.view(), end, policy(0), now=100.0, rand=0.0)
        assert s.task is not None and s.task.state == T.RETRY_WAIT
        assert s.task.reason == f"{end.reason}; relaunched in {s.task.retry_at - 100.0:g}s"
        waits.append(s.task.retry_at - 100.0)
    assert waits == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]


def test_uncharged_attempts_do_not_consume_retries():
    # retries = 1: attempt 1 lost to edgeorch (uncharged), attempt 2 fails: its first charged failure → a retry.
    run = FakeRun({"t": ()}, {"t": T.RUNNING}, uncharged={"t": 1})
    s = st.settle_attempt(run.view(), fail("t", 2), policy(1, delay=1.0, jitter=0.0), now=10.0, rand=0.3)
    assert s.task is not None and (s.task.state, s.task.retry_at) == (T.RETRY_WAIT, 11.0)
    assert "retry 1 of 1" in (s.task.reason or "")
    # The same failure charged twice (no uncharged attempt before it) has used its retry.
    run = FakeRun({"t": ()}, {"t": T.RUNNING})
    assert st.settle_attempt(run.view(), fail("t", 2), policy(1), now=10.0, rand=0.3).task.state == T.FAILED


def test_a_resumed_task_gets_its_retries_again_counted_from_the_resume():
    # retries = 1: attempts 1 and 2 failed before the resume (retries_from 2); attempt 3 fails: a retry, 2/2.
    view = dataclasses.replace(FakeRun({"t": ()}, {"t": T.RUNNING}).view(), retries_from={"t": 2})
    s = st.settle_attempt(view, fail("t", 3), policy(1, delay=1.0, jitter=0.0), now=10.0, rand=0.3)
    assert s.task is not None and s.task.state == T.RETRY_WAIT and "retry 1 of 1" in (s.task.reason or "")
    assert st.settle_attempt(view, fail("t", 4), policy(1), now=10.0, rand=0.3).task.state == T.FAILED
    # Without the resume's count, attempt 3 of a task with one retry has none left.
    plain = FakeRun({"t": ()}, {"t": T.RUNNING}).view()
    assert st.settle_attempt(plain, fail("t", 3), policy(1), now=10.0, rand=0.3).task.state == T.FAILED


def test_a_run_of_lost_attempts_never_fails_a_task_without_retries():
    run = FakeRun({"t": ()}, {"t": T.RUNNING})
    for number in range(1, 6):
        s = run.apply(st.settle_attempt(run.view(), fail("t", number, uncharged=True), policy(0), now=0.0, rand=0.0))
        assert s.task.state == (T.READY if number == 1 else T.RETRY_WAIT)  # relaunched, at once or after a wait
        run.uncharged["t"] = run.uncharged.get("t", 0) + 1  # the engine counts it after the commit
        run.states["t"] = T.RUNNING  # relaunched
    s = run.apply(st.settle_attempt(run.view(), ok("t", 6), policy(0), now=0.0, rand=0.0))
    assert s.run_finished == RunState.SUCCEEDED


def test_lost_attempts_beyond_the_free_relaunches_count_as_retries_so_a_repeating_fault_ends():
    # The engine's rule: an attempt edgeorch lost is free while fewer than FREE_RELAUNCHES were; then charged.
    run = FakeRun({"t": ()}, {"t": T.RUNNING})
    number = 0
    while True:
        number += 1
        free = st.relaunch_is_free(run.uncharged.get("t", 0))
        s = run.apply(st.settle_attempt(run.view(), fail("t", number, uncharged=free),
                                        policy(1, delay=1.0, jitter=0.0), now=0.0, rand=0.0))
        if not free:
            break
        assert s.task.state == (T.READY if number == 1 else T.RETRY_WAIT)
        run.uncharged["t"] = run.uncharged.get("t", 0) + 1
        run.states["t"] = T.RUNNING
    assert number == st.FREE_RELAUNCHES + 1
    assert (s.task.state, "retry 1 of 1" in (s.task.reason or "")) == (T.RETRY_WAIT, True)  # the one retry, with its delay
    run.states["t"] = T.RUNNING
    s = run.apply(st.settle_attempt(run.view(), fail("t", number + 1, uncharged=st.relaunch_is_free(10)),
                                    policy(1), now=0.0, rand=0.0))
    assert s.task.state == T.FAILED and s.run_finished == RunState.FAILED


# -- readiness ----------------------------------------------------------------------------------------


def test_a_cached_upstream_makes_its_dependents_ready_like_a_succeeded_one():
    needs = {"a": (), "b": (), "c": ("a", "b")}
    run = FakeRun(needs, {"a": T.SUCCEEDED, "b": T.READY, "c": T.PENDING})
    s = run.apply(st.settle_cached(run.view(), "b"))
    assert s.task == Change("b", T.SKIPPED)
    assert s.newly_ready == ("c",) and s.unmet == {"c": 0}
    assert run.states["c"] == T.READY
    assert st.ready_tasks(needs, {"a": T.SKIPPED, "b": T.SKIPPED, "c": T.PENDING}) == ["c"]


def test_a_dependent_waits_for_every_upstream():
    needs = {"a": (), "b": (), "c": ("a", "b")}
    run = FakeRun(needs, {"a": T.RUNNING, "b": T.RUNNING, "c": T.PENDING})
    s = run.apply(st.settle_attempt(run.view(), ok("a"), policy(), now=0.0, rand=0.0))
    assert s.newly_ready == () and s.unmet == {"c": 1}
    s = run.apply(st.settle_attempt(run.view(), ok("b"), policy(), now=0.0, rand=0.0))
    assert s.newly_ready == ("c",)


def test_activation_readies_exactly_the_tasks_whose_upstreams_are_done():
    run = FakeRun(NEEDS, {"a": T.SUCCEEDED, "b": T.PENDING, "c": T.PENDING, "d": T.PENDING, "e": T.PENDING})
    assert st.settle_ready(run.view()).newly_ready == ("b", "d", "e")
    run.cancel_requested = True
    assert st.settle_ready(run.view()).newly_ready == ()


def test_nothing_becomes_ready_under_a_cancel():
    run = FakeRun({"a": (), "b": ("a",)}, {"a": T.RUNNING, "b": T.PENDING}, cancel_requested=True)
    s = st.settle_attempt(run.view(), ok("a"), policy(), now=0.0, rand=0.0)
    assert s.task.state == T.SUCCEEDED and s.newly_ready == ()


# -- cancel --------------------------------------------------------------------------------------------


def test_cancel_ends_every_waiting_task_and_the_run_ends_with_its_last_attempt():
    run = FakeRun(NEEDS, {"a": T.SUCCEEDED, "b": T.RUNNING, "c": T.PENDING, "d": T.RETRY_WAIT, "e": T.READY})
    s = run.apply(st.settle_cancel(run.view(), "cancelled by alice"))
    assert s.task is None
    assert s.cascade == tuple(Change(t, T.CANCELLED, "cancelled by alice") for t in ("c", "d", "e"))
    assert s.run_finished is None  # b is still running
    run.cancel_requested, run.cancel_reason = True, "cancelled by alice"
    end = AttemptEnd("b", 1, ok=False, reason="killed by signal SIGTERM", stopped_for_cancel=True)
    s = run.apply(st.settle_attempt(run.view(), end, policy(3), now=0.0, rand=0.0))
    # Said as the waiting ones are (it read "killed by signal SIGTERM" alone, as if something had killed it).
    assert s.task == Change("b", T.CANCELLED, "cancelled by alice: stopped (killed by signal SIGTERM)")
    assert s.run_finished == RunState.CANCELLED


def test_a_failure_under_a_cancel_is_a_cancel_not_a_retry():
    run = FakeRun({"a": (), "b": ("a",)}, {"a": T.RUNNING, "b": T.PENDING}, cancel_requested=True)
    s = st.settle_attempt(run.view(), fail("a", 1), policy(3), now=0.0, rand=0.0)
    assert s.task.state == T.CANCELLED
    assert s.cascade == (Change("b", T.CANCELLED, "upstream a cancelled"),)


def test_cancelling_a_run_with_nothing_running_ends_it_at_once():
    run = FakeRun({"a": (), "b": ("a",)}, {"a": T.SUCCEEDED, "b": T.READY})
    s = st.settle_cancel(run.view(), "cancelled")
    assert s.run_finished == RunState.CANCELLED


# -- the run's end ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("other,cancel,expected,reason", [
    (T.SUCCEEDED, False, RunState.SUCCEEDED, None),
    (T.SKIPPED, False, RunState.SUCCEEDED, None),
    (T.FAILED, False, RunState.FAILED, "failed: x"),
    (T.UPSTREAM_FAILED, False, RunState.FAILED, None),
    (T.CANCELLED, False, RunState.FAILED, "stopped: x"),  # stopped without a cancel of the run (a shutdown)
    (T.SUCCEEDED, True, RunState.CANCELLED, None),
])
def test_the_last_settlement_ends_the_run_in_its_final_state(other, cancel, expected, reason):
    run = FakeRun({"x": (), "t": ()}, {"x": other, "t": T.RUNNING}, cancel_requested=cancel)
    s = st.settle_attempt(run.view(), ok("t"), policy(), now=0.0, rand=0.0)
    assert (s.run_finished, s.run_reason) == (expected, reason)
    assert expected.finished


def test_a_run_whose_tasks_all_finished_before_a_restart_ends_on_activation():
    run = FakeRun({"a": ()}, {"a": T.SUCCEEDED})
    assert st.settle_ready(run.view()).run_finished is None  # activation itself never ends a run
    assert st.settle_run_end(run.view()).run_finished == RunState.SUCCEEDED
    assert st.settle_run_end(FakeRun({"a": ()}, {"a": T.READY}).view()).run_finished is None


def test_a_whole_run_driven_on_a_fake_clock_retries_then_succeeds():
    """Every decision from submission to the end, with the clock and rand injected."""
    clock = [100.0]
    run = FakeRun({"fetch": (), "train": ("fetch",), "report": ("train",)},
                  {"fetch": T.PENDING, "train": T.PENDING, "report": T.PENDING})
    assert run.apply(st.settle_ready(run.view())).newly_ready == ("fetch",)
    run.states["fetch"] = T.RUNNING
    s = run.apply(st.settle_attempt(run.view(), fail("fetch", 1), policy(2, delay=5.0, jitter=0.0),
                                    now=clock[0], rand=0.9))
    assert s.task.retry_at == 105.0
    assert run.apply(st.settle_retry_due(run.view(), "train")).task is None  # not waiting: nothing to do
    clock[0] = s.task.retry_at
    assert run.apply(st.settle_retry_due(run.view(), "fetch")).task == Change("fetch", T.READY)
    for task, number in (("fetch", 2), ("train", 1), ("report", 1)):
        run.states[task] = T.RUNNING
        s = run.apply(st.settle_attempt(run.view(), ok(task, number), policy(2), now=clock[0], rand=0.0))
    assert run.ended == RunState.SUCCEEDED
    assert all(v == 0 for v in run.unmet.values())


# -- transition tables ---------------------------------------------------------------------------------


def test_settlement_refuses_a_transition_the_table_forbids():
    run = FakeRun({"a": ()}, {"a": T.RUNNING})
    with pytest.raises(AssertionError, match="running -> skipped"):
        st.settle_cached(run.view(), "a")
    with pytest.raises(AssertionError, match="succeeded -> failed"):
        st.settle_failure(FakeRun({"a": ()}, {"a": T.SUCCEEDED}).view(), "a", "late")


@pytest.mark.parametrize("enum,table", [
    (RunState, RUN_TRANSITIONS), (T, TASK_TRANSITIONS), (AttemptState, ATTEMPT_TRANSITIONS),
    (InputState, INPUT_TRANSITIONS),
])
def test_every_state_has_a_row_in_its_transition_table(enum, table):
    assert set(table) == set(enum)
    for old, targets in table.items():
        assert all(enum.can_transition(old, new) == (new in targets) for new in enum)


def test_finished_states_only_leave_for_a_resume_or_a_retry():
    assert {s for s in RunState if s.finished} == {RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED}
    for s in RunState:
        assert RunState.can_transition(s, RunState.QUEUED) == s.finished
    for s in T:
        if s.finished:
            assert TASK_TRANSITIONS[s] == {T.PENDING}
    assert all(not ATTEMPT_TRANSITIONS[s] for s in AttemptState if s.finished)
    assert {s for s in InputState if not s.finished} == {InputState.CLAIMING, InputState.CLAIMED, InputState.WAITING,
                                                         InputState.STARTED}
    # waiting for its paused pipeline: started at the resume, or settled as a claimed input would be
    assert INPUT_TRANSITIONS[InputState.WAITING] == {InputState.STARTED, InputState.DUPLICATE, InputState.QUARANTINED,
                                                     InputState.LOST}
    assert not InputState.can_transition("started", "waiting")
    # a retry brings it back; `edgeorch requeue` sends its file back to the drop folder (a new input)
    assert INPUT_TRANSITIONS[InputState.QUARANTINED] == {InputState.STARTED, InputState.REQUEUED}
    assert not InputState.can_transition("done", "claimed")


def test_a_definition_change_a_run_can_go_on_under_and_those_it_cannot() -> None:
    """``retry --current``: timeouts, retries and commands may change; tasks, needs and params' names and types not."""
    from pathlib import Path

    from edgeorch.engine.scheduler import definition_change_problem
    from edgeorch.pipelines.load import load_pipeline_bytes

    def p(text: str):
        pipeline, errors = load_pipeline_bytes(text.encode(), Path("p.toml"))
        assert not errors, errors
        return pipeline

    base = '[params]\nn = 3\n[tasks.a]\ncommand = ["true"]\n[tasks.b]\nneeds = ["a"]\ncommand = ["true"]\n'
    assert definition_change_problem(p(base), p(base.replace('command = ["true"]\n[tasks.b]',
                                                            'command = ["false"]\ntimeout = "1h"\n[tasks.b]'))) is None
    assert definition_change_problem(p(base), p(base.replace("n = 3", "n = 4"))) is None  # a default
    assert definition_change_problem(p(base), p(base + '[tasks.c]\ncommand = ["true"]\n')) == (
        "its tasks differ from the run's (added c)")
    assert definition_change_problem(p(base), p(base.replace('needs = ["a"]\n', ""))) == (
        "the needs of b differ from the run's")
    assert definition_change_problem(p(base), p(base.replace("n = 3", "m = 3"))) == (
        "its params differ from the run's (added m; removed n)")
    assert definition_change_problem(p(base), p(base.replace("n = 3", 'n = { type = "bool", default = true }'))) == (
        "the type of param n (int -> bool) differs from the run's")
