"""Differentially private releases (OpenDP): accuracy at large epsilon, composition, declared bounds; the CLI's ledger."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgeorch.config import load_config
from edgeorch.errors import DataError, MissingDependencyError, UsageError
from edgeorch.store import Store

pytest.importorskip("opendp", reason="the optional dp extra (OpenDP) is not installed")

from edgeorch.kernels.privacy import (  # noqa: E402
    OTHER,
    dp_count,
    dp_histogram,
    dp_mean,
    dp_profile,
    dp_quantiles,
    dp_sum,
    quantiles_from_histogram,
)


@pytest.fixture(scope="module")
def ages() -> np.ndarray:
    return np.random.default_rng(11).normal(40, 8, 20_000)


def test_releases_approach_the_truth_at_large_epsilon(ages: np.ndarray) -> None:
    # Noise scale ~ range / (n * epsilon): at epsilon 20 the mean of 20 000 values is within a few hundredths.
    assert dp_mean(ages, epsilon=20, bounds=(0, 100)) == pytest.approx(ages.mean(), abs=0.05)
    (median,) = dp_quantiles(ages, [0.5], epsilon=20, bounds=(0, 100), candidates=201)
    assert median == pytest.approx(np.median(ages), abs=1.0)  # the grid's step is 0.5
    labels, counts = dp_histogram(["a"] * 500 + ["b"] * 300 + ["zzz"] * 50, epsilon=20, categories=["a", "b"])
    assert labels == ["a", "b", OTHER] and counts == pytest.approx([500, 300, 50], abs=5)


def test_a_profile_splits_epsilon_over_its_measurements_and_releases_only_declared_columns(ages: np.ndarray) -> None:
    data = {"age": ages[:2000], "city": ["x", "y"] * 1000, "secret": np.arange(2000.0)}
    p = dp_profile(data, epsilon=1.0, bounds={"age": [0, 100]}, categories={"city": ["x", "y"]})
    assert [c["column"] for c in p.columns] == ["age", "city"]
    assert p.skipped == {"secret": "no declared bounds"}
    assert len(p.measurements) == 1 + 3 + 1 and p.spent == pytest.approx(1.0)
    assert all(m.epsilon == pytest.approx(0.2) for m in p.measurements)
    age = p.columns[0]
    assert 0 <= age["quantiles"]["p25"] <= age["quantiles"]["p50"] <= age["quantiles"]["p75"] <= 100
    doc = p.to_dict()
    assert doc["summary"]["epsilon"] == pytest.approx(1.0) and doc["rows"][0]["metric"] == "dp_profile"
    assert "not released (no bounds or categories declared for them): secret" in doc["message"]
    assert f"the row count (noisy: {doc['summary']['rows']})" in doc["message"]  # a release too: said


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"epsilon": 0}, "epsilon"), ({"epsilon": float("nan")}, "epsilon"), ({"contributions": 0}, "contributions"),
    ({"bounds": {"nope": [0, 1]}}, "bounds.nope"), ({"bounds": {"age": [5, 5]}}, "bounds.age"),
    ({"bounds": {"city": [0, 1]}}, "bounds.city")])
def test_bad_privacy_parameters_are_data_errors(kwargs: dict, field: str) -> None:
    args = {"epsilon": 1.0, **kwargs}
    with pytest.raises(DataError) as exc:
        dp_profile({"age": [1.0, 2.0], "city": ["a", "b"]}, **args)
    assert exc.value.field == field


def test_quantiles_from_a_histogram_are_post_processing() -> None:
    assert quantiles_from_histogram([0, 1, 2], [10, 10], [0.25, 0.5, 1.0]) == [0.5, 1.0, 2.0]
    assert quantiles_from_histogram([0, 1, 2], [0, 0], [0.5]) == [None]


def test_without_opendp_the_error_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opendp.prelude", None)
    with pytest.raises(MissingDependencyError) as exc:
        dp_mean([1.0], epsilon=1, bounds=(0, 2))
    assert "edgeorch[dp]" in str(exc.value)


def test_cli_charges_each_release_and_refuses_the_one_past_the_budget(tmp_path: Path, cli_in_process) -> None:
    (tmp_path / "config.toml").write_text(f'[state]\ndir = "{tmp_path / "var"}"\n')
    (tmp_path / "people.csv").write_text("age,city\n" + "".join(f"{20 + i % 50},{'ab'[i % 2]}\n" for i in range(400)))

    def profile(*extra: str) -> subprocess.CompletedProcess[str]:
        # In this process (a fresh interpreter would pay ~2 s of imports and numba start-up per call).
        with pytest.MonkeyPatch.context() as mp:
            mp.chdir(tmp_path)
            return cli_in_process(["profile", "people.csv", "--config", "config.toml",
                               "--dataset", "people", "--bounds", "age=0:100", *extra], dict(os.environ))

    first = profile("--epsilon", "0.7", "--budget", "1", "--json", "--html", "dp.html")
    assert first.returncode == 0, first.stderr
    doc = json.loads(first.stdout)
    assert doc["summary"]["remaining_epsilon"] == pytest.approx(0.3) and (tmp_path / "dp.html").exists()
    second = profile("--epsilon", "0.5", "--html", "refused.html")
    assert second.returncode == 5 and "exceeded" in second.stderr and second.stdout == ""
    assert not (tmp_path / "refused.html").exists()
    bad = profile("--epsilon", "0.1", "--bounds", "age=zero:100")
    assert bad.returncode == 2 and "--bounds" in bad.stderr
    store = Store(load_config(tmp_path / "config.toml").state_file, readonly=True)
    try:
        assert store.privacy.ledger("people")["spends"] == 1
        assert [r["action"] for r in store.audit.records()][-2:] == ["privacy_budget_set", "privacy_spent"]
    finally:
        store.close()


@pytest.mark.parametrize("call", [lambda x: dp_sum(x, epsilon=0.1, bounds=(0, 1e20)),
                                  lambda x: dp_count(x, epsilon=1e-300)])
def test_noise_no_scale_can_represent_is_a_usage_error_not_an_opendp_crash(ages: np.ndarray, call) -> None:
    """Bounds about 1e15 wide, or epsilon 1e-300, ended with OpenDPException ("scale (-10120112665...[~300
    digits]) must not be negative"), exit 70."""
    with pytest.raises(UsageError) as err:
        call(ages)
    e = err.value
    assert e.field == "epsilon" and "no noise scale OpenDP can represent" in e.message
    assert "narrower bounds" in (e.expected or "") and len(e.render()) < 600


@pytest.fixture
def dp_cli(tmp_path: Path, cli_in_process):
    """``edgeorch profile FILE --config ... ARGS`` in this process, in a folder with people.csv."""
    (tmp_path / "config.toml").write_text(f'[state]\ndir = "{tmp_path / "var"}"\n')
    (tmp_path / "people.csv").write_text("age,city\n" + "".join(f"{20 + i % 50},{'ab'[i % 2]}\n" for i in range(40)))

    def profile(file: str, *extra: str) -> subprocess.CompletedProcess[str]:
        with pytest.MonkeyPatch.context() as mp:
            mp.chdir(tmp_path)
            return cli_in_process(["profile", file, "--config", "config.toml", *extra], dict(os.environ))
    return profile


def test_cli_not_released_column_names_are_escaped(tmp_path: Path, dp_cli) -> None:
    """Found by a tester: a column named with U+202E was printed raw in "not released (...): ...", reversing
    the line on a terminal."""
    (tmp_path / "bidi.csv").write_bytes("age,\u202eevil\n30,1\n40,2\n".encode())
    out = dp_cli("bidi.csv", "--epsilon", "0.5", "--dataset", "bidi", "--budget", "1", "--bounds", "age=0:100")
    assert out.returncode == 0, out.stderr
    assert "\u202e" not in out.stdout and "\\u202eevil" in out.stdout


def test_cli_bad_or_repeated_declarations_exit_2_naming_the_flag(dp_cli) -> None:
    """Found by a tester: `--categories city=Paris,Paris` exited 1 naming `categories`; `--bounds age=0:100
    --bounds age=0:50` was taken silently (the last won)."""
    base = ("--epsilon", "0.01", "--dataset", "d3", "--budget", "1")
    dup = dp_cli("people.csv", *base, "--categories", "city=a,a")
    assert dup.returncode == 2 and "--categories city:" in dup.stderr and "'a' given twice" in dup.stderr, dup.stderr
    twice = dp_cli("people.csv", *base, "--bounds", "age=0:100", "--bounds", "age=0:50")
    assert twice.returncode == 2 and "--bounds age: is given twice" in twice.stderr, twice.stderr


def test_cli_an_empty_column_with_bounds_is_released_near_zero(tmp_path: Path, dp_cli) -> None:
    """Found by a tester: a header-only CSV with --bounds said "bounds are for numeric columns (found 'null');
    expected categories for a text column". A column with no values is released as declared."""
    (tmp_path / "header_only.csv").write_text("a,b,c\n")
    out = dp_cli("header_only.csv", "--epsilon", "0.1", "--dataset", "h", "--budget", "10", "--bounds", "a=0:10",
                 "--json")
    assert out.returncode == 0, out.stderr
    row = json.loads(out.stdout)["rows"][0]
    assert row["column"] == "a" and row["details"]["type"] == "numeric", row
    mean = row["details"]["mean"]  # noise: None when the noisy count is 0, else within the declared bounds
    assert mean is None or 0 <= mean <= 10, row


def test_cli_says_when_a_release_changes_the_budget(dp_cli) -> None:
    """Found by a tester: `--budget 2` on a release of a spent budget of 1 raised it without a word."""
    base = ("--dataset", "people", "--bounds", "age=0:100")
    assert dp_cli("people.csv", "--epsilon", "1", "--budget", "1", *base).returncode == 0
    raised = dp_cli("people.csv", "--epsilon", "0.1", "--budget", "2", "--json", *base)
    assert raised.returncode == 0, raised.stderr
    assert "budget of dataset 'people' raised from epsilon 1 to 2" in raised.stderr
    assert json.loads(raised.stdout)["summary"]["budget_changed"] == "budget of dataset 'people' raised from epsilon 1 to 2"
    same = dp_cli("people.csv", "--epsilon", "0.1", "--budget", "2", "--json", *base)
    assert "raised" not in same.stderr and json.loads(same.stdout)["summary"]["budget_changed"] is None
