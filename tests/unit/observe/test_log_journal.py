"""The journal's native protocol (edgeorch/observe/journal.py) against a real Unix datagram socket."""

from __future__ import annotations

import logging
import os
import socket
import struct
import tempfile
from pathlib import Path

import pytest

from edgeorch.observe.journal import JournalHandler, encode, priority, stderr_is_journal
from edgeorch.observe.logfields import log_fields


def decode(data: bytes) -> dict[str, str]:
    """The inverse of the wire format, as journald reads it (a test's own parser)."""
    fields: dict[str, str] = {}
    i = 0
    while i < len(data):
        nl = data.index(b"\n", i)
        eq = data.find(b"=", i, nl)
        if eq != -1:
            fields[data[i:eq].decode()] = data[eq + 1:nl].decode()
            i = nl + 1
        else:
            name = data[i:nl].decode()
            (size,) = struct.unpack("<Q", data[nl + 1:nl + 9])
            fields[name] = data[nl + 9:nl + 9 + size].decode()
            assert data[nl + 9 + size:nl + 10 + size] == b"\n"
            i = nl + 10 + size
    return fields


@pytest.fixture
def journal():
    """A bound AF_UNIX datagram socket standing in for /run/systemd/journal/socket (short path: sun_path limit)."""
    folder = Path(tempfile.mkdtemp(prefix="eoj"))
    path = folder / "socket"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(10)
    yield path, sock
    sock.close()
    path.unlink(missing_ok=True)
    folder.rmdir()


def _logger(handler: logging.Handler) -> logging.Logger:
    logger = logging.getLogger(f"edgeorch.test.journal.{id(handler)}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    return logger


def test_plain_values_are_name_equals_value_and_a_newline_gets_a_length_prefix():
    assert encode([("MESSAGE", "hello"), ("RUN_ID", "42")]) == b"MESSAGE=hello\nRUN_ID=42\n"
    assert encode([("MESSAGE", "a\nb")]) == b"MESSAGE\n" + struct.pack("<Q", 3) + b"a\nb\n"
    assert decode(encode([("A", "x=y"), ("B", "two\nlines"), ("C", "")])) == {"A": "x=y", "B": "two\nlines", "C": ""}


@pytest.mark.parametrize("name", ["run_id", "_PID", "", "A-B", "X" * 65])
def test_a_name_the_journal_would_refuse_is_an_error(name):
    with pytest.raises(ValueError, match="not a journal field name"):
        encode([(name, "v")])


def test_a_record_arrives_with_its_message_priority_code_location_and_fields(journal):
    path, sock = journal
    handler = JournalHandler(path)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = _logger(handler)
    logger.warning("run %s: %s attempt %s failed", 42, "train", 2,
                   extra=log_fields(run=42, task="train", attempt=2, pipeline="nightly"))
    entry = decode(sock.recv(65536))
    assert entry["MESSAGE"] == "run 42: train attempt 2 failed"
    assert entry["PRIORITY"] == "4" and entry["SYSLOG_IDENTIFIER"] == "edgeorch"
    assert (entry["RUN_ID"], entry["TASK"], entry["ATTEMPT"], entry["PIPELINE"]) == ("42", "train", "2", "nightly")
    assert "INPUT_ID" not in entry
    assert entry["CODE_FILE"] == __file__ and entry["CODE_FUNC"].startswith("test_a_record")
    assert entry["LOGGER"] == logger.name
    handler.close()


def test_a_traceback_travels_as_one_multi_line_field(journal):
    path, sock = journal
    handler = JournalHandler(path)
    handler.setFormatter(logging.Formatter("%(message)s"))
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        _logger(handler).exception("collector failed", extra=log_fields(input=7))
    entry = decode(sock.recv(65536))
    assert entry["MESSAGE"].startswith("collector failed\nTraceback") and "RuntimeError: boom" in entry["MESSAGE"]
    assert entry["PRIORITY"] == "3" and entry["INPUT_ID"] == "7"
    handler.close()


def test_an_entry_too_big_for_a_datagram_goes_in_a_sealed_memfd(journal):
    path, sock = journal
    handler = JournalHandler(path)
    handler.setFormatter(logging.Formatter("%(message)s"))
    big = "x" * (4 * 1024 * 1024)  # beyond any datagram size limit
    _logger(handler).info(big, extra=log_fields(run=1))
    data, fds, _, _ = socket.recv_fds(sock, 1024, 1)
    assert data == b"" and len(fds) == 1
    import fcntl

    seals = fcntl.fcntl(fds[0], fcntl.F_GET_SEALS)  # journald takes only a memfd nobody can change any more
    assert seals & fcntl.F_SEAL_WRITE and seals & fcntl.F_SEAL_SHRINK and seals & fcntl.F_SEAL_SEAL
    with os.fdopen(fds[0], "rb") as f:
        f.seek(0)  # journald maps the file from its start; the sender's writes moved the shared offset
        entry = decode(f.read())
    assert entry["MESSAGE"] == big and entry["RUN_ID"] == "1"
    handler.close()


def test_when_the_journal_is_gone_the_line_goes_to_stderr(journal, capsys):
    path, sock = journal
    handler = JournalHandler(path)
    handler.setFormatter(logging.Formatter("%(message)s"))
    sock.close()
    path.unlink()
    _logger(handler).error("still said", extra=log_fields(run=3))
    assert capsys.readouterr().err == "still said\n"
    handler.close()


@pytest.mark.parametrize("levelno, expected", [(logging.DEBUG, 7), (logging.INFO, 6), (logging.WARNING, 4),
                                              (logging.ERROR, 3), (logging.CRITICAL, 2)])
def test_levels_map_to_syslog_priorities(levelno, expected):
    assert priority(levelno) == expected


def test_stderr_is_the_journal_only_when_journal_stream_names_its_device_and_inode(tmp_path):
    with open(tmp_path / "stream", "w") as f:
        st = os.fstat(f.fileno())
        assert stderr_is_journal({"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}, f.fileno())
        assert not stderr_is_journal({"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino + 1}"}, f.fileno())
        assert not stderr_is_journal({"JOURNAL_STREAM": "garbage"}, f.fileno())
        assert not stderr_is_journal({}, f.fileno())
