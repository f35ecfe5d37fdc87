"""Retention holds: the one registry of reasons a run past its retention bound must stay.

A *hold rule* is a function that reads the state file (never writes it) and
yields :class:`Hold` records for some of the candidate runs. Every rule
registered here is asked by every ``edgeorch gc`` and every periodic sweep;
a candidate with at least one hold that applies is kept, and the report says
why. Rules that other features add later (a model version or alias made from a
run's outputs) register themselves with :func:`register_hold` from their
own module; nothing here changes.

A hold is either **unconditional** (the run stays) or **conditional**
(``while_kept``: the run stays as long as run ``while_kept`` stays; a cache
hit's source run is needed only by a run that is itself kept). The planner
(:func:`edgeorch.retention.plan.decide`) resolves chains of conditional holds.

Built-in rules:

- ``active``: the run is not finished, or an attempt or a lease of it is still live;
- ``cache``: another run reuses its outputs or attempts (a cache hit), conditional
  on that run staying; removing the source would leave the user run's recorded
  artifacts pointing at deleted files;
- ``lineage``: another run recorded consuming its outputs (``consumed``), conditional on
  that run staying;
- ``datasets``: a dataset version was made from its outputs (``dataset_versions.run_id``);
- ``models``: a model version made by it is on an alias, in an open deployment, or what one of the next three
  rollbacks of an alias returns to (by ``models rollback``'s own rule, :mod:`edgeorch.models.rollback`: its
  files are the run's outputs);
- ``keep_last``: one of the latest ``keep_last`` runs of its pipeline (``[retention] keep_last``);
- ``inputs``: a drop-folder input of the run is not settled yet (the trigger service
  settles it from the run's outcome, possibly at the next daemon start);
- ``newest``: the run has the highest run id, or the highest attempt id. SQLite gives a new
  row the highest id + 1, so removing it would hand its id to the next run (an input's
  record, an event or a person's notes naming it would then name another run).

Contract of a rule: it receives a :class:`HoldQuery`, reads through
``query.store``, and returns holds only for runs of ``query.candidates`` (others
are ignored). An exception propagates: a sweep whose holds cannot be computed
removes nothing (fail closed).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Callable, Iterable, Mapping

from ..model import InputState, RunState
from ..records import frozen
from ..store.models import ROLLBACK_DEPTH

if TYPE_CHECKING:  # pragma: no cover
    from ..store import Store


@frozen
class Hold:
    """Run ``run_id`` must stay because of ``reason``; with ``while_kept``, only while that run stays."""

    run_id: int
    reason: str
    while_kept: int | None = None
    rule: str = ""
    """The registered name of the rule that found it (set by :func:`collect_holds`)."""

    def to_dict(self) -> dict[str, object]:
        return {"rule": self.rule, "reason": self.reason, "while_kept": self.while_kept}


@frozen
class HoldQuery:
    """What a rule is asked about: ``candidates`` (run ids past the bound) in ``store``, at ``now``."""

    store: "Store"
    candidates: frozenset[int]
    now: float
    keep_last: int = 0
    """``[retention] keep_last`` (or ``edgeorch gc --keep-last``): 0 for none."""


HoldRule = Callable[[HoldQuery], Iterable[Hold]]
_RULES: dict[str, HoldRule] = {}


def register_hold(name: str, rule: HoldRule) -> None:
    """Ask ``rule`` for holds at every gc from now on; ``name`` is what reports show (``ValueError`` if taken)."""
    if name in _RULES:
        raise ValueError(f"a retention hold rule named {name!r} is already registered")
    _RULES[name] = rule


def unregister_hold(name: str) -> None:
    """Stop asking the rule ``name`` (nothing when none is registered by that name)."""
    _RULES.pop(name, None)


def hold_rules() -> Mapping[str, HoldRule]:
    """The registered rules, by name (a read-only view)."""
    return dict(_RULES)


def collect_holds(query: HoldQuery) -> list[Hold]:
    """Every hold every registered rule finds for ``query.candidates``, each stamped with its rule's name."""
    if not query.candidates:
        return []
    out: list[Hold] = []
    for name, rule in _RULES.items():
        out.extend(replace(h, rule=name) for h in rule(query) if h.run_id in query.candidates)
    return out


# -- the built-in rules ---------------------------------------------------------------------------


def _active(query: HoldQuery) -> Iterable[Hold]:
    for r in query.store.retention.active(query.candidates):
        if not RunState(r["state"]).finished:
            yield Hold(r["run_id"], f"active ({r['state']})")
        elif r["live"]:
            yield Hold(r["run_id"], f"{r['live']} attempt(s) or lease(s) still live")


def _cache(query: HoldQuery) -> Iterable[Hold]:
    for r in query.store.retention.reused_by(query.candidates):
        yield Hold(r["run_id"], f"outputs reused by run {r['user']} (task {r['task']}, a cache hit)",
                   while_kept=r["user"])


def _lineage(query: HoldQuery) -> Iterable[Hold]:
    for r in query.store.retention.consumed_from(query.candidates):
        yield Hold(r["run_id"], f"its outputs are recorded as consumed by run {r['user']} (task {r['task']}, lineage)",
                   while_kept=r["user"])


def _datasets(query: HoldQuery) -> Iterable[Hold]:
    for r in query.store.retention.dataset_versions_of(query.candidates):
        yield Hold(r["run_id"], f"dataset {r['dataset']} version {r['version']} was made from its outputs")


def _models(query: HoldQuery) -> Iterable[Hold]:
    # A model version's files are its run's outputs until a deployment copied them into the serving folder.
    from ..models.rollback import rollback_targets_of

    models = query.store.models
    for r in models.held_runs():
        if r["run_id"] in query.candidates:
            what = "is being deployed" if r["why"] == "deployment" else f"is {r['why']}"
            yield Hold(r["run_id"], f"model {r['model']} version {r['version']}, made by it, {what}")
    # What the next rollbacks of each alias return to, by the rule `models rollback` itself follows: the last moves
    # of an alias kept "what a rollback returns to", and three `promote --again` (3 -> 3) filled them with the
    # version served, while the real target's run was removed (its files gone when its slot was).
    for name, alias in models.alias_pairs():
        for nth, version in enumerate(rollback_targets_of(query.store, name, alias, ROLLBACK_DEPTH)):
            run_id = models.run_of(name, version)
            if run_id is not None and run_id in query.candidates:
                which = "a rollback" if nth == 0 else f"rollback number {nth + 1} in a row"
                yield Hold(run_id, f"model {name} version {version}, made by it, is what {which} of {alias} "
                                   "returns to")


def _keep_last(query: HoldQuery) -> Iterable[Hold]:
    for r in query.store.retention.latest(query.keep_last, query.candidates):
        yield Hold(r["run_id"], f"one of the latest {query.keep_last} runs of {r['pipeline']}")


def _newest(query: HoldQuery) -> Iterable[Hold]:
    for run_id in query.store.retention.newest():
        yield Hold(run_id, "holds the newest run or attempt id (removing it would let SQLite reuse the id)")


def _inputs(query: HoldQuery) -> Iterable[Hold]:
    settled = [s.value for s in InputState if s.finished]
    for r in query.store.retention.unsettled_inputs(query.candidates, settled):
        yield Hold(r["run_id"], f"its drop-folder input {r['id']} is still {r['state']}")


for _name, _rule in (("active", _active), ("cache", _cache), ("lineage", _lineage), ("datasets", _datasets),
                     ("models", _models), ("keep_last", _keep_last), ("inputs", _inputs), ("newest", _newest)):
    register_hold(_name, _rule)
