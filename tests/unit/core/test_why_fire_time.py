"""`why` says a scheduled run's fire in local time, as the tables say every time, with the recorded UTC form."""

from __future__ import annotations

import os
import time

import pytest

from edgeorch.cli.commands.monitors import _fire_shown


def test_a_fire_is_said_in_local_time_beside_its_utc_form() -> None:
    old = os.environ.get("TZ")
    os.environ["TZ"] = "America/Los_Angeles"
    time.tzset()
    try:
        assert _fire_shown("2026-03-05T11:30:00+00:00") == "2026-03-05 03:30:00 PST (2026-03-05T11:30:00+00:00)"
        assert _fire_shown("2026-03-05T11:30:00+00:00", utc=False) == "2026-03-05 03:30:00 PST"
        assert _fire_shown("not a time") == "not a time"
    finally:
        if old is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = old
        time.tzset()


@pytest.mark.parametrize("tz, shown", [("UTC", "2026-12-06 14:29:11 UTC"), ("America/New_York", "2026-12-06 09:29:11 EST"),
                                       ("UTC+5", "2026-12-06 09:29:11 -0500"), ("../../etc/passwd", "2026-12-06 14:29:11 +0000")])
def test_a_table_time_says_its_zone_and_never_a_false_one(tz: str, shown: str) -> None:
    """TZ=UTC+5 (POSIX: a zone named UTC five hours behind) printed "10:28:31 UTC", a false label; a TZ with no
    name printed none."""
    from edgeorch.textui import format_timestamp

    old = os.environ.get("TZ")
    os.environ["TZ"] = tz
    time.tzset()
    try:
        assert format_timestamp(1796567351) == shown
    finally:
        if old is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = old
        time.tzset()
