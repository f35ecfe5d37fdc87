"""The access policy (pure, with injected user/group lookups) and SO_PEERCRED."""

from __future__ import annotations

import os
import socket

import pytest

from edgeorch.control.auth import AccessPolicy, Peer, peer_of

USERS = {"alice": 1001, "bob": 1002, "carol": 1003}
GROUPS = {"ml": 500, "ops": 600}
# Supplementary groups from the "user database".
MEMBERSHIP = {1001: {1001}, 1002: {1002, 500}, 1003: {1003, 600}, 1004: {1004}}


def peer(uid: int, gid: int | None = None) -> Peer:
    return Peer(pid=1, uid=uid, gid=uid if gid is None else gid, user=str(uid))


def policy(readers: tuple[str, ...] = (), operators: tuple[str, ...] = (), daemon_uid: int = 999) -> AccessPolicy:
    return AccessPolicy(
        readers=readers,
        operators=operators,
        daemon_uid=daemon_uid,
        groups_of=lambda p: frozenset(MEMBERSHIP.get(p.uid, set()) | {p.gid}),
        gid_of=GROUPS.get,
        uid_of=USERS.get,
    )


@pytest.mark.parametrize(
    ("who", "level"),
    [
        (peer(0), "act"),  # root
        (peer(999), "act"),  # the daemon's own user
        (peer(1001), "act"),  # operator by name
        (peer(1003), "act"),  # operator by group @ops (supplementary)
        (peer(1002), "read"),  # reader by group @ml
        (peer(1004), None),  # stranger
        (peer(1004, gid=500), "read"),  # effective gid of the connecting process counts
    ],
)
def test_levels(who: Peer, level: str | None) -> None:
    p = policy(readers=("@ml",), operators=("alice", "@ops"))
    assert p.level(who) == level


def test_act_implies_read_and_read_does_not_imply_act() -> None:
    p = policy(readers=("bob",), operators=("alice",))
    assert p.allows(peer(1001), "read") and p.allows(peer(1001), "act")
    assert p.allows(peer(1002), "read") and not p.allows(peer(1002), "act")
    assert not p.allows(peer(1004), "read")


def test_empty_config_admits_only_root_and_the_daemon_user() -> None:
    p = policy()
    assert [p.level(peer(u)) for u in (0, 999, 1001)] == ["act", "act", None]


def test_unknown_names_are_reported_not_fatal() -> None:
    p = policy(readers=("@nosuchgroup", "bob"), operators=("mallory",))
    assert p.unknown == ["@nosuchgroup", "mallory"]
    assert p.level(peer(1002)) == "read"


def test_group_lookups_are_cached_per_uid_and_gid() -> None:
    calls: list[int] = []

    def groups_of(p: Peer) -> frozenset[int]:
        calls.append(p.uid)
        return frozenset({500})

    p = AccessPolicy(readers=("@ml",), daemon_uid=999, groups_of=groups_of, gid_of=GROUPS.get, uid_of=USERS.get)
    for _ in range(3):
        assert p.level(peer(1004)) == "read"
    assert calls == [1004]


def test_a_user_taken_out_of_a_group_loses_its_access_within_the_ttl_without_a_reload() -> None:
    """The groups were cached for the life of the policy: `gpasswd -d alice ml` changed nothing until a reload."""
    from edgeorch.control.auth import GROUPS_TTL_S

    member, now = [True], [100.0]
    p = AccessPolicy(readers=("@ml",), daemon_uid=999, gid_of=GROUPS.get, uid_of=USERS.get,
                     groups_of=lambda _p: frozenset({500}) if member[0] else frozenset(), clock=lambda: now[0])
    assert p.level(peer(1004)) == "read"
    member[0] = False
    now[0] += GROUPS_TTL_S - 1
    assert p.level(peer(1004)) == "read"  # within the ttl: the membership read last
    now[0] += 1
    assert p.level(peer(1004)) is None


def test_peer_of_reports_this_process() -> None:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with a, b:
        me = peer_of(a)
    assert (me.pid, me.uid, me.gid) == (os.getpid(), os.getuid(), os.getgid())
    assert me.actor() == {"uid": os.getuid(), "user": me.user}
