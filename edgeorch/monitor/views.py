"""The documents of ``edgeorch monitors`` and ``edgeorch why`` (ops and the offline CLI); reads only."""

from __future__ import annotations

import json
import os
import tomllib
from typing import Any, Mapping

from ..errors import NotFoundError
from ..model import inputs_moved_text
from ..textui import printable
from .rules import RuleState
from .spec import RuleSpec


def monitors_doc(store: Any, rules: dict[str, RuleSpec], problems: list[str], now: float) -> dict[str, Any]:
    """Every loaded rule with its shown state (ok, pending, firing, cooling, silenced), last value and firing.

    ``store`` None (no state file yet, ``edgeorch monitors`` without a daemon): no rule was ever evaluated.
    """
    out = []
    for name, spec in sorted(rules.items()):
        row = store.rules.get(name) if store is not None else None
        st = RuleState.from_row(row)
        last = store.rules.firings(name, limit=1) if store is not None else []
        # Until when the cooldown holds a new response back (None when it does not now): the README's "`edgeorch
        # monitors` says until when" was found only in the audit log.
        cooldown_end = st.last_fired_at + spec.cooldown if spec.cooldown and st.last_fired_at is not None else None
        day_end = (store.rules.day_limit_until(name, spec.max_per_day, now, dry_run=spec.dry_run)
                   if store is not None and spec.max_per_day is not None else None)
        out.append({**spec.to_dict(), "state": st.shown(now), "stored_state": st.state, "episode": st.episode,
                    "cooldown_until": cooldown_end if cooldown_end is not None and cooldown_end > now else None,
                    "max_per_day_until": day_end,
                    "consecutive": st.consecutive, "last_value": st.last_value,
                    "last_evaluated_at": st.last_evaluated_at, "last_fired_at": st.last_fired_at,
                    "silenced_until": st.silenced_until if st.silenced(now) else None,
                    "silence_reason": st.silence_reason if st.silenced(now) else None,
                    "last_signal": row.get("last_signal") if row else None,
                    "last_firing": last[0] if last else None})
    return {"rules": out, "problems": [*problems, *orphan_blocks(store, rules, now)], "now": now}


def orphan_blocks(store: Any, rules: Mapping[str, Any], now: float) -> list[str]:
    """A sentence for each promotion block in force whose rule is no longer loaded (its file or ``[[on]]`` was
    removed, renamed or is broken): nothing will lift it by itself. It is kept on purpose (a rules file being
    edited must not release a safety hold); the sentence says how to lift it. ``store`` None: none."""
    if store is None:
        return []
    return [f"the promotion block on model {b['model']} set by rule {b['rule']} is in force, but no loaded rule "
            f"is named {b['rule']}: nothing lifts it by itself (`edgeorch models unblock {b['model']} "
            f"--rule {b['rule']}` does)"
            for b in store.models.open_blocks(now=now) if b["rule"] and b["rule"] not in rules]


def why_doc(store: Any, run_id: int, waiting: Mapping[str, str] | None = None) -> dict[str, Any]:
    """What started run ``run_id`` and, for each task that waited, what it waited for (what the store records).

    ``started_by``: ``{"kind": "schedule", "fire_time"}``, ``{"kind": "drop", "files": [...]}`` (name, sha256,
    folder), ``{"kind": "rule", "rule", "signal", "value", "threshold", "condition", "source_run"}``, or
    ``{"kind": "person", "actor"}`` (the name and uid the daemon saw). A task's wait is split into waiting for
    its needs (the upstream tasks' ends) and waiting for its turn (queue, cores, GPUs: the lease it got), plus
    its retries (each earlier attempt's outcome). A task that has not started has ``not_started``: what it
    waits for now (``waiting``: task -> the resources queue's reason, from a running daemon), or its recorded
    reason (``upstream_failed``, cancelled); its needs that have not ended.
    """
    run = store.runs.get(run_id)  # NotFoundError names the run
    events = store.events.of_run(run_id)
    trigger = run["trigger"] or ""
    started: dict[str, Any]
    if trigger == "schedule":
        fire: dict[str, Any]
        fire = next((json.loads(e["data"]) for e in events if e["kind"] == "schedule_fire" and e.get("data")), {})
        started = {"kind": "schedule", "fire_time": fire.get("fire_time"), "missed": fire.get("missed"),
                   # The fire as its tasks got it: in the schedule's timezone (EDGEORCH_FIRE_TIME).
                   "fire_time_local": (run.get("env") or {}).get("EDGEORCH_FIRE_TIME")}
    elif trigger.startswith("input:"):
        files = [{"file": i["source_name"], "sha256": i["sha256"], "folder": i["watch_folder"], "input": i["id"],
                  "arrived_at": i["arrived_at"]} for i in store.inputs.all_of_run(run_id)]
        started = {"kind": "drop", "files": files}
    elif trigger == "rule":
        firing = store.rules.firing_of_run(run_id)
        if firing is None:
            started = {"kind": "rule", "rule": (run["actor"] or "").removeprefix("rule:")}
        else:
            sig = firing["signal"]
            started = {"kind": "rule", "rule": firing["rule"], "pipeline": firing["pipeline"],
                       "condition": sig.get("condition"), "value": firing["value"], "threshold": firing["threshold"],
                       "episode": firing["episode"], "fired_at": firing["fired_at"], "source_run": sig.get("run_id"),
                       "input_path": sig.get("input_path"), "input_sha256": sig.get("input_sha256"), "signal": sig}
    else:
        started = {"kind": "person", "trigger": trigger, "actor": run["actor"]}
    # A resume (`edgeorch retry`) queues the run again: a run_queued event whose message says "resumed", how many
    # tasks, and whether under the pipeline file as it was then (`retry --current`: its definition replaced).
    resumed = [{"actor": e["actor"], "at": e["ts"], "what": str(e["message"]).removeprefix("resumed").lstrip(": ")}
               for e in events if e["kind"] == "run_queued" and str(e.get("message") or "").startswith("resumed")]
    return {"run": run_id, "pipeline": run["pipeline"], "state": run["state"], "created_at": run["created_at"],
            "started_by": started, "resumed_by": resumed, "tasks": _waits(store, run, events, waiting or {}),
            "rules": _rules_on(store, run_id, events)}


def _rules_on(store: Any, run_id: int, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the monitoring rules decided on this run's outcome: each decision recorded with the run (pending,
    held by a cooldown, still firing, resolved) and each firing its signal came from (recorded with the run it
    started). "Why did this batch start nothing?" was answered by the audit log alone."""
    out = [{"rule": str(e["actor"] or "").removeprefix("rule:"), "action": e["kind"].removeprefix("rule_"),
            "at": e["ts"], "run_id": None, "message": e["message"]}
           for e in events if e["kind"].startswith("rule_") and e["kind"] != "rule_fired"]
    # The firings that answered (a held or deduped one is an event of this run already: said once).
    for f in store.rules.firings_from_run(run_id):
        if f["outcome"] != "fire":
            continue
        started = f" -> run {f['run_id']}" if f.get("run_id") else ""
        if f.get("dry_run"):
            how = "decided in a dry run: nothing was done"
        elif f["state"] == "failed":
            whys = [w for r in f.get("responses") or [] if (w := response_failure(r))]
            how = f"its response failed: {whys[0] if whys else 'see its responses'}"
        else:
            how = f"responses {f['state']}"
        out.append({"rule": f["rule"], "action": f["outcome"], "at": f["fired_at"], "run_id": f.get("run_id"),
                    "message": f"rule {f['rule']}: fired{started} (value {value_text(f.get('value'))}, episode {f['episode']}; "
                               f"{how})"})
    return sorted(out, key=lambda r: r["at"])


def value_text(v: Any) -> str:
    """A signal's value as the rules' own lines write it (4 significant digits: 34.84, not 34.838603258132935)."""
    return "none" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)


def response_failure(p: Any) -> str | None:
    """Why one recorded response of a firing did not do its part, or None (done, dry run, not needed)."""
    if not isinstance(p, dict) or p.get("dry_run"):
        return None
    if p.get("refused"):  # the error's first line (its hint is for a person at a terminal, not for a table)
        return f"{p.get('action')} refused: {str(p['refused']).splitlines()[0]}"
    if p.get("error"):
        return str(p["error"]).splitlines()[0]
    if p.get("action") == "notify" and p.get("exit_code") not in (None, 0):
        said = str(p.get("output") or "").strip().splitlines()
        return f"notify exited with code {p['exit_code']}" + (f": {said[-1]}" if said else "")
    return None


def _waits(store: Any, run: dict[str, Any], events: list[dict[str, Any]],
           waiting: Mapping[str, str]) -> list[dict[str, Any]]:
    try:
        text = store.pipelines.version(run["pipeline_version_id"])["source_text"]
        declared = tomllib.loads(text).get("tasks", {})
        needs = {t: list(d.get("needs", [])) for t, d in declared.items()}
        cached = {t for t, d in declared.items() if d.get("cache") is True}
    except (NotFoundError, tomllib.TOMLDecodeError, KeyError, AttributeError):
        needs, cached = {}, set()
    tasks = {t["name"]: t for t in store.runs.tasks_of(run["id"])}
    attempts: dict[str, list[dict[str, Any]]] = {}
    for a in store.attempts.of_run(run["id"]):
        attempts.setdefault(a["task"], []).append(a)
    leases = {e["task"]: e["message"] for e in events if e["kind"] == "lease_granted"}
    # Each start of the run: its first, then each resume (`edgeorch retry`). A task's waits count from the start
    # its attempts belong to: after a resume, the hours between the first run and the retry are nobody's wait.
    starts = sorted({run["started_at"] or run["created_at"], *(e["ts"] for e in events if e["kind"] == "run_running")})
    out = []
    for name, atts in attempts.items():
        last_start = atts[-1]["started_at"] or starts[-1]
        since = max((t for t in starts if t <= last_start), default=starts[0])
        first = next((a for a in atts if (a["started_at"] or since) >= since), atts[-1])
        ups = [(u, max([(a["finished_at"] or 0) for a in attempts.get(u, []) if (a["finished_at"] or 0) <= last_start]
                       or [0])) for u in needs.get(name, [])]
        ready = max([since] + [t for _, t in ups])
        doc: dict[str, Any] = {"task": name, "state": (tasks.get(name) or {}).get("state"),
                               "waited_for_needs": round(max(0.0, ready - since), 3),
                               "needs": [u for u, _ in ups],
                               "waited_for_turn": round(max(0.0, (first["started_at"] or ready) - ready), 3),
                               "lease": leases.get(name),
                               "retries": [{"attempt": a["number"], "state": a["state"], "exit_code": a["exit_code"],
                                            "reason": a["reason"]} for a in atts[:-1]]}
        if name in cached:
            doc["cache"] = cache_miss(store, run["pipeline"], first)
        if doc["state"] == "retry_wait":  # between attempts: `why` read as if the failed attempt held its lease
            row = tasks.get(name) or {}
            doc["next_attempt_at"] = row.get("next_attempt_at")
            doc["last_attempt"] = {"attempt": atts[-1]["number"], "state": atts[-1]["state"],
                                   "exit_code": atts[-1]["exit_code"], "reason": atts[-1]["reason"]}
        out.append(doc)
    # The tasks with no attempt: what each waits for now (a live daemon's queue), or why it never ran (a cache
    # hit among them: which run's result it reused; `why` said nothing of them).
    for name, t in tasks.items():
        if name in attempts or t["state"] == "succeeded" or (t["state"] == "skipped" and not t.get("reason")):
            continue
        open_needs = [u for u in needs.get(name, []) if (tasks.get(u) or {}).get("state") not in ("succeeded",
                                                                                                 "skipped")]
        why = waiting.get(name) or t.get("reason") or (
            f"waits for {', '.join(open_needs)}" if open_needs else "waits for its turn in the queue")
        out.append({"task": name, "state": t["state"], "waited_for_needs": 0.0, "needs": open_needs,
                    "waited_for_turn": 0.0, "lease": None, "retries": [], "not_started": why})
    return out


def cache_miss(store: Any, pipeline: str, attempt: dict[str, Any]) -> str:
    """Why a ``cache = true`` task ran instead of reusing a result: against the last success of the same task
    before ``attempt`` (the first attempt of this run), what differs. A run's hits need no words (``show`` says
    "cache hit"); a miss looked like any run."""
    prev = store.outputs.last_success_before(pipeline, attempt["task"], attempt["id"])
    if prev is None:
        return "no earlier success of this task to reuse"
    where = f"run {prev['run_id']} (the last success before)"
    if prev["definition_hash"] != attempt["definition_hash"]:
        return f"its definition differs from {where}'s: the task's table in the pipeline file changed"
    if prev["input_hash"] == attempt["input_hash"]:
        if prev.get("inputs_moved"):
            return f"{where} had the same definition and inputs, but {_inputs_moved(prev['inputs_moved'])}"
        before = sorted(a["name"] for a in store.outputs.artifacts_of_attempt(prev["id"]))
        now = sorted(a["name"] for a in store.outputs.artifacts_of_attempt(attempt["id"]))
        if now and before != now:  # named by {run_id} or {attempt}: said "changed or removed since", files intact
            return (f"{where} had the same definition and inputs, but its outputs have other names "
                    f"({', '.join(before)} against {', '.join(now)}): an output named by {{run_id}} or {{attempt}} "
                    "never matches another run's, so it is never reused")
        return (f"{where} had the same definition and inputs, but its recorded outputs were changed or removed "
                "since (every reuse re-hashes them first)")
    changes = _consumed_changes(store.lineage.consumed_by_attempt(prev["id"]),
                                store.lineage.consumed_by_attempt(attempt["id"]))
    changes += _param_changes(store.runs.get(prev["run_id"])["params"], store.runs.get(attempt["run_id"])["params"])
    said = (f"its inputs differ from {where}'s: " +
            (", ".join(changes) if changes else "what an upstream task made, or what an input names, differs"))
    # An older success with this very key that is never reused (its inputs moved while it ran) is the hit the
    # user expected: said too (why named only the run in between, whose inputs differ).
    same = store.outputs.same_key_not_reused(pipeline, attempt["task"], attempt["definition_hash"],
                                             attempt["input_hash"], attempt["id"])
    if same is not None:
        said += f"; run {same['run_id']} had this task's very inputs, but {_inputs_moved(same['inputs_moved'])}"
    return said


def _inputs_moved(value: str) -> str:
    """Why an attempt with the same key is never reused (``attempts.inputs_moved``), said whole."""
    return (f"{printable(inputs_moved_text(value))}: what it made may come from another version of them, so it is "
            "never reused")


def _consumed_changes(before: list[dict[str, Any]], now: list[dict[str, Any]], shown: int = 3) -> list[str]:
    """What an attempt read that differs from another's: changed, new, gone (at most ``shown``).

    An upstream task's output is known by that task and the file's name (each run writes it under its own
    folder: by path, every one read as new); a declared input by its path."""
    def key(r: dict[str, Any]) -> str:
        if r.get("source_task"):
            return f"{r['source_task']}'s {os.path.basename(r['path'])}"
        return str(r["path"])

    old = {key(r): r["sha256"] for r in before}
    new = {key(r): r["sha256"] for r in now}
    out = [f"{printable(p)} changed (sha256 {old[p][:12]} -> {new[p][:12]})" for p in new if p in old and old[p] != new[p]]
    out += [f"{printable(p)} is new" for p in new if p not in old]
    out += [f"{printable(p)} is no longer read" for p in old if p not in new]
    return out[:shown] + ([f"and {len(out) - shown} more"] if len(out) > shown else [])


def _param_changes(before: Any, now: Any) -> list[str]:
    """The run params that differ (``epochs 41 -> 42``): every param is part of every task's cache key."""
    old = json.loads(before) if isinstance(before, str) else dict(before or {})
    new = json.loads(now) if isinstance(now, str) else dict(now or {})
    return [f"param {printable(k)} {json.dumps(old.get(k))} -> {json.dumps(new.get(k))}"
            for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
