"""One call for a pipeline's trigger keys: its schedule and its ``watch`` tables.

``edgeorch validate`` and the registry call :func:`check_pipeline_triggers`
with the parsed TOML of a pipeline file; the errors join the pipeline's own.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import EdgeorchError, PipelineError
from . import SCHEDULE_KEYS

if TYPE_CHECKING:  # pragma: no cover
    from .drop.spec import WatchSpec
    from .schedule import ScheduleSpec


def check_pipeline_triggers(data: dict[str, Any], file: str, *, pipeline: str | None = None,
                            base: Path | None = None) -> tuple[ScheduleSpec | None, list[WatchSpec],
                                                               list[EdgeorchError]]:
    """Validate ``schedule``/``every``/... and ``watch`` of one pipeline file; collect every problem.

    ``watch`` may be one table (``[watch]``) or an array (``[[watch]]``); its
    ``pipeline`` key is optional and must name this pipeline. ``base``
    resolves relative folders (default: the pipeline file's folder). Errors
    are :class:`PipelineError` with fields ``schedule``, ``watch.folder``,
    ``watch[1].mode``, ...

    Also the watch checks that need no daemon config: one watch per folder within the file,
    and a folder path that exists but is not a folder. A folder that does not exist yet is no
    error (the daemon watches it when it appears; it logs a warning meanwhile). The checks
    that need the config (overlap with the inbox/state dir, same filesystem as the inbox,
    the same folder watched by another file) are the daemon's (``DropFolders``).
    """
    name = pipeline or (data.get("name") if isinstance(data.get("name"), str) else None) or Path(file).stem
    base = base or Path(file).resolve().parent
    spec: ScheduleSpec | None = None
    errors: list[EdgeorchError] = []
    if any(key in data for key in SCHEDULE_KEYS):  # none: nothing to check, and no zoneinfo or cron loaded
        from .schedule import check_schedule

        spec, errors = check_schedule(data, file, pipeline=name)
    watches: list[WatchSpec] = []
    raw = data.get("watch")
    if raw is None:
        return spec, watches, errors
    # Here: the drop-folder package loads only for a pipeline that has a watch (issue 11: start-up).
    from .drop.spec import check_watch, check_watch_set, folder_problem, watch_error

    tables = [raw] if isinstance(raw, dict) else raw
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        errors.append(PipelineError("must be a table or an array of tables", file=file, field="watch",
                                    value=raw, expected="[watch] or [[watch]] tables"))
        return spec, watches, errors
    for i, table in enumerate(tables):
        prefix = "watch" if isinstance(raw, dict) else f"watch[{i}]"
        w, errs = check_watch(table, file, prefix, base=base, pipeline=name, error_cls=PipelineError)
        errors.extend(errs)
        if w is not None:
            watches.append(w)
    errors.extend(check_watch_set(watches, file=file))
    for w in watches:
        problem = folder_problem(w.folder)
        if problem:
            errors.append(watch_error(w, problem, field="watch.folder", value=str(w.folder),
                                      expected="a folder (or a path where one will be created)"))
    return spec, watches, errors
