"""Input names: which names may trigger, which are valid, and how names are printed and shortened.

Pure (no I/O). Hidden and temporary names never trigger; a valid input name is UTF-8, has no
control characters, does not start with ``-`` and fits NAME_MAX; every name edgeorch derives
from an input's name (:func:`fit_name`) fits NAME_MAX too.
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import os
import re
from collections.abc import Iterable
from pathlib import Path

TEMP_PATTERNS = ("*.part", "*.partial", "*.filepart", "*.tmp", "*.temp", "*~", "*.crdownload", "*.download")
"""Besides hidden names (``.*``): names of files still being written by some tool."""
MAX_NAME_BYTES = 255


@functools.lru_cache(maxsize=64)
def _globs(patterns: tuple[str, ...]) -> re.Pattern[str]:
    """One compiled regex matching a name that matches any of ``patterns`` (``fnmatchcase`` rules).

    Names are tested twice per file on the event loop (its arrival and its claim's move out):
    one ``match`` instead of one ``fnmatchcase`` per pattern keeps that cheap in a burst.
    """
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns) or "(?!)")


def is_hidden_or_temp(name: str) -> bool:
    """True for names that never trigger: hidden (``.*``) or a known partial-file suffix."""
    if not name or name.startswith("."):
        return True
    return _globs(TEMP_PATTERNS).match(name.lower()) is not None


def is_candidate(name: str, patterns: Iterable[str]) -> bool:
    """May a file called ``name`` trigger? Not hidden/temporary, and matches one glob (case-sensitive)."""
    if "/" in name or is_hidden_or_temp(name):
        return False
    return _globs(tuple(patterns)).match(name) is not None


def display_path(path: Path | str) -> str:
    """A printable, storable text for ``path``: valid UTF-8 always.

    Bytes that are not UTF-8 (a name ``os.fsdecode`` turned into lone
    surrogates) are written as ``\\xNN`` escapes, so such a name can be
    recorded in SQLite, logged and sent as JSON without an encoding error.
    """
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def fit_name(name: str, reserve: int = 0) -> str:
    """``name`` itself when ``len(name in bytes) + reserve <= 255``, else a shortened name that fits.

    Derived names (``<name>.reason.json``, ``<name>.1.csv``) must never pass
    the file-name limit (NAME_MAX, 255 bytes on Linux), whatever the input's
    name. The shortened form keeps the head of the name, a ``~`` and 12 hex
    digits of the sha256 of the full name (so two long names sharing a head
    stay distinct) and the extension when it is short (``.csv``).
    """
    raw = os.fsencode(name)
    limit = MAX_NAME_BYTES - reserve
    if len(raw) <= limit:
        return name
    stem, dot, ext = raw.rpartition(b".")
    tail = b"." + ext if dot and stem and len(ext) <= 16 else b""
    mark = b"~" + hashlib.sha256(raw).hexdigest()[:12].encode()
    head = raw[: max(1, limit - len(mark) - len(tail))]
    return os.fsdecode(head.decode("utf-8", "ignore").encode() + mark + tail)


def name_problem(name: str) -> str | None:
    """Why ``name`` is not a valid input name (None when it is).

    Refused: undecodable bytes (not UTF-8), control characters (newline, tab,
    C1 such as U+0085, which ``str.splitlines`` takes for a line end, ...), the
    line and paragraph separators U+2028 and U+2029 (line ends for
    ``str.splitlines`` too: a batch's list of paths is read with it), a leading
    ``-`` (a task's command would read it as an option), more than 255 bytes, ``/``.
    """
    try:
        raw = name.encode("utf-8")
    except UnicodeEncodeError:
        return "the name is not valid UTF-8"
    if len(raw) > MAX_NAME_BYTES:
        return f"the name is longer than {MAX_NAME_BYTES} bytes"
    if "/" in name or name in (".", ".."):
        return "the name is not a plain file name"
    if any(ord(c) < 32 or 127 <= ord(c) < 160 for c in name):  # C0, DEL, C1 (U+0085 ends a line)
        return "the name contains control characters"
    if "\u2028" in name or "\u2029" in name:  # str.splitlines ends a line there too: a batch's list of paths
        return "the name contains a line or paragraph separator (U+2028, U+2029)"
    if name.startswith("-"):
        return "the name starts with '-' (a command would take it for an option)"
    return None
