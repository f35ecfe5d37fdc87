"""Triggers: schedules and drop-in data folders (issue 4 building blocks).

Pure cores (:mod:`.schedule`, the rules in :mod:`.drop`) and thin
adapters (:mod:`.scheduler`, :mod:`.watcher`, :mod:`.arrivals`). The daemon
wires them to the engine and the store; see ``docs/triggers.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazyexports import lazy_exports

# Lazy exports (PEP 562): validating a pipeline must not pay for importing watchdog.
_EXPORTS = {
    "Accept": "drop",
    "Action": "drop",
    "ArrivalLoop": "arrivals",
    "Batcher": "drop",
    "ClaimError": "drop",
    "ClaimIntent": "drop",
    "ClaimedFile": "drop",
    "Clock": "scheduler",
    "Decision": "schedule",
    "Fire": "scheduler",
    "FirePlan": "schedule",
    "FolderWatcher": "watcher",
    "InputRecord": "drop",
    "ManualClock": "scheduler",
    "Quarantined": "drop",
    "Refuse": "drop",
    "ScheduleSpec": "schedule",
    "ScheduleTimer": "scheduler",
    "Scheduler": "scheduler",
    "SettleTracker": "drop",
    "SystemClock": "scheduler",
    "WatchEvent": "watcher",
    "WatchSpec": "drop",
    "admit": "schedule",
    "check_pipeline_triggers": "checks",
    "check_same_filesystem": "drop",
    "check_schedule": "schedule",
    "check_watch": "drop",
    "check_watch_set": "drop",
    "check_watches": "drop",
    "claim": "drop",
    "claim_dest": "drop",
    "due_fires": "schedule",
    "file_ids": "drop",
    "hash_file": "drop",
    "inspect": "drop",
    "is_candidate": "drop",
    "jitter_offset": "schedule",
    "list_inbox": "drop",
    "next_fire": "schedule",
    "perform_claim": "drop",
    "plan_fires": "schedule",
    "prepare_claim": "drop",
    "quarantine": "drop",
    "reconcile": "drop",
    "requeue": "drop",
    "scan": "drop",
    "start_time": "schedule",
    "sync_dirs": "drop",
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


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

SCHEDULE_KEYS = ("schedule", "every", "timezone", "jitter", "catchup", "catchup_max", "max_active_runs",
                 "on_max_active")
"""A pipeline's top-level schedule keys (:func:`~edgeorch.triggers.schedule.check_schedule` reads them): here,
so that a pipeline with none of them is checked without loading the schedule module (issue 11)."""


if TYPE_CHECKING:  # pragma: no cover
    from .arrivals import ArrivalLoop
    from .checks import check_pipeline_triggers
    from .drop import (
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
