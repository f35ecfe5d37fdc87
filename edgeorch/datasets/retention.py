"""The retention rule of data versions: which versions of a dataset a prune removes. Pure.

A version is **kept** when any of these holds, in this order (the first gives
the reason shown):

1. it is the dataset's latest version (a dataset never loses its current content);
2. something holds it (``held``: a model alias, a run that is queued or running
   and was started for it or is producing it; see ``holders.py``);
3. it is one of the newest ``keep_last`` versions;
4. it is at most ``max_age`` seconds old (``now - created_at <= max_age``).

Every other version is removed. So ``--keep 7 --max-age 30d`` keeps the
newest 7 *and* everything from the last 30 days (the union, as restic's
``forget --keep-last --keep-within`` does); with one of them, that one alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..config import KEEP_MIN
from ..errors import UsageError
from ..records import frozen
from ..units import parse_duration

RULE_EXPECTED = "--keep N (the newest N versions, N >= 1) and/or --max-age DURATION (e.g. 30d)"


@frozen
class Rule:
    """``keep_last``: the newest N versions (None: no such rule); ``max_age``: seconds (None: no such rule)."""

    keep_last: int | None = None
    max_age: float | None = None

    @classmethod
    def parse(cls, keep: Any = None, max_age: Any = None) -> Rule:
        """A rule from a command's ``--keep`` / ``--max-age`` (or an op's ``keep`` / ``max_age``).

        Raises :class:`UsageError` naming the option when neither is given, ``keep``
        is not an integer of at least 1, or ``max_age`` is not a duration of at
        least 1s.
        """
        if keep is None and max_age is None:
            raise UsageError("a retention rule is needed", field="--keep/--max-age", expected=RULE_EXPECTED)
        if keep is not None and (isinstance(keep, bool) or not isinstance(keep, int) or keep < 1):
            raise UsageError("is not a number of versions to keep", field="--keep", value=keep,
                             expected="an integer >= 1")
        age: float | None = None
        if max_age is not None:
            try:
                age = parse_duration(max_age)
            except ValueError:
                age = None
            if age is None or age < KEEP_MIN:
                raise UsageError("is not a valid age", field="--max-age", value=max_age,
                                 expected=f'a duration of at least {KEEP_MIN:g}s, e.g. "30d", "12h"')
        return cls(keep, age)

    def describe(self) -> str:
        parts = []
        if self.keep_last is not None:
            parts.append(f"the newest {self.keep_last}")
        if self.max_age is not None:
            parts.append(f"those at most {_age_text(self.max_age)} old")
        return "keep " + " and ".join(parts) + " (and the latest, and held versions)"


@frozen
class Plan:
    """The rule applied to one dataset: the version ids to remove, and why each other one stays."""

    remove: tuple[int, ...]
    keep: tuple[tuple[int, str], ...]


def plan(versions: Sequence[Mapping[str, Any]], rule: Rule, *, now: float, held: Mapping[int, str]) -> Plan:
    """Apply ``rule`` to one dataset's ``versions`` (``id``, ``version``, ``created_at``; any order).

    ``held``: version id -> reason (ids of other datasets are ignored). Ties
    in ``created_at`` do not matter: "newest" is by version number.
    """
    ordered = sorted(versions, key=lambda v: v["version"])
    newest = {v["id"] for v in ordered[-rule.keep_last:]} if rule.keep_last else set()
    remove: list[int] = []
    keep: list[tuple[int, str]] = []
    for i, v in enumerate(ordered):
        vid = int(v["id"])
        if i == len(ordered) - 1:
            keep.append((vid, "the latest version"))
        elif vid in held:
            keep.append((vid, held[vid]))
        elif vid in newest:
            keep.append((vid, f"one of the newest {rule.keep_last}"))
        elif rule.max_age is not None and now - float(v["created_at"]) <= rule.max_age:
            keep.append((vid, f"at most {_age_text(rule.max_age)} old"))
        else:
            remove.append(vid)
    return Plan(tuple(remove), tuple(keep))


def _age_text(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"
