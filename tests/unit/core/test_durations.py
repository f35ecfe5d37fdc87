"""Durations as people write them: one or more ``<number><unit>`` parts, summed (systemd's time spans)."""

from __future__ import annotations

import pytest

from edgeorch.units import parse_duration


@pytest.mark.parametrize("text, seconds", [
    ("30", 30.0), (" 1.5 ", 1.5), ("500ms", 0.5), ("30s", 30.0), ("15m", 900.0), ("2h", 7200.0),
    ("1d", 86400.0), ("1w", 604800.0), ("1h30m", 5400.0), ("1h 30m", 5400.0), ("2 min", 120.0),
    ("10 minutes", 600.0), ("90 sec", 90.0), ("1.5 hours", 5400.0), ("3 hrs", 10800.0),
    ("1d 2h 3m 4s", 93784.0), ("250 milliseconds", 0.25), ("2 weeks", 1209600.0),
])
def test_a_duration_in_parts_and_words_is_their_sum(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", [
    "", "s", "-1s", "1.s", "ten", "1 h m",
    "1h30",  # 30 what: refused rather than guessed
    "1M", "2H",  # upper case: M is neither a minute nor a month
    "2 months", "1 year", "1msx", "30 s s", "1h,30m",
    "٣٠s", "𝟓s", "5m\x1c", "\ufeff5m", "5m\n",  # ASCII digits, spaces and tabs only (the schema's reading too)
])
def test_a_duration_that_is_not_one_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


def test_the_sum_of_parts_is_held_to_a_hundred_years_too() -> None:
    with pytest.raises(ValueError, match="longer than 100 years"):
        parse_duration("36500d 1d")


def test_a_long_hostile_string_is_refused_in_linear_time() -> None:
    """The pattern is also the published schema's (JSON Schema validators run it): no nested backtracking."""
    import time

    started = time.process_time()
    for text in ("1s" * 20000 + "x", "1 " * 20000 + "x", "1" * 50000 + "x"):
        with pytest.raises(ValueError):
            parse_duration(text)
    assert time.process_time() - started < 1.0


def test_a_pipeline_task_takes_a_compound_timeout(tmp_path) -> None:
    from edgeorch.pipelines.load import load_pipeline_file

    path = tmp_path / "p.toml"
    path.write_text('[tasks.a]\ncommand = ["true"]\ntimeout = "1h 30m"\nretry_delay = "2 sec"\n')
    pipeline, errors = load_pipeline_file(path)
    assert not errors and pipeline is not None
    task = pipeline.tasks["a"]
    assert (task.timeout, task.retry_delay) == (5400.0, 2.0)
