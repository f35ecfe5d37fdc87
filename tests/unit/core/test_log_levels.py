"""Log levels (issue 19, point 8): ``[daemon] log_level`` in the config, and ``-v``/``-q`` as steps."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from edgeorch.config import EMBEDDED_DEFAULTS, load_config
from edgeorch.errors import ConfigError
from edgeorch.loglevel import LOG_LEVELS, shift_log_level

REPO = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize(("level", "steps", "expected"), [
    ("warning", 1, "info"), ("warning", 2, "debug"), ("warning", 5, "debug"),
    ("info", -1, "warning"), ("error", -1, "error"), ("info", 0, "info"),
])
def test_verbose_and_quiet_move_one_level_each_and_stop_at_the_ends(level, steps, expected):
    assert shift_log_level(level, steps) == expected


def test_the_daemon_logs_info_by_default_and_the_shipped_config_says_so(tmp_path):
    assert load_config(None).daemon.log_level == "info"  # embedded defaults (no config file in cwd)
    shipped = tomllib.loads((REPO / "config.toml").read_text())["daemon"]
    assert shipped == tomllib.loads(EMBEDDED_DEFAULTS)["daemon"] == {"log_level": "info", "log_format": "auto"}


@pytest.mark.parametrize("level", LOG_LEVELS)
def test_every_level_name_is_accepted_in_the_config(tmp_path, level):
    path = tmp_path / "config.toml"
    path.write_text(f'[daemon]\nlog_level = "{level}"\n')
    assert load_config(path).daemon.log_level == level


@pytest.mark.parametrize(("raw", "expected_bit"), [('"verbose"', "'verbose'"), ("3", "3"), ('"INFO"', "'INFO'")])
def test_a_bad_log_level_names_the_file_field_value_and_the_choices(tmp_path, raw, expected_bit):
    path = tmp_path / "config.toml"
    path.write_text(f"[daemon]\nlog_level = {raw}\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    text = err.value.render()
    assert str(path) in text and "daemon.log_level" in text and expected_bit in text, text
    assert "debug, info, warning, error" in text and err.value.exit_code == 2


def test_an_unknown_key_in_the_daemon_table_is_refused(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('[daemon]\nloglevel = "debug"\n')
    with pytest.raises(ConfigError, match="daemon.loglevel"):
        load_config(path)
