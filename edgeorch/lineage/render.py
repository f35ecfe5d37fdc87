"""A lineage document (:mod:`.graph`) for people (a tree) and for Graphviz (``--dot``). Pure: text in, text out."""

from __future__ import annotations

import json
from typing import Any

from ..textui import format_bytes, format_timestamp, printable


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
        if fields.get("pruned"):  # its content removed by retention since; its record (if kept) says its origin
            origin = f", from {_source_text(fields)}" if fields.get("source") else ""
            when = (f" on {format_timestamp(fields['pruned_at'])} by {fields.get('pruned_by') or 'an unknown actor'}"
                    if fields.get("pruned_at") is not None else "")
            return (f"dataset {fields['name']}@{fields['version']} manifest sha256:{fields['manifest_sha256']} "
                    f"({fields['files']} files, {format_bytes(fields['size'] or 0)}{origin}; pruned since{when})")
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


def _source_text(fields: dict[str, Any]) -> str:
    """Where a data version came from, as its record says: ``add PATH``, ``input N``, ``task RUN/TASK``."""
    source = fields["source"]
    if source == "add" and fields.get("source_path"):
        return f"add {fields['source_path']}"
    if source == "input" and fields.get("input_id") is not None:
        return f"input {fields['input_id']}"
    if source == "task" and fields.get("run_id") is not None:
        return f"task {fields['run_id']}/{fields['task']}"
    return str(source)


SHOWN_GONE = 10
"""Run ids named per removal in the note on a version's removed readers (every one is in --json)."""


def readers_gone_note(gone: list[dict[str, Any]]) -> str:
    """``(runs 1, 2, which read it, were removed from the state file by `edgeorch gc` on DATE)``: the runs of a
    version's ``readers_gone``, each once, grouped by the day of their removal (a gc done page by page
    commits several times)."""
    by_day: dict[str, list[int]] = {}
    for g in gone:
        day = format_timestamp(g["removed_at"])[:10]
        ids = by_day.setdefault(day, [])
        if g["run_id"] not in ids:
            ids.append(g["run_id"])
    parts = []
    for day, ids in by_day.items():
        shown = ", ".join(map(str, ids[:SHOWN_GONE])) + (f" and {len(ids) - SHOWN_GONE} more" if len(ids) > SHOWN_GONE
                                                         else "")
        parts.append(f"run{'s' if len(ids) > 1 else ''} {shown}, which read it, "
                     f"{'were' if len(ids) > 1 else 'was'} removed from the state file by `edgeorch gc` on {day}")
    return "(" + "; ".join(parts) + ")"


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
        readers_gone = nodes[doc["root"]].get("readers_gone") if direction == "downstream" else None
        if readers_gone:  # what read it and was removed since: said whether or not live readers follow
            lines.append(f"{direction}: {readers_gone_note(readers_gone)}")
        elif children.get(doc["root"]):
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
