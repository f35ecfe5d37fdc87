"""The state lock within one process (cross-process cases are integration tests)."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeorch.control.statelock import acquire_state_lock
from edgeorch.errors import StateError


def test_lock_creates_the_state_dir_and_records_our_pid(tmp_path: Path) -> None:
    import os

    state = tmp_path / "state"
    with acquire_state_lock(state) as lock:
        assert lock.held
        assert (state / "edgeorch.lock").read_text() == f"{os.getpid()}\n"
    assert not lock.held


def test_second_acquire_in_the_same_process_is_refused(tmp_path: Path) -> None:
    # POSIX locks do not conflict within one process; the module must.
    with acquire_state_lock(tmp_path), pytest.raises(StateError, match="already locked by this process"):
        acquire_state_lock(tmp_path)


def test_release_is_idempotent_and_allows_relocking(tmp_path: Path) -> None:
    lock = acquire_state_lock(tmp_path)
    lock.release()
    lock.release()
    with acquire_state_lock(tmp_path):
        pass


def test_unwritable_location_is_a_state_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StateError, match="the state folder's path is not a folder"):
        acquire_state_lock(blocker / "state")


def test_a_lock_given_the_socket_is_refused_while_something_listens_there(tmp_path: Path) -> None:
    """The daemon's and the offline writers' second guard: a daemon whose lock file was removed still answers
    on its socket. A socket file nobody listens on (a crashed daemon's) does not refuse the lock."""
    import socket

    path = tmp_path / "edgeorch.sock"
    with acquire_state_lock(tmp_path / "state", socket=path):  # nothing there
        pass
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    try:
        with acquire_state_lock(tmp_path / "state", socket=path):  # bound, not listening: stale
            pass
        server.listen(1)
        with pytest.raises(StateError, match="another edgeorch daemon answers on .*lock file was removed"):
            acquire_state_lock(tmp_path / "state", socket=path)
    finally:
        server.close()
    with acquire_state_lock(tmp_path / "state") as lock:  # the refused one let the lock go
        assert lock.held


def test_a_state_dir_under_a_file_is_a_state_error_naming_it(tmp_path: Path) -> None:
    from edgeorch.store import Store

    (tmp_path / "file").write_text("x")
    for state in (tmp_path / "file", tmp_path / "file" / "state"):
        with pytest.raises(StateError) as lock_err:
            acquire_state_lock(state)
        with pytest.raises(StateError) as store_err:
            Store(state / "edgeorch.db")
        for err in (lock_err.value, store_err.value):
            assert err.file == str(state) and err.message == "the state folder's path is not a folder"


def test_a_holder_that_let_go_after_the_try_is_busy_for_a_moment_not_a_daemon(tmp_path: Path) -> None:
    """A `run` beside a `pipelines pause` that was just ending failed with exit 4 ("in use by another edgeorch
    daemon"): the holder exited between the try and the look at its command line, which a gone process (or a
    zombie) does not have. The holder is asked about as the failed try left it: the file names a pid whose
    process is gone and nothing holds the lock now."""
    import os
    import subprocess
    import sys

    from edgeorch.control.statelock import _holder

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    lock_file = tmp_path / "edgeorch.lock"
    lock_file.write_text(f"{gone.pid}\n")
    fd = os.open(lock_file, os.O_RDWR)
    try:
        holder, hint, busy = _holder(fd)
        assert busy, holder
        assert "just let it go" in holder and "try again" in hint
        lock_file.write_text("")  # one that has just taken it and not written its pid yet: a moment too
        holder, hint, busy = _holder(fd)
        assert busy and "not recorded yet" in holder and "try again" in hint
    finally:
        os.close(fd)


def test_a_daemon_that_holds_the_lock_is_still_named_a_daemon(tmp_path: Path) -> None:
    """The change above keeps a live holder's verdict: a daemon (its command line says so) is not busy."""
    import subprocess
    import sys

    from edgeorch.errors import StateBusyError

    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys; from edgeorch.control.statelock import acquire_state_lock; "
        f"lock = acquire_state_lock({str(tmp_path / 'var')!r}); print('held', flush=True); sys.stdin.read()"),
        "daemon"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"  # it holds the lock from here until its stdin closes
        with pytest.raises(StateError) as err:
            acquire_state_lock(tmp_path / "var")
        assert not isinstance(err.value, StateBusyError)
        assert f"another edgeorch daemon (pid {holder.pid})" in err.value.message
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)


def test_a_holder_that_is_ending_is_busy_for_a_moment_not_a_daemon(tmp_path: Path) -> None:
    """The same race a step later (CI, stop 43): an ending process gives up its memory, so its command line reads
    empty, before its files, so its lock is still held. Reproduced with the two halves in two processes: the lock
    file names a zombie (its command line empty) while another process still holds the lock."""
    import os
    import subprocess
    import sys

    from edgeorch.control.statelock import _holder

    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    os.waitid(os.P_PID, zombie.pid, os.WEXITED | os.WNOWAIT)  # ended, not reaped: a zombie
    lock_file = tmp_path / "edgeorch.lock"
    lock_file.write_text(f"{zombie.pid}\n")
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDWR); fcntl.lockf(fd, fcntl.LOCK_EX); "
        "print('held', flush=True); sys.stdin.read()"), str(lock_file)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        fd = os.open(lock_file, os.O_RDWR)
        try:
            holder_text, hint, busy = _holder(fd)
        finally:
            os.close(fd)
        assert busy and "just let it go" in holder_text, holder_text
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
        zombie.wait(timeout=30)
