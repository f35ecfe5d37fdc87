"""The daemon's background warm-up of the numba cache: one low-priority process, never in the way.

:class:`Warmer` starts ``python -m edgeorch.kernels.warmup`` (see
:mod:`edgeorch.kernels.warmup` for what it does and why it compiles to the
side) after the daemon is ready, unless ``[kernels] warm_up = false`` or the
cache is warm already. The process:

- runs only on idle CPU time (``SCHED_IDLE``, ``nice 19``): tasks and the
  daemon's loop always come first;
- is the daemon's child in its own session, awaited by asyncio (nothing
  blocks the loop), and dies with the daemon (``PR_SET_PDEATHSIG``), so a
  daemon killed with ``-9`` leaves no compiler behind;
- is killed (``SIGKILL`` to its process group) by :meth:`Warmer.close`, which
  the daemon calls first thing at stop: a stop never waits for a compile.
  Its staging folder is removed; what it had not installed compiles on first
  use, or in the next start's warm-up.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
from pathlib import Path
from typing import Any, Sequence

from ..selfexec import module_argv, module_env
from .warmup import is_warm, remove_stale_staging, staging_dir

log = logging.getLogger("edgeorch.kernels.warmup")

OUTPUT_TAIL = 2000


class Warmer:
    """Warms ``cache_dir`` in a background process; see the module docstring.

    ``command`` replaces the warm-up's argv (tests: a stand-in that sleeps);
    by default it is this interpreter running :mod:`edgeorch.kernels.warmup`.
    """

    def __init__(self, cache_dir: Path, *, enabled: bool = True, command: Sequence[str] | None = None) -> None:
        self.cache_dir = cache_dir
        self.enabled = enabled
        self.staging = staging_dir(cache_dir, os.getpid())
        self.command = list(command) if command is not None else module_argv(
            "edgeorch.kernels.warmup", str(cache_dir), "--staging", str(self.staging),
            "--idle", "--parent", str(os.getpid()))
        self.state = "off" if not enabled else "pending"
        """off | pending | skipped (warm already) | running | done | failed | stopped."""
        self.pid: int | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False  # close() is killing it: its end is a stop, not a failure

    def start(self) -> None:
        """Begin in the background (on the running loop); returns at once. Does nothing when disabled."""
        if self.enabled and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def wait(self) -> str:
        """The final state, once the warm-up has ended (for tests and tools; the daemon never waits)."""
        if self._task is not None:
            await asyncio.shield(self._task)
        return self.state

    async def close(self) -> None:
        """Stop a running warm-up at once: SIGKILL its process group, reap it, remove its staging folder."""
        if self._proc is not None and self._proc.returncode is None:
            self._stopping = True  # before the kill: _run may see the end first (both await the same exit)
            _kill_group(self._proc.pid)
            await self._proc.wait()
            if self.state == "running":
                self.state = "stopped"
        if self._task is not None and not self._task.done():
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        await asyncio.to_thread(shutil.rmtree, self.staging, True)

    async def _run(self) -> None:
        try:
            warm = await asyncio.to_thread(self._prepare)
        except OSError as exc:
            self.state = "failed"
            log.warning("numba cache warm-up not started: %s", exc)
            return
        if warm:
            self.state = "skipped"
            log.debug("numba cache %s is warm already: no warm-up", self.cache_dir)
            return
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.command, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT, start_new_session=True, env=module_env())
        except OSError as exc:
            self.state = "failed"
            log.warning("numba cache warm-up not started: %s", exc)
            return
        self._proc, self.pid, self.state = proc, proc.pid, "running"
        log.info("warming the numba cache %s in the background (pid %d, idle priority)", self.cache_dir, proc.pid)
        try:
            out, _ = await proc.communicate()
        except asyncio.CancelledError:
            _kill_group(proc.pid)
            raise
        text = (out or b"").decode("utf-8", "replace")[-OUTPUT_TAIL:].strip()
        if proc.returncode == 0:
            self.state = "done"
            log.info("numba cache warm-up finished: %s", text.splitlines()[-1] if text else "ok")
        elif self._stopping:
            self.state = "stopped"
            log.info("numba cache warm-up stopped (its staged files are removed; the next start warms the cache again)")
        else:
            self.state = "failed"
            log.warning("numba cache warm-up failed (exit %s); kernels compile on first use: %s",
                        proc.returncode, text or "(no output)")

    def _prepare(self) -> bool:
        """In a worker thread: whether the cache is warm; else the folder made and old staging removed."""
        if is_warm(self.cache_dir):
            return True
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        for path in remove_stale_staging(self.cache_dir):
            log.info("removed the staging folder of a warm-up that did not finish: %s", path)
        return False

    def to_dict(self) -> dict[str, Any]:
        return {"state": self.state, "pid": self.pid, "cache_dir": str(self.cache_dir)}


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
