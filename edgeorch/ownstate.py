"""Where a command that writes to a path its user names must not write: edgeorch's own state.

The state folder holds the state file (``edgeorch.db``, its ``-wal`` and ``-shm``), the audit key, the data
versions' objects and the serving folder. A report saved over the state file (``lineage export --openlineage
var/edgeorch.db``) replaced it: the daemon stopped (exit 4) and every run, model and audit record was gone;
``datasets restore x@1 var --force`` removed the whole folder. The one rule, for every such path:

- a file a command writes (an export, a report, a saved profile) may not lie in a state folder, except in
  its ``runs/`` folder (a kernel task's report goes to its output folder there);
- a folder a command replaces (``datasets restore --force``) may not be or lie in a state folder, nor
  contain edgeorch's own folders or files (the configured state folder, the pipelines folder, the config
  file) or the folder the command runs in.

A state folder is recognised by its state file, so any state folder is covered, not only the configured one.
Paths are compared after resolving symbolic links in their folders (a link named as the output itself is
replaced, not followed: it is judged where it lies).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from .errors import UsageError

STATE_FILE_NAME = "edgeorch.db"
"""The state file's name in its folder (``Config.db_path``)."""

RUNS_FOLDER_NAME = "runs"
"""The run folders' folder in a state folder (``Config.runs_dir`` by default): tasks' outputs go there."""


def _where(path: Path) -> Path:
    """``path`` with the symbolic links of its folders resolved (its last part kept as named)."""
    path = Path(os.path.abspath(path))
    return Path(os.path.realpath(path.parent)) / path.name


def state_folder_around(path: Path) -> Path | None:
    """The state folder ``path`` is in or is (the nearest of ``path`` and its folders holding a state file),
    or None. ``path`` need not exist."""
    for folder in (path, *path.parents):
        if os.path.isfile(folder / STATE_FILE_NAME):
            return folder
    return None


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def check_output_file(path: str | os.PathLike[str], *, field: str) -> None:
    """Refuse (:class:`UsageError`, exit 2, naming ``field`` and the value) a file to write at ``path`` that
    lies in a state folder outside its ``runs/`` folder. Nothing is read but a few ``stat`` calls."""
    where = _where(Path(path))
    state = state_folder_around(where.parent)
    if state is None or _inside(where, state / RUNS_FOLDER_NAME):
        return
    raise UsageError(f"is in edgeorch's state folder {state}: writing there could replace the state file or what "
                     "it relies on", field=field, value=str(path), expected="a path outside the state folder",
                     hint="write it somewhere else, e.g. the current folder")


def check_replaced_folder(dest: str | os.PathLike[str], *, field: str, own: Iterable[tuple[str, Path]] = (),
                          cwd: Path | None = None) -> None:
    """Refuse (:class:`UsageError`, exit 2) a folder ``dest`` that a command would replace whole: empty, the
    file system's root, in (or being) a state folder, or holding one of ``own`` (``(what, path)``: the configured
    state folder, the pipelines folder, the config file) or ``cwd`` (the folder the command runs in)."""
    if str(dest).strip() == "":
        raise UsageError("is empty", field=field, value=str(dest), expected="a folder's path")
    where = _where(Path(dest))
    if where == Path(where.anchor):
        raise UsageError("is the file system's root", field=field, value=str(dest), expected="a folder to replace")
    state = state_folder_around(where)
    if state is not None:
        raise UsageError(f"is in edgeorch's state folder {state}: replacing it would remove what the state file "
                         "relies on", field=field, value=str(dest), expected="a folder outside the state folder")
    held = [*own, *((("the folder this command runs in", cwd),) if cwd is not None else ())]
    for what, path in held:
        resolved = Path(os.path.realpath(path))
        if _inside(resolved, where):
            raise UsageError(f"is or holds {what} ({path}): replacing it would remove that", field=field,
                             value=str(dest), expected="a folder that holds none of edgeorch's own files",
                             hint="choose a new folder for it, e.g. a new name in the current folder")
