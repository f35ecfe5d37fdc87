"""One real local Ray head for every Ray test of a pytest run, shared by all xdist workers.

The first worker that needs it starts it (``ray start --head``: 2 CPUs, a fake
GPU declared with ``--num-gpus 1`` plus ``accelerator_type:FAKE`` and
``gpu_memory_mib``, on 127.0.0.1) under a file lock and writes its address to
``ray-head.json`` in the run's shared temp folder; the others read it. Every
worker that uses the head holds a shared ``flock`` on ``ray-head.users`` for
the rest of its session; at its session's end, the worker that can then take
that lock exclusively (no other user is left) stops the head, whoever started
it: nobody waits. A worker that comes later than that finds no head file and
starts a new head itself.

``$EDGEORCH_TEST_RAY_ADDRESS`` names a head to use instead (a developer's own
``ray start --head``): nothing is started or stopped then.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ADDRESS_ENV = "EDGEORCH_TEST_RAY_ADDRESS"
CPUS = 2
GPU_MEMORY_MIB = 8192
GPU_MODEL = "FAKE"


@dataclass
class RayHead:
    address: str
    pgid: int | None = None
    """The head's process group (None: a head this run did not start, never stopped)."""
    temp_dir: str | None = None
    users_fd: int | None = None
    shared: Path | None = None


def _ray_cli() -> str:
    return str(Path(sys.executable).with_name("ray"))


def _start(shared: Path) -> RayHead:
    """``ray start --head`` in a session of its own; returns its address (read from what it prints)."""
    temp_dir = tempfile.mkdtemp(prefix="eo-ray-", dir="/tmp")  # short: Ray's sockets live below it
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    env.pop("RAY_ADDRESS", None)
    resources = json.dumps({"accelerator_type:" + GPU_MODEL: 1, "gpu_memory_mib": GPU_MEMORY_MIB})
    proc = subprocess.Popen(
        [_ray_cli(), "start", "--head", "--node-ip-address=127.0.0.1", "--port=0", f"--num-cpus={CPUS}",
         "--num-gpus=1", f"--resources={resources}", "--include-dashboard=false", "--disable-usage-stats",
         f"--temp-dir={temp_dir}"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True, cwd="/tmp")
    # The daemons it started stay in its process group (its pid) after it returns.
    head = RayHead("", pgid=proc.pid, temp_dir=temp_dir, shared=shared)
    try:
        out, _ = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        out = "(no answer within 120 s)"
    found = re.search(r"ray start --address='([^']+)'", out)
    if proc.returncode != 0 or not found:
        _stop(head)
        raise RuntimeError(f"ray start --head failed ({proc.returncode}):\n{out}")
    head.address = found.group(1)
    return head


def _stop(head: RayHead) -> None:
    """SIGTERM to the head's process group, SIGKILL to what is left shortly after; its temp folder removed."""
    if head.pgid is None:
        return
    for sig, wait in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 0.0)):
        try:
            os.killpg(head.pgid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and _group_alive(head.pgid):
            time.sleep(0.1)  # teardown of an external process group: nothing to wait on but its members
    if head.temp_dir:
        shutil.rmtree(head.temp_dir, ignore_errors=True)


def _group_alive(pgid: int) -> bool:
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = Path(f"/proc/{entry.name}/stat").read_bytes()
            except OSError:
                continue
            fields = stat[stat.rfind(b")") + 2:].split()
            if len(fields) > 2 and int(fields[2]) == pgid and fields[0] != b"Z":
                return True
    return False


def acquire(shared: Path) -> RayHead:
    """The run's head: started here if none runs (then this process stops it in :func:`release`)."""
    given = os.environ.get(ADDRESS_ENV)
    if given:
        return RayHead(given)
    shared.mkdir(parents=True, exist_ok=True)
    info = shared / "ray-head.json"
    with open(shared / "ray-head.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        users_fd = os.open(shared / "ray-head.users", os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(users_fd, fcntl.LOCK_SH)
        if info.exists():
            head = RayHead(json.loads(info.read_text())["address"], users_fd=users_fd, shared=shared)
        else:
            head = _start(shared)
            head.users_fd = users_fd
            info.write_text(json.dumps({"address": head.address, "pgid": head.pgid, "temp_dir": head.temp_dir}))
    return head


def release(head: RayHead) -> None:
    """Stop using the head; the last process to stop using it stops it (whoever started it), never waiting."""
    if head.users_fd is None or head.shared is None:
        return
    with open(head.shared / "ray-head.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # no new user while we look
        fcntl.flock(head.users_fd, fcntl.LOCK_UN)
        try:
            fcntl.flock(head.users_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pass  # another process still uses it: the last one stops it
        else:
            info = head.shared / "ray-head.json"
            if info.exists():
                data = json.loads(info.read_text())
                info.unlink()
                _stop(RayHead(data["address"], pgid=data.get("pgid"), temp_dir=data.get("temp_dir")))
    os.close(head.users_fd)
