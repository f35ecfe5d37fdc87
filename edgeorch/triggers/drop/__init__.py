"""Drop-in folders: which files count, when they are complete, and how they are claimed.

One module per job:

* :mod:`.spec`: ``[[watch]]`` tables (:class:`WatchSpec`, :func:`check_watch`,
  the checks across all watches); :mod:`.configured`: the watches a daemon
  would start from its config and pipelines, checked (the daemon's and
  ``edgeorch validate``'s one function);
* :mod:`.names`: which names may trigger and are valid (:func:`is_candidate`,
  :func:`name_problem`), printable and NAME_MAX-safe names
  (:func:`display_path`, :func:`fit_name`);
* :mod:`.inspection`: a ready file looked at without following links
  (:func:`inspect`: :class:`Accept` or :class:`Refuse`), :func:`scan`;
* :mod:`.settle`: when a file is complete (:class:`SettleTracker`), batches
  (:class:`Batcher`);
* :mod:`.claim`: intent, rename, verify on the descriptor, hash
  (:func:`prepare_claim` / :func:`perform_claim` / :func:`claim`);
* :mod:`.reconcile`: recovery's pure decision over store and disk;
* :mod:`.quarantine`: failed/refused inputs set aside with a reason, :func:`requeue`;
* :mod:`.retention`: ``[inbox] keep``: a finished input's kept file removed, never a link followed;
* :mod:`edgeorch.durable`: folder fsyncs and atomic writes (shared with the rest of edgeorch);
* :mod:`.service`: the daemon side (:class:`DropFolders`), wired to the store and the front door.

Pure rules and small I/O helpers touch no SQLite: the caller records what they
return (see ``docs/triggers.md``, "Claim protocol").

Arrival rules
-------------
* Only direct children of the watched folder count (no recursion).
* Hidden and temporary names never trigger: ``.*`` (this covers rsync's
  ``.name.XXXXXX`` and editors' swap files), ``*.part``, ``*.partial``,
  ``*.filepart``, ``*.tmp``, ``*.temp``, ``*~``, ``*.crdownload``,
  ``*.download``. The final rename of such a file is an arrival.
* A file is *ready* when it was renamed into the folder (``moved_to``:
  complete at once) or, written in place, was closed after writing and then
  kept the same (size, mtime_ns) for ``settle`` seconds.
* Before it is claimed, a ready file is inspected without following links:
  symlinks, hard links (``st_nlink > 1``), non-regular files, files over
  ``max_size`` and names that are not valid are refused with a reason.
"""

from __future__ import annotations

from .names import display_path, fit_name, is_candidate, is_hidden_or_temp, MAX_NAME_BYTES, name_problem, TEMP_PATTERNS
from .spec import check_same_filesystem, check_watch, check_watch_set, check_watches, DEFAULT_ENV, DEFAULT_PARAM, MODES, WATCH_KEYS, WatchSpec
from .inspection import Accept, file_kind, inspect, Refuse, RefuseCode, scan, TRANSIENT_ERRNOS
from .settle import Batcher, complete_at_once, DEFAULT_WRITING_TIMEOUT, EventKind, SettleTracker, Stat, stat_of
from .claim import changed_since, claim, claim_dest, ClaimDeferred, ClaimedFile, ClaimError, ClaimIntent, ClaimRefused, FileStamp, hash_file, is_transient, perform_claim, prepare_claim, verify_and_hash
from ...durable import fsync_dir, sync_dirs, write_atomic
from .reconcile import Action, ActionKind, claim_folder_id, file_ids, FileId, InputRecord, InputState, list_inbox, reconcile
from .quarantine import quarantine, Quarantined, REASON_SUFFIX, requeue

__all__ = [
    "Accept",
    "Action",
    "ActionKind",
    "Batcher",
    "changed_since",
    "check_same_filesystem",
    "check_watch",
    "check_watch_set",
    "check_watches",
    "claim",
    "claim_dest",
    "claim_folder_id",
    "ClaimDeferred",
    "ClaimedFile",
    "ClaimError",
    "ClaimIntent",
    "ClaimRefused",
    "complete_at_once",
    "DEFAULT_ENV",
    "DEFAULT_PARAM",
    "DEFAULT_WRITING_TIMEOUT",
    "display_path",
    "EventKind",
    "file_ids",
    "file_kind",
    "FileId",
    "FileStamp",
    "fit_name",
    "fsync_dir",
    "hash_file",
    "InputRecord",
    "InputState",
    "inspect",
    "is_candidate",
    "is_hidden_or_temp",
    "is_transient",
    "list_inbox",
    "MAX_NAME_BYTES",
    "MODES",
    "name_problem",
    "perform_claim",
    "prepare_claim",
    "quarantine",
    "Quarantined",
    "REASON_SUFFIX",
    "reconcile",
    "Refuse",
    "RefuseCode",
    "requeue",
    "scan",
    "SettleTracker",
    "Stat",
    "stat_of",
    "sync_dirs",
    "TEMP_PATTERNS",
    "TRANSIENT_ERRNOS",
    "verify_and_hash",
    "WATCH_KEYS",
    "WatchSpec",
    "write_atomic",
]
