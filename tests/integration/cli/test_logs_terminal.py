"""`edgeorch logs` on a terminal shows what a task wrote with its colours but no other control sequence; a pipe
and `--raw` get the bytes as written (a dropped file echoed by a task cleared the operator's screen, set the window
title and wrote the clipboard through OSC 52)."""

from __future__ import annotations

import os
import pty
import subprocess

ECHO = r"""
[tasks.a]
command = ["printf", "\\033[31mred\\033[0m\\n\\033[2J\\033]0;pwned\\007\\033]52;c;Zm9v\\007done\\n"]
"""


def _read_all(fd: int) -> bytes:
    out = b""
    while True:
        try:
            chunk = os.read(fd, 1 << 16)
        except OSError:  # EIO: the other side closed
            return out
        if not chunk:
            return out
        out += chunk


def test_logs_on_a_terminal_keep_colours_and_escape_the_rest(workspace):
    workspace.pipeline("echo", ECHO)
    assert workspace.invoke("run", "echo", "-q").returncode == 0
    master, slave = pty.openpty()
    proc = subprocess.Popen([*workspace.cli(), "logs", "1", "a"], env=workspace.cli_env(), stdout=slave,
                            stderr=subprocess.PIPE)
    os.close(slave)
    shown = _read_all(master)
    os.close(master)
    assert proc.wait(timeout=60) == 0, proc.stderr.read() if proc.stderr else ""
    assert b"\x1b[31mred\x1b[0m" in shown  # colours kept
    assert b"\\x1b[2J" in shown and b"\\x1b]52;c;Zm9v\\x07" in shown and b"done" in shown
    assert b"\x1b]" not in shown and b"\x1b[2J" not in shown


def test_logs_to_a_pipe_or_raw_are_the_bytes_as_written(workspace):
    workspace.pipeline("echo", ECHO)
    assert workspace.invoke("run", "echo", "-q").returncode == 0
    piped = subprocess.run([*workspace.cli(), "logs", "1", "a"], env=workspace.cli_env(), capture_output=True,
                           timeout=60)
    assert piped.returncode == 0 and piped.stdout == b"\x1b[31mred\x1b[0m\n\x1b[2J\x1b]0;pwned\x07\x1b]52;c;Zm9v\x07done\n"
    master, slave = pty.openpty()
    proc = subprocess.Popen([*workspace.cli(), "logs", "1", "a", "--raw"], env=workspace.cli_env(), stdout=slave)
    os.close(slave)
    shown = _read_all(master)
    os.close(master)
    assert proc.wait(timeout=60) == 0 and b"\x1b]52;c;Zm9v\x07" in shown
