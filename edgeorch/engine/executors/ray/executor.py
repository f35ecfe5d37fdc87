"""The Ray executor, the daemon's side: attempts as detached actors on a Ray cluster.

It implements :class:`~edgeorch.engine.executors.base.Executor` (the contract
is there); how it keeps it:

- :meth:`spawn` creates the attempt's actor (:mod:`.actor`), named
  ``edgeorch-attempt-<id>`` in ``[executor] namespace``, detached and never
  restarted, with the task's request as Ray resources (:mod:`.mapping`), and
  asks it to launch. Ray places it; ``on_started`` follows once the task runs
  on a node (its pids there, the node in ``extra``).
- A follower per attempt (an asyncio task on the engine's loop) reads the
  attempt's log from the actor and appends it to the attempt's log file here
  (``edgeorch logs -f`` works unchanged), until the actor hands over the exit
  record; the follower writes it as ``exit.json`` in the attempt folder (the
  local executor's format and durability), calls ``on_exited`` and releases
  the actor. ``on_exited`` comes after the actor's supervisor ended, so no
  process of the attempt is alive, as locally.
- A dead worker or node (the actor died) fails the attempt as ``lost``
  (abandoned, charged: the pipeline's retries decide; Ray never restarts it).
  Its supervisor stops the task's tree when the worker dies (:mod:`.runshim`).
- :meth:`stop` / :meth:`kill` are the actor's: the supervisor on the node
  stops the whole tree, SIGKILL after ``kill_grace``.
- :meth:`adopt` (a restarted daemon) finds the actor by name: still running
  (LIVE: followed again from where the log file here ends), ended (FINISHED:
  the rest of the log copied, its exit recorded), or gone (LOST). The
  attempt folder's ``owner.json`` decides "never started" exactly as locally:
  recovery and the actor's launch race to create it.
- Ray is connected once per process (``ray.init``); every call names the
  namespace, so executors of several namespaces can share the connection.

Blocking Ray calls (connecting, reading the nodes, adoption) are made at
start and adoption, which the engine does before it serves anything; the
node list is refreshed in a worker thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import signal
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from ....config import ExecutorConfig
from ....errors import ConfigError, EdgeorchError
from ....resources.cluster import ClusterNode
from ...files import read_json
from ..base import (Adoption, AttemptRecord, ExitInfo, Executor, Health, OnExited, OnHealth, OnStarted, SpawnRequest,
                    StartedInfo, Verdict)
from ..local.executor import read_exit, settle_unowned
from ..local.shim import ABANDONED, EXIT, OWNER, write_json_atomically
from .mapping import actor_name, ray_options

if TYPE_CHECKING:
    from ray.actor import ActorClass

    from .actor import AttemptActor

log = logging.getLogger("edgeorch.engine.ray")

READ_WAIT_S = 1.0
"""How long one read of an attempt's log waits on the node for new output (a long poll)."""
CALL_TIMEOUT_S = 30.0
"""The most a blocking call to an actor may take during adoption before the attempt is taken as lost."""
NODES_EVERY_S = 5.0
"""How often the cluster's node list is read again (a node joining or dying)."""
KILL_ACTOR_AFTER = 3
"""After this many kill() calls without an end, the actor itself is killed (its supervisor then stops the tree)."""

_connect_lock = threading.Lock()


class ClusterUnavailable(EdgeorchError):
    """The Ray cluster of ``[executor] kind = "ray"`` cannot be reached."""

    code = "unavailable"
    exit_code = 75


def import_ray() -> Any:
    """The ``ray`` module, or a ConfigError saying how to install it (the extra)."""
    try:
        import ray
    except ImportError:
        raise ConfigError('is "ray" but the ray package is not installed', field="executor.kind", value="ray",
                          hint="pip install 'edgeorch[ray]' (or pip install ray) where the daemon runs, "
                               "or set [executor] kind = \"local\"") from None
    return ray


def connect(ray: Any, address: str | None) -> None:
    """Join the cluster once per process (later executors reuse the connection); raises ClusterUnavailable.

    ``address`` None: ``$RAY_ADDRESS``, else a cluster started on this
    machine (``ray start --head``). Never starts a cluster of its own: one
    that died with the daemon would take its attempts with it.
    """
    with _connect_lock:
        if ray.is_initialized():
            return
        target = address or os.environ.get("RAY_ADDRESS") or "auto"
        try:
            ray.init(address=target, logging_level=logging.WARNING, log_to_driver=False, configure_logging=False)
        except Exception as exc:  # noqa: BLE001 - ConnectionError, RuntimeError, ValueError: all "cannot reach it"
            raise ClusterUnavailable(f"cannot connect to the Ray cluster at {target}: {exc}".split("\n")[0],
                                     field="executor.address", value=address,
                                     hint="start one with `ray start --head` (docs/scale-out.md), or set "
                                          "[executor] address to its head's address") from None


def read_nodes(ray: Any) -> tuple[ClusterNode, ...]:
    """The cluster's nodes now (a call to its control store)."""
    return tuple(ClusterNode.from_ray(n) for n in ray.nodes())


@dataclass
class _Attempt:
    """One attempt this executor follows."""

    attempt_id: int
    attempt_dir: str
    log_path: str
    handle: Any
    started: StartedInfo | None = None
    node_id: str | None = None
    task: asyncio.Task[None] | None = None
    kills: int = 0
    actor_killed: bool = False
    """kill() escalated to killing the actor: its death is the stop asked for, not a lost attempt."""
    extra: dict[str, Any] = field(default_factory=dict)


class RayExecutor(Executor):
    """Runs attempts as detached Ray actors (see the module docstring)."""

    name = "ray"

    def __init__(self, loop: asyncio.AbstractEventLoop, on_started: OnStarted, on_exited: OnExited,
                 on_health: OnHealth | None = None, *, config: ExecutorConfig | None = None) -> None:
        self.loop = loop
        self.on_started = on_started
        self.on_exited = on_exited
        self.on_health = on_health or (lambda message: None)
        self.config = config or ExecutorConfig(kind="ray")
        self.namespace = self.config.namespace
        self._ray: Any = None
        self._nodes: tuple[ClusterNode, ...] = ()
        self._atts: dict[int, _Attempt] = {}
        self._closing = False
        self._ok = False
        self._detail = "not connected yet"
        self._nodes_timer: asyncio.TimerHandle | None = None
        self._nodes_reading = False
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="edgeorch-ray")

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Connect to the cluster and read its nodes (blocking, once). Raises ConfigError or ClusterUnavailable."""
        self._ray = import_ray()
        connect(self._ray, self.config.address)
        self._nodes = read_nodes(self._ray)
        self._ok = True
        self._detail = self._describe()
        self._nodes_timer = self.loop.call_later(NODES_EVERY_S, self._refresh_nodes)

    def _describe(self) -> str:
        alive = sum(1 for n in self._nodes if n.alive)
        return f"Ray cluster: {alive} node{'s' if alive != 1 else ''} alive (namespace {self.namespace})"

    def _refresh_nodes(self) -> None:
        """Read the node list in the worker thread; a change is reported (and seen through :meth:`nodes`)."""
        self._nodes_timer = None
        if self._closing or self._nodes_reading:
            return
        self._nodes_reading = True
        fut = self._pool.submit(read_nodes, self._ray)
        fut.add_done_callback(lambda f: self._post(self._nodes_read, f))

    def _nodes_read(self, fut: concurrent.futures.Future[tuple[ClusterNode, ...]]) -> None:
        self._nodes_reading = False
        if self._closing:
            return
        try:
            nodes = fut.result()
        except Exception as exc:  # noqa: BLE001 - the control store is unreachable: say so, keep trying
            if self._ok:
                self._ok = False
                self._detail = f"Ray cluster unreachable: {exc}".split("\n")[0]
                self.on_health(self._detail + "; attempts keep running on their nodes; trying again")
        else:
            was = {n.node_id: n.alive for n in self._nodes}
            for n in nodes:
                if was.get(n.node_id) and not n.alive:
                    self.on_health(f"Ray node {n.address} ({n.node_id[:12]}) died: its attempts are abandoned")
                elif n.node_id not in was and n.alive:
                    self.on_health(f"Ray node {n.address} ({n.node_id[:12]}) joined the cluster")
            if not self._ok:
                self.on_health("Ray cluster reachable again")
            if nodes != self._nodes:
                self._nodes = nodes
            self._ok = True
            self._detail = self._describe()
        self._nodes_timer = self.loop.call_later(NODES_EVERY_S, self._refresh_nodes)

    def _post(self, fn: Any, *args: Any) -> None:
        """Run ``fn(*args)`` on the loop (from Ray's or the worker's threads); nothing once the loop is gone."""
        try:
            self.loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:
            pass

    def nodes(self) -> Sequence[ClusterNode]:
        return self._nodes

    def placements(self) -> dict[int, str]:
        return {aid: a.node_id for aid, a in self._atts.items() if a.node_id}

    def health(self) -> Health:
        return Health(self._ok, self._detail, 0)

    def close(self) -> None:
        """Stop following; the actors (and their tasks) go on: a later :meth:`adopt` finds them."""
        self._closing = True
        if self._nodes_timer is not None:
            self._nodes_timer.cancel()
        for a in self._atts.values():
            if a.task is not None:
                a.task.cancel()
        self._atts.clear()
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- spawning and following ------------------------------------------------------------

    def spawn(self, req: SpawnRequest) -> None:
        """Create the attempt's actor and follow it; ``on_started`` / ``on_exited`` come on the loop."""
        from .actor import AttemptActor

        # @ray.remote made the class an ActorClass; mypy keeps a decorated class's own type
        actor_class = cast("ActorClass[AttemptActor]", AttemptActor)
        att = _Attempt(req.attempt_id, req.attempt_dir, req.log_path, None)
        self._atts[req.attempt_id] = att
        try:
            att.handle = actor_class.options(
                name=actor_name(req.attempt_id), namespace=self.namespace, lifetime="detached", max_restarts=0,
                max_task_retries=0, **ray_options(req.resources, self._nodes),
            ).remote(_plain(req), self.namespace)
        except Exception as exc:  # noqa: BLE001 - a name taken, options refused: the attempt fails, said why
            self.loop.call_soon(self._end, att, ExitInfo(127, None, time.time(), error=f"cannot create the attempt's "
                                                                                          f"Ray actor: {exc}"))
            return
        att.task = self.loop.create_task(self._follow(att, launch=True))

    async def _follow(self, att: _Attempt, *, launch: bool) -> None:
        """Launch (or re-attach), stream the log here until the exit, record the exit, release the actor."""
        ray = self._ray
        try:
            if launch or att.started is None:
                where = await _wait(att.handle.launch.remote())
                if where is not None and att.started is None:
                    att.started = _started(where)
                    att.node_id = where.get("node_id")
                    self.on_started(att.attempt_id, att.started)
            record = await self._stream(att)
        except asyncio.CancelledError:
            raise
        except ray.exceptions.RayActorError as exc:
            if att.actor_killed:  # the engine's stop, carried out on an actor that did not answer (or not start)
                self._end(att, ExitInfo(None, signal.SIGKILL, time.time(),
                                        error="stopped by killing its Ray actor (it did not end otherwise)"))
            else:
                self._end(att, ExitInfo(None, None, time.time(), lost=True,
                                        error=f"the Ray worker running the attempt died: {_first_line(exc)}"))
            return
        except Exception as exc:  # noqa: BLE001 - a Ray or file error: the attempt's end is unknown
            self._end(att, ExitInfo(None, None, time.time(), lost=True, error=f"lost contact with the attempt's "
                                                                                 f"Ray actor: {_first_line(exc)}"))
            return
        info = _exit_info(record)
        if not info.lost and not info.uncharged:  # (uncharged: recovery abandoned it; its verdict stands)
            try:
                _write_exit(att.attempt_dir, record)
            except OSError as exc:  # cannot record it: the actor keeps it; the next engine collects it
                self.on_health(f"cannot write the exit record of attempt {att.attempt_id}: {exc}; "
                               "the actor keeps it for the next start")
                self._atts.pop(att.attempt_id, None)
                return
        self._end(att, info)

    async def _stream(self, att: _Attempt) -> dict[str, Any]:
        """Append the actor's log to the attempt's log file until the exit record comes; returns it."""
        Path(att.log_path).parent.mkdir(parents=True, exist_ok=True)
        with open(att.log_path, "ab") as f:
            offset = f.tell()
            while True:
                data, record = await _wait(att.handle.read.remote(offset, READ_WAIT_S))
                if data:
                    f.write(data)
                    f.flush()
                    offset += len(data)
                elif record is not None:
                    return record

    def _end(self, att: _Attempt, info: ExitInfo) -> None:
        """Report the end (once), then let the actor go."""
        if self._closing or self._atts.get(att.attempt_id) is not att:
            return
        del self._atts[att.attempt_id]
        self.on_exited(att.attempt_id, info)
        if att.handle is not None:
            try:
                att.handle.release.remote()
            except Exception:  # noqa: BLE001 - already gone
                pass

    # -- stopping --------------------------------------------------------------------------

    def stop(self, attempt_id: int) -> None:
        """The actor's supervisor stops the whole tree: SIGTERM now, SIGKILL after the grace (at launch if not yet)."""
        att = self._atts.get(attempt_id)
        if att is not None and att.handle is not None:
            try:
                att.handle.stop.remote()
            except Exception:  # noqa: BLE001 - the actor is gone: its follower reports the end
                pass

    def kill(self, attempt_id: int) -> None:
        """SIGKILL everything of the attempt; an actor that does not end after a few tries is killed itself."""
        att = self._atts.get(attempt_id)
        if att is None or att.handle is None:
            return
        att.kills += 1
        try:
            if att.kills > KILL_ACTOR_AFTER:
                att.actor_killed = True
                self._ray.kill(att.handle, no_restart=True)  # its supervisor's death signal stops the tree
            else:
                att.handle.kill.remote()
        except Exception:  # noqa: BLE001 - already gone
            pass

    def pids(self, attempt_ids: list[int]) -> dict[int, list[int]]:
        """None known here: the processes run on the cluster's nodes (the GPU watcher is this machine's)."""
        return {}

    # -- adopting and settling ---------------------------------------------------------------

    def adopt(self, record: AttemptRecord) -> Adoption:
        """See the contract: the actor named after the attempt decides; the attempt folder, when it is gone."""
        adir = record.attempt_dir
        never_ran = Adoption(Verdict.LOST, exit=ExitInfo(
            None, None, None, lost=True, uncharged=True,
            error="the attempt never started (engine stopped while starting it)"))
        done = read_exit(adir)
        handle = self._find(record.attempt_id)
        if done is not None:  # recorded by an earlier follower: the actor, if left, has nothing more to give
            self._release(handle)
            return Adoption(Verdict.FINISHED, exit=done)
        status = self._status(handle) if handle is not None else None
        if status is not None and status.get("attempt_dir") != adir:
            return Adoption(Verdict.LOST, exit=ExitInfo(
                None, None, None, lost=True, error=f"the Ray actor {actor_name(record.attempt_id)} in namespace "
                f"{self.namespace} belongs to another attempt folder ({status.get('attempt_dir')}): does another "
                "daemon use this namespace?"))
        if status is None or status["state"] == "new":
            if not Path(adir, OWNER).exists() and settle_unowned(adir):
                self._kill_actor(handle)  # created, never launched: now it never will
                return never_ran
            owner = read_json(Path(adir, OWNER)) or {}
            if owner.get(ABANDONED):
                self._kill_actor(handle)
                return never_ran
            if status is None:
                return Adoption(Verdict.LOST, exit=ExitInfo(
                    None, None, None, lost=True,
                    error="the attempt's Ray actor is gone (its worker or node died) without an exit record"))
        started = _started(status["started"]) if status.get("started") else None
        att = _Attempt(record.attempt_id, adir, str(Path(adir, "output.log")), handle, started=started,
                       node_id=(status.get("started") or {}).get("node_id"))
        if status["state"] == "exited":
            try:
                exit_record = self._collect(att)
            except Exception as exc:  # noqa: BLE001 - the actor died meanwhile
                return Adoption(Verdict.LOST, started=started, exit=ExitInfo(
                    None, None, None, lost=True, error=f"the attempt's Ray actor died: {_first_line(exc)}"))
            info = _exit_info(exit_record)
            if not info.lost:
                _write_exit(adir, exit_record)
            self._release(handle)
            return Adoption(Verdict.LOST if info.lost else Verdict.FINISHED, started=started, exit=info)
        self._atts[record.attempt_id] = att
        att.task = self.loop.create_task(self._follow(att, launch=started is None))
        return Adoption(Verdict.LIVE, started=started)

    def settle(self, record: AttemptRecord) -> ExitInfo:
        """See the contract: ``exit.json``, else the actor's exit; else lost (after killing the actor)."""
        done = read_exit(record.attempt_dir)
        if done is not None:
            return done
        handle = self._find(record.attempt_id)
        status = self._status(handle) if handle is not None else None
        if status is not None and status["state"] == "exited" and status.get("attempt_dir") == record.attempt_dir:
            att = _Attempt(record.attempt_id, record.attempt_dir, str(Path(record.attempt_dir, "output.log")), handle)
            try:
                info = _exit_info(self._collect(att))
            except Exception:  # noqa: BLE001
                info = None
            if info is not None:
                self._release(handle)
                return info
        self._kill_actor(handle)  # an orphan nobody would collect
        return ExitInfo(None, None, None, lost=True, error="the attempt's Ray actor is gone without an exit record")

    def _find(self, attempt_id: int) -> Any:
        try:
            return self._ray.get_actor(actor_name(attempt_id), namespace=self.namespace)
        except Exception:  # noqa: BLE001 - ValueError: no such actor; anything else: unreadable, which is the same here
            return None

    def _status(self, handle: Any) -> dict[str, Any] | None:
        try:
            return self._ray.get(handle.status.remote(), timeout=CALL_TIMEOUT_S)
        except Exception:  # noqa: BLE001 - dead, or unreachable for too long: as good as gone
            return None

    def _collect(self, att: _Attempt) -> dict[str, Any]:
        """The rest of an ended attempt's log (appended here) and its exit record (blocking)."""
        ray = self._ray
        Path(att.log_path).parent.mkdir(parents=True, exist_ok=True)
        with open(att.log_path, "ab") as f:
            offset = f.tell()
            while True:
                data, record = ray.get(att.handle.read.remote(offset, 0.0), timeout=CALL_TIMEOUT_S)
                if data:
                    f.write(data)
                    offset += len(data)
                elif record is not None:
                    return record

    def _release(self, handle: Any) -> None:
        if handle is not None:
            try:
                handle.release.remote()
            except Exception:  # noqa: BLE001
                pass

    def _kill_actor(self, handle: Any) -> None:
        if handle is not None:
            try:
                self._ray.kill(handle, no_restart=True)
            except Exception:  # noqa: BLE001
                pass


async def _wait(ref: Any) -> Any:
    """Await a Ray object ref on the engine's loop (Ray completes it on its own thread)."""
    return await asyncio.wrap_future(ref.future())


def _plain(req: SpawnRequest) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(req)


def _started(where: dict[str, Any]) -> StartedInfo:
    return StartedInfo(where["pid"], where.get("pid_start_time"), where["pgid"], where["shim_pid"],
                       where.get("shim_start_time"),
                       extra={k: where[k] for k in ("node_id", "node_ip", "worker_pid") if k in where})


def _exit_info(record: dict[str, Any]) -> ExitInfo:
    return ExitInfo(record.get("exit_code"), record.get("signal"), record.get("finished_at"),
                    bool(record.get("log_truncated")), lost=bool(record.get("lost")), error=record.get("error"),
                    uncharged=bool(record.get("uncharged")))


def _write_exit(attempt_dir: str, record: dict[str, Any]) -> None:
    """The exit record in the attempt folder, as the local shim writes it (synced: it is the record of truth)."""
    Path(attempt_dir).mkdir(parents=True, exist_ok=True)
    keep = {k: record.get(k) for k in ("exit_code", "signal", "finished_at", "log_truncated", "error")}
    write_json_atomically(os.path.join(attempt_dir, EXIT), keep, sync=True)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.split("\n")[0][:300] if text else type(exc).__name__


def static_cluster_report(cfg: Any) -> dict[str, Any]:
    """``edgeorch resources`` without a daemon, for ``[executor] kind = "ray"``: the cluster's nodes, read
    from it now, in the daemon report's keys (null for what only a daemon knows). Raises ConfigError
    without the ray package, ClusterUnavailable when the cluster cannot be reached."""
    from ....resources.admission import Admission

    ray = import_ray()
    connect(ray, cfg.executor.address)
    adm = Admission.for_cluster(cfg.resources, read_nodes(ray))
    rep = adm.report(0.0, parallelism=cfg.engine.parallelism, max_parallel={})
    rep |= {"queue": None, "leases": None, "running_unleased": None, "running": None,
            "parallelism": cfg.engine.parallelism}
    return rep


__all__ = ["ClusterUnavailable", "RayExecutor", "connect", "import_ray", "read_nodes", "static_cluster_report"]
