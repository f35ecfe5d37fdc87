"""The daemon: wiring (:mod:`.app`) and the control ops, one module per group (:mod:`.ops`).

``run_daemon`` is the entry point of ``edgeorch daemon``; nothing in edgeorch
imports this package except the CLI.
"""

from __future__ import annotations

from .app import Daemon, run_daemon

__all__ = ["Daemon", "run_daemon"]
