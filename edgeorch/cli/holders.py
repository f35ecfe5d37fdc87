"""Which file holds each pipeline name, as the state file records it: the CLI's offline commands decide a name
two files declare as the daemon does (:func:`edgeorch.pipelines.load.settle_names`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..config import Config


def name_holders(cfg: Config) -> dict[str, tuple[str, str]]:
    """Which file a daemon last loaded each pipeline name from (the state file's record; empty without one, or
    when it cannot be read): who keeps a name two files declare, as the daemon decides it."""
    if not cfg.state_file.exists():
        return {}
    from ..store import Store

    try:
        store = Store(cfg.state_file, readonly=True)
    except Exception:  # noqa: BLE001 - a damaged or unreadable state file: file order decides, as without one
        return {}
    try:
        return store.pipelines.holders()
    except Exception:  # noqa: BLE001 - as above
        return {}
    finally:
        store.close()


def model_owner_problems(cfg: Config, pipelines: Mapping[str, Any]) -> list[Any]:
    """For each pipeline that registers a model another pipeline owns (the state file's record): the refusal every
    run of it meets (:func:`~edgeorch.models.owners.ownership_problem`, the front door's rule). A pipeline renamed
    in its file passed `validate`, and every scheduled fire was refused. Empty without a state file."""
    if not cfg.state_file.exists() or not any(p.models or any(t.model is not None for t in p.tasks.values())
                                               for p in pipelines.values()):
        return []
    from ..models.owners import ownership_problem
    from ..store import Store

    try:
        store = Store(cfg.state_file, readonly=True)
    except Exception:  # noqa: BLE001 - a damaged or unreadable state file: nothing to compare with
        return []
    try:
        found = [ownership_problem(store.models, p, None, authoritative=True) for p in pipelines.values()]
    except Exception:  # noqa: BLE001 - as above
        return []
    finally:
        store.close()
    return [p for p in found if p is not None]
