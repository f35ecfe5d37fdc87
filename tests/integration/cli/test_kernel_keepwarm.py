"""The kernel server a kernel command leaves behind (edgeorch/kernels/keepwarm.py, server.py), as a user meets it.

Real processes: `edgeorch profile | drift | fairness` as subprocesses, the server they start, its Unix socket
in a private folder of the test's own (``$XDG_RUNTIME_DIR``). Synchronisation: the server's socket appearing
(it is renamed into place once listening), the server's process ending, its log's lines; never sleeps.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


class Servers:
    """The test's private server folder, the environment that points commands at it, and clean-up."""

    def __init__(self, runtime: Path, work: Path) -> None:
        self.runtime, self.work = runtime, work
        self.folder = runtime / "edgeorch-kernels"
        self.env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime), "EDGEORCH_KEEP_WARM": "60s",
                    "PYTHONPATH": str(REPO)}
        self.env.pop("EDGEORCH_CONFIG", None)

    def cli(self, *args: str, env: dict[str, str] | None = None, umask: int | None = None,
            ) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "edgeorch", *args], cwd=self.work, capture_output=True,
                              text=True, env={**self.env, **(env or {})}, check=False,
                              preexec_fn=(lambda: os.umask(umask)) if umask is not None else None)

    def served(self, *args: str, umask: int | None = None, tries: int = 5) -> subprocess.CompletedProcess[str]:
        """``cli(*args)`` until the server served it (its log gains a ``served`` line). A command whose request the
        server has not started within keepwarm.START_TIMEOUT_S (a machine loaded by the rest of the suite) does
        the work itself, by design: the same output, and nothing this test is about."""
        for _ in range(tries):
            before = self.logs().count("served ")
            out = self.cli(*args, umask=umask)
            deadline = time.monotonic() + 10
            while self.logs().count("served ") == before and time.monotonic() < deadline:
                time.sleep(0.02)  # the server answers first and logs after
            if self.logs().count("served ") > before:
                return out
        raise AssertionError(f"{args} never served in {tries} tries: {self.logs()}")

    def sockets(self) -> list[Path]:
        return sorted(self.folder.glob("kernels-*.sock")) if self.folder.is_dir() else []

    def wait_socket(self, timeout: float = 120) -> Path:
        deadline = time.monotonic() + timeout
        while not self.sockets():
            assert time.monotonic() < deadline, f"no server socket in {self.folder}: {self.logs()}"
            time.sleep(0.02)
        return self.sockets()[0]

    def logged(self, text: str, count: int = 1, timeout: float = 30) -> str:
        """The logs once ``text`` is in them ``count`` times: the server answers first and logs after (a test that
        read the log right after the command's end read it before the line)."""
        deadline = time.monotonic() + timeout
        while self.logs().count(text) < count:
            assert time.monotonic() < deadline, f"{text!r} not logged {count} time(s): {self.logs()}"
            time.sleep(0.02)
        return self.logs()

    def logs(self) -> str:
        return "".join(p.read_text() for p in sorted(self.folder.glob("kernels-*.log"))) if self.folder.is_dir() else ""

    def pids(self) -> list[int]:
        """The server processes serving from this test's folder (their command line names it)."""
        out = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    cmd = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
                except OSError:
                    continue
                if b"edgeorch.kernels.server" in cmd and os.fsencode(self.folder) in cmd:
                    out.append(int(entry))
        return out

    def wait_gone(self, pid: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while Path(f"/proc/{pid}").exists() and Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z":
            assert time.monotonic() < deadline, f"server {pid} still runs: {self.logs()}"
            time.sleep(0.02)

    def stop_all(self) -> None:
        for pid in self.pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.fixture
def servers(short_tmp_path: Path, tmp_path: Path) -> Iterator[Servers]:
    runtime = short_tmp_path / "run"
    runtime.mkdir(mode=0o700)
    s = Servers(runtime, tmp_path)
    rows = ["a,b,g,y,p"] + [f"{i % 17 * 0.5},{i % 5},{'mf'[i % 2]},{i % 3 % 2},{(i // 2) % 2}" for i in range(3000)]
    (tmp_path / "ref.csv").write_text("\n".join(rows) + "\n")
    moved = ["a,b,g,y,p"] + [f"{i % 17 * 0.5 + 5},{i % 5 + 3},{'mf'[i % 2]},{i % 2},{i % 2}" for i in range(3000)]
    (tmp_path / "moved.csv").write_text("\n".join(moved) + "\n")
    try:
        yield s
    finally:
        s.stop_all()


def test_the_second_command_is_served_warm_with_the_same_output_files_errors_and_exit_codes(servers):
    cold = servers.cli("profile", "ref.csv", "--save", "cold.json", "--json")
    assert cold.returncode == 0, cold.stderr
    sock = servers.wait_socket()
    assert sock.parent.stat().st_mode & 0o777 == 0o700
    warm = servers.served("profile", "ref.csv", "--save", "warm.json", "--json", umask=0o077)
    assert warm.returncode == 0, warm.stderr
    cold_doc, warm_doc = json.loads(cold.stdout), json.loads(warm.stdout)
    for doc in (cold_doc, warm_doc):
        doc.pop("outputs", None)
        doc.pop("elapsed_s", None)
    assert warm_doc == cold_doc
    saved = {n: json.loads((servers.work / n).read_text()) for n in ("cold.json", "warm.json")}
    assert saved["warm.json"] == saved["cold.json"]
    assert (servers.work / "warm.json").stat().st_mode & 0o777 == 0o600, "the command's umask was not used"
    assert "served profile" in servers.logged("served profile")

    # Drift exits 1, a missing file 3, an unknown column 2: the same message and code as without a server.
    for args, code in ((("drift", "ref.csv", "moved.csv"), 1), (("profile", "nosuch.csv"), 3),
                       (("profile", "ref.csv", "--columns", "zz"), 2), (("fairness", "ref.csv", "--group", "g",
                                                                          "--prediction", "p", "--label", "y"), 0)):
        served = servers.served(*args)
        alone = servers.cli(*args, env={"EDGEORCH_KEEP_WARM": "0"})
        assert (served.returncode, served.stdout, served.stderr) == (alone.returncode, alone.stdout, alone.stderr)
        assert served.returncode == code, served.stderr
    log = servers.logged("served fairness")
    assert "served drift" in log and "served profile: exit 3" in log and "served fairness" in log, log
    # One server. A command whose request was not started in time (a loaded machine) works alone and starts a
    # server; when the first had not taken its lock yet, that one finds it held and exits at once: wait for it
    # (seen in CI as two pids at this line).
    deadline = time.monotonic() + 30
    while len(pids := servers.pids()) != 1:
        assert time.monotonic() < deadline, pids
        time.sleep(0.05)


def test_a_server_lives_only_while_it_is_wanted_and_a_broken_one_is_never_waited_for(servers):
    assert servers.cli("profile", "ref.csv").returncode == 0
    sock = servers.wait_socket()
    [pid] = servers.pids()

    # Garbage on its socket, and a client that says nothing: the server goes on serving.
    with socket.socket(socket.AF_UNIX) as c:
        c.connect(str(sock))
        c.sendall(b"\x00\xff not json\n")
        assert c.recv(100) == b""
    with socket.socket(socket.AF_UNIX) as c:
        c.connect(str(sock))
    assert servers.served("profile", "ref.csv").returncode == 0  # it goes on serving

    # Its socket removed (a second server retired it, or a clean-up): it exits by itself.
    sock.unlink()
    servers.wait_gone(pid)

    # kill -9: the next command works alone and starts another (the lock died with the first).
    assert servers.cli("profile", "ref.csv").returncode == 0
    sock = servers.wait_socket()
    [pid] = servers.pids()
    os.kill(pid, signal.SIGKILL)
    servers.wait_gone(pid)
    assert sock.exists()  # left behind: nobody listens there any more
    again = servers.cli("profile", "ref.csv", "--json")
    assert again.returncode == 0 and json.loads(again.stdout)["kind"] == "profile", again.stderr
    servers.wait_socket()

    # SIGTERM (systemd's stop of a user session, a kill): it ends. Then idle for keep_warm: it exits and
    # removes its socket.
    [pid] = servers.pids()
    os.kill(pid, signal.SIGTERM)
    servers.wait_gone(pid)
    for s in servers.sockets():
        s.unlink()
    assert servers.cli("profile", "ref.csv", env={"EDGEORCH_KEEP_WARM": "1s"}).returncode == 0
    servers.wait_socket()
    [pid] = servers.pids()
    servers.wait_gone(pid)
    assert servers.sockets() == []


def test_no_server_where_the_folder_is_not_private_or_keep_warm_is_off(servers):
    servers.folder.mkdir(mode=0o700)
    os.chmod(servers.folder, 0o777)  # another user could enter it: no server, and nothing is put there
    assert servers.cli("profile", "ref.csv").returncode == 0
    assert list(servers.folder.iterdir()) == []
    os.chmod(servers.folder, 0o700)
    assert servers.cli("profile", "ref.csv", env={"EDGEORCH_KEEP_WARM": "0"}).returncode == 0
    assert list(servers.folder.iterdir()) == []
    # A differentially private release writes a privacy ledger: always the command's own.
    dp = servers.cli("profile", "ref.csv", "--columns", "a", "--epsilon", "1", "--bounds", "a=0:10", "--budget", "3")
    assert dp.returncode == 0, dp.stderr
    assert list(servers.folder.iterdir()) == []
