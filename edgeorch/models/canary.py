"""A canary's comparison at the end of its window: pure, over the values observed for each version.

The challenger wins when the mean of its observed ``metric`` is not worse
than the champion's mean by more than ``tolerance`` (``better``: ``lower``
or ``higher``). No observation of the challenger, or of the champion it
must beat, loses: a canary is promoted on evidence, never for lack of it.
"""

from __future__ import annotations

from statistics import fmean
from typing import Any, Sequence


def judge(name: str, version: int, against: int | None, metric: str, better: str, tolerance: float,
          mine: Sequence[float], theirs: Sequence[float], *, batches: int, elapsed: float
          ) -> tuple[str, list[dict[str, Any]], str]:
    """``(passed | failed, conditions, summary)`` of a canary of ``version`` against ``against``."""
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


def _cond(text: str, value: float | None, threshold: float | None, verdict: str, why: str) -> dict[str, Any]:
    return {"condition": text, "value": value, "threshold": threshold, "verdict": verdict, "why": why}
