"""``[control]`` limits that would make the socket unusable are config errors, not per-connection failures."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeorch.config import parse_config
from edgeorch.errors import ConfigError


@pytest.mark.parametrize("key, value", [("max_line_bytes", 0), ("max_line_bytes", "100"), ("idle_timeout", 0),
                                        ("idle_timeout", "0s"), ("idle_timeout", "10ms")])
def test_a_control_limit_no_request_could_live_with_is_a_config_error(key, value):
    with pytest.raises(ConfigError) as err:
        parse_config({"control": {key: value}}, base=Path("/"), file="config.toml", source=None)
    text = err.value.render()
    assert "config.toml" in text and f"control.{key}" in text and repr(value) in text and "at least" in text


def test_control_limits_at_their_minimum_are_accepted():
    cfg = parse_config({"control": {"max_line_bytes": "1K", "idle_timeout": "1s"}}, base=Path("/"),
                       file="config.toml", source=None)
    assert cfg.control.max_line_bytes == 1024 and cfg.control.idle_timeout == 1.0
