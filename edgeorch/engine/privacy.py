"""A differentially private release, charged to its dataset's privacy budget as its attempt settles.

A task of a DP kind (``dp_profile``) computes its release in its own process
and puts a ``privacy`` claim in its result document (``dataset``,
``epsilon``, ``delta``, ``budget``, ``release``); nothing of it is recorded
yet. The engine, on its loop (the one writer), then:

1. :func:`decide`: reads the dataset's ledger and refuses the release when
   it would exceed the budget (or none is declared). Nothing can spend
   between this read and the outcome transaction: both run in one step of
   the loop, with no await between them.
2. refused: :func:`withdraw` deletes the result document and the files it
   lists (the release is never published), and the attempt fails with the
   reason, without retry (the same release would be refused again);
3. accepted: :func:`charge` declares the budget the task names (if any)
   and records the spend, inside the attempt's outcome transaction, each
   with its audit record: the spend and the recorded rows commit together.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..store import Store
from ..store.privacy import refusal

log = logging.getLogger("edgeorch.engine")


def claim_of(check: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The ``privacy`` claim of a result document, or None when it makes none.

    A claim that is malformed (no dataset, an epsilon that is not a positive
    number) is returned with ``invalid`` set, so :func:`decide` refuses it.
    """
    claim = (check or {}).get("privacy")
    if claim is None:
        return None
    if not isinstance(claim, Mapping):
        return {"invalid": "the result's privacy claim is not a table"}
    out = dict(claim)
    eps, dlt = out.get("epsilon"), out.get("delta", 0.0)
    if not (isinstance(out.get("dataset"), str) and out["dataset"]):
        out["invalid"] = "the result's privacy claim names no dataset"
    elif not (isinstance(eps, (int, float)) and math.isfinite(eps) and eps > 0):
        out["invalid"] = f"the result's privacy claim has no positive epsilon ({eps!r})"
    elif not (isinstance(dlt, (int, float)) and 0 <= dlt < 1):
        out["invalid"] = f"the result's privacy claim has a bad delta ({dlt!r})"
    return out


def budget_of(claim: Mapping[str, Any]) -> tuple[float, float | None] | None:
    """The ``(epsilon, delta)`` budget a claim declares (``budget``; ``budget_delta``, None when the claim gives
    none: the delta declared before is kept, :func:`edgeorch.store.privacy.declared`), or None."""
    b = claim.get("budget")
    if b is None:
        return None
    d = claim.get("budget_delta")
    return float(b), None if d is None else float(d)


def decide(store: Store, claim: Mapping[str, Any]) -> str | None:
    """Why the claimed release must be refused (the attempt's reason), or None when it fits the budget."""
    if claim.get("invalid"):
        return f"release refused: {claim['invalid']}"
    why = refusal(store.privacy.ledger(claim["dataset"]), claim["dataset"], float(claim["epsilon"]),
                  float(claim.get("delta", 0.0)), budget=budget_of(claim))
    return None if why is None else f"release refused: {why}"


def withdraw(check: Mapping[str, Any] | None, attempt_dir: Path) -> None:
    """Delete a refused release: the attempt's result document and every file it lists in ``outputs``."""
    paths = [attempt_dir / "result.json", *[Path(p) for p in (check or {}).get("outputs", [])
                                               if isinstance(p, str) and os.path.isabs(p)]]
    for path in paths:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:  # the release stays unrecorded; say what could not be removed
            log.warning("could not remove the refused release %s: %s", path, exc)


def charge(store: Store, claim: Mapping[str, Any], *, run_id: int, task: str) -> None:
    """Declare the claimed budget (when given) and record the spend; in the caller's transaction, audited."""
    store.privacy.charge(claim["dataset"], float(claim["epsilon"]), float(claim.get("delta", 0.0)),
                         str(claim.get("release") or "release"), budget=budget_of(claim), run_id=run_id, task=task)
