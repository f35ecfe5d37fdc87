"""Shared fixtures: a temp state dir with a config, pipelines written on the fly, the ``edgeorch`` command
in-process or as a subprocess, and a real daemon process per test, synchronised through its sd_notify
messages. Also the session's numba cache (tests/numba_warmup.py) and short temp folders for sockets."""

from __future__ import annotations

import compileall
import io
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from edgeorch.control import Client
from edgeorch.model import RunState

REPO = Path(__file__).resolve().parents[1]

# The ray_head fixture, and the hooks that run the Ray tests first and stop the head after them.
pytest_plugins = ("rayhead_plugin",)

# Bytecode files are part of what keeps the suite inside its time: every daemon, CLI and kernel
# process a test starts imports edgeorch, and without .pyc files (PYTHONDONTWRITEBYTECODE set in
# the environment) each one compiles the package again, ~0.3 s of CPU a process. Workers and the
# processes they start inherit this environment.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
sys.dont_write_bytecode = False

# A kernel command leaves a kernel server behind for the user's next one (edgeorch/kernels/keepwarm.py),
# one per numba cache, for 10 minutes. The suite's commands run their kernels themselves; the servers
# are tested on their own, in private folders (tests/integration/cli/test_kernel_keepwarm.py).
os.environ["EDGEORCH_KEEP_WARM"] = "0"


def pytest_configure(config: pytest.Config) -> None:
    """Point this process's numba cache (and so every process it starts) at a private warm copy.

    Set before any test runs or imports numba. A pytest-xdist controller runs no test: it only warms
    the shared cache, once, before its workers start (each then copies it without waiting).
    """
    import numba_warmup

    if not os.environ.get("PYTEST_XDIST_WORKER"):
        # Once, before any worker starts: compiled now, the package is never compiled by
        # several processes at once (and a fresh checkout pays it one time, not per process).
        compileall.compile_dir(REPO / "edgeorch", quiet=2)
    if getattr(config.option, "numprocesses", None) and not os.environ.get("PYTEST_XDIST_WORKER"):
        numba_warmup.warm()
        return
    private = Path(tempfile.mkdtemp(prefix="edgeorch-tests-numba-run-"))
    config.stash[_NUMBA_DIR] = private
    os.environ["NUMBA_CACHE_DIR"] = str(numba_warmup.private_copy(private))


def pytest_unconfigure(config: pytest.Config) -> None:
    private = config.stash.get(_NUMBA_DIR, None)
    if private is not None:
        shutil.rmtree(private, ignore_errors=True)


_NUMBA_DIR = pytest.StashKey[Path]()


@pytest.fixture
def short_tmp_path() -> Iterator[Path]:
    """A fresh empty folder with a short path (``/tmp/eo-XXXXXXXX``), removed after the test.

    For AF_UNIX socket paths, limited to 107 bytes: ``tmp_path`` is longer under pytest-xdist
    (``.../popen-gw1/<test name>0``) and a socket a tool derives below it may not fit.
    """
    d = Path(tempfile.mkdtemp(prefix="eo-", dir="/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator["Workspace"]:
    ws = Workspace(tmp_path)
    yield ws
    # A test that failed before it let its tasks end (the `go` file never written) left them looping, under live
    # restore, after its engine or in-process run closed: minutes of CPU that made later tests slow and flaky.
    _kill_leftover_tasks(ws.state / "edgeorch.db")


@pytest.fixture
def cli_in_process() -> Callable[..., subprocess.CompletedProcess[str]]:
    """:func:`run_cli_in_process`, for tests with a config of their own (no :class:`Workspace`)."""
    return run_cli_in_process


@pytest.fixture(scope="module")
def module_workspace(tmp_path_factory: pytest.TempPathFactory) -> "Workspace":
    """One workspace for a whole test module: state prepared once for tests that only read it."""
    return Workspace(tmp_path_factory.mktemp("module-workspace"))


class Workspace:
    """A folder with ``config.toml``, ``pipelines/`` and ``var/`` for one test."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.pipelines = root / "pipelines"
        self.pipelines.mkdir()
        self.state = root / "var"
        self.config_path = root / "config.toml"
        self.write_config()

    def write_config(self, extra: str = "", parallelism: int = 2, kill_grace: str = "2s") -> Path:
        self.config_path.write_text(textwrap.dedent(f"""\
            [state]
            dir = "{self.state}"
            [pipelines]
            dir = "{self.pipelines}"
            [engine]
            parallelism = {parallelism}
            kill_grace = "{kill_grace}"
            """) + textwrap.dedent(extra))
        return self.config_path

    def watch_folder(self, pipeline: str, *, settle: str = "0.2s", extra: str = "") -> Path:
        """Write the config with one ``[[watch]]`` of ``<root>/drop`` (created) for ``pipeline``; ``extra``: more keys
        of that table (``mode = "batch"``, ...). Returns the folder."""
        drop = self.root / "drop"
        drop.mkdir(exist_ok=True)
        keys = "".join(f"{line.strip()}\n" for line in textwrap.dedent(extra).splitlines() if line.strip())
        self.write_config(f'[[watch]]\nfolder = "{drop}"\npipeline = "{pipeline}"\nsettle = "{settle}"\n{keys}')
        return drop

    def pipeline(self, name: str, text: str) -> Path:
        path = self.pipelines / f"{name}.toml"
        path.write_text(textwrap.dedent(text))
        return path

    @staticmethod
    def wait_file(path: Path, timeout: float = 30.0) -> None:
        """Block until ``path`` exists (a file a task creates): a condition polled every 10 ms, never a fixed sleep."""
        deadline = time.monotonic() + timeout
        while not path.exists():
            assert time.monotonic() < deadline, f"{path} did not appear within {timeout:g}s"
            time.sleep(0.01)

    def attempt_with_pid(self, task: str) -> "sqlite3.Row | None":
        """The attempt row of ``task`` once the daemon recorded its process (pid), else None: a condition to poll
        (the task may touch its own file before the pid its supervisor reported is written)."""
        import sqlite3

        conn = sqlite3.connect(self.state / "edgeorch.db")
        conn.row_factory = sqlite3.Row
        try:
            return conn.execute("SELECT * FROM attempts WHERE task = ? AND pid IS NOT NULL", (task,)).fetchone()
        finally:
            conn.close()

    def wait_running(self, task: str, started: str = "started", timeout: float = 30.0) -> "sqlite3.Row":
        """Block until ``task`` has touched ``<pipelines>/started`` (its first act) and the daemon has recorded its
        process; returns its attempt row (:meth:`attempt_with_pid`)."""
        deadline = time.monotonic() + timeout
        while not ((self.pipelines / started).exists() and (row := self.attempt_with_pid(task))):
            assert time.monotonic() < deadline, f"{task} did not start within {timeout:g}s"
            time.sleep(0.01)
        return row

    def config(self):
        from edgeorch.config import load_config

        return load_config(self.config_path)

    def cli_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["EDGEORCH_CONFIG"] = str(self.config_path)
        env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        return env

    def cli(self) -> list[str]:
        return [sys.executable, "-m", "edgeorch.cli"]

    def invoke(self, *args: str, env: dict[str, str] | None = None, environ: dict[str, str] | None = None,
               stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """``edgeorch ARGS`` run in this process (``edgeorch.cli.main.main``), with this workspace's config.

        What a subprocess of :meth:`cli` would give (exit code, stdout, stderr), for a fraction of the
        cost: no interpreter start, no imports. For tests of output and exit codes; a test of the real
        process (signals, ``python -m``, the interpreter's own behaviour) keeps :meth:`cli`. ``env``
        adds variables to :meth:`cli_env`; ``environ`` replaces the whole environment (as subprocess's
        ``env=``); ``stdin``, when given, is what the command reads. The process's environment, standard
        streams and logging setup are restored after.
        """
        return run_cli_in_process(list(args), environ if environ is not None else {**self.cli_env(), **(env or {})},
                                  stdin=stdin)


class _Capture(io.TextIOWrapper):
    """A text stream with a ``buffer`` (``edgeorch logs`` writes bytes there), read back as one string."""

    def __init__(self) -> None:
        self._bytes = io.BytesIO()
        super().__init__(self._bytes, encoding="utf-8", errors="replace", write_through=True)

    def close(self) -> None:  # a command closing its stdout must not lose what it wrote
        self.flush()

    def text(self) -> str:
        self.flush()
        return self._bytes.getvalue().decode("utf-8", errors="replace")


def run_cli_in_process(argv: list[str], env: dict[str, str], *,
                       stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """``edgeorch.cli.main.main(argv)`` with ``env`` as the whole environment; stdout and stderr captured,
    ``stdin`` (when given) on standard input.

    ``SystemExit`` (argparse's ``--help`` and ``--version``) gives its code, as the process would.
    """
    from edgeorch.cli.main import main

    saved_env = dict(os.environ)
    saved_streams = sys.stdin, sys.stdout, sys.stderr
    # The command sets up logging (edgeorch.loglevel.configure_logging): undone after, so a later
    # test sees the levels and handlers it would see in a fresh process.
    root, ours = logging.getLogger(), logging.getLogger("edgeorch")
    saved_logging = list(root.handlers), root.level, ours.level
    out, err = _Capture(), _Capture()
    os.environ.clear()
    os.environ.update(env)
    sys.stdout, sys.stderr = out, err
    if stdin is not None:
        sys.stdin = io.StringIO(stdin)
    try:
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.stdin, sys.stdout, sys.stderr = saved_streams
        for h in root.handlers[:]:
            if h not in saved_logging[0]:
                root.removeHandler(h)
                h.close()
        for h in saved_logging[0]:
            if h not in root.handlers:
                root.addHandler(h)
        root.setLevel(saved_logging[1])
        ours.setLevel(saved_logging[2])
        os.environ.clear()
        os.environ.update(saved_env)
    return subprocess.CompletedProcess(["edgeorch", *argv], code, out.text(), err.text())


class NotifyListener:
    """A real AF_UNIX datagram socket standing in for systemd's NOTIFY_SOCKET."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.messages: list[dict[str, str]] = []

    def wait_for(self, key: str, value: str | None = None, timeout: float = 30.0) -> dict[str, str]:
        """Block until a message with ``key`` (and ``value``) arrives; returns it."""
        deadline = time.monotonic() + timeout
        while True:
            for m in self.messages:
                if key in m and (value is None or m[key] == value):
                    self.messages.remove(m)
                    return m
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {key}={value} from the daemon within {timeout}s; got {self.messages}")
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            self.messages.append(dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line))

    def close(self) -> None:
        self.sock.close()


class DaemonProcess:
    def __init__(self, ws, tmp: Path) -> None:
        self.ws = ws
        self.notify = NotifyListener(tmp / "notify.sock")
        self.proc: subprocess.Popen[str] | None = None
        self.log = tmp / "daemon.log"
        self.socket_override: str | None = None

    @property
    def socket_path(self) -> Path:
        return Path(self.socket_override) if self.socket_override else self.ws.state / "edgeorch.sock"

    def start(self, *, wait_ready: bool = True) -> "DaemonProcess":
        env = self.ws.cli_env()
        env["NOTIFY_SOCKET"] = str(self.notify.path)
        self.proc = subprocess.Popen([*self.ws.cli(), "daemon"], env=env, stdout=open(self.log, "a"),
                                     stderr=subprocess.STDOUT, text=True)
        if wait_ready:
            self.ready_message = self.notify.wait_for("READY", "1")
        return self

    def client(self, timeout: float = 30) -> Client:
        return Client(self.socket_path, timeout=timeout)

    def call(self, op: str, args: dict | None = None):
        with self.client() as c:
            return c.call(op, args)

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self, timeout: float = 30) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def wait_run(self, run_id: int, timeout: float = 60) -> str:
        """Follow the events stream until the run finishes; returns its final state."""
        with self.client(timeout=timeout) as c:
            for ev in c.stream("events", {"run_id": run_id}, timeout=timeout):
                if ev.get("kind") == "run" and ev.get("run_id") == run_id and RunState(ev["state"]).finished:
                    return ev["state"]
        raise AssertionError("the events stream ended")

    def output(self) -> str:
        return self.log.read_text() if self.log.exists() else ""


@pytest.fixture
def daemon(workspace, tmp_path):
    d = DaemonProcess(workspace, tmp_path)
    yield d
    if d.proc is not None and d.proc.poll() is None:
        d.proc.kill()
        d.proc.wait()
    _kill_leftover_tasks(workspace.state / "edgeorch.db")
    d.notify.close()


def _kill_leftover_tasks(db: Path) -> None:
    """Tasks a test left running (it killed the daemon): stop their groups, checked by start time."""
    import sqlite3

    from edgeorch.engine.procinfo import is_same_process

    if not db.exists():
        return
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT pid, pid_start_time, pgid, shim_pid, shim_start_time FROM attempts").fetchall()
    except sqlite3.Error:  # a test that made it garbage, or a state file with no attempts yet: nothing it ran
        return
    finally:
        conn.close()
    for pid, start, pgid, shim, shim_start in rows:
        if pgid and is_same_process(pid, start):
            try:
                os.killpg(pgid, signal.SIGKILL)
            except OSError:
                pass
        if shim and is_same_process(shim, shim_start):
            try:
                os.kill(shim, signal.SIGKILL)
            except OSError:
                pass
