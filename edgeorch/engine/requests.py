"""The one front door for runs: every way a run starts goes through :class:`RunRequests`.

Callers: ``edgeorch run`` without a daemon (the CLI), the ``trigger`` op
(``daemon/ops/runs.py``), schedule fires, drop-folder inputs and batch windows
(``triggers/service.py``), and later monitoring responses. None of them checks
anything itself; :meth:`RunRequests.start` owns the rules, in this order, and
records nothing when one of them refuses (each refusal is an
:class:`~edgeorch.errors.EdgeorchError` the caller reports as it sees fit):

1. **lookup**: a pipeline name is looked up with the ``lookup`` callable the
   owner supplies (the daemon's registry, or the one file the CLI validated);
   an ad-hoc :class:`~edgeorch.model.Pipeline` (a file sent by a client) is
   used as given;
2. **paused**: a paused pipeline is refused (:class:`ConflictError`, exit 5),
   whoever asks: the pause is stored in the state file, so the CLI without a
   daemon sees it too;
3. **shutting down**: an engine that no longer accepts work refuses
   (:class:`ConflictError`);
4. **params**: the raw params are resolved against the pipeline's
   declarations (:func:`~edgeorch.pipelines.resolve_params`, UsageError);
5. **resources**: a task this machine can never serve is refused
   (:class:`~edgeorch.errors.UnsatisfiableError`), checked once per
   pipeline version (the machine's inventory is fixed for an engine's life);
   **models**: a run that would register versions of another pipeline's model,
   or a client's file whose ``[models.NAME]`` is not its pipeline file's, is
   refused (:class:`ConflictError`, :mod:`edgeorch.models.owners`);
6. **hooks** (``before``): each may raise to refuse (cooldown, quotas);
7. **submission**: :meth:`Engine.submit` in one transaction with the caller's
   ``within`` (a trigger's watermark or input state commit with the run);
8. **hooks** (``after``): told of the started run (audit, metrics).

:meth:`RunRequests.resume` (``edgeorch retry``) applies rules 2 and 3 too: a
paused pipeline's runs are not resumed either. It is a coroutine: the engine
re-hashes the recorded outputs off the loop before it decides what to rerun.
Its ``before_resume`` hooks run once the engine has decided that the run
resumes, just before that is recorded: the owner brings back what the rerun
tasks need (the daemon and the CLI register the drop folders' restore of
quarantined inputs; the engine knows nothing of drop folders). A hook may raise
to refuse: nothing is recorded then.
"""

from __future__ import annotations

from dataclasses import field
from typing import TYPE_CHECKING, Any, Callable, Mapping, Protocol

from ..errors import ConflictError, EdgeorchError
from ..model import Pipeline
from ..pipelines import resolve_params
from ..records import frozen

if TYPE_CHECKING:  # pragma: no cover
    from ..models.owners import ModelOwners


class PausedPipelines(Protocol):
    """``store.pipelines``: which pipelines are paused, and the file a run was started from (``retry --current``)."""

    def paused(self) -> dict[str, dict[str, Any]]: ...

    def file_of_run(self, run: Mapping[str, Any]) -> str: ...


class RunRows(Protocol):
    """``store.runs``: a run's row (its pipeline, for resume)."""

    def get(self, run_id: int) -> dict[str, Any]: ...


class StoredRuns(Protocol):
    """The part of the store the front door reads: pauses, a run's pipeline (for resume), models' owners."""

    @property
    def pipelines(self) -> PausedPipelines: ...  # read-only: the front door never sets them

    @property
    def runs(self) -> RunRows: ...

    @property
    def models(self) -> ModelOwners: ...


class Submitter(Protocol):
    """What the front door needs of an engine (:class:`edgeorch.engine.engine.Engine` is one).

    Named here, not imported: the engine's module imports the pipelines, whose
    parser imports the triggers' checks, and the triggers import this one, so a
    type-level import of the engine would close a cycle.
    """

    accepting: bool

    @property
    def store(self) -> StoredRuns: ...  # read-only: the front door never sets it

    @property
    def config(self) -> Any: ...  # its pipelines folder: the files `retry --current` reads again without a check

    def check_resources(self, pipeline: Pipeline) -> None: ...

    def submit(self, pipeline: Pipeline, params: dict[str, Any], *, trigger: str = ..., actor: str | None = ...,
               check_resources: bool = ..., within: Callable[[int], None] | None = ...,
               env: dict[str, str] | None = ..., no_cache: bool = ...) -> int: ...

    async def resume(self, run_id: int, *, actor: str | None = ...,
                     before: Callable[[int], None] | None = ..., pipeline: Pipeline | None = ...) -> list[str]: ...

    def stored_pipeline(self, version_id: int) -> Pipeline: ...  # a run's recorded definition (its retry's)


Lookup = Callable[[str], Pipeline]
"""Returns the pipeline with a name, or raises (NotFoundError, or the broken file's error)."""


@frozen
class RunRequest:
    """What a caller asks for: a pipeline (name or ad-hoc), raw params, and who asks.

    ``source`` names where the params came from, for error messages
    (``params``, ``schedule``, ``watch``, ``-p``). ``within(run_id)`` runs in
    the transaction that creates the run; ``env`` is recorded with the run.
    """

    pipeline: str | Pipeline
    params: Mapping[str, Any] = field(default_factory=dict)
    trigger: str = "manual"
    actor: str | None = None
    source: str = "params"
    within: Callable[[int], None] | None = None
    env: Mapping[str, str] | None = None
    no_cache: bool = False
    """Use no recorded result: every task of the run runs (``edgeorch run --no-cache``)."""


@frozen
class StartedRun:
    """A run the front door created."""

    run_id: int
    pipeline: Pipeline
    params: dict[str, Any]
    request: RunRequest


BeforeHook = Callable[[RunRequest, Pipeline, dict[str, Any]], None]
AfterHook = Callable[[StartedRun], None]
BeforeResumeHook = Callable[[int], object]
"""Called with the run id when a retry was decided, before it is recorded; raises to refuse it."""


class RunRequests:
    """The front door of one engine. See the module docstring for the rules and their order."""

    def __init__(self, engine: Submitter, lookup: Lookup) -> None:
        """``engine`` submits and resumes runs and holds the store (pauses); ``lookup`` finds a pipeline by name."""
        self.engine = engine
        self.lookup = lookup
        self.before: list[BeforeHook] = []
        self.after: list[AfterHook] = []
        self.before_resume: list[BeforeResumeHook] = []
        # Satisfiability depends only on the pipeline's tasks and this machine's fixed inventory.
        self._satisfiable: dict[tuple[str, str], None] = {}

    def pipeline(self, ref: str | Pipeline) -> Pipeline:
        """The pipeline a request names (lookup for a name; an ad-hoc pipeline as given)."""
        return ref if isinstance(ref, Pipeline) else self.lookup(ref)

    def admit(self, ref: str | Pipeline) -> Pipeline:
        """Rules 1, 2, 3 and 5 without params or submission: raise if no run of ``ref`` may start now."""
        pipeline = self.pipeline(ref)
        self._check_paused(pipeline.name)
        if not self.engine.accepting:
            raise ConflictError("the daemon is shutting down and accepts no new runs")
        self._check_resources(pipeline)
        self._check_models(ref, pipeline)
        return pipeline

    def _check_models(self, ref: str | Pipeline, pipeline: Pipeline) -> None:
        """Rule 5, models (:func:`~edgeorch.models.owners.ownership_problem`); nothing to read for a pipeline that
        names no model. ``ref`` a name: the pipelines folder's own, as loaded now; a :class:`Pipeline`: any other
        definition (a client's file, a file run in this process, a retried run's), compared with the folder's
        pipeline of that name (``lookup``)."""
        if not pipeline.models and not any(t.model is not None for t in pipeline.tasks.values()):
            return
        from ..models.owners import ownership_problem

        authoritative = not isinstance(ref, Pipeline)
        folder_copy = None
        if not authoritative:
            try:
                folder_copy = self.lookup(pipeline.name)
            except EdgeorchError:
                folder_copy = None
        problem = ownership_problem(self.engine.store.models, pipeline, folder_copy, authoritative=authoritative)
        if problem is not None:
            raise problem

    def start(self, request: RunRequest) -> StartedRun:
        """Apply every rule, then submit; returns the started run or raises (nothing recorded)."""
        pipeline = self.admit(request.pipeline)
        params = resolve_params(pipeline, dict(request.params), source=request.source)
        for hook in self.before:
            hook(request, pipeline, params)
        run_id = self.engine.submit(pipeline, params, trigger=request.trigger, actor=request.actor,
                                    check_resources=False, within=request.within,
                                    env=dict(request.env) if request.env is not None else None,
                                    no_cache=request.no_cache)
        started = StartedRun(run_id, pipeline, params, request)
        for after in self.after:
            after(started)
        return started

    async def resume(self, run_id: int, *, actor: str | None = None, current: bool = False,
                     requester: int | None = None) -> list[str]:
        """Resume a finished run (``edgeorch retry``) under rules 2 and 3; returns the tasks to run again.

        The ``before_resume`` hooks run (in order) once the engine has decided to
        resume the run, before anything is recorded; see the module docstring.
        ``current``: its tasks run again under the run's own pipeline file as it is now, read again here
        (:func:`~edgeorch.pipelines.load.load_again`), not the run's recorded definition (``edgeorch retry
        --current``: a longer timeout, a fixed command); ``requester``: the uid of who asks (whose files outside the
        pipelines folder may be read again, with the daemon's user's and root's).
        """
        run = self.engine.store.runs.get(run_id)
        self._check_paused(run["pipeline"])
        if not self.engine.accepting:
            raise ConflictError("the daemon is shutting down and accepts no new runs")
        pipeline = None
        if current:
            import asyncio

            from ..pipelines.load import load_again

            file = self.engine.store.pipelines.file_of_run(run)
            pipeline = await asyncio.to_thread(load_again, file, run["pipeline"], run_id,
                                               own_folder=self.engine.config.pipelines_dir, requester=requester)
        definition = pipeline if pipeline is not None else self.engine.stored_pipeline(run["pipeline_version_id"])
        self._check_models(definition, definition)  # a retried run registers models as any other run does
        return await self.engine.resume(run_id, actor=actor, before=self._before_resume, pipeline=pipeline)

    def _before_resume(self, run_id: int) -> None:
        for hook in self.before_resume:
            hook(run_id)

    def paused_reason(self, name: str) -> str | None:
        """``pipeline NAME is paused (its reason)`` while pipeline ``name`` is paused, else None (rule 2's one test)."""
        paused = self.engine.store.pipelines.paused()
        if name not in paused:
            return None
        why = paused[name].get("reason")
        if why:  # whoever paused it wrote this: one line, no escape codes, wherever it is shown
            from ..textui import printable

            why = printable(why)
        return f"pipeline {name} is paused" + (f" ({why})" if why else "")

    def _check_paused(self, name: str) -> None:
        why = self.paused_reason(name)
        if why is not None:
            raise ConflictError(why, hint=f"resume it with `edgeorch pipelines resume {name}`")

    def _check_resources(self, pipeline: Pipeline) -> None:
        key = (pipeline.name, pipeline.content_hash)
        if key in self._satisfiable:
            return
        self.engine.check_resources(pipeline)  # raises UnsatisfiableError; refusals are not cached
        if len(self._satisfiable) >= 4096:  # bounded: old versions drop out
            self._satisfiable.pop(next(iter(self._satisfiable)))
        self._satisfiable[key] = None
