"""The CLI's exit codes: the one list every command's ``--help`` and the man page print (errors carry theirs in ``exit_code``)."""

from __future__ import annotations

import functools
import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from ..errors import EXIT_INTERNAL

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

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


def follows_a_run(command: Callable[[Any], int]) -> Callable[[Any], int]:
    """``command`` (``run``, ``retry``, ``cancel``: its exit status is how a run ended; ``validate``, ``audit``,
    ``drift``, ``fairness``, ``profile``: its verdict) with a standard output whose reader may go away: once it has
    (``edgeorch run x | head -1``), nothing more is printed, the run is followed to its end (the check done) all the
    same, and the command exits with its own code (0, 1, 130...): ``validate | head`` said 0 of invalid files.

    Before, the first line written to the closed pipe ended the command with exit 0 (a failed or cancelled run's
    too), and without a daemon the progress printer logged a BrokenPipeError traceback for every task event. The
    other commands stop at a closed output (``main``: ``logs -f | head -1`` must end, not follow forever).
    """
    @functools.wraps(command)
    def with_output_that_may_close(args: Any) -> int:
        if sys.stdout is None or isinstance(sys.stdout, _OutputThatMayClose):  # (started with no standard output:
            return command(args)  # print() writes nothing then; or one such command calling another)
        saved = sys.stdout
        guard = sys.stdout = _OutputThatMayClose(saved)
        try:
            return command(args)
        finally:
            if sys.stdout is guard:
                sys.stdout = saved

    return with_output_that_may_close


class _OutputThatMayClose:
    """Standard output for :func:`follows_a_run`: the stream's own, until a write or flush finds its reader gone
    (``BrokenPipeError``); from then on every write is dropped, and the file descriptor itself is pointed at
    ``/dev/null`` (what the stream still holds, flushed at exit, and anything writing to it directly, go there)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.reader_gone = False

    def write(self, text: str) -> int:
        if not self.reader_gone:
            try:
                return self._stream.write(text)
            except BrokenPipeError:
                self._gone()
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if not self.reader_gone:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._gone()

    def _gone(self) -> None:
        self.reader_gone = True
        stdout_to_devnull(self._stream)

    def __getattr__(self, name: str) -> Any:  # isatty, encoding, fileno, buffer...: the stream's
        return getattr(self._stream, name)


def stdout_to_devnull(stream: Any) -> None:
    """Point ``stream``'s file descriptor (standard output whose reader went away) at ``/dev/null``, so that what it
    still buffers, flushed later (at exit), goes nowhere instead of raising ``BrokenPipeError`` again. A stream
    with no descriptor (a test's capture) is left as it is."""
    try:
        fd = stream.fileno()
        null = os.open(os.devnull, os.O_WRONLY)
    except (OSError, ValueError, AttributeError):  # (io.UnsupportedOperation is both an OSError and a ValueError)
        return
    try:
        os.dup2(null, fd)
    except OSError:
        pass
    finally:
        os.close(null)
