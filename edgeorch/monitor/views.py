"""The documents of ``edgeorch monitors`` and ``edgeorch why`` (ops and the offline CLI); reads only."""

from __future__ import annotations

import json
import tomllib
from typing import Any, Mapping

from ..errors import NotFoundError
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
        out.append({**spec.to_dict(), "state": st.shown(now), "stored_state": st.state, "episode": st.episode,
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


def why_doc(store: Any, run_id: int) -> dict[str, Any]:
    """What started run ``run_id`` and, for each task that waited, what it waited for (what the store records).

    ``started_by``: ``{"kind": "schedule", "fire_time"}``, ``{"kind": "drop", "files": [...]}`` (name, sha256,
    folder), ``{"kind": "rule", "rule", "signal", "value", "threshold", "condition", "source_run"}``, or
    ``{"kind": "person", "actor"}`` (the name and uid the daemon saw). A task's wait is split into waiting for
    its needs (the upstream tasks' ends) and waiting for its turn (queue, cores, GPUs: the lease it got), plus
    its retries (each earlier attempt's outcome).
    """
    run = store.runs.get(run_id)  # NotFoundError names the run
    events = store.events.of_run(run_id)
    trigger = run["trigger"] or ""
    started: dict[str, Any]
    if trigger == "schedule":
        fire: dict[str, Any]
        fire = next((json.loads(e["data"]) for e in events if e["kind"] == "schedule_fire" and e.get("data")), {})
        started = {"kind": "schedule", "fire_time": fire.get("fire_time"), "missed": fire.get("missed")}
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
    resumed = [{"actor": e["actor"], "at": e["ts"]} for e in events if e["kind"] == "run_resumed"]
    return {"run": run_id, "pipeline": run["pipeline"], "state": run["state"], "created_at": run["created_at"],
            "started_by": started, "resumed_by": resumed, "tasks": _waits(store, run, events)}


def _waits(store: Any, run: dict[str, Any], events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    try:
        text = store.pipelines.version(run["pipeline_version_id"])["source_text"]
        needs = {t: list(d.get("needs", [])) for t, d in tomllib.loads(text).get("tasks", {}).items()}
    except (NotFoundError, tomllib.TOMLDecodeError, KeyError, AttributeError):
        needs = {}
    tasks = {t["name"]: t for t in store.runs.tasks_of(run["id"])}
    attempts: dict[str, list[dict[str, Any]]] = {}
    for a in store.attempts.of_run(run["id"]):
        attempts.setdefault(a["task"], []).append(a)
    leases = {e["task"]: e["message"] for e in events if e["kind"] == "lease_granted"}
    out = []
    for name, atts in attempts.items():
        first = atts[0]
        ups = [(u, max((a["finished_at"] or 0) for a in attempts.get(u, [{"finished_at": 0}]))) for u in needs.get(name, [])]
        ready = max([run["started_at"] or run["created_at"]] + [t for _, t in ups])
        doc: dict[str, Any] = {"task": name, "state": (tasks.get(name) or {}).get("state"),
                               "waited_for_needs": round(max(0.0, ready - (run["started_at"] or run["created_at"])), 3),
                               "needs": [u for u, _ in ups],
                               "waited_for_turn": round(max(0.0, (first["started_at"] or ready) - ready), 3),
                               "lease": leases.get(name),
                               "retries": [{"attempt": a["number"], "state": a["state"], "exit_code": a["exit_code"],
                                            "reason": a["reason"]} for a in atts[:-1]]}
        out.append(doc)
    return out
