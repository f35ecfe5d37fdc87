"""Triggers: schedules and drop-in data folders (issue 4 building blocks).

Pure cores (:mod:`.schedule`, the rules in :mod:`.dropfolder`) and thin
adapters (:mod:`.scheduler`, :mod:`.watcher`, :mod:`.arrivals`). The daemon
wires them to the engine and the store; see ``docs/triggers.md``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Lazy exports (PEP 562): validating a pipeline must not pay for importing watchdog.
_EXPORTS = {
    "Accept": "dropfolder",
    "Action": "dropfolder",
    "ArrivalLoop": "arrivals",
    "Batcher": "dropfolder",
    "ClaimError": "dropfolder",
    "ClaimIntent": "dropfolder",
    "ClaimedFile": "dropfolder",
    "Clock": "scheduler",
    "Decision": "schedule",
    "Fire": "scheduler",
    "FirePlan": "schedule",
    "FolderWatcher": "watcher",
    "InputRecord": "dropfolder",
    "ManualClock": "scheduler",
    "Quarantined": "dropfolder",
    "Refuse": "dropfolder",
    "ScheduleSpec": "schedule",
    "ScheduleTimer": "scheduler",
    "Scheduler": "scheduler",
    "SettleTracker": "dropfolder",
    "SystemClock": "scheduler",
    "WatchEvent": "watcher",
    "WatchSpec": "dropfolder",
    "admit": "schedule",
    "check_pipeline_triggers": "checks",
    "check_same_filesystem": "dropfolder",
    "check_schedule": "schedule",
    "check_watch": "dropfolder",
    "check_watch_set": "dropfolder",
    "check_watches": "dropfolder",
    "claim": "dropfolder",
    "claim_dest": "dropfolder",
    "due_fires": "schedule",
    "file_ids": "dropfolder",
    "hash_file": "dropfolder",
    "inspect": "dropfolder",
    "is_candidate": "dropfolder",
    "jitter_offset": "schedule",
    "list_inbox": "dropfolder",
    "next_fire": "schedule",
    "perform_claim": "dropfolder",
    "plan_fires": "schedule",
    "prepare_claim": "dropfolder",
    "quarantine": "dropfolder",
    "reconcile": "dropfolder",
    "requeue": "dropfolder",
    "scan": "dropfolder",
    "start_time": "schedule",
    "sync_dirs": "dropfolder",
}

__all__ = [
    "Accept",
    "Action",
    "ArrivalLoop",
    "Batcher",
    "ClaimError",
    "ClaimIntent",
    "ClaimedFile",
    "Clock",
    "Decision",
    "Fire",
    "FirePlan",
    "FolderWatcher",
    "InputRecord",
    "ManualClock",
    "Quarantined",
    "Refuse",
    "ScheduleSpec",
    "ScheduleTimer",
    "Scheduler",
    "SettleTracker",
    "SystemClock",
    "WatchEvent",
    "WatchSpec",
    "admit",
    "check_pipeline_triggers",
    "check_same_filesystem",
    "check_schedule",
    "check_watch",
    "check_watch_set",
    "check_watches",
    "claim",
    "claim_dest",
    "due_fires",
    "file_ids",
    "hash_file",
    "inspect",
    "is_candidate",
    "jitter_offset",
    "list_inbox",
    "next_fire",
    "perform_claim",
    "plan_fires",
    "prepare_claim",
    "quarantine",
    "reconcile",
    "requeue",
    "scan",
    "start_time",
    "sync_dirs",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:  # pragma: no cover
    from .arrivals import ArrivalLoop
    from .checks import check_pipeline_triggers
    from .dropfolder import (
        Accept,
        Action,
        Batcher,
        ClaimedFile,
        ClaimError,
        ClaimIntent,
        InputRecord,
        Quarantined,
        Refuse,
        SettleTracker,
        WatchSpec,
        check_same_filesystem,
        check_watch,
        check_watch_set,
        check_watches,
        claim,
        claim_dest,
        file_ids,
        hash_file,
        inspect,
        is_candidate,
        list_inbox,
        perform_claim,
        prepare_claim,
        quarantine,
        reconcile,
        requeue,
        scan,
        sync_dirs,
    )
    from .schedule import (
        Decision,
        FirePlan,
        ScheduleSpec,
        admit,
        check_schedule,
        due_fires,
        jitter_offset,
        next_fire,
        plan_fires,
        start_time,
    )
    from .scheduler import (
        Clock,
        Fire,
        ManualClock,
        Scheduler,
        ScheduleTimer,
        SystemClock,
    )
    from .watcher import FolderWatcher, WatchEvent
