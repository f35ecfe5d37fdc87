"""Reading data files into column batches, chunk by chunk, without pandas.

Formats by extension: ``.csv`` (also ``.csv.gz``/``.tsv``), ``.parquet``/``.pq``,
``.npy``, ``.npz``, ``.jsonl``/``.ndjson``/``.json`` (JSON lines). Parquet is
read by row group batches and CSV by blocks (pyarrow's streaming readers),
``.npy`` memory-mapped, so files larger than memory can be profiled.

Every failure is a :class:`DataError` naming the file, and the column and
row (1-based, data rows after a CSV header; lines for JSON) where known.
CSV column types are inferred from the first block (16 MiB): a later value
that does not fit the inferred type is reported with its row. A column with
no value in the first block (pyarrow types it null) takes the type pyarrow
infers from its values over the whole file instead (:func:`_late_csv_types`:
one more pass, reading only those columns), so a sparse column filled only
in later rows reads as it would in one block.
"""

from __future__ import annotations

import errno
import json
import os
import re
from collections.abc import Collection, Iterator
from functools import reduce
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError, DataNotFoundError, UnknownColumnError
from ..filekinds import file_kind
from .columns import Batch, columns_of, from_arrow, from_python, text_from_python

BATCH_ROWS = 1 << 20
CSV_BLOCK = 16 << 20
JSON_LINES_PER_BATCH = 100_000

_ROW_RE = re.compile(r"Row #(\d+)")
_COL_RE = re.compile(r"In CSV column #(\d+)")
_VALUE_RE = re.compile(r"invalid value '(.*)'")


def file_format(path: Path) -> str:
    name = path.name.lower()
    for suffix, fmt in ((".csv", "csv"), (".csv.gz", "csv"), (".tsv", "tsv"), (".parquet", "parquet"),
                        (".pq", "parquet"), (".npy", "npy"), (".npz", "npz"), (".jsonl", "jsonl"),
                        (".ndjson", "jsonl"), (".json", "jsonl")):
        if name.endswith(suffix):
            return fmt
    raise DataError("unknown file format", file=str(path), value=path.suffix or path.name,
                    expected=".csv, .tsv, .parquet, .npy, .npz or .jsonl")


def _check_columns(path: Path, available: list[str], columns: list[str] | None) -> list[str]:
    """The columns to read (``columns``, or all), each checked to exist and to be named once in the file: a
    header naming one twice (``a,a,b``) stopped every command with an internal error. A duplicate that is
    not read (``--columns b``) does not matter."""
    twice = sorted({c for c in (available if columns is None else columns) if available.count(c) > 1})
    if twice:
        raise DataError("its header names a column more than once", file=str(path), field=twice[0],
                        value=", ".join(twice), expected="each column named once",
                        hint="rename the repeated columns in the header (or name the others with --columns)")
    if columns is None:
        return available
    from ..tomlcheck import suggest

    for c in columns:
        if c not in available:
            close = suggest(c, available)
            raise UnknownColumnError("no such column", file=str(path), field=c,
                            expected=f"one of {', '.join(available)}" if len(available) < 30 else None,
                            hint=f"did you mean {close!r}?" if close else None)
    return list(columns)


def checked_format(path: Path) -> str:
    """The format of an existing data file: a missing file is not-found (exit 3) whatever its suffix."""
    _open_check(path)
    return file_format(path)


def _open_check(path: Path) -> None:
    """A data file must exist and be a regular file (through links): a FIFO may never end and a device such
    as ``/dev/zero`` never stops growing, so neither is read (another user may rename one into a shared
    folder under a ``.csv`` name)."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # links that lead back to themselves: there, but no file at their end
            raise DataError("is a symbolic link that leads back to itself (a loop)", file=str(path),
                            expected="a regular file") from None
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise DataError(f"cannot be reached: {exc.strerror}", file=str(path), expected="a readable file") from None
        raise DataNotFoundError("file not found", file=str(path)) from None
    except ValueError:  # a NUL in the name: missing, as os.path.exists says
        raise DataNotFoundError("file not found", file=str(path)) from None
    kind = file_kind(mode)
    if kind is not None:
        raise DataError(f"is {kind}, not a data file", file=str(path), expected="a regular file")
    try:  # a file this user may not read: said so (pyarrow's "[Errno 13] Failed to open local file ... Detail")
        os.close(os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK))
    except OSError as exc:
        raise DataError(f"cannot be read: {exc.strerror}", file=str(path), expected="a file this user may read") \
            from None


ICONV_HINT = "convert the file first, e.g. `iconv -f latin1 -t utf-8 FILE > FILE.utf8.csv`"
"""What a file that is not UTF-8 text is told (its header or a value)."""


def iter_arrow(path: str | Path, columns: list[str] | None = None, progress: Any = None) -> Iterator[Any]:
    """pyarrow RecordBatches (or Tables) of the file, chunk by chunk (CSV, TSV, Parquet)."""
    import pyarrow as pa

    path = Path(path)
    fmt = checked_format(path)
    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            pf = pq.ParquetFile(path)
            names = _check_columns(path, pf.schema_arrow.names, columns)
            from .columns import refuse_nested

            for n in names:  # before any row is read: every reader of the file (fairness took them as values)
                refuse_nested(n, pf.schema_arrow.field(n).type, str(path))
            total = pf.metadata.num_rows
            done = 0
            for rb in pf.iter_batches(batch_size=BATCH_ROWS, columns=names):
                done += rb.num_rows
                if progress is not None:
                    progress.update(done, total, path.name, unit="rows")
                yield rb
            if not done:  # no rows: its columns still are (see the CSV's header alone, below)
                yield _no_rows(pf.schema_arrow, names)
            return
        from pyarrow import csv

        _refuse_binary(path)
        parse = csv.ParseOptions(delimiter="\t" if fmt == "tsv" else ",")
        read = csv.ReadOptions(block_size=CSV_BLOCK)
        reader = csv.open_csv(path, read_options=read, parse_options=parse, convert_options=_csv_convert())
        names = _check_columns(path, reader.schema.names, columns)
        late = [n for n in names if pa.types.is_null(reader.schema.field(n).type)]
        if late or set(names) != set(reader.schema.names):
            # Convert only the selected columns (a column left out cannot fail the read), the late ones
            # with the type their values have over the whole file, not the first block's null.
            types = _late_csv_types(path, read, parse, late) if late else {}
            reader = csv.open_csv(path, read_options=read, parse_options=parse,
                                  convert_options=_csv_convert(include_columns=names, column_types=types))
        rows, batches = 0, 0
        while True:
            try:
                rb = reader.read_next_batch()
            except StopIteration:
                if not batches:  # a header alone: its columns, with no rows (a profile said "0 columns")
                    yield _no_rows(reader.schema, names)
                return
            rows += rb.num_rows
            batches += 1
            if progress is not None:
                # Uncompressed CSV: rows so far times bytes per row estimates the position.
                progress.update(rows, None, path.name, unit="rows")
            yield rb.select(names)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OSError) as exc:
        raise _arrow_error(path, exc, columns) from None
    except UnicodeDecodeError as exc:  # a column name's bytes (pyarrow decodes the header's names when asked)
        bad = exc.object[exc.start:exc.start + 1].hex() if isinstance(exc.object, bytes) else "?"
        raise DataError(f"its header is not UTF-8 text (byte 0x{bad} in a column name): a binary file, or text in "
                        "another encoding", file=str(path), expected="text encoded as UTF-8", hint=ICONV_HINT) from None


SNIFF_BYTES = 64 << 10
"""How much of a CSV's start :func:`_refuse_binary` reads: the first block of any text file holds no NUL."""


def _refuse_binary(path: Path) -> None:
    """A DataError (exit 1) when ``path``, named as an uncompressed CSV/TSV, holds a NUL byte in its first
    :data:`SNIFF_BYTES`: a binary file (or UTF-16 text), which pyarrow misparsed into ragged rows of
    replacement characters ("row 5: CSV parse error: Expected 1 columns, got 3: <binary>"). Compressed files
    (``.csv.gz``) are binary on disk and left to pyarrow."""
    if path.suffix.lower() not in (".csv", ".tsv", ".txt"):
        return
    try:
        with open(path, "rb") as fh:
            head = fh.read(SNIFF_BYTES)
    except OSError:
        return  # pyarrow's own open says what is wrong
    at = head.find(b"\0")
    if at >= 0:
        raise DataError(f"is not a text CSV file (found a NUL byte at offset {at})", file=str(path),
                        expected="comma-separated text encoded as UTF-8",
                        hint="a binary file named .csv; or, if it is UTF-16 text, convert it first: "
                             "`iconv -f utf-16 -t utf-8 FILE > FILE.utf8.csv`")


def _no_rows(schema: Any, names: list[str]) -> Any:
    """An empty batch of the columns ``names`` of ``schema``: what a file with columns and no rows holds, so
    that every reader sees its columns (counts 0, no statistics; a drift's verdict ``no_data``)."""
    import pyarrow as pa

    return pa.RecordBatch.from_pylist([], schema=pa.schema([schema.field(n) for n in names]))


def _csv_convert(**options: Any) -> Any:
    """The conversion options of every CSV read (and of the type inference of :func:`_late_csv_types`)."""
    from pyarrow import csv

    # Empty cells are nulls in text columns too (pyarrow's default keeps "").
    return csv.ConvertOptions(strings_can_be_null=True, **options)


def _late_csv_types(path: Path, read: Any, parse: Any, late: list[str]) -> dict[str, Any]:
    """The types pyarrow infers for the ``late`` columns (null in the first block) over the whole file.

    pyarrow's readers, streaming or not, fix a column's type from the first
    block; a column with no value there is null and its first later value
    fails the read. One pass reads only these columns, as text, and keeps
    per column a few *witness* values (:func:`_add_witnesses`) for which
    pyarrow infers the type it would for every value of the column. Memory:
    one block of these columns and at most one witness per type pyarrow tries;
    time: one more parse of the file and a few conversions of each block's
    distinct values. A column null in the whole file is left out (it stays
    null).
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    from pyarrow import csv

    reader = csv.open_csv(path, read_options=read, parse_options=parse, convert_options=_csv_convert(
        include_columns=late, column_types={c: pa.string() for c in late}))
    kept: dict[str, dict[Any, str]] = {c: {} for c in late}
    for rb in reader:
        for c in late:
            _add_witnesses(kept[c], pc.unique(rb.column(c).drop_null()))
    return {c: _csv_type(pa.array(list(dict.fromkeys(w.values())), pa.string())) for c, w in kept.items() if w}


def _csv_types() -> list[Any]:
    """The types pyarrow's CSV type inference tries, less text (which every value converts to)."""
    import pyarrow as pa

    return [pa.null(), pa.int64(), pa.bool_(), pa.float64(), pa.date32(), pa.time32("s"), pa.timestamp("s"),
            pa.timestamp("ns"), pa.timestamp("s", "UTC"), pa.timestamp("ns", "UTC")]


def _add_witnesses(kept: dict[Any, str], values: Any) -> None:
    """Add to ``kept`` (type -> a value that does not convert to it) one of ``values`` for each type that
    one of them does not convert to (``values``: text, non-null).

    pyarrow infers the first type, in a fixed order, that every value of a
    column converts to. For each type it tries, the witnesses convert to it
    exactly when every value seen does (one failing value is kept), so
    pyarrow infers the same type for them as for all the values, blocks
    apart or not. A type pyarrow infers that is not in :func:`_csv_types`
    (a newer pyarrow's) is tried from the block it is met in on.
    """
    import pyarrow as pa

    if not len(values):
        return
    types = _csv_types()
    found = _csv_type(values)
    if found not in types and not pa.types.is_string(found):
        types.append(found)
    for t in types:
        if t in kept or _csv_converts(values, t):
            continue
        bad = values
        while len(bad) > 1:  # bisect to one value that does not convert
            half = bad.slice(0, len(bad) // 2)
            bad = half if not _csv_converts(half, t) else bad.slice(len(bad) // 2)
        kept[t] = bad[0].as_py()


def _csv_text(values: Any) -> bytes:
    """``values`` (text) as a one-column CSV (quoted, so any text reads back as itself)."""
    import pyarrow as pa
    from pyarrow import csv

    sink = pa.BufferOutputStream()
    csv.write_csv(pa.table({"v": values}), sink, csv.WriteOptions(quoting_style="all_valid"))
    return sink.getvalue().to_pybytes()


def _csv_read(values: Any, types: dict[str, Any] | None = None) -> Any:
    import pyarrow as pa
    from pyarrow import csv

    data = _csv_text(values)
    # One block holds all of it: the type is inferred from every value, not the first block's.
    return csv.read_csv(pa.BufferReader(data), read_options=csv.ReadOptions(block_size=len(data) + 1),
                        convert_options=_csv_convert(column_types=types or {}))


def _csv_type(values: Any) -> Any:
    """The type pyarrow's CSV reader infers for a column holding ``values`` (text, non-null)."""
    return _csv_read(values).schema.field(0).type


def _csv_converts(values: Any, type_: Any) -> bool:
    """Whether pyarrow's CSV reader converts every one of ``values`` (text, non-null) to ``type_``."""
    import pyarrow as pa

    try:
        _csv_read(values, {"v": type_})
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return False
    return True


def _arrow_error(path: Path, exc: Exception, columns: list[str] | None) -> DataError:
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    m_row = _ROW_RE.search(msg)
    m_col = _COL_RE.search(msg)
    field = None
    if m_col:
        field = f"column #{int(m_col.group(1)) + 1}"
        try:  # name the column when the header is readable
            with open(path, encoding="utf-8", errors="replace") as fh:
                header = fh.readline().rstrip("\r\n").split("\t" if path.suffix == ".tsv" else ",")
            field = header[int(m_col.group(1))].strip('"')
        except (OSError, IndexError):
            pass
    row = int(m_row.group(1)) if m_row else None
    if row is None and "CSV parse error" in msg:
        row = _find_ragged_row(path)
    m_val = _VALUE_RE.search(msg)
    if row is None and m_col and m_val:
        row = _find_value_row(path, int(m_col.group(1)), m_val.group(1))
    hint = None
    if "\ufffd" in msg:
        # pyarrow quotes the row with its bytes that are not UTF-8 already replaced by U+FFFD: they cannot be
        # shown as the \xNN escapes every other message uses, so the quote is left out and the cause said
        msg = re.sub(r"(got \d+):.*$", r"\1", msg)  # "Expected 1 columns, got 3: <the row>"
        msg = msg.split("\ufffd")[0].rstrip(" :") + " (the row holds bytes that are not UTF-8 text)"
        hint = ICONV_HINT
    text = msg
    if row is not None:
        text = f"row {row}: {msg}"
    return DataError(f"cannot read: {text}", file=str(path), field=field, hint=hint)


def _find_ragged_row(path: Path) -> int | None:
    """1-based data row (after the header) whose field count differs from the header's.

    Only run after pyarrow rejected the file: pyarrow's parse errors do not
    say where the bad row is, and a slow exact scan is fine at that point.
    """
    import csv as pycsv

    try:
        with open(path, newline="", encoding="utf-8", errors="replace") as fh:
            reader = pycsv.reader(fh, delimiter="\t" if path.suffix == ".tsv" else ",")
            header = next(reader, None)
            if header is None:
                return None
            for i, fields in enumerate(reader, 1):
                if fields and len(fields) != len(header):
                    return i
    except (OSError, pycsv.Error):
        return None
    return None


def _find_value_row(path: Path, col: int, value: str) -> int | None:
    """1-based data row where column ``col`` holds ``value`` (after a conversion error)."""
    import csv as pycsv

    try:
        with open(path, newline="", encoding="utf-8", errors="replace") as fh:
            reader = pycsv.reader(fh, delimiter="\t" if path.suffix == ".tsv" else ",")
            next(reader, None)
            for i, fields in enumerate(reader, 1):
                if col < len(fields) and fields[col] == value:
                    return i
    except (OSError, pycsv.Error):
        return None
    return None


def read_batches(path: str | Path, columns: list[str] | None = None, progress: Any = None, *,
                 as_text: Collection[str] = ()) -> Iterator[dict[str, Batch]]:
    """Column batches of a data file, chunk by chunk (see the module docstring).

    ``as_text``: columns of a JSON-lines file read as text in every chunk
    (:func:`.columns.text_from_python`), for a column with numbers in one
    chunk and text in another (the profile reads it again so). Only JSON
    lines can differ in kind between chunks: the other formats fix a
    column's type for the whole file, and ignore ``as_text``.
    """
    path = Path(path)
    fmt = checked_format(path)
    try:
        if fmt in ("csv", "tsv", "parquet"):
            for rb in iter_arrow(path, columns, progress):
                yield {name: _column(path, rb, name) for name in rb.schema.names}
        elif fmt == "npy":
            yield from _npy_batches(path, columns, progress)
        elif fmt == "npz":
            yield _npz_columns(path, columns)
        else:
            yield from _jsonl_batches(path, columns, progress, frozenset(as_text))
    finally:
        if progress is not None:
            progress.close()


def _column(path: Path, rb: Any, name: str) -> Batch:
    """Column ``name`` of an Arrow batch (or table) of ``path`` as a batch. A text column that is not UTF-8 (pyarrow reads it
    as bytes: a Latin-1 export) is a :class:`DataError` naming the file, the column and the first such row: it
    ended as "internal error (a bug): ArrowInvalid: Invalid UTF8 payload"."""
    import pyarrow as pa

    try:
        return from_arrow(rb.column(name), name)
    except DataError as exc:
        if exc.file is None:  # said of the column alone: this file's
            exc.file = str(path)
        raise
    except pa.ArrowInvalid as exc:
        if "utf8" not in str(exc).lower():
            raise
        text = path.suffix.lower() in (".csv", ".tsv", ".txt")  # Parquet's bytes are no export to convert
        row = _first_bad_utf8_row(path) if text else None
        raise DataError(f"{'row ' + str(row) + ': ' if row else ''}is not UTF-8 text", file=str(path), field=name,
                        expected="text encoded as UTF-8" if text else "a string column (this one holds bytes)",
                        hint=ICONV_HINT if text else None) from None


def _first_bad_utf8_row(path: Path) -> int | None:
    """The data row (1: the first after the header) of ``path``'s first line that is not UTF-8, or None."""
    try:
        with open(path, "rb") as f:
            for i, line in enumerate(f):
                try:
                    line.decode("utf-8")
                except UnicodeDecodeError:
                    return i or None
    except OSError:
        return None
    return None


def _npy_batches(path: Path, columns: list[str] | None, progress: Any) -> Iterator[dict[str, Batch]]:
    _open_check(path)
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise DataError(f"cannot read .npy: {exc}", file=str(path)) from None
    if arr.dtype.names:
        names = list(arr.dtype.names)
        get = lambda a, n: a[n]
    elif arr.ndim == 1:
        names = ["value"]
        get = lambda a, n: a
    elif arr.ndim == 2:
        names = [str(i) for i in range(arr.shape[1])]
        get = lambda a, n: a[:, int(n)]
    else:
        raise DataError("a .npy file must hold a 1-D, 2-D or structured array", file=str(path),
                        value=f"shape {arr.shape}")
    names = _check_columns(path, names, columns)
    n = arr.shape[0]
    for lo in range(0, max(n, 1), BATCH_ROWS):
        part = arr[lo:lo + BATCH_ROWS]
        try:
            yield columns_of({c: np.ascontiguousarray(get(part, c)) for c in names})
        except DataError as exc:
            exc.file = str(path)
            raise
        if progress is not None:
            progress.update(min(lo + BATCH_ROWS, n), n, path.name, unit="rows")


def _npz_columns(path: Path, columns: list[str] | None) -> dict[str, Batch]:
    _open_check(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (ValueError, OSError) as exc:
        raise DataError(f"cannot read .npz: {exc}", file=str(path)) from None
    names = _check_columns(path, list(data), columns)
    lengths = {k: len(data[k]) for k in names}
    if len(set(lengths.values())) > 1:
        raise DataError("the arrays of an .npz file must have the same length", file=str(path), value=lengths)
    for k in names:
        if data[k].ndim != 1:
            raise DataError("an .npz column must be one-dimensional", file=str(path), field=k,
                            value=f"shape {data[k].shape}")
    return columns_of({k: data[k] for k in names})


def _refuse_result_document(path: Path) -> None:
    """A JSON file that is one document, not JSON lines: when it is an edgeorch result (``--json`` of a kernel
    command: ``kind`` and ``rows``), a :class:`DataError` saying so ("malformed JSON" for valid JSON sent the user
    looking for a syntax error); anything else returns (the caller's error stands)."""
    try:
        if path.stat().st_size > 64 << 20:
            return
        doc = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return
    if isinstance(doc, dict) and "kind" in doc and "rows" in doc:
        raise DataError(f"is the result document of a {doc.get('kind')} check (--json), not data nor a saved profile",
                        file=str(path), expected="a data file, or a profile saved with `edgeorch profile FILE --save "
                                                 "PROFILE.json`")


def _json_objects(path: Path, fh: Any) -> Iterator[tuple[int, bytes, dict[str, Any]]]:
    """``(line number, raw line, object)`` for each non-blank line of a JSON-lines file.

    Raises DataError naming the file and line for malformed JSON or a line
    that is not a JSON object.
    """
    for lineno, raw in enumerate(fh, 1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            if lineno == 1 and raw.strip() in (b"{", "{"):
                _refuse_result_document(path)  # a pretty-printed document: read it whole to say what it is
            raise DataError(f"malformed JSON: {getattr(exc, 'msg', exc)}", file=str(path), line=lineno) from None
        if not isinstance(obj, dict):
            raise DataError("each line must be a JSON object", file=str(path), line=lineno,
                            value=type(obj).__name__)
        yield lineno, raw, obj


def _jsonl_batches(path: Path, columns: list[str] | None, progress: Any,
                   as_text: frozenset[str] = frozenset()) -> Iterator[dict[str, Batch]]:
    _open_check(path)

    def batch(values: list[Any], name: str) -> Batch:
        return text_from_python(values, name) if name in as_text else from_python(values, name)

    names: list[str] | None = None
    rows: dict[str, list[Any]] = {}
    count = 0
    size = path.stat().st_size
    try:
        fh = open(path, "rb")
    except OSError as exc:
        raise DataError(f"cannot read: {exc.strerror}", file=str(path)) from None
    with fh:
        for lineno, raw, obj in _json_objects(path, fh):
            if names is None:
                names = _check_columns(path, list(obj), columns)
                rows = {n: [] for n in names}
            for n in names:
                v = obj.get(n)
                if isinstance(v, (dict, list)):
                    raise DataError("nested values are not supported", file=str(path), line=lineno, field=n,
                                    expected="a number, string, boolean or null")
                rows[n].append(v)
            count += 1
            if count == JSON_LINES_PER_BATCH:
                yield {n: batch(rows[n], n) for n in names}
                rows = {n: [] for n in names}
                count = 0
                if progress is not None:
                    progress.update(fh.tell(), size, path.name, unit="B")
    if names is None:
        if columns:
            _check_columns(path, [], columns)
        return
    if count or not rows:
        yield {n: batch(rows[n], n) for n in names}


def read_table(src: Any, columns: list[str] | None = None, progress: Any = None) -> Any:
    """The whole file (or in-memory table) as a pyarrow Table (for row-level kernels)."""
    import pyarrow as pa

    if isinstance(src, pa.Table):
        return src.select(columns) if columns else src
    if isinstance(src, (str, Path)):
        path = Path(src)
        fmt = checked_format(path)
        if fmt in ("csv", "tsv", "parquet"):
            batches = list(iter_arrow(path, columns, progress))
            if progress is not None:
                progress.close()
            if not batches:
                return pa.table({})
            return pa.Table.from_batches(batches)
        if fmt == "npy" or fmt == "npz":
            data = np.load(path, allow_pickle=False) if fmt == "npz" else None
            if data is not None:
                with data:
                    cols = {k: data[k] for k in data.files}
                names = _check_columns(path, list(cols), columns)
                return pa.table({k: cols[k] for k in names})
            arr = np.load(path, allow_pickle=False)
            if arr.dtype.names:
                cols = {k: arr[k] for k in arr.dtype.names}
            elif arr.ndim == 1:
                cols = {"value": arr}
            else:
                cols = {str(i): arr[:, i] for i in range(arr.shape[1])}
            names = _check_columns(path, list(cols), columns)
            return pa.table({k: cols[k] for k in names})
        _open_check(path)
        rows: dict[str, list[Any]] = {}
        names_: list[str] | None = None
        with open(path, "rb") as fh:
            for _, _, obj in _json_objects(path, fh):
                if names_ is None:
                    names_ = _check_columns(path, list(obj), columns)
                    rows = {n: [] for n in names_}
                for n in names_:
                    rows[n].append(obj.get(n))
        try:
            return pa.table({n: pa.array(v) for n, v in rows.items()})
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            return pa.table({n: pa.array([None if x is None else str(x) for x in v]) for n, v in rows.items()})
    if isinstance(src, dict):
        cols = {k: v for k, v in src.items() if columns is None or k in columns}
        if columns:
            missing = [c for c in columns if c not in src]
            if missing:
                raise UnknownColumnError("no such column", field=missing[0], expected=f"one of {', '.join(map(str, src))}")
        return pa.table({k: (v if isinstance(v, (pa.Array, pa.ChunkedArray, np.ndarray)) else pa.array(v))
                         for k, v in cols.items()})
    raise DataError("unsupported data", value=type(src).__name__, expected="a path, a mapping or a pyarrow Table")


def load_table(src: Any, columns: list[str] | None = None, progress: Any = None) -> dict[str, Batch]:
    """All of ``src`` (a path or in-memory data) as one batch per column."""
    if not isinstance(src, (str, Path)):
        return columns_of(src, columns)
    path = Path(src)
    if checked_format(path) in ("csv", "tsv", "parquet"):
        table = read_table(path, columns, progress)
        return {name: _column(path, table, name) for name in table.column_names}
    merged: dict[str, list[Batch]] = {}
    for batch in read_batches(path, columns, progress):
        for k, v in batch.items():
            merged.setdefault(k, []).append(v)
    return {k: _concat(v) for k, v in merged.items()}


def _concat(parts: list[Batch]) -> Batch:
    """One batch of a column from the batches of its chunks, in file order (JSON lines, ``.npy``).

    The column's type is :func:`.columns.merged_dtype` folded over the
    chunks' types, the rule merged profiles follow, so neither the chunk
    order nor the way the file was read changes it: a chunk with no value
    (``empty``, all nulls) takes the type of the others (all chunks empty:
    ``empty``); integers with floats are ``float``; numbers with text are a
    ``mixed`` categorical batch whose numbers read as within one chunk
    (:func:`.columns.numeric_texts`: ``1``, not ``1.0``).
    """
    from .columns import CategoricalBatch, DatetimeBatch, NumericBatch, categorical_from_strings, merged_dtype
    from .columns import numeric_texts

    if len(parts) == 1:
        return parts[0]
    nulls = sum(p.nulls for p in parts)
    dtype = reduce(merged_dtype, (p.dtype for p in parts))
    # All-null chunks have no type (an empty NumericBatch): they add nulls, never decide the batch's shape.
    typed = [p for p in parts if p.dtype != "empty"]
    if not typed:
        return NumericBatch(np.zeros(0), nulls, "empty")
    if all(isinstance(p, DatetimeBatch) for p in typed):  # chunks of one datetime column
        return DatetimeBatch.of(np.concatenate([p.ns for p in typed]), nulls, typed[0].tz,  # type: ignore[union-attr]
                                dtype == "date")
    if all(isinstance(p, NumericBatch) and not isinstance(p, DatetimeBatch) for p in typed):
        numeric = [p for p in typed if isinstance(p, NumericBatch)]
        out = NumericBatch(np.concatenate([p.values for p in numeric]), nulls, dtype)
        ints = [p for p in numeric if p.int_min is not None]
        if ints and len(ints) == len([p for p in numeric if len(p.values)]):
            # a batch's int_min and int_max are set together (numeric_from_numpy, DatetimeBatch.of)
            out.int_min = min(p.int_min for p in ints if p.int_min is not None)
            out.int_max = max(p.int_max for p in ints if p.int_max is not None)
            if any(p.ints is not None for p in ints):  # keep every exact value (small ones are exact as floats)
                exact = [p.ints if p.ints is not None else p.values.astype(np.int64) for p in ints]
                kinds = {e.dtype.kind for e in exact}
                out.ints = np.concatenate(exact) if len(kinds) == 1 and kinds <= {"i", "u"} else np.concatenate(
                    [e.astype(object) for e in exact])  # int64 with uint64 would become float64
        return out
    counts: dict[str, int] = {}
    for p in typed:
        if isinstance(p, CategoricalBatch):
            for v, c in zip(p.values, p.counts):
                counts[v] = counts.get(v, 0) + int(c)
        else:
            for v in numeric_texts(p):
                counts[v] = counts.get(v, 0) + 1
    cb = categorical_from_strings([], nulls, dtype)  # "string", or "mixed" when numbers or instants met text
    cb.values = list(counts)
    cb.counts = np.asarray(list(counts.values()), dtype=np.int64)
    return cb
