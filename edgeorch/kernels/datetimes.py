"""Datetime columns: instants as int64 nanoseconds, their time zone, ISO 8601 text.

Every datetime input (pandas ``datetime64`` with or without a time zone,
numpy ``datetime64``, pyarrow ``timestamp`` and ``date32/64``, polars
``Datetime`` and ``Date``, lists of Python ``datetime``/``date`` objects, and
CSV cells that pyarrow reads as ISO 8601 timestamps) goes through pyarrow
to :func:`arrow_to_ns`: the non-null values as int64 nanoseconds since
1970-01-01 (UTC for zoned values, wall-clock time for naive ones), the
number of nulls (NaT, None), the zone name (None: naive) and whether the
column holds dates.

Edge cases (each a :class:`DataError` naming the column):

- a value outside 1677-09-21 .. 2262-04-11 does not fit in 64-bit
  nanoseconds;
- Python values that mix naive and zoned datetimes (their order is
  undefined), or dates and datetimes.

Zoned values in several zones are instants: they are converted to UTC.
No pandas import: pandas and polars columns are handed to pyarrow.
"""

from __future__ import annotations

import datetime as _dt
import re
from typing import Any, Literal

import numpy as np

from ..errors import DataError
from .arrownp import to_numpy

NS_PER_S = 1_000_000_000
_ARROW_UNITS = ("s", "ms", "us", "ns", "D")
_FIXED_OFFSET = re.compile(r"^([+-])(\d\d):?(\d\d)$")
_UTC_NAMES = {"UTC", "Z", "Etc/UTC", "GMT", "Etc/GMT", "+00:00", "utc"}
_RANGE = "1677-09-21 to 2262-04-11 (nanoseconds since 1970 in 64 bits)"


def is_temporal_arrow(t: Any) -> bool:
    """True for the pyarrow types profiled as datetimes: timestamps and dates."""
    import pyarrow as pa

    return bool(pa.types.is_timestamp(t) or pa.types.is_date(t))


def is_datetime_series(series: Any) -> bool:
    """True for a pandas or polars Series of datetimes or dates (no pandas/polars import).

    pandas: a dtype of kind ``M`` (``datetime64[..]`` and ``datetime64[.., tz]``).
    polars: a ``Datetime`` or ``Date`` dtype.
    """
    if isinstance(series, np.ndarray):
        return False  # numpy arrays have their own path (numpy_to_arrow)
    dtype = getattr(series, "dtype", None)
    if getattr(dtype, "kind", None) == "M":
        return True
    return type(dtype).__name__ in ("Datetime", "Date") and hasattr(series, "to_arrow")


def series_to_arrow(series: Any) -> Any:
    """A datetime Series (see :func:`is_datetime_series`) as a pyarrow array, zone kept."""
    import pyarrow as pa

    if hasattr(series, "to_arrow"):  # polars
        return series.to_arrow()
    return pa.array(series)  # pandas: NaT becomes null, the zone is kept


def numpy_to_arrow(values: np.ndarray) -> Any:
    """A numpy ``datetime64`` array as a pyarrow array (NaT becomes null).

    Units pyarrow has no type for (years, months, weeks, hours, minutes) are
    converted to seconds first; ``D`` stays a date.
    """
    import pyarrow as pa

    unit, _ = np.datetime_data(values.dtype)
    if unit not in _ARROW_UNITS:
        values = values.astype("datetime64[s]")
    return pa.array(values)


def python_to_arrow(values: list[Any], name: str) -> Any:
    """Python ``datetime``/``date`` objects (None or NaT for missing) as a pyarrow array.

    Raises DataError for a mix of dates and datetimes, or of naive and zoned
    datetimes: pyarrow would silently truncate or reinterpret them. Zoned
    values in several zones are converted to UTC.
    """
    import pyarrow as pa

    clean = [None if v is None or v != v else v for v in values]  # NaT != NaT
    present = [v for v in clean if v is not None]
    stamps = [isinstance(v, _dt.datetime) for v in present]
    if any(stamps) and not all(stamps):
        raise DataError("the column mixes dates and datetimes", field=name,
                        expected="all dates or all datetimes")
    if present and all(stamps):
        aware = [v.tzinfo is not None and v.utcoffset() is not None for v in present]
        if any(aware) and not all(aware):
            raise DataError("the column mixes naive and timezone-aware datetimes", field=name,
                            expected="all naive or all with a time zone (convert them first)")
        if all(aware) and len({str(v.tzinfo) for v in present}) > 1:
            clean = [None if v is None else v.astimezone(_dt.timezone.utc) for v in clean]
    return pa.array(clean)


def arrow_to_ns(arr: Any, name: str) -> tuple[np.ndarray, int, str | None, bool]:
    """``(ns, nulls, tz, is_date)`` of a pyarrow timestamp or date array (see the module docstring)."""
    import pyarrow as pa

    t = arr.type
    is_date = pa.types.is_date(t)
    tz = None if is_date else t.tz
    nulls = arr.null_count
    vals = arr.drop_null() if nulls else arr
    try:
        ns = vals.cast(pa.timestamp("ns", tz=tz)).cast(pa.int64())
    except (pa.ArrowInvalid, OverflowError):
        raise DataError("a timestamp is out of range", field=name, value=_extreme(vals),
                        expected=f"datetimes from {_RANGE}") from None
    return np.asarray(to_numpy(ns), dtype=np.int64), nulls, tz, is_date


def _extreme(vals: Any) -> str | None:
    import pyarrow.compute as pc

    try:
        mm = pc.min_max(vals)
        return f"{mm['min']} .. {mm['max']}"
    except Exception:  # only for the message: never hide the range error behind another
        return None


# ---------------------------------------------------------------------------
# text


def _offset_ns(ns: int, tz: str | None) -> tuple[int, str]:
    """The zone's UTC offset at instant ``ns`` and its ISO suffix; UTC ("Z") for a zone not known here."""
    if tz is None:
        return 0, ""
    if tz in _UTC_NAMES:
        return 0, "Z"
    m = _FIXED_OFFSET.match(tz)
    if m:
        sign = -1 if m.group(1) == "-" else 1
        secs = sign * (int(m.group(2)) * 3600 + int(m.group(3)) * 60)
    else:
        try:
            from zoneinfo import ZoneInfo

            moment = _dt.datetime.fromtimestamp(ns // NS_PER_S, ZoneInfo(tz))
        except (ValueError, KeyError, OSError, OverflowError):
            return 0, "Z"  # still the right instant, written in UTC
        off = moment.utcoffset()
        secs = int(off.total_seconds()) if off is not None else 0
    sign_ch = "-" if secs < 0 else "+"
    a = abs(secs)
    return secs * NS_PER_S, f"{sign_ch}{a // 3600:02d}:{a % 3600 // 60:02d}"


def iso(ns: int | float | None, tz: str | None = None, *, date: bool = False) -> str | None:
    """ISO 8601 text of an instant (nanoseconds since 1970); None for None.

    Dates as ``YYYY-MM-DD``; datetimes to the second, with as many fraction
    digits as the value needs (3, 6 or 9); zoned values in their zone with
    its offset (``Z`` for UTC).
    """
    if ns is None:
        return None
    ns = int(round(ns))
    if date:
        return str(np.datetime64(ns, "ns").astype("datetime64[D]"))
    off, suffix = _offset_ns(ns, tz)
    local = ns + off
    unit: Literal["s", "ms", "us", "ns"]
    unit = "s" if local % NS_PER_S == 0 else "ms" if local % 1_000_000 == 0 else "us" if local % 1000 == 0 else "ns"
    return str(np.datetime_as_string(np.datetime64(local, "ns"), unit=unit)) + suffix


def seconds(ns: int | float | None) -> float | None:
    """A duration in nanoseconds as seconds (float); None for None."""
    return None if ns is None else float(ns) / NS_PER_S


def human_duration(secs: float | None) -> str | None:
    """A duration in seconds as short text: ``0s``, ``250ms``, ``12.5s``, ``3m 04s``, ``2h 05m``, ``3d 04h``."""
    if secs is None:
        return None
    if secs < 1:
        return "0s" if secs == 0 else f"{secs * 1000:.3g}ms"
    if secs < 60:
        return f"{secs:.3g}s"
    s = int(round(secs))
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600:02d}h"
