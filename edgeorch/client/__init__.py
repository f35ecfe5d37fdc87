"""The Python client of the edgeorch daemon: script runs as the CLI does (docs/python.md).

- :class:`Client` (``edgeorch.Client``): blocking; :class:`AsyncClient`
  (``edgeorch.AsyncClient``): the same methods for asyncio;
- records (:mod:`.records`): :class:`Run` and :class:`RunSummary` with their
  :class:`Task`, :class:`Attempt`, :class:`Artifact`, :class:`CheckResult`,
  :class:`Checkpoint`, :class:`ModelOutcome`; :class:`Queued`, the receipt of a queued run;
- errors: :class:`WaitTimeout`, :class:`DaemonNotRunning`, and the
  daemon's own as their :class:`~edgeorch.errors.EdgeorchError` classes;
- :func:`find_socket`: where the daemon listens, by the CLI's rule.

Modules: :mod:`.locate` (which socket), :mod:`.calls` (requests and
answers, shared by both clients), :mod:`.sync`, :mod:`.aio` (the clients),
:mod:`.records`. The wire underneath is :mod:`edgeorch.control`
(docs/protocol.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..control.client import DaemonNotRunning
from ..lazyexports import lazy_exports
from .calls import WaitTimeout
from .locate import find_socket
from .records import Artifact, Attempt, Checkpoint, CheckResult, ModelOutcome, Queued, Run, RunSummary, Task
from .sync import Client

if TYPE_CHECKING:  # pragma: no cover
    from .aio import AsyncClient


# AsyncClient is loaded on first use (PEP 562): the blocking client (the CLI's) does not pay for asyncio.
__getattr__, __dir__ = lazy_exports(__name__, {"AsyncClient": "aio"})

__all__ = [
    "Artifact", "AsyncClient", "Attempt", "CheckResult", "Checkpoint", "Client", "DaemonNotRunning", "ModelOutcome",
    "Queued", "Run", "RunSummary", "Task", "WaitTimeout", "find_socket",
]
