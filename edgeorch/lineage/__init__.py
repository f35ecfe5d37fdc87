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

from ..lazyexports import lazy_exports

# Loaded on first use (PEP 562; issue 11): building `edgeorch lineage`'s parser needs only the defaults.
_EXPORTS: dict[str, str] = {
    "DEFAULT_DEPTH": "graph", "DEFAULT_MAX_NODES": "graph", "DIRECTIONS": "graph", "Walk": "graph",
    "DEFAULT_NAMESPACE": "openlineage", "export": "openlineage", "run_events": "openlineage",
    "dot": "render", "tree": "render", "Thing": "things", "parse_thing": "things", "resolve": "things",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:  # pragma: no cover
    from ..store import Store
    from .graph import DEFAULT_DEPTH, DEFAULT_MAX_NODES, DIRECTIONS, Walk
    from .openlineage import DEFAULT_NAMESPACE, export, run_events
    from .render import dot, tree
    from .things import Thing, parse_thing, resolve


def query(store: "Store", thing: str, *, cwd: str | None = None, sha256: str | None = None,
          directions: Iterable[str] | None = None, depth: int | None = None,
          max_nodes: int | None = None) -> dict[str, Any]:
    """The lineage document of ``thing`` (see :mod:`.graph`); raises UsageError / NotFoundError naming it.

    ``directions``, ``depth``, ``max_nodes``: None means the walk's defaults (both ways,
    :data:`DEFAULT_DEPTH`, :data:`DEFAULT_MAX_NODES`).
    """
    from .graph import DEFAULT_DEPTH, DEFAULT_MAX_NODES, DIRECTIONS, Walk
    from .things import parse_thing, resolve

    root = resolve(store.lineage, parse_thing(thing, cwd=cwd), sha256=sha256)
    walk = Walk(store, depth=DEFAULT_DEPTH if depth is None else depth,
                max_nodes=DEFAULT_MAX_NODES if max_nodes is None else max_nodes)
    return walk.run(root, DIRECTIONS if directions is None else directions)


__all__ = ["DEFAULT_DEPTH", "DEFAULT_MAX_NODES", "DEFAULT_NAMESPACE", "DIRECTIONS", "Thing", "Walk", "dot", "export",
           "parse_thing", "query", "resolve", "run_events", "tree"]
