"""The node_exporter textfile: the exposition written to a ``*.prom`` file, replaced atomically.

node_exporter's textfile collector reads every ``*.prom`` file of its folder
at each of its scrapes, possibly while edgeorch rewrites one. A reader must
see the old file or the new one, never part of either: the text is written
to a temporary file in the same folder whose name does not end in ``.prom``
(the collector ignores it), then renamed over the target (``rename(2)`` is
atomic within one filesystem).

The file is made readable by everyone (0644) whatever the daemon's umask
(the unit's ``UMask=0027`` would give 0640, which node_exporter, another
user, cannot read). It is not fsynced: a crash loses at most one interval of
numbers that the next write replaces, and a rename without fsync still
leaves the old file or the new one.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..durable import replacing
from ..errors import ConfigError

TEXTFILE_MODE = 0o644


def write_textfile(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically (see the module docstring; :func:`edgeorch.durable.replacing`).

    Raises ``OSError`` naming ``path`` (the folder is missing, not writable, the disk is full); the
    temporary file is then removed and ``path`` is left as it was.
    """
    with replacing(path, durable=False, chmod=TEXTFILE_MODE) as f:
        f.write(data)


def textfile_problem(textfile: Path | None, file: str | None = None) -> ConfigError | None:
    """Why ``[metrics] textfile`` cannot be written (its folder missing, or not writable by this process), as the
    error naming ``metrics.textfile`` (and config file ``file``); None when it can, or when none is set. The
    daemon asks before it touches its state folder, and again when the metrics open."""
    if textfile is None:
        return None
    if not textfile.parent.is_dir():
        return ConfigError("the textfile's folder does not exist", field="metrics.textfile", value=str(textfile),
                           file=file, hint="create it, or use node_exporter's --collector.textfile.directory")
    if not os.access(textfile.parent, os.W_OK | os.X_OK):
        return ConfigError("the textfile's folder is not writable by the daemon", field="metrics.textfile",
                           value=str(textfile), file=file,
                           hint=f"give the daemon's user write access to {textfile.parent}")
    return None
