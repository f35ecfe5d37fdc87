"""A refused file left in its folder is recorded once: the rule (:func:`same_refused_file`) and the
index of the refusals of files still in the watched folders (:class:`RefusedFiles`).

A refused file stays where it was dropped, so every start's rescan, every reload that rebuilds the
watch and every periodic rescan after a lost event hands it over again. Recording it each time would
list it once a night for a daemon restarted nightly, with a log line and an audit record each. The same
file, untouched, is recorded once; the same name dropped again (another file, or this one written,
renamed in, touched or chmod-ed) is a new arrival and is recorded again.

No I/O but one ``lstat`` per refused file handed over again.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ...records import frozen
from .names import display_path


@frozen
class Refusal:
    """A recorded refusal: when (``recorded_at``, Unix seconds of the store's clock) and, when the record
    holds them (a refusal at the claim step, after its intent), the file's ``dev``, ``ino`` and ``size``."""

    recorded_at: float
    dev: int | None = None
    ino: int | None = None
    size: int | None = None

    @classmethod
    def of_row(cls, row: Mapping[str, Any]) -> Refusal:
        """From an ``inputs`` row in state ``refused`` (its ``updated_at``: a refused input never changes again)."""
        return cls(float(row["updated_at"]), row.get("dev"), row.get("ino"), row.get("size"))


def same_refused_file(st: os.stat_result, refusal: Refusal) -> bool:
    """Is the file at the refused path (``st``: its ``lstat``) the very file that was refused, untouched since?

    Yes when its status-change time (ctime) is not later than the refusal's record, and its device, inode
    and size are those recorded (where recorded). ctime cannot be set by a user (unlike mtime): creating,
    writing, truncating, renaming into the folder, ``touch``, ``chmod`` and ``chown`` all set it to now, so
    another file under the same name, or this one changed, is never taken for the refused one. The kernel
    stamps ctime from a coarse clock (a few ms behind): a change within those ms after the record would be
    missed, and a wall clock set back would hide changes until it catches up; either only means a refusal
    not recorded twice. Pure.
    """
    if st.st_ctime_ns > int(refusal.recorded_at * 1e9):
        return False
    recorded = (refusal.dev, refusal.ino, refusal.size)
    return all(want is None or want == got for want, got in zip(recorded, (st.st_dev, st.st_ino, st.st_size)))


class RefusedFiles:
    """The refusals of the files still in the watched folders, by path as recorded (:func:`display_path`; the
    daemon's memory of the rule).

    Loaded at start from the state file for the files found in the folders (:meth:`load`), kept up to
    date as refusals are recorded (:meth:`note`), asked before a refusal is recorded (:meth:`recorded`).
    """

    def __init__(self) -> None:
        self._by_path: dict[str, Refusal] = {}

    def __len__(self) -> int:
        return len(self._by_path)

    def load(self, refused: Iterable[tuple[str, Refusal]], present: Iterable[Path]) -> None:
        """Keep, for each path in ``present`` (files in the folders now), its newest refusal in ``refused``
        (recorded paths: :func:`display_path`)."""
        here = {display_path(p) for p in present}
        for path, refusal in refused:
            old = self._by_path.get(path)
            if path in here and (old is None or refusal.recorded_at >= old.recorded_at):
                self._by_path[path] = refusal

    def note(self, path: Path, refusal: Refusal) -> None:
        """A refusal of ``path`` was just recorded."""
        self._by_path[display_path(path)] = refusal

    def recorded(self, path: Path) -> bool:
        """Is the file now at ``path`` one whose refusal is recorded already (:func:`same_refused_file`)?
        A path whose file is gone or changed is forgotten (its next refusal is recorded)."""
        key = display_path(path)
        refusal = self._by_path.get(key)
        if refusal is None:
            return False
        try:
            st = os.lstat(path)
        except OSError:
            st = None
        if st is not None and same_refused_file(st, refusal):
            return True
        del self._by_path[key]
        return False
