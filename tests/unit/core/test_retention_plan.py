"""The retention planner (pure): candidates and holds in, what goes and what stays (and why) out."""

from __future__ import annotations

import pytest

from edgeorch.errors import shown
from edgeorch.retention import Candidate, Hold, decide
from edgeorch.retention.gc import human_duration, parse_older_than
from edgeorch.errors import UsageError


def _c(*ids: int) -> list[Candidate]:
    return [Candidate(i, "p", "succeeded", float(i), float(i), f"/s/runs/{i}") for i in ids]


def _ids(cands) -> list[int]:
    return [c.run_id for c in cands]


def test_without_holds_every_candidate_goes_in_order():
    plan = decide(_c(3, 1, 2), [])
    assert _ids(plan.remove) == [3, 1, 2] and plan.held == ()


def test_an_unconditional_hold_keeps_its_run_and_says_why():
    plan = decide(_c(1, 2), [Hold(2, "active (running)", rule="active")])
    assert _ids(plan.remove) == [1]
    ((cand, holds),) = plan.held
    assert cand.run_id == 2 and [h.reason for h in holds] == ["active (running)"]


def test_a_hold_for_a_run_that_is_no_candidate_is_ignored():
    assert _ids(decide(_c(1), [Hold(9, "x")]).remove) == [1]


def test_a_cache_source_stays_while_its_user_is_no_candidate():
    plan = decide(_c(1), [Hold(1, "outputs reused by run 5", while_kept=5)])
    assert plan.remove == () and _ids(c for c, _ in plan.held) == [1]


def test_a_cache_source_goes_with_its_user_when_both_go():
    assert _ids(decide(_c(1, 5), [Hold(1, "reused by 5", while_kept=5)]).remove) == [1, 5]


def test_a_kept_user_keeps_its_source_transitively():
    """5 is kept (keep_last); 5 reuses 3, 3 reuses 1: the whole chain stays; 2 goes."""
    holds = [Hold(5, "latest"), Hold(3, "reused by 5", while_kept=5), Hold(1, "reused by 3", while_kept=3)]
    plan = decide(_c(1, 2, 3, 5), holds)
    assert _ids(plan.remove) == [2]
    reasons = {c.run_id: [h.reason for h in hs] for c, hs in plan.held}
    assert reasons == {1: ["reused by 3"], 3: ["reused by 5"], 5: ["latest"]}


def test_a_conditional_hold_whose_keeper_goes_is_not_listed():
    holds = [Hold(1, "active"), Hold(1, "reused by 4", while_kept=4)]
    plan = decide(_c(1, 4), holds)
    assert _ids(plan.remove) == [4]
    ((_, hs),) = plan.held
    assert [h.reason for h in hs] == ["active"]


def test_a_cycle_of_conditional_holds_with_nothing_kept_goes():
    holds = [Hold(1, "reused by 2", while_kept=2), Hold(2, "reused by 1", while_kept=1)]
    assert _ids(decide(_c(1, 2), holds).remove) == [1, 2]


def test_a_long_chain_resolves_in_linear_time():
    n = 20_000
    holds = [Hold(i, f"reused by {i + 1}", while_kept=i + 1) for i in range(1, n)]
    plan = decide(_c(*range(1, n)), holds)  # run n is no candidate: it keeps the whole chain
    assert plan.remove == () and len(plan.held) == n - 1


@pytest.mark.parametrize("value,seconds", [("90d", 90 * 86400.0), ("1s", 1.0), (3600, 3600.0), ("12h", 43200.0)])
def test_older_than_takes_the_retention_bound_rule(value, seconds):
    assert parse_older_than(value, field="--older-than") == seconds


@pytest.mark.parametrize("value", ["0", 0, "soon", "-1d", "forever", True, "0.5s"])
def test_a_bad_older_than_names_the_field_the_value_and_what_was_expected(value):
    with pytest.raises(UsageError) as err:
        parse_older_than(value, field="--older-than")
    text = err.value.render()
    assert "--older-than" in text and shown(value) in text and "a duration of at least 1s" in text
    assert err.value.exit_code == 2


@pytest.mark.parametrize("seconds,text", [(90 * 86400.0, "90d"), (36 * 3600.0, "1.5d"), (7200.0, "2h"), (5.0, "5s")])
def test_durations_are_reported_in_the_largest_unit(seconds, text):
    assert human_duration(seconds) == text


def test_a_conditional_hold_whose_keeper_an_earlier_page_removes_holds_nothing():
    assert _ids(decide(_c(1), [Hold(1, "reused by 5", while_kept=5)], gone={5}).remove) == [1]
    assert decide(_c(1), [Hold(1, "reused by 5", while_kept=5)], gone={6}).remove == ()


def test_a_held_runs_reasons_are_shown_three_and_counted_beyond():
    """A cache source reused by 520 runs had a 56 KB WHY cell; --json keeps every hold."""
    from edgeorch.cli.commands.gc import _why

    holds = [{"reason": f"outputs reused by run {i}"} for i in range(520)]
    assert _why(holds) == ("outputs reused by run 0; outputs reused by run 1; outputs reused by run 2; "
                           "and 517 more (--json lists them)")
    assert _why(holds[:2]) == "outputs reused by run 0; outputs reused by run 1"
