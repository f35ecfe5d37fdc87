"""A client that asks for logs and never reads them holds none of the daemon's descriptors."""

from __future__ import annotations

import fcntl
import json
import os
import socket
import struct
import termios
import time


def _log_descriptors(pid: int, log: str) -> int:
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            n += os.readlink(f"/proc/{pid}/fd/{fd}") == log
        except OSError:
            pass  # closed meanwhile
    return n


def test_stalled_log_streams_hold_no_log_file_open(workspace, daemon) -> None:
    """Found by a hostile reader: `logs` streams a client never read kept their log file open for as long as the
    send waited; 190 connections with 32 streams each held every descriptor of the daemon (EMFILE for accepts and
    drop-folder claims). The log is now opened only to read a chunk, never across a send."""
    workspace.pipeline("loud", '''
        [tasks.a]
        command = ["python", "-c", "import sys; sys.stdout.write('x' * 4_000_000)"]
        ''')
    daemon.start()
    run_id = daemon.call("trigger", {"pipeline": "loud"})["run_id"]
    assert daemon.wait_run(run_id) == "succeeded"
    log = daemon.call("runs.show", {"run_id": run_id})["tasks"][0]["attempt_list"][-1]["log_path"]
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(daemon.socket_path))
    try:
        sock.sendall(b"".join(json.dumps({"v": 1, "id": i, "op": "logs", "args": {"run_id": run_id, "task": "a"}})
                              .encode() + b"\n" for i in range(8)))
        deadline = time.monotonic() + 30
        while struct.unpack("i", fcntl.ioctl(sock, termios.FIONREAD, b"\0\0\0\0"))[0] < 100_000:
            assert time.monotonic() < deadline, "the daemon sent nothing"
            time.sleep(0.01)
        # 32 MB asked for, ~200 KB taken: the eight streams wait in their sends from now on.
        seen = []
        for _ in range(20):
            seen.append(_log_descriptors(daemon.proc.pid, log))
            time.sleep(0.02)
        assert max(seen) <= 1, seen  # at most a chunk being read at that instant; before: 8 all along
    finally:
        sock.close()
    assert daemon.call("ping")["pong"] is True
