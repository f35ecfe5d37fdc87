"""Column batches: the two shapes every kernel consumes.

- :class:`NumericBatch`: the non-null values as one float64 array (NaN and
  ±inf kept, they are counted), the number of nulls, the inferred type and,
  for integer columns, the exact integer min and max.
- :class:`CategoricalBatch`: the distinct non-null values as strings with
  their counts, and the number of nulls.
- :class:`DatetimeBatch`: a numeric batch of instants (int64 nanoseconds
  since 1970, see :mod:`.datetimes`) with the column's time zone.

Type inference (documented in docs/kernels.md): integers, floats and
booleans are numeric; strings are categorical (``string``); a column mixing
numbers and strings is categorical of type ``mixed`` (values compared as
their text); timestamps and dates (typed ones, and CSV cells pyarrow reads
as ISO 8601) are ``datetime`` or ``date``; a column with no non-null value
is ``empty`` (numeric, no values).
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import DataError, UnknownColumnError
from . import arrownp, datetimes

_NUMBER_RE = r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$|^\s*[-+]?(inf|nan|infinity)\s*$"
_NUMBER = re.compile(_NUMBER_RE, re.IGNORECASE)
FLOAT_EXACT_INT = 2**53  # integers up to this magnitude are exact in float64


@dataclass
class NumericBatch:
    """A numeric column's non-null values as float64, its null count and, for integers, their exact range."""

    values: np.ndarray  # float64, non-null values only
    nulls: int = 0
    dtype: str = "float"
    int_min: int | None = None
    int_max: int | None = None
    ints: np.ndarray | None = None
    """The exact integer values (same order as ``values``), kept only when some lie beyond ±2**53,
    where float64 rounds distinct integers onto one value."""


@dataclass
class CategoricalBatch:
    """A categorical column: its distinct non-null values with their counts, and its null count."""

    values: list[str]  # distinct non-null values
    counts: np.ndarray  # int64, same length
    nulls: int = 0
    dtype: str = "string"
    numbers_only: bool = False
    """Every value is a number's text in a column typed as text (a CSV chunk of a text column holding only
    numbers): its type is ``string``, but beside text from another chunk it makes the column ``mixed``, as
    one chunk of both would be (:func:`merged_text_dtype`)."""


@dataclass
class DatetimeBatch(NumericBatch):
    """Instants as a numeric batch: ``values`` are the nanoseconds as float64 (for the numeric
    kernels), ``ns`` the exact int64 nanoseconds, ``int_min``/``int_max`` exact.

    ``dtype`` is ``datetime`` or ``date``; ``tz`` the zone name (None: naive,
    wall-clock time).
    """

    ns: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    tz: str | None = None

    @classmethod
    def of(cls, ns: np.ndarray, nulls: int, tz: str | None, is_date: bool) -> DatetimeBatch:
        ns = np.ascontiguousarray(ns, dtype=np.int64)
        lo, hi = (int(ns.min()), int(ns.max())) if ns.size else (None, None)
        # `ints` keeps the exact values for the distinct-count sketch (float64 rounds nanoseconds).
        return cls(ns.astype(np.float64), nulls, "date" if is_date else "datetime", lo, hi, ns, ns, tz)


Batch = NumericBatch | CategoricalBatch


def unmasked(x: Any, name: str) -> np.ndarray:
    """``x`` as a plain numpy array; a numpy masked array is refused (DataError).

    ``np.asarray`` would silently drop the mask and use the masked values.
    Functions that mirror scipy or Fairlearn take plain arrays; to leave
    values out, pass only the others (``x.compressed()``). Column inputs of
    profiles and drift accept masked arrays (masked = null) through
    :func:`column_of` instead.
    """
    if isinstance(x, np.ma.MaskedArray):
        raise DataError("masked arrays are not supported here", field=name, value="numpy.ma.MaskedArray",
                        expected="a plain array (pass x.compressed() to leave the masked values out)")
    return np.asarray(x)


def numeric_from_numpy(arr: np.ndarray, nulls: int = 0) -> NumericBatch:
    """A batch from a numeric numpy array (bool, int, uint, float)."""
    arr = np.asarray(arr)
    if arr.dtype.kind == "b":
        return NumericBatch(arr.astype(np.float64), nulls, "boolean")
    if arr.dtype.kind in "iu":
        if arr.size == 0:
            return NumericBatch(np.zeros(0), nulls, "integer")
        # Exact integer extremes (and values, when needed): float64 rounds values beyond 2**53.
        lo, hi = int(arr.min()), int(arr.max())
        exact = arr if max(hi, -lo) > FLOAT_EXACT_INT else None
        return NumericBatch(arr.astype(np.float64), nulls, "integer", lo, hi, exact)
    if arr.dtype.kind == "f":
        return NumericBatch(np.ascontiguousarray(arr, dtype=np.float64), nulls, "float" if arr.size or nulls == 0 else "empty")
    raise TypeError(f"not a numeric array: {arr.dtype}")


# Numeric types widen in this order when two parts of one column meet.
_NUMERIC_ORDER = {"boolean": 1, "integer": 2, "float": 3}


def merged_dtype(a: str, b: str) -> str:
    """The type of a column whose values have type ``a`` in one part and ``b`` in another.

    The one rule for a column's type across parts, used both where a file's
    chunks are joined (``io._concat``) and where profiles merge
    (``profiling.merge_columns``), so a column has the same type whichever way
    it was read and in whichever order its parts come:

    - ``empty`` (a part with no value, all nulls) has no type: the other's wins;
    - numeric types widen: ``boolean`` < ``integer`` < ``float``;
    - ``date`` with ``datetime`` is ``datetime``;
    - anything else (numbers with text, text or numbers with instants,
      ``string`` with ``mixed``) is ``mixed``.

    Symmetric and associative, so folding it over any number of parts gives
    one answer.
    """
    if a == b or b == "empty":
        return a
    if a == "empty":
        return b
    if a in _NUMERIC_ORDER and b in _NUMERIC_ORDER:
        return a if _NUMERIC_ORDER[a] > _NUMERIC_ORDER[b] else b
    if {a, b} == {"date", "datetime"}:
        return "datetime"
    return "mixed"


def merged_text_dtype(a: str, a_numbers: bool, b: str, b_numbers: bool) -> tuple[str, bool]:
    """Type and ``numbers_only`` of a text column whose parts have types ``a``, ``b`` (``empty``: no value).

    :func:`merged_dtype` for text parts (a file's chunks of one column): a
    part holding only numbers' text (``numbers_only``, see
    :class:`CategoricalBatch`) is ``string`` on its own and with another such
    part, but beside any other text the column mixes numbers and text:
    ``mixed``, what :func:`from_arrow` says of one chunk holding both.
    Symmetric and associative (a join: empty < numbers-only, string < mixed).
    """
    if b == "empty":
        return a, a_numbers
    if a == "empty":
        return b, b_numbers
    if a_numbers and b_numbers:
        return "string", True
    if a_numbers or b_numbers:
        return "mixed", False
    return merged_dtype(a, b), False


def numeric_texts(batch: NumericBatch) -> list[str]:
    """A numeric batch's values as the text they have in a ``mixed`` column.

    The text :func:`from_python` gives the same values within one chunk
    (``str`` of the Python value: ``1``, ``2.5``, ``True``, ``nan``), so a
    number reads the same whichever chunk of a file it came from; integers
    beyond 2**53 come from the exact ``ints``. Instants are ISO 8601 text.
    """
    if isinstance(batch, DatetimeBatch):
        return [str(datetimes.iso(int(v), batch.tz, date=batch.dtype == "date")) for v in batch.ns]
    if batch.dtype == "boolean":
        return [str(bool(v)) for v in batch.values]
    if batch.dtype == "integer":
        return [str(int(v)) for v in (batch.ints if batch.ints is not None else batch.values)]
    return [str(float(v)) for v in batch.values]


def categorical_from_strings(values: list[str], nulls: int = 0, dtype: str = "string") -> CategoricalBatch:
    if not values:
        return CategoricalBatch([], np.asarray([], dtype=np.int64), nulls, dtype)
    uniq, counts = np.unique(np.asarray(values, dtype=object).astype(str), return_counts=True)
    return CategoricalBatch([str(u) for u in uniq], np.asarray(counts, dtype=np.int64), nulls, dtype)


def from_python(values: list[Any], name: str) -> Batch:
    """Classify a list of Python values (``None`` = null) and build its batch."""
    nonnull = [v for v in values if v is not None]
    nulls = len(values) - len(nonnull)
    if not nonnull:
        return NumericBatch(np.zeros(0), nulls, "empty")
    kinds = {("bool" if isinstance(v, (bool, np.bool_)) else "num" if isinstance(v, (int, float, np.number))
              else "str" if isinstance(v, str) else "dt" if isinstance(v, _dt.date) else "other") for v in nonnull}
    if kinds == {"dt"}:
        return from_arrow(datetimes.python_to_arrow(values, name), name)
    if kinds == {"bool"}:
        return NumericBatch(np.asarray(nonnull, dtype=np.float64), nulls, "boolean")
    if kinds == {"num"}:
        if all(isinstance(v, (int, np.integer)) for v in nonnull):
            try:
                return numeric_from_numpy(np.asarray(nonnull, dtype=np.int64), nulls)
            except OverflowError:  # beyond int64: exact extremes as Python ints, floats for moments
                return NumericBatch(np.asarray([float(v) for v in nonnull]), nulls, "integer", min(nonnull),
                                    max(nonnull), np.asarray(nonnull, dtype=object))
        return NumericBatch(np.asarray(nonnull, dtype=np.float64), nulls, "float")
    if kinds == {"str"}:
        return categorical_from_strings(nonnull, nulls, "string")
    return categorical_from_strings(_python_texts(nonnull), nulls, "mixed")


def _python_texts(nonnull: list[Any]) -> list[str]:
    """Python values as the text they have in a ``mixed`` column: ``str`` (``1``, ``2.5``, ``True``)."""
    return [str(v) for v in nonnull]


def text_from_python(values: list[Any], name: str) -> Batch:
    """Python values as text, as in a ``mixed`` column (:func:`from_python` of a chunk mixing them with text).

    For a column whose chunks hold numbers in one and text in another: every
    chunk read this way gives the categories one chunk of all of them gives
    (``1``, not ``1.0``). A chunk with numbers is typed ``mixed`` (its
    numbers are text beside the other chunks' text), a chunk of text keeps
    its type; one with no value stays ``empty``.
    """
    batch = from_python(values, name)
    if isinstance(batch, CategoricalBatch) or batch.dtype == "empty":
        return batch
    return categorical_from_strings(_python_texts([v for v in values if v is not None]), batch.nulls, "mixed")


def refuse_nested(name: str, arrow_type: Any, file: str | None = None) -> None:
    """:class:`DataError` for a list, struct or map column (Parquet's nested types): no kernel reads one, and no
    cast to text exists (it was "internal error (a bug): ArrowNotImplementedError", exit 70, in profile and drift,
    and "unhashable type: 'dict'" in fairness). Nothing for any other type."""
    import pyarrow as pa

    if pa.types.is_nested(arrow_type):
        raise DataError("nested values are not supported", file=file, field=name, value=str(arrow_type),
                        expected="a column of numbers, text, booleans or dates (leave it out: --columns, or "
                                 "columns=[...])")


def from_arrow(arr: Any, name: str) -> Batch:
    """A batch from a pyarrow Array or ChunkedArray."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    nulls = arr.null_count
    t = arr.type
    if pa.types.is_null(t):
        return NumericBatch(np.zeros(0), nulls, "empty")
    if pa.types.is_dictionary(t):
        arr = arr.dictionary_decode()
        t = arr.type
    if datetimes.is_temporal_arrow(t):
        return DatetimeBatch.of(*datetimes.arrow_to_ns(arr, name))
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t) or pa.types.is_decimal(t):
        vals = arr.drop_null() if nulls else arr
        if pa.types.is_decimal(t):
            return NumericBatch(vals.cast(pa.float64()).to_numpy(), nulls, "float")
        b = numeric_from_numpy(arrownp.to_numpy(vals), nulls)
        if len(vals) == 0:
            b.dtype = "empty"
        return b
    refuse_nested(name, t)
    if not (pa.types.is_string(t) or pa.types.is_large_string(t)):
        arr = arr.cast(pa.string())  # times of day, durations, binary...: compared as text
    vc = pc.value_counts(arr.drop_null() if nulls else arr)
    values = vc.field("values").to_pylist()
    counts = arrownp.to_numpy(vc.field("counts")).astype(np.int64)
    dtype, n_num = "string", 0
    if values:
        looks_numeric = pc.match_substring_regex(vc.field("values"), _NUMBER_RE, ignore_case=True)
        n_num = pc.sum(looks_numeric).as_py() or 0
        if 0 < n_num < len(values):
            dtype = "mixed"
    return CategoricalBatch(values, counts, nulls, dtype, numbers_only=bool(values) and n_num == len(values))


def column_of(values: Any, name: str) -> Batch:
    """A batch from one column given as numpy array, pyarrow array or Python sequence."""
    if isinstance(values, (NumericBatch, CategoricalBatch)):
        return values
    if datetimes.is_datetime_series(values):
        return from_arrow(datetimes.series_to_arrow(values), name)
    try:
        import pyarrow as pa

        if isinstance(values, (pa.Array, pa.ChunkedArray)):
            return from_arrow(values, name)
    except ImportError:  # pragma: no cover
        pass
    if not isinstance(values, np.ndarray) and hasattr(values, "to_numpy"):
        return _from_series(values, name)
    if isinstance(values, np.ma.MaskedArray):
        mask = np.ma.getmaskarray(values)
        return _with_nulls(column_of(np.asarray(values.data)[~mask], name), int(mask.sum()))
    if isinstance(values, np.ndarray):
        if values.ndim != 1:
            raise DataError("a column must be one-dimensional", field=name, value=f"shape {values.shape}")
        if values.dtype.kind in "biuf":
            return numeric_from_numpy(values)
        if values.dtype.kind == "M":
            return from_arrow(datetimes.numpy_to_arrow(values), name)
        if values.dtype.kind in "US":
            return categorical_from_strings(values.astype(str).tolist())
        return from_python(values.tolist(), name)
    if isinstance(values, (list, tuple)):
        return from_python(list(values), name)
    raise DataError("unsupported column values", field=name, value=type(values).__name__,
                    expected="a numpy array, a pyarrow array or a list")


def _from_series(series: Any, name: str) -> Batch:
    """A pandas or polars Series (no pandas import needed here).

    The library's own missing values are nulls, whatever they look like once
    converted to numpy: pandas 3 stores a missing string as a float NaN in
    an object array, a nullable ``Int64`` converts to float64 with NaN. They
    are dropped by the library itself (``dropna``/``drop_nulls``) before the
    conversion, so ``Int64`` stays integer and strings stay strings. The one
    exception is a numpy float column, where NaN is a float value and counted
    as ``nan`` (pandas has no other way to store it).
    """
    dtype = getattr(series, "dtype", None)
    if isinstance(dtype, np.dtype) and dtype.kind in "fc":
        return column_of(series.to_numpy(), name)
    isna = getattr(series, "isna", None) or getattr(series, "is_null", None)
    drop = getattr(series, "dropna", None) or getattr(series, "drop_nulls", None)
    if isna is None or drop is None:
        return column_of(series.to_numpy(), name)
    nulls = int(np.count_nonzero(np.asarray(isna(), dtype=bool)))
    kept = drop() if nulls else series
    return _with_nulls(column_of(np.asarray(kept.to_numpy()), name), nulls)


def series_name(values: Any) -> str | None:
    """The name of a pandas or polars Series as text; None when it has none (pandas None, polars "")."""
    name = getattr(values, "name", None)
    if name is None or name == "" or isinstance(values, np.ndarray):
        return None
    return str(name)


def _with_nulls(b: Batch, nulls: int) -> Batch:
    b.nulls += nulls
    return b


def columns_of(data: Any, columns: list[str] | None = None) -> dict[str, Batch]:
    """Column batches of in-memory ``data``.

    ``data``: a mapping of name to values, a pyarrow Table or RecordBatch, a
    numpy structured array, or a single 1-D array/list (named ``value``).
    ``columns`` selects and orders columns; an unknown name is a DataError.
    """
    try:
        import pyarrow as pa

        if isinstance(data, (pa.Table, pa.RecordBatch)):
            data = {n: data.column(n) for n in data.column_names}
    except ImportError:  # pragma: no cover
        pass
    if not isinstance(data, (Mapping, np.ndarray)) and hasattr(data, "columns") and hasattr(data, "__getitem__"):
        data = {c: data[c] for c in data.columns}  # a DataFrame (pandas, polars)
    elif not isinstance(data, (Mapping, np.ndarray)) and hasattr(data, "to_numpy") and series_name(data):
        data = {series_name(data): data}  # a named Series (pandas, polars): its name is the column's
    if isinstance(data, np.ndarray) and data.dtype.names:
        data = {n: data[n] for n in data.dtype.names}
    if not isinstance(data, Mapping):
        data = {"value": data}
    names = list(data)
    if columns is not None:
        missing = [c for c in columns if c not in data]
        if missing:
            from ..tomlcheck import suggest

            close = suggest(missing[0], names)
            raise UnknownColumnError("no such column", field=missing[0], expected=f"one of {', '.join(map(str, names))}",
                            hint=f"did you mean {close!r}?" if close else None)
        names = list(columns)
    return {str(n): column_of(data[n], str(n)) for n in names}
