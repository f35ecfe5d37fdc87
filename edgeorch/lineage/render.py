"""A lineage document (:mod:`.graph`) for people (a tree) and for Graphviz (``--dot``). Pure: text in, text out."""

from __future__ import annotations

import json
from typing import Any

from ..textui import format_bytes, printable


def label(fields: dict[str, Any]) -> str:
    """One line naming a node: what it is, its hashes, its state; made :func:`~edgeorch.textui.printable`
    (a path is a task's or a dropped file's name: a control character or a bidi override in it comes
    escaped, and cannot forge a line of the tree)."""
    return printable(_describe(fields))


def _describe(fields: dict[str, Any]) -> str:
    kind = fields["kind"]
    if kind == "run":
        params = json.dumps(fields["params"], sort_keys=True) if fields["params"] else "{}"
        return (f"run {fields['run_id']} {fields['pipeline']} ({fields['state']}) "
                f"pipeline sha256:{fields['content_hash']} params {params}")
    if kind == "task":
        state = fields["state"]
        if fields.get("cached_from") is not None and state == "skipped":
            state = f"cache hit of attempt {fields['cached_from']}"
        elif fields.get("attempts"):
            state = f"{state}, attempt {fields['attempts']}"
        return f"task {fields['run_id']}/{fields['task']} ({state})"
    if kind == "file":
        size = f" ({format_bytes(fields['size'])})" if fields.get("size") is not None else ""
        declared = f" [inputs: {fields['declared']}]" if fields.get("declared") else ""
        return f"file {fields['path']} sha256:{fields['sha256']}{size}{declared}"
    if kind in ("folder", "glob"):
        declared = f" [inputs: {fields['declared']}]" if fields.get("declared") else ""
        return (f"{kind} {fields['path']} manifest sha256:{fields['sha256']} "
                f"({fields['files']} files, {format_bytes(fields['size'])}){declared}")
    if kind == "input":
        sha = f" sha256:{fields['sha256']}" if fields.get("sha256") else ""
        return f"drop-folder input {fields['input_id']} {fields['source_path']}{sha} ({fields['state']})"
    if kind == "image":
        size = f" ({format_bytes(fields['size'])})" if fields.get("size") else ""
        return f"image {fields['reference']} sha256:{fields['sha256']}{size}"
    if kind == "content":
        return f"sha256:{fields['sha256']} ({len(fields['paths'])} path(s))"
    if kind == "dataset":
        if fields.get("pruned"):  # read by a task, removed by retention since
            return (f"dataset {fields['name']}@{fields['version']} manifest sha256:{fields['manifest_sha256']} "
                    f"({fields['files']} files, {format_bytes(fields['size'] or 0)}; pruned since)")
        return (f"dataset {fields['name']}@{fields['version']} manifest sha256:{fields['manifest_sha256']} "
                f"({fields['files']} files, {format_bytes(fields['size'])}, from {fields['source']})")
    if kind == "model":
        return (f"model {fields['name']}@{fields['version']} {fields['path']} sha256:{fields['sha256']} "
                f"(gates {fields['gate_verdict']})")
    return f"{kind} {fields}"


DOWNSTREAM_WORDS = {
    "output of": "wrote", "consumed": "consumed by", "contains": "in", "in run": "has task", "started by": "started",
    "claimed from": "claimed as", "cached from": "reused by", "made by": "made", "versioned from": "versioned as",
}
"""How a relation reads walking it backwards (``--downstream``): "input 1 started: run 9", not "started by: run 9"
(which read as the input started by the run). The JSON keeps each edge's one name."""


def tree(doc: dict[str, Any]) -> str:
    """The root, then an ``upstream:`` and a ``downstream:`` tree (those the document has); a node met again
    says ``(see above)`` instead of repeating its subtree."""
    nodes = doc["nodes"]
    lines = [label(nodes[doc["root"]])]
    for direction in ("upstream", "downstream"):
        if direction not in doc:
            continue
        children = doc[direction]
        gone = nodes[doc["root"]].get("run_gone")
        if children.get(doc["root"]):
            lines.append(f"{direction}:")
        elif gone is not None and direction == "upstream":  # recorded once, removed with its run
            lines.append(f"{direction}: (run {gone}, which made it, was removed from the state file by `edgeorch gc`, "
                         "and what it was made from with it)")
        else:
            lines.append(f"{direction}: (nothing recorded)")
        shown = {doc["root"]}

        def walk(node: str, prefix: str) -> None:
            kids = children.get(node, [])
            for i, (rel, child) in enumerate(kids):
                last = i == len(kids) - 1
                again = child in shown
                word = DOWNSTREAM_WORDS.get(rel, rel) if direction == "downstream" else rel
                lines.append(f"{prefix}{'└─' if last else '├─'} {word}: {label(nodes[child])}"
                             + (" (see above)" if again else ""))
                if not again:
                    shown.add(child)
                    walk(child, prefix + ("   " if last else "│  "))

        walk(doc["root"], "  ")
    if doc.get("truncated"):
        lines.append(f"(truncated: more than {len(nodes)} nodes; narrow it with --depth or a direction)")
    return "\n".join(lines)


def dot(doc: dict[str, Any]) -> str:
    """Graphviz ``digraph``: data flows along the arrows (from what was used to what was made)."""
    nodes = doc["nodes"]
    ids = {node: f"n{i}" for i, node in enumerate(nodes)}
    shapes = {"run": "box3d", "task": "box", "file": "note", "folder": "folder", "glob": "folder",
              "input": "cylinder", "content": "hexagon",
              "dataset": "cylinder", "model": "component", "image": "box3d"}
    out = ["digraph lineage {", "  rankdir=LR;", '  node [fontname="monospace", fontsize=10];']
    for node, fields in nodes.items():
        extra = ", penwidth=2" if node == doc["root"] else ""
        out.append(f"  {ids[node]} [label={_quote(label(fields))}, shape={shapes.get(fields['kind'], 'ellipse')}{extra}];")
    for e in doc["edges"]:
        out.append(f"  {ids[e['to']]} -> {ids[e['from']]} [label={_quote(e['rel'])}];")
    out.append("}")
    return "\n".join(out) + "\n"


def _quote(text: str) -> str:
    """A DOT double-quoted string (backslashes and quotes escaped, newlines as \\n)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
