"""Lineage queries over runs made by a real engine: up to the original files, down from a file, DOT, OpenLineage."""

from __future__ import annotations

import hashlib
import json
import uuid

import jsonschema
import pydot  # a test dependency (pyproject: test): parses the --dot output for real
import pytest

from edgeorch.errors import NotFoundError, UsageError
from edgeorch.lineage import dot, export, query, tree
from edgeorch.model import RunState

TWO_STEPS = """
[params]
data = { type = "path", default = "data/houses.csv" }
epochs = 3
[tasks.ingest]
command = ["sh", "-c", "sort {data} > $EDGEORCH_OUTPUT_DIR/clean.csv"]
inputs = ["{data}"]
outputs = ["clean.csv"]
[tasks.train]
command = ["sh", "-c", "wc -l < $EDGEORCH_UPSTREAM_INGEST > $EDGEORCH_OUTPUT_DIR/model.txt"]
needs = ["ingest"]
outputs = ["model.txt"]
"""

RAW = b"b,2\na,1\n"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def ran(workspace, harness):
    path = workspace.pipeline("houses", TWO_STEPS)
    (path.parent / "data").mkdir()
    (path.parent / "data" / "houses.csv").write_bytes(RAW)
    run_id, state = harness.run("houses")
    assert state == RunState.SUCCEEDED
    return run_id, path.parent / "data" / "houses.csv", harness.store()


def _reach(doc, direction):
    """Every node reachable from the root in ``direction`` (ids)."""
    seen, stack = set(), [doc["root"]]
    while stack:
        for _rel, child in doc[direction].get(stack.pop(), []):
            if child not in seen:
                seen.add(child)
                stack.append(child)
    return seen


def test_the_lineage_of_an_output_reaches_the_original_file_with_its_hash_the_pipeline_and_the_params(ran):
    run_id, data, store = ran
    (model,) = store.outputs.latest_artifacts(run_id, "train")
    doc = query(store, model["path"], directions=["upstream"])
    up = _reach(doc, "upstream")
    assert f"file:{_sha(RAW)}:{data}" in up
    assert f"task:{run_id}/ingest" in up and f"task:{run_id}/train" in up
    run = doc["nodes"][f"run:{run_id}"]
    assert run["params"] == {"data": "data/houses.csv", "epochs": 3}
    assert run["content_hash"] == store.lineage.run(run_id)["content_hash"]
    text = tree(doc)
    assert f"file {data} sha256:{_sha(RAW)}" in text and "[inputs: {data}]" in text
    assert f"pipeline sha256:{run['content_hash']}" in text


def test_downstream_of_an_input_file_path_reaches_the_outputs_made_from_it(ran):
    run_id, data, store = ran
    (model,) = store.outputs.latest_artifacts(run_id, "train")
    doc = query(store, str(data), directions=["downstream"])
    assert doc["root"] == f"file:{_sha(RAW)}:{data}"
    assert f"file:{model['sha256']}:{model['path']}" in _reach(doc, "downstream")
    # A relative path is relative to the caller's folder; the current content on disk picks the version.
    again = query(store, "houses.csv", cwd=str(data.parent), sha256=_sha(RAW), directions=["downstream"])
    assert again["root"] == doc["root"]


def test_a_run_and_a_task_as_things(ran):
    run_id, data, store = ran
    run_doc = query(store, str(run_id))
    assert {f"task:{run_id}/ingest", f"task:{run_id}/train"} <= _reach(run_doc, "downstream")
    assert f"file:{_sha(RAW)}:{data}" in _reach(run_doc, "upstream")
    task_doc = query(store, f"{run_id}/train", directions=["upstream"], depth=1)
    assert {rel for rel, _ in task_doc["upstream"][task_doc["root"]]} == {"consumed", "in run"}
    assert f"file:{_sha(RAW)}:{data}" not in task_doc["nodes"]  # depth 1 stops at the upstream output


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pydot's own use of pyparsing
def test_the_dot_output_is_a_digraph_with_data_flowing_along_the_arrows(ran):
    run_id, data, store = ran
    doc = query(store, f"{run_id}/train")
    (graph,) = pydot.graph_from_dot_data(dot(doc))
    assert graph.get_type() == "digraph"
    labels = {n.get_name(): n.get("label") for n in graph.get_nodes()}
    names = {json.loads(v) if v and v.startswith('"') else v: k for k, v in labels.items()}
    data_node = next(k for lab, k in names.items() if lab and lab.startswith(f"file {data}"))
    ingest = next(k for lab, k in names.items() if lab and lab.startswith(f"task {run_id}/ingest"))
    assert any(e.get_source() == data_node and e.get_destination() == ingest for e in graph.get_edges())


# The required fields of OpenLineage 2-0-2 (BaseEvent, RunEvent, Run, Job, Dataset, BaseFacet).
_FACET = {"type": "object", "required": ["_producer", "_schemaURL"],
          "properties": {"_producer": {"type": "string", "format": "uri"},
                         "_schemaURL": {"type": "string", "format": "uri"}}}
_DATASET = {"type": "object", "required": ["namespace", "name"],
            "properties": {"namespace": {"type": "string"}, "name": {"type": "string"},
                           "facets": {"type": "object", "additionalProperties": _FACET}}}
RUN_EVENT = {
    "type": "object",
    "required": ["eventTime", "producer", "schemaURL", "run", "job"],
    "properties": {
        "eventType": {"enum": ["START", "RUNNING", "COMPLETE", "ABORT", "FAIL", "OTHER"]},
        "eventTime": {"type": "string", "format": "date-time"},
        "producer": {"type": "string", "format": "uri"},
        "schemaURL": {"type": "string", "format": "uri"},
        "run": {"type": "object", "required": ["runId"],
                "properties": {"runId": {"type": "string", "format": "uuid"},
                               "facets": {"type": "object", "additionalProperties": _FACET}}},
        "job": {"type": "object", "required": ["namespace", "name"],
                "properties": {"namespace": {"type": "string"}, "name": {"type": "string"}}},
        "inputs": {"type": "array", "items": _DATASET},
        "outputs": {"type": "array", "items": _DATASET},
    },
}


def test_the_openlineage_export_validates_and_pairs_each_start_with_its_end(ran):
    run_id, data, store = ran
    events = list(export(store, namespace="lab"))
    checker = jsonschema.Draft7Validator(RUN_EVENT, format_checker=jsonschema.FormatChecker())
    for event in events:
        assert [e.message for e in checker.iter_errors(event)] == []
        uuid.UUID(event["run"]["runId"])
    by_job = {}
    for e in events:
        by_job.setdefault(e["job"]["name"], []).append(e["eventType"])
    assert by_job == {"houses": ["START", "COMPLETE"], "houses.ingest": ["START", "COMPLETE"],
                      "houses.train": ["START", "COMPLETE"]}
    ingest_end = next(e for e in events if e["job"]["name"] == "houses.ingest" and e["eventType"] == "COMPLETE")
    assert [(d["namespace"], d["name"], d["facets"]["edgeorch_file"]["sha256"]) for d in ingest_end["inputs"]] == [
        ("file", str(data), _sha(RAW))]
    parent = ingest_end["run"]["facets"]["parent"]
    pipeline_run = next(e for e in events if e["job"]["name"] == "houses")
    assert parent["run"]["runId"] == pipeline_run["run"]["runId"] and parent["job"]["name"] == "houses"
    assert [e["run"]["runId"] for e in export(store, namespace="lab")] == [e["run"]["runId"] for e in events]


@pytest.mark.parametrize("thing,error,words", [
    ("", UsageError, "THING: is empty"),
    ("dataset:sales@3", NotFoundError, "no such data version"),
    ("model:churn", NotFoundError, "no such model version"),
    ("model:churn@x", UsageError, "is not a model version"),
    ("run:abc", UsageError, "is not a run id"),
    ("sha256:1234", UsageError, "is not a sha256"),
    ("999", NotFoundError, "no such run"),
    ("1/nope", NotFoundError, "run 1 has no task 'nope'"),
    ("input:42", NotFoundError, "no such drop-folder input"),
    ("/no/such/file.csv", NotFoundError, "nothing recorded about this file"),
    ("0" * 64, NotFoundError, "no recorded file has this content"),
])
def test_a_bad_thing_is_a_clear_usage_or_not_found_error(ran, thing, error, words):
    with pytest.raises(error) as err:
        query(ran[2], thing)
    assert words in err.value.render()


def test_a_file_inside_a_declared_folder_leads_downstream_to_the_task_that_read_the_folder(workspace, harness):
    path = workspace.pipeline("imgs", """
        [tasks.fit]
        command = ["sh", "-c", "ls images > $EDGEORCH_OUTPUT_DIR/list.txt"]
        inputs = ["images"]
        outputs = ["list.txt"]
    """)
    (path.parent / "images").mkdir()
    (path.parent / "images" / "cat.png").write_bytes(b"meow")
    (path.parent / "images" / "dog.png").write_bytes(b"woof")
    run_id, state = harness.run("imgs")
    assert state == RunState.SUCCEEDED
    store = harness.store()
    cat = path.parent / "images" / "cat.png"
    doc = query(store, str(cat), sha256=_sha(b"meow"), directions=["downstream"])
    down = _reach(doc, "downstream")
    folder = next(n for n in down if n.startswith("files:"))
    assert doc["nodes"][folder]["kind"] == "folder" and doc["nodes"][folder]["files"] == 2
    assert f"task:{run_id}/fit" in down
    # And back: the folder's upstream lists both files with their hashes.
    up = query(store, f"{run_id}/fit", directions=["upstream"])
    assert f"file:{_sha(b'woof')}:{path.parent / 'images' / 'dog.png'}" in _reach(up, "upstream")


def test_a_cache_hits_own_link_leads_up_to_the_task_it_reuses_and_the_run_that_made_it(workspace, harness):
    """A cache hit's records name its own links now: the upstream of such a file was "nothing recorded"."""
    workspace.pipeline("cached", """
        [tasks.expensive]
        command = ["sh", "-c", "echo 1 > $EDGEORCH_OUTPUT_DIR/out.txt"]
        outputs = ["out.txt"]
        cache = true
    """)
    first, _ = harness.run("cached")
    second, _ = harness.run("cached")
    store = harness.store()
    (link,) = store.outputs.latest_artifacts(second, "expensive")
    up = _reach(query(store, link["path"], directions=["upstream"]), "upstream")
    assert f"task:{second}/expensive" in up and f"task:{first}/expensive" in up and f"run:{first}" in up
