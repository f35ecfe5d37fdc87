"""Helpers of the fault tests (imported by name: the test folders are not packages)."""

from __future__ import annotations


def fill_up(folder) -> None:
    """Write zeros into ``folder``/filler until the disk refuses: the tmpfs is full (remove the file to free it)."""
    with open(folder / "filler", "wb") as f:
        try:
            while True:
                f.write(b"\0" * (1 << 16))
                f.flush()
        except OSError:
            pass
