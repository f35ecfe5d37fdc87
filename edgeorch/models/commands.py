"""The ``reload`` and ``health`` commands of a deployment target: run off the loop, bounded by a timeout.

A command is an argv array run without a shell, in its own session (so a
timeout kills its whole process group: a ``curl`` or a script and whatever
it started), with stdin from ``/dev/null`` and its output captured (the last
:data:`OUTPUT_TAIL` characters are kept for the record). It gets the
deployment's facts in its environment:

- ``EDGEORCH_MODEL``, ``EDGEORCH_MODEL_VERSION``, ``EDGEORCH_MODEL_ALIAS``;
- ``EDGEORCH_MODEL_PATH``: what to load (the alias's link, or during a
  blue-green check the staged slot not served yet);
- ``EDGEORCH_MODEL_DIR``: the model's serving folder;
- ``EDGEORCH_MODEL_PREVIOUS``: the version the alias pointed at before (empty: none).

The event loop only awaits the child (asyncio's subprocess support); nothing
blocks it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from typing import Mapping, Sequence

from ..records import frozen

OUTPUT_TAIL = 2000
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

    def describe(self) -> str:
        """One line for a record: ``health command [...] exited with code 1: <last output line>``."""
        what = " ".join(self.argv)
        if self.ok:
            return f"{what!r} passed in {self.seconds:.1f}s"
        if self.timed_out:
            head = f"{what!r} did not finish within its timeout ({self.seconds:.1f}s)"
        elif self.exit_code is None:
            head = f"{what!r} could not be started"
        else:
            head = f"{what!r} exited with code {self.exit_code}"
        last = self.output.strip().splitlines()[-1:] if self.output.strip() else []
        return head + (f": {last[0][:200]}" if last else "")

    def to_dict(self) -> dict[str, object]:
        return {"argv": list(self.argv), "ok": self.ok, "exit_code": self.exit_code, "timed_out": self.timed_out,
                "seconds": round(self.seconds, 3), "output": self.output}


async def run_command(argv: Sequence[str], *, timeout: float, env: Mapping[str, str]) -> CommandResult:
    """Run ``argv`` with ``env`` added to the daemon's environment; kill its process group at ``timeout``."""
    started = time.monotonic()
    full_env = {**os.environ, **env}
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, env=full_env, start_new_session=True)
    except OSError as exc:
        return CommandResult(tuple(argv), False, None, False, time.monotonic() - started,
                             f"cannot run {argv[0]!r}: {exc.strerror or exc}")
    timed_out = False
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except asyncio.TimeoutError:
        timed_out = True
        _kill_group(proc.pid)
        out, _ = await proc.communicate()
    except asyncio.CancelledError:
        _kill_group(proc.pid)
        raise
    text = (out or b"").decode("utf-8", "replace")[-OUTPUT_TAIL:]
    code = proc.returncode
    return CommandResult(tuple(argv), not timed_out and code == 0, code, timed_out, time.monotonic() - started, text)


async def health_within(argv: Sequence[str], *, timeout: float, window: float,
                        env: Mapping[str, str]) -> CommandResult:
    """Run the health command until it passes, for at most ``window`` seconds (each run bounded by ``timeout``);
    the last result. A blue-green switch waits for a service that is still starting this way."""
    deadline = time.monotonic() + window
    while True:
        result = await run_command(argv, timeout=min(timeout, max(0.1, deadline - time.monotonic())), env=env)
        if result.ok or time.monotonic() + HEALTH_RETRY_S >= deadline:
            return result
        await asyncio.sleep(HEALTH_RETRY_S)


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
