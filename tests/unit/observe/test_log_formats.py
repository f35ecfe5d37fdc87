"""JSON lines, the choice of output by [daemon] log_format, and the event log's lines with their fields."""

from __future__ import annotations

import json
import logging
import os
import socket
import tempfile
from pathlib import Path

import pytest

from edgeorch.errors import ConfigError
from edgeorch.events import (AttemptEnded, InputChanged, InputQuarantined, RunFinished, RunQueued, RunResumed,
                             TaskStarted)
from edgeorch.observe.eventlog import EventLog
from edgeorch.observe.journal import JournalHandler
from edgeorch.observe.jsonlog import JsonFormatter
from edgeorch.observe.logfields import fields_of, log_fields
from edgeorch.observe.logsetup import log_handler


def _record(msg: str, level: int = logging.INFO, exc_info=None, **fields) -> logging.LogRecord:
    rec = logging.LogRecord("edgeorch.events", level, __file__, 1, msg, (), exc_info)
    rec.__dict__.update(log_fields(**fields))
    rec.created = 0.25
    rec.msecs = 250
    return rec


def test_a_json_line_has_time_level_logger_message_and_the_fields_under_their_keys():
    doc = json.loads(JsonFormatter().format(_record("run 42 of nightly queued", run=42, pipeline="nightly")))
    assert doc == {"ts": "1970-01-01T00:00:00.250Z", "level": "info", "logger": "edgeorch.events",
                   "message": "run 42 of nightly queued", "run_id": 42, "pipeline": "nightly"}


def test_a_json_line_carries_the_traceback():
    try:
        raise ValueError("bad")
    except ValueError:
        import sys

        line = JsonFormatter().format(_record("failed", logging.ERROR, exc_info=sys.exc_info(), input=5))
    doc = json.loads(line)
    assert doc["input_id"] == 5 and "ValueError: bad" in doc["exception"]
    assert "\n" not in line  # one line, whatever the traceback


def test_json_and_text_formats_choose_their_handlers():
    handler = log_handler("json")
    assert handler is not None and isinstance(handler.formatter, JsonFormatter)
    assert log_handler("text") is None


def test_journal_without_a_journal_socket_is_a_config_error(monkeypatch, tmp_path):
    monkeypatch.setenv("EDGEORCH_ROOT", str(tmp_path))  # no run/systemd/journal/socket under it
    with pytest.raises(ConfigError) as err:
        log_handler("journal", source=tmp_path / "config.toml")
    assert err.value.render().startswith(f"{tmp_path / 'config.toml'}: daemon.log_format: ")  # the file named too
    assert log_handler("auto") is None  # auto falls back to text


def test_auto_is_the_journal_when_stderr_is_the_journal_stream(monkeypatch, tmp_path):
    root = Path(tempfile.mkdtemp(prefix="eor"))  # short: a socket path has a length limit
    sock_path = root / "run" / "systemd" / "journal" / "socket"
    sock_path.parent.mkdir(parents=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    try:
        monkeypatch.setenv("EDGEORCH_ROOT", str(root))
        st = os.fstat(2)
        monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
        handler = log_handler("auto")
        assert isinstance(handler, JournalHandler) and handler.path == str(sock_path)
        handler.close()
        monkeypatch.setenv("JOURNAL_STREAM", "1:1")  # systemd ran us, but stderr was redirected elsewhere
        assert log_handler("auto") is None
    finally:
        sock.close()
        sock_path.unlink()


def test_the_event_log_says_what_happened_to_runs_tasks_and_inputs_with_fields(caplog):
    ev = EventLog({42: "nightly"}.get)
    with caplog.at_level(logging.DEBUG, logger="edgeorch.events"):
        for e in (RunQueued(1.0, 42, "nightly"), TaskStarted(1.0, 42, "train", 1),
                  AttemptEnded(2.0, 42, "train", "retry_wait", 1, 1, None, "exited with code 1", False),
                  AttemptEnded(3.0, 42, "train", "succeeded", 2, 0, None, None, False),
                  RunFinished(3.0, 42, "succeeded", None, "nightly"),
                  InputChanged(4.0, "duplicate", input_id=7, pipeline="checks"),
                  InputChanged(4.0, "refused", pipeline="checks", file="x.exe", reason="not a regular file"),
                  InputQuarantined(5.0, 8, 43, "checks", "/q/b.csv", "its run failed", "b.csv")):
            ev.on_event(e)
    got = [(r.levelname, r.getMessage(), fields_of(r)) for r in caplog.records]
    assert got == [
        ("INFO", "run 42 of nightly queued", {"run": 42, "pipeline": "nightly"}),
        ("DEBUG", "run 42: train attempt 1 started", {"run": 42, "task": "train", "attempt": 1, "pipeline": "nightly"}),
        ("WARNING", "run 42: train attempt 1 failed, to be retried: exited with code 1",
         {"run": 42, "task": "train", "attempt": 1, "pipeline": "nightly"}),
        ("INFO", "run 42: train attempt 2 succeeded", {"run": 42, "task": "train", "attempt": 2, "pipeline": "nightly"}),
        ("INFO", "run 42 of nightly succeeded", {"run": 42, "pipeline": "nightly"}),
        ("INFO", "input 7 duplicate", {"input": 7, "pipeline": "checks"}),
        ("DEBUG", "watched folder x.exe refused: not a regular file", {"pipeline": "checks"}),
        ("WARNING", "input 8 (b.csv) quarantined as /q/b.csv: its run failed",
         {"input": 8, "run": 43, "pipeline": "checks"}),
    ]


def test_a_resumed_run_is_logged_with_its_pipeline_though_it_is_not_active_yet(caplog):
    """Found by a tester: "run 88 resumed: x run again" had no pipeline field (JSON `pipeline`, journal `PIPELINE=`):
    the engine tells the resume before the run is active, where the log looked its pipeline up."""
    ev = EventLog({}.get)  # no active run: as when the engine tells the resume
    with caplog.at_level(logging.INFO, logger="edgeorch.events"):
        ev.on_event(RunResumed(1.0, 88, ("x",), "fail"))
    assert [(r.getMessage(), fields_of(r)) for r in caplog.records] == [
        ("run 88 of fail resumed: x run again", {"run": 88, "pipeline": "fail"})]


def test_a_pause_and_a_resume_are_logged_with_who_and_why(caplog):
    """A tester's find: the daemon's log said only "skipped: pipeline nightly is paused" at each fire, neither who
    paused it nor the --reason given (the events table and the audit log had both)."""
    from edgeorch.events import PipelinePaused

    ev = EventLog({}.get)
    with caplog.at_level(logging.INFO, logger="edgeorch.events"):
        ev.on_event(PipelinePaused(1.0, "nightly", True, "alice (uid 1000)", "disk replacement"))
        ev.on_event(PipelinePaused(2.0, "nightly", False, "bob (uid 1001)"))
    got = [(r.getMessage(), fields_of(r)) for r in caplog.records]
    assert got[0][0].startswith("pipeline nightly paused by alice (uid 1000) (disk replacement): ")
    assert got[1][0] == "pipeline nightly resumed by bob (uid 1001)"
    assert got[0][1] == got[1][1] == {"pipeline": "nightly"}
