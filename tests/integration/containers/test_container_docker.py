"""Docker through the same interface: a private dockerd (its own socket, data and exec folders; no iptables, no
bridge, vfs storage) started once for this module, an image imported offline, container tasks run by an engine.

Skipped, with the reason, without root, dockerd, the docker CLI or a static busybox, or when the daemon does
not answer within a minute (its log's end is in the message). ``.ci/run`` installs docker.io; the daemon
starts in a few seconds (vfs storage: the test image is 2 MB).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from container_helpers import TRAPS_TERM, _rootfs_tar, cancel_once_started, is_static, pipeline_text, run_pipeline

from edgeorch.model import RunState
from edgeorch.store import Store


@dataclass
class Docker:
    command: list[str]
    image: str

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.command, *args], capture_output=True, text=True, check=check, timeout=120)

    def config(self) -> str:
        return "[containers]\ndocker_command = [" + ", ".join(f'"{a}"' for a in self.command) + "]\n"


@pytest.fixture(scope="module")
def docker() -> Iterator[Docker]:
    if os.geteuid() != 0:
        pytest.skip("a private dockerd needs root")
    for tool in ("dockerd", "docker"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (apt-get install docker.io)")
    busybox = shutil.which("busybox")
    if busybox is None or not is_static(os.path.realpath(busybox)):
        pytest.skip("a static busybox is needed for the test image (apt-get install busybox-static)")
    root = Path(tempfile.mkdtemp(prefix="eo-docker-", dir="/tmp"))  # short: the socket path's limit
    sock = root / "d.sock"
    log = (root / "dockerd.log").open("w")
    proc = subprocess.Popen(["dockerd", "--iptables=false", "--ip6tables=false", "--bridge=none",
                             "--storage-driver=vfs", "--data-root", str(root / "data"), "--exec-root",
                             str(root / "exec"), "--pidfile", str(root / "pid"), "-H", f"unix://{sock}"],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        d = Docker(["docker", "--host", f"unix://{sock}"], "localhost/edgeorch-docker-test:1")
        deadline = time.monotonic() + 60
        while d.run("version", "--format", "{{.Server.Version}}", check=False).returncode != 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.skip(f"dockerd did not answer: {(root / 'dockerd.log').read_text()[-300:]}")
            time.sleep(0.2)  # polling the daemon's answer, the condition itself
        tar = root / "rootfs.tar"
        _rootfs_tar(tar, "docker")
        d.run("import", str(tar), d.image)
        done = d.run("run", "--rm", "--network", "none", d.image, "true", check=False)
        if done.returncode != 0:
            pytest.skip(f"dockerd cannot start a container here: {done.stderr.strip()[-300:]}")
        yield d
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
        # dockerd makes its data root a mount of its own; one it could not undo (killed) would keep the folder and
        # a mount of the disk behind (`rmtree` cannot remove a mount point): undone here, lazily, before the removal.
        subprocess.run(["umount", "-R", "-l", str(root / "data")], capture_output=True, check=False)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def docker_ws(workspace, docker):
    workspace.write_config(extra=docker.config(), kill_grace="1s")
    return workspace


def test_a_docker_container_task_runs_pinned_and_its_output_is_read_by_the_next_task(docker_ws, docker):
    ws = docker_ws
    ws.pipeline("d", pipeline_text(f"""
        [tasks.make]
        command = ["sh", "-c", "grep Cpus_allowed_list /proc/self/status > $EDGEORCH_CHECKPOINT_DIR/cpus; echo made > /edgeorch/output/out.txt"]
        outputs = ["out.txt"]
        cpus = 1
        container = {{ image = "{docker.image}", runtime = "docker", pull = "never", args = ["--network", "none"] }}
        [tasks.read]
        command = ["sh", "-c", "cat \\"$EDGEORCH_UPSTREAM_MAKE\\""]
        needs = ["make"]
    """))
    run_id, state = run_pipeline(ws, "d")
    assert state == RunState.SUCCEEDED
    run_dir = ws.state / "runs" / str(run_id)
    assert (run_dir / "attempts" / "read.1" / "output.log").read_text() == "made\n"
    store = Store(ws.state / "edgeorch.db")
    try:
        attempt = next(a for a in store.attempts.of_run(run_id) if a["task"] == "make")
        lease = store.attempts.lease_of(attempt["id"])
        consumed = store.lineage.consumed_by(run_id, "make")
    finally:
        store.close()
    assert (run_dir / "checkpoints" / "make" / "cpus").read_text().split()[-1] == str(lease["cpus"][0])
    digest = docker.run("image", "inspect", "--format", "{{.Id}}", docker.image).stdout.strip()
    assert [(c["kind"], c["sha256"]) for c in consumed] == [("image", digest.removeprefix("sha256:"))]
    assert docker.run("ps", "-a", "--filter", f"label=edgeorch.state_dir={ws.state}", "-q").stdout.strip() == ""


def test_a_docker_container_over_its_memory_bound_is_reported_as_probably_out_of_memory(docker_ws, docker):
    ws = docker_ws
    ws.pipeline("hog", pipeline_text(f"""
        [tasks.hog]
        command = ["sh", "-c", "head -c 200m /dev/zero | tail"]
        memory = "32M"
        container = {{ image = "{docker.image}", runtime = "docker", pull = "never", args = ["--network", "none"] }}
    """))
    run_id, state = run_pipeline(ws, "hog")
    if state == RunState.SUCCEEDED:
        pytest.skip("dockerd does not enforce --memory here")
    store = Store(ws.state / "edgeorch.db")
    try:
        attempt = store.attempts.of_run(run_id)[0]
    finally:
        store.close()
    # Docker's --rm client leaves no OOM record: the SIGKILL under a bound, said with its doubt.
    assert attempt["reason"] == ("killed by signal 9 (SIGKILL), probably out of memory (memory bound 32M; "
                                 "no OOM record to confirm it)")


def test_cancel_stops_a_docker_container_through_its_client(docker_ws, docker):
    ws = docker_ws
    # A grace far longer than the forwarded SIGTERM needs (the end comes as soon as the trap ran): on a loaded
    # machine the forward (the client's call to dockerd) can take longer than the fixture's 1 s.
    ws.write_config(extra=docker.config(), kill_grace="30s")
    # The stop's SIGTERM goes to the docker client alone (SpawnRequest.forwards_stop), which forwards it
    # (--sig-proxy=true) to the container's PID 1, here a shell with a handler; its last line reaches the log.
    ws.pipeline("long", pipeline_text(f"""
        [tasks.long]
        command = ["sh", "-c", "{TRAPS_TERM}"]
        container = {{ image = "{docker.image}", runtime = "docker", pull = "never", args = ["--network", "none"] }}
    """))

    run_id, state = run_pipeline(ws, "long", during=cancel_once_started(ws, "long"))
    assert state == RunState.CANCELLED
    store = Store(ws.state / "edgeorch.db")
    try:
        attempt = store.attempts.of_run(run_id)[0]
    finally:
        store.close()
    assert (attempt["state"], attempt["exit_code"]) == ("exited", 3)  # the container's own end, not the SIGKILL
    log = (ws.state / "runs" / str(run_id) / "attempts" / "long.1" / "output.log").read_text()
    assert log.startswith("started\n") and "got TERM" in log and "forwarding signal" not in log, log
    assert docker.run("ps", "-a", "--filter", f"label=edgeorch.state_dir={ws.state}", "-q").stdout.strip() == ""
