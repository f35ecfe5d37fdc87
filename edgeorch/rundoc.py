"""Runs as JSON-ready documents: one run (its tasks with attempts and artifacts, results), and a page of runs.

Shared by ``edgeorch show --json`` / ``edgeorch runs`` (reading the state file)
and the daemon's ``runs.show`` / ``runs.list`` ops, so both give the same
document and refuse the same arguments.
"""

from __future__ import annotations

import json

from collections.abc import Mapping
from typing import Any

from .errors import NotFoundError, UsageError
from .model import RunState, TaskState

MAX_RUNS_LIMIT = 10_000
"""The most runs one ``runs.list`` page holds."""


def last_start(run: Mapping[str, Any]) -> float | None:
    """When a run (its document or row) last started: its resume (``resumed_at``, set when it was retried),
    else its first start; None before it started. What its duration counts from: a run retried a day later
    did not take a day."""
    return run.get("resumed_at") or run.get("started_at")


def runs_page(store: Any, *, limit: int = 20, pipeline: str | None = None, state: str | None = None) -> list[dict[str, Any]]:
    """The newest ``limit`` runs (1..:data:`MAX_RUNS_LIMIT`), optionally of one pipeline or in one run state.

    Raises :class:`UsageError` naming ``args.limit`` or ``args.state`` (the CLI says ``--limit/-n``,
    ``--state``). ``store`` None (no state file yet): no runs.
    """
    if not 1 <= limit <= MAX_RUNS_LIMIT:
        raise UsageError("is out of range", field="args.limit", value=limit, expected=f"1..{MAX_RUNS_LIMIT}")
    if state is not None and state not in {s.value for s in RunState}:
        raise UsageError("is not a run state", field="args.state", value=state,
                         expected=", ".join(s.value for s in RunState))
    return store.runs.list(limit=limit, pipeline=pipeline, state=state) if store is not None else []


def attempt_outcome(state: str, reason: str | None, exit_code: int | None = None) -> str:
    """How an attempt ended, in words, the state said once: its reason when that already says it (``exited with
    code 1``, ``timed out after 5s``), else the state before the reason (``signalled: killed by signal 9``,
    ``abandoned: ...``), or the state alone; ``succeeded`` for one that exited 0 with nothing against it (a rerun
    of a succeeded task: "#1 exited" read as a failure)."""
    if state == "exited" and exit_code == 0 and not reason:
        return "succeeded"
    said = state.replace("_", " ")
    if not reason:
        return said
    return reason if reason.startswith(said) else f"{said}: {reason}"


def log_attempt(store: Any, run_id: int, task: str, number: int | None = None) -> dict[str, Any]:
    """The attempt of ``task`` in run ``run_id`` whose log ``edgeorch logs`` shows: ``number``, or the latest.

    :class:`NotFoundError` for an unknown run; a task of the run that has no attempt (it did not run: its state
    and reason, ``upstream train failed``); a name that is no task of the run (naming the run's tasks, with a
    did-you-mean); or an attempt number it does not have (naming the range).
    """
    run = store.runs.get(run_id)
    attempts = store.attempts.of_run(run_id, task)
    if not attempts:
        raise _no_attempt(run, store.runs.tasks_of(run_id), task)
    if number is None:
        return attempts[-1]
    for a in attempts:
        if a["number"] == number:
            return a
    raise NotFoundError(f"task {task} has no attempt {number}", value=number, expected=f"1..{attempts[-1]['number']}")


def _no_attempt(run: Mapping[str, Any], tasks: list[dict[str, Any]], task: str) -> NotFoundError:
    """Why ``task`` has no attempt in ``run``: it did not run (its state and reason), or no task of the run has
    that name (a typo: the run's tasks, the closest named)."""
    from .textui import printable
    from .tomlcheck import suggest

    run_id = run["id"]
    row = next((t for t in tasks if t["name"] == task), None)
    if row is not None:
        state, reason = row["state"], row.get("reason")
        why = state + (f" ({printable(reason)})" if reason else "")
        if TaskState(state).finished:
            return NotFoundError(f"task {task} of run {run_id} did not run: {why}")
        return NotFoundError(f"task {task} of run {run_id} has not started yet: {why}")
    names = [t["name"] for t in tasks]
    close = next((n for n in names if n.casefold() == task.casefold()), None) or suggest(task, names)
    return NotFoundError(f"no task {task!r} in run {run_id} (pipeline {printable(run['pipeline'])})", value=task,
                         expected=f"one of {', '.join(names)}" if names else "a task of the run (it has none)",
                         hint=f"did you mean {close!r}?" if close else None)


def run_document(store: Any, run_id: int) -> dict[str, Any]:
    """Raises NotFoundError for an unknown run."""
    run = store.runs.get(run_id)
    run["resumed_at"] = store.runs.resumed_at([run_id]).get(run_id)
    # What the run executes: the pipeline file and the hash of the content it was started from
    # (an ad-hoc file sent to the daemon is recorded by content, not by path).
    version = store.pipelines.version(run["pipeline_version_id"])
    run["pipeline_file"], run["content_hash"] = store.pipelines.file_of_run(run), version["content_hash"]
    run["tasks"] = store.runs.tasks_of(run_id)
    # Read once for the whole run and grouped here: the document's cost grows with the run, not its square.
    attempts: dict[str, list[dict[str, Any]]] = {}
    for a in store.attempts.of_run(run_id):
        attempts.setdefault(a["task"], []).append(a)
    artifacts = store.outputs.latest_artifacts_of_run(run_id)
    images = store.lineage.images_of_run(run_id)  # a container attempt's image: what a rebuild changed, in `show`
    for t in run["tasks"]:
        t["attempt_list"] = attempts.get(t["name"], [])
        for a in t["attempt_list"]:
            a["image"] = images.get(a["id"])
        t["artifacts"] = artifacts.get(t["name"], [])
    run["results"] = store.outputs.results_of(run_id)
    run["checkpoints"] = store.outputs.checkpoints_of(run_id)
    run["models"] = models_of_run(store, run_id)
    run["cancelled_by"] = cancelled_by(store, run)
    return run


def cancelled_by(store: Any, run: dict[str, Any]) -> str | None:
    """Who asked for the cancel ``run``'s ``cancel_reason`` says (``alice (uid 1000)``, ``rule:drift``): the actor of
    its last ``cancel_requested`` event with that reason; None when it has none or it was recorded with no actor (a
    Ctrl-C of an ``edgeorch run`` without a daemon). `show` said "cancel requested: wrong lr" and not who."""
    reason = run.get("cancel_reason")
    if not reason:
        return None
    said = f"run {run['id']}: {reason}"
    return next((e["actor"] for e in reversed(store.events.of_run(run["id"], ("cancel_requested",)))
                 if e["message"] == said), None) or None


def with_hashing(run: dict[str, Any], hashing: dict[str, str]) -> dict[str, Any]:
    """``run`` (:func:`run_document`) with each task whose files the daemon is hashing now given ``hashing``'s
    words as ``now`` (:meth:`~edgeorch.engine.engine.Engine.hashing`): a task shown ``running`` or ``ready``
    for minutes while a 20 GB output is hashed said nothing of why."""
    for t in run["tasks"]:
        if t["name"] in hashing:
            t["now"] = hashing[t["name"]]
    return run


def models_of_run(store: Any, run_id: int) -> list[dict[str, Any]]:
    """What the run's model outputs did, in order: ``{"state": "registered", "model", "version", "task",
    "gate_verdict"}`` for a version it added, ``{"state": "unchanged", ...}`` (``gate_verdict`` None) when it
    produced a version's artifact and metrics again and added none (the shape of the events stream's ``model``
    items: :func:`edgeorch.models.views.event_line` says each)."""
    verdicts = {(v["model"], v["version"]): v["gate_verdict"] for v in store.models.versions_of_run(run_id)}
    out = []
    for e in store.events.of_run(run_id, ("model_registered", "model_unchanged")):
        data = json.loads(e["data"]) if e.get("data") else {}
        if "model" not in data:
            continue
        key = (data["model"], data.get("version"))
        item = {"state": "registered" if e["kind"] == "model_registered" else "unchanged", "model": key[0],
                "version": key[1], "task": e["task"], "gate_verdict": verdicts.get(key)
                if e["kind"] == "model_registered" else None}
        if item["gate_verdict"] == "passed" and key[1] is not None:
            dep = store.models.first_deployment_to(key[0], int(key[1]))
            if dep is not None:  # "passed its gates" did not say whether it was served (a rule's block undid it)
                item["deployment"] = {k: dep.get(k) for k in ("id", "alias", "state", "outcome")}
        out.append(item)
    return out
