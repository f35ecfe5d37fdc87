"""A model version's explanations: the permutation importances of the ``explain`` tasks its registering task needs.

An ``explain`` task is a check task like any other (its rows land in the
version's ``checks``), but a check row keeps only ``metric``/``value``/
``verdict``/``column``; the confidence interval, rank and SHAP value live
in the row's ``details``. :func:`explanation_of` turns the task's result
rows into the ``explanation`` recorded under ``checks.TASK`` (in the
registration's transaction, so a version never exists without it), and
:func:`explanations_of` reads them back for ``edgeorch models show NAME
VERSION``. Pure: no store, no I/O.

Contract: features ordered by rank (1 = most important); ``ci_low``/
``ci_high`` None when the task ran a single repeat; ``shap`` only when the
task computed it. Rows of any other metric are ignored.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

EXPLAIN_KIND = "explain"
METRIC = "permutation_importance"
TOP = 10
"""How many features the human table of ``models show NAME VERSION`` prints (``--json`` has them all)."""


def explanation_of(rows: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """``{"metric": "permutation_importance", "features": [...]}`` from an explain task's result rows.

    Each feature: ``feature``, ``importance``, ``ci_low``, ``ci_high``,
    ``std``, ``rank`` and ``shap`` when present; sorted by rank, then by
    importance (highest first) for rows without a rank.
    """
    features = []
    for r in rows:
        if r.get("metric") != METRIC:
            continue
        d = r.get("details") or {}
        f = {"feature": r.get("column_name", r.get("column")), "importance": r.get("value"),
             "ci_low": d.get("ci_low"), "ci_high": d.get("ci_high"), "std": d.get("std"), "rank": d.get("rank")}
        if d.get("shap") is not None:
            f["shap"] = d["shap"]
        features.append(f)
    features.sort(key=lambda f: (f["rank"] if isinstance(f["rank"], int) else 1 << 30,
                                 -(f["importance"] if isinstance(f["importance"], (int, float)) else 0.0)))
    return {"metric": METRIC, "features": features}


def explanations_of(checks: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    """Task -> explanation, for every check of a version that recorded one (an older version: none)."""
    return {t: c["explanation"] for t, c in sorted((checks or {}).items())
            if isinstance(c, Mapping) and isinstance(c.get("explanation"), Mapping)}
