"""Terminal output: aligned tables, JSON for scripts, durations, progress.

Every CLI command renders through here so that tables look the same
everywhere and ``--json`` always prints one JSON document on stdout.
"""

from __future__ import annotations

import json
import math
import re
import sys
import time
from typing import Any, Iterable, Sequence, TextIO


# Controls (C0, DEL, C1), the line and paragraph separators (str.splitlines ends a line there), bidi marks,
# embeddings, overrides and isolates, lone surrogates.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
                          "\ud800-\udfff]")


def printable(text: str) -> str:
    """``text`` safe to show on a terminal or in a log: each control character (C0, DEL, C1), line or
    paragraph separator (U+2028, U+2029) and bidi mark or override (which would show a name reversed) as its
    escape (``\\n``, ``\\x1b``, ``\\u2028``, ``\\u202e``), each
    lone surrogate (a byte of a file name that is not UTF-8, as ``os.fsdecode`` leaves it) as ``\\xNN``;
    everything else, other scripts included, as it is.

    Untrusted text (a file name a local user dropped, a task's message) can then neither move the
    cursor, recolour or clear the operator's terminal, nor forge a line of a table or of the journal.
    """
    if text.isprintable():  # the common case, no scan (isprintable is stricter: some spaces need the regex)
        return text
    return _UNPRINTABLE.sub(_escape, text)


def _escape(m: re.Match[str]) -> str:
    code = ord(m.group())
    if 0xDC80 <= code <= 0xDCFF:  # surrogateescape's byte
        return f"\\x{code - 0xDC00:02x}"
    return repr(m.group())[1:-1]  # \n, \t, \x1b, \x85, \ud800


_SGR = re.compile(r"\x1b\[(?:[0-9]{1,3}[;:]){0,15}[0-9]{0,3}m")
"""A colour or weight (Select Graphic Rendition): what a task's own output may keep on a terminal (parameters of
at most 3 digits; one that conceals text, 8, is escaped: :func:`terminal_safe`)."""
_LINE_SAFE = re.compile(r"\x1b\[(?:[0-9]{1,3}[;:]){0,15}[0-9]{0,3}m|[^\t\n\r\x1b]+|[\t\n\r\x1b]")


def terminal_safe(text: str) -> str:
    """A task's log as a terminal may show it: its lines, tabs, carriage returns (a progress bar) and colours kept,
    every other control (a screen clear, a cursor move, a window title, OSC 52's clipboard write) made
    :func:`printable`. ``edgeorch logs`` on a terminal; a pipe gets the bytes as written."""
    if text.isprintable():
        return text
    out = []
    for piece in _LINE_SAFE.findall(text):
        kept = piece in "\t\n\r" or (_SGR.fullmatch(piece) is not None and "8" not in re.split("[;:]", piece[2:-1]))
        out.append(piece if kept else printable(piece))
    return "".join(out)


def render_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """Return ``rows`` as a left-aligned text table under ``headers``.

    Cells are converted with ``str`` and made :func:`printable` (a newline in a value cannot forge a row);
    ``None`` renders as ``-``. Numbers are right-aligned. An empty ``rows`` gives just the header line.
    """
    raw = [list(row) for row in rows]
    cells = [[_cell(v) for v in row] for row in raw]
    numeric = [
        bool(raw) and all(
            isinstance(row[i], (int, float)) and not isinstance(row[i], bool) for row in raw if row[i] is not None
        )
        for i in range(len(headers))
    ]
    widths = [display_width(h) for h in headers]
    for row in cells:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], display_width(cell))
    lines = ["  ".join(_pad(h.upper(), widths[i], False) for i, h in enumerate(headers)).rstrip()]
    for row in cells:
        lines.append("  ".join(_pad(cell, widths[i], numeric[i]) for i, cell in enumerate(row)).rstrip())
    return "\n".join(lines)


def display_width(text: str) -> int:
    """Columns ``text`` takes on a terminal: a wide or full-width character (CJK, ``名``) takes two, a combining
    mark none, others one (``len`` counted characters, and a table with ``名前`` in it went out of line)."""
    if text.isascii():
        return len(text)
    import unicodedata

    return sum(0 if unicodedata.combining(ch) else 2 if unicodedata.east_asian_width(ch) in "WF" else 1
               for ch in text)


def _pad(cell: str, width: int, right: bool) -> str:
    fill = " " * max(0, width - display_width(cell))
    return fill + cell if right else cell + fill


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return f"{value:.6g}"
    return printable(str(value))


def print_table(headers: Sequence[str], rows: Iterable[Sequence[Any]], out: TextIO | None = None, *,
                empty: str | None = None) -> None:
    """Print :func:`render_table` to ``out`` (stdout by default).

    ``empty``: what to print instead when there are no rows (a listing's "nothing yet, and how to make
    something"); without it an empty table is its header line alone.
    """
    rows = list(rows)
    if not rows and empty is not None:
        print(empty, file=out or sys.stdout)
        return
    print(render_table(headers, rows), file=out or sys.stdout)


def _json_default(obj: Any) -> Any:
    try:
        import numpy as np  # local: keep the CLI's start-up light

        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, np.ndarray):
            return obj.tolist()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    return str(obj)


def dumps(obj: Any, *, indent: int | None = 2) -> str:
    """JSON text for ``obj``; NaN/inf become ``null`` so the output is strict JSON."""
    return json.dumps(finite(obj), indent=indent, default=_json_default, allow_nan=False)


def finite(obj: Any) -> Any:
    """``obj`` with every NaN or infinity (JSON has none) as None, in dicts, lists and tuples at any depth: what
    every JSON edgeorch prints or sends writes for them (a command's ``--json`` and the daemon's replies alike)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if type(obj).__module__ == "numpy" and getattr(obj, "shape", None) == ():  # a numpy scalar (np.float32 is no
        return finite(obj.item())  # float: its NaN reached json.dumps, which refused the whole document)
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj


def clip(text: str, limit: int) -> str:
    """``text`` itself when it has at most ``limit`` characters, else its first ``limit`` and how long it was: what
    a record keeps of a text someone else chose (a refused request's argument, a dropped link's target)."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} chars)"


def shorten_middle(text: str, limit: int) -> str:
    """``text`` itself when it has at most ``limit`` characters, else its head and tail around ``...`` (``limit``
    characters in all): a long file name in a table keeps its start and its extension, and does not widen every
    row (one 254-character name padded each line of ``edgeorch inputs`` to ~480 columns). ``--json`` has it whole."""
    if len(text) <= limit:
        return text
    tail = (limit - 3) // 2
    return f"{text[:limit - 3 - tail]}...{text[len(text) - tail:]}"


def print_json(obj: Any, out: TextIO | None = None) -> None:
    """Print ``obj`` as one indented, strict JSON document."""
    print(dumps(obj), file=out or sys.stdout)


def format_duration(seconds: float | None) -> str:
    """``1.2s``, ``3m04s``, ``2h05m``; ``-`` for ``None``."""
    if seconds is None:
        return "-"
    if seconds < 0:
        seconds = 0.0
    if seconds < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{seconds:.0f}s"
    minutes, sec = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m{sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def format_timestamp(ts: float | None) -> str:
    """Local time ``YYYY-MM-DD HH:MM:SS ZONE`` for a Unix timestamp (``2026-12-06 15:17:46 CET``: a time read off a
    table at 3 a.m. must say which clock it is; the zone as the system names it, ``UTC`` on most servers); ``-`` for
    ``None``."""
    if ts is None:
        return "-"
    moment = time.localtime(ts)
    zone = time.strftime("%Z", moment).strip()
    offset = time.strftime("%z", moment)
    if not zone or (zone in ("UTC", "GMT", "UCT") and offset not in ("+0000", "-0000")):
        zone = offset  # a TZ with no name, or a POSIX one named UTC that is not (TZ=UTC+5): the offset says it
    return time.strftime("%Y-%m-%d %H:%M:%S ", moment) + zone


def format_bytes(n: int | None) -> str:
    """``512B``, ``1.5K``, ``20.0G`` (powers of 1024)."""
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "K", "M", "G", "T"):
        if abs(value) < 1024 or unit == "T":
            return f"{int(value)}{unit}" if unit == "B" else f"{value:.1f}{unit}"
        value /= 1024
    return f"{value:.1f}P"  # pragma: no cover


class Progress:
    """A one-line progress indicator on a terminal; silent when not a TTY.

    ``update(done, total, label, unit=...)`` redraws the line at most every
    100 ms: a bar and percentage when ``total`` is known, then what is done
    (``unit`` ``"B"``: bytes as ``1.5M``; else a count and its unit, such as
    ``rows``), the rate since the first update and, with a total, the time
    left at that rate (ETA). ``note(text)`` prints one line (a first-use
    notice) above it. ``close()`` ends the line. Writes to stderr so stdout
    stays clean for ``--json`` and pipes; callers pass ``enabled=False`` for
    ``--json`` and ``-q``.
    """

    def __init__(self, stream: TextIO | None = None, *, enabled: bool | None = None,
                 clock: Any = time.monotonic) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self._clock = clock
        self._last = 0.0
        self._start: float | None = None
        self._drawn = False

    def _amount(self, n: float, unit: str) -> str:
        if unit == "B":
            return format_bytes(int(n))
        return f"{n:,.0f}{' ' + unit if unit else ''}"

    def update(self, done: float, total: float | None = None, label: str = "", unit: str = "") -> None:
        if not self.enabled:
            return
        now = self._clock()
        if self._start is None:
            self._start = now
        if now - self._last < 0.1 and (total is None or done < total):
            return
        self._last = now
        elapsed = now - self._start
        rate = done / elapsed if elapsed > 0 else None
        amount = self._amount(done, unit) + (f" of {self._amount(total, unit)}" if total else "")
        speed = f" {self._amount(rate, unit)}/s" if rate else ""
        if total:
            frac = min(max(done / total, 0.0), 1.0)
            filled = int(frac * 30)
            bar = "#" * filled + "-" * (30 - filled)
            eta = f" ETA {format_duration((total - done) / rate)}" if rate and done < total else ""
            text = f"\r[{bar}] {frac * 100:5.1f}% {label} {amount}{speed}{eta}"
        else:
            text = f"\r{label} {amount}{speed}"
        self.stream.write(text[:200].ljust(60))
        self.stream.flush()
        self._drawn = True

    def note(self, text: str) -> None:
        """One line of text (on a terminal only), above the progress line."""
        if not self.enabled:
            return
        self.stream.write(("\n" if self._drawn else "") + text + "\n")
        self.stream.flush()
        self._drawn = False

    def close(self) -> None:
        if self.enabled and self._drawn:
            self.stream.write("\n")
            self.stream.flush()
        self._drawn = False
