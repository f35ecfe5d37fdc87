"""(epsilon, delta)-DP releases: OpenDP's Gaussian mechanism, delta spent and budgeted in the ledger, bad deltas."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from edgeorch.errors import DataError
from edgeorch.store import Store
from edgeorch.store.privacy import BudgetExceeded

pytest.importorskip("opendp", reason="the optional dp extra (OpenDP) is not installed")

from edgeorch.kernels.privacy import dp_count, dp_profile  # noqa: E402


def test_a_profile_with_delta_splits_epsilon_and_delta_over_its_measurements() -> None:
    data = {"age": np.arange(300.0) % 90, "city": ["a", "b", "c"] * 100}
    p = dp_profile(data, epsilon=1.0, delta=1e-6, bounds={"age": [0, 100]}, categories={"city": ["a", "b"]})
    assert len(p.measurements) == 5  # rows; age count, sum, histogram; city histogram
    assert all(m.delta == pytest.approx(2e-7) and m.epsilon <= 0.2 * (1 + 1e-9) for m in p.measurements)
    assert p.spent == pytest.approx(1.0) and p.spent_delta == pytest.approx(1e-6)
    doc = p.to_dict()
    assert doc["summary"]["delta"] == pytest.approx(1e-6) and "delta 1e-06" in doc["message"]
    assert abs(dp_count(range(10_000), epsilon=50.0, delta=1e-6) - 10_000) < 50  # Gaussian noise, small here


@pytest.mark.parametrize("delta", [-0.1, 1.0, 2, float("nan"), "small", True])
def test_a_bad_delta_is_a_data_error_naming_delta(delta) -> None:
    with pytest.raises(DataError) as err:
        dp_profile({"x": [1.0, 2.0]}, epsilon=1.0, delta=delta, bounds={"x": [0, 3]})
    assert err.value.field == "delta" and ">= 0 and < 1" in str(err.value)


def test_the_ledger_adds_delta_spends_and_refuses_past_the_delta_budget(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.db")
    try:
        store.privacy.charge("d", 0.1, 4e-7, "one", budget=(10.0, 1e-6))
        store.privacy.spend("d", 0.1, 4e-7, "two")
        ledger = store.privacy.ledger("d")
        assert ledger["spent_delta"] == pytest.approx(8e-7) and ledger["remaining_delta"] == pytest.approx(2e-7)
        with pytest.raises(BudgetExceeded) as err:  # epsilon is plenty; delta is not
            store.privacy.spend("d", 0.1, 4e-7, "three")
        assert err.value.field == "delta" and "needs delta 4e-07" in str(err.value)
        store.privacy.spend("d", 0.1, 2e-7, "exactly the rest")
        with pytest.raises(DataError) as bad:  # a negative spend would refund budget
            store.privacy.spend("d", 0.1, -1e-7, "refund")
        assert bad.value.field == "delta"
        assert store.privacy.ledger("d")["spends"] == 3
        with pytest.raises(BudgetExceeded):  # a pure-DP budget (delta 0) refuses any delta
            store.privacy.charge("e", 0.1, 1e-9, "approx", budget=(1.0, 0.0))
    finally:
        store.close()


def test_cli_profile_delta_charges_delta_and_bad_values_name_the_flag(tmp_path: Path, cli_in_process) -> None:
    (tmp_path / "config.toml").write_text(f'[state]\ndir = "{tmp_path / "var"}"\n')
    (tmp_path / "people.csv").write_text("age\n" + "".join(f"{20 + i % 50}\n" for i in range(200)))

    def profile(*extra: str) -> subprocess.CompletedProcess[str]:
        # In this process (a fresh interpreter would pay ~2 s of imports and numba start-up per call).
        with pytest.MonkeyPatch.context() as mp:
            mp.chdir(tmp_path)
            return cli_in_process(["profile", "people.csv", "--config", "config.toml",
                               "--dataset", "people", "--bounds", "age=0:100", "--epsilon", "0.5", *extra], dict(os.environ))

    ok = profile("--delta", "1e-6", "--budget", "2", "--budget-delta", "1.5e-6", "--json")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["summary"]["remaining_delta"] == pytest.approx(5e-7)
    over = profile("--delta", "1e-6")
    assert over.returncode == 5 and "delta" in over.stderr and over.stdout == ""
    bad = profile("--delta", "1.5")
    assert bad.returncode == 2 and "--delta" in bad.stderr and ">= 0 and < 1" in bad.stderr
