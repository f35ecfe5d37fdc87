"""Named, versioned baselines: table ``baselines`` (docs/monitoring.md "Baselines").

Contract:

- A baseline is a data profile (the JSON of :class:`edgeorch.kernels.profiling.Profile`) under a name; each
  :meth:`Baselines.add` makes the next version (1, 2, ...) of that name, with where it came from (``source``: a
  file and its sha256, or a run's task and the profile it saved), in one transaction with a ``baseline_set``
  event (and so an audit record). A version is never changed or removed: a drift task that named
  ``baseline:NAME@3`` can be re-read later.
- Reads return plain dicts with ``source`` and ``columns`` decoded; the profile text only when asked for
  (:meth:`Baselines.get` with ``profile=True``): a profile can be megabytes.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any, Mapping, Sequence

from ..errors import NotFoundError
from .db import Database
from .events import write_event

_LIGHT = "id, name, version, created_at, actor, source, sha256, rows, columns, description"


def _decode(row: Mapping[str, Any] | sqlite3.Row | None) -> dict[str, Any] | None:
    if row is None:
        return None
    d = dict(row)
    for key in ("source", "columns"):
        if isinstance(d.get(key), str):
            d[key] = json.loads(d[key])
    return d


class Baselines:
    """``store.baselines``: see the module docstring."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def add(self, name: str, *, profile: str, sha256: str, source: Mapping[str, Any], columns: Sequence[str],
            rows: int | None, description: str | None = None, actor: str | None = None) -> dict[str, Any]:
        """Record the next version of ``name`` (``profile``: the profile's JSON text, ``sha256`` its hash);
        returns the new row (without the profile)."""
        now = self._db.clock()
        with self._db.transaction():
            version = int(self._db.conn.execute("SELECT COALESCE(MAX(version), 0) + 1 FROM baselines WHERE name = ?",
                                                (name,)).fetchone()[0])
            cur = self._db.conn.execute(
                "INSERT INTO baselines (name, version, created_at, actor, source, sha256, rows, columns, profile,"
                " description) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (name, version, now, actor, json.dumps(dict(source), sort_keys=True), sha256, rows,
                 json.dumps(list(columns)), profile, description))
            row = _decode(self._db.one(f"SELECT {_LIGHT} FROM baselines WHERE id = ?", (cur.lastrowid,)))
            assert row is not None
            write_event(self._db, None, None, "baseline_set",
                        f"baseline {name} version {version}: {len(columns)} column(s), {rows} row(s) from "
                        f"{_from(source)}", actor, now,
                        {"baseline": name, "version": version, "sha256": sha256, "source": dict(source)})
            return row

    def get(self, name: str, version: int | None = None, *, profile: bool = False) -> dict[str, Any]:
        """One version (None: the newest); :class:`NotFoundError` naming the known names or versions."""
        cols = "*" if profile else _LIGHT
        if version is None:
            row = self._db.one(f"SELECT {cols} FROM baselines WHERE name = ? ORDER BY version DESC LIMIT 1", (name,))
        else:
            row = self._db.one(f"SELECT {cols} FROM baselines WHERE name = ? AND version = ?", (name, version))
        if row is not None:
            return _decode(row) or {}
        latest = self._db.one("SELECT MAX(version) FROM baselines WHERE name = ?", (name,))
        if latest is not None and latest[0] is not None:
            raise NotFoundError(f"baseline {name} has no version {version}", value=version,
                                expected=f"a version from 1 to {latest[0]}")
        known = [r["name"] for r in self._db.all("SELECT DISTINCT name FROM baselines ORDER BY name LIMIT 20")]
        raise NotFoundError(f"no baseline named {name!r}", value=name,
                            expected=f"one of {', '.join(known)}" if known else "(none set yet)",
                            hint="edgeorch baseline set NAME FILE records one")

    def versions(self, name: str) -> list[dict[str, Any]]:
        """Every version of ``name``, oldest first (without profiles); :class:`NotFoundError` when there is none."""
        rows = [_decode(r) or {} for r in self._db.all(
            f"SELECT {_LIGHT} FROM baselines WHERE name = ? ORDER BY version", (name,))]
        if not rows:
            self.get(name)  # raises, naming the known ones
        return rows

    def listing(self) -> list[dict[str, Any]]:
        """Each name: how many versions, the latest, when it was set."""
        return self._db.all("SELECT name, COUNT(*) AS versions, MAX(version) AS latest, MAX(created_at) AS updated_at"
                            " FROM baselines GROUP BY name ORDER BY name")


def _from(source: Mapping[str, Any]) -> str:
    if source.get("run_id") is not None:
        return f"run {source['run_id']} task {source.get('task')}"
    return str(source.get("path") or "?")
