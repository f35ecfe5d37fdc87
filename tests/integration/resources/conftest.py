"""Resources end to end: a real engine (zygote, shims, processes, SQLite) and a real daemon.

The ``daemon`` fixture is the one of ``tests/integration/daemon``, loaded by
path (the test folders are not packages); helpers are in ``resources_helpers.py``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location("_edgeorch_daemon_conftest",
                                               Path(__file__).resolve().parents[1] / "daemon" / "conftest.py")
assert _spec is not None and _spec.loader is not None
_daemon_conftest = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_daemon_conftest)
daemon = _daemon_conftest.daemon
