"""The numba cache warmed ahead of use: every kernel compiled once, to the side, then installed.

``python -m edgeorch.kernels.warmup CACHE_DIR [--staging DIR] [--idle] [--parent PID]``
is what the daemon starts in the background after ``READY=1``
(:mod:`edgeorch.kernels.warmer`), so that the first kernel task on a new
machine, or after an upgrade, loads compiled code instead of paying 11-20 s of
compilation. The test suite warms its shared cache with the same code
(``tests/numba_warmup.py``), so both agree on what "warm" means.

**Warm** means the cache folder holds the marker file :func:`marker` names:
a hash of the Python and numba versions and of the path and content of every
module that defines kernels (:data:`SOURCES`, which include this module: its
list of calls decides which signatures get compiled). The marker is written
only after a warm-up's install (:func:`mark_warm`); anything else changes the
name, and the next warm-up runs again.

**Why compile to the side.** numba's cache is not safe for concurrent
writers: two processes compiling signatures of one function at once both
pick the next free data file number, and the index written last may name a
data file holding the other signature's code, which a later process loads for
the wrong argument types. A kernel task may compile while the daemon warms.
So the warm-up compiles into a private ``staging`` folder (same file system)
and :func:`install` moves each function's files in with rules that never pair
an index with another writer's data (see there). Without ``--staging`` the
warm-up compiles in ``CACHE_DIR`` itself: only for a caller that holds the
folder alone (the test suite, under its lock).

numba's cache files are pickles: ``CACHE_DIR`` must be one the caller trusts
(:mod:`edgeorch.kernels.cache` chooses it).
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import os
import pickle
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Callable

from ..records import frozen

PACKAGE = Path(__file__).resolve().parents[1]
SOURCES = (PACKAGE / "kernels" / "_jit.py", PACKAGE / "datasets" / "chunker.py", Path(__file__).resolve())
"""The modules whose content decides what the warm cache holds: the two that define numba kernels
(numba's own cache key) and this one (which signatures are compiled)."""

MARKER_PREFIX = "warm-"
STAGING_PREFIX = ".warmup-"
"""A staging folder's name inside the cache folder: ``.warmup-<pid of the daemon that owns it>``."""


# -- what "warm" means -------------------------------------------------------------------------------------------


def marker() -> str:
    """The name of the file that says a cache folder is warm for these sources and versions.

    Reads package metadata and the sources' bytes; imports neither numba nor numpy.
    """
    from importlib.metadata import version

    h = hashlib.sha256(f"{sys.version}|{version('numba')}".encode())
    for src in SOURCES:
        h.update(f"|{src}|".encode())
        h.update(src.read_bytes())
    return MARKER_PREFIX + h.hexdigest()[:20]


def is_warm(cache_dir: Path) -> bool:
    """Whether ``cache_dir`` holds the current :func:`marker` (a folder that does not exist is not warm)."""
    return (cache_dir / marker()).exists()


def mark_warm(cache_dir: Path) -> None:
    """Write the current marker in ``cache_dir`` and remove older ones."""
    name = marker()
    for old in cache_dir.glob(MARKER_PREFIX + "*"):
        if old.name != name:
            old.unlink(missing_ok=True)
    (cache_dir / name).touch()


def staging_dir(cache_dir: Path, owner_pid: int) -> Path:
    """The staging folder a daemon with pid ``owner_pid`` uses inside ``cache_dir``."""
    return cache_dir / f"{STAGING_PREFIX}{owner_pid}"


def remove_stale_staging(cache_dir: Path, *, alive: Callable[[int], bool] | None = None) -> list[Path]:
    """Remove staging folders whose owner process is gone (a daemon killed with ``-9``); returns them.

    A folder whose owner is alive is left alone (another daemon sharing this
    cache may be warming). ``alive`` is for tests (default: ``kill(pid, 0)``).
    """
    alive = alive or _alive
    removed = []
    for path in cache_dir.glob(STAGING_PREFIX + "*"):
        pid = path.name[len(STAGING_PREFIX):]
        if pid.isdigit() and not alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# -- installing a staged cache -----------------------------------------------------------------------------------


@frozen
class Installed:
    """What :func:`install` did, per function (one index file and its data files)."""

    installed: int = 0
    """Functions whose files were moved in (no index there, or a stale one)."""
    kept: int = 0
    """Functions left as they were: a current index is there (a task compiled it), or another writer won a race."""


def index_header(path: Path) -> tuple[object, object] | None:
    """``(numba version, source stamp)`` of a numba index file; None when it cannot be read.

    The layout is numba's (``IndexDataCacheFile._save_index``): a pickled
    version string, then a pickled ``(stamp, overloads)``. Unpickling the
    overloads needs numba's types: call it where numba is imported.
    """
    try:
        with open(path, "rb") as f:
            version = pickle.load(f)
            stamp, _ = pickle.loads(f.read())
    except Exception:  # a half-written or foreign file reads as stale; numba would overwrite it too
        return None
    return version, stamp


def install(staging: Path, cache_dir: Path, *,
            header: Callable[[Path], tuple[object, object] | None] = index_header) -> Installed:
    """Move every function's compiled files from ``staging`` into ``cache_dir``; returns the counts.

    For each index ``<dir>/<name>.nbi`` in ``staging`` and its data files
    ``<name>.<n>.nbc``, by what ``cache_dir/<dir>`` holds:

    - no index: the data files are hard-linked in, then the index, each only
      if the name is free (``link`` never replaces). A kernel task compiling
      the same function now writes its index before its data (numba's order),
      with ``rename``: whichever index ends up there, the data files it names
      are the ones its writer wrote last. When a name is taken, this function
      keeps the other writer's files and unlinks only its own links (checked
      by inode): the worst a lost race costs is a recompile (numba treats a
      missing data file as a miss), never wrong code;
    - a current index (same numba version and source stamp as the staged
      one, by ``header``): kept; whoever wrote it compiled this source;
    - a stale index (another numba version or source): replaced, data files
      first and the index last, each by ``rename`` (numba ignores a stale
      index and would overwrite it the same way).

    The staged files are consumed (linked or moved); ``staging`` itself is left for the caller to remove.
    """
    installed = kept = 0
    for index in sorted(staging.rglob("*.nbi")):
        target = cache_dir / index.parent.relative_to(staging)
        target.mkdir(parents=True, exist_ok=True)
        base = index.name[:-len(".nbi")]
        datas = sorted(index.parent.glob(glob.escape(base) + ".*.nbc"))
        there = target / index.name
        if there.exists():
            current = header(there)
            if current is not None and current == header(index):
                kept += 1
                continue
            for data in datas:
                os.replace(data, target / data.name)
            os.replace(index, there)
            installed += 1
        elif _link_all([*datas, index], target):
            installed += 1
        else:
            kept += 1
    return Installed(installed, kept)


def _link_all(files: list[Path], target: Path) -> bool:
    """Hard-link ``files`` (in order) into ``target`` without replacing anything; all or none of ours stay."""
    linked: list[tuple[Path, Path]] = []
    try:
        for f in files:
            os.link(f, target / f.name)
            linked.append((f, target / f.name))
    except FileExistsError:
        for src, dst in linked:
            try:
                if os.stat(dst).st_ino == os.stat(src).st_ino:  # still ours: not replaced by the other writer
                    os.unlink(dst)
            except OSError:
                pass
        return False
    return True


# -- compiling ---------------------------------------------------------------------------------------------------


PROFILE_STEPS = 5
""":func:`compile_everything`'s first steps: the profile kernels, about half of the CPU of a cold warm-up
(~24 s of ~40 s of CPU here). A caller with two cores can run ``slice(0, PROFILE_STEPS)`` and
``slice(PROFILE_STEPS, None)`` in two processes, each in a folder of its own (numba's cache has no
concurrent writers), install both and run everything once more to compile what the two missed."""


def compile_everything(only: slice = slice(None)) -> list[str]:
    """Call every kernel through the public API on data of each kind the kernels take; returns the failures.

    numba compiles (or loads from ``$NUMBA_CACHE_DIR``) each signature the
    calls meet. A call that fails (an API that changed) is reported in the
    returned list and does not stop the others: what it would have compiled
    then compiles when first used. ``only``: the steps to run (all by
    default; see :data:`PROFILE_STEPS`).
    """
    import numpy as np

    from edgeorch import kernels as K
    from edgeorch.datasets.chunker import cut_points
    from edgeorch.kernels import correlations as C
    from edgeorch.kernels.drift import METHODS

    columns_for = {"ks": ["f", "i", "t"], "wasserstein": ["f", "i", "t"], "z": ["b"], "chisquare": ["c", "b"]}

    rng = np.random.default_rng(0)
    n = 3000
    floats = rng.normal(size=n)
    floats[::97] = np.nan
    ref = {"f": floats, "i": rng.integers(0, 40, n), "b": rng.integers(0, 2, n).astype(bool),
           "c": rng.choice(["a", "b", "c"], n),
           "t": np.datetime64("2024-01-01") + rng.integers(0, 10_000, n).astype("timedelta64[m]")}
    cur = {k: (v[::-1].copy() if k != "f" else v + 0.5) for k, v in ref.items()}
    # Read-only arrays are a signature of their own: what a file read through pyarrow gives.
    read_only = {}
    for k, v in ref.items():
        read_only[k] = v.copy()
        read_only[k].flags.writeable = False
    clean = rng.normal(size=n)
    clean.flags.writeable = False
    big = rng.normal(size=40_000)
    big_frozen = big.copy()
    big_frozen.flags.writeable = False
    big_ints = rng.integers(0, 1 << 40, 40_000)
    steps: list[Callable[[], object]] = [
        lambda: K.merge_profiles(K.profile(ref), K.profile(cur)),
        lambda: K.merge_profiles(K.profile(read_only), K.profile(ref)),
        lambda: K.drift_from_profile(K.profile(ref), cur),
        # A stored profile (a baseline) against a file's batch: read-only floats without NaN reach bin_counts as is.
        lambda: K.drift_from_profile(K.profile({"f": clean}), {"f": clean}),
        *[lambda m=m: K.dataset_drift(ref, cur, method=m, columns=columns_for.get(m)) for m in METHODS],
        *[lambda m=m: K.dataset_drift(read_only, cur, method=m, columns=columns_for.get(m)) for m in METHODS],
        *[lambda m=m: K.dataset_drift(cur, read_only, method=m, columns=columns_for.get(m)) for m in METHODS],
        lambda: K.ks_2samp(np.arange(30.0), np.arange(30.0) + 3, method="exact"),  # equal sizes
        lambda: K.ks_2samp(np.arange(30.0), np.arange(41.0), method="exact"),  # unequal sizes
        *[lambda a=a: K.ks_2samp(np.arange(30), np.arange(41) + 9, method="exact", alternative=a)  # integer keys
          for a in ("less", "greater")],
        lambda: K.ks_2samp(floats[~np.isnan(floats)], cur["f"][~np.isnan(cur["f"])]),
        # Large samples take the bucketed KS (ksbuckets): floats, read-only floats, integers of a wide range.
        lambda: K.ks_2samp(big, big[::-1] + 0.5),
        lambda: K.ks_2samp(big_frozen, big_frozen[::-1] + 0.5),
        lambda: K.ks_2samp(big_frozen, big + 0.5),
        lambda: K.ks_2samp(big_ints, big_ints[::-1] + (1 << 37)),
        lambda: K.wasserstein_distance([1.0, 2.0, 3.0], [2.0, 5.0], [1.0, 1.0, 2.0], [1.0, 3.0]),
        lambda: C.pearson({"f": ref["f"], "i": ref["i"]}),
        lambda: C.spearman({"f": ref["f"], "i": ref["i"]}),
        lambda: C.cramers_v({"c": ref["c"], "b": ref["b"]}),
        lambda: cut_points(rng.integers(0, 256, 3 << 20, dtype=np.uint8)),
        lambda: cut_points(rng.integers(0, 256, 3 << 20, dtype=np.uint8).tobytes()),  # read-only
    ]
    failures = []
    for step in steps[only]:
        try:
            step()
        except Exception as exc:  # an API that changed must not stop the others from compiling
            failures.append(repr(exc))
    return failures


# -- the process -------------------------------------------------------------------------------------------------


def lower_priority() -> None:
    """This process (and the threads it starts from now on) runs only on otherwise idle CPU time.

    ``SCHED_IDLE`` where the kernel allows it, and ``nice 19`` in any case;
    numba's compiler and its thread pool inherit both. A refusal is ignored
    (the warm-up then merely runs at nice 19).
    """
    try:
        os.nice(19 - os.nice(0))
    except OSError:
        pass
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (OSError, AttributeError):
        pass


def die_with_parent(parent: int) -> bool:
    """Ask the kernel to SIGKILL this process when its parent exits; False if ``parent`` is gone already."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    return os.getppid() == parent  # checked after the prctl: the parent may have gone just before


def warm(cache_dir: Path, staging: Path | None = None) -> tuple[Installed | None, list[str]]:
    """Compile every kernel (in ``staging`` when given, then :func:`install`) and mark ``cache_dir`` warm.

    Must run in a process that has not imported numba yet: numba's cache
    folder is read from ``$NUMBA_CACHE_DIR``, set here first. Returns what
    the install did (None without staging) and the calls that failed.
    """
    os.environ["NUMBA_CACHE_DIR"] = str(staging or cache_dir)
    failures = compile_everything()
    done = install(staging, cache_dir) if staging is not None else None
    mark_warm(cache_dir)
    return done, failures


def main(argv: list[str] | None = None) -> int:
    """The warm-up process: exit 0 when the cache is warm (now or already), 1 when it could not be warmed."""
    ap = argparse.ArgumentParser(prog="python -m edgeorch.kernels.warmup", description=__doc__.splitlines()[0])
    ap.add_argument("cache_dir", type=Path, help="the numba cache folder to warm")
    ap.add_argument("--staging", type=Path, help="compile here (inside CACHE_DIR), then install into CACHE_DIR")
    ap.add_argument("--idle", action="store_true", help="run at the lowest CPU priority (SCHED_IDLE, nice 19)")
    ap.add_argument("--parent", type=int, help="exit with this process (the daemon that started the warm-up)")
    args = ap.parse_args(argv)
    if args.parent is not None and not die_with_parent(args.parent):
        return 0
    if args.idle:
        lower_priority()
    if is_warm(args.cache_dir):
        print("already warm", flush=True)
        return 0
    started = time.monotonic()
    try:
        if args.staging is not None:
            args.staging.mkdir(parents=True, exist_ok=True)
        done, failures = warm(args.cache_dir, args.staging)
    except OSError as exc:
        print(f"cannot warm the numba cache in {args.cache_dir}: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.staging is not None:
            shutil.rmtree(args.staging, ignore_errors=True)
    for failure in failures:
        print(f"a warm-up call failed (what it compiles compiles on first use): {failure}", file=sys.stderr)
    what = f", {done.installed} function(s) installed, {done.kept} kept" if done is not None else ""
    print(f"warm in {time.monotonic() - started:.1f}s{what}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
