"""The package's public surface: what ``edgeorch.resources`` promises is importable and documented."""

from __future__ import annotations

import edgeorch.resources as res


def test_every_exported_name_exists_and_is_documented() -> None:
    for name in res.__all__:
        obj = getattr(res, name)
        if callable(obj):
            assert obj.__doc__, f"{name} has no docstring"


def test_engine_entry_points_are_exported() -> None:
    for name in ("open_gpu_backend", "read_inventory", "never_satisfiable", "decide", "ReadyQueue", "lease_env",
                 "apply_affinity", "check_budgets", "drains_from_events", "Lease", "ResourceRequest"):
        assert name in res.__all__
