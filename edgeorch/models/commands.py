"""The ``reload`` and ``health`` commands of a deployment target: run off the loop, bounded by a timeout.

A command is an argv array run without a shell, in its own session (so a
timeout kills its whole process group: a ``curl`` or a script and whatever
it started), with stdin from ``/dev/null`` and its output captured through a
bounded buffer (the last :data:`OUTPUT_TAIL` characters are kept for the
record). Its verdict is its exit status within its timeout; at its exit what
it left running (its group, anything carrying its mark) is killed
(:func:`run_command`). It gets the deployment's facts in its environment:

- ``EDGEORCH_MODEL``, ``EDGEORCH_MODEL_VERSION``, ``EDGEORCH_MODEL_ALIAS``;
- ``EDGEORCH_MODEL_PATH``: what to load (the alias's link, or during a
  blue-green check the staged slot not served yet);
- ``EDGEORCH_MODEL_DIR``: the model's serving folder;
- ``EDGEORCH_MODEL_PREVIOUS``: the version the alias pointed at before (empty: none);
- ``EDGEORCH_DEPLOYMENT``: ``<deployment id>@<state file>``, the command's mark. A daemon killed
  (``kill -9``) during a command cannot stop it: the command and what it started (its process group,
  anything that inherited the variable) ran on beside the command the restarted daemon runs for the
  same deployment. Recovery stops every process of the daemon's user that carries the mark of the
  deployment it recovers (:func:`stop_left_commands`) before it runs anything again.

The event loop only awaits the child (asyncio's subprocess support); nothing
blocks it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from typing import Mapping, Sequence

from ..commandmarks import marked_value, stop_left, stop_marked
from ..records import frozen

OUTPUT_TAIL = 2000
OUTPUT_TAIL_BYTES = 4 * OUTPUT_TAIL
"""The bytes of a command's output kept while it runs: :data:`OUTPUT_TAIL` characters of up to 4 UTF-8 bytes."""
DRAIN_S = 0.5
"""How long the output pipe is read after the command's end and the kill of what it left (what was written before
the end is read at once; only a holder edgeorch could not kill keeps it open that long)."""
MARK_VARIABLE = "EDGEORCH_DEPLOYMENT"
"""The environment variable that marks a deployment's command (see the module docstring)."""
HEALTH_RETRY_S = 1.0
"""How long a blue-green check waits between two runs of the health command inside its window."""


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
    """How many times a health check ran within its window (:func:`health_within`); this is the last that ended."""
    timeout: float | None = None
    """The timeout it ran under: what a timed-out command is said to have exceeded (None: ``seconds``)."""

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


async def run_command(argv: Sequence[str], *, timeout: float, env: Mapping[str, str]) -> CommandResult:
    """Run ``argv`` with ``env`` added to the daemon's environment; its verdict is its exit status within ``timeout``.

    The command's end is its exit, not the end of its output: a child it left holding the output pipe (``(setsid
    sleep 60 &); exit 0``, a daemonising script) made a check that passed at once wait for the child's lifetime,
    past every timeout, and then read as a timeout. At the exit (or at ``timeout``, when the command is killed)
    what is left of it is killed: its process group, and every process carrying ``env``'s mark
    (:data:`MARK_VARIABLE`, :func:`~edgeorch.commandmarks.stop_marked`), so no orphan of a check stays; then the
    pipe is read to its end for at most :data:`DRAIN_S` (an unmarked process in another session may still hold it)
    and closed. The output is read through a buffer of its last :data:`OUTPUT_TAIL_BYTES` bytes: the daemon's
    memory does not grow with what a command prints."""
    started = time.monotonic()
    read_end, write_end = os.pipe()
    try:
        transport, tail = await asyncio.get_running_loop().connect_read_pipe(
            lambda: _Tail(OUTPUT_TAIL_BYTES), os.fdopen(read_end, "rb", buffering=0))
    except BaseException:
        os.close(write_end)
        raise
    try:
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=write_end, stderr=asyncio.subprocess.STDOUT,
                env={**os.environ, **env}, start_new_session=True)
        except OSError as exc:
            return CommandResult(tuple(argv), False, None, False, time.monotonic() - started,
                                 f"cannot run {argv[0]!r}: {exc.strerror or exc}", timeout=timeout)
        finally:
            os.close(write_end)  # the child has its copy: the pipe ends when it, and whatever inherited it, are gone
        return await _until_exit(proc, tail, argv, timeout=timeout, mark=env.get(MARK_VARIABLE), started=started)
    finally:
        transport.close()


async def _until_exit(proc: asyncio.subprocess.Process, tail: "_Tail", argv: Sequence[str], *, timeout: float,
                      mark: str | None, started: float) -> CommandResult:
    """:func:`run_command`'s wait: the command's exit or its timeout, then the kill of what it left (its group, the
    processes carrying ``mark``), then the rest of its output (at most :data:`DRAIN_S`). A cancellation (edgeorch
    stopping) kills the same and is raised."""
    try:
        try:
            await asyncio.wait_for(proc.wait(), timeout)
            timed_out = False
        except asyncio.TimeoutError:
            timed_out = True
        seconds = time.monotonic() - started
        # The command itself when it timed out; whatever it left when it exited. Off the loop (it reads /proc).
        await asyncio.to_thread(_stop_left, proc.pid, mark)
        await proc.wait()
        await tail.drained(DRAIN_S)
    except asyncio.CancelledError:  # here, on the loop: a task being cancelled cannot await a thread safely
        _stop_left(proc.pid, mark)
        raise
    code = proc.returncode
    return CommandResult(tuple(argv), not timed_out and code == 0, code, timed_out, seconds, tail.text(),
                         timeout=timeout)


def _stop_left(pid: int, mark: str | None) -> None:
    """Kill the process group of the command ``pid`` and every process carrying its ``mark``
    (:func:`~edgeorch.commandmarks.stop_left`). Reads ``/proc`` (milliseconds, once per command)."""
    stop_left(pid, MARK_VARIABLE, mark)


class _Tail(asyncio.Protocol):
    """A pipe's reader that keeps only the last ``limit`` bytes it carried (memory independent of the output's
    size); :meth:`drained` waits for the pipe's end."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
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
        """The last :data:`OUTPUT_TAIL` characters (UTF-8, undecodable bytes replaced). A buffer that was cut may
        start inside a character: its leading continuation bytes are dropped, not shown as a replacement."""
        data = bytes(self.data).lstrip(_CONTINUATION) if self.cut else bytes(self.data)
        return data.decode("utf-8", "replace")[-OUTPUT_TAIL:]


_CONTINUATION = bytes(range(0x80, 0xC0))


async def health_within(argv: Sequence[str], *, timeout: float, window: float,
                        env: Mapping[str, str]) -> CommandResult:
    """Run the health command until it passes, for at most ``window`` seconds (each run bounded by ``timeout``);
    the last result. A blue-green switch waits for a service that is still starting this way."""
    deadline = time.monotonic() + window
    tries, ended = 0, None  # the last try that ended by itself (not cut short by the window's end)
    while True:
        budget = min(timeout, max(0.1, deadline - time.monotonic()))
        result = await run_command(argv, timeout=budget, env=env)
        tries += 1
        if result.ok:
            return result
        if not (result.timed_out and budget < timeout):
            ended = result
        if time.monotonic() + HEALTH_RETRY_S >= deadline:
            # Said by the last try that ended by itself: a last one the window's end cut short read "did not
            # finish within its timeout (3.0s)" for a check that exited 1 each time, within a timeout of 8 s.
            return dataclasses.replace(ended or result, tries=tries)
        await asyncio.sleep(HEALTH_RETRY_S)


def command_mark(deployment_id: int | str, state_file: str | os.PathLike[str]) -> str:
    """The value of :data:`MARK_VARIABLE` for the commands of one deployment of one state file."""
    return marked_value(deployment_id, state_file)


def stop_left_commands(mark: str) -> list[int]:
    """What a killed daemon's command of the deployment ``mark`` names left running, stopped
    (:func:`~edgeorch.commandmarks.stop_marked`): their pids, sorted."""
    return stop_marked(MARK_VARIABLE, mark)

