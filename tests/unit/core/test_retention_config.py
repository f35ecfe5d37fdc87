"""``[retention]`` in config.toml: the bound and keep_last, defaults that delete nothing, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeorch.config import RetentionConfig, parse_config
from edgeorch.errors import ConfigError


def _parse(table: dict) -> RetentionConfig:
    return parse_config({"retention": table}, base=Path("/"), file="config.toml", source=None).retention


def test_by_default_nothing_is_ever_removed():
    assert parse_config({}, base=Path("/"), file="config.toml", source=None).retention == RetentionConfig(None, 0)


@pytest.mark.parametrize("value,seconds", [("90d", 90 * 86400.0), ("12h", 43200.0), (3600, 3600.0), ("forever", None)])
def test_runs_takes_a_duration_or_forever(value, seconds):
    assert _parse({"runs": value}).runs == seconds


def test_keep_last_is_a_count_per_pipeline():
    assert _parse({"runs": "30d", "keep_last": 10}) == RetentionConfig(30 * 86400.0, 10)


@pytest.mark.parametrize("table,field,expected", [
    ({"runs": "0"}, "retention.runs", '"forever"'),
    ({"runs": 0}, "retention.runs", '"forever"'),
    ({"runs": "soon"}, "retention.runs", "a duration of at least 1s"),
    ({"runs": True}, "retention.runs", "a duration of at least 1s"),
    ({"keep_last": -1}, "retention.keep_last", "an integer from 0"),
    ({"keep_last": "10"}, "retention.keep_last", "an integer"),
    ({"run": "90d"}, "retention.run", "one of keep_last, runs"),
])
def test_a_bad_value_is_a_config_error_naming_file_field_value_and_expected(table, field, expected):
    with pytest.raises(ConfigError) as err:
        _parse(table)
    text = err.value.render()
    assert "config.toml" in text and field in text and expected in text and err.value.exit_code == 2
    value = next(iter(table.values()))
    assert repr(value) in text or field.endswith(".run")
