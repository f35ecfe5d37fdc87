"""``[inbox] dir`` left out: the inbox is in the state folder, wherever ``[state] dir`` puts it.

It was ``./var/inbox`` beside the config file: a config that set only ``[state] dir`` (an admin's, in
/etc/edgeorch) kept its inbox in /etc/edgeorch/var/inbox, read-only under the system unit, while
docs/triggers.md and docs/state.md said ``<state dir>/inbox``.
"""

from __future__ import annotations

from pathlib import Path

from edgeorch.config import parse_config


def test_the_inbox_follows_the_state_folder_unless_set() -> None:
    cfg = parse_config({"state": {"dir": "/srv/eo"}}, base=Path("/etc/edgeorch"), file="config.toml", source=None)
    assert cfg.inbox_dir == Path("/srv/eo/inbox")
    cfg = parse_config({"state": {"dir": "../w2/var"}, "inbox": {"keep": "1d"}}, base=Path("/cfg"),
                       file="config.toml", source=None)
    assert cfg.inbox_dir == Path("/cfg/../w2/var/inbox")
    cfg = parse_config({}, base=Path("/repo"), file="config.toml", source=None)
    assert cfg.inbox_dir == Path("/repo/var/inbox")  # the embedded defaults' folder, as before
    cfg = parse_config({"state": {"dir": "/srv/eo"}, "inbox": {"dir": "/data/inbox"}}, base=Path("/etc/edgeorch"),
                       file="config.toml", source=None)
    assert cfg.inbox_dir == Path("/data/inbox")
