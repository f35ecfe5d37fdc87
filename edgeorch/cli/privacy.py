"""Charging a release computed on the command line (``edgeorch profile --epsilon``) to its privacy budget.

The kernels' ``profile`` command computes the differentially private
release in its own process and calls :func:`spend` before it shows anything
(``cli/main.py`` hands this function to the kernels' commands: they sit in a
lower layer and do not import the CLI). The spend goes where every write
goes (:mod:`.backend`): to the daemon's ``privacy.spend`` op when one runs,
else straight to the state file under the state directory's lock. Either
way it is one audited transaction, or a ConflictError (exit 5) when the
release does not fit the budget, and then the release is dropped unseen.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from .backend import connect, load
from .commands.runs import (
    _actor,  # the one rule for how this CLI's user is recorded as an actor
)


def spend(args: argparse.Namespace, claim: Mapping[str, Any]) -> dict[str, Any]:
    """Charge ``claim`` (``dataset``, ``epsilon``, ``delta``, ``budget``, ``release``); returns the ledger after it."""
    from ..engine.privacy import budget_of

    cfg = load(args)
    budget = claim.get("budget")
    with connect(cfg, "prefer") as backend:
        if backend.online:
            return backend.client.call("privacy.spend", {
                "dataset": claim["dataset"], "epsilon": claim["epsilon"], "delta": claim.get("delta", 0.0),
                "release": claim["release"], **({"budget": budget} if budget is not None else {}),
                **({"budget_delta": claim["budget_delta"]} if claim.get("budget_delta") is not None else {})})["ledger"]
        lock = backend.state_lock()
        try:
            store = backend.open_store(readonly=False)
            assert store is not None
            try:
                return store.privacy.charge(claim["dataset"], float(claim["epsilon"]), float(claim.get("delta", 0.0)),
                                            str(claim["release"]), actor=_actor(),
                                            budget=budget_of(claim))
            finally:
                store.close()
        finally:
            lock.release()
