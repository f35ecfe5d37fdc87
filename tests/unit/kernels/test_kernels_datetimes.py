"""Datetime columns: profiled as instants (min, max, range, gaps, zones) from every input, merged, drifted."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from edgeorch.errors import DataError
from edgeorch.kernels import (
    Profile,
    column_drift,
    dataset_drift,
    drift_from_profile,
    merge_profiles,
    profile,
    validate,
)
from edgeorch.kernels.columns import DatetimeBatch, column_of
from edgeorch.kernels.io import _concat

# 2024-03-31 00:00 .. 05:00 UTC hourly, 03:00 missing (NaT): the largest gap is 2 h, the median 1 h.
UTC_NS = np.array(["2024-03-31T00", "2024-03-31T01", "NaT", "2024-03-31T02", "2024-03-31T04", "2024-03-31T05"],
                  dtype="datetime64[ns]")
EXPECTED = {"type": "datetime", "count": 6, "nulls": 1, "distinct": 5, "distinct_exact": True,
            "range_s": 5 * 3600.0, "largest_gap_s": 2 * 3600.0, "median_gap_s": 3600.0, "gaps_exact": True}


def stats(data: Any) -> dict[str, Any]:
    return profile({"t": data})["t"].to_dict()


def check(s: dict[str, Any], tz: str | None, lo: str, hi: str) -> None:
    assert {k: s[k] for k in EXPECTED} == EXPECTED
    assert (s["timezone"], s["min"], s["max"]) == (tz, lo, hi)
    assert "mean" not in s and "nan" not in s  # not profiled as float


def pandas_utc() -> Any:
    pd = pytest.importorskip("pandas")
    return pd.Series(UTC_NS).dt.tz_localize("UTC").dt.tz_convert("Europe/Paris")


# -- every input ----------------------------------------------------------------------


def test_pandas_datetimes_with_a_zone_are_profiled_in_their_zone() -> None:
    # Paris changes to summer time at 01:00 UTC that day: offsets +01:00 then +02:00.
    check(stats(pandas_utc()), "Europe/Paris", "2024-03-31T01:00:00+01:00", "2024-03-31T07:00:00+02:00")


def test_naive_pandas_numpy_and_pyarrow_datetimes_agree() -> None:
    pd = pytest.importorskip("pandas")
    want = stats(UTC_NS)
    check(want, None, "2024-03-31T00:00:00", "2024-03-31T05:00:00")
    assert stats(pd.Series(UTC_NS)) == want
    assert stats(pa.array(UTC_NS)) == want
    assert stats(UTC_NS.astype("datetime64[s]")) == want
    assert stats([None if np.isnat(v) else v.astype(dt.datetime) for v in UTC_NS.astype("datetime64[us]")]) == want


def test_pyarrow_and_polars_zoned_timestamps_match_pandas() -> None:
    want = stats(pandas_utc())
    arrow = pa.array(UTC_NS.astype("datetime64[us]")).cast(pa.timestamp("us", tz="Europe/Paris"))
    assert stats(arrow) == want
    pl = pytest.importorskip("polars", reason="polars is optional; install it to test polars inputs")
    assert stats(pl.from_arrow(arrow)) == want


def test_dates_are_dates() -> None:
    s = stats(np.array(["2024-01-01", "NaT", "2024-01-03", "2024-01-10"], dtype="datetime64[D]"))
    assert (s["type"], s["min"], s["max"], s["nulls"]) == ("date", "2024-01-01", "2024-01-10", 1)
    assert (s["largest_gap_s"], s["median_gap_s"]) == (7 * 86400.0, 4.5 * 86400.0)
    months = stats(np.array(["2024-01", "2024-03"], dtype="datetime64[M]"))  # no arrow unit: via seconds
    assert (months["type"], months["max"]) == ("datetime", "2024-03-01T00:00:00")


def test_csv_iso_timestamps_are_datetimes_and_numbers_stay_numbers(workdir: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from edgeorch.cli import main

    Path("d.csv").write_text("ts,day,zoned,num,text\n"
                             "2024-01-31 10:00:00,2024-01-31,2024-01-31T10:00:00+02:00,20240131,2024-01-31\n"
                             "2024-01-31 10:00:30.5,2024-02-02,2024-01-31T09:00:00Z,20240201,soon\n"
                             ",,,,\n")
    assert main(["profile", "d.csv", "--json"]) == 0
    s = {r["column"]: r["details"] for r in json.loads(capsys.readouterr().out)["rows"]}
    assert (s["ts"]["type"], s["ts"]["max"], s["ts"]["nulls"], s["ts"]["range_s"]) == \
        ("datetime", "2024-01-31T10:00:30.500", 1, 30.5)
    assert (s["day"]["type"], s["day"]["max"]) == ("date", "2024-02-02")
    assert (s["zoned"]["timezone"], s["zoned"]["min"], s["zoned"]["max"]) == \
        ("UTC", "2024-01-31T08:00:00Z", "2024-01-31T09:00:00Z")
    assert s["num"]["type"] == "integer" and s["text"]["type"] == "string"
    assert main(["profile", "d.csv"]) == 0
    out = capsys.readouterr().out
    assert "datetime columns:" in out and "30.5s" in out


# -- bad and degenerate input -------------------------------------------------------------


def test_empty_and_all_nat_columns_are_datetimes_without_values() -> None:
    for data, nulls in ((np.array([], dtype="datetime64[ns]"), 0), (np.array(["NaT"] * 3, dtype="datetime64[ns]"), 3)):
        s = stats(data)
        assert (s["type"], s["count"], s["nulls"], s["distinct"]) == ("datetime", nulls, nulls, 0)
        assert s["min"] is s["max"] is s["range_s"] is s["largest_gap_s"] is s["median_gap_s"] is None
        json.dumps(s, allow_nan=False)
    one = stats(np.array(["2024-01-01"], dtype="datetime64[ns]"))
    assert (one["range_s"], one["largest_gap_s"], one["distinct"]) == (0.0, None, 1)


def test_python_datetimes_in_several_zones_are_instants_in_utc() -> None:
    paris = dt.timezone(dt.timedelta(hours=1))
    s = stats([dt.datetime(2024, 1, 1, 1, tzinfo=paris), None, dt.datetime(2024, 1, 1, 1, tzinfo=dt.timezone.utc)])
    assert (s["timezone"], s["min"], s["max"], s["largest_gap_s"]) == \
        ("UTC", "2024-01-01T00:00:00Z", "2024-01-01T01:00:00Z", 3600.0)


@pytest.mark.parametrize(("values", "message"), [
    ([dt.datetime(2024, 1, 1), dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)], "naive and timezone-aware"),
    ([dt.date(2024, 1, 1), dt.datetime(2024, 1, 2)], "mixes dates and datetimes"),
    (np.array(["3000-01-01"], dtype="datetime64[D]"), "out of range"),
])
def test_unusable_datetimes_are_data_errors_naming_the_column(values: Any, message: str) -> None:
    with pytest.raises(DataError, match=message) as info:
        profile({"when": values})
    assert info.value.field == "when"


# -- merging and saving ---------------------------------------------------------------------


def test_profiles_of_chunks_in_time_order_merge_exactly_and_overlapping_ones_lose_the_gaps(tmp_path: Path) -> None:
    whole = stats(UTC_NS)
    first, second = profile({"t": UTC_NS[:3]}), profile({"t": UTC_NS[3:]})
    merged = merge_profiles(second, first)["t"].to_dict()  # either order
    assert {k: merged[k] for k in EXPECTED} == {k: whole[k] for k in EXPECTED}
    shared = merge_profiles(profile({"t": UTC_NS[:4]}), profile({"t": UTC_NS[3:]}))["t"].to_dict()
    assert (shared["distinct"], shared["largest_gap_s"], shared["distinct_exact"]) == (5, 7200.0, True)
    mixed = merge_profiles(profile({"t": UTC_NS[::2]}), profile({"t": UTC_NS[1::2]}))["t"].to_dict()
    assert mixed["largest_gap_s"] is None and mixed["median_gap_s"] is None and not mixed["distinct_exact"]
    assert (mixed["min"], mixed["max"], mixed["distinct"]) == (whole["min"], whole["max"], 5)  # HLL is exact here
    first.save(tmp_path / "p.json")
    back = Profile.load(tmp_path / "p.json")
    assert back.to_dict() == first.to_dict() and back["t"].tz is None
    zoned = profile({"t": pandas_utc()[3:]})
    with pytest.raises(DataError, match="naive and timezone-aware"):
        merge_profiles(first, zoned)


def test_datetime_chunks_of_a_file_concatenate_as_datetimes() -> None:
    parts = [column_of(UTC_NS[:3], "t"), column_of(np.array(["NaT"], dtype="datetime64[ns]"), "t"),
             column_of(UTC_NS[3:], "t")]
    out = _concat(parts)
    assert isinstance(out, DatetimeBatch) and out.nulls == 2 and len(out.ns) == 5


# -- drift and validation --------------------------------------------------------------------


def test_drift_skips_datetime_columns_unless_a_method_is_named_for_them() -> None:
    rng = np.random.default_rng(3)
    ref = {"t": UTC_NS, "x": rng.normal(size=6)}
    cur = {"t": UTC_NS + np.timedelta64(30, "D"), "x": rng.normal(size=6)}
    res = dataset_drift(ref, cur, method="ks")
    t = res.columns[0]
    assert (t.verdict, t.method, res.n_tested) == ("skipped", "none", 1) and "moves with time" in t.details["reason"]
    named = dataset_drift(ref, cur, methods={"t": "ks"}).columns[0]
    assert (named.method, named.verdict, named.value) == ("ks", "drift", 1.0)  # a month later: no overlap
    assert column_drift(UTC_NS, UTC_NS).verdict == "skipped"
    assert column_drift(UTC_NS, UTC_NS, "wasserstein").verdict == "ok"
    assert drift_from_profile(profile(ref), cur).columns[0].verdict == "skipped"


@pytest.mark.parametrize(("cur", "message"), [
    (np.arange(6.0), "datetimes on one side"),
    (pa.array(UTC_NS).cast(pa.timestamp("ns", tz="UTC")), "naive datetimes on one side"),
])
def test_drift_of_datetimes_against_other_values_is_a_data_error(cur: Any, message: str) -> None:
    with pytest.raises(DataError, match=message):
        column_drift(UTC_NS, cur, "ks", column="t")


def test_validate_knows_the_datetime_type() -> None:
    res = validate({"t": UTC_NS, "x": [1, 2, 3, 4, 5, 6]}, types={"t": "datetime", "x": "datetime"},
                   allowed={"t": ["2024-03-31"]})
    verdicts = [(r["column"], r["metric"], r["verdict"]) for r in res["rows"]]
    assert verdicts == [("t", "type", "ok"), ("x", "type", "violation"), ("t", "allowed", "violation")]
    assert "datetime" in res["rows"][2]["details"]["reason"]
