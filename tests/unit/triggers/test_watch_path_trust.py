"""Whether anyone but root and the daemon's user can make a watched folder's path lead elsewhere (trust.py)."""

from __future__ import annotations

import os

import pytest

from edgeorch.triggers.drop.trust import untrusted_path
from edgeorch.trust import group_members

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (to give a folder to another user)")


def test_a_path_of_folders_only_the_daemons_user_can_change_is_trusted(tmp_path):
    drop = tmp_path / "srv" / "drop"
    drop.mkdir(parents=True)
    os.chmod(drop, 0o777)  # the watched folder itself is everyone's to drop into: only its replacement matters
    assert untrusted_path(drop) is None
    assert untrusted_path(tmp_path / "srv" / "not-yet" / "drop") is None  # made later, by a trusted user only


def test_a_folder_writable_by_others_above_it_is_not(tmp_path):
    srv = tmp_path / "srv"
    (srv / "drop").mkdir(parents=True)
    os.chmod(srv, 0o777)
    why = untrusted_path(srv / "drop")
    assert why is not None and why.startswith(f"{srv / 'drop'} can be replaced by every user of {srv}")
    assert "mode 0777" in why and "a link put in its place" in why
    os.chmod(srv, 0o775)
    if os.geteuid() == 0:  # a group with another user in it (nogroup: nobody's)
        os.chown(srv, 0, 65534)
    elif (group_members(os.getegid()) or set()) <= {0, os.geteuid()}:
        pytest.skip("needs root, or a group of this user's with other users in it")
    why = untrusted_path(srv / "drop") or ""
    assert f"can be replaced by the group of {srv}" in why and "with users besides root and the daemon's" in why
    os.chmod(srv, 0o1777)  # sticky: only the entry's owner (the daemon's user here) may replace it
    assert untrusted_path(srv / "drop") is None
    assert "can be made by every user" in (untrusted_path(srv / "missing") or "")  # anyone could make it a link


@root_only
def test_a_folder_owned_by_another_user_above_it_is_not_and_neither_is_their_entry_in_a_sticky_folder(tmp_path):
    home = tmp_path / "home"
    (home / "drop").mkdir(parents=True)
    os.chown(home, 65534, 65534)
    why = untrusted_path(home / "drop")
    assert why is not None and f"can be replaced by the owner of {home} (owner " in why and "65534" in why
    assert untrusted_path(home / "drop", euid=65534) is None  # that user's own daemon: its own folder
    shared = tmp_path / "shared"
    (shared / "theirs").mkdir(parents=True)
    os.chmod(shared, 0o1777)
    os.chown(shared / "theirs", 65534, 65534)  # theirs to rename, sticky or not
    assert "can be replaced by every user" in (untrusted_path(shared / "theirs" / "drop") or "")


def test_a_link_is_judged_where_it_lies_and_where_it_leads(tmp_path):
    real = tmp_path / "data" / "drop"
    real.mkdir(parents=True)
    (tmp_path / "srv").mkdir()
    (tmp_path / "srv" / "drop").symlink_to(real)  # an administrator's link, in a trusted folder
    assert untrusted_path(tmp_path / "srv" / "drop") is None
    os.chmod(tmp_path / "data", 0o777)  # where it leads is not
    assert f"{real} can be replaced by every user" in (untrusted_path(tmp_path / "srv" / "drop") or "")
    os.chmod(tmp_path / "data", 0o755)
    os.chmod(tmp_path / "srv", 0o777)  # nor where it lies
    assert f"{tmp_path / 'srv' / 'drop'} can be replaced" in (untrusted_path(tmp_path / "srv" / "drop") or "")


def test_a_folder_writable_only_by_a_group_of_trusted_users_is_trusted(tmp_path):
    """A user's private group under umask 002 (many distributions' default), or root's group in a tarball unpacked
    by root: sshd's rule refused the README's own example drop folder (`examples/` mode 0775, group root), so the
    first session's drops were never watched. A group whose members are all root or the daemon's user lets no
    one else in; one with any other member, or none at all (setgid programs use those), does."""
    srv = tmp_path / "srv"
    (srv / "drop").mkdir(parents=True)
    os.chmod(srv, 0o775)
    gid = os.stat(srv).st_gid
    members = group_members(gid)
    if not members or not members <= {0, os.geteuid()}:
        pytest.skip(f"this folder's group (gid {gid}) has other users in it: {members}")
    assert untrusted_path(srv / "drop") is None


@root_only
def test_a_group_with_no_member_or_an_unknown_one_is_not_trusted(tmp_path):
    import grp

    srv = tmp_path / "srv"
    (srv / "drop").mkdir(parents=True)
    os.chmod(srv, 0o775)
    unnamed = next(g for g in range(40000, 50000) if _no_group(g))
    os.chown(srv, 0, unnamed)  # a gid with no name: who is in it cannot be told
    assert "can be replaced by the group of" in (untrusted_path(srv / "drop") or "")
    empty = [g.gr_gid for g in grp.getgrall() if group_members(g.gr_gid) == set()]
    if empty:  # a group nobody is in (setgid programs' groups): not trusted either
        os.chown(srv, 0, empty[0])
        assert "can be replaced by the group of" in (untrusted_path(srv / "drop") or "")


def _no_group(gid: int) -> bool:
    import grp

    try:
        grp.getgrgid(gid)
    except KeyError:
        return True
    return False
