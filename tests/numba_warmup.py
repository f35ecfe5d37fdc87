"""The test suite's numba cache: compiled once per machine and source, then copied to each test process.

Every numba kernel edgeorch has (``edgeorch/kernels/_jit.py``, the datasets
chunker) is compiled with ``cache=True``. Compiling them all costs about
20 s of CPU; loading them from the cache well under one. So the suite
compiles them once into a *shared* cache and every test process (each
pytest-xdist worker, and everything it starts: daemons, CLI processes,
tasks) uses a *private copy* of it through ``NUMBA_CACHE_DIR``.

Why a copy and not the shared folder itself: numba's cache is not safe for
concurrent writers. Two processes compiling different signatures of one
function at once both take the next free data file number; the last index
written then names a file holding the other signature's machine code, which a
later process loads for the wrong argument types. The shared folder is
therefore written only by :func:`warm`, under an exclusive ``flock``, and
read (copied) under the same lock; after the copy, a signature the warm-up
did not cover compiles in the worker's own folder, never in the shared one.

The shared folder is warm when it holds the marker of
:mod:`edgeorch.kernels.warmup` (the Python and numba versions, the path and
content of each module that defines kernels, and of the warm-up's list of
calls): the daemon's background warm-up and the suite agree on what "warm"
means, and the marker travels with each private copy, so a test daemon finds
its cache warm and starts no warm-up. ``python tests/numba_warmup.py DIR``
runs the daemon's warm-up body in DIR itself (no staging folder: the caller
holds the lock) in a fresh interpreter; :func:`warm` first compiles its two
halves side by side (``--part``), then that (``--merge``): see :func:`_compile`.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from edgeorch.kernels.warmup import is_warm

REPO = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    """``<temp dir>/edgeorch-tests-numba-<uid>``: this user's shared cache (one per machine)."""
    return Path(tempfile.gettempdir()) / f"edgeorch-tests-numba-{os.getuid()}"


def warm(shared: Path | None = None) -> Path:
    """Compile every kernel into the shared cache unless it is warm already; returns the shared folder.

    Holds the shared folder's lock while it checks and compiles, so concurrent test sessions
    (and pytest-xdist workers) wait for one warm-up instead of compiling side by side. Never
    fails the caller: a warm-up that fails (an API it calls changed) is reported on stderr and
    the kernels then compile in each process's copy as they are used.
    """
    shared = shared or shared_dir()
    with _locked(shared):
        _warm_locked(shared)
    return shared


def _warm_locked(shared: Path) -> None:
    """:func:`warm`'s body; the caller holds ``shared``'s lock."""
    if not is_warm(shared):  # the marker is written by the warm-up, once everything compiled
        _compile(shared)


def _compile(shared: Path) -> None:
    """Compile every kernel into ``shared`` (the caller holds its lock) on two cores.

    A cold warm-up is ~40 s of CPU in one thread, paid before any test runs (pytest-xdist starts its
    workers after it), so the suite's other core would idle. The profile kernels (about half of it)
    and the rest compile in two processes, each in a folder of its own (numba's cache takes no
    concurrent writers); a last process installs both into ``shared`` and runs the whole warm-up
    there, which loads what they compiled and compiles only what a kept index lacked (a function
    both compiled: one index is kept, the other's signatures compile here).
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    with tempfile.TemporaryDirectory(prefix=".parallel-", dir=shared) as tmp:  # beside it: install hard-links
        parts = {"profile": Path(tmp, "profile"), "rest": Path(tmp, "rest")}
        procs = [subprocess.Popen([sys.executable, __file__, "--part", name, str(folder)],
                                  env=dict(env, NUMBA_CACHE_DIR=str(folder)), stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, text=True) for name, folder in parts.items()]
        try:
            for proc in procs:
                _, err = proc.communicate(timeout=900)
                if err:
                    print(err[-2000:], file=sys.stderr)
            merged = subprocess.run([sys.executable, __file__, "--merge", *map(str, parts.values()), "--",
                                     str(shared)], env=dict(env, NUMBA_CACHE_DIR=str(shared)), capture_output=True,
                                    text=True, timeout=900)
            if merged.stderr:
                print(merged.stderr[-2000:], file=sys.stderr)
        except subprocess.TimeoutExpired as exc:  # never fails the caller: the kernels compile as used
            print(f"tests/numba_warmup.py: the warm-up took over {exc.timeout:.0f} s; stopped", file=sys.stderr)
        finally:  # no part outlives its folder (the temporary directory is removed next)
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()


def private_copy(dest: Path, shared: Path | None = None) -> Path:
    """Warm the shared cache if needed (:func:`warm`), then copy it to ``dest`` (created); returns ``dest``.

    Both under one hold of the lock: the shared folder keeps one marker (the warm-up's, for one checkout
    and Python), so a suite of another checkout or Python warming it in between would leave this copy
    without this suite's marker (seen once: a test daemon then found its cache cold).
    """
    shared = shared or shared_dir()
    with _locked(shared):  # never copy a warm-up half written, nor another suite's
        _warm_locked(shared)
        shutil.copytree(shared, dest, ignore=shutil.ignore_patterns(".lock", ".parallel-*"), dirs_exist_ok=True)
    return dest


@contextmanager
def _locked(shared: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``shared/.lock`` (the folder is created, private to this user)."""
    shared.mkdir(mode=0o700, exist_ok=True)
    with open(shared / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        yield


def _main(argv: list[str]) -> list[str]:
    """``--part profile|rest DIR``: compile that part in DIR (a folder of its own).
    ``[--merge DIR... --] SHARED``: install each DIR into SHARED, then the whole warm-up in SHARED (the
    caller holds SHARED's lock: no staging). Returns the failed calls."""
    from edgeorch.kernels import warmup as W

    if argv[0] == "--part":
        os.environ["NUMBA_CACHE_DIR"] = argv[2]
        return W.compile_everything(slice(0, W.PROFILE_STEPS) if argv[1] == "profile" else slice(W.PROFILE_STEPS, None))
    if argv[0] == "--merge":
        end = argv.index("--")
        for folder in argv[1:end]:
            W.install(Path(folder), Path(argv[end + 1]))
        argv = argv[end + 1:]
    _, failures = W.warm(Path(argv[0]))
    return failures


if __name__ == "__main__":
    for failure in _main(sys.argv[1:]):
        print(f"tests/numba_warmup.py: a step failed (what it compiles, workers compile as used): {failure}",
              file=sys.stderr)
