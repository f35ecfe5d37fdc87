"""Which file holds each pipeline name, as the state file records it: the CLI's offline commands decide a name
two files declare as the daemon does (:func:`edgeorch.pipelines.load.settle_names`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

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
