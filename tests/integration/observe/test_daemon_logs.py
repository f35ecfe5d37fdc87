"""The daemon's log lines carry their fields: as JSON lines when configured, as journal fields under systemd.

Both against a real daemon process. For the journal, the test stands in for
systemd: it binds a datagram socket where the journal's would be (under
``$EDGEORCH_ROOT``, the tests' prefix of system paths) and sets
``$JOURNAL_STREAM`` to the daemon's stderr, as systemd does when that stderr
is the journal's stream.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import tempfile
import threading
from pathlib import Path

PIPELINE = '[tasks.a]\ncommand = ["true"]\n[tasks.b]\ncommand = ["sh", "-c", "exit 3"]\nneeds = ["a"]\n'


def test_json_lines_carry_run_task_attempt_and_pipeline(workspace, daemon):
    workspace.write_config('[daemon]\nlog_format = "json"\n')
    workspace.pipeline("nightly", PIPELINE)
    daemon.start()
    run_id = daemon.call("trigger", {"pipeline": "nightly"})["run_id"]
    assert daemon.wait_run(run_id) == "failed"
    assert daemon.stop() == 0
    lines = [json.loads(line) for line in daemon.output().splitlines()]  # every line is JSON, the banner too
    of_run = [d for d in lines if d.get("run_id") == run_id]
    assert [(d["level"], d["message"]) for d in of_run] == [
        ("info", f"run {run_id} of nightly queued (socket)"),
        ("info", f"run {run_id}: a attempt 1 succeeded"),
        ("warning", f"run {run_id}: b attempt 1 failed: exited with code 3"),
        ("warning", f"run {run_id} of nightly failed (failed: b)"),
    ]
    failed = of_run[2]
    assert (failed["task"], failed["attempt"], failed["pipeline"], failed["logger"]) == ("b", 1, "nightly",
                                                                                         "edgeorch.events")
    assert any(d["message"].startswith("edgeorch 0.1") and "ready" in d["message"] for d in lines)


def _entries(datagrams: list[bytes]) -> list[dict[str, str]]:
    """The datagrams a journal socket received, decoded (the journal's native protocol)."""
    out = []
    for data in datagrams:
        entry: dict[str, str] = {}
        i = 0
        while i < len(data):
            nl = data.index(b"\n", i)
            eq = data.find(b"=", i, nl)
            if eq != -1:
                entry[data[i:eq].decode()] = data[eq + 1:nl].decode()
                i = nl + 1
            else:
                (size,) = struct.unpack("<Q", data[nl + 1:nl + 9])
                entry[data[i:nl].decode()] = data[nl + 9:nl + 9 + size].decode()
                i = nl + 10 + size
        out.append(entry)
    return out


def test_under_systemd_the_lines_go_to_the_journal_with_run_id_fields(workspace, daemon, monkeypatch):
    root = Path(tempfile.mkdtemp(prefix="eoj"))  # short: a socket path has a length limit
    path = root / "run" / "systemd" / "journal" / "socket"
    path.parent.mkdir(parents=True)
    journal = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    journal.bind(str(path))
    received: list[bytes] = []
    done = threading.Event()

    def read() -> None:  # as journald does: a full socket buffer would block the daemon's logging
        journal.settimeout(0.1)
        while not done.is_set():
            try:
                received.append(journal.recv(1 << 20))
            except TimeoutError:
                continue

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        workspace.pipeline("nightly", PIPELINE)
        daemon.log.touch()  # the daemon's stderr: systemd names it in $JOURNAL_STREAM
        st = os.stat(daemon.log)
        monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
        monkeypatch.setenv("EDGEORCH_ROOT", str(root))
        daemon.start()
        run_id = daemon.call("trigger", {"pipeline": "nightly"})["run_id"]
        assert daemon.wait_run(run_id) == "failed"
        assert daemon.stop() == 0
    finally:
        done.set()
        reader.join(timeout=10)
        journal.close()
        path.unlink()
    entries = _entries(received)
    of_run = [e for e in entries if e.get("RUN_ID") == str(run_id)]  # journalctl -u edgeorch RUN_ID=<run>
    assert [e["MESSAGE"] for e in of_run] == [f"run {run_id} of nightly queued (socket)", f"run {run_id}: a attempt 1 succeeded",
                                              f"run {run_id}: b attempt 1 failed: exited with code 3",
                                              f"run {run_id} of nightly failed (failed: b)"]
    failed = of_run[2]
    assert (failed["TASK"], failed["ATTEMPT"], failed["PIPELINE"], failed["PRIORITY"]) == ("b", "1", "nightly", "4")
    assert all(e["SYSLOG_IDENTIFIER"] == "edgeorch" for e in entries)
    assert any("ready" in e["MESSAGE"] for e in entries)  # the daemon's other lines go there too
    assert "ready" not in daemon.output()  # and not also to stderr


def test_json_lines_carry_the_error_that_stops_a_start(workspace, daemon):
    """With log_format = "json" every line on stderr is JSON: the error that stops a start was the CLI's plain
    `edgeorch: error: ...` line, which a log shipper reading JSON lines dropped or choked on."""
    workspace.write_config('[daemon]\nlog_format = "json"\n')
    daemon.start()
    second = subprocess.run([*workspace.cli(), "daemon"], env=workspace.cli_env(), capture_output=True, text=True,
                            timeout=60)  # the state folder is held by the first
    assert second.returncode == 4, second
    lines = [json.loads(line) for line in second.stderr.splitlines()]
    fatal = [d for d in lines if d["level"] == "critical"]
    assert len(fatal) == 1, lines
    error = fatal[0]["error"]
    assert (error["exit_code"], error["code"]) == (4, "state_error"), error
    assert str(workspace.root / "var") in error["message"] and "stop that daemon first" in error["hint"], error
    assert fatal[0]["message"].startswith("cannot go on: state directory ")
    assert daemon.stop() == 0
