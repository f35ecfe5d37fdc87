"""Which version a rollback of an alias returns to: one rule, for ``models rollback`` and for what retention keeps.

:func:`rollback_targets` is pure over an alias's history (its moves, newest first) and a test of whether a version ever failed a decision
(its gates, a health check, a canary). The walk goes from the newest move back; each move names two versions
(where the alias went, where it came from). A version is a target when it is not the one served now, was never
rolled back *from* (by hand, a rule or a failed check), and never failed a decision; each version is looked at
once. Two rollbacks in a row walk back two versions, never back and forth between two: the second target is the
walk's next, because the first rollback's own move names only versions the walk has passed already.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from ..store import Store

ROLLBACK_ACTIONS = ("rollback", "auto_rollback")
"""The alias moves that roll back: a version moved away from by one of them is never a target again."""


def rollback_targets(history: Iterable[Mapping[str, Any]], current: int | None, failed: Callable[[int], bool],
                     depth: int = 1) -> list[int]:
    """The next ``depth`` versions successive rollbacks of the alias would return to, nearest first (fewer when
    the history has fewer). ``history``: the alias's moves, newest first (``action``, ``from_version``,
    ``to_version``); ``current``: the version it serves now; ``failed(version)``: whether it failed a decision
    (called at most once per version)."""
    moves = list(history)
    seen: set[int] = {h["from_version"] for h in moves
                      if h["action"] in ROLLBACK_ACTIONS and h["from_version"] is not None}
    out: list[int] = []
    for h in moves:
        for candidate in (h["to_version"], h["from_version"]):
            if candidate is None or candidate == current or candidate in seen:
                continue
            seen.add(candidate)
            if not failed(candidate):
                out.append(candidate)
                if len(out) >= depth:
                    return out
    return out


def rollback_targets_of(store: "Store", name: str, alias: str, depth: int = 1) -> list[int]:
    """:func:`rollback_targets` of model ``name``'s ``alias`` as the state file has it (its whole history, its
    versions' decisions)."""
    def failed(version: int) -> bool:
        v = store.models.version(name, version)
        return any(d["verdict"] == "failed" for d in store.models.decisions(v["id"]))

    return rollback_targets(store.models.alias_history(name, alias, limit=10_000),
                            store.models.aliases(name).get(alias), failed, depth)
