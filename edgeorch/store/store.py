"""The state file, split by aggregate behind one connection and one transaction.

Contract:

- One :class:`Store` per process that writes (the engine's event loop, the
  one-writer rule); readers (the CLI with no daemon) open their own.
- The data is reached through its aggregate, each a module of this package
  that states its tables and which calls are one transaction:
  ``store.runs`` (runs, tasks), ``store.attempts`` (attempts, leases),
  ``store.outputs`` (artifacts, checkpoints, check results, cache hits),
  ``store.lineage`` (what tasks consumed; the lookups of lineage queries),
  ``store.pipelines`` (versions, pauses), ``store.events``,
  ``store.schedules``, ``store.inputs``, ``store.retention`` (removing old
  runs), ``store.datasets`` (data versions), ``store.models`` (model versions,
  aliases, decisions, deployments, promotion blocks), ``store.privacy``
  (privacy budgets and the ledger of spends), ``store.rules`` (monitoring
  rules' state and firings), ``store.baselines`` (named data profiles that
  drift tasks compare with). ``Store`` itself holds no data
  methods: only the shared :class:`~edgeorch.store.db.Database` (``store.db``),
  :meth:`transaction`, :meth:`close` and :meth:`integrity_check`.
- Every state transition is one call on an aggregate and one transaction
  (``BEGIN IMMEDIATE`` ... ``COMMIT``); writes of several aggregates inside one
  ``with store.transaction():`` commit or roll back together. A crash leaves the
  old state or the new.
- WAL mode with ``synchronous=FULL`` (set in ``db.py``, the one place): a
  committed transition survives power loss, the usual failure on edge machines.
- Timestamps are Unix seconds (float) from the injected clock.
"""

from __future__ import annotations

import sqlite3
import time
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Callable

from .attempts import Attempts, NewAttempt
from .audit import AuditLog
from .baselines import Baselines
from .datasets import Datasets
from .db import Database
from .events import Events
from .inputs import Inputs
from .lineage import Lineage
from .models import Models
from .outputs import Outputs
from .pipelines import Pipelines
from .privacy import Privacy
from .retention import Retention
from .runs import Runs
from .rules import Rules
from .schedules import Schedules

__all__ = ["NewAttempt", "Store"]


class Store:
    """The state file's aggregates over one :class:`Database`. See the module docstring."""

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time, readonly: bool = False,
                 check: bool = False) -> None:
        """``check``: a damaged file is refused whatever its last close (the daemon's start; :class:`Database`)."""
        self.db = Database(path, clock=clock, readonly=readonly, check=check)
        self.audit = AuditLog(self.db)
        self.events = Events(self.db)
        self.pipelines = Pipelines(self.db)
        self.runs = Runs(self.db)
        self.attempts = Attempts(self.db, self.runs)
        self.outputs = Outputs(self.db)
        self.schedules = Schedules(self.db)
        self.inputs = Inputs(self.db)
        self.lineage = Lineage(self.db)
        self.retention = Retention(self.db)
        self.datasets = Datasets(self.db)
        self.models = Models(self.db)
        self.privacy = Privacy(self.db)
        self.rules = Rules(self.db)
        self.baselines = Baselines(self.db)

    @property
    def path(self) -> Path:
        return self.db.path

    @property
    def clock(self) -> Callable[[], float]:
        return self.db.clock

    @property
    def readonly(self) -> bool:
        return self.db.readonly

    def transaction(self, *, durable: bool = True) -> AbstractContextManager[sqlite3.Connection]:
        """One atomic unit across every aggregate (see :meth:`Database.transaction`)."""
        return self.db.transaction(durable=durable)

    def after_commit(self, fn: Callable[[], None]) -> None:
        """Call ``fn()`` once the open transaction commits, never if it rolls back (:meth:`Database.after_commit`)."""
        self.db.after_commit(fn)

    def sync(self) -> None:
        """Make every commit so far durable, relaxed ones included (:meth:`Database.sync`)."""
        self.db.sync()

    def on_rollback(self, fn: Callable[[], None]) -> None:
        """Call ``fn()`` if the open transaction rolls back, never once it commits (:meth:`Database.on_rollback`)."""
        self.db.on_rollback(fn)

    def close(self) -> None:
        self.db.close()

    def integrity_check(self) -> str:
        """``PRAGMA integrity_check``: ``'ok'`` or the first problem."""
        return self.db.integrity_check()
