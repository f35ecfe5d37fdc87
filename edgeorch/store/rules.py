"""Monitoring rules' state and firings: tables ``rule_state`` and ``rule_firings`` (docs/monitoring.md).

Contract:

- One ``rule_state`` row per rule ever evaluated: the evaluator's state
  (:class:`edgeorch.monitor.rules.RuleState`), the last signal as JSON, and
  ``cursor``, the newest run the rule has evaluated (a restarted daemon
  evaluates the runs after it, so no run end is missed or evaluated twice).
- :meth:`Rules.save` and :meth:`Rules.add_firing` are their own transaction or
  part of a caller's: the monitor service calls them inside the transaction
  that creates the response's run (the front door's ``within``), so the state
  change, the firing and the run commit together or not at all.
- A firing's ``state``: ``done`` (every response applied, or dry run),
  ``pending`` (responses that run after the commit, e.g. a notify command,
  not yet done: redone at start, so a notify is at least once), ``failed``
  (a response failed; ``responses`` says which and why).
- :meth:`Rules.silence` writes the silence and its event (and audit record) in one transaction.
"""

from __future__ import annotations

import json
from typing import Any

from ..model import RunState
from ..textui import format_timestamp
from .db import Database
from .events import write_event

_FINISHED = "(" + ", ".join(f"'{s.value}'" for s in RunState if s.finished) + ")"
"""The finished run states as an SQL list (``RunState.finished``, the one definition)."""

_STATE_COLS = ("state", "consecutive", "holding_since", "episode", "responded", "last_value", "last_evaluated_at",
               "last_fired_at")


class Rules:
    """``store.rules``: see the module docstring."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # -- state ------------------------------------------------------------------------------------

    def get(self, rule: str) -> dict[str, Any] | None:
        """The rule's row (``last_signal`` decoded), None when never evaluated nor silenced."""
        return _decode(next(iter(self._db.all("SELECT * FROM rule_state WHERE rule = ?", (rule,))), None))

    def all(self) -> list[dict[str, Any]]:
        return [_decode(r) for r in self._db.all("SELECT * FROM rule_state ORDER BY rule")]  # type: ignore[misc]

    def save(self, rule: str, pipeline: str, state: dict[str, Any], *, signal: dict[str, Any] | None = None,
             cursor: int | None = None) -> None:
        """Store the evaluator's state (the keys of ``_STATE_COLS``), the signal and, when given, the cursor."""
        now = self._db.clock()
        vals = [state[c] if c != "responded" else int(bool(state[c])) for c in _STATE_COLS]
        with self._db.transaction():
            self._db.conn.execute(
                f"INSERT INTO rule_state (rule, pipeline, {', '.join(_STATE_COLS)}, last_signal, cursor, updated_at)"
                f" VALUES (?, ?, {', '.join('?' * len(_STATE_COLS))}, ?, ?, ?)"
                " ON CONFLICT(rule) DO UPDATE SET pipeline = excluded.pipeline, "
                + ", ".join(f"{c} = excluded.{c}" for c in _STATE_COLS)
                + ", last_signal = COALESCE(excluded.last_signal, last_signal),"
                  " cursor = MAX(cursor, excluded.cursor), updated_at = excluded.updated_at",
                (rule, pipeline, *vals, json.dumps(signal, sort_keys=True, default=str) if signal else None,
                 cursor or 0, now))

    def silence(self, rule: str, pipeline: str, until: float | None, *, reason: str | None, actor: str | None) -> None:
        """Silence ``rule`` until ``until`` (Unix seconds; None lifts the silence), with its event and audit record."""
        now = self._db.clock()
        with self._db.transaction():
            self._db.conn.execute(
                "INSERT INTO rule_state (rule, pipeline, state, silenced_until, silence_reason, silence_actor, updated_at)"
                " VALUES (?, ?, 'ok', ?, ?, ?, ?) ON CONFLICT(rule) DO UPDATE SET silenced_until = excluded.silenced_until,"
                " silence_reason = excluded.silence_reason, silence_actor = excluded.silence_actor,"
                " updated_at = excluded.updated_at", (rule, pipeline, until, reason, actor, now))
            # A date, as the CLI's answer says it (the event and the audit record said Unix seconds); ``until`` in data.
            what = (f"rule {rule} silenced until {format_timestamp(until)}" if until is not None
                    else f"rule {rule}: silence lifted")
            write_event(self._db, None, None, "rule_silenced" if until is not None else "rule_unsilenced",
                        what + (f": {reason}" if reason else ""), actor, now,
                        {"rule": rule, "pipeline": pipeline, "until": until, "reason": reason})

    # -- firings ----------------------------------------------------------------------------------

    def add_firing(self, *, rule: str, pipeline: str, episode: int, fired_at: float, outcome: str, dry_run: bool,
                   dedupe_key: str | None, value: float | None, threshold: float | None, signal: dict[str, Any],
                   responses: list[dict[str, Any]], run_id: int | None, state: str) -> int:
        """Record one firing (``outcome``: fire, held, deduped); returns its id."""
        with self._db.transaction():
            cur = self._db.conn.execute(
                "INSERT INTO rule_firings (rule, pipeline, episode, fired_at, outcome, dry_run, dedupe_key, value,"
                " threshold, signal, responses, run_id, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (rule, pipeline, episode, fired_at, outcome, int(dry_run), dedupe_key, value, threshold,
                 json.dumps(signal, sort_keys=True, default=str), json.dumps(responses, default=str), run_id, state))
            return int(cur.lastrowid)  # type: ignore[arg-type]

    def set_firing(self, firing_id: int, *, state: str, responses: list[dict[str, Any]]) -> None:
        """A firing's responses after the commit ran (notify, rollback): ``done`` or ``failed``."""
        with self._db.transaction():
            self._db.conn.execute("UPDATE rule_firings SET state = ?, responses = ? WHERE id = ?",
                                  (state, json.dumps(responses, default=str), firing_id))

    def firings(self, rule: str | None = None, *, limit: int = 50) -> list[dict[str, Any]]:
        """Newest first; JSON columns decoded."""
        if rule is None:
            rows = self._db.all("SELECT * FROM rule_firings ORDER BY id DESC LIMIT ?", (limit,))
        else:
            rows = self._db.all("SELECT * FROM rule_firings WHERE rule = ? ORDER BY id DESC LIMIT ?", (rule, limit))
        return [_decode_firing(r) for r in rows]

    def firing_of_run(self, run_id: int) -> dict[str, Any] | None:
        """The firing that started run ``run_id`` (its ``run_id``), None when no rule started it."""
        rows = self._db.all("SELECT * FROM rule_firings WHERE run_id = ? ORDER BY id LIMIT 1", (run_id,))
        return _decode_firing(rows[0]) if rows else None

    def firings_from_run(self, run_id: int) -> list[dict[str, Any]]:
        """The firings whose signal came from run ``run_id`` (the run a rule read, not the one it started),
        oldest first. A scan of the firings (one row per response: a small table)."""
        rows = self._db.all("SELECT * FROM rule_firings WHERE json_extract(signal, '$.run_id') = ? ORDER BY id",
                            (run_id,))
        return [_decode_firing(r) for r in rows]

    def pending(self) -> list[dict[str, Any]]:
        """Firings whose after-commit responses never finished (a crash): redone at start."""
        return [_decode_firing(r) for r in self._db.all("SELECT * FROM rule_firings WHERE state = 'pending' ORDER BY id")]

    def history(self, rule: str, since: float, *, dry_run: bool = False) -> tuple[int, frozenset[str]]:
        """``(responses since, their dedupe keys)``: firings that answered (outcome ``fire``) at or after ``since``,
        of the same kind as the rule's now (``dry_run``): a dry run did nothing, and its firings held the rule
        switched live for a day by ``max_per_day`` and deduped its keys; a dry run is judged against dry ones."""
        rows = self._db.all("SELECT dedupe_key FROM rule_firings WHERE rule = ? AND outcome = 'fire' AND fired_at >= ?"
                            " AND dry_run = ?", (rule, since, int(dry_run)))
        return len(rows), frozenset(r["dedupe_key"] for r in rows if r["dedupe_key"] is not None)

    def day_limit_until(self, rule: str, limit: int, now: float, day: float = 86400.0, *,
                        dry_run: bool = False) -> float | None:
        """When ``rule``'s responses (of its kind now, :meth:`history`) in the last ``day`` fall below ``limit``
        again (its ``max_per_day``): the time its ``limit``-th newest response leaves the window; None when fewer
        than ``limit`` are in it."""
        rows = self._db.all("SELECT fired_at FROM rule_firings WHERE rule = ? AND outcome = 'fire' AND fired_at >= ?"
                            " AND dry_run = ? ORDER BY fired_at DESC LIMIT ?", (rule, now - day, int(dry_run), limit))
        return rows[-1]["fired_at"] + day if limit > 0 and len(rows) >= limit else None

    def counts(self) -> dict[tuple[str, str], int]:
        """``(rule, outcome) -> firings``, for the metrics."""
        return {(r["rule"], r["outcome"]): r["n"] for r in self._db.all(
            "SELECT rule, outcome, COUNT(*) AS n FROM rule_firings GROUP BY rule, outcome")}

    # -- the reads of signals ---------------------------------------------------------------------

    def runs_to_evaluate(self, pipeline: str, after: int, limit: int = 1000) -> list[dict[str, Any]]:
        """Finished runs of ``pipeline`` with id > ``after``, oldest first (``params`` decoded), up to the first
        one that has not finished.

        Runs of one pipeline end out of order (four drops run side by side; the
        last to arrive may end first). The cursor is the newest run evaluated,
        so evaluating a later run before an earlier one has ended would move
        the cursor past the earlier one, which would then never be evaluated
        (a drifted batch that finished last retrained nothing). So a rule
        evaluates its pipeline's runs in their order, each once, and waits for
        an earlier run to end before it reads the later ones.
        """
        rows = self._db.all(
            "SELECT id, pipeline, state, params, finished_at FROM runs WHERE pipeline = ? AND id > ?"
            f" AND state IN {_FINISHED}"
            " AND id < COALESCE((SELECT MIN(id) FROM runs WHERE pipeline = ? AND id > ?"
            f" AND state NOT IN {_FINISHED}), 9223372036854775807)"
            " ORDER BY id LIMIT ?",
            (pipeline, after, pipeline, after, limit))
        for r in rows:
            r["params"] = json.loads(r["params"])
        return rows

    def newest_run_id(self, pipeline: str) -> int:
        """The id of ``pipeline``'s newest run (any state); 0 when it has none."""
        row = self._db.one("SELECT MAX(id) FROM runs WHERE pipeline = ?", (pipeline,))
        return int(row[0] or 0) if row else 0

    def outcomes_since(self, pipeline: str, since: float) -> tuple[int, int]:
        """``(failed, finished)``: ``pipeline``'s runs that finished at or after ``since`` (cancelled ones not counted)."""
        row = self._db.one("SELECT SUM(state = 'failed'), COUNT(*) FROM runs WHERE pipeline = ? AND finished_at >= ?"
                           " AND state IN ('succeeded', 'failed')", (pipeline, since))
        return (int(row[0] or 0), int(row[1] or 0)) if row else (0, 0)

    def last_success(self, pipeline: str) -> float | None:
        """When ``pipeline``'s newest successful run finished; None when none did."""
        row = self._db.one("SELECT MAX(finished_at) FROM runs WHERE pipeline = ? AND state = 'succeeded'", (pipeline,))
        return row[0] if row else None

    def last_arrival(self, pipeline: str) -> float | None:
        """When the newest file arrived in ``pipeline``'s drop folders; None when none did."""
        row = self._db.one("SELECT MAX(arrived_at) FROM inputs WHERE pipeline = ?", (pipeline,))
        return row[0] if row else None


def _decode(row: dict[str, Any] | None) -> dict[str, Any] | None:
    if row is None:
        return None
    row = dict(row)
    row["last_signal"] = json.loads(row["last_signal"]) if row.get("last_signal") else None
    return row


def _decode_firing(row: dict[str, Any]) -> dict[str, Any]:
    row = dict(row)
    row["signal"] = json.loads(row["signal"])
    row["responses"] = json.loads(row["responses"])
    row["dry_run"] = bool(row["dry_run"])
    return row
