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


def test_an_exhausted_budget_refuses_even_a_tiny_release_but_rounding_fits(store) -> None:
    """Found by a tester: a relative slack of 1e-9 took a release of 1e-10 after the whole budget (spent
    1.0000000001 of 1). The slack is for float rounding only."""
    store.privacy.charge("bud", 0.5, 0.0, "r1", budget=(1.0, 0.0))
    store.privacy.spend("bud", 0.5, 0.0, "r2")
    with pytest.raises(BudgetExceeded) as err:
        store.privacy.spend("bud", 1e-10, 0.0, "r3")
    assert err.value.field == "epsilon"
    assert store.privacy.ledger("bud")["spent_epsilon"] <= 1.0
    store.privacy.charge("tenths", 0.1, 0.0, "r0", budget=(1.0, 0.0))
    for i in range(9):  # ten of 0.1 are the whole budget, a few ulps over as floats
        store.privacy.spend("tenths", 0.1, 0.0, f"r{i + 1}")
    store.privacy.charge("thirds", 1 / 3, 0.0, "t0", budget=(1.0, 0.0))
    store.privacy.spend("thirds", 1 / 3, 0.0, "t1")
    store.privacy.spend("thirds", 1 / 3, 0.0, "t2")
    with pytest.raises(BudgetExceeded):
        store.privacy.spend("thirds", 1e-11, 0.0, "t3")


def test_restating_the_epsilon_budget_keeps_the_delta_budget(store) -> None:
    """Found by a tester: `--budget 1` alone after `--budget 1 --budget-delta 1e-5` set delta to 0 (or was
    refused, naming the epsilon budget, once delta had been spent). A delta of None keeps the declared one."""
    store.privacy.charge("d1", 0.01, 1e-6, "r1", budget=(1.0, 1e-5))
    ledger = store.privacy.charge("d1", 0.01, 0.0, "r2", budget=(1.0, None))
    assert (ledger["epsilon"], ledger["delta"]) == (1.0, 1e-5) and ledger["previous_budget"] is None
    assert store.privacy.charge("new", 0.01, 0.0, "r", budget=(1.0, None))["delta"] == 0.0
    with pytest.raises(BudgetExceeded) as err:  # a delta budget below what was spent names the delta budget
        store.privacy.charge("d1", 0.01, 0.0, "r3", budget=(1.0, 0.0))
    assert err.value.field == "budget_delta"


def test_a_release_that_changes_the_budget_returns_the_previous_one(store) -> None:
    """Found by a tester: `--budget 2` on a release raised a spent budget of 1 without a word."""
    assert store.privacy.charge("p", 1.0, 0.0, "r1", budget=(1.0, 0.0))["previous_budget"] is None
    ledger = store.privacy.charge("p", 0.1, 0.0, "r2", budget=(2.0, None))
    assert ledger["previous_budget"] == {"epsilon": 1.0, "delta": 0.0} and ledger["epsilon"] == 2.0
    assert store.privacy.charge("p", 0.1, 0.0, "r3", budget=(2.0, None))["previous_budget"] is None
