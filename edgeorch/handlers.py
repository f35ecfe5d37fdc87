"""The daemon's control operations, one method per op (see docs/protocol.md).

Each handler takes the request ``args`` and the :class:`~edgeorch.control.Peer`
and returns a JSON-ready dict (or, for streaming ops, yields them). They run
on the daemon's event loop, so state changes here obey the one-writer rule.
Bad arguments raise :class:`UsageError` naming the argument; unknown ids
raise :class:`NotFoundError`; the server turns both into error responses.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, AsyncIterator

from . import __version__
from .errors import NotFoundError, PipelineError, UsageError
from .model import RunState
from .pipelines import MAX_PIPELINE_BYTES, load_pipeline_bytes, validate_path

if TYPE_CHECKING:  # pragma: no cover
    from .control import ControlServer, Peer
    from .daemon import Daemon

LOG_CHUNK = 64 * 1024
FOLLOW_POLL_S = 0.2
EVENT_QUEUE = 10_000


def actor_of(peer: "Peer") -> str:
    return f"{peer.user} (uid {peer.uid})"


def _arg(args: dict[str, Any], name: str, kind: type | tuple[type, ...], *, required: bool = True, default: Any = None) -> Any:
    if name not in args or args[name] is None:
        if required:
            raise UsageError(f"argument {name!r} is required", field=f"args.{name}")
        return default
    value = args[name]
    if isinstance(value, bool) and kind is not bool and (kind is int or (isinstance(kind, tuple) and bool not in kind)):
        raise UsageError("has the wrong type", field=f"args.{name}", value=value, expected=_kind_name(kind))
    if not isinstance(value, kind):
        raise UsageError("has the wrong type", field=f"args.{name}", value=value, expected=_kind_name(kind))
    return value


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {int: "an integer", str: "a string", dict: "an object", bool: "true or false", list: "an array"}
    if isinstance(kind, tuple):
        return " or ".join(names.get(k, k.__name__) for k in kind)
    return names.get(kind, kind.__name__)


def _adhoc_pipeline(source: str, file: str) -> Any:
    """The pipeline in a client's file content ``source`` (validated like a file; errors name ``file``)."""
    raw = source.encode("utf-8", errors="surrogateescape")
    if len(raw) > MAX_PIPELINE_BYTES:
        raise PipelineError("the pipeline file is too large", file=file, value=f"{len(raw)} bytes",
                            expected=f"at most {MAX_PIPELINE_BYTES} bytes (1 MiB)")
    pipe, errors = load_pipeline_bytes(raw, Path(file))
    if pipe is None:
        if len(errors) == 1:
            raise errors[0]
        raise PipelineError(f"{len(errors)} problems:\n  " + "\n  ".join(e.render() for e in errors), file=file)
    return pipe


class Operations:
    """Handlers bound to one daemon."""

    def __init__(self, daemon: "Daemon") -> None:
        self.d = daemon
        self.subscribers: set[asyncio.Queue[dict[str, Any]]] = set()

    def register(self, server: "ControlServer") -> None:
        reg = server.register
        reg("status", self.status, access="read", help="daemon uptime, queue, running tasks, resources")
        reg("pipelines.list", self.pipelines_list, access="read", help="pipelines with their state")
        reg("pipelines.show", self.pipelines_show, access="read", help="one pipeline's definition")
        reg("pipelines.validate", self.pipelines_validate, access="read", help="validate a file or the folder")
        reg("pipelines.pause", self.pipelines_pause, access="act", help="refuse new runs of a pipeline")
        reg("pipelines.resume", self.pipelines_resume, access="act", help="accept runs of a paused pipeline again")
        reg("trigger", self.trigger, access="act", help="start a run with params")
        reg("runs.list", self.runs_list, access="read", help="recent runs, with filters")
        reg("runs.show", self.runs_show, access="read", help="one run with tasks, attempts, results")
        reg("logs", self.logs, access="read", streaming=True, help="an attempt's log; follow=true streams until it ends")
        reg("cancel", self.cancel, access="act", help="cancel an active run")
        reg("retry", self.retry, access="act", help="resume a finished run")
        reg("events", self.events, access="read", streaming=True, help="a stream of state changes")
        reg("reload", self.reload, access="act", help="reload config access lists and pipelines")
        reg("inputs.list", self.inputs_list, access="read",
            help="files that arrived in drop folders: state, size, sha256, run, reason; and the quarantine")
        reg("inputs.requeue", self.inputs_requeue, access="act", help="send a quarantined file back to its drop folder")
        reg("resources", self.resources, access="read",
            help="cores, memory, GPUs with live readings, who holds what, the queue with each task's reason")

    # -- events fan-out (an engine listener) --------------------------------------------

    def publish(self, event: dict[str, Any]) -> None:
        for q in list(self.subscribers):
            if q.full():
                try:
                    q.get_nowait()  # a slow reader loses the oldest event, and is told so
                except asyncio.QueueEmpty:
                    pass
                q.put_nowait({"kind": "overflow", "message": "events were dropped: the client reads too slowly"})
            q.put_nowait(event)

    # -- ops --------------------------------------------------------------------------

    async def status(self, args: dict[str, Any], peer: "Peer") -> dict[str, Any]:
        d = self.d
        engine = d.engine
        counts = d.store.counts()
        return {
            "version": __version__, "pid": os.getpid(), "started_at": d.started_at,
            "uptime_s": round(time.time() - d.started_at, 3), "state_file": str(d.config.state_file),
            "socket": str(d.config.socket_path), "config": str(d.config.source) if d.config.source else None,
            "runs": {"active": len(engine.runs), "total_by_state": counts},
            "tasks": {"running": len(engine.live), "ready": sum(1 for _ in engine.ready_tasks())},
            "parallelism": d.config.engine.parallelism,
            "pipelines": len(d.registry.by_file), "paused": sorted(d.store.paused_pipelines()),
            "pipeline_errors": [e.render() for e in d.registry.errors],
            "resources": d.resources_summary(),
            "clients": d.server.clients if d.server else 0,
        }

    async def pipelines_list(self, args: dict[str, Any], peer: "Peer") -> dict[str, Any]:
        paused = self.d.store.paused_pipelines()
        items = []
        trig = self.d.triggers
        for name, p in self.d.registry.pipelines.items():
            # A paused pipeline fires nothing: it has no next fire to show.
            nf = trig.next_fire(name) if trig is not None and name not in paused else None
            sched = trig.specs.get(name) if trig is not None else None
            items.append({"name": name, "description": p.description, "tasks": len(p.tasks), "file": p.source_file,
                          "next_fire": nf.isoformat() if nf is not None else None,
                          "schedule": sched.describe() if sched is not None else None,
                          "content_hash": p.content_hash, "paused": name in paused,
                          "paused_reason": paused.get(name, {}).get("reason"),
                          "params": {k: {"type": v.type, "default": v.default} for k, v in p.params.items()},
                          "warnings": self._warnings_of(p)})
        return {"pipelines": items, "errors": [e.to_dict() for e in self.d.registry.errors]}

    def _warnings_of(self, pipeline: Any) -> list[str]:
        """Why runs of ``pipeline`` would be refused on this machine (the front door's resource rule)."""
        res = self.d.engine.res if self.d.engine is not None else None
        if res is None:
            return []
        return [f"task {task} {why}: its runs will be refused" for task, why in res.check_pipeline(pipeline)]

    async def pipelines_show(self, args: dict[str, Any], peer: "Peer") -> dict[str, Any]:
        p = self.d.registry.get(_arg(args, "name", str))
        return {"name": p.name, "description": p.description, "file": p.source_file, "content_hash": p.content_hash,
                "priority": p.priority, "order": list(p.order), "source": p.source_text,
                "params": {k: {"type": v.type, "default": v.default, "help": v.help} for k, v in p.params.items()},
                "tasks": {n: {"needs": list(t.needs), "retries": t.retries, "timeout": t.timeout, "cache": t.cache,
                              "outputs": list(t.outputs), "kind": t.kind, "call": t.call,
                              "command": t.command if isinstance(t.command, str) else list(t.command or []),
                              "resources": {k: v for k, v in (("cpus", t.cpus), ("memory", t.memory), ("gpus", t.gpus),
                                                              ("gpu_memory", t.gpu_memory), ("gpu_model", t.gpu_model),
                                                              ("pool", t.pool)) if v}}
                          for n, t in p.tasks.items()}}

    async def pipelines_validate(self, args: dict[str, Any], peer: "Peer") -> dict[str, Any]:
        """``text`` (+ ``name``): that content; ``path``: a regular file the client could read itself
        (control/peerfiles.py); neither: the daemon's pipelines folder. Work runs on the peer executor,
        never the default one that claims dropped files."""
        from .control.peerfiles import PEER_IO, read_for_peer_async
        from .pipelines import MAX_PIPELINE_BYTES, load_pipeline_bytes

        loop = asyncio.get_running_loop()
        text = _arg(args, "text", str, required=False)
        path = _arg(args, "path", str, required=False)
        if text is None and path is None:
            report = await loop.run_in_executor(PEER_IO, validate_path, self.d.config.pipelines_dir)
            return {"ok": report.ok, "pipelines": sorted(report.pipelines), "errors": [e.to_dict() for e in report.errors]}
        if text is not None:
            raw, file = text.encode("utf-8"), Path(_arg(args, "name", str, required=False, default="pipeline.toml"))
        else:
            raw, file = await read_for_peer_async(path, peer, MAX_PIPELINE_BYTES), Path(path)
        pipe, errors = await loop.run_in_executor(PEER_IO, load_pipeline_bytes, raw, file)
        return {"ok": not errors, "pipelines": [pipe.name] if pipe is not None else [],
                "errors": [e.to_dict() for e in errors]}

    async def pipelines_pause(self, args: dict[str, Any], peer: "Peer") -> dict[str, Any]:
        p = self.d.registry.get(_arg(args, "name", str))
        self.d.store.set_paused(p.name, True, reason=_arg(args, "reason", str, required=False), actor=actor_of(peer))
        self.publish({"kind": "pipeline", "pipeline": p.name, "state": "paused", "ts": time.time()})
        return {"name": p.name, "paused": True}

    async def pipelines_resume(self, args: dict[str, Any], peer: "Peer") -> dict[str, Any]:
        p = self.d.registry.get(_arg(args, "name", str))
        self.d.store.set_paused(p.name, False, reason=None, actor=actor_of(peer))
        self.publish({"kind": "pipeline", "pipeline": p.name, "state": "resumed", "ts": time.time()})
        return {"name": p.name, "paused": False}

    async def trigger(self, args: dict[str, Any], peer: "Peer") -> dict[str, Any]:
        """Start a run through the front door (:mod:`edgeorch.engine.requests`).

        ``pipeline`` names a loaded pipeline; or ``source`` (a pipeline file's
        text) with ``file`` (its path, for messages and the default name) runs an
        ad-hoc pipeline file, recorded with the content hash of that text.
        """
        from .engine.requests import RunRequest

        raw = _arg(args, "params", dict, required=False, default={})
        source = _arg(args, "source", str, required=False)
        ref: Any
        if source is not None:
            file = _arg(args, "file", str)
            ref = await asyncio.to_thread(_adhoc_pipeline, source, file)
        else:
            ref = _arg(args, "pipeline", str)
        started = self.d.requests.start(RunRequest(ref, raw, trigger=str(args.get("trigger") or "socket"),
                                                   actor=actor_of(peer), source="params"))
        return {"run_id": started.run_id, "pipeline": started.pipeline.name, "params": started.params,
                "content_hash": started.pipeline.content_hash, "file": started.pipeline.source_file}

    async def runs_list(self, args: dict[str, Any], peer: "Peer") -> dict[str, Any]:
        limit = _arg(args, "limit", int, required=False, default=20)
        if not 1 <= limit <= 10_000:
            raise UsageError("is out of range", field="args.limit", value=limit, expected="1..10000")
        state = _arg(args, "state", str, required=False)
        if state is not None and state not in {s.value for s in RunState}:
            raise UsageError("is not a run state", field="args.state", value=state,
                             expected=", ".join(s.value for s in RunState))
        runs = self.d.store.list_runs(limit=limit, pipeline=_arg(args, "pipeline", str, required=False), state=state)
        return {"runs": runs}

    async def runs_show(self, args: dict[str, Any], peer: "Peer") -> dict[str, Any]:
        from .rundoc import run_document

        return run_document(self.d.store, _arg(args, "run_id", int))

    async def logs(self, args: dict[str, Any], peer: "Peer") -> AsyncIterator[dict[str, Any]]:
        run_id = _arg(args, "run_id", int)
        task = _arg(args, "task", str)
        number = _arg(args, "attempt", int, required=False)
        follow = _arg(args, "follow", bool, required=False, default=False)
        store = self.d.store
        store.get_run(run_id)
        attempts = store.attempts_of(run_id, task)
        if not attempts:
            raise NotFoundError(f"run {run_id} has no attempts of task {task!r}", value=task)
        attempt = attempts[-1] if number is None else next((a for a in attempts if a["number"] == number), None)
        if attempt is None:
            raise NotFoundError(f"task {task} has no attempt {number}", value=number)
        path = Path(attempt["log_path"])
        offset = 0
        while True:
            finished = not follow or attempt["id"] not in self.d.engine.live
            try:
                with open(path, "rb") as f:
                    f.seek(offset)
                    while chunk := f.read(LOG_CHUNK):
                        offset += len(chunk)
                        yield {"data": chunk.decode("utf-8", errors="replace")}
            except FileNotFoundError:
                if finished:
                    raise NotFoundError("the log file does not exist", file=str(path)) from None
            if finished:
                return
            # Following a live log: look again shortly (only while a client follows).
            await asyncio.sleep(FOLLOW_POLL_S)

    async def cancel(self, args: dict[str, Any], peer: "Peer") -> dict[str, Any]:
        run_id = _arg(args, "run_id", int)
        reason = _arg(args, "reason", str, required=False, default=f"cancelled by {peer.user}")
        self.d.engine.cancel(run_id, actor=actor_of(peer), reason=reason)
        return {"run_id": run_id, "cancel_requested": True}

    async def retry(self, args: dict[str, Any], peer: "Peer") -> dict[str, Any]:
        run_id = _arg(args, "run_id", int)
        tasks = self.d.requests.resume(run_id, actor=actor_of(peer))
        return {"run_id": run_id, "tasks": tasks}

    async def events(self, args: dict[str, Any], peer: "Peer") -> AsyncIterator[dict[str, Any]]:
        run_id = _arg(args, "run_id", int, required=False)
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=EVENT_QUEUE)
        self.subscribers.add(queue)
        try:
            yield {"kind": "subscribed", "run_id": run_id, "ts": time.time()}
            if run_id is not None:
                # The run may already be over: say so, so a follower never waits forever.
                run = self.d.store.get_run(run_id)
                if RunState(run["state"]).finished and run_id not in self.d.engine.runs:
                    yield {"kind": "run", "run_id": run_id, "state": run["state"], "reason": run["reason"], "ts": time.time()}
            while True:
                event = await queue.get()
                if run_id is None or event.get("run_id") in (None, run_id) and event.get("kind") != "pipeline":
                    yield event
        finally:
            self.subscribers.discard(queue)

    async def reload(self, args: dict[str, Any], peer: "Peer") -> dict[str, Any]:
        return await self.d.reload(actor=actor_of(peer))

    async def inputs_list(self, args: dict[str, Any], peer: "Peer") -> dict[str, Any]:
        import json

        limit = _arg(args, "limit", int, required=False, default=100)
        if not 1 <= limit <= 1_000_000:
            raise UsageError("is out of range", field="args.limit", value=limit, expected="1..1000000")
        store = self.d.store
        inputs = store.list_inputs(pipeline=_arg(args, "pipeline", str, required=False),
                                   state=_arg(args, "state", str, required=False), limit=limit)
        run_states: dict[int, str] = {}
        for r in inputs:
            if r["run_id"] is not None and r["run_id"] not in run_states:
                run_states[r["run_id"]] = store.get_run(r["run_id"])["state"]
            r["run_state"] = run_states.get(r["run_id"]) if r["run_id"] is not None else None
        quarantined = []
        qdir = self.d.config.state_dir / "quarantine"
        if qdir.is_dir():
            for f in sorted(qdir.glob("*.reason.json")):
                try:
                    doc = json.loads(f.read_text())
                except (OSError, ValueError):
                    continue
                doc["path"] = str(f.with_name(f.name[: -len(".reason.json")]))
                quarantined.append(doc)
        trig = self.d.triggers
        return {"inputs": inputs, "counts": store.input_counts(), "quarantine": quarantined,
                "watches": [{"folder": str(w.folder), "pipeline": w.pipeline, "patterns": list(w.patterns),
                             "mode": w.mode, "param": w.param} for w in (trig.watches if trig else [])],
                "watch_errors": [e.render() for e in (trig.watch_errors if trig else [])]}

    async def inputs_requeue(self, args: dict[str, Any], peer: "Peer") -> dict[str, Any]:
        from .triggers.dropfolder import ClaimError, requeue

        raw = _arg(args, "file", str)
        qdir = (self.d.config.state_dir / "quarantine").resolve()
        path = Path(os.path.abspath(raw))
        if path.parent.resolve() != qdir:
            raise UsageError("is not a file in the quarantine folder", field="args.file", value=raw,
                             expected=f"a file directly inside {qdir}")
        store = self.d.store
        rec = next((r for r in store.list_inputs(state="quarantined", limit=1_000_000)
                    if r["inbox_path"] and Path(r["inbox_path"]).resolve() == path.resolve()), None)
        folder = None
        if rec is not None:
            folder = rec["watch_folder"]
        else:
            import json

            try:
                folder = json.loads(path.with_name(path.name + ".reason.json").read_text()).get("watch_folder")
            except (OSError, ValueError):
                folder = None
        if not folder:
            raise NotFoundError("no input record names this quarantined file, so its drop folder is unknown",
                                value=raw, hint="move it into the drop folder by hand")
        try:
            dest = requeue(path, folder)
        except ClaimError as exc:
            raise UsageError(exc.message if hasattr(exc, "message") else str(exc), field="args.file", value=raw) from None
        if rec is not None:
            store.record_input_state(rec["id"], "requeued", reason=f"requeued to {dest} by {peer.user}")
        store.add_event("input_requeued", f"{path.name} requeued to {dest}", actor=actor_of(peer),
                        data={"file": str(path), "dest": str(dest), "input_id": rec["id"] if rec else None})
        return {"file": str(path), "requeued_to": str(dest), "input_id": rec["id"] if rec else None}

    async def resources(self, args: dict[str, Any], peer: "Peer") -> dict[str, Any]:
        """See :meth:`edgeorch.engine.engine.Engine.resources_report` (``queue`` lists waiting tasks with reasons)."""
        return self.d.engine.resources_report()
