"""The shipped systemd units, run as systemd would run them, under a temporary root (issue 19, points 1-3).

How the system paths are moved: the units name their folders only through
systemd specifiers (%E = /etc, %S = /var/lib, %t = /run for a system unit;
$XDG_CONFIG_HOME, $XDG_STATE_HOME, $XDG_RUNTIME_DIR for a user unit). The
test expands those specifiers to folders under a temporary root, creates the
ConfigurationDirectory=/StateDirectory=/RuntimeDirectory= folders and sets
the variables systemd sets (CONFIGURATION_DIRECTORY, STATE_DIRECTORY,
RUNTIME_DIRECTORY, NOTIFY_SOCKET, and the unit's Environment=), then runs the
ExecStart= line parsed from the file. The one substitution: the binary the
unit names (/usr/local/bin/edgeorch, ~/.local/bin/edgeorch) is not installed
here, so the installed console script `edgeorch` of this Python stands in.
The CLI is then run like a user would, with no option and no variable but
$EDGEORCH_ROOT (the test-only prefix of /etc/edgeorch and /run/edgeorch).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
SYSTEMD = REPO / "systemd"
EDGEORCH = Path(sys.executable).parent / "edgeorch"
HELLO = '[tasks.hello]\ncommand = ["true"]\n'

pytestmark = pytest.mark.skipif(not EDGEORCH.exists(), reason="the edgeorch console script is not installed")


def parse_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """``{section: {key: [values in order]}}`` of a unit file (comments and blank lines skipped)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def expand(text: str, specifiers: dict[str, str]) -> str:
    out, i = [], 0
    while i < len(text):
        if text[i] == "%" and i + 1 < len(text):
            spec = text[i + 1]
            if spec == "%":
                out.append("%")
            else:
                assert spec in specifiers, f"specifier %{spec} has no test value"
                out.append(specifiers[spec])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


class Root:
    """A temporary root standing in for /etc, /var/lib and /run (or a user's XDG folders)."""

    def __init__(self, base: Path, user: bool) -> None:
        self.base = base
        self.user = user
        self.config_home = base / ("xdg-config" if user else "etc")
        self.state_home = base / ("xdg-state" if user else "var/lib")
        self.runtime = base / ("xdg-runtime" if user else "run")
        self.home = base / "home"
        self.specifiers = {"E": str(self.config_home), "S": str(self.state_home), "t": str(self.runtime),
                           "h": str(self.home)}
        for d in (self.config_home, self.state_home, self.runtime, self.home):
            d.mkdir(parents=True, exist_ok=True)

    def unit_env_and_argv(self, unit: Path) -> tuple[dict[str, str], list[str]]:
        svc = parse_unit(unit)["Service"]
        env = {"PATH": os.environ["PATH"], "LANG": "C.UTF-8"}
        for kind, home, var in (("ConfigurationDirectory", self.config_home, "CONFIGURATION_DIRECTORY"),
                                ("StateDirectory", self.state_home, "STATE_DIRECTORY"),
                                ("RuntimeDirectory", self.runtime, "RUNTIME_DIRECTORY")):
            names = [n for v in svc.get(kind, []) for n in v.split()]
            for name in names:
                mode = svc.get(f"{kind}Mode", ["0755"])[-1]
                (home / name).mkdir(parents=True, exist_ok=True)
                os.chmod(home / name, int(mode, 8))
            if names:
                env[var] = ":".join(str(home / n) for n in names)
        for assignment in svc.get("Environment", []):
            for word in shlex.split(expand(assignment, self.specifiers)):
                key, _, value = word.partition("=")
                env[key] = value
        (exec_start,) = svc["ExecStart"]
        argv = shlex.split(expand(exec_start.lstrip("-@+!:"), self.specifiers))
        assert Path(argv[0]).name == "edgeorch", argv
        return env, [str(EDGEORCH), *argv[1:]]

    def install_config(self) -> Path:
        """The shipped system config with its absolute paths moved under this root (user: written fresh)."""
        folder = self.config_home / "edgeorch"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "pipelines").mkdir(exist_ok=True)
        (folder / "pipelines" / "hello.toml").write_text(HELLO)
        if self.user:
            text = f'[state]\ndir = "{self.state_home}/edgeorch"\n[pipelines]\ndir = "{folder}/pipelines"\n'
        else:
            text = (SYSTEMD / "config.toml").read_text()
            text = text.replace("/var/lib/edgeorch", str(self.state_home / "edgeorch"))
            text = text.replace("/etc/edgeorch", str(folder))
        path = folder / "config.toml"
        path.write_text(text)
        return path

    def cli_env(self) -> dict[str, str]:
        """What a user's shell has: no EDGEORCH_CONFIG, no RUNTIME_DIRECTORY."""
        env = {"PATH": os.environ["PATH"], "LANG": "C.UTF-8", "HOME": str(self.home)}
        if self.user:
            env["XDG_CONFIG_HOME"] = str(self.config_home)
            env["XDG_RUNTIME_DIR"] = str(self.runtime)
        else:
            env["EDGEORCH_ROOT"] = str(self.base)
            env["XDG_CONFIG_HOME"] = str(self.home / ".config")
        return env

    def socket(self) -> Path:
        return self.runtime / "edgeorch" / "edgeorch.sock"


@pytest.fixture
def base() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="eo-sys-"))  # short: AF_UNIX paths are limited to 108 bytes
    yield d
    shutil.rmtree(d, ignore_errors=True)


class Notify:
    """The NOTIFY_SOCKET systemd would listen on."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))

    def wait_ready(self, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            assert left > 0 and proc.poll() is None, f"no READY=1 (exit {proc.poll()}):\n{log.read_text()[-3000:]}"
            self.sock.settimeout(min(left, 1.0))
            try:
                data = self.sock.recv(65536).decode()
            except TimeoutError:
                continue
            if "READY=1" in data.splitlines():
                return


def start(argv: list[str], env: dict[str, str], base: Path, **kw) -> tuple[subprocess.Popen[bytes], Path]:
    notify = Notify(base / "notify.sock")
    env = {**env, "NOTIFY_SOCKET": str(notify.path)}
    log = base / "daemon.log"
    proc = subprocess.Popen(argv, env=env, cwd="/", stdout=open(log, "ab"), stderr=subprocess.STDOUT, **kw)
    try:
        notify.wait_ready(proc, log)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return proc, log


def cli(root: Root, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(EDGEORCH), *args], env=root.cli_env(), cwd=cwd, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("unit", ["edgeorch.service", "user/edgeorch.service"])
def test_the_shipped_unit_starts_the_daemon_and_the_cli_finds_it_without_options(base: Path, unit: str) -> None:
    root = Root(base, user=unit.startswith("user/"))
    config = root.install_config()
    env, argv = root.unit_env_and_argv(SYSTEMD / unit)
    assert "--config" in argv[2:] and argv[1] == "daemon"  # the option after the command, as shipped
    proc, log = start(argv, env, base)
    try:
        anywhere = base / "somewhere"
        anywhere.mkdir()
        out = cli(root, "status", "--json", cwd=anywhere)
        assert out.returncode == 0, out.stderr
        status = json.loads(out.stdout)
        assert Path(status["socket"]) == root.socket() and Path(status["config"]) == config
        run = cli(root, "run", "hello", cwd=anywhere)  # through the daemon, not "state in use" (exit 4)
        assert run.returncode == 0, run.stderr + run.stdout
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log.read_text()[-3000:]


PASS_SOCKET = """
import os, sys
fd = int(sys.argv[1])
if fd != 3:
    os.dup2(fd, 3)
    os.close(fd)
os.environ["LISTEN_PID"] = str(os.getpid())
os.execv(sys.argv[2], sys.argv[2:])
"""


def test_socket_activation_serves_the_socket_systemd_passes(base: Path) -> None:
    root = Root(base, user=False)
    root.install_config()
    env, argv = root.unit_env_and_argv(SYSTEMD / "edgeorch.service")
    sockunit = parse_unit(SYSTEMD / "edgeorch.socket")["Socket"]
    (listen,) = sockunit["ListenStream"]
    path = Path(expand(listen, root.specifiers))
    assert path == root.socket()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(16)
    # A client may connect before the daemon runs: its request waits in the backlog.
    early = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    early.connect(str(path))
    early.sendall(b'{"v":1,"id":"early","op":"ping"}\n')
    # What systemd does between fork and exec: the socket becomes descriptor 3 and LISTEN_PID the
    # pid that execs the daemon (this small wrapper, which execs it in place).
    wrapped = [sys.executable, "-c", PASS_SOCKET, str(listener.fileno()), *argv]
    proc, log = start(wrapped, {**env, "LISTEN_FDS": "1", "LISTEN_FDNAMES": "edgeorch.socket"}, base,
                      pass_fds=(listener.fileno(),))
    try:
        early.settimeout(30)
        reply = json.loads(early.makefile("rb").readline())
        assert reply["id"] == "early" and reply["result"]["pong"] is True
        out = cli(root, "status", "--json", cwd=base)
        assert out.returncode == 0, out.stderr
        assert "passed by systemd" in log.read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log.read_text()[-3000:]
        early.close()
    assert path.exists()  # the daemon never removes a socket it did not bind
    listener.close()


# -- static checks of the units ---------------------------------------------------------------

needs_analyze = pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")


def _copy_with_binary(tmp: Path, name: str) -> Path:
    """A copy whose ExecStart= binary exists (verify and security look it up; the shipped path is not installed)."""
    text = (SYSTEMD / name).read_text()
    text = text.replace("ExecStart=/usr/local/bin/edgeorch", f"ExecStart={EDGEORCH}")
    text = text.replace("ExecStart=%h/.local/bin/edgeorch", f"ExecStart={EDGEORCH}")
    dest = tmp / Path(name).name
    dest.write_text(text)
    return dest


@needs_analyze
def test_the_system_unit_scores_at_most_2_5_exposure(tmp_path: Path) -> None:
    unit = _copy_with_binary(tmp_path, "edgeorch.service")
    # --threshold is in tenths of the displayed score: 25 means "fail above 2.5".
    out = subprocess.run(["systemd-analyze", "security", "--offline=true", "--threshold=25", str(unit)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr


@needs_analyze
def test_the_units_verify_without_warnings(tmp_path: Path, short_tmp_path: Path) -> None:
    system = tmp_path / "system"
    system.mkdir()
    units = [_copy_with_binary(system, "edgeorch.service"), system / "edgeorch.socket"]
    shutil.copy(SYSTEMD / "edgeorch.socket", units[1])
    out = subprocess.run(["systemd-analyze", "verify", *map(str, units)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and not (out.stdout + out.stderr).strip(), out.stdout + out.stderr
    user = tmp_path / "user"
    user.mkdir()
    # systemd-analyze loads the user units installed on the machine too (gpg-agent's sockets under
    # $XDG_RUNTIME_DIR/gnupg/): a runtime dir under tmp_path (longer under pytest-xdist) makes their
    # socket paths too long, a warning that is not the units'.
    runtime = short_tmp_path / "run"
    runtime.mkdir(mode=0o700)
    unit = _copy_with_binary(user, "user/edgeorch.service")
    out = subprocess.run(["systemd-analyze", "--user", "verify", str(unit)], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "XDG_RUNTIME_DIR": str(runtime)})
    assert out.returncode == 0 and not (out.stdout + out.stderr).strip(), out.stdout + out.stderr


def test_the_units_keep_what_tasks_need() -> None:
    svc = parse_unit(SYSTEMD / "edgeorch.service")["Service"]
    assert "MemoryDenyWriteExecute" not in svc  # numba's JIT maps W+X memory
    assert "PrivateDevices" not in svc and any("nvidia" in v for v in svc["DeviceAllow"])  # CUDA
    assert "PrivateUsers" not in svc  # SO_PEERCRED uids must be the real ones
    assert svc["Delegate"] == ["yes"] and svc["KillMode"] == ["process"]
    assert int(svc["LimitNOFILE"][0]) >= 65536
    assert parse_unit(SYSTEMD / "edgeorch.service")["Unit"]["Documentation"][0].startswith("https://")
    net = parse_unit(SYSTEMD / "edgeorch.service.d" / "no-network.conf")["Service"]
    assert net["PrivateNetwork"] == ["yes"]
