"""Which pipeline a model belongs to, and the runs that may not register its versions (the front door's rule).

A model belongs to the pipeline that registered its first version (:meth:`~edgeorch.store.models.Models.owner`):
that pipeline's ``[models.NAME]`` is what judges every version (gates, promotion, strategy, deployment). Another
pipeline, or a run of a file sent by a client (``edgeorch run FILE.toml``), could otherwise register a version
with a ``[models.NAME]`` of its own (no gates, ``strategy = "direct"``) and put it in production past the owner's
gates, canary and health check. So a run is refused, before anything is recorded, when

- one of its tasks registers (``model = { name = ... }``) or its file declares (``[models.NAME]``) a model
  that belongs to another pipeline; or
- it is a client's file (not the pipelines folder's copy of that name) whose ``[models.NAME]`` differs from
  what the pipelines folder's file of the owner declares: a one-off run may register versions of its own
  pipeline's model, judged as that pipeline's file says, never under gates of its own.

Pure but for the store's one lookup per model; :class:`~edgeorch.engine.requests.RunRequests` calls it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import ConflictError

if TYPE_CHECKING:  # pragma: no cover
    from ..engine.requests import ModelOwners
    from ..model import Pipeline


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


def ownership_problem(models: "ModelOwners", pipeline: "Pipeline", folder_copy: "Pipeline | None") -> ConflictError | None:
    """Why a run of ``pipeline`` may not start (see the module docstring), or None.

    ``folder_copy``: the pipelines folder's pipeline of the same name when ``pipeline`` is a client's file (None:
    ``pipeline`` is the folder's own, or the folder has none of that name: nothing to compare with).
    """
    for name, how in models_of(pipeline).items():
        owner = models.owner(name)
        where = pipeline.source_file or pipeline.name
        if owner is not None and owner[0] != pipeline.name:
            return ConflictError(
                f"pipeline {pipeline.name} may not register versions of model {name}: {how} it, but model {name} "
                f"belongs to pipeline {owner[0]} (which registered its version {owner[1]}), whose [models.{name}] "
                "judges every version", file=where,
                hint=f"give the model another name in {where}, or run pipeline {owner[0]}")
        if folder_copy is None or folder_copy is pipeline:
            continue
        mine, theirs = pipeline.models.get(name), folder_copy.models.get(name)
        if (mine.to_dict() if mine else None) != (theirs.to_dict() if theirs else None):
            return ConflictError(
                f"this file's [models.{name}] differs from the one in {folder_copy.source_file}, which judges the "
                f"versions of model {name}: a run of a file from elsewhere may register versions of its "
                "pipeline's model only under that file's gates, promotion and deployment", file=where,
                hint=f"change [models.{name}] in {folder_copy.source_file} (the daemon reloads it), or give the "
                     "model another name here")
    return None
