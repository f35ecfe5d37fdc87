"""Where numba's compiled-kernel cache goes: one rule for every code path.

numba's own fallback, when it has no ``NUMBA_CACHE_DIR``, writes the cache
into ``__pycache__`` next to the compiled module, i.e. into the installed
package. A later ``pip install -e`` leaves that folder behind, and it shadows
the package. So no edgeorch code path may leave numba without a cache
directory: the daemon, the engine (for its tasks), every CLI command and
library use all resolve it here, before numba compiles anything.

Resolution order (the first writable one wins):

1. ``$NUMBA_CACHE_DIR`` when set (an operator's value, e.g. the systemd unit's);
2. the preferred folder a caller passes: ``<state dir>/numba-cache`` when a
   configuration is known;
3. ``$XDG_CACHE_HOME/edgeorch/numba``, else ``~/.cache/edgeorch/numba``;

   (2 and 3 only when that folder, and a link to it, is this user's or root's
   and not writable by every user: :mod:`edgeorch.trust`);
4. ``<temp dir>/edgeorch-numba-<uid>`` (a home that cannot be written),
   used only when this user owns it (numba's cache files are pickles: a
   folder planted by someone else must never be read), else a fresh private
   temporary folder.

This module imports neither numba nor numpy.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ENV = "NUMBA_CACHE_DIR"


def user_cache_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """The per-user cache folder of edgeorch's kernels (XDG base directory rules)."""
    xdg = environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path(os.path.expanduser("~")) / ".cache"
    return base / "edgeorch" / "numba"


def _usable(path: Path) -> bool:
    """True when ``path`` exists (created here if needed) as a folder this process can write and may trust
    (:func:`edgeorch.trust.ownership_problem`: numba's index files are pickles, a folder another user can write
    would let them run code in every kernel command)."""
    from ..trust import path_problem

    try:
        _make_folders(path)
    except OSError:
        return False
    return path.is_dir() and os.access(path, os.W_OK | os.X_OK) and path_problem(path) is None


def _make_folders(path: Path, mode: int = 0o750) -> None:
    """``mkdir -p`` whose every new folder gets ``mode``: ``Path.mkdir(parents=True)`` gives the parents it makes
    the umask's default, so the state folder a first daemon start made for ``<state dir>/numba-cache`` was 0755,
    and the start then said it "was readable by every user" of a folder it had just made."""
    missing = []
    while not path.exists():
        missing.append(path)
        if path.parent == path:
            break
        path = path.parent
    for folder in reversed(missing):
        folder.mkdir(mode=mode, exist_ok=True)


def numba_cache_dir(preferred: Path | None = None, environ: Mapping[str, str] = os.environ) -> Path:
    """The folder numba's cache must use (see the module docstring for the order).

    An explicit ``$NUMBA_CACHE_DIR`` is returned as is, even when it cannot
    be written (the operator's choice wins). The other candidates are created
    when missing and skipped when they cannot be written.
    """
    explicit = environ.get(ENV)
    if explicit:
        return Path(explicit)
    candidates = [p for p in (preferred, user_cache_dir(environ)) if p is not None]
    for path in candidates:
        if _usable(path):
            return path
    return _private_temp_dir()


def _private_temp_dir() -> Path:
    """``<temp dir>/edgeorch-numba-<uid>`` when this user owns it (mode 0700), else a new private folder."""
    import tempfile  # here: the common case (a writable cache folder) never needs it

    from ..trust import private_folder

    path = Path(tempfile.gettempdir()) / f"edgeorch-numba-{os.getuid()}"
    # In the shared temp folder, stricter than _usable: this user's own real folder, nobody else writing.
    return path if private_folder(path, closed=0o022) else Path(tempfile.mkdtemp(prefix="edgeorch-numba-"))


_preferred: Path | None = None
"""The folder :func:`prefer_numba_cache_dir` named (the config's), used when numba is first needed."""


def prefer_numba_cache_dir(path: Path | None) -> None:
    """Name the folder this process's numba cache should use (the config's) without touching the file system:
    :func:`use_numba_cache_dir` takes it when numba is first needed. A command that never imports numba (``status``,
    ``runs``) made ``<state>/numba-cache``, and its parents, for a state folder that a typo named."""
    global _preferred
    _preferred = path


_NAMED: Any = object()
"""``use_numba_cache_dir``'s default: the folder :func:`prefer_numba_cache_dir` named (None: no config's)."""


def use_numba_cache_dir(preferred: Path | None = _NAMED) -> Path:
    """Point this process's numba cache at :func:`numba_cache_dir` and return the folder.

    ``preferred``: the config's folder; None: none (the user's cache); left out: the one
    :func:`prefer_numba_cache_dir` named, if any. Sets
    ``$NUMBA_CACHE_DIR`` (inherited by child processes) unless it is
    already set. When numba was imported before (by the caller's own code),
    its configuration is reloaded so that functions compiled from now on use
    the folder.
    """
    path = numba_cache_dir(_preferred if preferred is _NAMED else preferred)
    if os.environ.get(ENV) != str(path):
        os.environ[ENV] = str(path)
        config = sys.modules.get("numba.core.config")
        if config is not None:
            config.reload_config()  # type: ignore[attr-defined]
    return path


def compiled_before(cache_dir: Path | None = None) -> bool:
    """Whether the kernels' compiled code is already in the numba cache (so this run will not compile).

    Looks for the cache index of one function every command uses
    (``_jit.block_moments``, at its current line: an edited ``_jit.py``
    compiles again) under ``cache_dir`` (default ``$NUMBA_CACHE_DIR``).
    Reads file names only: no numba import. A heuristic for a notice,
    never for correctness.
    """
    folder = cache_dir or (Path(os.environ["NUMBA_CACHE_DIR"]) if os.environ.get("NUMBA_CACHE_DIR") else None)
    if folder is None:
        return False
    try:
        source = (Path(__file__).parent / "_jit.py").read_text().splitlines()
    except OSError:  # pragma: no cover - an installed package always has it
        return False
    line = next((i for i, text in enumerate(source, 1) if text.startswith("def block_moments(")), None)
    # numba names the index by the function's first line, its decorator's (one line up).
    return line is not None and any(folder.glob(f"kernels_*/_jit.block_moments-{line - 1}.py*.nbi"))
