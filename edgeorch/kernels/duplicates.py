"""Duplicate rows of a table: how many, and the most repeated ones.

A row is a duplicate when every column holds the same value as an earlier
row (missing equals missing, NaN equals NaN: rows are compared as their
values' text, per column codes). Works on what is given: the profile report
passes the first ``sample_rows`` rows of a file and says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np


def _codes(values: Any) -> np.ndarray:
    arr = np.asarray(values, dtype=object)
    text = np.array(["\x00" if v is None else repr(v) if isinstance(v, float) else str(v) for v in arr], dtype=object)
    _, inverse = np.unique(text, return_inverse=True)
    return inverse.astype(np.int64).ravel()


def duplicate_rows(columns: Mapping[str, Any], *, top: int = 10, sampled: bool = False) -> dict[str, Any]:
    """``{"rows", "duplicate_rows", "distinct_rows", "sampled", "top": [{"row": {...}, "count": n}]}``.

    ``duplicate_rows`` counts every row that repeats an earlier one;
    ``top`` lists the ``top`` most repeated rows (count >= 2) with their
    values. An empty table has no duplicates.
    """
    names = list(columns)
    n = len(next(iter(columns.values()))) if names else 0
    if n == 0:
        return {"rows": 0, "duplicate_rows": 0, "distinct_rows": 0, "sampled": sampled, "top": []}
    keys = np.column_stack([_codes(columns[c]) for c in names])
    uniq, first, counts = np.unique(keys, axis=0, return_index=True, return_counts=True)
    order = np.argsort(-counts, kind="stable")
    top_rows = []
    for g in order[:top]:
        if counts[g] < 2:
            break
        i = int(first[g])
        top_rows.append({"row": {c: _plain(np.asarray(columns[c], dtype=object)[i]) for c in names},
                         "count": int(counts[g])})
    return {"rows": n, "duplicate_rows": int(n - len(uniq)), "distinct_rows": len(uniq), "sampled": sampled,
            "top": top_rows}


def _plain(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v
