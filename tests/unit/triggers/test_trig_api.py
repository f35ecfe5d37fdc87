"""The package's public surface: what docs/triggers.md promises is importable from edgeorch.triggers."""

from __future__ import annotations

import re
from pathlib import Path

from edgeorch import triggers

DOC = Path(__file__).resolve().parents[3] / "docs" / "triggers.md"


def test_every_exported_name_exists():
    for name in triggers.__all__:
        assert hasattr(triggers, name), name
    assert len(set(triggers.__all__)) == len(triggers.__all__)


def test_the_functions_the_wiring_section_names_are_exported():
    text = DOC.read_text()
    wiring = text[text.index("## Wiring"):]
    ours = set(re.findall(r"\b([A-Za-z_]+)\(", wiring)) & set(triggers.__all__)
    assert {"reconcile", "prepare_claim", "perform_claim", "check_watches", "check_watch_set",
            "check_same_filesystem", "check_pipeline_triggers", "requeue", "Scheduler", "ScheduleTimer",
            "ArrivalLoop", "Batcher"} <= ours


def test_validation_does_not_import_watchdog():
    """The CLI's validate path imports the schedule and [[watch]] checks only; watchdog loads with the watcher."""
    import subprocess
    import sys

    code = ("import sys; from edgeorch.triggers import check_pipeline_triggers, check_watches; "
            "print('watchdog' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
