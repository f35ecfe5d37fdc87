"""The lineage walk: from a root node, upstream (what it was made from) and downstream (what was made from it).

Nodes (``id``: fields):

- ``run:5``: a run: ``pipeline``, ``content_hash`` (the pipeline file's
  sha256), ``params``, ``state``, ``trigger``;
- ``task:5/train``: a task of a run: ``state``, ``attempt_id`` (its latest),
  ``definition_hash``, ``input_hash``, ``cached_from``;
- ``file:<sha256>:<path>``: one version of a file: ``path``, ``sha256``;
- ``files:<sha256>:<path>``: a folder or glob a task declared, by manifest
  hash: ``kind`` (``folder``/``glob``), ``path``, ``files``, ``size``;
- ``image:<sha256>:<reference>``: a container image a task ran in
  (docs/containers.md): ``reference`` as the task named it, ``sha256`` its
  digest, ``size``;
- ``input:3``: a drop-folder input: the file that arrived (``source_path``),
  where it was claimed to (``inbox_path``), ``sha256``, ``state``;
- ``sha256:<hex>``: a content, as a root only: every path recorded with it;
- ``dataset:NAME@V``: a data version (docs/datasets.md): ``source``,
  ``manifest_sha256``, ``files``, ``size``; ``pruned`` (with ``pruned_at``,
  ``pruned_by``) once retention removed its content (its record stays, so its
  origin is still walked); ``run_gone`` when the run that made it was removed
  by ``edgeorch gc``; ``readers_gone`` (``run_id``, ``task``, ``removed_at``,
  ``actor``) for the runs that read it and were removed by ``edgeorch gc``;
- ``model:NAME@V``: a model version (docs/models.md): ``path``, ``sha256``,
  ``gate_verdict``, ``metrics``.

Edges point from what was made to what it was made from (``from`` is
downstream of ``to``), with a relation:

==================  ===============================================  ===========
relation            from → to                                        recorded in
==================  ===============================================  ===========
``output of``       file → the task (attempt) that wrote it          artifacts
``consumed``        task → file or folder/glob it consumed           consumed
``contains``        folder/glob → one of its files                   manifest_files
``in run``          task → its run (pipeline content hash, params)   tasks
``started by``      run → the drop-folder input that started it      inputs.run_id
``claimed from``    file (in the inbox) → its drop-folder input      inputs
``cached from``     task (a cache hit) → the task whose attempt it reused  tasks.cached_from
``same content``    drop-folder input → an output with its content   artifacts.sha256
``has path``        content root → each file with that content       (all)
``made by``         data or model version → the task that recorded it  dataset_versions, model_versions
``versioned from``  data version → the drop-folder input it snapshots  dataset_versions.input_id
==================  ===============================================  ===========

The walk goes breadth-first to ``depth`` steps in each direction asked for,
each step a few indexed queries (``store.lineage``), and stops adding nodes
after ``max_nodes`` (the document says ``truncated``). A run's own tasks are
one step from it in both directions (what a run was made from is what its
tasks consumed). The result is a JSON-ready document; :mod:`.render` prints
it as a tree or Graphviz.
"""

from __future__ import annotations

import json
import os
from collections import deque
from typing import TYPE_CHECKING, Any, Iterable

from ..errors import NotFoundError, UsageError

if TYPE_CHECKING:  # pragma: no cover
    from ..store import Store
    from ..store.lineage import Lineage

DIRECTIONS = ("upstream", "downstream")
DEFAULT_DEPTH = 50
MAX_DEPTH = 1000
DEFAULT_MAX_NODES = 2000

Step = tuple[str, str, dict[str, Any], tuple[str, str]]
"""One neighbour: ``(relation, node id, node fields, (edge from, edge to))``."""


def file_id(path: str, sha256: str) -> str:
    return f"file:{sha256}:{path}"


def run_node(lineage: "Lineage", run_id: int) -> tuple[str, dict[str, Any]]:
    run = lineage.run(run_id)
    if run is None:
        raise NotFoundError("no such run", value=run_id, hint="`edgeorch runs` lists the runs")
    return f"run:{run_id}", {
        "kind": "run", "run_id": run_id, "pipeline": run["pipeline"], "content_hash": run["content_hash"],
        "params": json.loads(run["params"]), "state": run["state"], "trigger": run["trigger"],
        "created_at": run["created_at"], "finished_at": run["finished_at"]}


def task_node(lineage: "Lineage", run_id: int, name: str) -> tuple[str, dict[str, Any]]:
    task = lineage.task(run_id, name)
    if task is None:
        if lineage.run(run_id) is None:
            raise NotFoundError("no such run", value=run_id, hint="`edgeorch runs` lists the runs")
        raise NotFoundError(f"run {run_id} has no task {name!r}", value=f"{run_id}/{name}",
                            hint=f"its tasks: {', '.join(lineage.task_names(run_id)) or '(none)'}")
    return f"task:{run_id}/{name}", {
        "kind": "task", "run_id": run_id, "task": name, "state": task["state"], "attempt_id": task["attempt_id"],
        "attempts": task["attempts"], "definition_hash": task["definition_hash"], "input_hash": task["input_hash"],
        "cached_from": task["cached_from"]}


def input_node(lineage: "Lineage", input_id: int) -> tuple[str, dict[str, Any]]:
    row = lineage.input(input_id)
    if row is None:
        raise NotFoundError("no such drop-folder input", value=f"input:{input_id}",
                            hint="`edgeorch inputs` lists them")
    return f"input:{input_id}", _input_fields(row)


def dataset_node(lineage: "Lineage", name: str, version: int | None) -> tuple[str, dict[str, Any]]:
    """A data version's node (``version`` None: the newest); :class:`NotFoundError` when there is none."""
    row = lineage.dataset_version(name, version)
    if row is None:
        raise NotFoundError("no such data version", value=f"dataset:{name}@{version or 'latest'}",
                            hint="`edgeorch datasets list` lists the datasets and their versions")
    return _version_node(lineage, row)


def model_node(lineage: "Lineage", name: str, version: int | None) -> tuple[str, dict[str, Any]]:
    """A model version's node (``version`` None: the newest); :class:`NotFoundError` when there is none."""
    row = lineage.model_version(name, version)
    if row is None:
        raise NotFoundError("no such model version", value=f"model:{name}@{version or 'latest'}",
                            hint="`edgeorch models list` lists the models and their versions")
    return _with_run_gone(lineage, _model(row))


def _with_run_gone(lineage: "Lineage", node: tuple[str, dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    """A version's node, with ``run_gone`` (its run's id) when the run that made it is no longer in the state file
    (``edgeorch gc`` removed it, and its lineage with it): the tree says so instead of "nothing recorded"."""
    node_id, fields = node
    run_id = fields.get("run_id")
    if run_id is not None and lineage.run(int(run_id)) is None:
        fields = {**fields, "run_gone": run_id}
    return node_id, fields


def _version_node(lineage: "Lineage", row: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """A data version's node from its row, with what outlived its neighbours: ``run_gone`` (its maker run) and
    ``readers_gone`` (the runs that read it), both removed by ``edgeorch gc``; the latter only when there are any."""
    node_id, fields = _with_run_gone(lineage, _dataset(row))
    gone = lineage.dataset_readers_gone(int(row["id"]))
    if gone:
        fields = {**fields, "readers_gone": gone}
    return node_id, fields


def _dataset(row: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """A data version row's fields; ``pruned`` when retention removed its content (the record stays)."""
    fields = {
        "kind": "dataset", "name": row["name"], "version": row["version"], "source": row["source"],
        "source_path": row["source_path"], "manifest_sha256": row["manifest_sha256"], "files": row["files"],
        "size": row["size"], "run_id": row["run_id"], "task": row["task"], "input_id": row["input_id"],
        "created_at": row["created_at"], "actor": row.get("actor")}
    if row.get("pruned_at") is not None:
        fields.update(pruned=True, pruned_at=row["pruned_at"], pruned_by=row.get("pruned_by"))
    return f"dataset:{row['name']}@{row['version']}", fields


def _model(row: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return f"model:{row['name']}@{row['version']}", {
        "kind": "model", "name": row["name"], "version": row["version"], "path": row["path"],
        "sha256": row["sha256"], "gate_verdict": row["gate_verdict"], "metrics": json.loads(row["metrics"]),
        "run_id": row["run_id"], "task": row["task"], "created_at": row["created_at"]}


def _input_fields(row: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "input", "input_id": row["id"], "pipeline": row["pipeline"], "source_path": row["source_path"],
            "inbox_path": row["inbox_path"], "sha256": row["sha256"], "size": row["size"], "state": row["state"],
            "run_id": row["run_id"]}


def _file(path: str, sha256: str, size: int | None = None) -> tuple[str, dict[str, Any]]:
    fields: dict[str, Any] = {"kind": "file", "path": path, "sha256": sha256}
    if size is not None:
        fields["size"] = size
    return file_id(path, sha256), fields


def _files(row: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return f"files:{row['sha256']}:{row['path']}", {
        "kind": row["kind"], "path": row["path"], "sha256": row["sha256"], "files": row["files"], "size": row["size"]}


def _image(row: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """A container image a task ran in: ``reference`` as the task named it (substituted), ``sha256`` its digest."""
    return f"image:{row['sha256']}:{row['path']}", {
        "kind": "image", "reference": row["path"], "sha256": row["sha256"], "size": row["size"]}


def member_path(kind: str, path: str, name: str) -> str:
    """The absolute path of a folder's or glob's member ``name`` (a glob's names are relative to its base)."""
    from ..pipelines.inputs import glob_base  # here: the CLI imports this package to build its parser

    base = glob_base(path) if kind == "glob" else path
    return os.path.normpath(os.path.join(base, name))


class Walk:
    """One lineage query over ``store.lineage`` (and ``store.outputs`` for a task's outputs): see the module docstring."""

    def __init__(self, store: "Store", *, depth: int = DEFAULT_DEPTH, max_nodes: int = DEFAULT_MAX_NODES) -> None:
        if not 0 <= depth <= MAX_DEPTH:
            raise UsageError("is out of range", field="depth", value=depth, expected=f"0..{MAX_DEPTH}")
        if max_nodes < 1:
            raise UsageError("is out of range", field="max_nodes", value=max_nodes, expected="at least 1")
        self.lineage = store.lineage
        self.outputs = store.outputs
        self.depth = depth
        self.max_nodes = max_nodes

    def run(self, root: tuple[str, dict[str, Any]], directions: Iterable[str] = DIRECTIONS) -> dict[str, Any]:
        """The document: ``root``, ``nodes`` (id -> fields), ``edges``, per direction the ``children`` of each
        node expanded (``[relation, node id]``), ``depth`` and ``truncated``."""
        root_id, root_fields = root
        nodes: dict[str, dict[str, Any]] = {root_id: root_fields}
        edges: dict[tuple[str, str, str], None] = {}
        doc: dict[str, Any] = {"root": root_id, "depth": self.depth, "truncated": False}
        for direction in directions:
            if direction not in DIRECTIONS:
                raise UsageError("is not a direction", field="direction", value=direction,
                                 expected=" or ".join(DIRECTIONS))
            children: dict[str, list[list[str]]] = {}
            seen = {root_id}
            queue: deque[tuple[str, int]] = deque([(root_id, 0)])
            while queue:
                node_id, level = queue.popleft()
                if level >= self.depth:
                    continue
                steps = self._steps(direction, node_id, nodes[node_id], is_root=node_id == root_id)
                kids = children.setdefault(node_id, [])
                for rel, other, fields, edge in steps:
                    if other not in nodes:
                        if len(nodes) >= self.max_nodes:
                            doc["truncated"] = True
                            continue
                        nodes[other] = fields
                    edges[(edge[0], edge[1], rel)] = None
                    if [rel, other] not in kids:
                        kids.append([rel, other])
                    if other not in seen:
                        seen.add(other)
                        queue.append((other, level + 1))
            doc[direction] = children
        doc["nodes"] = nodes
        doc["edges"] = [{"from": f, "to": t, "rel": r} for f, t, r in edges]
        return doc

    # -- one step from a node ------------------------------------------------------------------

    def _steps(self, direction: str, node_id: str, fields: dict[str, Any], *, is_root: bool) -> list[Step]:
        kind = fields["kind"]
        up = direction == "upstream"
        if kind == "run":
            return self._run_up(fields, is_root) if up else self._run_tasks(fields)
        if kind == "task":
            return self._task_up(node_id, fields) if up else self._task_down(node_id, fields)
        if kind == "file":
            return self._file_up(node_id, fields) if up else self._file_down(node_id, fields)
        if kind in ("folder", "glob"):
            return self._files_up(node_id, fields) if up else self._files_down(node_id, fields)
        if kind == "input":
            return self._input_up(node_id, fields) if up else self._input_down(node_id, fields)
        if kind == "dataset":  # downstream: the tasks that read it as a declared input (dataset:NAME@V)
            return self._version_up(node_id, fields) if up else self._dataset_readers(node_id, fields)
        if kind == "model":  # nothing reads a model version by name yet: upstream only
            return self._version_up(node_id, fields) if up else []
        if kind == "image":  # downstream: the tasks that ran in it (its reference and digest both match)
            return [] if up else [("ran in", other, task, (other, node_id)) for other, task in
                                  self._image_users(fields)]
        if kind == "content":  # a sha256 root: the same files both ways
            return [("has path", *_file(p, fields["sha256"]), (node_id, file_id(p, fields["sha256"])))
                    for p in fields["paths"]]
        return []

    def _run_up(self, run: dict[str, Any], is_root: bool) -> list[Step]:
        rid = f"run:{run['run_id']}"
        steps: list[Step] = []
        for row in self.lineage.inputs_of_run(run["run_id"]):
            iid = f"input:{row['id']}"
            steps.append(("started by", iid, _input_fields(row), (rid, iid)))
        if is_root:  # what a run was made from is what its tasks consumed
            steps += self._run_tasks(run)
        return steps

    def _run_tasks(self, run: dict[str, Any]) -> list[Step]:
        steps: list[Step] = []
        for name in self.lineage.task_names(run["run_id"]):
            tid, fields = task_node(self.lineage, run["run_id"], name)
            steps.append(("in run", tid, fields, (tid, f"run:{run['run_id']}")))
        return steps

    def _task_up(self, node_id: str, task: dict[str, Any]) -> list[Step]:
        steps: list[Step] = []
        for row in self.lineage.consumed_by(task["run_id"], task["task"]):
            if row["kind"] in ("folder", "glob"):
                other, fields = _files(row)
            elif row["kind"] == "image":  # a container task's image: its reference and digest
                other, fields = _image(row)
                steps.append(("ran in", other, fields, (node_id, other)))
                continue
            elif row["kind"] == "dataset":  # a data version it read (path: dataset:NAME@V)
                other, fields = self._read_version(row)
            else:
                other, fields = _file(row["path"], row["sha256"], row["size"])
                if row["kind"] == "upstream":
                    fields["output_of"] = f"{row['source_run']}/{row['source_task']}"
            if row["spec"] is not None:
                fields["declared"] = row["spec"]
            steps.append(("consumed", other, fields, (node_id, other)))
        if task["cached_from"] is not None:
            source = self.lineage.attempt_task(task["cached_from"])
            if source is not None:
                other, fields = task_node(self.lineage, *source)
                steps.append(("cached from", other, fields, (node_id, other)))
        rid, fields = run_node(self.lineage, task["run_id"])
        steps.append(("in run", rid, fields, (node_id, rid)))
        return steps

    def _read_version(self, row: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """The node of the data version a consumed row names (a pruned one from its kept record, marked
        ``pruned``); one pruned before records were kept (schema 26) keeps the consumed row's reference and hash."""
        name, _, version = str(row["path"]).removeprefix("dataset:").rpartition("@")
        found = self.lineage.dataset_version(name, int(version)) if version.isdigit() else None
        if found is not None:
            return _version_node(self.lineage, found)
        # What was recorded of it, and no origin: its row (which said who made it) is gone. Walked like any
        # version's node (it crashed `lineage task:...` once its version was pruned).
        return str(row["path"]), {"kind": "dataset", "name": name, "version": int(version) if version.isdigit() else None,
                                  "manifest_sha256": row["sha256"], "files": row["files"], "size": row["size"],
                                  "source": None, "source_path": None, "run_id": None, "task": None,
                                  "input_id": None, "created_at": None, "pruned": True}

    def _dataset_readers(self, node_id: str, version: dict[str, Any]) -> list[Step]:
        steps: list[Step] = []
        for row in self.lineage.dataset_readers(version["name"], version["version"], self.max_nodes):
            try:
                other, fields = task_node(self.lineage, row["run_id"], row["task"])
            except NotFoundError:  # its run was removed by gc meanwhile
                continue
            steps.append(("consumed", other, fields, (other, node_id)))
        return steps

    def _version_up(self, node_id: str, version: dict[str, Any]) -> list[Step]:
        steps: list[Step] = []
        if version["run_id"] is not None and version["task"] is not None \
                and self.lineage.task(version["run_id"], version["task"]) is not None:
            other, fields = task_node(self.lineage, version["run_id"], version["task"])
            steps.append(("made by", other, fields, (node_id, other)))
        if version.get("input_id") is not None:
            row = self.lineage.input(version["input_id"])
            if row is not None:
                other = f"input:{row['id']}"
                steps.append(("versioned from", other, _input_fields(row), (node_id, other)))
        return steps

    def _task_down(self, node_id: str, task: dict[str, Any]) -> list[Step]:
        steps: list[Step] = []
        for row in self.lineage.versions_made_by(task["run_id"], task["task"]):
            other, fields = _version_node(self.lineage, row) if row["what"] == "dataset" else _model(row)
            steps.append(("made by", other, fields, (other, node_id)))
        for art in self.outputs.latest_artifacts(task["run_id"], task["task"]):
            other, fields = _file(art["path"], art["sha256"], art["size"])
            steps.append(("output of", other, fields, (other, node_id)))
        if task["attempt_id"] is not None:
            for row in self.lineage.cache_users(task["attempt_id"], self.max_nodes):
                other, fields = task_node(self.lineage, row["run_id"], row["name"])
                steps.append(("cached from", other, fields, (other, node_id)))
        return steps

    def _file_up(self, node_id: str, f: dict[str, Any]) -> list[Step]:
        steps: list[Step] = []
        made = self.lineage.producers(f["path"], f["sha256"])
        for row in made:
            other, fields = task_node(self.lineage, row["run_id"], row["task"])
            steps.append(("output of", other, fields, (node_id, other)))
        if not made:  # a cache hit's own link: the output of that (skipped) task, whose node says whose result it is
            for row in self.lineage.cache_hits_of_file(f["path"], f["sha256"]):
                other, fields = task_node(self.lineage, row["run_id"], row["task"])
                steps.append(("output of", other, fields, (node_id, other)))
        for row in self.lineage.inputs_claimed_as(f["path"], f["sha256"]):
            other = f"input:{row['id']}"
            steps.append(("claimed from", other, _input_fields(row), (node_id, other)))
        return steps

    def _image_users(self, image: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        out: dict[str, dict[str, Any]] = {}
        for row in self.lineage.consumers(image["reference"], image["sha256"], self.max_nodes):
            other, fields = task_node(self.lineage, row["run_id"], row["task"])
            out.setdefault(other, fields)
        return list(out.items())

    def _file_down(self, node_id: str, f: dict[str, Any]) -> list[Step]:
        steps: list[Step] = []
        done: set[str] = set()
        for row in self.lineage.consumers(f["path"], f["sha256"], self.max_nodes):
            other, fields = task_node(self.lineage, row["run_id"], row["task"])
            if other not in done:
                done.add(other)
                steps.append(("consumed", other, fields, (other, node_id)))
        for row in self.lineage.manifests_with(f["sha256"], self.max_nodes):
            if member_path(row["kind"], row["path"], row["member"]) != f["path"]:
                continue  # the same content elsewhere, not this file
            other, fields = _files(row)
            if other not in done:
                done.add(other)
                steps.append(("contains", other, fields, (other, node_id)))
        return steps

    def _files_up(self, node_id: str, f: dict[str, Any]) -> list[Step]:
        steps: list[Step] = []
        for m in self.lineage.members(f["sha256"], self.max_nodes):
            path = member_path(f["kind"], f["path"], m["name"])
            other, fields = _file(path, m["sha256"], m["size"])
            steps.append(("contains", other, fields, (node_id, other)))
        return steps

    def _files_down(self, node_id: str, f: dict[str, Any]) -> list[Step]:
        steps: list[Step] = []
        done: set[str] = set()
        for row in self.lineage.consumed_manifest(f["path"], f["sha256"], self.max_nodes):
            other, fields = task_node(self.lineage, row["run_id"], row["task"])
            if other not in done:
                done.add(other)
                steps.append(("consumed", other, fields, (other, node_id)))
        return steps

    def _input_up(self, node_id: str, inp: dict[str, Any]) -> list[Step]:
        if not inp["sha256"]:
            return []
        steps: list[Step] = []
        # Only what was made before the file arrived: its own run's copy of it (a task that copied it unchanged)
        # showed the file as made from that output, a loop.
        row_of = self.lineage.input(inp["input_id"]) if inp.get("input_id") is not None else None
        arrived = row_of.get("arrived_at") if row_of is not None else None
        for row in self.lineage.producers_of_content(inp["sha256"], self.max_nodes, before=arrived):
            other, fields = _file(row["path"], inp["sha256"], row["size"])
            steps.append(("same content", other, fields, (node_id, other)))
        return steps

    def _input_down(self, node_id: str, inp: dict[str, Any]) -> list[Step]:
        steps: list[Step] = []
        for row in self.lineage.dataset_versions_of_input(inp["input_id"]):
            other, fields = _version_node(self.lineage, row)
            steps.append(("versioned from", other, fields, (other, node_id)))
        if inp["inbox_path"] and inp["sha256"]:
            other, fields = _file(inp["inbox_path"], inp["sha256"], inp["size"])
            steps.append(("claimed from", other, fields, (other, node_id)))
        if inp["run_id"] is not None and self.lineage.run(inp["run_id"]) is not None:
            other, fields = run_node(self.lineage, inp["run_id"])
            steps.append(("started by", other, fields, (other, node_id)))
        return steps
