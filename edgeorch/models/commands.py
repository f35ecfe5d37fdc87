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
import signal
import time
from typing import Mapping, Sequence

from ..commandmarks import marked_value, stop_marked
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
    tries: int = 1
    """How many times a health check ran within its window (:func:`health_within`); this is the last that ended."""

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
        tail = f" ({self.tries} tries within its window, each failing)" if self.tries > 1 else ""
        return head + (f": {last[0][:200]}" if last else "") + tail

    def to_dict(self) -> dict[str, object]:
        return {"argv": list(self.argv), "ok": self.ok, "exit_code": self.exit_code, "timed_out": self.timed_out,
                "seconds": round(self.seconds, 3), "output": self.output, "tries": self.tries}


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


MARK_VARIABLE = "EDGEORCH_DEPLOYMENT"
"""The environment variable that marks a deployment's command (see the module docstring)."""


def command_mark(deployment_id: int | str, state_file: str | os.PathLike[str]) -> str:
    """The value of :data:`MARK_VARIABLE` for the commands of one deployment of one state file."""
    return marked_value(deployment_id, state_file)


def stop_left_commands(mark: str) -> list[int]:
    """What a killed daemon's command of the deployment ``mark`` names left running, stopped
    (:func:`~edgeorch.commandmarks.stop_marked`): their pids, sorted."""
    return stop_marked(MARK_VARIABLE, mark)


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
