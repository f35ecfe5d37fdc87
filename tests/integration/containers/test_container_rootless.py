"""Rootless podman for real: an unprivileged user (made here, with subordinate ids) runs a container task
through edgeorch's engine (``edgeorch run --here`` as that user), with the global flags this machine needs
expressed in ``[containers] podman_command`` and podman's settings in its ``containers.conf``.

Skipped, with the reason, without root (to make the user and switch to it), setpriv, useradd, newuidmap
(``apt-get install uidmap``), podman or a static busybox, or when no flag set lets the user start a
container (each candidate's error is in the skip message).
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import site
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from container_helpers import TRAPS_TERM, _rootfs_tar, is_static

USER = "edgeorch-rootless"
SUBIDS = "300000-365535"  # used only when useradd gave the user no subordinate ids
REPO = Path(__file__).resolve().parents[3]


@dataclass
class Rootless:
    """The user, a folder of its own, its environment and the podman command line that works for it here."""

    uid: int
    gid: int
    root: Path
    env: dict[str, str]
    command: list[str]
    image: str

    def run(self, argv: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """``argv`` as the user: its uid, gid and groups, only ``env`` (no root's environment leaks in)."""
        return subprocess.run(["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--init-groups",
                               "env", "-i", *(f"{k}={v}" for k, v in self.env.items()), *argv],
                              check=False, capture_output=True, text=True, timeout=timeout, cwd=self.root)


def _ensure_user() -> pwd.struct_passwd:
    try:
        entry = pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "--create-home", "--shell", "/usr/sbin/nologin", USER], check=True,
                       capture_output=True)
        entry = pwd.getpwnam(USER)
    for kind, flag in (("subuid", "--add-subuids"), ("subgid", "--add-subgids")):
        lines = Path(f"/etc/{kind}").read_text().splitlines() if Path(f"/etc/{kind}").exists() else []
        if not any(line.split(":")[0] in (USER, str(entry.pw_uid)) for line in lines):
            subprocess.run(["usermod", flag, SUBIDS, USER], check=True, capture_output=True)
    return entry


@pytest.fixture(scope="session")
def rootless() -> Iterator[Rootless]:
    if os.geteuid() != 0:
        pytest.skip("making a user and switching to it needs root")
    for tool, package in (("setpriv", "util-linux"), ("useradd", "passwd"), ("newuidmap", "uidmap"),
                          ("podman", "podman")):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (apt-get install {package})")
    busybox = shutil.which("busybox")
    if busybox is None or not is_static(os.path.realpath(busybox)):
        pytest.skip("a static busybox is needed for the test image (apt-get install busybox-static)")
    entry = _ensure_user()
    root = Path(tempfile.mkdtemp(prefix="eo-rootless-", dir="/tmp"))
    try:
        os.chmod(root, 0o755)
        runtime_dir = root / "xdg"  # what a login session's /run/user/UID would be
        runtime_dir.mkdir(mode=0o700)
        conf = root / "containers.conf"
        conf.write_text("[containers]\ndefault_ulimits = []\n")  # runc in a sandbox may not set rlimits
        tar = root / "rootfs.tar"
        _rootfs_tar(tar, "rootless")
        for path in (root, runtime_dir, conf, tar):
            os.chown(path, entry.pw_uid, entry.pw_gid)
        env = {"HOME": entry.pw_dir, "USER": USER, "LOGNAME": USER, "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin",
               "XDG_RUNTIME_DIR": str(runtime_dir), "CONTAINERS_CONF": str(conf)}
        # Storage of the test's own (no clash with whatever driver the user's default storage was made with).
        storage = ["--root", str(root / "storage"), "--runroot", str(root / "run")]
        tried, found = [], None
        for flags in (["--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--runtime", "runc"],
                      ["--runtime", "runc"], []):
            probe = Rootless(entry.pw_uid, entry.pw_gid, root, env, ["podman", *storage, *flags],
                             "localhost/edgeorch-rootless:1")
            done = probe.run([*probe.command, "import", "--quiet", str(tar), probe.image])
            if done.returncode == 0:
                done = probe.run([*probe.command, "run", "--rm", "--network", "none", probe.image, "true"])
            if done.returncode == 0:
                found = probe
                break
            tried.append(f"{' '.join(flags) or 'defaults'}: {done.stderr.strip()[-300:]}")
        if found is None:
            pytest.skip("rootless podman cannot start a container here: " + "; ".join(tried))
        yield found
    finally:
        # Rootless podman keeps a pause process holding the user's namespace (its pid in the runtime folder).
        for pidfile in root.glob("xdg/**/pause.pid"):
            try:
                os.kill(int(pidfile.read_text().strip()), signal.SIGKILL)
            except (OSError, ValueError):
                pass
        shutil.rmtree(root, ignore_errors=True)  # root may remove the subordinate ids' files of the storage


def _python_for(user: Rootless) -> str:
    """An interpreter the user can run with this environment's packages (set in ``user.env``), or a skip.

    This one, else the system's interpreter of the same version with this
    environment's site-packages (a pyenv interpreter under /root is closed to
    other users; .ci/run gives them a copy they can run).
    """
    user.env["PYTHONPATH"] = os.pathsep.join([str(REPO), *site.getsitepackages()])
    tried = []
    for python in (sys.executable, f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}"):
        done = user.run([python, "-c", "import edgeorch.cli, numpy"], timeout=60) if os.path.exists(python) else None
        if done is not None and done.returncode == 0:
            return python
        tried.append(f"{python}: {done.stderr.strip()[-200:] if done else 'absent'}")
    pytest.skip(f"no Python with edgeorch's dependencies that user {USER} can run: " + "; ".join(tried))


def test_an_unprivileged_user_runs_a_container_task_with_rootless_podman(rootless):
    ws = rootless.root / "ws"
    (ws / "pipelines").mkdir(parents=True)
    argv = ", ".join(f'"{a}"' for a in rootless.command)
    (ws / "config.toml").write_text(textwrap.dedent(f"""\
        [state]
        dir = "{ws / 'var'}"
        [pipelines]
        dir = "{ws / 'pipelines'}"
        [engine]
        kill_grace = "1s"
        [containers]
        podman_command = [{argv}]
        """))
    (ws / "pipelines" / "c.toml").write_text(textwrap.dedent(f"""\
        [tasks.make]
        command = ["sh", "-c", "id -u > $EDGEORCH_OUTPUT_DIR/uid; grep Cpus_allowed_list /proc/self/status > $EDGEORCH_OUTPUT_DIR/cpus"]
        outputs = ["uid", "cpus"]
        cpus = 1
        container = {{ image = "{rootless.image}", pull = "never", args = ["--network", "none"] }}
        [tasks.read]
        command = ["sh", "-c", "cat $(echo $EDGEORCH_UPSTREAM_MAKE | tr : ' ')"]
        needs = ["make"]
        """))
    # A timeout's stop reaches the processes of a rootless container (another user namespace) too.
    (ws / "pipelines" / "slow.toml").write_text(textwrap.dedent(f"""\
        [tasks.slow]
        command = ["sh", "-c", "{TRAPS_TERM}"]
        timeout = "2s"
        container = {{ image = "{rootless.image}", pull = "never", args = ["--network", "none"] }}
        """))
    for dirpath, _dirs, files in os.walk(ws):
        for name in [dirpath, *(os.path.join(dirpath, f) for f in files)]:
            os.chown(name, rootless.uid, rootless.gid)
    env = {**rootless.env, "EDGEORCH_CONFIG": str(ws / "config.toml")}
    user = Rootless(rootless.uid, rootless.gid, ws, env, rootless.command, rootless.image)
    python = _python_for(user)
    done = user.run([python, "-m", "edgeorch", "run", "c", "--here", "--json"])
    assert done.returncode == 0, done.stdout + done.stderr
    out = ws / "var" / "runs" / "1" / "outputs" / "make"
    assert (out / "uid").read_text() == "0\n"  # root inside the user's namespace ...
    assert (out / "uid").stat().st_uid == rootless.uid  # ... is the user outside
    # Pinned to its leased core even where rootless podman ignores --cpuset-cpus (cgroup v1): the client and
    # the container inherit the shim's affinity.
    inside = (out / "cpus").read_text().split()[-1]
    assert "," not in inside and "-" not in inside, inside
    assert "0\n" in (ws / "var" / "runs" / "1" / "attempts" / "read.1" / "output.log").read_text()
    done = user.run([python, "-m", "edgeorch", "run", "slow", "--here", "--json"])
    assert done.returncode == 1, done.stdout + done.stderr
    (slow,) = json.loads(done.stdout)["tasks"]
    log = (ws / "var" / "runs" / "2" / "attempts" / "slow.1" / "output.log").read_text()
    assert "got TERM" in log, (log, slow)
