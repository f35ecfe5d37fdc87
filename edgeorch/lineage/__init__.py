"""Lineage: what a run, task or file was made from and what was made from it; OpenLineage export.

- :mod:`.things`: what ``edgeorch lineage THING`` names (parse, then resolve in the state file);
- :mod:`.graph`: the walk (upstream, downstream; indexed lookups through ``store.lineage``);
- :mod:`.render`: the walk's document as a tree or Graphviz;
- :mod:`.openlineage`: OpenLineage run events of the recorded runs.

What tasks consumed is recorded by the engine (``store.lineage.record_consumed``);
this package only reads. :func:`query` is the one entry the CLI (offline) and
the daemon's ``lineage`` op both call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable

from .graph import DEFAULT_DEPTH, DEFAULT_MAX_NODES, DIRECTIONS, Walk
from .openlineage import DEFAULT_NAMESPACE, export, run_events
from .render import dot, tree
from .things import Thing, parse_thing, resolve

if TYPE_CHECKING:  # pragma: no cover
    from ..store import Store


def query(store: "Store", thing: str, *, cwd: str | None = None, sha256: str | None = None,
          directions: Iterable[str] = DIRECTIONS, depth: int = DEFAULT_DEPTH,
          max_nodes: int = DEFAULT_MAX_NODES) -> dict[str, Any]:
    """The lineage document of ``thing`` (see :mod:`.graph`); raises UsageError / NotFoundError naming it."""
    root = resolve(store.lineage, parse_thing(thing, cwd=cwd), sha256=sha256)
    return Walk(store, depth=depth, max_nodes=max_nodes).run(root, directions)


__all__ = ["DEFAULT_DEPTH", "DEFAULT_MAX_NODES", "DEFAULT_NAMESPACE", "DIRECTIONS", "Thing", "Walk", "dot", "export",
           "parse_thing", "query", "resolve", "run_events", "tree"]
