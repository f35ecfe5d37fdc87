"""The CLI's exit codes: the one list every command's ``--help`` and the man page print (errors carry theirs in ``exit_code``)."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 70, 130

EXIT_CODES: tuple[tuple[int, str], ...] = (
    (0, "ok"), (1, "failed/invalid (run failed, invalid pipeline, drift found)"),
    (2, "usage or config error (also a request this machine can never serve)"), (3, "not found"),
    (4, "state file unusable"), (5, "conflict (paused pipeline, run still active)"),
    (69, "no daemon running"), (70, "internal error: a bug, please report it (-v shows the traceback)"),
    (75, "daemon busy, timed out or gone meanwhile, or the state folder held by a run without a daemon: "
           "try again (a run it followed goes on)"), (77, "permission denied"),
    (130, "interrupted"),
)
"""Every exit code the CLI uses, with its meaning: the one list ``--help`` prints (errors carry theirs)."""


def exit_codes_text() -> str:
    """:data:`EXIT_CODES` as the block every ``--help`` ends with: a heading, then one code per line."""
    return "exit codes:\n" + "\n".join(f"  {code:>3}  {meaning}" for code, meaning in EXIT_CODES)


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While a command follows a stream (``events``, ``logs -f``), SIGTERM ends it as Ctrl-C does: exit 130 with
    "interrupted (SIGTERM)" (a JSON line with ``--json``), its connection closed on the way out. It ended with 143
    and said nothing, where docs and ``--help`` say 130. The previous handler is put back after."""
    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt("SIGTERM")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
