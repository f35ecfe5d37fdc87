"""The watches a daemon would start, checked: one function for the daemon and ``edgeorch validate``.

Apart from :mod:`.spec` (which the pipeline parser imports) because it reads the loaded pipelines.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ...errors import EdgeorchError
from ...pipelines import pipeline_triggers
from ...pipelines.load import not_loaded_error
from .spec import WatchSpec, check_same_filesystem, check_watch_set, check_watches, folder_problem, watch_error
from .trust import UNTRUSTED_HINT, untrusted_path


def configured_watches(config: Any, pipelines: Mapping[str, Any],
                       load_errors: Iterable[EdgeorchError] = ()) -> tuple[list[WatchSpec], list[EdgeorchError]]:
    """Every watch the daemon would start from ``config``'s ``[[watch]]`` tables and ``pipelines``' own
    triggers, and what is wrong with them that needs no file system: each table's fields, then the checks
    across all (:func:`~.spec.check_watch_set`; ``load_errors``: the pipelines' load errors, to say that a
    watch's pipeline is not loaded because its file is broken). The daemon (at start and reload) and
    ``edgeorch validate`` both call this: one set of rules. The folders themselves (there, a folder, on the
    inbox's file system) are the daemon's to check when it starts each watch."""
    src = str(config.source or "<embedded defaults>")
    specs, errors = check_watches(config.watches, src, base=config.source.parent if config.source else None)
    for p in pipelines.values():
        specs.extend(pipeline_triggers(p)[1])
    errors.extend(check_watch_set(specs, inbox_dir=config.inbox_dir, state_dir=config.state_dir,
                                  pipelines=pipelines, file=src,
                                  not_loaded=functools.partial(not_loaded_error, errors=list(load_errors)),
                                  params={n: p.params for n, p in pipelines.items()}))
    return specs, errors


def startable_watches(config: Any, pipelines: Mapping[str, Any], load_errors: Iterable[EdgeorchError] = (), *,
                      daemon_uid: int | None = None) -> tuple[list[WatchSpec], list[EdgeorchError]]:
    """:func:`configured_watches`, then what the daemon checks of each watched folder before it starts watching it
    (one rule for the daemon and ``edgeorch validate``, which said "ok" of a watch the daemon refused): a path that
    is no folder, a path another user could change (:func:`~.trust.untrusted_path`), a folder on another file
    system than the inbox. Returns the watches that start (a folder once; one that does not exist yet included:
    watched when it appears) and every error, each naming its watch (``watch``) and file. ``daemon_uid``: the
    daemon's user, whose folders are trusted (None: this process's; ``validate`` run by another user passes the
    state folder's owner)."""
    src = str(config.source or "<embedded defaults>")
    specs, errors = configured_watches(config, pipelines, load_errors)
    bad = {Path(str(e.value)) for e in errors if getattr(e, "field", "") == "watch.folder" and e.value}
    # A watch an error names is not started (one whose pipeline has no param for the path was said "not
    # watched", yet took files and quarantined each: "has no parameter 'input'").
    refused = {getattr(e, "watch", None) for e in errors} - {None}
    out: list[WatchSpec] = []
    seen: set[Path] = set()
    for s in specs:
        if s.folder in seen or s.folder in bad or s.pipeline not in pipelines or (s.folder, s.pipeline) in refused:
            continue
        problem = folder_problem(s.folder)
        if problem:
            errors.append(watch_error(s, problem, config_file=src, field="watch.folder", value=str(s.folder),
                                      expected="a folder (or a path where one will be created)"))
            continue
        untrusted = untrusted_path(s.folder, euid=daemon_uid)
        if untrusted:
            errors.append(watch_error(s, untrusted, config_file=src, field="watch.folder", value=str(s.folder),
                                      expected="a folder whose path only root and the daemon's user can change",
                                      hint=UNTRUSTED_HINT))
            continue
        try:
            check_same_filesystem(s.folder, config.inbox_dir)
        except EdgeorchError as exc:
            exc.file = exc.file or s.source or src  # reported against the file that declares the watch
            errors.append(exc)
            continue
        seen.add(s.folder)
        out.append(s)
    return out, errors
