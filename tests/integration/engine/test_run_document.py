"""A run's document (`edgeorch show`, `runs.show`) reads its tasks, attempts and artifacts once for the whole run:
its cost grows with the run, not with its square (issue 11: a run of 10,000 tasks is shown in one pass)."""

from __future__ import annotations

from edgeorch.model import RunState
from edgeorch.rundoc import run_document


def _wide(n: int) -> str:
    """``n`` tasks each writing one output; the last one fails on its first attempt and is retried."""
    text = ""
    for i in range(n):
        text += f'[tasks.t{i}]\ncommand = ["sh", "-c", "echo {i} > $EDGEORCH_OUTPUT_DIR/out.txt"]\noutputs = ["out.txt"]\n'
    text += ('[tasks.flaky]\ncommand = ["sh", "-c", "test -f {pipeline_dir}/seen || {{ touch {pipeline_dir}/seen; exit 3; }}; '
             'echo ok > $EDGEORCH_OUTPUT_DIR/out.txt"]\noutputs = ["out.txt"]\nretries = 1\nretry_delay = "0s"\n')
    return text


def _statements(store, run_id: int) -> tuple[dict, int]:
    seen: list[str] = []
    store.db.conn.set_trace_callback(seen.append)
    try:
        doc = run_document(store, run_id)
    finally:
        store.db.conn.set_trace_callback(None)
    return doc, len(seen)


def test_a_run_document_reads_the_same_few_statements_whatever_the_number_of_tasks(workspace, harness):
    workspace.pipeline("small", _wide(2))
    workspace.pipeline("large", _wide(40))
    small, state_small = harness.run("small")
    (workspace.pipelines / "seen").unlink()
    large, state_large = harness.run("large")
    assert state_small == state_large == RunState.SUCCEEDED
    store = harness.store()
    doc_small, n_small = _statements(store, small)
    doc_large, n_large = _statements(store, large)
    assert n_small == n_large, (n_small, n_large)  # was one query (or three) per task, and a scan per task
    assert len(doc_large["tasks"]) == 41
    for doc, run_id in ((doc_small, small), (doc_large, large)):
        for t in doc["tasks"]:
            # The same attempts and latest artifacts as the per-task reads give.
            assert t["attempt_list"] == [{**a, "image": None} for a in store.attempts.of_run(run_id, t["name"])]
            assert t["artifacts"] == store.outputs.latest_artifacts(run_id, t["name"]) != []
    flaky = next(t for t in doc_large["tasks"] if t["name"] == "flaky")
    assert [a["exit_code"] for a in flaky["attempt_list"]] == [3, 0] and len(flaky["artifacts"]) == 1
