"""Whether anyone but root and the daemon's user can make a watched folder's path lead elsewhere (trust.py)."""

from __future__ import annotations

import os

import pytest

from edgeorch.triggers.drop.trust import untrusted_path

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
    assert f"can be replaced by the group of {srv}" in (untrusted_path(srv / "drop") or "")
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
