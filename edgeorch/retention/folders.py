"""Run folders on disk: measured, removed, and the strays a crash left behind; never a link followed.

Only entries directly inside the runs folder (``<state dir>/runs``) are ever
touched, and only those named like a run folder (``<id>`` or ``<id>-<k>``,
:func:`claim_run_dir`'s names) or like this module's own trash
(``.removing-<name>...``). Anything else in the runs folder is not edgeorch's.

Removal is two steps: the folder is renamed to a trash name in the same
folder (atomic), then deleted (:func:`shutil.rmtree`, which on Linux opens
each folder with ``O_NOFOLLOW`` relative to its parent and unlinks a symbolic
link instead of entering it). A crash in the middle of the deletion leaves a
trash entry, which any later sweep removes; a crash before the rename leaves
the folder with no run row, a *stray* the next sweep removes once it is older
than the bound. A run folder that is itself a symbolic link is unlinked, its
target untouched.

Everything here is blocking file-system work: the daemon calls it in a worker
thread, never on its loop.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import stat
from pathlib import Path
from typing import Iterable

from ..records import frozen

log = logging.getLogger("edgeorch.retention")

RUN_FOLDER = re.compile(r"^[0-9]+(-[0-9]+)?$")
"""A run folder's name: ``<run id>`` or ``<run id>-<k>`` (``edgeorch/engine/files.py``, ``claim_run_dir``)."""
TRASH_PREFIX = ".removing-"
"""A folder being removed; whatever carries this prefix in the runs folder is a removal to finish."""


@frozen
class Stray:
    """An entry of the runs folder that no run row names: ``kind`` ``orphan`` (a run folder) or ``trash``."""

    name: str
    kind: str
    mtime: float


def folder_name(runs_root: Path, run_dir: str) -> str | None:
    """The name of ``run_dir`` when it is a run folder directly inside ``runs_root`` (resolved); else None.

    The folder itself is not resolved (it may be a link, which is then removed as a
    link); only its parent is. None means the folder is never this module's to remove
    (a path outside the runs folder, a relative path, an unexpected name).
    """
    p = Path(run_dir)
    if not p.is_absolute() or not RUN_FOLDER.match(p.name):
        return None
    try:
        parent = p.parent.resolve()
    except (OSError, RuntimeError):
        return None
    return p.name if parent == runs_root else None


def measure(path: Path, shared: dict[tuple[int, int], list[int]] | None = None) -> int:
    """Bytes that removing ``path`` frees on the disk (allocated blocks, as ``du`` counts them: its folders and
    files; apparent sizes said a one-task run of a few hundred bytes, where its ~10 folders hold ~40 KB), links
    counted as themselves, never followed; 0 if absent. A file with other hard links (a cache hit's outputs share
    the earlier run's files) is not counted:
    removing this folder frees nothing of it; the last folder that holds it counts it. ``shared``: where such
    files are tallied across several folders measured for one removal (``(dev, ino)`` -> ``[size, links,
    links seen]``): :func:`freed_together` says what their removal together frees."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return 0
    if not stat.S_ISDIR(st.st_mode):
        return _on_disk(st)
    total = _on_disk(st)
    linked: dict[tuple[int, int], list[int]] = {}  # files with more names: [bytes, names, names found here]
    for root, dirs, files in os.walk(path, followlinks=False):
        for name in files + dirs:
            try:
                st = os.lstat(os.path.join(root, name))
            except OSError:
                continue  # gone meanwhile, or unreadable: not counted
            if st.st_nlink == 1 or stat.S_ISDIR(st.st_mode) or stat.S_ISLNK(st.st_mode):
                total += _on_disk(st)
            else:
                linked.setdefault((st.st_dev, st.st_ino), [_on_disk(st), st.st_nlink, 0])[2] += 1
    for key, (size, links, seen) in linked.items():
        if seen >= links:  # every name of it is in this folder: its removal frees it
            total += size
        elif shared is not None:
            shared.setdefault(key, [size, links, 0])[2] += seen
    return total


def _on_disk(st: os.stat_result) -> int:
    """The bytes an entry holds on its disk (its allocated blocks: a folder's 4 KiB, a sparse file's real part)."""
    return st.st_blocks * 512


def freed_together(shared: dict[tuple[int, int], list[int]]) -> int:
    """Bytes of the multi-link files :func:`measure` tallied whose every link was in the folders measured."""
    return sum(size for size, links, seen in shared.values() if seen >= links)


def remove(runs_root: Path, name: str) -> int:
    """Remove the entry ``name`` of ``runs_root`` (a run folder, or a link in its place); bytes freed.

    Renamed to a trash name first, then deleted (see the module docstring). 0 when it
    is already gone. Raises ``ValueError`` for a name that is not a run folder's or a
    trash entry's, ``OSError`` when the rename or the deletion fails (the trash entry,
    if any, is finished by a later sweep).
    """
    if not (RUN_FOLDER.match(name) or name.startswith(TRASH_PREFIX)) or "/" in name:
        raise ValueError(f"not a run folder's name: {name!r}")
    src = runs_root / name
    if name.startswith(TRASH_PREFIX):
        return _purge(src)
    trash = _trash_path(runs_root, name)
    try:
        os.rename(src, trash)  # same folder: atomic; a link is renamed as itself
    except FileNotFoundError:
        return 0
    return _purge(trash)


def strays(runs_root: Path, known: Iterable[str], cutoff: float) -> list[Stray]:
    """Entries of ``runs_root`` to clean up: every trash entry, and every run folder no row names (``known``)
    whose own modification time is before ``cutoff``; sorted by name. [] when the runs folder is missing.

    The age check keeps a folder being created right now (its row not committed yet)
    and folders that a restored older backup of the state file forgot (their runs are
    gone from the file, their files may still matter) until they are as old as the bound.
    """
    names = set(known)
    out: list[Stray] = []
    try:
        entries = list(os.scandir(runs_root))
    except FileNotFoundError:
        return []
    for entry in entries:
        try:
            mtime = entry.stat(follow_symlinks=False).st_mtime
        except OSError:
            continue
        if entry.name.startswith(TRASH_PREFIX):
            out.append(Stray(entry.name, "trash", mtime))
        elif RUN_FOLDER.match(entry.name) and entry.name not in names and mtime < cutoff:
            out.append(Stray(entry.name, "orphan", mtime))
    return sorted(out, key=lambda s: s.name)


def _trash_path(runs_root: Path, name: str) -> Path:
    """A trash name for ``name`` not in use yet (a crashed earlier removal may have left ``.removing-<name>``)."""
    path = runs_root / f"{TRASH_PREFIX}{name}"
    k = 1
    while os.path.lexists(path):
        k += 1
        path = runs_root / f"{TRASH_PREFIX}{name}.{k}"
    return path


def _purge(path: Path) -> int:
    """Delete ``path`` (a folder tree, a file or a link, never followed); bytes freed; 0 when absent."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return 0
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(path)  # a link (or a file) in a run folder's place: itself, never its target
        return st.st_size
    if not shutil.rmtree.avoids_symlink_attacks:  # pragma: no cover - Linux has the fd-based version
        raise OSError(f"not removing {path}: this platform's rmtree could follow a symbolic link")
    size = measure(path)
    shutil.rmtree(path)
    return size
