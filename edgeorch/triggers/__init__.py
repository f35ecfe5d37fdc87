"""Triggers: schedules and drop-in data folders (issue 4 building blocks).

Pure cores (:mod:`.schedule`, the rules in :mod:`.dropfolder`) and thin
adapters (:mod:`.scheduler`, :mod:`.watcher`, :mod:`.arrivals`). The daemon
wires them to the engine and the store; see ``docs/triggers.md``.
"""

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
from .scheduler import Clock, Fire, ManualClock, Scheduler, ScheduleTimer, SystemClock
from .watcher import FolderWatcher, WatchEvent

__all__ = [
    "Accept", "Action", "ArrivalLoop", "Batcher", "ClaimError", "ClaimIntent", "ClaimedFile", "Clock", "Decision",
    "Fire", "FirePlan", "FolderWatcher", "InputRecord", "ManualClock", "Quarantined", "Refuse", "ScheduleSpec",
    "ScheduleTimer", "Scheduler", "SettleTracker", "SystemClock", "WatchEvent", "WatchSpec", "admit",
    "check_pipeline_triggers", "check_same_filesystem", "check_schedule", "check_watch", "check_watch_set",
    "check_watches", "claim", "claim_dest", "due_fires", "file_ids", "hash_file", "inspect", "is_candidate",
    "jitter_offset", "list_inbox", "next_fire", "perform_claim", "plan_fires", "prepare_claim", "quarantine",
    "reconcile", "requeue", "scan", "start_time", "sync_dirs",
]
