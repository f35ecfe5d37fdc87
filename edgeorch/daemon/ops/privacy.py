"""Ops ``privacy.show`` and ``privacy.spend``: the privacy budget ledger (docs/privacy.md).

``privacy.spend`` is how a client that computed a differentially private
release (``edgeorch profile --epsilon``) charges it to the dataset's budget
before it shows it: one transaction on the loop (budget declared, spend
recorded, both audited with the peer as actor), or ``budget_exceeded``
with nothing written.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...errors import UsageError
from .base import OpSpec, actor_of, arg

if TYPE_CHECKING:  # pragma: no cover
    from ...control.auth import Peer
    from ...store import Store


class PrivacyOps:
    OPS = (
        OpSpec("privacy.show", "privacy_show", "read",
               "a dataset's privacy budget, what was spent and the newest spends; without a dataset, every ledger",
               args=("dataset", "limit")),
        OpSpec("privacy.spend", "privacy_spend", "act",
               "charge a release to a dataset's privacy budget (declaring the budget when given); refused past it",
               args=("dataset", "epsilon", "delta", "budget", "budget_delta", "release")),
    )

    def __init__(self, *, store: Store) -> None:
        self.store = store

    async def privacy_show(self, args: dict[str, Any], peer: Peer) -> dict[str, Any]:
        dataset = arg(args, "dataset", str, required=False)
        limit = arg(args, "limit", int, required=False, default=100)
        if limit < 1:
            raise UsageError("must be at least 1", field="args.limit", value=limit, expected="a count of 1 or more")
        return self.store.privacy.show(dataset, limit=limit)

    async def privacy_spend(self, args: dict[str, Any], peer: Peer) -> dict[str, Any]:
        dataset = arg(args, "dataset", str)
        if not dataset.strip():  # a ledger named "" (taken before) is no dataset's
            raise UsageError("is empty", field="args.dataset", expected="the name of the dataset released from")
        epsilon = float(arg(args, "epsilon", (int, float)))
        delta = float(arg(args, "delta", (int, float), required=False, default=0.0))
        budget = arg(args, "budget", (int, float), required=False)
        budget_delta = arg(args, "budget_delta", (int, float), required=False)  # None: the declared one is kept
        release = arg(args, "release", str)
        ledger = self.store.privacy.charge(dataset, epsilon, delta, release, actor=actor_of(peer),
                                           budget=None if budget is None else (
                                               float(budget), None if budget_delta is None else float(budget_delta)))
        return {"ledger": ledger}
