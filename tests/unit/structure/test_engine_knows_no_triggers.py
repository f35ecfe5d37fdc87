"""The engine knows nothing of triggers (drop folders, schedules): their owners wire them to the front door.

A retried drop-folder run's input is brought back by a ``before_resume`` hook
the daemon and the CLI register on :class:`edgeorch.engine.requests.RunRequests`,
not by the engine (issue 10).
"""

from __future__ import annotations

from test_import_graph import _edges, _modules


def test_no_engine_module_imports_the_triggers():
    graph = _edges(_modules())
    offenders = sorted(f"{m} -> {t}" for m, targets in graph.items() if m.startswith("edgeorch.engine")
                       for t in targets if t == "edgeorch.triggers" or t.startswith("edgeorch.triggers."))
    assert offenders == [], "the engine imports trigger code:\n" + "\n".join(offenders)
