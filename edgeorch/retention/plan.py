"""Pure: which candidate runs a gc removes, and which stay and why.

No I/O: the candidates (runs past the bound) and the holds (from the rules of
:mod:`edgeorch.retention.holds`) come in, a :class:`Plan` comes out.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Collection, Iterable, Sequence

from ..records import frozen
from .holds import Hold


@frozen
class Candidate:
    """A run past the retention bound (a row of ``store.retention.older_than``)."""

    run_id: int
    pipeline: str
    state: str
    created_at: float
    finished_at: float | None
    run_dir: str


@frozen
class Plan:
    """``remove``: the candidates to remove, by id; ``held``: the others, each with the holds that keep it."""

    remove: tuple[Candidate, ...]
    held: tuple[tuple[Candidate, tuple[Hold, ...]], ...]


def decide(candidates: Sequence[Candidate], holds: Iterable[Hold], gone: Collection[int] = ()) -> Plan:
    """Remove every candidate that no hold keeps.

    - An unconditional hold keeps its run.
    - A conditional hold (``while_kept = K``) keeps its run when run ``K`` stays: ``K``
      is not a candidate and not in ``gone`` (removed, or to be removed by a dry run, by
      an earlier page of the same gc: newer runs are decided first), or is a candidate
      kept by some hold. Chains resolve
      transitively (a kept run keeps the source of its cache hit, which keeps the
      source of its own, ...); a cycle of conditional holds among candidates with
      no kept member holds nothing, since every run in it goes.
    - Holds for runs that are not candidates are ignored.

    Each held candidate lists the holds that apply to it (a conditional hold whose
    ``while_kept`` run goes is not listed). Cost: linear in candidates plus holds.
    Order: ``remove`` and ``held`` follow ``candidates``.
    """
    ids = {c.run_id for c in candidates}
    applied: dict[int, list[Hold]] = defaultdict(list)
    needs: dict[int, list[Hold]] = defaultdict(list)  # while_kept -> the conditional holds it keeps
    for h in holds:
        if h.run_id not in ids:
            continue
        if h.while_kept is None:
            applied[h.run_id].append(h)
        else:
            needs[h.while_kept].append(h)
    kept = set(applied)
    queue = [k for k in needs if (k not in ids and k not in gone) or k in kept]
    seen = set(queue)
    while queue:
        keeper = queue.pop()
        for h in needs[keeper]:
            applied[h.run_id].append(h)
            kept.add(h.run_id)
            if h.run_id not in seen:
                seen.add(h.run_id)
                queue.append(h.run_id)
    return Plan(remove=tuple(c for c in candidates if c.run_id not in kept),
                held=tuple((c, tuple(applied[c.run_id])) for c in candidates if c.run_id in kept))
