"""Models: tables ``models``, ``model_versions``, ``model_decisions``, ``model_aliases``,
``model_alias_history``, ``model_deployments``, ``model_canaries``, ``model_observations`` (docs/models.md), and
``model_blocks`` (promotions blocked by a monitoring rule or a person, docs/monitoring.md).

Contract:

- Every method that writes is one transaction of its own, or a SAVEPOINT
  inside the caller's ``with store.transaction():`` (the engine registers a
  version inside the attempt's outcome transaction: a crash never leaves a
  half-registered version), and appends its audit record
  (:func:`~edgeorch.store.audit.write_audit`) in that same transaction:
  ``model_registered`` (with an ``events`` row of the run), ``model_decided``,
  ``model_alias_moved``, ``model_deployment`` (every step and state of a
  deployment), ``model_canary``, and nothing for observations (the run that
  reported them is recorded).
- Versions are numbered 1, 2, ... per model, in registration order; a
  version is never changed or removed (its files live in its run's output
  folder; a deployment copies them into the serving folder).
- An alias points at one version; moving it writes the new pointer and one
  ``model_alias_history`` row (from, to, action, actor, reason, deployment)
  together, so the history is the complete story and a rollback can read
  the previous holder from it.
- A deployment is a durable intent: inserted ``pending`` before anything on
  disk changes, then ``running`` through its steps (``staged``, ``checked``,
  ``switched``, ``reloaded``, ``verified``) to a final state (``succeeded``,
  ``undone``, ``rolled_back``, ``failed``). At most one deployment of a
  model is ``running`` (a unique index); what recovery does with an
  unfinished one is :mod:`edgeorch.models.deploy`'s.
- Reads return plain dicts with JSON columns decoded.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any, Iterable, Mapping

from ..errors import ConflictError, NotFoundError
from .audit import write_audit
from .db import Database
from .events import write_event
from .lineage import write_manifest

FINAL_DEPLOYMENT_STATES = ("succeeded", "undone", "rolled_back", "failed")
OPEN_DEPLOYMENT_STATES = ("pending", "running")
OPEN_CANARY_STATES = ("running", "deciding")

_JSON_COLUMNS = ("metrics", "checks", "params", "inputs", "conditions", "target", "policy", "spec")


def _decode(row: Mapping[str, Any] | sqlite3.Row) -> dict[str, Any]:
    d = dict(row)
    for key in _JSON_COLUMNS:
        if key in d and isinstance(d[key], str):
            d[key] = json.loads(d[key])
    return d


ROLLBACK_DEPTH = 3
"""How many rollbacks in a row of each alias have their targets' runs kept from retention (``retention/holds.py``)."""


def subject(name: str, version: int | None = None) -> str:
    """The audit subject of a model or one of its versions: ``model:NAME`` or ``model:NAME/V``."""
    return f"model:{name}" if version is None else f"model:{name}/{version}"


class Models:
    """``store.models``: see the module docstring."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # -- registering ------------------------------------------------------------------------------

    def register(self, name: str, *, artifact: Mapping[str, Any], metrics: Mapping[str, float],
                 checks: Mapping[str, Any] | None = None, source: Mapping[str, Any] | None = None,
                 policy: Mapping[str, Any] | None = None, gate_verdict: str = "none",
                 actor: str | None = None) -> dict[str, Any]:
        """Add the next version of ``name`` (the model is made on first use); returns the version row.

        ``artifact``: ``kind`` (file | folder), ``path``, ``sha256`` (a
        folder's: its manifest hash), ``size``, ``files`` and for a folder
        ``members`` (``(name, sha256, size)``, stored once per manifest in
        ``manifest_files``). ``source``: ``run_id``, ``task``, ``attempt_id``,
        ``pipeline``, ``content_hash``, ``params``, ``inputs``. ``policy``
        (the ``[models.NAME]`` declaration) replaces the model's stored one
        when given. ``gate_verdict``: ``passed``, ``failed`` or ``none`` (no gates).
        """
        src = dict(source or {})
        now = self._db.clock()
        with self._db.transaction():
            conn = self._db.conn
            row = conn.execute("SELECT id FROM models WHERE name = ?", (name,)).fetchone()
            if row is None:
                model_id = int(conn.execute("INSERT INTO models (name, created_at, policy) VALUES (?, ?, ?)",
                                            (name, now, json.dumps(policy) if policy else None)).lastrowid or 0)
            else:
                model_id = int(row[0])
                if policy is not None:
                    conn.execute("UPDATE models SET policy = ? WHERE id = ?", (json.dumps(policy), model_id))
            version = int(conn.execute("SELECT COALESCE(MAX(version), 0) + 1 FROM model_versions WHERE model_id = ?",
                                       (model_id,)).fetchone()[0])
            cur = conn.execute(
                "INSERT INTO model_versions (model_id, version, created_at, kind, path, sha256, size, files, metrics,"
                " checks, run_id, task, attempt_id, pipeline, content_hash, params, inputs, gate_verdict)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (model_id, version, now, artifact["kind"], artifact["path"], artifact["sha256"], artifact["size"],
                 artifact.get("files"), json.dumps(dict(metrics), sort_keys=True),
                 json.dumps(checks) if checks else None, src.get("run_id"), src.get("task"), src.get("attempt_id"),
                 src.get("pipeline"), src.get("content_hash"),
                 json.dumps(src["params"], sort_keys=True) if src.get("params") is not None else None,
                 json.dumps(src["inputs"]) if src.get("inputs") is not None else None, gate_verdict))
            if artifact.get("members"):
                write_manifest(self._db, artifact["sha256"], artifact["members"])
            message = f"{name} version {version} registered ({artifact['kind']} {artifact['sha256'][:12]})"
            data = {"model": name, "version": version, "sha256": artifact["sha256"], "metrics": dict(metrics)}
            if src.get("run_id") is not None:
                write_event(self._db, src["run_id"], src.get("task"), "model_registered", message, actor, now, data)
            else:
                write_audit(self._db, actor, "model_registered", subject(name, version), data, ts=now)
            return self._version_row(int(cur.lastrowid or 0))

    def record_decision(self, version_id: int, *, kind: str, verdict: str, conditions: Iterable[Mapping[str, Any]],
                        summary: str, alias: str | None = None, against: int | None = None,
                        deployment_id: int | None = None, actor: str | None = None) -> int:
        """Record a decision about a version (``kind``: gates, health, canary, rollback) with every condition's
        value, threshold and verdict; for ``gates`` the version's ``gate_verdict`` is set with it. Returns its id."""
        conds = [dict(c) for c in conditions]
        now = self._db.clock()
        with self._db.transaction():
            v = self._version_row(version_id)
            cur = self._db.conn.execute(
                "INSERT INTO model_decisions (version_id, kind, verdict, alias, against_version, conditions, summary,"
                " deployment_id, decided_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (version_id, kind, verdict, alias, against, json.dumps(conds), summary, deployment_id, now))
            if kind == "gates":
                self._db.conn.execute("UPDATE model_versions SET gate_verdict = ? WHERE id = ?", (verdict, version_id))
            write_audit(self._db, actor, "model_decided", subject(v["model"], v["version"]),
                        {"kind": kind, "verdict": verdict, "alias": alias, "against_version": against,
                         "summary": summary, "conditions": conds, "deployment_id": deployment_id}, ts=now)
            return int(cur.lastrowid or 0)

    # -- aliases ------------------------------------------------------------------------------------

    def move_alias(self, name: str, alias: str, version: int | None, *, action: str, actor: str | None,
                   reason: str | None, deployment_id: int | None = None) -> int | None:
        """Point ``alias`` at ``version`` (None: remove it); one history row; returns the version it pointed at.

        Raises :class:`NotFoundError` for an unknown model or version.
        """
        now = self._db.clock()
        with self._db.transaction():
            model_id = self._model_id(name)
            if version is not None:
                self._version_id(model_id, name, version)
            row = self._db.one("SELECT version FROM model_aliases WHERE model_id = ? AND alias = ?", (model_id, alias))
            before = None if row is None else int(row[0])
            if version is None:
                self._db.conn.execute("DELETE FROM model_aliases WHERE model_id = ? AND alias = ?", (model_id, alias))
            else:
                self._db.conn.execute(
                    "INSERT INTO model_aliases (model_id, alias, version, moved_at) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT (model_id, alias) DO UPDATE SET version = excluded.version, moved_at = excluded.moved_at",
                    (model_id, alias, version, now))
            self._db.conn.execute(
                "INSERT INTO model_alias_history (model_id, alias, from_version, to_version, action, actor, reason,"
                " deployment_id, moved_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (model_id, alias, before, version, action, actor, reason, deployment_id, now))
            write_audit(self._db, actor, "model_alias_moved", subject(name),
                        {"alias": alias, "from_version": before, "to_version": version, "action": action,
                         "reason": reason, "deployment_id": deployment_id}, ts=now)
            return before

    # -- deployments ----------------------------------------------------------------------------------

    def add_deployment(self, name: str, *, alias: str, to_version: int | None, action: str, strategy: str,
                       target: Mapping[str, Any], actor: str | None, reason: str | None) -> dict[str, Any]:
        """The durable intent of a switch (``pending``), written before anything on disk changes.

        ``from_version`` is the alias's holder now (what an undo returns to).
        """
        now = self._db.clock()
        with self._db.transaction():
            model_id = self._model_id(name)
            if to_version is not None:
                self._version_id(model_id, name, to_version)
            row = self._db.one("SELECT version FROM model_aliases WHERE model_id = ? AND alias = ?", (model_id, alias))
            cur = self._db.conn.execute(
                "INSERT INTO model_deployments (model_id, alias, from_version, to_version, action, strategy, target,"
                " actor, reason, state, step, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?,"
                " 'pending', 'intent', ?, ?)",
                (model_id, alias, None if row is None else int(row[0]), to_version, action, strategy,
                 json.dumps(dict(target), sort_keys=True), actor, reason, now, now))
            dep = self.deployment(int(cur.lastrowid or 0))
            write_audit(self._db, actor, "model_deployment", subject(name, to_version),
                        {"deployment_id": dep["id"], "state": "pending", "step": "intent", "alias": alias,
                         "from_version": dep["from_version"], "to_version": to_version, "action": action,
                         "strategy": strategy, "reason": reason}, ts=now)
            return dep

    def set_deployment(self, deployment_id: int, *, step: str | None = None, state: str | None = None,
                       outcome: str | None = None) -> dict[str, Any]:
        """Advance a deployment's ``step`` and/or ``state`` (a final state stamps ``finished_at``); returns it.

        When a ``pending`` one starts ``running``, its ``from_version`` is read
        again: the alias's holder then (an earlier deployment may have moved it).
        Raises :class:`ConflictError` when another deployment of the model is running.
        """
        now = self._db.clock()
        with self._db.transaction():
            dep = self.deployment(deployment_id)
            sets: list[str] = ["updated_at = ?"]
            args: list[Any] = [now]
            if step is not None:
                sets.append("step = ?")
                args.append(step)
            if state is not None:
                sets.append("state = ?")
                args.append(state)
                if state in FINAL_DEPLOYMENT_STATES:
                    sets.append("finished_at = ?")
                    args.append(now)
            if outcome is not None:
                sets.append("outcome = ?")
                args.append(outcome)
            if state == "running" and dep["state"] == "pending":
                row = self._db.one("SELECT version FROM model_aliases WHERE model_id = ? AND alias = ?",
                                   (dep["model_id"], dep["alias"]))
                sets.append("from_version = ?")
                args.append(None if row is None else int(row[0]))
            try:
                self._db.conn.execute(f"UPDATE model_deployments SET {', '.join(sets)} WHERE id = ?",
                                      [*args, deployment_id])
            except sqlite3.IntegrityError:  # the unique index: one running deployment per model
                other = self._db.one("SELECT id, action, alias FROM model_deployments WHERE model_id = ?"
                                     " AND state = 'running'", (dep["model_id"],))
                raise ConflictError(f"another deployment of {dep['model']} is running"
                                    + (f" (deployment {other[0]}: {other[1]} of {other[2]})" if other else ""),
                                    value=deployment_id) from None
            after = self.deployment(deployment_id)
            write_audit(self._db, dep["actor"], "model_deployment", subject(dep["model"], dep["to_version"]),
                        {"deployment_id": deployment_id, "state": after["state"], "step": after["step"],
                         "alias": dep["alias"], "from_version": after["from_version"],
                         "to_version": dep["to_version"], "outcome": outcome}, ts=now)
            return after

    def deployment(self, deployment_id: int) -> dict[str, Any]:
        row = self._db.one("SELECT d.*, m.name AS model FROM model_deployments d JOIN models m ON m.id = d.model_id"
                           " WHERE d.id = ?", (deployment_id,))
        if row is None:
            raise NotFoundError("no such deployment", value=deployment_id)
        return _decode(row)

    def first_deployment_to(self, name: str, version: int) -> dict[str, Any] | None:
        """The first deployment that moved (or tried to move) an alias to ``name@version``, or None: what became of
        a version a run registered (promoted, undone by a block, rolled back)."""
        row = self._db.one("SELECT d.*, m.name AS model FROM model_deployments d JOIN models m ON m.id = d.model_id"
                           " WHERE m.name = ? AND d.to_version = ? AND d.action IN ('promote', 'canary_start')"
                           " ORDER BY d.id LIMIT 1", (name, version))
        return _decode(dict(row)) if row else None

    def deployments(self, name: str | None = None, *, open_only: bool = False, limit: int = 50) -> list[dict[str, Any]]:
        """Deployments, newest first (``open_only``: pending and running, oldest first: the order to run them)."""
        clauses, args = [], []
        if name is not None:
            clauses.append("d.model_id = ?")
            args.append(self._model_id(name))
        if open_only:
            clauses.append("d.state IN ('pending', 'running')")
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        order = "ASC" if open_only else "DESC"
        return [_decode(r) for r in self._db.all(
            f"SELECT d.*, m.name AS model FROM model_deployments d JOIN models m ON m.id = d.model_id {where}"
            f" ORDER BY d.id {order} LIMIT ?", [*args, limit])]

    # -- canaries and observations ------------------------------------------------------------------

    def open_canary(self, name: str, *, version: int, against: int | None, mode: str, share: float | None,
                    window_batches: int | None, window_seconds: float | None, spec: Mapping[str, Any],
                    actor: str | None) -> dict[str, Any]:
        """Start a canary of ``version`` against ``against`` (``running``). Raises :class:`ConflictError` when one
        is open already."""
        now = self._db.clock()
        with self._db.transaction():
            model_id = self._model_id(name)
            if self.canary(name) is not None:
                raise ConflictError(f"{name} already has a canary running", value=name,
                                    hint="wait for its decision, or abort it with edgeorch models rollback "
                                    f"{name} --alias canary")
            cur = self._db.conn.execute(
                "INSERT INTO model_canaries (model_id, version, against_version, mode, share, window_batches,"
                " window_seconds, spec, state, started_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'running', ?)",
                (model_id, version, against, mode, share, window_batches, window_seconds,
                 json.dumps(dict(spec), sort_keys=True), now))
            write_audit(self._db, actor, "model_canary", subject(name, version),
                        {"state": "running", "against_version": against, "mode": mode, "share": share,
                         "window_batches": window_batches, "window_seconds": window_seconds}, ts=now)
            return self._canary_row(int(cur.lastrowid or 0))

    def set_canary(self, canary_id: int, *, state: str, outcome: str | None = None,
                   actor: str | None = None) -> dict[str, Any]:
        now = self._db.clock()
        with self._db.transaction():
            c = self._canary_row(canary_id)
            decided = now if state not in OPEN_CANARY_STATES else None
            self._db.conn.execute("UPDATE model_canaries SET state = ?, outcome = COALESCE(?, outcome),"
                                  " decided_at = COALESCE(?, decided_at) WHERE id = ?",
                                  (state, outcome, decided, canary_id))
            write_audit(self._db, actor, "model_canary", subject(c["model"], c["version"]),
                        {"state": state, "outcome": outcome}, ts=now)
            return self._canary_row(canary_id)

    def canary(self, name: str) -> dict[str, Any] | None:
        """The model's open canary (running or deciding), or None."""
        row = self._db.one("SELECT c.*, m.name AS model FROM model_canaries c JOIN models m ON m.id = c.model_id"
                           " WHERE m.name = ? AND c.state IN ('running', 'deciding')", (name,))
        return None if row is None else _decode(row)

    def open_canaries(self) -> list[dict[str, Any]]:
        return [_decode(r) for r in self._db.all(
            "SELECT c.*, m.name AS model FROM model_canaries c JOIN models m ON m.id = c.model_id"
            " WHERE c.state IN ('running', 'deciding') ORDER BY c.id")]

    def canaries(self, name: str, limit: int = 20) -> list[dict[str, Any]]:
        return [_decode(r) for r in self._db.all(
            "SELECT c.*, m.name AS model FROM model_canaries c JOIN models m ON m.id = c.model_id"
            " WHERE m.name = ? ORDER BY c.id DESC LIMIT ?", (name, limit))]

    def _canary_row(self, canary_id: int) -> dict[str, Any]:
        row = self._db.one("SELECT c.*, m.name AS model FROM model_canaries c JOIN models m ON m.id = c.model_id"
                           " WHERE c.id = ?", (canary_id,))
        if row is None:
            raise NotFoundError("no such canary", value=canary_id)
        return _decode(row)

    def observe(self, name: str, rows: Iterable[tuple[int, str | None, str, float]], *, run_id: int | None = None,
                task: str | None = None) -> int:
        """Record observed metrics ``(version, alias, metric, value)`` of a model (a scoring task's report); returns
        how many."""
        items = list(rows)
        now = self._db.clock()
        with self._db.transaction():
            model_id = self._model_id(name)
            self._db.conn.executemany(
                "INSERT INTO model_observations (model_id, version, alias, metric, value, run_id, task, observed_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(model_id, v, a, m, float(x), run_id, task, now) for v, a, m, x in items])
        return len(items)

    def observations(self, name: str, version: int, metric: str, *, since: float = 0.0) -> list[dict[str, Any]]:
        return self._db.all(
            "SELECT o.* FROM model_observations o JOIN models m ON m.id = o.model_id WHERE m.name = ? AND"
            " o.version = ? AND o.metric = ? AND o.observed_at >= ? ORDER BY o.id", (name, version, metric, since))

    def observed_batches(self, name: str, version: int, *, since: float = 0.0) -> int:
        """How many batches (distinct runs, or rows without a run) reported metrics of ``version`` since ``since``."""
        row = self._db.one(
            "SELECT COUNT(DISTINCT COALESCE(o.run_id, -o.id)) FROM model_observations o JOIN models m"
            " ON m.id = o.model_id WHERE m.name = ? AND o.version = ? AND o.observed_at >= ?", (name, version, since))
        return int(row[0]) if row else 0

    # -- promotion blocks ----------------------------------------------------------------------------

    def block(self, name: str, *, reason: str, actor: str | None, rule: str | None = None,
              until: float | None = None) -> dict[str, Any]:
        """Block promotions of model ``name`` (known or not yet registered) until lifted, or until ``until``
        (Unix seconds; None: until lifted). A rule holds at most one open block per model: blocking again
        returns the open one unchanged. One transaction with its ``model_blocked`` event (and audit record)."""
        now = self._db.clock()
        with self._db.transaction():
            if rule is not None:
                row = self._db.one("SELECT id FROM model_blocks WHERE model = ? AND rule = ? AND lifted_at IS NULL"
                                   " AND (until IS NULL OR until > ?)", (name, rule, now))
                if row is not None:
                    return self._block_row(int(row[0]))
            cur = self._db.conn.execute(
                "INSERT INTO model_blocks (model, rule, reason, actor, blocked_at, until) VALUES (?, ?, ?, ?, ?, ?)",
                (name, rule, reason, actor, now, until))
            block = self._block_row(int(cur.lastrowid or 0))
            by = f"rule {rule}" if rule else (actor or "someone")
            write_event(self._db, None, None, "model_blocked", f"promotions of {name} blocked by {by}: {reason}"
                        + (f" (until {until:.0f})" if until is not None else ""), actor, now,
                        {"model": name, "block": block["id"], "rule": rule, "reason": reason, "until": until})
            return block

    def lift_blocks(self, name: str | None = None, *, rule: str | None = None, by: str | None,
                    reason: str) -> list[dict[str, Any]]:
        """Lift the open blocks of ``name`` (every model: None), only those set by ``rule`` when given; returns
        the lifted rows. One transaction with a ``model_unblocked`` event per block (nothing open: nothing written)."""
        now = self._db.clock()
        clauses, args = ["lifted_at IS NULL"], []
        if name is not None:
            clauses.append("model = ?")
            args.append(name)
        if rule is not None:
            clauses.append("rule = ?")
            args.append(rule)
        with self._db.transaction():
            ids = [int(r["id"]) for r in self._db.all(f"SELECT id FROM model_blocks WHERE {' AND '.join(clauses)}"
                                                   " ORDER BY id", args)]
            out = []
            for block_id in ids:
                self._db.conn.execute("UPDATE model_blocks SET lifted_at = ?, lifted_by = ?, lift_reason = ?"
                                      " WHERE id = ?", (now, by, reason, block_id))
                b = self._block_row(block_id)
                write_event(self._db, None, None, "model_unblocked",
                            f"promotions of {b['model']}: block {block_id}"
                            + (f" of rule {b['rule']}" if b["rule"] else "") + f" lifted: {reason}", by, now,
                            {"model": b["model"], "block": block_id, "rule": b["rule"], "reason": reason})
                out.append(b)
            return out

    def blocks(self, name: str, *, now: float | None = None, open_only: bool = True,
               limit: int = 50) -> list[dict[str, Any]]:
        """The model's blocks, oldest first: with ``open_only`` those in force at ``now`` (not lifted, ``until``
        not passed), else the newest ``limit`` of all (lifted and expired ones too)."""
        if open_only:
            at = self._db.clock() if now is None else now
            return self._db.all("SELECT * FROM model_blocks WHERE model = ? AND lifted_at IS NULL"
                                " AND (until IS NULL OR until > ?) ORDER BY id", (name, at))
        return list(reversed(self._db.all("SELECT * FROM model_blocks WHERE model = ? ORDER BY id DESC LIMIT ?",
                                          (name, limit))))

    def open_blocks(self, *, now: float | None = None) -> list[dict[str, Any]]:
        """Every model's blocks in force at ``now`` (not lifted, ``until`` not passed), oldest first."""
        at = self._db.clock() if now is None else now
        return self._db.all("SELECT * FROM model_blocks WHERE lifted_at IS NULL AND (until IS NULL OR until > ?)"
                            " ORDER BY id", (at,))

    def _block_row(self, block_id: int) -> dict[str, Any]:
        row = self._db.one("SELECT * FROM model_blocks WHERE id = ?", (block_id,))
        if row is None:
            raise NotFoundError("no such block", value=block_id)
        return dict(row)

    # -- reading --------------------------------------------------------------------------------------

    def model(self, name: str) -> dict[str, Any] | None:
        row = self._db.one("SELECT * FROM models WHERE name = ?", (name,))
        return None if row is None else _decode(row)

    def owner(self, name: str) -> tuple[str, int] | None:
        """``(pipeline, version)``: the pipeline that registered model ``name``'s first version (its owner: its
        ``[models.NAME]`` judges every version) and that version's number; None for a model with no version.
        One lookup by the unique ``(model_id, version)`` index."""
        row = self._db.one("SELECT v.pipeline, v.version FROM model_versions v JOIN models m ON m.id = v.model_id"
                           " WHERE m.name = ? ORDER BY v.version LIMIT 1", (name,))
        return None if row is None or row[0] is None else (str(row[0]), int(row[1]))

    def require(self, name: str) -> dict[str, Any]:
        """The model row; :class:`NotFoundError` naming the known models when there is none."""
        m = self.model(name)
        if m is None:
            known = [r["name"] for r in self._db.all("SELECT name FROM models ORDER BY name LIMIT 20")]
            raise NotFoundError(f"no model named {name!r}", value=name,
                                expected=f"one of {', '.join(known)}" if known else "(none registered yet)")
        return m

    def names(self) -> list[str]:
        return [r["name"] for r in self._db.all("SELECT name FROM models ORDER BY name")]

    def listing(self) -> list[dict[str, Any]]:
        """Every model: its latest version, how many, and its aliases."""
        rows = self._db.all(
            "SELECT m.name, m.created_at, COUNT(v.id) AS versions, MAX(v.version) AS latest,"
            " MAX(v.created_at) AS updated_at FROM models m LEFT JOIN model_versions v ON v.model_id = m.id"
            " GROUP BY m.id ORDER BY m.name")
        for r in rows:
            r["aliases"] = self.aliases(r["name"])
        return rows

    def versions(self, name: str) -> list[dict[str, Any]]:
        model_id = self._model_id(name)
        return [_decode(r) for r in self._db.all(
            "SELECT v.*, ? AS model FROM model_versions v WHERE v.model_id = ? ORDER BY v.version", (name, model_id))]

    def version(self, name: str, version: int) -> dict[str, Any]:
        """One version; :class:`NotFoundError` naming the model's versions when there is no such one."""
        model_id = self._model_id(name)
        return self._version_row(self._version_id(model_id, name, version))

    def version_or_none(self, name: str, version: int) -> dict[str, Any] | None:
        row = self._db.one("SELECT v.id FROM model_versions v JOIN models m ON m.id = v.model_id"
                           " WHERE m.name = ? AND v.version = ?", (name, version))
        return None if row is None else self._version_row(int(row[0]))

    def same_as(self, name: str, sha256: str, metrics: Mapping[str, float]) -> dict[str, Any] | None:
        """The newest version of ``name`` whose artifact has ``sha256`` and whose metrics equal ``metrics``
        (the same numbers under the same names), or None (no such model or version)."""
        want = json.dumps(dict(metrics), sort_keys=True)
        row = self._db.one("SELECT v.id FROM model_versions v JOIN models m ON m.id = v.model_id"
                           " WHERE m.name = ? AND v.sha256 = ? AND v.metrics = ? ORDER BY v.version DESC LIMIT 1",
                           (name, sha256, want))
        return None if row is None else self._version_row(int(row[0]))

    def record_unchanged(self, existing: Mapping[str, Any], *, run_id: int, task: str | None,
                         actor: str | None = None) -> None:
        """Say in the run's events that its task produced ``existing``'s artifact and metrics again, so no
        version was added (``model_unchanged``)."""
        message = (f"{existing['model']}: the artifact and metrics are version {existing['version']}'s "
                   f"(sha256 {existing['sha256'][:12]}); no new version")
        data = {"model": existing["model"], "version": existing["version"], "sha256": existing["sha256"]}
        write_event(self._db, run_id, task, "model_unchanged", message, actor, self._db.clock(), data)

    def versions_of_run(self, run_id: int) -> list[dict[str, Any]]:
        return [_decode(r) for r in self._db.all(
            "SELECT v.*, m.name AS model FROM model_versions v JOIN models m ON m.id = v.model_id"
            " WHERE v.run_id = ? ORDER BY v.id", (run_id,))]

    def aliases(self, name: str) -> dict[str, int]:
        """Alias -> the version it points at."""
        return {r["alias"]: int(r["version"]) for r in self._db.all(
            "SELECT a.alias, a.version FROM model_aliases a JOIN models m ON m.id = a.model_id WHERE m.name = ?"
            " ORDER BY a.alias", (name,))}

    def made_by_runs(self, run_ids: Iterable[int]) -> dict[int, list[str]]:
        """Run id -> the model versions its tasks registered, as ``"NAME VERSION"`` (runs that made none: absent)."""
        ids = list(run_ids)
        out: dict[int, list[str]] = {}
        for start in range(0, len(ids), 500):  # SQLite's bound on a statement's parameters
            chunk = ids[start:start + 500]
            for row in self._db.all(
                    "SELECT v.run_id, m.name, v.version FROM model_versions v JOIN models m ON m.id = v.model_id"
                    f" WHERE v.run_id IN ({', '.join('?' * len(chunk))}) ORDER BY m.name, v.version", chunk):
                out.setdefault(int(row["run_id"]), []).append(f"{row['name']} {row['version']}")
        return out

    def holder(self, name: str, alias: str) -> dict[str, Any] | None:
        """The version ``alias`` points at, or None."""
        row = self._db.one("SELECT v.id FROM model_aliases a JOIN models m ON m.id = a.model_id JOIN model_versions v"
                           " ON v.model_id = a.model_id AND v.version = a.version WHERE m.name = ? AND a.alias = ?",
                           (name, alias))
        return None if row is None else self._version_row(int(row[0]))

    def alias_history(self, name: str, alias: str | None = None, *, limit: int = 100) -> list[dict[str, Any]]:
        """Alias moves, newest first."""
        model_id = self._model_id(name)
        if alias is None:
            return self._db.all("SELECT * FROM model_alias_history WHERE model_id = ? ORDER BY id DESC LIMIT ?",
                                (model_id, limit))
        return self._db.all("SELECT * FROM model_alias_history WHERE model_id = ? AND alias = ? ORDER BY id DESC"
                            " LIMIT ?", (model_id, alias, limit))

    def decisions(self, version_id: int) -> list[dict[str, Any]]:
        """A version's decisions, oldest first."""
        return [_decode(r) for r in self._db.all("SELECT * FROM model_decisions WHERE version_id = ? ORDER BY id",
                                                 (version_id,))]

    def held_runs(self) -> list[dict[str, Any]]:
        """Runs whose model versions an alias points at (``why``: the alias) or an open deployment uses (``why``:
        ``deployment``): retention keeps them (``run_id``, ``model``, ``version``, ``why``). What a rollback would
        return to is kept too, by the rollback's own rule (:func:`edgeorch.retention.holds` asks
        :func:`edgeorch.models.rollback.rollback_targets_of` for each alias of :meth:`alias_pairs`)."""
        return self._db.all(
            "SELECT v.run_id, m.name AS model, v.version, a.alias AS why FROM model_aliases a"
            " JOIN model_versions v ON v.model_id = a.model_id AND v.version = a.version"
            " JOIN models m ON m.id = a.model_id WHERE v.run_id IS NOT NULL"
            " UNION SELECT v.run_id, m.name, v.version, 'deployment' FROM model_deployments d"
            " JOIN model_versions v ON v.model_id = d.model_id AND v.version IN (d.to_version, d.from_version)"
            " JOIN models m ON m.id = d.model_id WHERE d.state IN ('pending', 'running') AND v.run_id IS NOT NULL"
            " ORDER BY 1")

    def alias_pairs(self) -> list[tuple[str, str]]:
        """Every ``(model, alias)`` that has moved at least once (an alias's history is what a rollback walks)."""
        return [(r["name"], r["alias"]) for r in self._db.all(
            "SELECT DISTINCT m.name, h.alias FROM model_alias_history h JOIN models m ON m.id = h.model_id"
            " ORDER BY 1, 2")]

    def run_of(self, name: str, version: int) -> int | None:
        """The run that made version ``version`` of ``name`` (None: registered by hand, or no such version)."""
        row = self._db.one("SELECT v.run_id FROM model_versions v JOIN models m ON m.id = v.model_id"
                           " WHERE m.name = ? AND v.version = ?", (name, version))
        return None if row is None or row[0] is None else int(row[0])

    # -- helpers --------------------------------------------------------------------------------------

    def _model_id(self, name: str) -> int:
        row = self._db.one("SELECT id FROM models WHERE name = ?", (name,))
        if row is None:
            self.require(name)
        return int(row[0])  # type: ignore[index]

    def _version_id(self, model_id: int, name: str, version: int) -> int:
        row = self._db.one("SELECT id FROM model_versions WHERE model_id = ? AND version = ?", (model_id, version))
        if row is None:
            last = self._db.one("SELECT MAX(version) FROM model_versions WHERE model_id = ?", (model_id,))
            n = int(last[0]) if last and last[0] is not None else 0
            raise NotFoundError(f"{name} has no version {version}", value=version,
                                expected=f"a version from 1 to {n}" if n else "(it has no versions yet)")
        return int(row[0])

    def _version_row(self, version_id: int) -> dict[str, Any]:
        row = self._db.one("SELECT v.*, m.name AS model FROM model_versions v JOIN models m ON m.id = v.model_id"
                           " WHERE v.id = ?", (version_id,))
        if row is None:
            raise NotFoundError("no such model version", value=version_id)
        return _decode(row)
