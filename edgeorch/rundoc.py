"""One run as a JSON-ready document: the run, its tasks with attempts and artifacts, results.

Shared by ``edgeorch show --json`` (reading the state file) and the daemon's
``runs.show`` op, so both give the same document.
"""

from __future__ import annotations

from typing import Any


def run_document(store: Any, run_id: int) -> dict[str, Any]:
    """Raises NotFoundError for an unknown run."""
    run = store.runs.get(run_id)
    # What the run executes: the pipeline file and the hash of the content it was started from
    # (an ad-hoc file sent to the daemon is recorded by content, not by path).
    version = store.pipelines.version(run["pipeline_version_id"])
    run["pipeline_file"], run["content_hash"] = version["source_file"], version["content_hash"]
    run["tasks"] = store.runs.tasks_of(run_id)
    attempts = store.attempts.of_run(run_id)
    for t in run["tasks"]:
        t["attempt_list"] = [a for a in attempts if a["task"] == t["name"]]
        t["artifacts"] = store.outputs.latest_artifacts(run_id, t["name"])
    run["results"] = store.outputs.results_of(run_id)
    run["checkpoints"] = store.outputs.checkpoints_of(run_id)
    return run
