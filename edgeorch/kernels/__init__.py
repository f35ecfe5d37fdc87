"""Kernels: data profiling, drift detection and fairness metrics.

The public API (docs/kernels.md) is loaded lazily (PEP 562): importing
``edgeorch.kernels`` or ``edgeorch.kernels.kinds`` costs nothing, and numba
is imported (and its cache consulted, from ``NUMBA_CACHE_DIR``) only when a
function that needs it is first used. The daemon validates pipeline options
without ever loading numba.
"""

from __future__ import annotations

import importlib
from typing import Any

# public name -> submodule that defines it
_EXPORTS: dict[str, str] = {
    # profiles
    "profile": "profiling",
    "merge_profiles": "profiling",
    "Profile": "profiling",
    "ColumnProfile": "profiling",
    # two-sample statistics and drift
    "ks_2samp": "stats",
    "KSResult": "stats",
    "wasserstein_distance": "stats",
    "jensen_shannon": "stats",
    "psi": "stats",
    "hellinger": "stats",
    "chi_square": "stats",
    "z_test": "stats",
    "column_drift": "drift",
    "dataset_drift": "drift",
    "drift_from_profile": "drift",
    "ColumnDrift": "drift",
    "DatasetDrift": "drift",
    # fairness
    "selection_rate": "fairness",
    "selection_rates": "fairness",
    "demographic_parity_difference": "fairness",
    "demographic_parity_ratio": "fairness",
    "equalized_odds_difference": "fairness",
    "equalized_odds_ratio": "fairness",
    "equal_opportunity_difference": "fairness",
    "equal_opportunity_ratio": "fairness",
    "disparate_impact": "fairness",
    "four_fifths_rule": "fairness",
    "fairness_report": "fairness",
    "FairnessReport": "fairness",
    # explanations
    "permutation_importance": "explain",
    "shap_importance": "explain",
    "Explanation": "explain",
    # (differential privacy: import from edgeorch.kernels.privacy, docs/privacy.md; the dp extra)
    # correlation matrices
    "pearson": "correlations",
    "spearman": "correlations",
    "cramers_v": "correlations",
    # validation and I/O
    "validate": "validation",
    "read_table": "io",
    "read_batches": "io",
    # pipeline tasks
    "run_task": "kinds",
    "check_options": "kinds",
    "kind_names": "kinds",
    "get_kind": "kinds",
    "register_kind": "kinds",
    "Kind": "kinds",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'edgeorch.kernels' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
