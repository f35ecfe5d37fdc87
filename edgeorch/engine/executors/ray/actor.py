"""The actor that runs one attempt on a node of the Ray cluster (one detached actor per attempt).

Created by the daemon (:mod:`.executor`) as ``edgeorch-attempt-<id>`` in the
daemon's namespace, ``lifetime="detached"`` (it outlives the daemon: live
restore) and ``max_restarts=0`` (a dead worker or node is never silently
run again: the attempt is abandoned and retried by the pipeline's policy).

Its methods, all asynchronous (the actor serves the daemon's calls while the
task runs):

- :meth:`launch` (idempotent): claim the attempt folder (``owner.json``, as
  the local shim does: an attempt that recovery already abandoned never
  runs), then start the supervisor (:mod:`.runshim`: the local shim) with the
  same command, environment and working folder, its log and records in a
  spool folder on the node (``<tmp>/edgeorch-ray-<uid>/<namespace>/...``,
  under a folder private to the worker's user: :func:`edgeorch.trust.private_folder`;
  when another user made that name first, a fresh private ``mkdtemp`` folder). Returns where the task runs (None when it could
  not start: its exit says why).
- :meth:`read`: the next bytes of the log from an offset, waiting up to
  ``wait_s`` for some; with the exit record once the supervisor has ended
  and everything was read (the daemon appends the bytes to the attempt's log
  file, so ``edgeorch logs -f`` works as locally).
- :meth:`status`: what the actor knows (the daemon's adoption after a restart).
- :meth:`stop` (SIGTERM to the supervisor: it stops the whole tree, SIGKILL
  after the grace; before the launch it is applied at launch), :meth:`kill`
  (SIGKILL to every process of the attempt).
- :meth:`release`: the daemon has the exit and the whole log: the spool is
  removed and the actor exits (its resources are the cluster's again).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

import ray

from ....selfexec import module_argv, module_env
from ....trust import private_folder
from ...files import read_json
from ...procinfo import descendants
from ..local.shim import ABANDONED, EXIT, OWNER, PROC, claim
from .mapping import wants_gpu

POLL_S = 0.05
"""How often a waiting :meth:`AttemptActor.read` looks at the spool log (on the node: a stat)."""
CHUNK = 1 << 20
"""The most log bytes one read returns."""


@ray.remote
class AttemptActor:
    """See the module docstring. ``req`` is the daemon's :class:`~..base.SpawnRequest` as a dict."""

    def __init__(self, req: dict[str, Any], namespace: str) -> None:
        self.req = req
        actor_id = ray.get_runtime_context().get_actor_id() or f"pid{os.getpid()}"
        self.spool_base = os.path.join(tempfile.gettempdir(), f"edgeorch-ray-{os.getuid()}")
        self.spool_tail = os.path.join(namespace, f"attempt-{req['attempt_id']}-{actor_id[:12]}")
        self.spool = os.path.join(self.spool_base, self.spool_tail)
        self.log = os.path.join(self.spool, "output.log")
        self.started: dict[str, Any] | None = None
        self.exit: dict[str, Any] | None = None
        self.state = "new"  # new -> launching -> running -> exited
        self.stop_asked = False
        self.proc: asyncio.subprocess.Process | None = None
        self._ended_event = asyncio.Event()  # set with the exit record: a waiting read returns at once
        self._launch: asyncio.Task[dict[str, Any] | None] | None = None

    # -- starting -----------------------------------------------------------------------

    async def launch(self) -> dict[str, Any] | None:
        """Start the attempt once (later calls wait for the first one); where it runs, or None."""
        if self._launch is None:
            self._launch = asyncio.ensure_future(self._do_launch())
        return await asyncio.shield(self._launch)

    async def _do_launch(self) -> dict[str, Any] | None:
        req = self.req
        self.state = "launching"
        ctx = ray.get_runtime_context()
        where = {"node_id": ctx.get_node_id(), "worker_pid": os.getpid(), "node_ip": ray.util.get_node_ip_address()}
        try:
            os.makedirs(req["attempt_dir"], exist_ok=True)
            won = claim(req["attempt_dir"], {"ray_actor": ctx.get_actor_name() if hasattr(ctx, "get_actor_name") else None,
                                             **where, "stops_tree": True})
        except OSError as exc:
            self._ended({"exit_code": 127, "signal": None, "finished_at": time.time(),
                         "error": f"cannot create {exc.filename}: {exc.strerror}"})
            return None
        if not won:
            owner = read_json(Path(req["attempt_dir"], OWNER)) or {}
            why = "attempt already settled (abandoned by recovery)" if owner.get(ABANDONED) else \
                "attempt folder already claimed by another supervisor"
            self._ended({"exit_code": 127, "signal": None, "finished_at": time.time(), "error": why,
                         "uncharged": True})
            return None
        if not private_folder(Path(self.spool_base)):  # the task's log and records: nobody else's to read or swap
            # Another user made that name first: a fresh private folder instead (as numba's fallback cache does),
            # so a squatter cannot fail every attempt on this node. Its path is this actor's to remember.
            self.spool_base = tempfile.mkdtemp(prefix=f"edgeorch-ray-{os.getuid()}-")
            self.spool = os.path.join(self.spool_base, self.spool_tail)
            self.log = os.path.join(self.spool, "output.log")
        os.makedirs(self.spool, exist_ok=True)
        env = dict(req["env"])
        if wants_gpu(req.get("resources") or {}):
            # Ray chose the GPUs of this node: they replace what the daemon's lease said.
            ids = ",".join(str(i) for i in ctx.get_accelerator_ids().get("GPU", []))
            env["CUDA_VISIBLE_DEVICES"] = env["NVIDIA_VISIBLE_DEVICES"] = ids
            env.pop("CUDA_DEVICE_ORDER", None)
        shim_req = {**req, "env": env, "attempt_dir": self.spool, "log_path": self.log, "cpus": None, "cgroup": None,
                    "parent_pid": os.getpid()}
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *module_argv("edgeorch.engine.executors.ray.runshim"), stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE, env=module_env(), close_fds=True)
        except OSError as exc:
            self._ended({"exit_code": None, "signal": None, "finished_at": time.time(), "lost": True,
                         "uncharged": True, "error": f"cannot start the attempt's supervisor: {exc}"})
            return None
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(shim_req).encode())
        await self.proc.stdin.drain()
        self.proc.stdin.close()
        line = await self.proc.stdout.readline()
        asyncio.ensure_future(self._watch(self.proc))
        try:
            reply = json.loads(line) if line.strip() else {}
        except ValueError:
            reply = {}
        if "pid" not in reply:
            return None  # it could not start the task (exit.json says why) or died: _watch records the exit
        self.started = {"pid": reply["pid"], "pid_start_time": reply.get("pid_start_time"), "pgid": reply["pgid"],
                        "shim_pid": reply["shim_pid"], "shim_start_time": reply.get("shim_start_time"), **where}
        if self.state == "launching":
            self.state = "running"
        if self.stop_asked:
            self._signal_shim(signal.SIGTERM)
        return self.started

    async def _watch(self, proc: asyncio.subprocess.Process) -> None:
        """Wait for the supervisor; its exit record (or, without one, a lost attempt) ends the attempt."""
        await proc.wait()
        record = read_json(Path(self.spool, EXIT))
        if record is None:
            # The supervisor died without a record (killed, OOM): stop what it left and say so.
            started = self.started or read_json(Path(self.spool, PROC)) or {}
            if started.get("pgid"):
                try:
                    os.killpg(started["pgid"], signal.SIGKILL)
                except OSError:
                    pass
            record = {"exit_code": None, "signal": None, "finished_at": time.time(), "lost": True,
                      "error": "the attempt's supervisor vanished without an exit record"}
        self._ended(record)

    def _ended(self, record: dict[str, Any]) -> None:
        self.exit = record
        self.state = "exited"
        self._ended_event.set()
        return None

    # -- the daemon's calls ---------------------------------------------------------------

    async def status(self) -> dict[str, Any]:
        """``state`` (new, launching, running, exited), ``started``, ``exit``, ``attempt_dir``, ``log_size``.

        A supervisor that wrote its exit record has ended (it writes it last):
        the answer waits (briefly) for this actor to have noticed, so an ended
        attempt is never reported as running.
        """
        if self.exit is None and self.proc is not None and os.path.exists(os.path.join(self.spool, EXIT)):
            try:
                await asyncio.wait_for(self._ended_event.wait(), 10.0)
            except asyncio.TimeoutError:
                pass
        try:
            size = os.path.getsize(self.log)
        except OSError:
            size = 0
        return {"state": self.state, "started": self.started, "exit": self.exit,
                "attempt_dir": self.req["attempt_dir"], "log_size": size}

    async def read(self, offset: int, wait_s: float) -> tuple[bytes, dict[str, Any] | None]:
        """Log bytes from ``offset`` (at most :data:`CHUNK`), waiting up to ``wait_s`` for some.

        The exit record comes with an empty chunk, only once the supervisor
        has ended and ``offset`` is the log's final size: nothing is lost.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while True:
            ended = self.exit is not None  # read before the size: the log is complete once this is set
            data = b""
            try:
                with open(self.log, "rb") as f:
                    f.seek(offset)
                    data = f.read(CHUNK)
            except OSError:
                pass
            if data:
                return data, None
            if ended:
                return b"", self.exit
            left = deadline - loop.time()
            if left <= 0:
                return b"", None
            try:  # new output is looked for every POLL_S; the end is seen at once
                await asyncio.wait_for(self._ended_event.wait(), min(POLL_S, left))
            except asyncio.TimeoutError:
                pass

    async def stop(self) -> None:
        """SIGTERM to the supervisor (it stops the whole tree; SIGKILL after the grace); at launch if not started."""
        self.stop_asked = True
        if self.started is not None and self.exit is None:
            self._signal_shim(signal.SIGTERM)

    async def kill(self) -> None:
        """SIGKILL every process of the attempt still found (the supervisor's tree and the task's group)."""
        if self.started is None or self.exit is not None:
            return
        for pid in descendants(self.started["shim_pid"]):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        try:
            os.killpg(self.started["pgid"], signal.SIGKILL)
        except OSError:
            pass

    async def release(self) -> None:
        """The daemon has collected the attempt: remove the spool and end this actor."""
        shutil.rmtree(self.spool, ignore_errors=True)
        if os.path.basename(self.spool_base) != f"edgeorch-ray-{os.getuid()}":  # a mkdtemp of its own: all of it
            shutil.rmtree(self.spool_base, ignore_errors=True)
        ray.actor.exit_actor()

    def _signal_shim(self, sig: int) -> None:
        if self.proc is not None and self.proc.returncode is None:
            try:
                self.proc.send_signal(sig)
            except ProcessLookupError:
                pass
