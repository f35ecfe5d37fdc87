"""edgeorch's lineage as OpenLineage run events (spec 2-0-2), for Marquez or any OpenLineage consumer.

For every run that started, in run id order:

- the **pipeline run**: job ``<namespace>/<pipeline>``; ``START`` at its
  start, then ``COMPLETE`` (succeeded), ``FAIL`` (failed) or ``ABORT``
  (cancelled) at its end (nothing yet while it runs); inputs: the files its
  tasks consumed from outside the run (declared inputs, the drop-folder file
  that started it); outputs: every task's recorded outputs;
- each **task** that started: job ``<namespace>/<pipeline>.<task>``, with a
  ``parent`` run facet naming the pipeline run; ``START``, then ``COMPLETE``
  (succeeded, or skipped by a cache hit), ``FAIL`` or ``ABORT``; inputs: what
  it consumed (declared inputs and upstream outputs), outputs: its files.

Datasets are files: namespace ``file``, name the absolute path (a glob's
pattern for a glob input), with an ``edgeorch_file`` facet holding the sha256
and size; a data version (``dataset:NAME@V``: a task read it, or made it as its
declared ``dataset`` output, or a drop-folder file became it) is namespace
``edgeorch-dataset``, name ``NAME@V``, its sha256 the version's manifest hash:
an output of the task that made it, an input of the run a dropped file started. ``run.runId`` is a UUID derived (uuid5) from the namespace, the run
id and the run's creation time (and the task's name), so exporting twice
gives the same ids and a restored older state file never reuses one.
Pure over the store: :func:`run_events` reads, returns dicts.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Iterator

from .. import __version__

if TYPE_CHECKING:  # pragma: no cover
    from ..store import Store

SCHEMA_URL = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
PARENT_FACET_URL = "https://openlineage.io/spec/facets/1-0-1/ParentRunFacet.json#/$defs/ParentRunFacet"
PRODUCER = f"https://github.com/edgeorch/edgeorch/tree/v{__version__}"
FACET_URL = "https://github.com/edgeorch/edgeorch/blob/main/docs/lineage.md#openlineage"
DEFAULT_NAMESPACE = "edgeorch"
DATASET_NAMESPACE = "file"
VERSION_NAMESPACE = "edgeorch-dataset"
"""The namespace of a data version a task read by name (``dataset:NAME@V`` inputs): name ``NAME@V``."""

_RUN_END = {"succeeded": "COMPLETE", "failed": "FAIL", "cancelled": "ABORT"}
_TASK_END = {"succeeded": "COMPLETE", "skipped": "COMPLETE", "failed": "FAIL", "cancelled": "ABORT"}
_UUID_NS = "6f1c7f4e-2b1d-5a43-9a4e-4f0e6d3c2b10"  # edgeorch's own uuid5 namespace (a constant)


def run_uuid(namespace: str, run_id: int, created_at: float, task: str | None = None) -> str:
    """The OpenLineage ``runId`` of a pipeline run, or of one of its tasks: stable across exports."""
    import uuid  # here: `uuid` loads `platform`, and building `edgeorch lineage`'s parser reads this module

    name = f"{namespace}/run/{run_id}/{created_at!r}" + (f"/task/{task}" if task is not None else "")
    return str(uuid.uuid5(uuid.UUID(_UUID_NS), name))


def iso(ts: float) -> str:
    """An ISO 8601 UTC time with milliseconds: ``2024-05-01T10:00:00.123Z``."""
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def export(store: "Store", *, namespace: str = DEFAULT_NAMESPACE, since: int = 0,
           run_id: int | None = None) -> Iterator[dict[str, Any]]:
    """Every event of the runs with id > ``since`` (or only ``run_id``), run by run in id order."""
    ids = [run_id] if run_id is not None else store.lineage.run_ids(since)
    for rid in ids:
        yield from run_events(store, rid, namespace=namespace)


def run_events(store: "Store", run_id: int, *, namespace: str = DEFAULT_NAMESPACE) -> list[dict[str, Any]]:
    """The events of one run and its tasks (see the module docstring); [] for a run that never started.

    Raises :class:`~edgeorch.errors.NotFoundError` for an unknown run.
    """
    lin = store.lineage
    run = store.runs.get(run_id)
    if run["started_at"] is None:
        return []
    version = lin.run(run_id)
    assert version is not None
    run_uid = run_uuid(namespace, run_id, run["created_at"])
    pipeline = run["pipeline"]
    run_facets = {"edgeorch_run": _facet(run_id=run_id, pipeline=pipeline, pipeline_sha256=version["content_hash"],
                                         params=run["params"], trigger=run["trigger"])}
    task_events: list[dict[str, Any]] = []
    run_inputs: dict[str, dict[str, Any]] = {}
    run_outputs: dict[str, dict[str, Any]] = {}
    for row in lin.inputs_of_run(run_id):
        if row["inbox_path"] and row["sha256"]:
            run_inputs[row["inbox_path"]] = _dataset(row["inbox_path"], row["sha256"], row["size"], "input")
    produced = store.outputs.latest_artifacts_of_run(run_id)
    # The data versions made here: a task's declared dataset output is among its outputs (a consumer of NAME@V had
    # no producer in Marquez); the version a drop-folder file became is among the run's inputs.
    versions: dict[str, list[dict[str, Any]]] = {}
    for v in lin.versions_made_by_run(run_id):
        d = _dataset(f"dataset:{v['name']}@{v['version']}", v["manifest_sha256"], v["size"], "dataset", v["files"])
        if v["task"]:
            versions.setdefault(v["task"], []).append(d)
        else:
            run_inputs.setdefault(d["name"], d)
    for task in store.runs.tasks_of(run_id):
        consumed = lin.consumed_by(run_id, task["name"])
        inputs = [_dataset(c["path"], c["sha256"], c["size"], c["kind"], c["files"]) for c in consumed]
        outputs = [_dataset(a["path"], a["sha256"], a["size"], "output") for a in produced.get(task["name"], [])]
        outputs += versions.get(task["name"], [])
        for c, d in zip(consumed, inputs):
            if c["kind"] != "upstream":
                run_inputs.setdefault(d["name"], d)
        for d in outputs:
            run_outputs[d["name"]] = d
        if task["started_at"] is None:
            continue  # never started (upstream failed, cancelled while pending): no run of its job
        job = {"namespace": namespace, "name": f"{pipeline}.{task['name']}"}
        facets = {"parent": {"_producer": PRODUCER, "_schemaURL": PARENT_FACET_URL,
                             "run": {"runId": run_uid}, "job": {"namespace": namespace, "name": pipeline}},
                  "edgeorch_task": _facet(run_id=run_id, task=task["name"], state=task["state"],
                                          definition_hash=task["definition_hash"], input_hash=task["input_hash"],
                                          cached_from=task["cached_from"])}
        uid = run_uuid(namespace, run_id, run["created_at"], task["name"])
        task_events.append(_event("START", task["started_at"], uid, facets, job, inputs, []))
        end = _TASK_END.get(task["state"])
        if end is not None and task["finished_at"] is not None:
            task_events.append(_event(end, task["finished_at"], uid, facets, job, inputs, outputs))
    job = {"namespace": namespace, "name": pipeline}
    events = [_event("START", run["started_at"], run_uid, run_facets, job, list(run_inputs.values()), [])]
    events += sorted(task_events, key=lambda e: e["eventTime"])
    end = _RUN_END.get(run["state"])
    if end is not None and run["finished_at"] is not None:
        events.append(_event(end, run["finished_at"], run_uid, run_facets, job, list(run_inputs.values()),
                             list(run_outputs.values())))
    return events


def _event(kind: str, ts: float, run_id: str, facets: dict[str, Any], job: dict[str, str],
           inputs: list[dict[str, Any]], outputs: list[dict[str, Any]]) -> dict[str, Any]:
    return {"eventType": kind, "eventTime": iso(ts), "producer": PRODUCER, "schemaURL": SCHEMA_URL,
            "run": {"runId": run_id, "facets": facets}, "job": job, "inputs": inputs, "outputs": outputs}


def _facet(**fields: Any) -> dict[str, Any]:
    return {"_producer": PRODUCER, "_schemaURL": FACET_URL, **fields}


def _dataset(path: str, sha256: str, size: int | None, kind: str, files: int | None = None) -> dict[str, Any]:
    facet = _facet(sha256=sha256, size=size, kind=kind)
    if files is not None:
        facet["files"] = files
    if kind == "dataset":  # a data version read by name (path: dataset:NAME@V): edgeorch's, not a file's
        return {"namespace": VERSION_NAMESPACE, "name": path.removeprefix("dataset:"),
                "facets": {"edgeorch_file": facet}}
    return {"namespace": DATASET_NAMESPACE, "name": path, "facets": {"edgeorch_file": facet}}
