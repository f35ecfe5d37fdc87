"""Registering a task's declared model output: described in the hashing worker, recorded in the outcome transaction.

Two halves, called by the engine (:mod:`edgeorch.engine.engine`):

1. :func:`describe` runs in the engine's hashing worker, after the
   attempt's outputs are hashed: the artifact (a file: its sha256; a
   folder: the sha256 of its manifest, the same rule and code as a
   declared folder input, :func:`edgeorch.engine.inputs.hash_inputs`) and
   the metrics file (a JSON object of numbers). A problem refuses the
   outcome with a reason (the attempt fails, and is retried by policy):
   the artifact or the metrics file missing, not inside the output
   folder, a metrics value that is not a number.
2. :func:`register` runs on the loop inside the attempt's outcome
   transaction: the version (with the run's params, the pipeline's content
   hash, what the task consumed and the results of the check tasks it
   needs), the gate decision with every condition, and, when the gates pass
   and the model promotes automatically, the deployment intent that moves
   the alias. All of it commits with the attempt's outcome or not at all;
   the switch itself is :mod:`edgeorch.models.deploy`'s, after the commit.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from ..records import frozen
from .explanations import EXPLAIN_KIND, explanation_of
from .gates import CheckResult, GateInputs, Holder, evaluate, verdict_of
from .spec import ModelDecl, ModelPolicy, default_policy

if TYPE_CHECKING:  # pragma: no cover
    from ..model import Pipeline
    from ..store import Store


@frozen
class Candidate:
    """A model output as described by the hashing worker (plain data)."""

    name: str
    artifact: dict[str, Any]
    metrics: dict[str, float]


class Refused(Exception):
    """The declared model output cannot be registered: the message says why (it becomes the attempt's reason)."""


def describe(out_dir: Path, decl: ModelDecl, path: str, metrics: str | None) -> Candidate:
    """The candidate at ``out_dir/path`` (``path`` and ``metrics`` with placeholders substituted).

    Raises :class:`Refused`. Reads every byte of the artifact: a worker thread's job.
    """
    from ..engine.inputs import InputError, hash_inputs  # the one rule of a folder's manifest

    where = f"model {decl.name}"
    target = out_dir / path if path else out_dir
    if not target.resolve().is_relative_to(out_dir.resolve()):
        raise Refused(f"{where}: the path leaves the task's output folder: {path}")
    if not os.path.lexists(target):
        raise Refused(f"{where}: the declared output {target} is missing")
    try:
        snap = hash_inputs("model", [(path or ".", str(target))], out_dir)
    except InputError as exc:
        raise Refused(f"{where}: cannot hash {target}: {str(exc).split(': ', 1)[-1]}") from None
    item = snap.items[0]
    artifact = {"kind": item.kind, "path": str(target), "sha256": item.sha256, "size": item.size,
                "files": item.files if item.kind == "folder" else 1, "members": list(item.members)}
    values: dict[str, float] = {}
    if metrics:
        mpath = out_dir / metrics
        if not mpath.resolve().is_relative_to(out_dir.resolve()):
            raise Refused(f"{where}: the metrics file leaves the task's output folder: {metrics}")
        values = read_metrics(mpath, where)
    return Candidate(decl.name, artifact, values)


def with_model(job: Any, out_dir: Path, decl: ModelDecl, values: Mapping[str, str]) -> Any:
    """``job()``'s file outcome (an ``edgeorch.engine.files.FileOutcome``) plus the described candidate of
    ``decl``, its paths' placeholders filled from ``values``; an outcome already refused is returned as is, and
    a candidate that cannot be described refuses it."""
    from dataclasses import replace

    from ..pipelines.substitute import substitute

    outcome = job()
    if outcome.refused:
        return outcome
    try:
        candidate = describe(out_dir, decl, substitute(decl.path, values) if decl.path else "",
                             substitute(decl.metrics, values) if decl.metrics else None)
    except Refused as exc:
        return replace(outcome, refused=str(exc))
    return replace(outcome, model=candidate)


def read_metrics(path: Path, where: str) -> dict[str, float]:
    """A metrics file: a JSON object whose values are finite numbers. Raises :class:`Refused` naming the key."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise Refused(f"{where}: the metrics file {path} is missing") from None
    except (OSError, ValueError) as exc:
        raise Refused(f"{where}: cannot read the metrics file {path}: {exc}") from None
    if not isinstance(data, dict):
        raise Refused(f"{where}: the metrics file {path} is not a JSON object (expected {{\"name\": number, ...}})")
    out: dict[str, float] = {}
    for key, value in data.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
            raise Refused(f"{where}: the metrics file {path}: {key!r} is {json.dumps(value)[:40]}, not a finite "
                          "number (a model's metrics are a JSON object of numbers)")
        out[key] = float(value)
    return out


def policy_of(pipeline: "Pipeline", name: str) -> ModelPolicy:
    """The pipeline's ``[models.NAME]`` with a relative ``deploy.dir`` made absolute (the pipeline file's folder)."""
    from dataclasses import replace

    policy = pipeline.models.get(name) or default_policy(name)
    folder = policy.deploy.dir
    if folder and not os.path.isabs(folder):
        folder = str((Path(pipeline.source_file).parent / folder).resolve())
        policy = replace(policy, deploy=replace(policy.deploy, dir=folder))
    return policy


def check_results(store: "Store", run_id: int, tasks: list[str]) -> dict[str, CheckResult]:
    """The verdict and result rows of each check task of the run (absent: it has no attempt with a verdict)."""
    out: dict[str, CheckResult] = {}
    for task in tasks:
        attempts = [a for a in store.attempts.of_run(run_id, task) if a.get("verdict")]
        if not attempts:
            continue
        rows = tuple({"metric": r["metric"], "value": r["value"], "verdict": r["verdict"], "column": r["column_name"]}
                     for r in store.outputs.results_of(run_id, task))
        out[task] = CheckResult(attempts[-1]["verdict"], rows)
    return out


def upstream_checks(pipeline: "Pipeline", task: str) -> list[str]:
    """The tasks of a built-in ``kind`` that ``task`` needs, directly or not (their results feed ``checks.*``)."""
    seen: set[str] = set()
    stack = list(pipeline.tasks[task].needs)
    while stack:
        up = stack.pop()
        if up not in seen:
            seen.add(up)
            stack.extend(pipeline.tasks[up].needs)
    return sorted(t for t in seen if pipeline.tasks[t].kind is not None)


def _checks_doc(store: "Store", pipeline: "Pipeline", run_id: int,
                checks: Mapping[str, CheckResult]) -> dict[str, Any]:
    """The version's ``checks``: each check task's verdict and rows; an ``explain`` task's also its
    ``explanation`` (importances with their intervals, which the rows alone do not keep)."""
    out: dict[str, Any] = {}
    for t, c in checks.items():
        out[t] = {"verdict": c.verdict, "rows": list(c.rows)}
        if pipeline.tasks[t].kind == EXPLAIN_KIND:
            out[t]["explanation"] = explanation_of(store.outputs.results_of(run_id, t))
    return out


def register(store: "Store", candidate: Candidate, *, pipeline: "Pipeline", task: str, run_id: int,
             attempt_id: int | None, params: Mapping[str, Any], actor: str | None = None) -> dict[str, Any]:
    """Record ``candidate`` as the next version, judge it, and queue its promotion (the caller holds the
    transaction). Returns ``{"version": row, "decision": {...} | None, "deployment": row | None,
    "unchanged": bool}``.

    A candidate whose artifact (sha256) and metrics are an existing version's adds nothing: a nightly run
    of a deterministic training task would otherwise pile up identical versions, each judged again against
    the champion it may be. The run's events say which version it reproduced (``model_unchanged``), and the
    result is that version with ``"unchanged": True``, no decision and no deployment. The same artifact with
    other metrics (evaluated on new data) is a new version.
    """
    name = candidate.name
    existing = store.models.same_as(name, candidate.artifact["sha256"], candidate.metrics)
    if existing is not None:
        store.models.record_unchanged(existing, run_id=run_id, task=task, actor=actor)
        return {"version": existing, "decision": None, "deployment": None, "unchanged": True}
    policy = policy_of(pipeline, name)
    owner = store.models.owner(name)
    if owner is not None and owner[0] != pipeline.name:
        # The front door refuses such a run (models/owners.py); one started before the owner's first version was
        # recorded is judged by the owner's policy all the same, never by its own.
        stored = (store.models.model(name) or {}).get("policy")
        policy = ModelPolicy.from_dict(stored) if stored else default_policy(name)
    checks = check_results(store, run_id, upstream_checks(pipeline, task))
    holders: dict[str, Holder] = {}
    if store.models.model(name) is not None:
        for alias, held in store.models.aliases(name).items():
            row = store.models.version(name, held)
            holders[alias] = Holder(held, row["metrics"])
    outcomes = evaluate(policy.gates, GateInputs(candidate.metrics, holders, checks))
    verdict = verdict_of(outcomes) if policy.gates else "none"
    inputs = [{"kind": c["kind"], "path": c["path"], "sha256": c["sha256"]}
              for c in store.lineage.consumed_by(run_id, task)]
    with store.transaction():
        version = store.models.register(
            name, artifact=candidate.artifact, metrics=candidate.metrics,
            checks=_checks_doc(store, pipeline, run_id, checks) or None,
            source={"run_id": run_id, "task": task, "attempt_id": attempt_id, "pipeline": pipeline.name,
                    "content_hash": pipeline.content_hash, "params": dict(params), "inputs": inputs},
            policy=policy.to_dict(), gate_verdict=verdict, actor=actor)
        decision: dict[str, Any] | None = None
        against = holders.get(policy.alias)
        if policy.gates:
            summary = gate_summary(name, version["version"], verdict, outcomes, policy.alias, against)
            decision = {"verdict": verdict, "summary": summary, "conditions": [o.to_dict() for o in outcomes]}
            store.models.record_decision(version["id"], kind="gates", verdict=verdict, conditions=decision["conditions"],
                                         summary=summary, alias=policy.alias,
                                         against=against.version if against else None, actor=actor)
        deployment = None
        if verdict != "failed" and policy.promote == "auto":
            canary = policy.strategy == "canary" and against is not None  # a first version has nothing to beat
            deployment = store.models.add_deployment(
                name, alias="canary" if canary else policy.alias, to_version=version["version"],
                action="canary_start" if canary else "promote", strategy="canary" if canary else policy.strategy,
                target=policy.to_dict(), actor=actor or f"pipeline:{pipeline.name}",
                reason=f"run {run_id} registered version {version['version']}"
                + ("; its gates passed" if policy.gates else ""))
    return {"version": version, "decision": decision, "deployment": deployment, "unchanged": False}


def gate_summary(name: str, version: int, verdict: str, outcomes: list[Any], alias: str,
                 against: Holder | None) -> str:
    """One sentence: what was decided and the first reason."""
    failed = [o for o in outcomes if o.verdict == "failed"]
    skipped = [o for o in outcomes if o.verdict == "skipped"]
    vs = f" against {alias} (version {against.version})" if against else ""
    if failed:
        return (f"{name} version {version} was blocked{vs}: {failed[0].why}"
                + (f" (and {len(failed) - 1} more condition(s) failed)" if len(failed) > 1 else ""))
    text = f"{name} version {version} passed its {len(outcomes)} condition(s){vs}"
    if skipped:
        text += f"; {len(skipped)} skipped: {skipped[0].why}"
    return text
