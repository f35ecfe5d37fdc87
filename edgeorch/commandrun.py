"""An external command whose verdict is its exit status within a timeout: the one runner (:func:`run_command`).

The daemon runs two kinds of such commands: a deployment's ``reload``/``health`` commands
(:mod:`edgeorch.models.commands`, on the daemon's loop) and a rule's ``notify`` command
(:mod:`edgeorch.monitor.service`, in a worker thread, under :func:`asyncio.run`). Both follow one rule:

- an argv array, run without a shell, in a session of its own (a timeout kills its whole process group: a
  ``curl`` or a script and whatever it started), with the caller's variables added to the daemon's environment,
  one of them its mark (:mod:`edgeorch.commandmarks`);
- its stdin is ``/dev/null``, or bytes written to a pipe as the command reads them and then closed; a command
  that does not read them, closes its stdin or exits first is left be (EPIPE is no error), and the verdict never
  waits for the input to be read;
- its verdict is its exit status within its timeout, not the end of its output: a child it left holding the
  output pipe (``(setsid sleep 60 &); exit 0``, a daemonising script) made a check that passed at once wait for
  the child's lifetime, past every timeout;
- at its exit (or at its timeout, when it is killed) what it left running is killed: its process group and every
  process carrying its mark (:func:`~edgeorch.commandmarks.stop_left`); then its output is read to its end for at
  most a drain time (an unmarked process in another session may still hold it);
- its output (stdout and stderr together) is read through a buffer of its last bytes: the daemon's memory does not
  grow with what a command prints.

The event loop only awaits the child and its pipes (asyncio's subprocess and pipe support); nothing blocks it.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Mapping, Sequence

from .commandmarks import stop_left
from .records import frozen

BYTES_PER_CHAR = 4
"""The output buffer holds ``BYTES_PER_CHAR`` bytes per character kept: characters of up to 4 UTF-8 bytes."""


@frozen
class CommandResult:
    """How a command ended: ``ok`` (exit 0 in time), its exit code, whether it timed out, its output's tail."""

    argv: tuple[str, ...]
    ok: bool
    exit_code: int | None
    timed_out: bool
    seconds: float
    output: str
    tries: int = 1
    """How many times a health check ran within its window (:func:`~edgeorch.models.commands.health_within`); this
    is the last that ended."""
    timeout: float | None = None
    """The timeout it ran under: what a timed-out command is said to have exceeded (None: ``seconds``)."""
    start_error: str | None = None
    """Why it could not be started, in the system's words (``No such file or directory``); None: it was started.
    Not part of :meth:`to_dict`: ``output`` says it for the record."""

    def describe(self) -> str:
        """One line for a record: ``health command [...] exited with code 1: <last output line>``."""
        what = " ".join(self.argv)
        if self.ok:
            return f"{what!r} passed in {self.seconds:.1f}s"
        if self.timed_out:
            limit = self.seconds if self.timeout is None else self.timeout
            head = f"{what!r} did not finish within its timeout ({limit:.1f}s)"
        elif self.exit_code is None:
            head = f"{what!r} could not be started"
        else:
            head = f"{what!r} exited with code {self.exit_code}"
        last = self.output.strip().splitlines()[-1:] if self.output.strip() else []
        tail = f" ({self.tries} tries within its window, each failing)" if self.tries > 1 else ""
        return head + (f": {last[0][:200]}" if last else "") + tail

    def to_dict(self) -> dict[str, object]:
        return {"argv": list(self.argv), "ok": self.ok, "exit_code": self.exit_code, "timed_out": self.timed_out,
                "seconds": round(self.seconds, 3), "output": self.output, "tries": self.tries,
                "timeout": self.timeout}


async def run_command(argv: Sequence[str], *, timeout: float, env: Mapping[str, str], mark_variable: str,
                      output_chars: int, drain_s: float, stdin: bytes | None = None) -> CommandResult:
    """Run ``argv`` with ``env`` added to the daemon's environment; its verdict is its exit status within ``timeout``.

    ``env[mark_variable]`` is the command's mark (absent: only its process group is killed at its end). ``stdin``
    None: the command reads ``/dev/null``; bytes: they are written to its stdin as it reads them, and the pipe is
    closed after them; a command that does not read them (or not all), closes its stdin or exits first is not an
    error, and what it did not read is dropped at its end. ``output`` is the last ``output_chars`` characters of
    its stdout and stderr (UTF-8, undecodable bytes replaced), read through a buffer of the last
    ``BYTES_PER_CHAR * output_chars`` bytes. After the command's exit (or its kill at ``timeout``) and the kill of
    what it left, its output is read to its end for at most ``drain_s`` seconds.

    A command that cannot be started is a result, not an exception: ``exit_code`` None, ``start_error`` the
    system's reason, ``output`` ``cannot run '<argv[0]>': <reason>``. A cancellation (edgeorch stopping) kills the
    command and what it left, and is raised."""
    started = time.monotonic()
    loop = asyncio.get_running_loop()
    read_end, write_end = os.pipe()
    try:
        transport, tail = await loop.connect_read_pipe(lambda: _Tail(output_chars),
                                                       os.fdopen(read_end, "rb", buffering=0))
    except BaseException:
        os.close(write_end)
        raise
    feed: _Feed | None = None
    try:
        try:
            child_in: int = asyncio.subprocess.DEVNULL
            if stdin is not None:
                child_in, feed = await _Feed.open(loop)
            try:
                proc = await asyncio.create_subprocess_exec(
                    *argv, stdin=child_in, stdout=write_end, stderr=asyncio.subprocess.STDOUT,
                    env={**os.environ, **env}, start_new_session=True)
            except OSError as exc:
                reason = exc.strerror or str(exc)
                return CommandResult(tuple(argv), False, None, False, time.monotonic() - started,
                                     f"cannot run {argv[0]!r}: {reason}", timeout=timeout, start_error=reason)
        finally:
            # The child has its copies: the output pipe ends when it, and whatever inherited it, are gone; the input
            # pipe's reader is the command alone (our copy would keep a write to a gone reader from failing).
            os.close(write_end)
            if feed is not None:
                os.close(child_in)
        if feed is not None and stdin is not None:
            feed.write(stdin)
        return await _until_exit(proc, tail, argv, timeout=timeout, mark_variable=mark_variable,
                                 mark=env.get(mark_variable), drain_s=drain_s, started=started)
    finally:
        transport.close()
        if feed is not None:
            feed.close()


async def _until_exit(proc: asyncio.subprocess.Process, tail: _Tail, argv: Sequence[str], *, timeout: float,
                      mark_variable: str, mark: str | None, drain_s: float, started: float) -> CommandResult:
    """:func:`run_command`'s wait: the command's exit or its timeout, then the kill of what it left (its group, the
    processes carrying ``mark_variable=mark``), then the rest of its output (at most ``drain_s``). A cancellation
    (edgeorch stopping) kills the same and is raised."""
    try:
        try:
            await asyncio.wait_for(proc.wait(), timeout)
            timed_out = False
        except asyncio.TimeoutError:
            timed_out = True
        seconds = time.monotonic() - started
        # The command itself when it timed out; whatever it left when it exited. Off the loop (it reads /proc).
        await asyncio.to_thread(stop_left, proc.pid, mark_variable, mark)
        await proc.wait()
        await tail.drained(drain_s)
    except asyncio.CancelledError:  # here, on the loop: a task being cancelled cannot await a thread safely
        stop_left(proc.pid, mark_variable, mark)
        raise
    code = proc.returncode
    return CommandResult(tuple(argv), not timed_out and code == 0, code, timed_out, seconds, tail.text(),
                         timeout=timeout)


class _Tail(asyncio.Protocol):
    """A pipe's reader that keeps only the last ``BYTES_PER_CHAR * chars`` bytes it carried (memory independent of
    the output's size); :meth:`drained` waits for the pipe's end, :meth:`text` gives its last ``chars``
    characters."""

    def __init__(self, chars: int) -> None:
        self.chars = chars
        self.limit = BYTES_PER_CHAR * chars
        self.data = bytearray()
        self.cut = False
        self.ended = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        self.data += data[-self.limit:]
        if len(self.data) > self.limit:
            del self.data[:-self.limit]
            self.cut = True
        self.cut = self.cut or len(data) > self.limit

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ended.done():
            self.ended.set_result(None)

    async def drained(self, grace: float) -> None:
        """Until the pipe ends, at most ``grace`` seconds (a holder edgeorch could not kill keeps it open)."""
        try:
            await asyncio.wait_for(asyncio.shield(self.ended), grace)
        except asyncio.TimeoutError:
            pass

    def text(self) -> str:
        """The last ``chars`` characters (UTF-8, undecodable bytes replaced). A buffer that was cut may start
        inside a character: its leading continuation bytes are dropped, not shown as a replacement."""
        data = bytes(self.data).lstrip(_CONTINUATION) if self.cut else bytes(self.data)
        return data.decode("utf-8", "replace")[-self.chars:]


_CONTINUATION = bytes(range(0x80, 0xC0))


class _Feed(asyncio.Protocol):
    """The writer of a command's stdin: the bytes go into the pipe as the command reads them, then the pipe is
    closed. Never awaited: the command's verdict does not wait for its input to be read. A write to a pipe whose
    reader is gone (EPIPE: the command exited or closed its stdin) ends the transport quietly (asyncio logs an
    ``OSError`` on a pipe only in debug mode); :meth:`close` drops what is still unread at the command's end (a
    command that never read it, or a child it left holding its stdin)."""

    transport: asyncio.WriteTransport

    @classmethod
    async def open(cls, loop: asyncio.AbstractEventLoop) -> tuple[int, _Feed]:
        """A new pipe: its read end (for the child, to be closed here once it is started) and its writer."""
        read_end, write_end = os.pipe()  # both close-on-exec: the child gets the read end as its stdin only
        try:
            _, feed = await loop.connect_write_pipe(cls, os.fdopen(write_end, "wb", buffering=0))
        except BaseException:
            os.close(read_end)
            raise
        return read_end, feed

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        self.transport = transport

    def write(self, data: bytes) -> None:
        """Write ``data`` (what the pipe does not take at once is buffered), then close the pipe after it."""
        self.transport.write(data)
        self.transport.write_eof()

    def close(self) -> None:
        """End the feeding now: a pipe not closed yet is closed; one still holding unread bytes is dropped."""
        if not self.transport.is_closing():
            self.transport.close()
        elif self.transport.get_write_buffer_size():
            # Closing, but waiting for a reader that will not come. Neither the end of the buffer's flush nor a
            # write error has ended the transport yet (each empties the buffer): abort() ends it once.
            self.transport.abort()
