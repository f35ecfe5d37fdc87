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

The running is :mod:`edgeorch.commandrun`'s (one runner for every such command the
daemon runs, a rule's notify too); this module sets its policy for a deployment's
commands. The event loop only awaits the child (asyncio's subprocess support);
nothing blocks it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from typing import Mapping, Sequence

from ..commandmarks import marked_value, stop_marked
from ..commandrun import BYTES_PER_CHAR
from ..commandrun import CommandResult as CommandResult  # re-exported: the deployer's name for a command's result
from ..commandrun import run_command as _run

OUTPUT_TAIL = 2000
OUTPUT_TAIL_BYTES = BYTES_PER_CHAR * OUTPUT_TAIL
"""The bytes of a command's output kept while it runs: :data:`OUTPUT_TAIL` characters of up to 4 UTF-8 bytes."""
DRAIN_S = 0.5
"""How long the output pipe is read after the command's end and the kill of what it left (what was written before
the end is read at once; only a holder edgeorch could not kill keeps it open that long)."""
MARK_VARIABLE = "EDGEORCH_DEPLOYMENT"
"""The environment variable that marks a deployment's command (see the module docstring)."""
HEALTH_RETRY_S = 1.0
"""How long a blue-green check waits between two runs of the health command inside its window."""


async def run_command(argv: Sequence[str], *, timeout: float, env: Mapping[str, str]) -> CommandResult:
    """Run a deployment's command: :func:`edgeorch.commandrun.run_command` with stdin from ``/dev/null``, the mark
    :data:`MARK_VARIABLE` (from ``env``), the last :data:`OUTPUT_TAIL` characters of its output and
    :data:`DRAIN_S`. Its verdict is its exit status within ``timeout``, not the end of its output; what it left
    running is killed at its exit; one that cannot be started is a failed result (``exit_code`` None), not an
    exception."""
    return await _run(argv, timeout=timeout, env=env, mark_variable=MARK_VARIABLE, output_chars=OUTPUT_TAIL,
                      drain_s=DRAIN_S)


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

