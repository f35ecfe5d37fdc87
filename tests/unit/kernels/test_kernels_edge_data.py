"""Data a data scientist met that gave wrong numbers or an internal error: a header naming a column twice, a
header alone, integers beyond ±2**53, values whose squares or range overflow float64."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import scipy.stats as st

from edgeorch.errors import DataError
from edgeorch.kernels import dataset_drift, profile
from edgeorch.kernels.drift import column_drift
from edgeorch.kernels.io import read_batches


def test_a_header_naming_a_column_twice_is_a_data_error_naming_it(tmp_path: Path) -> None:
    f = tmp_path / "dup.csv"
    f.write_text("a,a,b\n1,2,3\n4,5,6\n")
    with pytest.raises(DataError) as err:  # was: KeyError 'Column a does not exist in schema', exit 70
        profile(f)
    assert err.value.file == str(f) and err.value.field == "a" and "more than once" in err.value.message
    assert [c.name for c in profile(f, columns=["b"]).columns.values()] == ["b"]  # a duplicate not read: fine


def test_a_header_alone_keeps_its_columns(tmp_path: Path) -> None:
    """A header-only CSV profiled as "0 rows x 0 columns", and drift said the files had no column in common."""
    empty, full = tmp_path / "header.csv", tmp_path / "full.csv"
    empty.write_text("x,s\n")
    full.write_text("x,s\n" + "7.25,k\n" * 50)
    prof = profile(empty)
    assert sorted(prof.columns) == ["s", "x"] and all(c.count == 0 for c in prof.columns.values())
    res = dataset_drift(empty, full)
    assert sorted(r.column for r in res.columns) == ["s", "x"]
    assert {r.verdict for r in res.columns} == {"no_data"} and not res.drift and res.n_tested == 0
    # Nothing tested is no evidence of "no drift": it said "ok: 0 of 0 columns drifted: no dataset drift".
    assert res.verdict == "warn" and res.message == "no column could be tested (2 no_data): no drift verdict"
    assert dataset_drift(full, full).verdict == "ok"


def test_ks_compares_integers_beyond_2_53_exactly(tmp_path: Path) -> None:
    """2**60 and 2**60 + 1 are one float64: every value changed and ks said 0, p 1, "ok"."""
    ref, cur = tmp_path / "a.csv", tmp_path / "b.csv"
    ref.write_text("x\n" + f"{2**60}\n" * 20)
    cur.write_text("x\n" + f"{2**60 + 1}\n" * 20)
    (r,) = dataset_drift(ref, cur, method="ks").columns
    assert (r.value, r.verdict) == (1.0, "drift")
    assert r.p_value == pytest.approx(st.ks_2samp(np.zeros(20), np.ones(20)).pvalue)


def test_a_variance_float64_cannot_see_is_unknown_not_zero(tmp_path: Path) -> None:
    f = tmp_path / "big.csv"
    f.write_text("x\n" + "".join(f"{2**60 + i}\n" for i in range(20)))
    col = profile(f).columns["x"]
    assert (col.min, col.max) == (2**60, 2**60 + 19)
    assert col.variance is None and col.summary()["std"] is None  # was 0.0: "constant"


@pytest.mark.parametrize("method", ["psi", "jensenshannon", "hellinger", "chisquare", "wasserstein", "ks"])
def test_values_near_float64s_limit_drift_as_they_do_scaled(tmp_path: Path, method: str) -> None:
    """A range beyond ~1.8e308 made every binned method say 0 ("ok") and wasserstein nothing, with the verdict
    "ok". Scaled by a power of two (exact), the same data gives the same figures as at a small scale."""
    rng = np.random.default_rng(2)
    a, b = rng.uniform(-1.5, 1.5, 50), rng.uniform(-1.0, 1.7, 50)
    big = [tmp_path / "a.csv", tmp_path / "b.csv"]
    small = [tmp_path / "sa.csv", tmp_path / "sb.csv"]
    for path, values in zip(big, (a * 1e308, b * 1e308)):
        path.write_text("x\n" + "".join(f"{float(v)!r}\n" for v in values))
    for path, values in zip(small, (a * 2.0 ** -600 * 1e308, b * 2.0 ** -600 * 1e308)):
        path.write_text("x\n" + "".join(f"{float(v)!r}\n" for v in values))
    (huge,) = dataset_drift(*big, method=method).columns
    (scaled,) = dataset_drift(*small, method=method).columns
    assert huge.value == pytest.approx(scaled.value, rel=1e-9) and huge.value > 0
    assert huge.verdict == scaled.verdict
    if method == "wasserstein":
        ref = np.loadtxt(big[0], skiprows=1) * 1e-300
        cur = np.loadtxt(big[1], skiprows=1) * 1e-300
        assert huge.value == pytest.approx(st.wasserstein_distance(ref, cur) / np.std(ref), rel=1e-9)


def test_a_statistic_that_cannot_be_computed_is_undefined_never_ok(tmp_path: Path, monkeypatch) -> None:
    from edgeorch.kernels import drift as D

    f = tmp_path / "a.csv"
    f.write_text("x\n" + "".join(f"{i}\n" for i in range(50)))
    batch = next(read_batches(f))["x"]
    monkeypatch.setattr(D, "_measure", lambda *a, **k: (float("nan"), None))
    r = column_drift(batch, batch, "psi")
    assert (r.verdict, r.drift) == ("undefined", False) and "not defined" in r.details["reason"]


def test_a_link_loop_is_said_as_such_not_file_not_found(tmp_path: Path) -> None:
    from edgeorch.errors import DataNotFoundError

    (tmp_path / "a.csv").symlink_to(tmp_path / "b.csv")
    (tmp_path / "b.csv").symlink_to(tmp_path / "a.csv")
    with pytest.raises(DataError) as err:
        profile(tmp_path / "a.csv")
    assert not isinstance(err.value, DataNotFoundError) and "leads back to itself" in err.value.message


def test_a_negative_weight_names_the_file_column_and_row(tmp_path: Path) -> None:
    from edgeorch.kernels.kinds import run_task

    f = tmp_path / "w.csv"
    f.write_text("g,p,w\na,1,1\nb,0,-2\na,0,1\nb,1,1\n")
    with pytest.raises(DataError) as err:
        run_task("fairness", {"input": str(f), "group": ["g"], "prediction": "p", "weight": "w"})
    assert (err.value.file, err.value.field) == (str(f), "w") and "row 2" in str(err.value.value)


def test_a_constant_huge_reference_floors_its_std_in_its_own_units(tmp_path: Path) -> None:
    """50 values of 1e160 against 50 of 2e160: the scaled distance was divided by the unscaled 0.001 floor,
    2.4e-18, "ok", for a column whose every value doubled (at 1e149, unscaled: 1e152, drift)."""
    for e in (149, 160):
        ref, cur = tmp_path / f"r{e}.csv", tmp_path / f"c{e}.csv"
        ref.write_text("x\n" + f"1e{e}\n" * 50)
        cur.write_text("x\n" + f"2e{e}\n" * 50)
        (r,) = dataset_drift(ref, cur, method="wasserstein").columns
        assert r.verdict == "drift" and r.value == pytest.approx(float(f"1e{e}") / 0.001, rel=1e-9)


def test_a_profile_of_huge_deviations_has_no_moment_it_cannot_compute_and_never_fails(tmp_path: Path) -> None:
    """Normal data times 1e140: `m2 ** 1.5` is an OverflowError in Python, and `edgeorch profile` ended with exit
    70. Its third and fourth moments overflow: None; the rest as numpy says."""
    x = np.random.default_rng(0).normal(0, 1, 1000) * 1e140
    f = tmp_path / "n.csv"
    f.write_text("x\n" + "".join(f"{v!r}\n" for v in x.tolist()))
    col = profile(f).columns["x"]
    s = col.summary()
    assert s["std"] == pytest.approx(float(np.std(x, ddof=1)), rel=1e-9)
    assert s["skewness"] is None and s["kurtosis"] is None


def test_a_file_this_user_may_not_read_or_reach_is_said_so(tmp_path: Path) -> None:
    """As another user: pyarrow's "[Errno 13] Failed to open local file ... Detail: [errno 13]" reached the user."""
    import os
    import shutil
    import subprocess
    import sys
    import tempfile

    if os.getuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to act as user nobody (root reads everything)")

    def as_nobody(path: Path) -> subprocess.CompletedProcess[str]:
        # every reader of a data file starts with checked_format (no numba: nobody may not write its cache)
        code = ("from pathlib import Path\nfrom edgeorch.errors import DataError\n"
                "from edgeorch.kernels.io import checked_format\n"
                f"try:\n    checked_format(Path({str(path)!r}))\nexcept DataError as e:\n    print(e.message)\n")
        return subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", sys.executable,
                               "-c", code], capture_output=True, text=True, cwd="/", timeout=120,
                              env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])})

    with tempfile.TemporaryDirectory(dir="/var/tmp") as open_folder:
        os.chmod(open_folder, 0o755)
        unreadable = Path(open_folder) / "secret.csv"
        unreadable.write_text("x\n1\n")
        unreadable.chmod(0o000)
        proc = as_nobody(unreadable)
        if not proc.stdout and proc.returncode != 0:
            pytest.skip(f"user nobody cannot run this Python: {proc.stderr.strip()[-200:]}")
        assert proc.stdout.strip() == "cannot be read: Permission denied", proc.stdout + proc.stderr
    hidden = tmp_path / "inside.csv"  # pytest's folders are the root user's alone: nobody cannot reach into them
    hidden.write_text("x\n1\n")
    proc = as_nobody(hidden)
    assert proc.stdout.strip() == "cannot be reached: Permission denied", proc.stdout + proc.stderr


@pytest.mark.parametrize("value", [3.3, 1.5e308 * 2.0 ** -900, 1e300])
def test_a_constant_column_has_no_spread_whatever_the_rounding(tmp_path: Path, value: float) -> None:
    """1,000 values of 3.3: mean 3.299999999999998 (below min = max), variance 3e-30, skewness 1.0, kurtosis
    -2.0; of 1e300: every moment None (their squares overflow). The edge-case table says variance 0, skew and
    kurtosis None."""
    f = tmp_path / "c.npy"
    np.save(f, np.full(1000, value))
    s = profile(f).columns["value"].summary()
    assert (s["min"], s["max"], s["mean"], s["variance"], s["std"]) == (value, value, value, 0.0, 0.0)
    assert s["skewness"] is None and s["kurtosis"] is None


def test_the_profile_table_shows_where_infinities_lie(tmp_path: Path) -> None:
    """A column of 5, inf and -inf read as constant 5 in the table (min 5, max 5): its statistics are of the finite
    values, and nothing said there were infinities but the JSON's counts."""
    from edgeorch.kernels.results import PROFILE_HEADERS, profile_row

    f = tmp_path / "inf.csv"
    f.write_text("x,y\n1,inf\n2,-inf\n3,5\n")
    cols = profile(f).columns
    rows = {c: dict(zip(PROFILE_HEADERS, profile_row(cols[c].to_dict()))) for c in ("x", "y")}
    assert (rows["y"]["min"], rows["y"]["median"], rows["y"]["max"]) == (-math.inf, 5, math.inf)
    assert (rows["x"]["min"], rows["x"]["max"]) == (1, 3)
    assert cols["y"].to_dict()["min"] == 5  # the document's statistics stay those of the finite values


def test_settings_that_call_a_file_drifted_from_itself_are_usage_errors_and_untested_rows_have_no_threshold(
        tmp_path: Path) -> None:
    """`--threshold 1.5` with ks (p = 1 < 1.5) and `--drift-share 0` (0 of 4 >= 0) both said a file compared with
    itself drifted, exit 1; rows of columns not tested showed a threshold of 0."""
    from edgeorch.errors import UsageError

    f = tmp_path / "d.csv"
    f.write_text("x,t\n" + "".join(f"{i},2024-01-0{1 + i % 9}\n" for i in range(40)))
    with pytest.raises(UsageError) as err:
        dataset_drift(f, f, method="ks", threshold=1.5)
    assert err.value.field == "threshold" and "p-value" in err.value.message
    with pytest.raises(UsageError) as err:
        dataset_drift(f, f, drift_share=0.0)
    assert err.value.field == "drift_share"
    rows = {r["column"]: r for r in dataset_drift(f, f).to_dict()["rows"]}
    assert rows["t"]["verdict"] == "skipped" and rows["t"]["threshold"] is None
    assert rows["x"]["threshold"] is not None


def test_a_ks_warning_inside_a_drift_check_is_said_in_the_columns_details_not_on_stderr(monkeypatch) -> None:
    """`edgeorch drift ... --method ks` printed scipy's raw RuntimeWarning on stderr, with a path and a source line
    of edgeorch's own; the check says it in the column's details."""
    import warnings

    from edgeorch.kernels import drift as D

    real = D.S.ks_2samp

    def warns(a, b):
        warnings.warn("ks_2samp: Exact calculation unsuccessful. Switching to method=asymp.", RuntimeWarning)
        return real(a, b)

    monkeypatch.setattr(D.S, "ks_2samp", warns)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning that escaped would raise here
        r = column_drift(np.arange(50.0), np.arange(50.0) + 0.5, method="ks")
    assert r.details["p_value_method"] == "asymp" and "Exact calculation unsuccessful" in r.details["note"]
