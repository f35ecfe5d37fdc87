"""The inbox retention rule (``[inbox] keep``): a finished input's kept file removed, never a link followed.

An input's file stays after its run (in ``<inbox>/in-<id>[-<k>]/`` when done, duplicate, ...; in
quarantine when its run failed) so ``edgeorch retry`` and lineage can use it, until its input has
been in a final state (:attr:`~edgeorch.model.InputState.finished`) for ``keep``. The record stays
and says when the file went (``inputs.removed_at``). docs/triggers.md, "Inbox lifecycle".
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from ...model import InputState
from ...retention.service import sweep_interval  # the one cadence of every retention rule (re-exported)
from .quarantine import REASON_SUFFIX
from .reconcile import claim_folder_id

FINISHED_STATES: tuple[str, ...] = tuple(s.value for s in InputState if s.finished)
"""The input states whose kept file the retention rule may remove (the model's one rule)."""
__all__ = ["FINISHED_STATES", "remove_kept_file", "sweep_interval"]


def remove_kept_file(path: Path | str, quarantine_dir: Path | str) -> bool:
    """Remove one finished input's kept file; True if removed, False if it was already gone.

    Only a file in a claim folder (``in-<id>`` or ``in-<id>-<k>``; the folder is removed too
    when that leaves it empty) or directly in ``quarantine_dir`` (with its ``.reason.json``) is
    ever touched. Nothing is followed: the folder is opened with ``O_NOFOLLOW`` and the name
    unlinked relative to it (``unlinkat``), so a symlink swapped in for the folder or the file
    is never traversed (a link itself is unlinked, never its target). Raises ``ValueError`` for
    a path in neither place and ``OSError`` for a removal that failed (the caller retries later).
    """
    p = Path(path)
    if claim_folder_id(p.parent.name) is not None:
        return _unlink_in(p.parent, [p.name], rmdir_if_empty=True)
    if p.parent == Path(quarantine_dir):
        return _unlink_in(p.parent, [p.name, p.name + REASON_SUFFIX], rmdir_if_empty=False)
    raise ValueError(f"not a claim folder or the quarantine: {p.parent}")


def _unlink_in(folder: Path, names: list[str], *, rmdir_if_empty: bool) -> bool:
    """``unlinkat`` each name in ``folder`` (opened without following a link); True if the first existed."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    except OSError as exc:
        if exc.errno == errno.ELOOP or exc.errno == errno.ENOTDIR:
            raise OSError(exc.errno, "the folder is a symbolic link or not a folder (never followed)",
                          str(folder)) from None
        raise
    removed = False
    try:
        for i, name in enumerate(names):
            try:
                os.unlink(name, dir_fd=fd)
            except FileNotFoundError:
                continue
            removed = removed or i == 0
    finally:
        os.close(fd)
    if rmdir_if_empty:
        try:
            os.rmdir(folder)  # rmdir never follows a link: a swapped-in link fails with ENOTDIR
        except OSError:
            pass  # not empty (something else is in it) or gone: left as it is
    return removed
