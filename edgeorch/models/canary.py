"""A canary's comparison at the end of its window: pure, over the values observed for each version.

The challenger wins when the mean of its observed ``metric`` is not worse
than the champion's mean by more than ``tolerance`` (``better``: ``lower``
or ``higher``). No observation of the challenger, or of the champion it
must beat, loses: a canary is promoted on evidence, never for lack of it.
"""

from __future__ import annotations

from typing import Any, Sequence


def judge(name: str, version: int, against: int | None, metric: str, better: str, tolerance: float,
          mine: Sequence[float], theirs: Sequence[float], *, batches: int, elapsed: float
          ) -> tuple[str, list[dict[str, Any]], str]:
    """``(passed | failed, conditions, summary)`` of a canary of ``version`` against ``against``."""
    from statistics import fmean  # here: this module's names are read by every deployment, `statistics` by a canary

    window = f"after {batches} batch(es) in {elapsed:.0f}s"
    op = "<=" if better == "lower" else ">="
    text = (f"mean {metric} of version {version} {op} mean {metric} of version {against}"
            + (f" {'+' if better == 'lower' else '-'} {tolerance:g}" if tolerance else ""))
    if not mine:
        why = f"version {version} reported no {metric} during its window"
        return "failed", [_cond(text, None, None, "failed", why)], f"canary of {name} version {version} lost {window}: {why}"
    if against is None or not theirs:
        why = ("there is no champion to compare with" if against is None else
               f"version {against} reported no {metric} during the window, so there is nothing to compare with")
        return "failed", [_cond(text, fmean(mine), None, "failed", why)], \
            f"canary of {name} version {version} lost {window}: {why}"
    a, b = fmean(mine), fmean(theirs)
    limit = b + tolerance if better == "lower" else b - tolerance
    ok = a <= limit if better == "lower" else a >= limit
    why = (f"mean {metric} {a:.6g} over {len(mine)} value(s) against {b:.6g} over {len(theirs)}; "
           f"it had to be {'at most' if better == 'lower' else 'at least'} {limit:.6g}")
    verdict = "passed" if ok else "failed"
    summary = (f"canary of {name} version {version} {'won' if ok else 'lost'} against version {against} "
               f"{window}: {why}")
    return verdict, [_cond(text, a, limit, verdict, why)], summary


WON = "the canary was promoted"
"""The reason a won canary's end (``canary_end``) is queued with; what its alias move says is :func:`end_reason`."""


def end_reason(promotion: dict[str, Any] | None) -> str:
    """What the end of a canary that won says, from its promotion's deployment (``canary_promote``, None: not
    found) as it stands when the canary alias is removed: :data:`WON` when the promotion succeeded (or cannot be
    found), else what became of it: ``the canary won; its promotion was rolled back (the health check failed after
    the switch)``. Said by the promotion's outcome up to its first ':' (the failed step, without the command)."""
    if promotion is None or promotion["state"] == "succeeded":
        return WON
    became = {"rolled_back": "was rolled back", "undone": "was undone", "failed": "failed"}.get(
        promotion["state"], f"is {promotion['state']}")
    why = str(promotion.get("outcome") or "").split(":", 1)[0].split(";", 1)[0].strip()
    return f"the canary won; its promotion {became}" + (f" ({why})" if why else "")


def _cond(text: str, value: float | None, threshold: float | None, verdict: str, why: str) -> dict[str, Any]:
    return {"condition": text, "value": value, "threshold": threshold, "verdict": verdict, "why": why}
