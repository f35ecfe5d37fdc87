"""Correlation matrices: Pearson and Spearman between numeric columns, Cramér's V between categorical ones.

- :func:`pearson`: pairwise-complete Pearson correlation (rows where both
  values are finite), as ``pandas.DataFrame.corr()``; compiled, one pair per
  parallel iteration.
- :func:`spearman`: Pearson correlation of the columns' average ranks (ties
  share their mean rank). With no missing value it is
  ``scipy.stats.spearmanr``; with missing values each column is ranked over
  its own finite values before the pairwise-complete Pearson (pandas ranks
  over the pair's common rows instead: the two differ slightly then).
- :func:`cramers_v`: ``sqrt(chi2 / (n * (min(r, c) - 1)))`` of each pair's
  contingency table (missing values left out), without bias correction, as
  ``scipy.stats.contingency.association(method="cramer")``; 1 on the
  diagonal, NaN when a column has a single category on the pair's rows.

Inputs are a mapping of column name to values; results are
:class:`Correlations` (names and a k x k matrix).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import DataError
from . import _jit


@dataclass
class Correlations:
    """A symmetric matrix of one measure (``pearson``, ``spearman``, ``cramers_v``) between named columns."""

    method: str
    names: list[str]
    matrix: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        """``{"method", "columns", "matrix"}`` with None for undefined cells (strict JSON)."""
        return {"method": self.method, "columns": list(self.names),
                "matrix": [[None if not np.isfinite(v) else float(v) for v in row] for row in self.matrix]}


def _numeric_matrix(columns: Mapping[str, Any]) -> tuple[list[str], np.ndarray]:
    names = list(columns)
    if not names:
        return [], np.zeros((0, 0))
    cols = []
    for name in names:
        try:
            cols.append(np.asarray(columns[name], dtype=np.float64))
        except (TypeError, ValueError):
            raise DataError("a column for Pearson/Spearman is not numeric", field=name) from None
    n = {c.shape[0] for c in cols}
    if len(n) != 1:
        raise DataError("columns differ in length", value=sorted(n))
    return names, np.ascontiguousarray(np.column_stack(cols))


def pearson(columns: Mapping[str, Any]) -> Correlations:
    """Pairwise-complete Pearson correlations of numeric columns (see the module docstring)."""
    names, x = _numeric_matrix(columns)
    return Correlations("pearson", names, _jit.pearson_pairs(x) if names else x)


def _average_ranks(col: np.ndarray) -> np.ndarray:
    """1-based average ranks of the finite values (ties share their mean rank); NaN elsewhere."""
    out = np.full(col.shape, np.nan)
    ok = np.isfinite(col)
    vals = col[ok]
    if vals.size == 0:
        return out
    order = np.argsort(vals, kind="mergesort")
    sorted_vals = vals[order]
    # boundaries of runs of equal values -> mean rank of each run
    starts = np.flatnonzero(np.concatenate([[True], sorted_vals[1:] != sorted_vals[:-1]]))
    ends = np.concatenate([starts[1:], [vals.size]])
    mean_rank = (starts + ends + 1) / 2.0
    ranks = np.empty(vals.size)
    ranks[order] = np.repeat(mean_rank, ends - starts)
    out[ok] = ranks
    return out


def spearman(columns: Mapping[str, Any]) -> Correlations:
    """Spearman rank correlations of numeric columns (see the module docstring)."""
    names, x = _numeric_matrix(columns)
    if not names:
        return Correlations("spearman", names, x)
    ranks = np.ascontiguousarray(np.column_stack([_average_ranks(x[:, j]) for j in range(x.shape[1])]))
    return Correlations("spearman", names, _jit.pearson_pairs(ranks))


def _codes(values: Sequence[Any]) -> tuple[np.ndarray, int]:
    keys = [None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v) for v in values]
    uniq = sorted({k for k in keys if k is not None})
    pos = {k: i for i, k in enumerate(uniq)}
    return np.fromiter((pos[k] if k is not None else -1 for k in keys), dtype=np.int64, count=len(keys)), len(uniq)


def cramers_v(columns: Mapping[str, Iterable[Any]]) -> Correlations:
    """Cramér's V between categorical columns (see the module docstring)."""
    names = list(columns)
    coded = [_codes(list(columns[n])) for n in names]
    if len({c.shape[0] for c, _ in coded}) > 1:
        raise DataError("columns differ in length")
    k = len(names)
    out = np.full((k, k), np.nan)
    for i in range(k):
        for j in range(i, k):
            (a, ka), (b, kb) = coded[i], coded[j]
            if ka == 0 or kb == 0:
                continue
            table = _jit.contingency(a, b, ka, kb)
            table = table[table.sum(axis=1) > 0][:, table.sum(axis=0) > 0]
            r, c = table.shape
            n = table.sum()
            if min(r, c) < 2 or n == 0:
                continue
            expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / n
            chi2 = float(((table - expected) ** 2 / expected).sum())
            out[i, j] = out[j, i] = min(1.0, float(np.sqrt(chi2 / (n * (min(r, c) - 1)))))
    return Correlations("cramers_v", names, out)
