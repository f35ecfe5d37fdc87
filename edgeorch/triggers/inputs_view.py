"""What ``edgeorch inputs`` shows, read from the state file: the same answer with or without a daemon.

:func:`inputs_doc` is called by the daemon's ``inputs.list`` op (which adds the watched folders it
knows) and by the CLI on the state file opened read-only when no daemon runs, so a person can see
what arrived, what ran and what was quarantined while the daemon is down (when it matters most).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import NotFoundError, UsageError

DEFAULT_LIMIT = 100
MAX_LIMIT = 1_000_000


def inputs_doc(store: Any, quarantine_dir: Path, *, pipeline: str | None = None, state: str | None = None,
               limit: int | None = None) -> dict[str, Any]:
    """The newest ``limit`` inputs (default 100; 1..1,000,000, else :class:`UsageError` naming
    ``args.limit``), filtered by pipeline and state, each with its run's state (``removed`` once
    ``edgeorch gc`` took the run; None before it has one), the counts by state, and the quarantined files
    with their ``<name>.reason.json`` (an unreadable reason file is skipped). ``store`` None (no state file
    yet): nothing arrived. ``watches``, ``watch_errors`` and ``retrying`` (dropped files not recorded yet,
    tried again later) are empty: only a running daemon knows them.
    """
    limit = DEFAULT_LIMIT if limit is None else limit
    if not 1 <= limit <= MAX_LIMIT:
        raise UsageError("is out of range", field="args.limit", value=limit, expected=f"1..{MAX_LIMIT}")
    inputs: list[dict[str, Any]] = []
    counts: dict[str, int] = {}
    if store is not None:
        inputs = store.inputs.list(pipeline=pipeline, state=state, limit=limit)
        counts = store.inputs.counts()
    run_states: dict[int, str] = {}
    for r in inputs:
        if r["run_id"] is not None and r["run_id"] not in run_states:
            try:
                run_states[r["run_id"]] = store.runs.get(r["run_id"])["state"]
            except NotFoundError:  # removed by `edgeorch gc`; the input's record stays (docs/state.md)
                run_states[r["run_id"]] = "removed"
        r["run_state"] = run_states.get(r["run_id"]) if r["run_id"] is not None else None
    quarantined = []
    if quarantine_dir.is_dir():
        for f in sorted(quarantine_dir.glob("*.reason.json")):
            try:
                doc = json.loads(f.read_text())
            except (OSError, ValueError):
                continue
            if not isinstance(doc, dict):
                continue
            doc["path"] = str(f.with_name(f.name[: -len(".reason.json")]))
            quarantined.append(doc)
    return {"inputs": inputs, "counts": counts, "quarantine": quarantined, "watches": [], "watch_errors": [],
            "retrying": []}
