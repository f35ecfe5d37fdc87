"""The audit log: tables ``audit_log``, ``audit_seals``, ``audit_checkpoints`` (docs/audit.md).

Contract:

- :func:`write_audit` appends one record on the caller's connection, inside
  the caller's transaction: a record commits or rolls back with the change it
  describes. It reads the head (one indexed lookup) in that transaction, so a
  rolled-back record never becomes anyone's ``prev_hash``. Every ``events``
  row (:func:`~edgeorch.store.events.write_event`) and every transition of
  the other aggregates that no event row describes calls it.
- :meth:`AuditLog.record` is the same as a call of its own (a SAVEPOINT
  inside a caller's ``with store.transaction():``): what later producers
  (model promotions, rule firings) call.
- Records, seals and checkpoints are only appended; SQLite triggers refuse
  UPDATE and DELETE, except the DELETE of records up to the newest
  checkpoint, which :meth:`AuditLog.prune` writes first, in the same transaction.
- A prune carries the restore acknowledgements (``audit_restored``) of the
  records it removes into its ``audit_pruned`` record (``restores``): a gap
  in the seals that was acknowledged stays so (docs/audit.md "A restored backup").
- Hashing is :mod:`edgeorch.audit.chain`'s; nothing here decides what verifies.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Iterator, Mapping

from ..audit.chain import GENESIS, actor_fields, encode_details, iso_ts, prune_point, record_hash
from ..errors import ConflictError
from .db import Database

if TYPE_CHECKING:  # the restore module (and its key derivation) is loaded when a restore is looked for, not by
    # every command that opens the state file
    from ..audit.restore import Gap

_COLUMNS = "seq, ts, actor, uid, action, subject, details, prev_hash, hash"
_HEAD = "audit_head"
"""The key of the head ``(seq, hash)`` in :attr:`Database.memo`."""


def _head(db: Database) -> tuple[int, str]:
    """``(seq, hash)`` of the newest record, or of the newest checkpoint when every record was pruned; (0, GENESIS)."""
    row = db.conn.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
    if row is None:
        row = db.conn.execute("SELECT seq, hash FROM audit_checkpoints ORDER BY seq DESC LIMIT 1").fetchone()
    return (int(row[0]), str(row[1])) if row is not None else (0, GENESIS)


def write_audit(db: Database, actor: str | None, action: str, subject: str, details: Mapping[str, Any] | None = None,
                *, ts: float | None = None) -> int:
    """Append one record on ``db``'s connection; the caller holds the transaction. Returns its seq.

    ``actor`` is the text the rest of edgeorch passes (``"alice (uid 1000)"``,
    ``"scheduler"``, ``"rule:drift"``, None for the engine), split into the
    record's ``actor`` and ``uid`` by :func:`~edgeorch.audit.chain.actor_fields`.
    ``ts`` defaults to the store's clock.
    """
    name, uid = actor_fields(actor)
    when = iso_ts(db.clock() if ts is None else ts)
    text = encode_details(details)
    # The head written last in this transaction spares the lookup (a claim group writes thousands of records
    # in one); the memo empties when the transaction ends or a savepoint rolls back (Database.memo).
    seq, prev = db.memo.get(_HEAD) or _head(db)
    seq += 1
    digest = record_hash(seq=seq, ts=when, actor=name, uid=uid, action=action, subject=subject, details=text, prev=prev)
    db.conn.execute(f"INSERT INTO audit_log ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (seq, when, name, uid, action, subject, text, prev, digest))
    if db.in_transaction:
        db.memo[_HEAD] = (seq, digest)
    return seq


class AuditLog:
    """``store.audit``: see the module docstring."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def record(self, actor: str | None, action: str, subject: str, details: Mapping[str, Any] | None = None, *,
               ts: float | None = None) -> int:
        """Append one record (its own transaction, or part of the caller's); returns its seq.

        ``action`` is a short snake_case verb (``model_promoted``, ``rule_fired``),
        ``subject`` what it acted on (``model:churn/3``, ``pipeline:nightly``),
        ``details`` a JSON-ready object.
        """
        with self._db.transaction():
            return write_audit(self._db, actor, action, subject, details, ts=ts)

    # -- reading ----------------------------------------------------------------------------------

    def head(self) -> tuple[int, str] | None:
        """``(seq, hash)`` of the newest record (or checkpoint); None for an empty log."""
        seq, digest = _head(self._db)
        return None if seq == 0 else (seq, digest)

    def written_head(self) -> tuple[int, str] | None:
        """The head as this connection last committed it, without a query (the daemon is the one writer
        while it runs); :meth:`head` when it has written none yet. For a check that may lag (when to seal
        next), never for a record's ``prev``."""
        head = self._db.committed.get(_HEAD)
        return head if head is not None else self.head()

    def records(self, *, after: int = 0, limit: int = 1000, through: int | None = None, since: str | None = None,
                actor: str | None = None, action: str | None = None, newest: bool = False) -> list[dict[str, Any]]:
        """Records in seq order after seq ``after`` (up to ``through``), at most ``limit``; raw columns.

        Filters: ``since`` (an ISO time: records at or after it), ``actor`` (a
        name, or a uid in decimal), ``action`` (exact, or a prefix ending in
        ``*``). ``newest``: the last ``limit`` matching records (still returned in seq order).
        """
        clauses: list[str] = ["seq > ?"]
        args: list[Any] = [after]
        if through is not None:
            clauses.append("seq <= ?")
            args.append(through)
        if since is not None:
            clauses.append("ts >= ?")
            args.append(since)
        if actor is not None:
            if actor.isdigit() and int(actor) < 2**63:  # a uid; larger digits are no uid, only a name
                clauses.append("(actor = ? OR uid = ?)")
                args += [actor, int(actor)]
            else:
                clauses.append("actor = ?")
                args.append(actor)
        if action is not None:
            if action.endswith("*"):
                clauses.append("substr(action, 1, ?) = ?")
                args += [len(action) - 1, action[:-1]]
            else:
                clauses.append("action = ?")
                args.append(action)
        order = "DESC" if newest else ""
        rows = self._db.all(f"SELECT {_COLUMNS} FROM audit_log WHERE {' AND '.join(clauses)} ORDER BY seq {order} LIMIT ?",
                            [*args, limit])
        for row in rows:  # a value written as bytes by hand (a BLOB) made verify and list internal errors
            for key, value in row.items():
                if isinstance(value, bytes):
                    row[key] = f"<not text: {len(value)} byte(s) {value[:32].hex()}>"  # never its hash: "edited"
        return rows[::-1] if newest else rows

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Read in one read transaction: a consistent view of records and seals while a daemon appends.

        For a connection that only reads (a read-only store): on the daemon's
        writing connection the loop's writes would join the transaction.
        """
        if self._db.conn.in_transaction:
            yield
            return
        self._db.conn.execute("BEGIN")
        try:
            yield
        finally:
            self._db.conn.execute("COMMIT")

    def seals(self) -> list[dict[str, Any]]:
        """Every seal, by epoch."""
        return self._db.all("SELECT epoch, seq, hash, ts, mac FROM audit_seals ORDER BY epoch")

    def last_seal(self) -> dict[str, Any] | None:
        rows = self._db.all("SELECT epoch, seq, hash, ts, mac FROM audit_seals ORDER BY epoch DESC LIMIT 1")
        return rows[0] if rows else None

    def checkpoints(self) -> list[dict[str, Any]]:
        """Every checkpoint pruning left, by seq."""
        return self._db.all("SELECT seq, hash, epoch, ts FROM audit_checkpoints ORDER BY seq")

    def acknowledgements(self, *, through: int | None = None) -> list[tuple[int, Gap, str]]:
        """Every restore acknowledgement in the records (up to ``through``): ``(seq, gap, mac)``, by seq; those a
        prune carried come with its ``audit_pruned`` record's seq. Unreadable ones are left out (verify names
        an edited record). Reads the records of two actions: a scan, for a start that found a gap and a prune."""
        from ..audit.restore import ACTION as RESTORED, PRUNED, acks_of

        bound, args = ("AND seq <= ?", [through]) if through is not None else ("", [])
        rows = self._db.all(f"SELECT seq, action, details FROM audit_log WHERE action IN (?, ?) {bound} ORDER BY seq",
                            [RESTORED, PRUNED, *args])
        return [(int(r["seq"]), gap, mac) for r in rows for gap, mac in acks_of(str(r["action"]), str(r["details"]))]

    def count(self) -> int:
        return int(self._db.one("SELECT COUNT(*) FROM audit_log")[0])  # type: ignore[index]

    # -- sealing and pruning (docs/audit.md) ------------------------------------------------------

    def add_seal(self, *, epoch: int, seq: int, digest: str, ts: str, mac: str) -> None:
        """Store a seal (one durable transaction). Raises :class:`ConflictError` when ``epoch`` is taken."""
        with self._db.transaction():
            if self._db.one("SELECT 1 FROM audit_seals WHERE epoch = ?", (epoch,)) is not None:
                raise ConflictError(f"the audit log already has a seal of epoch {epoch}",
                                    hint="the key file is behind its seals; restarting the daemon repairs it")
            self._db.conn.execute("INSERT INTO audit_seals (epoch, seq, hash, ts, mac) VALUES (?, ?, ?, ?, ?)",
                                  (epoch, seq, digest, ts, mac))

    def prune(self, before: float, *, actor: str | None, idle: bool = False) -> dict[str, Any] | None:
        """Remove the records older than ``before`` (Unix seconds) up to the newest seal among them.

        One transaction: the checkpoint (the sealed last pruned record), the
        deletion, and an ``audit_pruned`` record, so what remains verifies from
        the checkpoint. Returns ``{"through_seq", "records", "epoch"}``, or None
        when nothing can be pruned (no sealed record is older than ``before``).
        ``idle``: also None when every record it would remove is an earlier prune's own ``audit_pruned`` (a
        periodic prune would otherwise remove its last record and write the next, a seal and a checkpoint each
        time, forever on an idle box).
        """
        cut = iso_ts(before)
        with self._db.transaction():
            row = self._db.one("SELECT MAX(seq) FROM audit_log WHERE ts < ?", (cut,))
            last_old = int(row[0]) if row is not None and row[0] is not None else 0
            first = self._db.one("SELECT MIN(seq) FROM audit_log")
            seal = prune_point(self.seals(), last_old)
            if seal is None or first is None or first[0] is None or int(seal["seq"]) < int(first[0]):
                return None
            through = int(seal["seq"])
            if idle and self._db.one("SELECT 1 FROM audit_log WHERE seq <= ? AND action != 'audit_pruned' LIMIT 1",
                                     (through,)) is None:
                return None
            from ..audit.restore import ack_details

            carried = [ack_details(gap, mac) for _, gap, mac in self.acknowledgements(through=through)]
            self._db.conn.execute("INSERT INTO audit_checkpoints (seq, hash, epoch, ts) VALUES (?, ?, ?, ?)",
                                  (through, seal["hash"], seal["epoch"], iso_ts(self._db.clock())))
            removed = self._db.conn.execute("DELETE FROM audit_log WHERE seq <= ?", (through,)).rowcount
            self._db.memo.pop(_HEAD, None)  # the head may now be the checkpoint's: read again
            outcome: dict[str, Any] = {"through_seq": through, "records": removed, "epoch": int(seal["epoch"]),
                                       "checkpoint_hash": seal["hash"], "before": cut}
            if carried:  # the removed acknowledgements live on in this record (only then: older records unchanged)
                outcome["restores"] = carried
            write_audit(self._db, actor, "audit_pruned", "audit", outcome)
        return outcome
