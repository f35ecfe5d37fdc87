"""``[retention]`` in config.toml: the bound and keep_last, defaults that delete nothing, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeorch.errors import shown
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
    ({"run": "90d"}, "retention.run", "one of audit, inputs, keep_last, runs"),
])
def test_a_bad_value_is_a_config_error_naming_file_field_value_and_expected(table, field, expected):
    with pytest.raises(ConfigError) as err:
        _parse(table)
    text = err.value.render()
    assert "config.toml" in text and field in text and expected in text and err.value.exit_code == 2
    value = next(iter(table.values()))
    assert shown(value) in text or field.endswith(".run")


@pytest.mark.parametrize("value", [101 * 365 * 86400, "99999999999999999999", "99999999999999999999d", 1e300])
def test_a_duration_over_a_hundred_years_is_refused_not_an_overflow_later(value):
    """A 20-digit duration was taken, then overflowed where it became a date (`gc --older-than`, an internal
    error); a duration is at most 100 years."""
    from edgeorch.units import parse_duration

    with pytest.raises(ValueError, match="longer than 100 years"):
        parse_duration(value)
    assert parse_duration("36500d") == 36500 * 86400.0


@pytest.mark.parametrize("value", [float("inf"), float("nan"), -1.0])
def test_a_size_that_is_no_finite_count_of_bytes_is_refused(value):
    """TOML's `inf` as `log_max_bytes` was an OverflowError (an internal error of `validate`)."""
    from edgeorch.units import parse_size

    with pytest.raises(ValueError):
        parse_size(value)
