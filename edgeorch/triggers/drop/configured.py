"""The watches a daemon would start, checked: one function for the daemon and ``edgeorch validate``.

Apart from :mod:`.spec` (which the pipeline parser imports) because it reads the loaded pipelines.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import Any

from ...errors import EdgeorchError
from ...pipelines import pipeline_triggers
from ...pipelines.load import not_loaded_error
from .spec import WatchSpec, check_watch_set, check_watches


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
