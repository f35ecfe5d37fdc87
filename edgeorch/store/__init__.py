"""State persistence: the SQLite state file (see docs/state.md)."""

from .schema import MIGRATIONS, SCHEMA_VERSION
from .store import NewAttempt, Store

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "NewAttempt", "Store"]
