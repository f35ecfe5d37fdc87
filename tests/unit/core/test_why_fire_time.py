"""`why` says a scheduled run's fire in local time, as the tables say every time, with the recorded UTC form."""

from __future__ import annotations

import os
import time

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
