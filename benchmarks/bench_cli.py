"""Whole `edgeorch` commands as a user runs them: start-up, a one-task run, a warm profile.

    python benchmarks/bench_cli.py [--rounds 10] [--before PATH]

Each figure is one whole process (interpreter start, imports, the work, exit),
wall time and CPU time (user + system of the process and everything it
waited for: the zygote and the task of an offline run), medians over
``--rounds``:

- ``edgeorch --help``;
- ``edgeorch status`` and ``edgeorch run one`` (a pipeline of one ``true``
  task) through a running daemon;
- ``edgeorch run one`` without a daemon (an engine in the process);
- ``edgeorch profile`` of a 1 MB CSV with a warm numba cache (warmed first
  by ``python -m edgeorch.kernels.warmup``, the daemon's warm-up): the
  command alone (``EDGEORCH_KEEP_WARM=0``), and served by the kernel server
  an earlier command left (``edgeorch/kernels/keepwarm.py``; started and
  awaited before the rounds; a tree without it runs the command alone).

References in the same run: ``python -c pass`` (the interpreter alone) and
importing numba, numpy, pyarrow and scipy.special (the kernels' floor).

``--before PATH``: another checkout (e.g. a ``git worktree`` of an older
commit) measured in the same run, interleaved round by round (before, after,
then after, before) so that machine noise hits both alike; the last column is
the median of the per-round ratios after / before. Each tree gets its own
state folder (an older edgeorch refuses a newer state file); the daemon of the
daemon figures is this checkout's, asked by both trees' CLIs.

Run it with the interpreter of a venv where edgeorch was installed as a user
installs it (``pip install .``, not ``-e``): each tree is put first by
``PYTHONPATH``, and an editable install's ``.pth`` finder would add 25-30 ms
to every process, references included. Byte-compile both trees first
(``python -m compileall -q edgeorch``) when ``PYTHONDONTWRITEBYTECODE`` is set.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from scratch import scratch  # noqa: E402


def measure(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """(wall, CPU) seconds of one whole command, which must exit 0."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr[-500:]}")
    return wall, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)


def write_csv(path: Path, size: int = 1_000_000) -> None:
    rng = random.Random(1)
    with open(path, "w") as f:
        f.write("a,b,c,d,cat\n")
        while f.tell() < size:
            f.write(f"{rng.random():.6f},{rng.randint(0, 1000)},{rng.gauss(0, 1):.5f},{rng.random() * 100:.3f},"
                    f"{rng.choice('xyz')}\n")


class Tree:
    """One checkout: its environment (PYTHONPATH first) and its own config and state folder."""

    def __init__(self, name: str, path: Path, root: Path, numba_cache: Path) -> None:
        self.name, self.path = name, path
        self.config = root / f"config-{name}.toml"
        self.config_daemon = root / f"config-{name}-daemon.toml"
        # The daemon is this checkout's: no warm-up competing with the figures (the cache is warm).
        extra = '[kernels]\nwarm_up = false\n' if path == REPO else ""
        for cfg, state in ((self.config, root / f"var-{name}"), (self.config_daemon, root / "var-daemon")):
            cfg.write_text(f'[state]\ndir = "{state}"\n[pipelines]\ndir = "{root / "p"}"\n{extra}')
        # Each tree's kernel servers in a private folder of its own; none unless a case asks for one.
        self.runtime = root / f"run-{name}"
        self.runtime.mkdir(mode=0o700)
        self.env = dict(os.environ, PYTHONPATH=str(path), NUMBA_CACHE_DIR=str(numba_cache),
                        XDG_RUNTIME_DIR=str(self.runtime), EDGEORCH_KEEP_WARM="0")

    def env_for(self, *, daemon: bool, extra: dict[str, str] | None = None) -> dict[str, str]:
        return dict(self.env, EDGEORCH_CONFIG=str(self.config_daemon if daemon else self.config), **(extra or {}))

    def servers(self) -> list[Path]:
        folder = self.runtime / "edgeorch-kernels"
        return sorted(folder.glob("kernels-*.sock")) if folder.is_dir() else []


SERVED = {"EDGEORCH_KEEP_WARM": "10m"}


def start_kernel_server(tree: Tree, cmd: list[str], root: Path) -> None:
    """Run ``cmd`` once with a server wanted, then wait (up to a minute) for the server it leaves to listen; a
    tree from before the kernel server leaves none, and is not waited for."""
    measure(cmd, tree.env_for(daemon=False, extra=SERVED), root)
    if not (tree.path / "edgeorch" / "kernels" / "keepwarm.py").exists():
        return
    deadline = time.monotonic() + 60
    while not tree.servers() and time.monotonic() < deadline:  # a benchmark may poll
        time.sleep(0.05)


def stop_kernel_servers(trees: list[Tree]) -> None:
    """Remove the servers' sockets: each exits within seconds (edgeorch/kernels/server.py)."""
    for t in trees:
        for sock in t.servers():
            sock.unlink(missing_ok=True)


def start_daemon(tree: Tree, root: Path) -> subprocess.Popen[bytes]:
    """This checkout's daemon (no numba warm-up: the cache is warm), READY=1 awaited on a notify socket."""
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(root / "notify.sock"))
    notify.settimeout(60)
    env = dict(tree.env_for(daemon=True), NOTIFY_SOCKET=str(root / "notify.sock"))
    proc = subprocess.Popen([sys.executable, "-m", "edgeorch", "daemon"], env=env, cwd=root,
                            stdout=subprocess.DEVNULL, stderr=open(root / "daemon.log", "a"))
    while "READY=1" not in notify.recv(65536).decode().splitlines():
        pass
    notify.close()
    return proc


def stop_daemon(daemon: subprocess.Popen[bytes] | None, root: Path) -> None:
    """Stop a daemon :func:`start_daemon` started (SIGTERM, then wait). Its scratch folder ``root`` (from
    :func:`scratch.scratch`) is removed when the benchmark exits, not here: a removal slows the file creations of
    whatever is measured next on a journal-less ext4 (scratch.py), and ``EDGEORCH_BENCH_KEEP`` keeps it."""
    if daemon is not None and daemon.poll() is None:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=60)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--before", type=Path, help="another checkout to measure in the same run, interleaved")
    args = ap.parse_args()
    root = scratch("cli-")
    daemon = None
    trees: list[Tree] = []
    try:
        (root / "p").mkdir()
        (root / "p" / "one.toml").write_text('[tasks.a]\ncommand = ["true"]\n')
        write_csv(root / "one_mb.csv")
        cache = root / "numba-cache"
        trees = [Tree("after", REPO, root, cache)]
        if args.before is not None:
            trees.insert(0, Tree("before", args.before.resolve(), root, cache))
        for t in trees:  # each tree's warm-up on its own kernels (numba keys its files by source path)
            subprocess.run([sys.executable, "-c", "from edgeorch.kernels.warmup import compile_everything; "
                            "compile_everything()"], env=t.env, check=True, cwd=root)
            measure([sys.executable, "-m", "edgeorch", "run", "one"], t.env_for(daemon=False), root)  # state made
        py = [sys.executable]
        cases = [
            ("python -c pass (reference)", py + ["-c", "pass"], False),
            ("import numba, numpy, pyarrow, scipy.special (reference)",
             py + ["-c", "import numba, numpy, pyarrow.csv, pyarrow.compute, scipy.special"], False),
            ("edgeorch --help", py + ["-m", "edgeorch", "--help"], False),
            ("edgeorch status (daemon)", py + ["-m", "edgeorch", "status"], True),
            ("edgeorch run one (daemon)", py + ["-m", "edgeorch", "run", "one"], True),
            ("edgeorch run one (no daemon)", py + ["-m", "edgeorch", "run", "one"], False),
            ("edgeorch profile 1 MB CSV (warm cache)", py + ["-m", "edgeorch", "profile", "one_mb.csv"], False),
            ("edgeorch profile 1 MB CSV (a kernel server warm)", py + ["-m", "edgeorch", "profile", "one_mb.csv"],
             False),
        ]
        daemon = start_daemon(trees[-1], root)
        print(f"{'command':<56} " + " ".join(f"{t.name + ' wall':>12} {t.name + ' CPU':>11}" for t in trees)
              + ("   after/before" if len(trees) == 2 else ""))
        for title, cmd, via_daemon in cases:
            extra = SERVED if "kernel server" in title else None
            if extra:
                for t in trees:
                    start_kernel_server(t, cmd, root)
            got: dict[str, list[tuple[float, float]]] = {t.name: [] for t in trees}
            ratios = []
            for i in range(args.rounds):
                order = trees if i % 2 == 0 else trees[::-1]
                this = {t.name: measure(cmd, t.env_for(daemon=via_daemon, extra=extra), root) for t in order}
                for name, value in this.items():
                    got[name].append(value)
                if len(trees) == 2:
                    ratios.append(this["after"][0] / this["before"][0])
            cols = " ".join(f"{statistics.median(w for w, _ in got[t.name]):11.3f}s "
                            f"{statistics.median(c for _, c in got[t.name]):10.3f}s" for t in trees)
            tail = f"   {statistics.median(ratios):.2f}" if ratios else ""
            print(f"{title:<56} {cols}{tail}   (load {os.getloadavg()[0]:.1f})", flush=True)
    finally:
        stop_daemon(daemon, root)
        stop_kernel_servers(trees)


if __name__ == "__main__":
    main()
