"""The JSON documents of ``edgeorch models list|show|versions|diff|why`` and of the ``models.*`` read ops.

One function per document, over a store (the daemon's, or the state file
opened read-only by the CLI without a daemon), so both paths answer with
the same keys. :func:`why_text` turns a ``why`` document into plain words.

Text others chose (a promotion's ``--reason``, an actor, the output of a
health or reload command in an outcome, a condition's words) goes into the
plain words made :func:`~edgeorch.textui.printable`, as ``models show``'s
tables show it: a terminal escape or a bidi override in it can neither
rewrite the operator's terminal nor forge a line (docs/cli.md). The other
JSON fields keep the text as recorded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import NotFoundError
from ..textui import printable
from .deploy import SUPERSEDED
from .explanations import explanations_of
from .spec import ModelPolicy

if TYPE_CHECKING:  # pragma: no cover
    from ..store import Store


def listing(store: "Store") -> dict[str, Any]:
    """Every model: versions, latest, aliases, when it last changed."""
    return {"models": store.models.listing()}


def version_doc(v: dict[str, Any], aliases: dict[str, int] | None = None) -> dict[str, Any]:
    """A version as the documents show it (the raw row less internal ids; ``aliases`` that point at it)."""
    out = {k: v[k] for k in ("model", "version", "created_at", "kind", "path", "sha256", "size", "files",
                             "metrics", "checks", "run_id", "task", "attempt_id", "pipeline", "content_hash",
                             "params", "inputs", "gate_verdict")}
    if aliases is not None:
        out["aliases"] = sorted(a for a, n in aliases.items() if n == v["version"])
    return out


def versions(store: "Store", name: str) -> dict[str, Any]:
    store.models.require(name)
    aliases = store.models.aliases(name)
    return {"model": name, "aliases": aliases,
            "versions": [version_doc(v, aliases) for v in store.models.versions(name)]}


def show_version(store: "Store", name: str, version: int) -> dict[str, Any]:
    """One version (``edgeorch models show NAME VERSION``): its row as :func:`version_doc` shows it, and
    ``explanations`` (task -> feature importances with intervals) of the explain tasks its registration needed."""
    store.models.require(name)
    v = store.models.version(name, version)
    doc = version_doc(v, store.models.aliases(name))
    doc["explanations"] = explanations_of(v.get("checks"))
    return doc


def show(store: "Store", name: str, *, history: int = 20, declared: Any = None) -> dict[str, Any]:
    """A model: its policy (gates, target, strategy), aliases, recent alias moves, deployments, canary, and the
    promotion ``blocks`` in force (:mod:`edgeorch.models.blocks`).

    ``policy`` is the one recorded at the last registration (what a promotion by hand deploys with). ``declared``:
    the ``[models.NAME]`` the loaded pipelines declare now (a ``ModelPolicy``, or None); ``policy_changed`` lists
    the keys where it differs (an edited strategy or canary window takes effect at the next registration)."""
    m = store.models.require(name)
    policy = ModelPolicy.from_dict(m["policy"]) if m.get("policy") else ModelPolicy(name=name)
    vs = store.models.versions(name)
    recorded = policy.to_dict()
    now = declared.to_dict() if declared is not None else None
    changed = sorted(k for k in set(recorded) | set(now or {}) if now is not None and recorded.get(k) != now.get(k))
    return {"model": name, "created_at": m["created_at"], "versions": len(vs),
            "latest": vs[-1]["version"] if vs else None, "aliases": store.models.aliases(name),
            "policy": recorded, "policy_changed": changed, "history": store.models.alias_history(name, limit=history),
            "deployments": store.models.deployments(name, limit=history), "canary": store.models.canary(name),
            "blocks": store.models.blocks(name)}


def declared_policy(store: "Store", pipelines: Any, name: str) -> Any:
    """The ``[models.NAME]`` policy the loaded ``pipelines`` (name -> Pipeline) declare for model ``name``: its
    owner's (the pipeline that registered its first version: the one whose declaration judges its versions,
    :mod:`.owners`), else the one declaration when the model has no version yet; None when none applies."""
    owner = store.models.owner(name)
    if owner is not None:
        mine = pipelines.get(owner[0])
        return mine.models.get(name) if mine is not None else None
    found = [p.models[name] for p in pipelines.values() if name in p.models]
    return found[0] if len(found) == 1 else None


def diff(store: "Store", name: str, a: int, b: int) -> dict[str, Any]:
    """Two versions side by side: metrics (with b - a), content, params, pipeline, inputs, checks."""
    va, vb = store.models.version(name, a), store.models.version(name, b)
    keys = sorted(set(va["metrics"]) | set(vb["metrics"]))
    metrics = [{"metric": k, "a": va["metrics"].get(k), "b": vb["metrics"].get(k),
                "delta": (vb["metrics"][k] - va["metrics"][k]) if k in va["metrics"] and k in vb["metrics"] else None}
               for k in keys]
    pa, pb = va.get("params") or {}, vb.get("params") or {}
    params = [{"param": k, "a": pa.get(k), "b": pb.get(k)} for k in sorted(set(pa) | set(pb)) if pa.get(k) != pb.get(k)]
    ia = {i["path"]: i["sha256"] for i in va.get("inputs") or []}
    ib = {i["path"]: i["sha256"] for i in vb.get("inputs") or []}
    inputs = [{"path": p, "a": ia.get(p), "b": ib.get(p)} for p in sorted(set(ia) | set(ib)) if ia.get(p) != ib.get(p)]
    ca, cb = va.get("checks") or {}, vb.get("checks") or {}
    checks = [{"task": t, "a": (ca.get(t) or {}).get("verdict"), "b": (cb.get(t) or {}).get("verdict")}
              for t in sorted(set(ca) | set(cb))]
    return {"model": name, "a": version_doc(va), "b": version_doc(vb), "same_content": va["sha256"] == vb["sha256"],
            "same_pipeline": va["content_hash"] == vb["content_hash"], "metrics": metrics, "params": params,
            "inputs": inputs, "checks": checks}


def why(store: "Store", name: str, version: int) -> dict[str, Any]:
    """Everything decided about a version: its gates (each condition), health checks, canaries, the aliases it
    held and holds, and a plain-words ``text``."""
    v = store.models.version(name, version)
    aliases = store.models.aliases(name)
    decisions = store.models.decisions(v["id"])
    moves = [h for h in store.models.alias_history(name, limit=1000) if version in (h["to_version"], h["from_version"])]
    doc = {"model": name, "version": version, "gate_verdict": v["gate_verdict"], "run_id": v["run_id"],
           "task": v["task"], "created_at": v["created_at"], "metrics": v["metrics"],
           "aliases": sorted(a for a, n in aliases.items() if n == version), "current_aliases": aliases,
           "decisions": decisions, "alias_moves": list(reversed(moves)),
           # The deployments that tried to move an alias to it and did not (undone by a block or a restart,
           # failed, rolled back, or still going): a version that passed its gates and is served nowhere says why.
           "deployments": [{k: d.get(k) for k in ("id", "alias", "action", "state", "step", "outcome")}
                           for d in reversed(store.models.deployments(name, limit=1000))
                           if d["to_version"] == version and d["state"] != "succeeded"]}
    try:
        run = store.runs.get(v["run_id"]) if v["run_id"] is not None else None
    except NotFoundError:  # removed by retention: its state is not known any more
        run = None
    doc["run_state"], doc["run_reason"] = (run["state"], run.get("reason")) if run else (None, None)
    doc["text"] = why_text(doc)
    return doc


def why_text(doc: dict[str, Any]) -> str:
    """A ``why`` document in plain words (what ``edgeorch models why`` prints); every recorded text in it made
    :func:`~edgeorch.textui.printable` (one line per fact, whatever a reason or a health check's output holds)."""
    name, version = doc["model"], doc["version"]
    origin = f" (from run {doc['run_id']}, task {_p(doc['task'])})" if doc.get("run_id") is not None else ""
    lines = [f"{name} version {version}{origin}"]
    if doc.get("run_state") in ("failed", "cancelled"):  # said: a smoke test after training failed, without a word
        why = f" ({_p(doc['run_reason'])})" if doc.get("run_reason") else ""
        lines.append(f"  Its run {doc['run_id']} {doc['run_state']}{why} after registering it: a version is judged "
                     "by its gates when its task ends; later tasks of the run do not hold it back.")
    gates = [d for d in doc["decisions"] if d["kind"] == "gates"]
    if not gates:
        lines.append("  No gates were declared for it: nothing blocked it.")
    for d in gates:
        against = f" against version {d['against_version']} ({d['alias']})" if d.get("against_version") else ""
        if d["verdict"] == "failed":
            lines.append(f"  Blocked by its gates{against}: it is kept as a version but never moves an alias.")
        else:
            lines.append(f"  Passed its gates{against}.")
        for c in d["conditions"]:
            mark = {"passed": "ok", "failed": "FAILED", "skipped": "skipped"}.get(c["verdict"], c["verdict"])
            lines.append(f"    {mark:8} {_p(c['condition'])}: {_p(c['why'])}")
    for d in doc["decisions"]:
        if d["kind"] != "gates":
            lines.append(f"  {_p(d['kind'].capitalize())} ({_p(d['verdict'])}): {_p(d['summary'])}")
    for h in doc["alias_moves"]:
        who = f" by {_p(h['actor'])}" if h.get("actor") else ""
        why = f": {_p(h['reason'])}" if h.get("reason") else ""
        if h["to_version"] == version:
            lines.append(f"  {h['alias']} moved to it ({h['action']}{who}){why}")
        else:
            to = "no version" if h["to_version"] is None else f"version {h['to_version']}"
            lines.append(f"  {h['alias']} moved away from it to {to} ({h['action']}{who}){why}")
    for d in doc.get("deployments") or []:
        outcome = str(d.get("outcome") or "")
        gone = "files changed since it was registered" in outcome or "files are gone" in outcome
        retry = f"edgeorch models promote {name} {version} --alias {d['alias']}"
        again = ("" if outcome.endswith(SUPERSEDED) else  # needless, another had moved the alias: nothing to retry
                 "" if retry in outcome else  # said by the outcome already (a canary start left undone): once
                 f" (its registered files are not what was registered: register the model again, from a run of "
                 f"its pipeline; promoting this version again fails the same way)" if gone else
                 f" ({retry} tries again)" if d["state"] in ("undone", "failed") else
                 f" (fix what failed, then {retry})" if d["state"] == "rolled_back" else "")
        lines.append(f"  Deployment {d['id']} ({d['action']} to {d['alias']}) {d['state']}: "
                     f"{_p(outcome) or 'at step ' + str(d.get('step'))}{again}")
    held = doc["aliases"]
    lines.append(f"  Now: {', '.join(held)} {'points' if len(held) == 1 else 'point'} at it." if held else
                 "  Now: no alias points at it" + (
                     f" ({', '.join(f'{a} is version {n}' for a, n in sorted(doc['current_aliases'].items()))})."
                     if doc["current_aliases"] else "."))
    return "\n".join(lines)


def _p(text: Any) -> str:
    """A recorded text as plain words show it: :func:`~edgeorch.textui.printable` (None as '')."""
    return "" if text is None else printable(str(text))


def event_line(ev: dict[str, Any]) -> str:
    """A ``model`` item of the events stream as one line (the CLI's run progress); a deployment's outcome (a
    health check's output) made :func:`~edgeorch.textui.printable`."""
    if ev["state"] == "registered":
        verdict = {"passed": "passed its gates", "failed": "BLOCKED by its gates", "none": "registered"}.get(
            ev["gate_verdict"], ev["gate_verdict"])
        line = f"model {ev['model']} version {ev['version']}: {verdict}"
        if ev["gate_verdict"] == "failed":
            line += f" (edgeorch models why {ev['model']} {ev['version']})"
        dep = ev.get("deployment")  # a run's document: what its promotion did
        if not dep and ev.get("deployment_id"):  # the live item: its promotion is queued, and ends after the run
            line += (f"; its deployment follows (a health window may outlast the run): `edgeorch models show "
                     f"{ev['model']}` says how it ends")
        if dep:
            if dep["state"] == "succeeded":
                line += f"; promoted: {dep['alias']} -> version {ev['version']}"
            elif dep["state"] in ("pending", "running"):
                line += f"; its promotion to {dep['alias']} is {dep['state']}"
            else:
                line += f"; NOT promoted ({dep['state']}: {_p(dep.get('outcome')) or 'see edgeorch models show'})"
        return line
    if ev["state"] == "unchanged":
        return (f"model {ev['model']}: unchanged, the same artifact and metrics as version {ev['version']} "
                "(no new version)")
    if ev["state"] == "observed":
        return f"model {ev['model']}: observed " + "; ".join(
            f"{alias} " + ", ".join(f"{k}={v:g}" for k, v in sorted(m.items())) for alias, m in sorted(ev["values"].items()))
    target = "removed" if ev.get("to_version") is None else f"-> version {ev['to_version']}"
    line = f"model {ev['model']}: {ev['alias']} {target}: {ev['state']}"
    return line + (f": {_p(ev['outcome'])}" if ev.get("outcome") and ev["state"] != "running" else "")
