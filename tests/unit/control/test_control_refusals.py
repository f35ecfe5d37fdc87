"""The rate rule of refusals (edgeorch/control/refusals.py) on an injected clock."""

from __future__ import annotations

import pytest

from edgeorch.control.auth import AccessPolicy, Peer
from edgeorch.control.refusals import RefusalLimiter, Suppressed
from edgeorch.control.server import owner_slots
from testclock import SetClock


def admit_many(limiter: RefusalLimiter, uid: int, n: int) -> list[bool]:
    out = []
    for _ in range(n):
        ended, recorded = limiter.admit(uid, f"u{uid}")
        assert ended == []
        out.append(recorded)
    return out


def test_the_first_refusals_of_a_window_are_recorded_the_rest_counted() -> None:
    clock = SetClock(100.0)
    limiter = RefusalLimiter(limit=3, window=60, clock=clock)
    assert admit_many(limiter, 7, 5) == [True, True, True, False, False]
    assert limiter.next_end() == 160
    assert limiter.due() == []  # not over yet
    clock.now = 160
    assert limiter.due() == [Suppressed(uid=7, user="u7", count=2, since=100, until=160)]
    assert limiter.due() == [] and limiter.next_end() is None  # each count is given once


def test_the_next_refusal_after_the_window_gets_the_count_first_and_is_recorded() -> None:
    clock = SetClock(100.0)
    limiter = RefusalLimiter(limit=1, window=10, clock=clock)
    admit_many(limiter, 7, 3)
    clock.now = 135
    ended, recorded = limiter.admit(7, "u7")
    assert ended == [Suppressed(uid=7, user="u7", count=2, since=100, until=110)] and recorded
    assert limiter.next_end() is None  # the new window has nothing suppressed yet


def test_each_uid_has_its_own_window() -> None:
    clock = SetClock(100.0)
    limiter = RefusalLimiter(limit=2, window=60, clock=clock)
    assert admit_many(limiter, 1, 3) == [True, True, False]
    clock.now = 130
    assert admit_many(limiter, 2, 3) == [True, True, False]
    clock.now = 165  # uid 1's window is over, uid 2's is not
    ended, recorded = limiter.admit(2, "u2")
    assert ended == [Suppressed(uid=1, user="u1", count=1, since=100, until=160)] and not recorded
    assert [s.count for s in limiter.drain()] == [2]
    assert limiter.drain() == []


def test_a_window_without_suppressed_refusals_gives_no_count() -> None:
    clock = SetClock(100.0)
    limiter = RefusalLimiter(limit=5, window=60, clock=clock)
    admit_many(limiter, 1, 5)
    clock.now = 1000
    assert limiter.due() == [] and limiter.drain() == []


def test_a_clock_set_back_ends_the_window() -> None:
    clock = SetClock(1000)
    limiter = RefusalLimiter(limit=1, window=60, clock=clock)
    admit_many(limiter, 1, 2)
    clock.now = 500  # a wall clock set back: the uid is not silenced until 1060
    ended, recorded = limiter.admit(1, "u1")
    assert ended == [Suppressed(uid=1, user="u1", count=1, since=1000, until=1000)] and recorded


def test_drain_gives_counts_of_windows_not_ended() -> None:
    clock = SetClock(100.0)
    limiter = RefusalLimiter(limit=1, window=60, clock=clock)
    admit_many(limiter, 9, 4)
    clock.now = 130
    assert limiter.drain() == [Suppressed(uid=9, user="u9", count=3, since=100, until=130)]


def test_the_summary_says_how_many_and_whose() -> None:
    assert Suppressed(uid=5, user="eve", count=1, since=0, until=1).message() == \
        "1 more refused request from eve (uid 5) suppressed"
    assert Suppressed(uid=5, user="eve", count=9300, since=0, until=1).message() == \
        "9300 more refused requests from eve (uid 5) suppressed"


@pytest.mark.parametrize(("limit", "window"), [(0, 60), (1, 0)])
def test_a_limit_that_records_nothing_is_refused(limit: int, window: float) -> None:
    with pytest.raises(ValueError):
        RefusalLimiter(limit=limit, window=window, clock=SetClock(100.0))


@pytest.mark.parametrize(("max_clients", "kept"), [(1, 0), (2, 1), (4, 2), (16, 8), (64, 8), (1024, 8)])
def test_slots_kept_for_the_owners(max_clients: int, kept: int) -> None:
    assert owner_slots(max_clients) == kept


def test_the_owners_are_root_and_the_daemons_uid() -> None:
    policy = AccessPolicy(readers=[], operators=[], daemon_uid=1234, uid_of=lambda n: 55, gid_of=lambda n: None)
    assert policy.is_owner(Peer(pid=1, uid=0, gid=0, user="root"))
    assert policy.is_owner(Peer(pid=1, uid=1234, gid=1, user="edgeorch"))
    assert not policy.is_owner(Peer(pid=1, uid=55, gid=1, user="alice"))
