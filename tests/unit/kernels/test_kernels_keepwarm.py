"""The kernel server's client-side rules (edgeorch/kernels/keepwarm.py): where, which key, what is served."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from edgeorch.kernels import keepwarm


def test_the_server_folder_is_made_private_and_refused_when_it_is_not(tmp_path: Path) -> None:
    env = {"XDG_RUNTIME_DIR": str(tmp_path)}
    folder = keepwarm.server_folder(env)
    assert folder == tmp_path / "edgeorch-kernels" and folder.stat().st_mode & 0o777 == 0o700
    os.chmod(folder, 0o755)  # others may enter: a socket there could be replaced or listed
    assert keepwarm.server_folder(env) is None
    os.chmod(folder, 0o700)
    folder.rmdir()
    folder.symlink_to(tmp_path)  # a link, even to a folder of ours
    assert keepwarm.server_folder(env) is None


def test_a_runtime_folder_of_another_user_is_not_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`sudo edgeorch profile` keeps the user's XDG_RUNTIME_DIR: root's folder made there would shut the user's
    own servers out (not private to them). Another uid's runtime folder is passed over for the temp folder."""
    monkeypatch.setattr(keepwarm.os, "getuid", lambda: os.geteuid() + 1)
    monkeypatch.setattr(keepwarm.tempfile, "gettempdir", lambda: str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    assert keepwarm._owned_folder(str(tmp_path)) is False
    keepwarm.server_folder({"XDG_RUNTIME_DIR": str(tmp_path)})
    assert not (tmp_path / "edgeorch-kernels").exists()


def test_the_key_changes_with_the_code_the_cache_and_the_environment(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = tmp_path / "edgeorch"
    (pkg / "kernels").mkdir(parents=True)
    (pkg / "kernels" / "stats.py").write_text("x = 1\n")
    monkeypatch.setattr(keepwarm, "PACKAGE", pkg)
    env = {"NUMBA_NUM_THREADS": "2", "HOME": "/h"}
    key = keepwarm.server_key("/cache", env)
    assert keepwarm.server_key("/cache", env) == key
    assert keepwarm.server_key("/cache", {**env, "HOME": "/other", "EDGEORCH_KEEP_WARM": "1s"}) == key
    assert keepwarm.server_key("/other-cache", env) != key
    assert keepwarm.server_key("/cache", {**env, "NUMBA_NUM_THREADS": "1"}) != key
    assert keepwarm.server_key("/cache", {**env, "EDGEORCH_OUTPUT_DIR": "/o"}) != key
    st = (pkg / "kernels" / "stats.py").stat()
    os.utime(pkg / "kernels" / "stats.py", ns=(st.st_atime_ns, st.st_mtime_ns + 1))  # an upgrade, an edit
    assert keepwarm.server_key("/cache", env) != key


def test_only_small_file_requests_of_the_three_commands_are_served(tmp_path: Path) -> None:
    small, big = tmp_path / "small.csv", tmp_path / "big.csv"
    small.write_text("a\n1\n")
    with open(big, "wb") as f:
        f.truncate(keepwarm.SERVED_MAX_BYTES + 1)
    assert keepwarm.served("profile", {"input": str(small)})
    assert keepwarm.served("drift", {"reference": str(small), "current": str(tmp_path / "missing.csv")})
    assert not keepwarm.served("profile", {"input": str(big)})
    assert not keepwarm.served("drift", {"reference": "baseline:nightly", "current": str(small)})
    assert not keepwarm.served("drift", {"reference": "model:houses@champion", "current": str(small)})
    assert not keepwarm.served("dp_profile", {"input": str(small)})
    assert keepwarm.served("profile", {"input": "bad\0path"})  # stat raises ValueError: the server says what is wrong
    assert keepwarm.served("profile", {"input": str(tmp_path)})  # a folder: the reader refuses it at once


def test_a_fifo_or_a_device_is_never_served_even_through_a_link(tmp_path: Path) -> None:
    """Such a read may never end (a FIFO nobody writes) or never stop growing (``/dev/zero``): the command
    does it itself, and a server shared by the user's later commands is never stuck in it."""
    fifo, zero = tmp_path / "report.csv", tmp_path / "zero.csv"
    os.mkfifo(fifo)
    zero.symlink_to("/dev/zero")
    assert not keepwarm.served("profile", {"input": str(fifo)})
    assert not keepwarm.served("profile", {"input": str(zero)})
    assert not keepwarm.served("drift", {"reference": "/dev/null", "current": str(zero)})


@pytest.mark.parametrize("env, configured, expected", [
    ({}, None, keepwarm.DEFAULT_KEEP_WARM_S),
    ({}, 30.0, 30.0),
    ({"EDGEORCH_KEEP_WARM": "0"}, 30.0, 0.0),
    ({"EDGEORCH_KEEP_WARM": "2m"}, None, 120.0),
    ({"EDGEORCH_KEEP_WARM": "soon"}, 30.0, 30.0),  # a bad override never fails a kernel command
    # In a task: never served (the task's leased cores, timeout and memory bound), nothing left behind.
    ({"EDGEORCH_RUN_ID": "7", "EDGEORCH_KEEP_WARM": "10m"}, 30.0, 0.0),
])
def test_keep_warm_comes_from_the_environment_then_the_config(env, configured, expected, capsys) -> None:
    assert keepwarm.keep_warm_seconds(configured, env) == expected
    said = capsys.readouterr().err
    if env.get("EDGEORCH_KEEP_WARM") == "soon":  # ignored, but said (it was silent)
        assert said == ("edgeorch: warning: EDGEORCH_KEEP_WARM=soon is not a duration (e.g. 10m; 0 for no kernel "
                        "server); ignored\n"), said
    else:
        assert said == ""


def test_starting_a_server_retires_all_but_the_most_recently_used_unless_one_is_busy(tmp_path: Path) -> None:
    now = time.time()
    for i, name in enumerate(["kernels-a.sock", "kernels-b.sock", "kernels-c.sock"]):
        (tmp_path / name).touch()
        os.utime(tmp_path / name, (now - 100 + i, now - 100 + i))
    (tmp_path / "kernels-a.log").touch()
    # b served 40 s ago: commands alternate between three caches; none is retired, none started.
    assert keepwarm.make_room(tmp_path, keep=1, now=now - 100 + 1 + 40) is False
    assert len(list(tmp_path.glob("*.sock"))) == 3
    assert keepwarm.make_room(tmp_path, keep=1, now=now) is True
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kernels-a.log", "kernels-c.sock"]
    # The lock and log of a server gone for a day go too; a recent one's stay.
    for name, age in (("kernels-old", 2 * keepwarm.OLD_S), ("kernels-new", 60)):
        for suffix in (".lock", ".log"):
            (tmp_path / (name + suffix)).touch()
            os.utime(tmp_path / (name + suffix), (now - age, now - age))
    assert keepwarm.make_room(tmp_path, keep=1, now=now) is True
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kernels-a.log", "kernels-c.sock", "kernels-new.lock",
                                                          "kernels-new.log"]


def test_a_killed_servers_own_socket_does_not_keep_its_restart_from_making_room(tmp_path: Path) -> None:
    """b was killed 30 s ago (kill -9 leaves its socket): its next start must not count that socket as a busy
    server that may not be retired, or b never comes back while c is used."""
    now = time.time()
    for name, used in (("kernels-a.sock", now - 1000), ("kernels-b.sock", now - 30), ("kernels-c.sock", now - 20)):
        (tmp_path / name).touch()
        os.utime(tmp_path / name, (used, used))
    assert keepwarm.make_room(tmp_path, "a-new", keep=1, now=now) is False  # another key: b and c count, b busy
    assert keepwarm.make_room(tmp_path, "b", keep=1, now=now) is True  # b's own: a retired, b's taken over
    assert sorted(p.name for p in tmp_path.glob("*.sock")) == ["kernels-b.sock", "kernels-c.sock"]


def test_a_held_lock_is_seen_and_a_free_one_is_not(tmp_path: Path) -> None:
    import fcntl

    lock = tmp_path / "kernels-k.lock"
    assert not keepwarm.held(lock)  # missing
    fd = os.open(lock, os.O_RDWR | os.O_CREAT)
    try:
        assert not keepwarm.held(lock)
        fcntl.flock(fd, fcntl.LOCK_EX)
        assert keepwarm.held(lock)
    finally:
        os.close(fd)
    assert not keepwarm.held(lock)


def test_a_warning_raised_in_the_server_is_raised_again_in_the_command() -> None:
    """A kernel's warning (ks_2samp falling back to asymp) shows on the command's stderr when it runs the kernels
    itself; a served command raises it again, once per place, under the command's own filters."""
    import json
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(2):
            warnings.warn("ks_2samp: Exact calculation unsuccessful. Switching to method=asymp.", RuntimeWarning)
        warnings.warn("custom", type("KernelWarning", (UserWarning,), {}))
    sent = json.loads(json.dumps(keepwarm.caught_warnings(caught)))
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("default")  # Python's own: each warning once per place
        keepwarm._warn(sent)
    assert [(type(w.message), str(w.message)) for w in shown] == [
        (RuntimeWarning, "ks_2samp: Exact calculation unsuccessful. Switching to method=asymp."),
        (UserWarning, "custom")]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the command's filters apply: -W error makes it an error there too
        with pytest.raises(RuntimeWarning):
            keepwarm._warn(sent)
    keepwarm._warn([{"category": "SystemExit", "message": "x"}, "junk", None])  # a bad item is skipped


def test_a_server_ends_when_the_command_of_its_request_goes_away(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A request stuck in C (a file swapped for a FIFO after the command's check) is nobody's once its command
    is killed: the server ends (and frees its lock) instead of holding up every later command."""
    import socket
    import threading

    from edgeorch.kernels import kinds, server

    data = tmp_path / "small.csv"
    data.write_text("a\n1\n")
    stuck, release, ended = threading.Event(), threading.Event(), threading.Event()

    def run_task(kind, opts):  # the kernels' read, blocked
        stuck.set()
        release.wait(60)
        return {}

    monkeypatch.setattr(kinds, "run_task", run_task)
    here = os.getcwd()
    ours, theirs = socket.socketpair(socket.AF_UNIX)
    try:
        result: list[str] = []
        t = threading.Thread(target=lambda: result.append(server._serve_one(ours, "k", on_hangup=ended.set)))
        t.start()
        keepwarm.send_line(theirs, {"key": "k", "kind": "profile", "opts": {"input": str(data)}, "cwd": str(tmp_path),
                                    "umask": 0o022})
        assert keepwarm.read_line(theirs.makefile("rb")) == {"started": True}
        assert stuck.wait(30)
        assert not ended.wait(0.3)  # working, its command waiting: nothing ends
        theirs.close()  # the command is killed
        assert ended.wait(30), "the server did not see its command go away"
        release.set()
        t.join(30)
        assert result and result[0].startswith("served profile")
    finally:
        release.set()
        ours.close()
        os.chdir(here)


def test_a_kernel_command_refuses_a_fifo_or_a_device_as_its_input(tmp_path: Path) -> None:
    """Done by the command itself too: such a read may never end (6.8 GB in 15 s on a /dev/zero link)."""
    from edgeorch.errors import DataError
    from edgeorch.kernels.io import checked_format

    fifo, zero = tmp_path / "report.csv", tmp_path / "zero.csv"
    os.mkfifo(fifo)
    zero.symlink_to("/dev/zero")
    with pytest.raises(DataError, match="is a FIFO, not a data file"):
        checked_format(fifo)
    with pytest.raises(DataError, match="is a character device, not a data file"):
        checked_format(zero)
