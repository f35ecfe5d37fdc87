"""A rule's signal: read from the state file (reads only) into one JSON-ready document.

:func:`result_value` is pure (a check task's result rows -> the value); :func:`read` asks the store. The
document carries ``value`` (None: no signal yet) and what explains it: the run and task it came from, the
input file and its sha256 when a drop folder started that run, the run's params, and per signal the
details (drifted columns, counts, the age; a model metric's version, alias and observation).
"""

from __future__ import annotations

from typing import Any

from .spec import RuleSpec

DRIFTED = ("drift",)
TESTED = ("ok", "drift")


def result_value(spec: RuleSpec, rows: list[dict[str, Any]]) -> tuple[float | None, dict[str, Any]]:
    """The value of a result signal over one task's result rows (``task_results`` of its latest attempt).

    ``drift_share``: drifted columns / tested columns (no tested column: None); ``violations``: rows whose
    verdict is ``violation``; ``metric``: the largest value among the rows of that metric (and column). No
    matching row: None (the task recorded nothing this rule reads).
    """
    if not rows:
        return None, {}
    if spec.signal == "drift_share":
        tested = [r for r in rows if r.get("verdict") in TESTED]
        drifted = [r["column_name"] for r in tested if r.get("verdict") in DRIFTED]
        if not tested:
            return None, {}
        return len(drifted) / len(tested), {"drifted": drifted, "n_tested": len(tested)}
    if spec.signal == "violations":
        bad = [f"{r.get('column_name')}:{r.get('metric')}" for r in rows if r.get("verdict") == "violation"]
        return float(len(bad)), {"violations": bad[:50]}
    hits = [r for r in rows if r.get("metric") == spec.metric and r.get("value") is not None
            and (spec.column is None or r.get("column_name") == spec.column)]
    if not hits:
        return None, {}
    top = max(hits, key=lambda r: r["value"])
    return float(top["value"]), {"column": top.get("column_name"), "rows": len(hits)}


def read(store: Any, spec: RuleSpec, *, run: dict[str, Any] | None, now: float, since: float) -> dict[str, Any]:
    """The signal document of ``spec`` now. ``run``: the finished run a result/failure-rate signal evaluates;
    ``since``: when to count a freshness age from when nothing ever arrived (the monitor's start)."""
    doc: dict[str, Any] = {"rule": spec.name, "pipeline": spec.pipeline, "signal": spec.signal,
                           "condition": spec.describe(), "op": spec.op, "threshold": spec.threshold, "at": now}
    if run is not None:
        doc.update(run_id=run["id"], run_state=run["state"], params=run.get("params") or {})
        inp = store.inputs.of_run(run["id"])
        if inp is not None:
            doc.update(input_path=inp.get("inbox_path") or inp.get("source_path"), input_sha256=inp.get("sha256"),
                       input_id=inp["id"])
    if spec.signal in ("drift_share", "violations", "metric"):
        assert run is not None
        rows = store.outputs.results_of(run["id"], spec.task)
        value, details = result_value(spec, rows)
        doc.update(task=spec.task, value=value, **details)
    elif spec.signal == "failure_rate":
        failed, finished = store.rules.outcomes_since(spec.watched, now - spec.window)
        doc.update(value=(failed / finished) if finished else None, failed=failed, finished=finished,
                   window=spec.window, watched=spec.watched)
    elif spec.signal == "model_metric":
        doc.update(model_signal(store, spec))
    else:
        last = (store.rules.last_arrival(spec.watched) if spec.source == "drop"
                else store.rules.last_success(spec.watched))
        doc.update(value=max(0.0, now - (last if last is not None else since)), last=last, source=spec.source,
                   watched=spec.watched, threshold=spec.max_age)
    return doc


def model_signal(store: Any, spec: RuleSpec) -> dict[str, Any]:
    """A ``model_metric`` signal: the version ``spec.alias`` of ``spec.model`` points at now and its metric.

    ``realized``: the newest value of ``spec.metric`` observed for that version since the alias moved to it
    (what the serving process or a scoring task reported: ``edgeorch models observe``), with its ``run_id``;
    ``registered``: the value the version was registered with. ``mark`` orders what was read, so each new fact
    is evaluated once: the observation's id (realized) or the alias move's id (registered). No model, no
    alias, no observation since the move, or no such metric: ``value`` None (no signal yet).
    """
    out: dict[str, Any] = {"model": spec.model, "alias": spec.alias, "metric": spec.metric, "source": spec.source,
                           "version": None, "value": None, "mark": None}
    if spec.model is None or store.models.model(spec.model) is None:
        return out
    holder = store.models.holder(spec.model, spec.alias)
    moves = store.models.alias_history(spec.model, spec.alias, limit=1)
    if holder is None or not moves:
        return out
    out["version"] = holder["version"]
    out["moved_at"] = moves[0]["moved_at"]  # what the value is of begins here (an episode of another ends)
    if spec.source == "registered":
        value = (holder.get("metrics") or {}).get(spec.metric)
        out.update(value=None if value is None else float(value), mark=moves[0]["id"],
                   moved_at=moves[0]["moved_at"])
        return out
    seen = store.models.observations(spec.model, holder["version"], spec.metric, since=moves[0]["moved_at"])
    if seen:
        last = seen[-1]
        out.update(value=float(last["value"]), mark=last["id"], observed_at=last["observed_at"],
                   run_id=last["run_id"], observations=len(seen))
    return out


def template_values(doc: dict[str, Any]) -> dict[str, Any]:
    """What ``{...}`` placeholders read from a signal document (``params.NAME`` from the run's params)."""
    import json

    out = {k: doc.get(k) for k in ("rule", "pipeline", "run_id", "value", "threshold", "input_path", "input_sha256",
                                   "model", "version")}
    out["signal"] = json.dumps(doc, sort_keys=True, default=str)
    for k, v in (doc.get("params") or {}).items():
        out[f"params.{k}"] = v
    return out
