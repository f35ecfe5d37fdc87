"""One real local Ray head for the Ray tests of a pytest run, shared by all xdist workers.

The first worker that needs it starts it (``ray start --head``: 2 CPUs, a fake
GPU declared with ``--num-gpus 1`` plus ``accelerator_type:FAKE`` and
``gpu_memory_mib``, on 127.0.0.1) under a file lock and writes its address to
``ray-head.json`` in the run's shared temp folder; the others read it. Every
worker that uses the head holds a shared ``flock`` on ``ray-head.users`` while
it runs Ray tests; when it lets go, the worker that can then take that lock
exclusively (no other user is left) stops the head, whoever started it:
nobody waits. A worker that comes later than that finds no head file and
starts a new head itself. When the head is taken and let go is the pytest
plugin's business (``rayhead_plugin.py``: right after a worker's last Ray
test, and the Ray tests run first, on one worker).

The head is trimmed to what the tests use (:data:`TRIM_FLAGS`, :data:`TRIM_ENV`): it runs beside the
rest of the suite on 2 cores, so every process and idle poll it does not need
is CPU taken from the other tests.

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

TRIM_FLAGS = (
    "--include-dashboard=false",  # the HTTP dashboard (its minimal API server still runs: Ray needs it)
    "--include-log-monitor=false",  # it ships worker logs to drivers: edgeorch streams attempt logs itself
    "--no-monitor",  # the autoscaler's monitor: a fixed one-node head never scales
    f"--object-store-memory={75 << 20}",  # Ray's minimum: edgeorch passes no objects (default: 30% of RAM in /dev/shm)
)
"""What the tests never use, left out (measured: 5 processes at start instead of 7, no idle worker, about
half the idle CPU; docs/scale-out.md, "Tests")."""
TRIM_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_enable_metrics_collection": "0",  # no metrics agent work in every Ray process
    # No idle Python worker started "in advance" when a driver connects (about 1 s of CPU each): every
    # actor of edgeorch gets a worker of its own anyway.
    "RAY_prestart_worker_first_driver": "0",
    "RAY_enable_worker_prestart": "0",
}


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
    env.update(TRIM_ENV)
    env.pop("RAY_ADDRESS", None)
    resources = json.dumps({"accelerator_type:" + GPU_MODEL: 1, "gpu_memory_mib": GPU_MEMORY_MIB})
    proc = subprocess.Popen(
        [_ray_cli(), "start", "--head", "--node-ip-address=127.0.0.1", "--port=0", f"--num-cpus={CPUS}",
         "--num-gpus=1", f"--resources={resources}", "--disable-usage-stats", *TRIM_FLAGS, f"--temp-dir={temp_dir}"],
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
    """SIGKILL to the head's process group (its actors' workers included), then its temp folder removed.

    Not SIGTERM first: gcs_server, raylet and the runtime-env agent were still up 5 s after one (measured,
    Ray 2.60), so a polite stop only made every run wait 3 s before the SIGKILL. A test head has nothing
    to save; its object store lives in unlinked /dev/shm files that go with the processes, and a task an
    actor ran is stopped by its supervisor when the actor's worker dies (runshim.py).
    """
    if head.pgid is None:
        return
    try:
        os.killpg(head.pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline and _group_alive(head.pgid):
        time.sleep(0.02)  # teardown of an external process group: nothing to wait on but its members
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
