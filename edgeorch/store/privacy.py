"""Privacy budgets: tables ``privacy_budgets`` and ``privacy_spends`` (docs/privacy.md).

Contract:

- A dataset's budget is the total ``(epsilon, delta)`` that the
  differentially private releases of it may spend, under basic sequential
  composition: the spends add up. :meth:`Privacy.set_budget` declares or
  changes it (one transaction, one ``privacy_budget_set`` audit record); a
  budget below what was already spent is refused.
- :meth:`Privacy.spend` is the one place a release is charged: in one
  transaction it reads what was spent, refuses the release when it would
  exceed the budget (:class:`BudgetExceeded`, nothing written), else
  inserts the spend and its ``privacy_spent`` audit record. On the daemon's
  loop (the one writer) no other spend can come between the check and the
  insert, so two releases can never overspend together.
- Spends are never removed (``privacy_spends`` is one of retention's kept
  tables): a removed spend would refund budget already spent.
- :func:`refusal` is the decision itself, pure: callers that must decide
  before they write (the engine, before it settles an attempt) use it with
  :meth:`Privacy.ledger`.
- Reads return plain dicts.
"""

from __future__ import annotations

import math
from typing import Any

from ..errors import ConflictError, DataError, NotFoundError
from .audit import write_audit
from .db import Database

ROUNDING = 1e-12
"""Relative slack of :func:`fits`: float rounding of the spends only (each spend is a float a few ulps off the
decimal a person wrote; 1e-12 of the budget is thousands of ulps, yet no real release: 1e-10 of an epsilon of 1
is refused once nothing is left)."""


def fits(spent: float, want: float, total: float) -> bool:
    """Whether spending ``want`` on top of ``spent`` stays within ``total``: the sum taken exactly and rounded
    once (:func:`math.fsum`), over the budget by at most :data:`ROUNDING` of it (ten releases of 0.1, three
    of a third of the budget fit it). The one rule of what fits (:func:`refusal`, so every spend)."""
    return math.fsum((spent, want)) <= total + ROUNDING * total


class BudgetExceeded(ConflictError):
    """A release that would spend more than its dataset's remaining privacy budget (exit 5, conflict).

    Its code stays ``conflict``: over the control socket it arrives as a ConflictError.
    """


def subject(dataset: str) -> str:
    """The audit subject of a dataset's ledger: ``privacy:NAME``."""
    return f"privacy:{dataset}"


Budget = tuple[float, float | None]
"""A budget a release declares: ``(epsilon, delta)``; delta None keeps the delta already declared (0 for a new
dataset), so restating the epsilon (``--budget`` alone) never drops a delta budget in silence."""


def declared(ledger: dict[str, Any] | None, budget: Budget) -> tuple[float, float]:
    """``budget`` with its delta filled in: the given one, else the ledger's (0 without a ledger)."""
    delta = budget[1] if budget[1] is not None else (ledger["delta"] if ledger else 0.0)
    return float(budget[0]), float(delta)


def refusal(ledger: dict[str, Any] | None, dataset: str, epsilon: float, delta: float = 0.0,
            budget: Budget | None = None) -> str | None:
    """Why a release of ``(epsilon, delta)`` from ``dataset`` must be refused, or None when it fits.

    ``ledger`` is :meth:`Privacy.ledger`'s dict (None: no budget declared,
    which refuses every release: the safe default). ``budget``: a total
    ``(epsilon, delta)`` the caller is about to declare with the release
    (a task's ``budget`` option; its delta None: the declared one, see
    :func:`declared`): the decision is made against it, and a budget below
    what was already spent is itself a refusal. Pure.
    """
    if budget is not None:
        budget = declared(ledger, budget)
        spent_e = ledger["spent_epsilon"] if ledger else 0.0
        spent_d = ledger["spent_delta"] if ledger else 0.0
        if budget[0] < spent_e or budget[1] < spent_d:
            return (f"the declared privacy budget of dataset {dataset!r} (epsilon {budget[0]:g}, delta {budget[1]:g}) "
                    f"is below what was already spent (epsilon {spent_e:g}, delta {spent_d:g})")
        ledger = {"epsilon": float(budget[0]), "delta": float(budget[1]), "spent_epsilon": spent_e,
                  "spent_delta": spent_d, "remaining_epsilon": budget[0] - spent_e,
                  "remaining_delta": budget[1] - spent_d, "spends": ledger["spends"] if ledger else 0}
    if ledger is None:
        return (f"no privacy budget is declared for dataset {dataset!r}: declare one (the task's budget option, "
                f"or edgeorch profile --budget) before releasing anything")
    for name, want, left, total in (("epsilon", epsilon, ledger["remaining_epsilon"], ledger["epsilon"]),
                                    ("delta", delta, ledger["remaining_delta"], ledger["delta"])):
        # Against what was spent, not what is left: "left" is floored at 0, so any release under the slack fitted
        # a spent budget again and again (50 of 1e-10 after the whole budget); the slack is one, not per release.
        if not fits(ledger["spent_" + name], want, total):
            left = left if left > ROUNDING * total else 0.0  # ten releases of 0.1 left "1.11022e-16 of 1"
            return (f"privacy budget of dataset {dataset!r} exceeded: this release needs {name} {want:g}, "
                    f"{left:g} of {total:g} is left ({ledger['spends']} releases spent "
                    f"{ledger['spent_' + name]:g})")
    return None


def refused(why: str, epsilon: float, delta: float, budget: tuple[float, float] | None = None,
            spent: dict[str, Any] | None = None) -> BudgetExceeded:
    """The error of a :func:`refusal`, naming what is at fault: the declared budget (below what was spent:
    ``budget``, or ``budget_delta`` when only its delta is short of ``spent``, the ledger), the delta or the
    epsilon the release needs (it named ``epsilon`` for all three, with values like 0.39999999999999997 for a
    split's 0.4). ``budget``: as :func:`declared` filled it in."""
    if why.startswith("the declared privacy budget"):
        assert budget is not None
        short_delta = spent is not None and budget[0] >= spent["spent_epsilon"] and budget[1] < spent["spent_delta"]
        return BudgetExceeded(why, field="budget_delta" if short_delta else "budget",
                              value=f"epsilon {budget[0]:g}, delta {budget[1]:g}")
    if "needs delta" in why:
        return BudgetExceeded(why, field="delta", value=float(f"{delta:.12g}"))
    return BudgetExceeded(why, field="epsilon", value=float(f"{epsilon:.12g}"))


class Privacy:
    """``store.privacy``: see the module docstring."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def set_budget(self, dataset: str, epsilon: float, delta: float = 0.0, *, actor: str | None = None) -> dict[str, Any]:
        """Declare or change ``dataset``'s total budget; returns its ledger. One transaction, audited when it changes.

        Raises ConflictError when the new budget is below what was already
        spent, ValueError for a negative or non-finite value.
        """
        for name, v in (("epsilon", epsilon), ("delta", delta)):
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0) or (name == "delta" and v >= 1):
                raise ValueError(f"privacy budget {name} must be a finite number >= 0"
                                 f"{' and < 1' if name == 'delta' else ''}, not {v!r}")
        with self._db.transaction():
            old = self.ledger(dataset)
            if old is not None and (old["epsilon"], old["delta"]) == (float(epsilon), float(delta)):
                return old
            if old is not None and (epsilon < old["spent_epsilon"] or delta < old["spent_delta"]):
                raise ConflictError("a privacy budget cannot be set below what was already spent",
                                    field="budget", value=f"epsilon {epsilon:g}, delta {delta:g}",
                                    expected=f"at least epsilon {old['spent_epsilon']:g}, delta {old['spent_delta']:g}")
            now = self._db.clock()
            self._db.conn.execute(
                "INSERT INTO privacy_budgets (dataset, epsilon, delta, actor, set_at) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (dataset) DO UPDATE SET epsilon = excluded.epsilon, delta = excluded.delta,"
                " actor = excluded.actor, set_at = excluded.set_at",
                (dataset, float(epsilon), float(delta), actor, now))
            write_audit(self._db, actor, "privacy_budget_set", subject(dataset),
                        {"dataset": dataset, "epsilon": float(epsilon), "delta": float(delta),
                         "previous": None if old is None else {"epsilon": old["epsilon"], "delta": old["delta"]}},
                        ts=now)
            ledger = self.ledger(dataset)
            assert ledger is not None
            return ledger

    def spend(self, dataset: str, epsilon: float, delta: float, release: str, *, run_id: int | None = None,
              task: str | None = None, actor: str | None = None) -> dict[str, Any]:
        """Charge one release to ``dataset``'s budget; returns the spend row. One transaction, audited.

        Raises :class:`BudgetExceeded` (nothing written) when the release
        does not fit what is left, or when no budget is declared.
        """
        for name, v, ok, want in (("epsilon", epsilon, lambda x: x > 0, "a number > 0"),
                                  ("delta", delta, lambda x: 0 <= x < 1, "a number >= 0 and < 1")):
            # a negative spend would refund budget: refused before anything is read or written
            if not (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and ok(v)):
                raise DataError("is not a privacy loss a release can spend", field=name, value=v, expected=want)
        with self._db.transaction():
            why = refusal(self.ledger(dataset), dataset, epsilon, delta)
            if why is not None:
                raise refused(why, epsilon, delta)
            now = self._db.clock()
            cur = self._db.conn.execute(
                "INSERT INTO privacy_spends (dataset, epsilon, delta, release, run_id, task, actor, spent_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (dataset, float(epsilon), float(delta), release, run_id, task, actor, now))
            write_audit(self._db, actor, "privacy_spent", subject(dataset),
                        {"dataset": dataset, "epsilon": float(epsilon), "delta": float(delta), "release": release,
                         "run_id": run_id, "task": task}, ts=now)
            return dict(self._db.conn.execute("SELECT * FROM privacy_spends WHERE id = ?",
                                              (cur.lastrowid,)).fetchone())

    def charge(self, dataset: str, epsilon: float, delta: float, release: str, *,
               budget: Budget | None = None, run_id: int | None = None, task: str | None = None,
               actor: str | None = None) -> dict[str, Any]:
        """Declare ``budget`` (when given; its delta None keeps the declared one, :func:`declared`) and
        :meth:`spend`, in one transaction: what every releaser calls (the engine for a task, the daemon's
        ``privacy.spend`` op, ``edgeorch profile --epsilon`` offline). Returns the ledger after the spend, with
        ``previous_budget``: ``{"epsilon", "delta"}`` the budget was before this release changed it, else None
        (the releaser says so: a budget raised by one flag on a release went unsaid). Raises like
        :meth:`set_budget` and :meth:`spend`, writing nothing."""
        with self._db.transaction():
            old = self.ledger(dataset)
            previous = None
            if budget is not None:
                total = declared(old, budget)
                why = refusal(old, dataset, epsilon, delta, budget=total)
                if why is not None:
                    raise refused(why, epsilon, delta, total, old)
                self.set_budget(dataset, total[0], total[1], actor=actor)
                if old is not None and (old["epsilon"], old["delta"]) != total:
                    previous = {"epsilon": old["epsilon"], "delta": old["delta"]}
            self.spend(dataset, epsilon, delta, release, run_id=run_id, task=task, actor=actor)
            ledger = self.ledger(dataset)
            assert ledger is not None
            return {**ledger, "previous_budget": previous}

    def ledger(self, dataset: str) -> dict[str, Any] | None:
        """``dataset``'s budget and what was spent: ``epsilon``, ``delta`` (the budget), ``spent_*``,
        ``remaining_*`` (never below 0), ``spends`` (how many releases), ``set_at``; None without a budget."""
        row = self._db.conn.execute("SELECT * FROM privacy_budgets WHERE dataset = ?", (dataset,)).fetchone()
        if row is None:
            return None
        spends = self._db.conn.execute("SELECT epsilon, delta FROM privacy_spends WHERE dataset = ?",
                                       (dataset,)).fetchall()
        # Summed exactly and rounded once (fsum): SQL's SUM rounds at every addition, and what fits is decided
        # on this sum (fits), to a few ulps.
        n, eps, dlt = len(spends), math.fsum(r[0] for r in spends), math.fsum(r[1] for r in spends)
        out = dict(row)
        out.update({"spent_epsilon": float(eps), "spent_delta": float(dlt), "spends": int(n),
                    "remaining_epsilon": max(out["epsilon"] - float(eps), 0.0),
                    "remaining_delta": max(out["delta"] - float(dlt), 0.0)})
        return out

    def require(self, dataset: str) -> dict[str, Any]:
        """:meth:`ledger`, or NotFoundError naming the datasets that have a budget."""
        ledger = self.ledger(dataset)
        if ledger is None:
            known = self.datasets()
            raise NotFoundError("no privacy budget for this dataset", field="dataset", value=dataset,
                                expected=f"one of {', '.join(known)}" if known else "a dataset with a declared budget")
        return ledger

    def show(self, dataset: str | None = None, *, limit: int = 100) -> dict[str, Any]:
        """What ``edgeorch privacy`` shows (op ``privacy.show``): every ledger (``{"ledgers": [...]}``), or one
        dataset's with its newest ``limit`` spends (``{"ledger": ..., "spends": [...]}``; NotFoundError naming the
        datasets that have a budget)."""
        if dataset is None:
            return {"ledgers": [self.ledger(d) for d in self.datasets()]}
        return {"ledger": self.require(dataset), "spends": self.spends(dataset, limit=limit)}

    def datasets(self) -> list[str]:
        """Every dataset with a budget, by name."""
        return [r[0] for r in self._db.conn.execute("SELECT dataset FROM privacy_budgets ORDER BY dataset")]

    def spends(self, dataset: str, *, limit: int = 100) -> list[dict[str, Any]]:
        """The newest ``limit`` spends of ``dataset``, newest first."""
        return [dict(r) for r in self._db.conn.execute(
            "SELECT * FROM privacy_spends WHERE dataset = ? ORDER BY id DESC LIMIT ?", (dataset, limit))]
