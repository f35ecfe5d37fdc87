"""The DAG checks of a pipeline's tasks: a dependency cycle, the topological order."""

from __future__ import annotations


def find_cycle(graph: dict[str, list[str]]) -> list[str] | None:
    """A dependency cycle as ``[a, b, ..., a]`` (following needs), or None.

    ``graph`` maps a node to the nodes it needs. Iterative DFS (no recursion
    limit on deep pipelines); deterministic: nodes in insertion order.
    """
    WHITE, GREY, BLACK = 0, 1, 2
    color = {n: WHITE for n in graph}
    for root in graph:
        if color[root] != WHITE:
            continue
        stack: list[tuple[str, int]] = [(root, 0)]
        path: list[str] = [root]
        color[root] = GREY
        while stack:
            node, idx = stack[-1]
            deps = graph.get(node, [])
            if idx < len(deps):
                stack[-1] = (node, idx + 1)
                nxt = deps[idx]
                if nxt not in color:
                    continue
                if color[nxt] == GREY:
                    start = path.index(nxt)
                    # Report in the direction people read DAGs: upstream -> downstream.
                    cyc = path[start:] + [nxt]
                    return list(reversed(cyc))
                if color[nxt] == WHITE:
                    color[nxt] = GREY
                    stack.append((nxt, 0))
                    path.append(nxt)
            else:
                color[node] = BLACK
                stack.pop()
                path.pop()
    return None


def topological_order(graph: dict[str, list[str]]) -> list[str]:
    """Kahn's order (upstream first), ties broken by declaration order. Assumes a DAG."""
    indeg = {n: len(set(deps)) for n, deps in graph.items()}
    downs: dict[str, list[str]] = {n: [] for n in graph}
    for n, deps in graph.items():
        for d in set(deps):
            downs[d].append(n)
    ready = [n for n in graph if indeg[n] == 0]
    out: list[str] = []
    i = 0
    while i < len(ready):
        n = ready[i]
        i += 1
        out.append(n)
        for m in downs[n]:
            indeg[m] -= 1
            if indeg[m] == 0:
                ready.append(m)
    return out
