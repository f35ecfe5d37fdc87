"""A log that cannot be written never takes the attempt's supervisor down (real pipe, real files).

The shim copies the task's output into its log; if a write failed with
anything but ENOSPC (quota, I/O error on a failing card, ...) the exception
unwound the shim, which then died without an exit record: the task was
orphaned, then killed by recovery and recorded as lost.
"""

from __future__ import annotations

import os

from edgeorch.engine.executors.local.shim import _LogCopy


def test_a_log_write_error_drops_the_output_and_keeps_copying(tmp_path):
    log = tmp_path / "output.log"
    log.write_text("")
    unwritable = os.open(log, os.O_RDONLY)  # every write fails (EBADF), as on EIO or EDQUOT
    rfd, wfd = os.pipe()
    try:
        os.write(wfd, b"hello\n")
        os.close(wfd)
        wfd = -1
        copy = _LogCopy(unwritable, 0)
        assert copy.copy_once(rfd) is True  # the chunk is read (the task never blocks), its text dropped
        assert copy.copy_once(rfd) is False  # then EOF, as usual
    finally:
        os.close(rfd)
        if wfd >= 0:
            os.close(wfd)
        os.close(unwritable)
