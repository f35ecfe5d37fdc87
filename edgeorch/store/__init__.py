"""State persistence: the SQLite state file (see docs/state.md), one module per aggregate."""

from .schema import MIGRATIONS, SCHEMA_VERSION
from .store import NewAttempt, Store

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "NewAttempt", "Store"]
