"""`why` says a scheduled run's fire in local time, as the tables say every time, with the recorded UTC form;
a table's time says its zone."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from edgeorch.cli.commands.monitors import _fire_shown


@pytest.fixture
def in_zone(monkeypatch: pytest.MonkeyPatch) -> Iterator:
    """``in_zone(tz)``: this process's local time is ``tz`` (``TZ``) until the test ends."""

    def switch(tz: str) -> None:
        monkeypatch.setenv("TZ", tz)
        time.tzset()

    yield switch
    monkeypatch.undo()
    time.tzset()


def test_a_fire_is_said_in_local_time_beside_its_utc_form(in_zone) -> None:
    in_zone("America/Los_Angeles")
    assert _fire_shown("2026-03-05T11:30:00+00:00") == "2026-03-05 03:30:00 PST (2026-03-05T11:30:00+00:00)"
    assert _fire_shown("2026-03-05T11:30:00+00:00", utc=False) == "2026-03-05 03:30:00 PST"
    assert _fire_shown("not a time") == "not a time"


@pytest.mark.parametrize("tz, shown", [("UTC", "2026-12-06 14:29:11 UTC"), ("America/New_York", "2026-12-06 09:29:11 EST"),
                                       ("UTC+5", "2026-12-06 09:29:11 -0500"), ("../../etc/passwd", "2026-12-06 14:29:11 +0000")])
def test_a_table_time_says_its_zone_and_never_a_false_one(in_zone, tz: str, shown: str) -> None:
    """TZ=UTC+5 (POSIX: a zone named UTC five hours behind) printed "10:28:31 UTC", a false label; a TZ with no
    name printed none."""
    from edgeorch.textui import format_timestamp

    in_zone(tz)
    assert format_timestamp(1796567351) == shown
