"""Verifying the audit log, as pure code: records, seals and checkpoints in, a report naming the first bad seq out.

:class:`Verifier` is fed the records in ``seq`` order (any number of batches,
so a long log is never held in memory) after being given every seal and
checkpoint; :meth:`Verifier.finish` returns the :class:`Report`.

What it checks (docs/audit.md "Verifying"):

- **the chain**: seqs follow each other without gaps from 1, or from the
  checkpoint pruning left; each record's hash is the hash of its own fields;
  each record's ``prev_hash`` is the stored hash of the one before it (of the
  checkpoint for the first, :data:`~edgeorch.audit.chain.GENESIS` for record 1);
- **the seals**: epochs 0, 1, 2, ... without gaps and covering later and later
  records; each names a record that exists (else the tail was truncated) with
  exactly that hash; with the verification key, each seal's MAC with its
  epoch's key; with the key file's epoch (on the machine), that no seal after
  the last one was removed;
- **checkpoints**: each matches the seal of its epoch;
- **restores**: a gap in the seals' epochs (or a key file ahead of the last
  seal) is a problem unless an acknowledgement (:mod:`.restore`) names exactly
  that gap; then it is reported in :attr:`Report.acknowledged`. With the key,
  every acknowledgement's MAC is checked too.

Without the key an attacker who recomputes the whole chain *and* the seals'
hashes is not detected: that is what the offline key is for.

A problem's ``seq`` is the first record it puts in doubt: an edited record
itself; for a broken link, the earlier record of the two; for missing
records, the first missing one; for a seal that does not verify (or vouches
for another record), the first record of its range that the chain finds
bad, else (the chain was recomputed consistently) the first record it covers.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from ..records import frozen
from .chain import GENESIS, hash_of_row
from .keys import evolve, key_at, key_id, mac_ok
from .restore import HOW, Gap, ack_ok, acks_of, gap_after

MAX_PROBLEMS = 50
"""Problems kept in a report (the one naming the first bad seq always among them)."""


@frozen
class Problem:
    """One thing that does not verify; ``seq`` is the first record it puts in doubt (None: no record)."""

    seq: int | None
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "message": self.message}


@dataclass
class Report:
    """What :meth:`Verifier.finish` found. ``ok`` is true when there is no problem."""

    problems: list[Problem] = field(default_factory=list)
    records: int = 0
    first_seq: int | None = None
    head_seq: int | None = None
    head_hash: str | None = None
    seals: int = 0
    sealed_through: int | None = None
    """The seq the last seal covers (None: never sealed)."""
    key_checked: bool = False
    """Whether the seals' MACs were checked with the verification key."""
    checkpoint: int | None = None
    """The seq of the last pruned record (None: never pruned)."""
    key_epoch: int | None = None
    problem_count: int = 0
    """All problems found (only the first :data:`MAX_PROBLEMS` are kept, the first bad one always)."""
    lowest: int | None = None
    seals_verified: list[int] | None = None
    """With the key: the epochs of the seals whose MAC verified (None: the key was not given)."""
    gaps: list[Gap] = field(default_factory=list)
    """Missing seals no acknowledgement names (each is a problem too)."""
    acknowledged: list[dict[str, Any]] = field(default_factory=list)
    """Missing seals acknowledged as a restore: the gap's fields and ``record``, the acknowledgement's seq."""
    hints: list[str] = field(default_factory=list)
    """What to do about the problems, when known (a gap: how to acknowledge a restore)."""

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first_bad(self) -> int | None:
        """The smallest seq any problem names (None when ok, or when no problem names a record)."""
        return self.lowest

    @property
    def unsealed(self) -> int:
        """Records after the last seal (all of them when never sealed): not yet protected against rewriting."""
        if self.head_seq is None:
            return 0
        if self.sealed_through is None:
            return self.records
        return max(0, self.head_seq - self.sealed_through)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "first_bad_seq": self.first_bad, "records": self.records, "first_seq": self.first_seq,
                "head_seq": self.head_seq, "head_hash": self.head_hash, "seals": self.seals,
                "sealed_through": self.sealed_through, "unsealed": self.unsealed, "key_checked": self.key_checked,
                "checkpoint": self.checkpoint, "key_epoch": self.key_epoch,
                "problem_count": self.problem_count, "problems": [p.to_dict() for p in sorted(self.problems, key=_order)],
                "seals_verified": self.seals_verified, "gaps": [g.to_dict() for g in self.gaps],
                "acknowledged": self.acknowledged, "hints": self.hints}


def _order(p: Problem) -> tuple[int, int]:
    return (0, p.seq) if p.seq is not None else (1, 0)


class Verifier:
    """Checks one log; see the module docstring.

    ``seals``: every seal (``epoch, seq, hash, ts, mac``), any order;
    ``checkpoints``: every checkpoint (``seq, hash, epoch``); ``key0``: the
    verification key (None: the MACs are not checked); ``key_epoch``: the epoch
    of the key file on this machine (None: unknown, e.g. an export).
    """

    def __init__(self, seals: Sequence[Mapping[str, Any]], checkpoints: Sequence[Mapping[str, Any]] = (), *,
                 key0: bytes | None = None, key_epoch: int | None = None, key_file_id: str | None = None,
                 key_file_problem: str | None = None) -> None:
        self.report = Report(seals=len(seals), key_checked=key0 is not None, key_epoch=key_epoch,
                             seals_verified=[] if key0 is not None else None)
        self._key0 = key0
        self._gaps: list[tuple[Gap, str]] = []  # found before the records; acknowledged or not once all were read
        self._acks: list[tuple[int, Gap, str]] = []  # (the seq holding it, the gap it names, its MAC)
        self._key_id = key_id(key0) if key0 is not None else None
        self._seals = sorted(seals, key=lambda s: int(s["epoch"]))
        self._by_seq = {int(s["seq"]): s for s in self._seals}
        self._seal_seqs = [int(s["seq"]) for s in self._seals]
        self._coarse: list[tuple[int, int, str]] = []  # (seal index, first seq it covers, message)
        self._fine_in: dict[int, int] = {}  # seal index -> the first seq of its range the chain found bad
        self._checkpoints = sorted(checkpoints, key=lambda c: int(c["seq"]))
        self._cp = self._checkpoints[-1] if self._checkpoints else None
        self.report.checkpoint = int(self._cp["seq"]) if self._cp else None
        self.report.sealed_through = int(self._seals[-1]["seq"]) if self._seals else None
        self._prev_seq: int | None = None
        self._prev_hash: str | None = None
        self._before_prev_hash: str | None = None
        self._check_seals(key0)
        self._check_key_epoch(key_epoch)
        self._check_key_file(key0, key_epoch, key_file_id, key_file_problem)
        self._check_checkpoints()

    # -- the seals, before any record ------------------------------------------------------------

    def _start_of(self, index: int) -> int:
        """The first seq the seal at ``index`` (of the sorted seals) covers."""
        return int(self._seals[index - 1]["seq"]) + 1 if index > 0 else 1

    def _check_seals(self, key0: bytes | None) -> None:
        if key0 is not None and not self._seals:
            self._add(1, "the log has no seal, so the verification key vouches for nothing: it was never "
                         "initialized (edgeorch audit init) or its seals were removed")
        key = key0
        key_epoch = 0
        for i, seal in enumerate(self._seals):
            epoch, seq = int(seal["epoch"]), int(seal["seq"])
            start = self._start_of(i)
            # Against the seal before it, not its index: one gap (a restored backup's seals 4-7) is said once,
            # not again at every later seal ("4 to 7 missing", then "5 to 8", "6 to 9", ...).
            prev = int(self._seals[i - 1]["epoch"]) if i else -1
            if epoch > prev + 1:  # a problem at finish() unless a restore's acknowledgement names it
                self._gaps.append((gap_after(self._seals[i - 1] if i else None, epoch - 1),
                                   f"the seal(s) of epoch {prev + 1}" + (f" to {epoch - 1}" if epoch - 1 > prev + 1
                                                                         else "")
                                   + f" are missing (seal {epoch} follows seal {prev if i else 'none'})"))
            elif epoch <= prev:
                self._add(start, f"seal {epoch} is there twice (or out of order after seal {prev})")
            if i and seq <= int(self._seals[i - 1]["seq"]):
                self._add(seq, f"seal {epoch} covers record {seq}, not a record after seal "
                               f"{self._seals[i - 1]['epoch']}'s {self._seals[i - 1]['seq']}")
            if key is not None:
                while key_epoch < epoch:
                    key, key_epoch = evolve(key), key_epoch + 1
                if mac_ok(key, seal["mac"], epoch=epoch, seq=seq, hash=str(seal["hash"]), ts=str(seal["ts"])):
                    self.report.seals_verified.append(epoch)  # type: ignore[union-attr]  # a list with a key
                else:
                    self._coarse.append((i, start, f"seal {epoch} (records {start}-{seq}) does not verify with the "
                                                   f"verification key: some of those records or the seal were "
                                                   f"rewritten"))
        self._key_vouched = key0 is not None and len(self._coarse) < len(self._seals)  # some seal verifies
        if key0 is not None and len(self._seals) > 1 and len(self._coarse) == len(self._seals):
            # Not one seal verifies: a wrong key, far more likely than every seal forged. Said once (with the
            # audit_init record pruned there is no recorded key id to compare), naming no record.
            self._coarse.clear()
            self._add(None, f"none of the {len(self._seals)} seals verifies with the key given: it is most likely "
                            f"not this log's verification key (id {key_id(key0)}), else every seal was rewritten")

    def _check_key_epoch(self, key_epoch: int | None) -> None:
        """The key file's epoch is one past the last seal's (or equal: a crash between a seal and the key's evolution)."""
        if key_epoch is None:
            return
        last = int(self._seals[-1]["epoch"]) if self._seals else -1
        if key_epoch > last + 1:  # a problem at finish() unless a restore's acknowledgement names it
            self._gaps.append((gap_after(self._seals[-1] if self._seals else None, key_epoch - 1), f"the seal(s) of epoch {last + 1}" + (f" to {key_epoch - 1}" if key_epoch - 1 > last + 1
                      else "") + f" are missing: the key file is at epoch {key_epoch}"))
        elif key_epoch < last:
            index = next(i for i, s in enumerate(self._seals) if int(s["epoch"]) > key_epoch)
            self._add(self._start_of(index), f"seal {self._seals[index]['epoch']} is later than the key file's "
                                             f"epoch {key_epoch}: it was not made by this machine's sealer")

    def _check_key_file(self, key0: bytes | None, key_epoch: int | None, key_file_id: str | None,
                        problem: str | None) -> None:
        """On the machine, the key file is what shows that no sealed record after the last seal left was cut:
        missing or damaged on a sealed log, nothing does (a problem, not a note); with the verification key, its
        key must be ``key_0`` evolved to its epoch (a forged key file at the right epoch hid a cut tail)."""
        start = int(self._seals[-1]["seq"]) + 1 if self._seals else 1
        if problem is not None and self._seals:
            # No record is known to be bad: what is in doubt is whether any followed the last seal and was cut.
            self._add(None, f"{problem}: sealing has stopped, and nothing shows whether sealed records after "
                            f"record {start - 1} were removed (seal {self._seals[-1]['epoch']} is the last left)")
        if self._key_vouched and key0 is not None and key_epoch is not None and key_file_id is not None \
                and key_id(key_at(key0, key_epoch)) != key_file_id:  # (a wrong key is said once, above)
            self._add(None, f"the key file's key (epoch {key_epoch}) is not the verification key evolved "
                             f"{key_epoch} times: the key file was replaced, so seals after record {start - 1} "
                             "may have been removed with their records")

    def _check_checkpoints(self) -> None:
        by_epoch = {int(s["epoch"]): s for s in self._seals}
        for cp in self._checkpoints:
            seal = by_epoch.get(int(cp["epoch"]))
            if seal is None or int(seal["seq"]) != int(cp["seq"]) or seal["hash"] != cp["hash"]:
                self._add(int(cp["seq"]), f"the checkpoint at record {cp['seq']} does not match seal {cp['epoch']}")

    # -- the records -----------------------------------------------------------------------------

    def feed(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Check the next records (in ``seq`` order, continuing the previous batch)."""
        rep = self.report
        for row in rows:
            seq, stored = int(row["seq"]), str(row["hash"])
            if self._prev_seq is None:
                self._first(seq, row)
            elif seq != self._prev_seq + 1:
                self._add(self._prev_seq + 1, f"record(s) {self._prev_seq + 1}" +
                          (f"-{seq - 1}" if seq - 1 > self._prev_seq + 1 else "") + " are missing")
            own_ok = hash_of_row(row) == stored
            if self._prev_seq is not None and seq == self._prev_seq + 1 and row["prev_hash"] != self._prev_hash:
                self._broken_link(seq, str(row["prev_hash"]), own_ok)
            if not own_ok:
                self._add(seq, f"record {seq} does not match its hash: it was edited")
            seal = self._by_seq.get(seq)
            if seal is not None and seal["hash"] != stored:
                index = self._seals.index(seal)
                self._coarse.append((index, self._start_of(index), f"seal {seal['epoch']} vouches for another record "
                                                                   f"{seq}: some of records {self._start_of(index)}-{seq} "
                                                                   f"were rewritten"))
            if self._key_id is not None and row["action"] == "audit_init":
                self._check_key_id(seq, str(row["details"]))
            for gap, mac in acks_of(str(row["action"]), str(row["details"])):
                self._acks.append((seq, gap, mac))
            rep.records += 1
            self._before_prev_hash = self._prev_hash
            self._prev_seq, self._prev_hash = seq, stored
        rep.head_seq, rep.head_hash = self._prev_seq, self._prev_hash

    def _broken_link(self, seq: int, prev_hash: str, own_ok: bool) -> None:
        """Record ``seq`` does not link to the one before it: name the record most likely changed.

        It links to the record before that one: the one between was inserted.
        Its own hash fails: it was moved (its seq changed) or edited. Else it
        is intact, so the one before it was rewritten with a recomputed hash.
        """
        before = self._prev_seq
        assert before is not None
        if prev_hash == self._before_prev_hash:
            self._add(before, f"record {seq} links to record {before - 1}, not {before}: {before} was inserted")
        elif not own_ok:
            self._add(seq, f"record {seq} does not link to record {before}: {seq} was moved or edited")
        else:
            self._add(before, f"record {seq} does not link to record {before} (its prev_hash is not {before}'s "
                              f"hash): {before} was rewritten")

    def _first(self, seq: int, row: Mapping[str, Any]) -> None:
        """The first record: record 1 after GENESIS, or the one after the last checkpoint."""
        self.report.first_seq = seq
        if seq == 1:
            if row["prev_hash"] != GENESIS:
                self._add(1, "record 1 does not start the chain (its prev_hash is not the genesis hash)")
            return
        cp = self._cp
        if cp is None or int(cp["seq"]) != seq - 1:
            start = int(cp["seq"]) + 1 if cp is not None and int(cp["seq"]) < seq else 1
            self._add(start, f"record(s) {start}-{seq - 1} are missing and no checkpoint of a prune covers them")
        elif row["prev_hash"] != cp["hash"]:
            self._add(seq, f"record {seq} does not link to the checkpoint at record {cp['seq']}")

    def _check_key_id(self, seq: int, details: str) -> None:
        import json

        try:
            recorded = json.loads(details).get("key_id")
        except (ValueError, AttributeError):
            return  # an edited record: its hash check says so
        if recorded and recorded != self._key_id:
            self._add(seq, f"the key given is not this log's verification key (its id is {self._key_id}; "
                           f"the log was initialized with {recorded} at record {seq})")

    def finish(self) -> Report:
        """The report, after the last record: seals that name records past the head mean a truncated tail."""
        rep = self.report
        self._resolve_gaps()
        head = rep.head_seq if rep.head_seq is not None else (int(self._cp["seq"]) if self._cp else 0)
        beyond = [s for s in self._seals if int(s["seq"]) > head]
        if beyond:
            self._add(head + 1, f"record(s) {head + 1}-{beyond[-1]['seq']} are missing (seal {beyond[-1]['epoch']} "
                                f"covers record {beyond[-1]['seq']}): the tail was truncated")
        for index, start, message in self._coarse:
            self._add(self._fine_in.get(index, start), message, coarse=True)
        return rep

    def _resolve_gaps(self) -> None:
        """Each gap in the seals is acknowledged (an acknowledgement in the chain names exactly it) or a problem.

        With the key, an acknowledgement whose MAC does not verify is a problem of its own record and
        acknowledges nothing (one made without the key: an attacker hiding a cut tail). With a key that no seal
        verifies with (said once already), their MACs are not checked: they would only repeat it.
        """
        acked: dict[tuple[int, int, int, int, str], int] = {}
        for seq, gap, mac in self._acks:
            if self._key0 is not None and self._key_vouched and not ack_ok(self._key0, gap, mac):
                self._add(seq, f"the acknowledgement of a restore at record {seq} (the seal(s) of epoch "
                               f"{gap.epochs()}) does not verify with the verification key: it was not made with it")
                continue
            acked.setdefault(gap.ident, seq)
        for gap, message in self._gaps:
            record = acked.get(gap.ident)
            if record is not None:
                self.report.acknowledged.append({**gap.to_dict(), "record": record})
                continue
            self.report.gaps.append(gap)
            self._add(gap.start, message)
        if self.report.gaps:
            self.report.hints.append(f"missing seals: {HOW}")

    def _add(self, seq: int | None, message: str, *, coarse: bool = False) -> None:
        if seq is not None and not coarse and self._seal_seqs:
            index = bisect_left(self._seal_seqs, seq)  # the seal whose range holds seq
            if seq < self._fine_in.get(index, seq + 1):
                self._fine_in[index] = seq
        rep = self.report
        rep.problem_count += 1
        if seq is not None and (rep.lowest is None or seq < rep.lowest):
            rep.lowest = seq
            if len(rep.problems) >= MAX_PROBLEMS:  # the first bad one is always kept
                rep.problems[-1] = Problem(seq, message)
                return
        if len(rep.problems) < MAX_PROBLEMS:
            rep.problems.append(Problem(seq, message))


def verify(records: Iterable[Mapping[str, Any]], seals: Sequence[Mapping[str, Any]],
           checkpoints: Sequence[Mapping[str, Any]] = (), *, key0: bytes | None = None,
           key_epoch: int | None = None) -> Report:
    """Check a whole log at once (see :class:`Verifier`)."""
    v = Verifier(seals, checkpoints, key0=key0, key_epoch=key_epoch)
    v.feed(records)
    return v.finish()
