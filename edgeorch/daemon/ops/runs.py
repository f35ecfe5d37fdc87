"""``trigger``, ``runs.*``, ``logs``, ``cancel``, ``retry``: starting runs through the front door and following them."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any, AsyncIterator, Awaitable, Callable

from ...engine.requests import RunRequest
from ...errors import EdgeorchError, NotFoundError, PipelineError, UsageError
from ...model import Pipeline, TaskState, label_problem
from ...pipelines import MAX_PIPELINE_BYTES, load_pipeline_bytes
from ...pipelines.document import stale_warning
from ...rundoc import log_attempt, run_document, runs_page, with_hashing
from .base import OpSpec, actor_of, arg

if TYPE_CHECKING:  # pragma: no cover
    from ...control import Peer
    from ...engine.engine import Engine
    from ...engine.requests import RunRequests
    from ...store import Store

LOG_CHUNK = 64 * 1024
FOLLOW_POLL_S = 0.2


def adhoc_pipeline(source: str, file: str) -> Pipeline:
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


class RunOps:
    """Runs: ``requests`` (the front door) starts and resumes them; ``store`` lists and shows them;
    ``engine`` cancels them and says which attempts are live (a followed log ends with its attempt)."""

    OPS = (
        OpSpec("trigger", "trigger", "act", "start a run with params",
               args=("pipeline", "params", "trigger", "source", "file", "no_cache")),
        OpSpec("runs.list", "runs_list", "read", "recent runs, with filters",
               args=("limit", "pipeline", "state")),
        OpSpec("runs.show", "runs_show", "read", "one run with tasks, attempts, results", args=("run_id",)),
        OpSpec("logs", "logs", "read", "an attempt's log; follow=true streams until it ends", streaming=True,
               args=("run_id", "task", "attempt", "follow")),
        OpSpec("cancel", "cancel", "act", "cancel an active run", args=("run_id", "reason")),
        OpSpec("retry", "retry", "act", "resume a finished run", args=("run_id", "current")),
    )

    def __init__(self, *, requests: "RunRequests", store: "Store", engine: "Engine",
                 stale: Callable[[str], EdgeorchError | None] = lambda name: None,
                 reload_pending: Callable[[], Awaitable[bool]] | None = None) -> None:
        self.requests = requests
        self.reload_pending = reload_pending  # runs a reload a file change has asked for; True if there was one
        self.store = store
        self.engine = engine
        self.stale = stale  # the registry's: a pipeline served from its last valid version, its file's error

    async def trigger(self, args: dict[str, Any], peer: "Peer") -> dict[str, Any]:
        """Start a run through the front door (:mod:`edgeorch.engine.requests`).

        ``pipeline`` names a loaded pipeline; or ``source`` (a pipeline file's
        text) with ``file`` (its path, for messages and the default name) runs an
        ad-hoc pipeline file, recorded with the content hash of that text. ``no_cache``: the run uses no recorded
        result (every task runs; its result is recorded).
        """
        raw = arg(args, "params", dict, required=False, default={})
        label = args.get("trigger") or "socket"
        problem = label_problem(label)
        if problem is not None:
            raise UsageError(problem, field="args.trigger", value=label,
                             expected="a label of your own, such as 'cli', 'socket' or 'backfill'")
        source = arg(args, "source", str, required=False)
        ref: str | Pipeline
        if source is not None:
            file = arg(args, "file", str)
            ref = await asyncio.to_thread(adhoc_pipeline, source, file)
        else:
            ref = arg(args, "pipeline", str)
        no_cache = arg(args, "no_cache", bool, required=False, default=False)
        request = RunRequest(ref, raw, trigger=label, actor=actor_of(peer), source="params", no_cache=no_cache)
        try:
            started = self.requests.start(request)
        except NotFoundError:
            # A file saved a moment ago (`validate new.toml && run new`): its reload was still waiting for the
            # events to settle, and the run said "no pipeline named". That reload first, then once more.
            if isinstance(ref, Pipeline) or self.reload_pending is None or not await self.reload_pending():
                raise
            started = self.requests.start(request)
        stale = self.stale(started.pipeline.name) if source is None else None
        return {"run_id": started.run_id, "pipeline": started.pipeline.name, "params": started.params,
                "content_hash": started.pipeline.content_hash, "file": started.pipeline.source_file,
                "warnings": [stale_warning(started.pipeline, stale)] if stale is not None else []}

    async def runs_list(self, args: dict[str, Any], peer: "Peer") -> dict[str, Any]:
        return {"runs": runs_page(self.store, limit=arg(args, "limit", int, required=False, default=20),
                                  pipeline=arg(args, "pipeline", str, required=False),
                                  state=arg(args, "state", str, required=False))}

    async def runs_show(self, args: dict[str, Any], peer: "Peer") -> dict[str, Any]:
        run_id = arg(args, "run_id", int)
        return with_hashing(run_document(self.store, run_id), self.engine.hashing(run_id))

    async def logs(self, args: dict[str, Any], peer: "Peer") -> AsyncIterator[dict[str, Any]]:
        """An attempt's log. ``follow`` without ``attempt``: the task's attempts one after another while its run is
        active (a task that has not started yet is waited for, a retry is followed), each headed by a
        ``==> ... <==`` line, as ``tail -f`` heads each file; the stream ends when the task has finished. Those
        lines are edgeorch's, not the task's: their items carry ``"note": true`` (the CLI writes them to stderr when
        stdout is a pipe or ``--raw``: a script gets the task's bytes alone)."""
        run_id = arg(args, "run_id", int)
        task = arg(args, "task", str)
        number = arg(args, "attempt", int, required=False)
        follow = arg(args, "follow", bool, required=False, default=False)
        chained = follow and number is None
        attempt = None
        while attempt is None:
            try:
                attempt = log_attempt(self.store, run_id, task, number)
            except NotFoundError:
                waiting = self._waiting_state(run_id, task) if chained else None
                if waiting is None:
                    raise
                yield {"data": f"==> {task} of run {run_id} has not started yet ({waiting}): waiting <==\n",
                       "note": True}
                attempt = await self._next_attempt(run_id, task, 0)
                if attempt is None:  # it ended without running (a cascade, a cancel): say so as before
                    log_attempt(self.store, run_id, task, number)
                    return
        while True:
            async for item in self._log_of(attempt, follow):
                yield item
            if not chained:
                return
            following = await self._next_attempt(run_id, task, attempt["number"])
            if following is None:
                return
            attempt = following
            yield {"data": f"\n==> attempt {attempt['number']} of {task} (run {run_id}) <==\n", "note": True}

    def _waiting_state(self, run_id: int, task: str) -> str | None:
        """The state of ``task`` while its active run may still start an attempt of it (pending, ready, waiting
        for a retry), else None."""
        ctx = self.engine.runs.get(run_id)
        state = ctx.states.get(task) if ctx is not None else None
        return None if state is None or state.finished or state == TaskState.RUNNING else str(state)

    async def _next_attempt(self, run_id: int, task: str, after: int) -> dict[str, Any] | None:
        """The attempt of ``task`` numbered above ``after`` once it exists; None when the task finished (or its run
        ended) without one. Polled while a client follows."""
        while True:
            later = [a for a in self.store.attempts.of_run(run_id, task) if a["number"] > after]
            if later:
                return later[0]
            ctx = self.engine.runs.get(run_id)
            state = ctx.states.get(task) if ctx is not None else None
            if state is None or state.finished:
                return None
            await asyncio.sleep(FOLLOW_POLL_S)

    async def _log_of(self, attempt: dict[str, Any], follow: bool) -> AsyncIterator[dict[str, Any]]:
        """One attempt's log, from its start; with ``follow``, until the attempt has ended and its log is read."""
        path = Path(attempt["log_path"])
        offset = 0
        while True:
            finished = not follow or attempt["id"] not in self.engine.live
            try:
                # The file is open only while a chunk is read, never across a yield: a client that does not
                # read holds no descriptor of the daemon's (a reader's streams held thousands: EMFILE for the
                # socket's accepts and the drop folders' claims).
                while chunk := _read_chunk(path, offset):
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
        run_id = arg(args, "run_id", int)
        reason = arg(args, "reason", str, required=False, default=f"cancelled by {peer.user}")
        self.engine.cancel(run_id, actor=actor_of(peer), reason=reason)
        return {"run_id": run_id, "cancel_requested": True}

    async def retry(self, args: dict[str, Any], peer: "Peer") -> dict[str, Any]:
        """``current``: under the run's own pipeline file as it is now, read again (never the copy this daemon loaded
        before an edit its reload has not seen yet: :meth:`~edgeorch.engine.requests.RunRequests.resume`)."""
        run_id = arg(args, "run_id", int)
        current = arg(args, "current", bool, required=False, default=False)
        tasks = await self.requests.resume(run_id, actor=actor_of(peer), current=current, requester=peer.uid)
        return {"run_id": run_id, "tasks": tasks}


def _read_chunk(path: Path, offset: int) -> bytes:
    """Up to LOG_CHUNK bytes of ``path`` from ``offset`` (empty at its end); the file is closed on return."""
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(LOG_CHUNK)
