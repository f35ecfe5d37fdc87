"""A pipeline as JSON: the one shape ``edgeorch pipelines [show] --json`` prints, daemon or not.

The daemon's ``pipelines.list`` / ``pipelines.show`` ops and the CLI's
offline path both build their documents here, so the two agree key for key
(``tests/integration/cli/test_cli_json_shapes.py``). Pure: what only the
caller knows (pauses, next fires, what this machine can serve) comes in as
arguments.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from ..errors import EdgeorchError
from ..model import Pipeline


def pipeline_summary(p: Pipeline, *, pauses: Mapping[str, Mapping[str, Any]] | None, next_fire: str | None,
                     schedule: str | None, refusals: Iterable[tuple[str, str]],
                     stale: EdgeorchError | None = None, next_start: str | None = None) -> dict[str, Any]:
    """One item of the pipelines list.

    ``pauses``: the store's paused pipelines (name -> its pause record with
    ``reason``), or None when they cannot be read (no state file yet):
    ``paused`` is then None, not False. ``next_fire``: ISO 8601, None when
    unscheduled or paused; ``next_start``: when its run starts (the fire time plus the schedule's jitter).
    ``refusals``: ``(task, why)`` for each task this
    machine can never serve (the front door refuses the pipeline's runs). ``stale``: the error of its file
    when the daemon serves its last valid version (the file has errors now).
    """
    pause = pauses.get(p.name) if pauses is not None else None
    return {"name": p.name, "description": p.description, "tasks": len(p.tasks), "file": p.source_file,
            "next_fire": next_fire, "next_start": next_start, "schedule": schedule, "content_hash": p.content_hash,
            "paused": None if pauses is None else pause is not None,
            "paused_reason": (pause or {}).get("reason"),
            "params": {k: {"type": v.type, "default": v.default} for k, v in p.params.items()},
            "warnings": [f"task {task} {why}: its runs will be refused" for task, why in refusals]
            + ([stale_warning(p, stale)] if stale is not None else [])}


def stale_warning(p: Pipeline, error: EdgeorchError) -> str:
    """What to say of pipeline ``p`` served from its last valid version while its file has ``error``."""
    where = f"{error.field}: " if error.field else ""
    return (f"its file has errors ({where}{error.message}; `edgeorch validate` lists them): runs start from its "
            f"last valid version (content hash {p.content_hash[:12]}) until the file is fixed")


def pipeline_document(p: Pipeline) -> dict[str, Any]:
    """One pipeline's definition (``pipelines show``): params, tasks with needs, retries, resources, container
    (image, runtime, pull; None on the host), and its source."""
    return {"name": p.name, "description": p.description, "file": p.source_file, "content_hash": p.content_hash,
            "priority": p.priority, "order": list(p.order), "source": p.source_text,
            "params": {k: {"type": v.type, "default": v.default, "help": v.help} for k, v in p.params.items()},
            "tasks": {n: {"needs": list(t.needs), "retries": t.retries, "timeout": t.timeout, "cache": t.cache,
                          "outputs": list(t.outputs), "kind": t.kind, "call": t.call,
                          "command": t.command if isinstance(t.command, str) else list(t.command or []),
                          "container": None if t.container is None else {
                              "image": t.container.image, "runtime": t.container.runtime, "pull": t.container.pull},
                          "resources": {k: v for k, v in (("cpus", t.cpus), ("memory", t.memory), ("gpus", t.gpus),
                                                          ("gpu_memory", t.gpu_memory), ("gpu_model", t.gpu_model),
                                                          ("pool", t.pool)) if v}}
                      for n, t in p.tasks.items()}}
