"""Which pipeline a model belongs to, and the runs that may not register its versions (the front door's rule).

A model belongs to the pipeline that registered its first version (:meth:`~edgeorch.store.models.Models.owner`):
that pipeline's ``[models.NAME]`` is what judges every version (gates, promotion, strategy, deployment). Another
pipeline, or a run of a file sent by a client (``edgeorch run FILE.toml``), could otherwise register a version
with a ``[models.NAME]`` of its own (no gates, ``strategy = "direct"``) and put it in production past the owner's
gates, canary and health check. So a run is refused, before anything is recorded, when

- one of its tasks registers (``model = { name = ... }``) or its file declares (``[models.NAME]``) a model
  that belongs to another pipeline; or
- it is not the pipelines folder's file as loaded now (a client's file, a file run in this process, a retry of a
  recorded definition, ``retry --current`` of a file from elsewhere) and its ``[models.NAME]`` differs from the
  policy that judges the model: the folder's file of the owner, else the policy stored with the model. A
  one-off run may register versions of its own pipeline's model, judged as that policy says, never under gates
  of its own (found: a copy named like the owner while the owner's file was deleted, a retry of a failed run
  after the file's gates were tightened, a copy whose relative ``deploy.dir`` named a folder of its own).

Pure but for the store's one lookup per model; :class:`~edgeorch.engine.requests.RunRequests` calls it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from ..errors import ConflictError

if TYPE_CHECKING:  # pragma: no cover
    from ..model import Pipeline


class ModelOwners(Protocol):
    """``store.models`` as this rule reads it: the pipeline each model belongs to, and its stored policy."""

    def owner(self, name: str) -> tuple[str, int] | None: ...

    def model(self, name: str) -> dict[str, Any] | None: ...


def models_of(pipeline: "Pipeline") -> dict[str, str]:
    """Model name -> what in ``pipeline`` names it (``task T`` registering it, or its ``[models.NAME]``)."""
    out: dict[str, str] = {}
    for name in pipeline.order:
        decl = pipeline.tasks[name].model
        if decl is not None:
            out.setdefault(decl.name, f"its task {name} registers")
    for name in pipeline.models:
        out.setdefault(name, "it declares [models." + name + "] for")
    return out


def ownership_problem(models: "ModelOwners", pipeline: "Pipeline", folder_copy: "Pipeline | None", *,
                       authoritative: bool) -> ConflictError | None:
    """Why a run of ``pipeline`` may not start (see the module docstring), or None.

    ``authoritative``: ``pipeline`` is the pipelines folder's own, as loaded now (a run by name): its
    ``[models.NAME]`` is the model's policy. Any other run (a client's file, a file run in this process, a retry of
    a recorded definition, ``retry --current``) must bring the policy that judges the model: that of the folder's
    file of the owner (``folder_copy``) when there is one, else the one stored with the model (its last
    registration's), compared as registration resolves them (a relative ``deploy.dir`` from the file's folder:
    a copy run from elsewhere deployed to a folder of its own).
    """
    from .register import policy_of

    where = pipeline.source_file or pipeline.name
    for name, how in models_of(pipeline).items():
        owner = models.owner(name)
        if owner is None:
            continue
        if owner[0] != pipeline.name:
            return ConflictError(
                f"pipeline {pipeline.name} may not register versions of model {name}: {how} it, but model {name} "
                f"belongs to pipeline {owner[0]} (which registered its version {owner[1]}), whose [models.{name}] "
                "judges every version", file=where,
                hint=f"give the model another name in {where}, or run pipeline {owner[0]}")
        if authoritative:
            continue
        mine = policy_of(pipeline, name).to_dict()
        if folder_copy is not None:
            theirs: dict[str, Any] | None = policy_of(folder_copy, name).to_dict()
            judge = f"the one in {folder_copy.source_file}"
            fix = f"change [models.{name}] in {folder_copy.source_file} (the daemon reloads it)"
        else:
            theirs = (models.model(name) or {}).get("policy")
            judge = (f"the policy stored with model {name} at its last registration (the pipelines folder has no "
                     f"pipeline {owner[0]} to say another)")
            fix = f"put pipeline {owner[0]}'s file, with the [models.{name}] you want, in the pipelines folder"
        if theirs is None or mine == theirs:
            continue
        differ = ", ".join(sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k)))
        return ConflictError(
            f"this run's [models.{name}] differs from {judge} ({differ}): a run that is not the pipelines folder's "
            f"file as loaded now (a file from elsewhere, a retry of a recorded definition) registers versions of "
            f"model {name} only under the policy that judges it", file=where,
            hint=f"{fix}; a retry of an older definition: `edgeorch retry RUN --current`; or give the model another "
                 "name")
    return None
