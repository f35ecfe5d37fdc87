"""Lineage end to end: a file dropped into a watched folder, two tasks, an output; queried through a real
daemon and with the CLI, online and offline. Synchronisation: the events stream, never a sleep."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess

import pydot
import pytest

from edgeorch.store import Store

PIPELINE = """
[params]
input = { type = "path", default = "" }
[tasks.ingest]
command = ["sh", "-c", "sort {input} > $EDGEORCH_OUTPUT_DIR/clean.csv"]
inputs = ["{input}"]
outputs = ["clean.csv"]
[tasks.train]
command = ["sh", "-c", "wc -l < $EDGEORCH_UPSTREAM_INGEST > $EDGEORCH_OUTPUT_DIR/model.txt"]
needs = ["ingest"]
outputs = ["model.txt"]
"""

DROPPED = b"price,rooms\n300,4\n100,2\n"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _cli(workspace, *args: str) -> subprocess.CompletedProcess[str]:
    return workspace.invoke("lineage", *args)  # in this process: output and exit codes are tested


def _reach(doc, direction):
    seen, stack = set(), [doc["root"]]
    while stack:
        for _rel, child in doc[direction].get(stack.pop(), []):
            if child not in seen:
                seen.add(child)
                stack.append(child)
    return seen


def drop_one(workspace, daemon, tmp_path, pipeline: str, watch_extra: str = ""):
    """Start a daemon watching a drop folder for ``pipeline`` (named houses), drop one file by rename and wait
    (events stream) until its run succeeded: ``(run id, the input's row, the drop folder)``."""
    drop = workspace.watch_folder("houses", extra=watch_extra)
    workspace.pipeline("houses", pipeline)
    daemon.start()
    staging = tmp_path / "staging"
    staging.mkdir()
    (staging / "houses.csv").write_bytes(DROPPED)
    with daemon.client(timeout=60) as c:
        events = c.stream("events", {}, timeout=120)
        assert next(events)["kind"] == "subscribed"
        os.rename(staging / "houses.csv", drop / "houses.csv")
        run_id = None
        for ev in events:
            if ev.get("kind") == "run" and ev.get("pipeline") == "houses" and run_id is None:
                run_id = ev["run_id"]
            if ev.get("kind") == "run" and ev.get("run_id") == run_id and ev.get("state") in (
                    "succeeded", "failed", "cancelled"):
                assert ev["state"] == "succeeded", daemon.output()
                break
    (inp,) = daemon.call("inputs.list")["inputs"]
    return run_id, inp, drop


@pytest.fixture
def dropped(workspace, daemon, tmp_path):
    """A daemon watching a drop folder, one file dropped (by rename) and its run finished."""
    return drop_one(workspace, daemon, tmp_path, PIPELINE)


def test_lineage_of_the_output_reaches_the_dropped_file_and_its_sha256_through_two_tasks(workspace, daemon, dropped):
    run_id, inp, drop = dropped
    store = Store(workspace.config().state_file, readonly=True)
    (model,) = store.outputs.latest_artifacts(run_id, "train")
    store.close()
    doc = daemon.call("lineage", {"thing": model["path"], "directions": ["upstream"]})
    up = _reach(doc, "upstream")
    assert {f"task:{run_id}/train", f"task:{run_id}/ingest", f"input:{inp['id']}"} <= up
    dropped_node = doc["nodes"][f"input:{inp['id']}"]
    assert dropped_node["source_path"] == str(drop / "houses.csv") and dropped_node["sha256"] == _sha(DROPPED)
    # The consumed file is the claimed one (in the inbox), with the same hash, claimed from that input.
    assert f"file:{_sha(DROPPED)}:{inp['inbox_path']}" in up

    # The CLI says the same through the daemon, as a tree: the dropped file with its full hash.
    out = _cli(workspace, model["path"], "--upstream")
    assert out.returncode == 0, out.stderr
    assert f"drop-folder input {inp['id']} {drop / 'houses.csv'} sha256:{_sha(DROPPED)}" in out.stdout


def test_the_dropped_file_path_resolves_to_its_input_and_downstream_reaches_the_output(workspace, daemon, dropped):
    run_id, inp, drop = dropped
    out = _cli(workspace, str(drop / "houses.csv"), "--downstream", "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["root"] == f"input:{inp['id']}"
    down = _reach(doc, "downstream")
    assert f"run:{run_id}" in down and f"task:{run_id}/train" in down
    assert any(n.startswith("file:") and n.endswith("/outputs/train/model.txt") for n in down)
    text = _cli(workspace, str(drop / "houses.csv"), "--downstream").stdout
    # Read downstream, each relation the other way round: the input started the run, the task wrote the file.
    assert f"started: run {run_id}" in text and "wrote: file" in text, text
    assert "started by:" not in text and "output of:" not in text, text


def test_a_copy_of_a_recorded_file_resolves_to_its_content(workspace, daemon, dropped, tmp_path):
    """A copy kept elsewhere (`cp` of the dropped file before it went) said "no recorded version ... recorded
    versions: none", though its exact content was recorded."""
    copy = tmp_path / "copy_of_dropped.csv"
    copy.write_bytes(DROPPED)
    out = _cli(workspace, str(copy), "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["root"] == f"sha256:{_sha(DROPPED)}" and doc["nodes"][doc["root"]]["paths"], doc


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pydot's own use of pyparsing
def test_the_cli_answers_the_same_without_a_daemon_and_dot_parses(workspace, daemon, dropped):
    run_id, inp, drop = dropped
    online = json.loads(_cli(workspace, f"{run_id}/train", "--json").stdout)
    assert daemon.stop() == 0
    offline = _cli(workspace, f"{run_id}/train", "--json")
    assert offline.returncode == 0, offline.stderr
    assert json.loads(offline.stdout) == online
    dot = _cli(workspace, f"{run_id}/train", "--dot")
    assert dot.returncode == 0, dot.stderr
    (graph,) = pydot.graph_from_dot_data(dot.stdout)
    assert graph.get_type() == "digraph" and len(graph.get_edges()) == len(online["edges"])


def test_openlineage_export_to_a_file_and_to_a_command(workspace, daemon, dropped, tmp_path):
    run_id, inp, drop = dropped
    target = tmp_path / "events.jsonl"
    out = _cli(workspace, "export", "--openlineage", str(target))
    assert out.returncode == 0, out.stderr
    events = [json.loads(line) for line in target.read_text().splitlines()]
    assert [e["eventType"] for e in events if e["job"]["name"] == "houses"] == ["START", "COMPLETE"]
    ingest = next(e for e in events if e["job"]["name"] == "houses.ingest" and e["eventType"] == "COMPLETE")
    assert ingest["inputs"][0]["name"] == inp["inbox_path"]
    assert ingest["inputs"][0]["facets"]["edgeorch_file"]["sha256"] == _sha(DROPPED)
    assert f"{len(events)} OpenLineage event(s) of 1 run(s)" in out.stdout

    piped = tmp_path / "piped.jsonl"
    out = _cli(workspace, "export", "--command", f"cat > {piped}")
    assert out.returncode == 0, out.stderr
    assert piped.read_text() == target.read_text()
    failing = _cli(workspace, "export", "--command", "exit 7")
    assert failing.returncode == 1 and "the export command exited with code 7" in failing.stderr


@pytest.mark.parametrize("args,code,words", [
    (["dataset:sales@3"], 3, "no such data version"),
    (["model:churn@v2"], 2, "is not a model version"),
    (["run:x"], 2, "is not a run id"),
    (["4242"], 3, "no such run"),
    (["input:77"], 3, "no such drop-folder input"),
    (["/nowhere/x.csv"], 3, "nothing recorded about this file"),
    (["export"], 2, "needs exactly one destination"),
    (["1", "--openlineage", "x.jsonl"], 2, "is only for `edgeorch lineage export`"),
    (["1", "--dot", "--json"], 2, "choose one"),
])
def test_a_bad_thing_or_flag_exits_2_or_3_with_a_clear_message(workspace, daemon, dropped, args, code, words):
    out = _cli(workspace, *args)
    assert out.returncode == code, (out.stdout, out.stderr)
    assert words in out.stderr and "Traceback" not in out.stderr


MODEL_PIPELINE = """
[params]
input = { type = "path", default = "" }
[tasks.ingest]
command = ["sh", "-c", "sort {input} > $EDGEORCH_OUTPUT_DIR/clean.csv"]
inputs = ["{input}"]
outputs = ["clean.csv"]
[tasks.train]
command = ["sh", "-c", "wc -l < $EDGEORCH_UPSTREAM_INGEST > $EDGEORCH_OUTPUT_DIR/model.txt && echo '{{\\"rows\\": 3}}' > $EDGEORCH_OUTPUT_DIR/metrics.json"]
needs = ["ingest"]
outputs = ["model.txt", "metrics.json"]
model = { name = "houses", path = "model.txt", metrics = "metrics.json" }
"""


def test_a_model_version_and_a_data_version_lead_back_to_the_dropped_file_and_its_hash(workspace, daemon, tmp_path):
    _run_id, inp, _drop = drop_one(workspace, daemon, tmp_path, MODEL_PIPELINE, 'dataset = "raw"')

    model = daemon.call("lineage", {"thing": "model:houses@1", "directions": ["upstream"]})
    assert model["root"] == "model:houses@1"
    reached = _reach(model, "upstream")
    assert f"input:{inp['id']}" in reached and "task:1/train" in reached and "task:1/ingest" in reached
    assert model["nodes"][f"input:{inp['id']}"]["sha256"] == _sha(DROPPED)
    assert model["nodes"]["model:houses@1"]["metrics"] == {"rows": 3}

    data = daemon.call("lineage", {"thing": "dataset:raw", "directions": ["upstream"]})
    assert data["root"] == "dataset:raw@1"
    assert data["upstream"]["dataset:raw@1"] == [["versioned from", f"input:{inp['id']}"]]

    down = daemon.call("lineage", {"thing": "1/train", "directions": ["downstream"]})
    assert ["made by", "model:houses@1"] in down["downstream"]["task:1/train"]

    # OpenLineage: the version the dropped file became is an input of its run (it was in no event: a consumer of
    # raw@1 had no producer in Marquez).
    target = tmp_path / "ol.jsonl"
    assert _cli(workspace, "export", "--openlineage", str(target)).returncode == 0
    events = [json.loads(line) for line in target.read_text().splitlines()]
    run_end = next(e for e in events if e["job"]["name"] == "houses" and e["eventType"] == "COMPLETE")
    assert {"namespace": "edgeorch-dataset", "name": "raw@1"} in [
        {k: d[k] for k in ("namespace", "name")} for d in run_end["inputs"]], run_end["inputs"]

    out = _cli(workspace, "model:houses", "--upstream")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("model houses@1 ") and _sha(DROPPED) in out.stdout
    missing = _cli(workspace, "model:houses@9")
    assert missing.returncode == 3 and "no such model version" in missing.stderr


def test_a_dropped_file_is_never_shown_made_from_its_own_runs_copy_of_it(workspace, daemon, tmp_path):
    """A task copying its input unchanged to an output: `lineage input:N --upstream` showed the dropped file as made
    from that output ("same content" -> output of task N/clean -> consumed: the file itself), a loop."""
    run_id, inp, _drop = drop_one(workspace, daemon, tmp_path, PIPELINE.replace("sort {input}", "cat {input}"))
    out = _cli(workspace, f"input:{inp['id']}", "--upstream", "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["upstream"].get(f"input:{inp['id']}", []) == [], doc["upstream"]
    assert not any(n.startswith("task:") for n in _reach(doc, "upstream"))
