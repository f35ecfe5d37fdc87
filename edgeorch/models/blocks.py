"""Promotion blocks: the one rule that says whether a model's version may move forward now.

A block (a ``model_blocks`` row, :mod:`edgeorch.store.models`) is set by a
monitoring rule's ``block_promotions`` response (docs/monitoring.md) and is in
force until the rule resolves, until its ``until`` passes, or until a person
lifts it (``edgeorch models unblock NAME``). While one is in force every
forward move of the model is refused, whoever asks:

- a person's or script's promotion (``edgeorch models promote``, the
  ``models.promote`` op): :meth:`ModelService.promote` refuses it before
  anything is recorded (:class:`PromotionBlocked`, a conflict: exit 5);
- a pipeline's automatic promotion of a registered version, a canary start
  and a canary's promotion after its window (the gate's verdict): the queued
  deployment is ``undone`` when it starts, its outcome naming the rule, and
  the version gets a ``block`` decision (``edgeorch models why``).

Rollbacks and the end of a canary are never blocked: moving back is what a
degraded model needs. :data:`FORWARD_ACTIONS` is the list; :func:`check` is
the one function the service and the deployer call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import ConflictError

if TYPE_CHECKING:  # pragma: no cover
    from ..store import Store

FORWARD_ACTIONS = ("promote", "canary_start", "canary_promote")
"""Deployment actions a block refuses (a rollback, ``auto_rollback`` and ``canary_end`` go through)."""


class PromotionBlocked(ConflictError):
    """Promotions of a model are blocked; the message names each block's rule (or person), reason and end."""

    def __init__(self, model: str, blocks: list[dict[str, Any]]) -> None:
        self.model = model
        self.blocks = blocks
        super().__init__(f"promotions of {model} are blocked " + "; and ".join(describe(b) for b in blocks),
                         hint=f"edgeorch models show {model} lists the blocks; edgeorch models "
                                           f"unblock {model} lifts them")


def describe(block: dict[str, Any]) -> str:
    """One block in words: ``by rule champion_degraded (rmse of champion > 40, value 52) until it resolves``."""
    by = f"by rule {block['rule']}" if block.get("rule") else f"by {block.get('actor') or 'someone'}"
    end = (f"until {_iso(block['until'])}" if block.get("until") is not None else
           "until the rule resolves" if block.get("rule") else "until unblocked")
    return f"{by} ({block['reason']}) {end}"


def check(store: "Store", model: str, *, action: str = "promote", now: float | None = None) -> None:
    """Raise :class:`PromotionBlocked` when ``action`` (a deployment action) would move ``model`` forward while
    a block is in force at ``now`` (default: the store's clock); return quietly otherwise."""
    if action not in FORWARD_ACTIONS:
        return
    blocks = store.models.blocks(model, now=now)
    if blocks:
        raise PromotionBlocked(model, blocks)


def _iso(ts: float) -> str:
    import datetime as _dt

    return _dt.datetime.fromtimestamp(ts, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
