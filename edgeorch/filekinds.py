"""What a file that is not a regular one is, in words: the one table behind every "not a regular file" error
(a pipeline file, a dropped file, a kernel command's input)."""

from __future__ import annotations

import stat

_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


def file_kind(mode: int) -> str | None:
    """``"a FIFO"``, ``"a folder"``, ... for ``mode`` (an ``st_mode``); None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    return next((word for test, word in _KINDS if test(mode)), "an unknown kind of file")
