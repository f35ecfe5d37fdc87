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

The shared folder is warm for one marker: the Python and numba versions and
the path, size and mtime of each compiled source file (numba's own cache
key). A change to any of them warms it again. ``python tests/numba_warmup.py``
runs the warm-up body in a fresh interpreter (what :func:`warm` starts).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOURCES = (REPO / "edgeorch" / "kernels" / "_jit.py", REPO / "edgeorch" / "datasets" / "chunker.py")
"""The modules that define numba kernels (their stamps are numba's cache key)."""

MARKER_PREFIX = "warm-"


def shared_dir() -> Path:
    """``<temp dir>/edgeorch-tests-numba-<uid>``: this user's shared cache (one per machine)."""
    return Path(tempfile.gettempdir()) / f"edgeorch-tests-numba-{os.getuid()}"


def marker() -> str:
    """The name of the file that says the shared cache is warm for the current sources and versions."""
    from importlib.metadata import version  # not numba itself: importing it costs a test process 0.7 s

    h = hashlib.sha256(f"{sys.version}|{version('numba')}|{Path(__file__).read_bytes()!r}".encode())
    for src in SOURCES:
        st = src.stat()
        h.update(f"|{src}|{st.st_size}|{st.st_mtime_ns}".encode())
    return MARKER_PREFIX + h.hexdigest()[:20]


def warm(shared: Path | None = None) -> Path:
    """Compile every kernel into the shared cache unless it is warm already; returns the shared folder.

    Holds the shared folder's lock while it checks and compiles, so concurrent test sessions
    (and pytest-xdist workers) wait for one warm-up instead of compiling side by side. Never
    fails the caller: a warm-up that fails (an API it calls changed) is reported on stderr and
    the kernels then compile in each process's copy as they are used.
    """
    shared = shared or shared_dir()
    with _locked(shared):
        name = marker()
        if not (shared / name).exists():
            for old in shared.glob(MARKER_PREFIX + "*"):
                old.unlink()
            env = dict(os.environ, NUMBA_CACHE_DIR=str(shared))
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
            proc = subprocess.run([sys.executable, __file__], env=env, capture_output=True, text=True, timeout=900)
            if proc.stderr:
                print(proc.stderr[-2000:], file=sys.stderr)
            if proc.returncode == 0:
                (shared / name).touch()
    return shared


def private_copy(dest: Path, shared: Path | None = None) -> Path:
    """Warm the shared cache if needed (:func:`warm`), then copy it to ``dest`` (created); returns ``dest``."""
    shared = warm(shared)
    with _locked(shared):  # never copy a warm-up half written
        shutil.copytree(shared, dest, ignore=shutil.ignore_patterns(".lock", MARKER_PREFIX + "*"), dirs_exist_ok=True)
    return dest


@contextmanager
def _locked(shared: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``shared/.lock`` (the folder is created, private to this user)."""
    shared.mkdir(mode=0o700, exist_ok=True)
    with open(shared / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        yield


def _compile_everything() -> None:
    """Call every kernel through the public API, on data of each kind the kernels take."""
    import numpy as np

    from edgeorch import kernels as K
    from edgeorch.datasets.chunker import cut_points
    from edgeorch.kernels import correlations as C
    from edgeorch.kernels.drift import METHODS

    COLUMNS_FOR = {"ks": ["f", "i", "t"], "wasserstein": ["f", "i", "t"], "z": ["b"], "chisquare": ["c", "b"]}

    rng = np.random.default_rng(0)
    n = 3000
    floats = rng.normal(size=n)
    floats[::97] = np.nan
    ref = {"f": floats, "i": rng.integers(0, 40, n), "b": rng.integers(0, 2, n).astype(bool),
           "c": rng.choice(["a", "b", "c"], n),
           "t": np.datetime64("2024-01-01") + rng.integers(0, 10_000, n).astype("timedelta64[m]")}
    cur = {k: (v[::-1].copy() if k != "f" else v + 0.5) for k, v in ref.items()}
    # Read-only arrays are a signature of their own: what a file read through pyarrow gives.
    frozen = {}
    for k, v in ref.items():
        frozen[k] = v.copy()
        frozen[k].flags.writeable = False
    steps = [
        lambda: K.merge_profiles(K.profile(ref), K.profile(cur)),
        lambda: K.merge_profiles(K.profile(frozen), K.profile(ref)),
        lambda: K.drift_from_profile(K.profile(ref), cur),
        *[lambda m=m: K.dataset_drift(ref, cur, method=m, columns=COLUMNS_FOR.get(m)) for m in METHODS],
        *[lambda m=m: K.dataset_drift(frozen, cur, method=m, columns=COLUMNS_FOR.get(m)) for m in METHODS],
        *[lambda m=m: K.dataset_drift(cur, frozen, method=m, columns=COLUMNS_FOR.get(m)) for m in METHODS],
        lambda: K.ks_2samp(np.arange(30.0), np.arange(30.0) + 3, method="exact"),  # equal sizes
        lambda: K.ks_2samp(np.arange(30.0), np.arange(41.0), method="exact"),  # unequal sizes
        *[lambda a=a: K.ks_2samp(np.arange(30), np.arange(41) + 9, method="exact", alternative=a)  # integer keys
          for a in ("less", "greater")],
        lambda: K.ks_2samp(floats[~np.isnan(floats)], cur["f"][~np.isnan(cur["f"])]),
        lambda: K.wasserstein_distance([1.0, 2.0, 3.0], [2.0, 5.0], [1.0, 1.0, 2.0], [1.0, 3.0]),
        lambda: C.pearson({"f": ref["f"], "i": ref["i"]}),
        lambda: C.spearman({"f": ref["f"], "i": ref["i"]}),
        lambda: C.cramers_v({"c": ref["c"], "b": ref["b"]}),
        lambda: cut_points(rng.integers(0, 256, 3 << 20, dtype=np.uint8)),
        lambda: cut_points(rng.integers(0, 256, 3 << 20, dtype=np.uint8).tobytes()),  # read-only
    ]
    for step in steps:
        try:
            step()
        except Exception as exc:  # an API that changed must not stop the others from compiling
            print(f"tests/numba_warmup.py: a step failed (what it compiles, workers compile as used): {exc!r}",
                  file=sys.stderr)


if __name__ == "__main__":
    _compile_everything()
