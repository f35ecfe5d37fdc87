"""Who holds a data version: what retention must never remove.

Two ways to hold a version, for the features that refer to data versions:

- **a hold row** (``store.datasets.hold(name, version, holder, reason)``,
  released with ``store.datasets.release``): durable, and written in the
  holder's own transaction, e.g. a model alias set to a model trained on
  ``train@12`` holds ``train@12`` for as long as the alias points there;
- **a holder function** registered here (:func:`register_holder`): asked at
  every prune, for holds computed from other state.

The state file's own holds are always applied (``store.datasets.held``): the
hold rows, and every version whose run (the run started for its drop-folder
input, or the run whose task produced it) is queued or running.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from ..store import Store

Holder = Callable[["Store"], Mapping[int, str]]
"""``holder(store) -> {version id: why it is held}``; called on the writing thread inside the prune's
transaction (it may read the state file, never write it)."""

_lock = threading.Lock()
_holders: list[Holder] = []


def register_holder(holder: Holder) -> Callable[[], None]:
    """Ask ``holder`` at every prune from now on; returns the function that unregisters it."""
    with _lock:
        _holders.append(holder)

    def unregister() -> None:
        with _lock:
            if holder in _holders:
                _holders.remove(holder)

    return unregister


def extra_holds(store: Store) -> dict[int, str]:
    """Every registered holder's holds (the state file's own are added by ``store.datasets.prune``)."""
    with _lock:
        holders = list(_holders)
    out: dict[int, str] = {}
    for holder in holders:
        out.update(holder(store))
    return out
