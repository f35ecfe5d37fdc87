"""Sizes as people write them (``512M``, ``1.5GiB``), held to 1 EiB and to ASCII digits, as durations are."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeorch.pipelines.load import load_pipeline_bytes
from edgeorch.units import MAX_SIZE, SIZE_TOO_LARGE, parse_size


@pytest.mark.parametrize("value, size", [(0, 0), (512, 512), ("512M", 512 * 1024**2), ("1.5GiB", 3 * 1024**3 // 2),
                                         (" 4 G ", 4 * 1024**3), (2.5, 2), ("1024P", MAX_SIZE), (MAX_SIZE, MAX_SIZE)])
def test_a_size_is_bytes(value: object, size: int) -> None:
    assert parse_size(value) == size


@pytest.mark.parametrize("value", ["1" + "0" * 400 + "G", "1025P", 10**400, float("inf"), 1e300, MAX_SIZE + 1])
def test_a_size_beyond_an_exbibyte_is_refused_as_too_large_never_an_overflow(value: object) -> None:
    """``"1<400 zeros>G"`` was infinity: OverflowError in every reload, `validate` and daemon start."""
    with pytest.raises(ValueError, match=SIZE_TOO_LARGE):
        parse_size(value)


@pytest.mark.parametrize("value", ["١٠G", "１G", "1\vG", "-1G", "1X", "", True, float("nan"), -1])
def test_what_is_not_a_size_is_refused(value: object) -> None:
    with pytest.raises(ValueError):
        parse_size(value)


def test_a_pipeline_with_a_huge_size_is_that_files_error_naming_the_field(tmp_path: Path) -> None:
    raw = ('[tasks.a]\ncommand = ["true"]\nmemory = "1' + "0" * 400 + 'G"\n').encode()
    pipe, errors = load_pipeline_bytes(raw, tmp_path / "big.toml")
    assert pipe is None and len(errors) == 1
    text = errors[0].render()
    assert "tasks.a.memory: is larger than 1 EiB" in text and "(404 characters)" in text, text  # the value cut short


def test_a_bug_met_reading_one_pipeline_file_is_that_files_error(tmp_path: Path, monkeypatch) -> None:
    """An unexpected exception in the parser stopped the reload, `validate` and the daemon's start (exit 70) for
    as long as the file was there: it is that file's error now, and the others are served."""
    import importlib

    def broken(*args: object, **kwargs: object) -> None:
        raise OverflowError("cannot convert float infinity to integer")

    # The parser module itself (load_pipeline_bytes imports its function at call time).
    monkeypatch.setattr(importlib.import_module("edgeorch.pipelines.parse"), "parse_pipeline", broken)
    pipe, errors = load_pipeline_bytes(b'[tasks.a]\ncommand = ["true"]\n', tmp_path / "p.toml")
    assert pipe is None and "internal error reading this file (OverflowError" in errors[0].render()


BIG = "1" + "0" * 400
HUGE = "1" + "0" * 5000


@pytest.mark.parametrize("text", [
    f'[tasks.a]\ncommand = ["true"]\ntimeout = {BIG}\n',
    f'[tasks.a]\ncommand = ["true"]\nretry_backoff = {BIG}\n',
    f'[tasks.a]\ncommand = ["true"]\nretries = {HUGE}\n',
    f'every = {BIG}\n[tasks.a]\ncommand = ["true"]\n',
    f'[params]\nx = {{ type = "float", default = {BIG} }}\n[tasks.a]\ncommand = ["true"]\n',
], ids=["duration", "number", "digits-limit", "schedule", "float-param"])
def test_a_number_too_large_for_any_field_is_that_fields_error(tmp_path: Path, text: str) -> None:
    """An integer of 400 digits was an OverflowError (`float()`), one of 5,000 a ValueError of Python's digit limit:
    `validate` exited 70 and a reload of the config ended the daemon."""
    pipe, errors = load_pipeline_bytes(text.encode(), tmp_path / "p.toml")
    assert pipe is None and errors and "internal error" not in errors[0].render(), errors[0].render()


@pytest.mark.parametrize("table", [f"[engine]\nkill_grace = {BIG}\n", f"[inbox]\nkeep = {BIG}\n",
                                   f"[metrics]\ninterval = {BIG}\n", f"[retention]\nkeep_last = {HUGE}\n"])
def test_a_number_too_large_in_the_config_is_a_config_error(tmp_path: Path, table: str) -> None:
    from edgeorch.config import load_config
    from edgeorch.errors import ConfigError

    (tmp_path / "config.toml").write_text(table)
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path / "config.toml")
    assert "a bug" not in err.value.render()


def test_a_bug_met_reading_the_config_is_a_config_error_a_reload_refuses(tmp_path: Path, monkeypatch) -> None:
    from edgeorch import config
    from edgeorch.errors import ConfigError

    (tmp_path / "config.toml").write_text("[engine]\nparallelism = 2\n")
    monkeypatch.setattr(config, "parse_config", lambda *a, **k: (_ for _ in ()).throw(OverflowError("boom")))
    with pytest.raises(ConfigError, match="cannot read this config .OverflowError: boom."):
        config.load_config(tmp_path / "config.toml")
