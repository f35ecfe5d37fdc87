"""A refused private release names what is at fault, with values as a person wrote them.

Found by a data user: a budget declared below what was spent, and a release short of delta, were both said
against ``epsilon`` (found 0.09999999999999999); after ten releases of 0.1 the ledger said "epsilon 1.11022e-16 of
1 left".
"""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeorch.store import Store
from edgeorch.store.privacy import BudgetExceeded


@pytest.fixture
def store(tmp_path: Path):
    s = Store(tmp_path / "edgeorch.db")
    yield s
    s.close()


def test_a_budget_below_what_was_spent_names_the_budget(store) -> None:
    store.privacy.charge("d", 0.8, 0.0, "r1", budget=(1.0, 0.0))
    with pytest.raises(BudgetExceeded) as err:
        store.privacy.charge("d", 0.1, 0.0, "r2", budget=(0.5, 0.0))
    assert err.value.field == "budget" and err.value.value == "epsilon 0.5, delta 0"


def test_a_release_short_of_delta_names_delta(store) -> None:
    store.privacy.charge("d", 0.1, 9e-6, "r1", budget=(5.0, 1e-5))
    with pytest.raises(BudgetExceeded) as err:
        store.privacy.spend("d", 0.1 + 0.2 - 0.2, 3e-6, "r2")
    assert err.value.field == "delta" and err.value.value == 3e-6


def test_what_is_left_after_float_sums_reads_as_zero_and_values_as_written(store) -> None:
    store.privacy.charge("d", 0.1, 0.0, "r0", budget=(1.0, 0.0))
    for i in range(1, 10):
        store.privacy.spend("d", 0.1, 0.0, f"r{i}")
    with pytest.raises(BudgetExceeded) as err:
        store.privacy.spend("d", 0.1 + 0.2 - 0.2, 0.0, "r10")  # 0.10000000000000003
    assert err.value.field == "epsilon" and err.value.value == 0.1
    assert "needs epsilon 0.1, 0 of 1 is left" in err.value.message, err.value.message
