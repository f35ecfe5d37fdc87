"""Faults during a data-version add: a real process killed with SIGKILL mid-add, and a disk that fills up.

Either way no version is half recorded (the rows are one transaction, after
every object is durable), the versions recorded before stay restorable, and
the next prune reclaims what the failed add left (objects no row names, and
the temporary file of the write it was in).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

# The real CLI (`edgeorch datasets add`), stopped inside the object store's write of its 4th object:
# the temporary file is written and fsynced, not yet renamed. It says so on stdout and waits to be killed.
MID_ADD = textwrap.dedent("""
    import os, sys
    from edgeorch.datasets import objects

    real_rename, seen = os.rename, []

    def rename(src, dst, *a, **kw):
        if str(src).startswith(str(objects.ObjectStore(sys.argv[1]).tmp)):
            seen.append(dst)
            if len(seen) == 4:
                print("MID-ADD", flush=True)
                sys.stdin.readline()  # killed here
        return real_rename(src, dst, *a, **kw)

    os.rename = rename
    from edgeorch.cli.main import main
    sys.exit(main(sys.argv[2:]))
""")


def cli(ws, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = ws.invoke("datasets", *args)  # in this process: output and exit codes are what is tested
    assert "Traceback" not in proc.stderr, proc.stderr
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def random_bytes(n: int, seed: int = 1) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


def objects_on_disk(state: Path) -> set[str]:
    root = state / "datasets" / "objects"
    return {p.name for p in root.rglob("*") if p.is_file()} if root.exists() else set()


def test_sigkill_mid_add_leaves_no_version_and_the_next_prune_reclaims_its_objects(workspace, tmp_path):
    small = tmp_path / "small.bin"
    small.write_bytes(random_bytes(600_000, seed=1))
    cli(workspace, "add", "keep", str(small))
    committed = objects_on_disk(workspace.state)
    big = tmp_path / "big.bin"
    big.write_bytes(random_bytes(40 << 20, seed=2))  # about 40 chunks: the kill lands at the 4th

    env = workspace.cli_env()
    proc = subprocess.Popen([sys.executable, "-c", MID_ADD, str(workspace.state / "datasets"), "datasets", "add",
                             "big", str(big)], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "MID-ADD"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    left = objects_on_disk(workspace.state) - committed
    temp = list((workspace.state / "datasets" / "tmp").iterdir())
    assert len(left) == 3 and len(temp) == 1  # three objects renamed into place, one still a temporary file
    listing = json.loads(cli(workspace, "list", "--json").stdout)
    assert [d["name"] for d in listing["datasets"]] == ["keep"]  # no half version of "big", not even its name

    pruned = json.loads(cli(workspace, "prune", "--keep", "1", "--json").stdout)
    assert pruned["removed"] == [] and pruned["objects_removed"] == 3 and pruned["temp_files_removed"] == 1
    assert objects_on_disk(workspace.state) == committed
    assert list((workspace.state / "datasets" / "tmp").iterdir()) == []
    cli(workspace, "restore", "keep", str(tmp_path / "out"))
    assert (tmp_path / "out" / "small.bin").read_bytes() == small.read_bytes()
    again = json.loads(cli(workspace, "add", "big", str(big), "--json").stdout)  # the add can simply be redone
    assert again["ref"] == "big@1" and again["new_bytes"] == 40 << 20


def test_a_full_disk_mid_add_is_a_clear_error_and_records_nothing(workspace, small_disk, tmp_path):
    workspace.state = small_disk / "var"
    workspace.write_config()
    small = tmp_path / "small.bin"
    small.write_bytes(random_bytes(200_000, seed=1))
    cli(workspace, "add", "keep", str(small))
    big = tmp_path / "big.bin"
    big.write_bytes(random_bytes(8 << 20, seed=2))  # more than the 3 MB disk holds
    proc = cli(workspace, "add", "big", str(big), check=False)
    assert proc.returncode == 4, proc.stderr
    assert "cannot store a chunk of" in proc.stderr and "No space left on device" in proc.stderr
    assert [d["name"] for d in json.loads(cli(workspace, "list", "--json").stdout)["datasets"]] == ["keep"]
    pruned = json.loads(cli(workspace, "prune", "--keep", "1", "--json").stdout)
    assert pruned["objects_removed"] >= 1
    cli(workspace, "restore", "keep", str(tmp_path / "out"))
    assert (tmp_path / "out" / "small.bin").read_bytes() == small.read_bytes()


def test_a_restore_onto_a_full_disk_names_dest_and_the_room_it_needs_and_leaves_nothing(workspace, small_disk,
                                                                                          tmp_path):
    """Found while living with it: `datasets restore` into a folder on a full disk said "internal error (a bug,
    please report it): OSError: [Errno 28] No space left on device", exit 70."""
    big = tmp_path / "big.bin"
    big.write_bytes(random_bytes(5 << 20, seed=3))  # more than the 3 MB disk holds
    cli(workspace, "add", "big", str(big))
    dest = small_disk / "out"
    proc = cli(workspace, "restore", "big", str(dest), check=False)
    assert proc.returncode == 1, proc.stderr
    assert "internal error" not in proc.stderr and ".restore-" not in proc.stderr
    assert f"{dest}: cannot restore big@1 (writing its file big.bin): No space left on device" in proc.stderr
    assert f"the version needs {5 << 20} bytes" in proc.stderr and "nothing of it was left there" in proc.stderr
    assert list(small_disk.iterdir()) == []  # no DEST, no temporary folder
    err = json.loads(cli(workspace, "restore", "big", str(dest), "--json", check=False).stderr)
    assert err["error"]["code"] == "restore_failed"


RESTORE_KILLED = textwrap.dedent("""
    import os, sys
    real_write, seen = os.write, []

    def write(fd, data):
        seen.append(fd)
        if len(seen) == 2:  # inside the temporary folder, its first file partly written
            print("MID-RESTORE", flush=True)
            sys.stdin.readline()  # killed here
        return real_write(fd, data)

    os.write = write
    from edgeorch.cli.main import main
    sys.exit(main(sys.argv[1:]))
""")


def test_a_killed_restore_leaves_its_folder_and_the_next_restore_removes_it_but_not_one_under_way(workspace,
                                                                                                   tmp_path):
    """Noticed at an earlier stop: a restore killed with SIGKILL left `.DEST.restore-*` beside DEST for good. The
    next restore to that DEST removes it; the locked folder of a restore still running is left alone."""
    import fcntl
    import time

    src = tmp_path / "src"
    src.mkdir()
    (src / "a.bin").write_bytes(random_bytes(3 << 20, seed=4))
    (src / "b.bin").write_bytes(random_bytes(1 << 20, seed=5))
    cli(workspace, "add", "d", str(src))
    dest = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-c", RESTORE_KILLED, "datasets", "restore", "d", str(dest), "-q"],
                            env=workspace.cli_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "MID-RESTORE"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    (left,) = [p for p in tmp_path.iterdir() if p.name.startswith(".out.restore-")]
    busy = tmp_path / ".out.restore-0123456789ab"  # as a restore under way holds its own
    busy.mkdir()
    held = os.open(busy, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(held, fcntl.LOCK_EX)
    try:
        old = time.time() - 60  # both older than a folder a restore has just made and not locked yet
        os.utime(left, (old, old))
        os.utime(busy, (old, old))
        proc = cli(workspace, "restore", "d", str(dest))
        young = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".out."))
        assert young == [busy.name], young  # the killed one's left over: gone only if older than FRESH_S
        assert f"note: left {busy} (what a killed restore left) in place: a restore under way holds it" in proc.stderr
    finally:
        os.close(held)
    assert (dest / "a.bin").read_bytes() == (src / "a.bin").read_bytes()


def test_a_mount_point_as_dest_is_refused_before_anything_is_written(workspace, small_disk, tmp_path):
    """Found by an operator: restoring into an empty mount point wrote the whole version beside it, on the parent's
    disk, then failed "Device or resource busy" at the rename."""
    src = tmp_path / "one.bin"
    src.write_bytes(random_bytes(1000, seed=6))
    cli(workspace, "add", "d", str(src))
    proc = cli(workspace, "restore", "d", str(small_disk), "--force", check=False)
    assert proc.returncode == 2, proc.stderr
    assert f"{small_disk}: is a mount point" in proc.stderr
    assert f"hint: restore into a folder inside it: {small_disk / 'NAME'}" in proc.stderr
    assert [p.name for p in small_disk.parent.iterdir() if p.name.startswith(".small.")] == []  # nothing beside it
    cli(workspace, "restore", "d", str(small_disk / "inside"))  # a folder in it is fine
    assert (small_disk / "inside" / "one.bin").read_bytes() == src.read_bytes()
