"""Restored backups of the state file: seals it lacks, and their acknowledgement, as pure functions.

A backup of the state file restored over a newer one lacks the seals made
after the backup, while the key file (``audit.key``, not in backups: it must
not be, docs/audit.md "Threat model") has evolved past them. The key cannot go
back, so the next seal's epoch jumps: the log then has a **gap** in its seal
epochs (``first``..``last`` missing after the seal of ``after_epoch``). A
tail cut with its seals by someone else looks exactly the same.

An **acknowledgement** says "that gap is a legitimate restore". It is an
``audit_restored`` record (sealed like any record) whose details name the
gap and carry a MAC with the key of its first missing epoch, ``key_first``:

    mac = hex(HMAC-SHA256(key_first, C({"after_epoch", "after_hash", "after_seq", "first_epoch", "last_epoch",
                                         "type": "audit_restored"})))

Only the holder of the verification key can compute it after the fact: the
machine erased ``key_first`` when it evolved past it. So ``verify`` (no key)
accepts a well-formed acknowledgement of a gap that is there, and
``verify --key`` also checks its MAC, which an attacker who cut the tail
cannot forge. ``audit prune`` carries the acknowledgements of the records it
removes into its ``audit_pruned`` record (``restores``), so a gap stays
acknowledged after its record is pruned.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any, Mapping, Sequence

from ..records import frozen
from .chain import GENESIS, canonical
from .keys import key_at

ACTION = "audit_restored"
"""The action of an acknowledgement record."""
PRUNED = "audit_pruned"
"""The action of a prune's record, whose details' ``restores`` carry the acknowledgements it removed."""
GAP_FIELDS = ("first_epoch", "last_epoch", "after_epoch", "after_seq", "after_hash")
HOW = ("if a backup of the state file was restored, check the log with `edgeorch audit verify --key -` and "
       "record the restore with `edgeorch audit acknowledge-restore --key -` (docs/audit.md \"A restored backup\"); "
       "otherwise seals were removed: the log was tampered with")
"""What to do about a gap: said by the daemon's start and by ``verify``."""


@frozen
class Gap:
    """Seal epochs ``first_epoch``..``last_epoch`` missing after the seal of ``after_epoch`` (-1: no seal before,
    then ``after_seq`` 0 and ``after_hash`` the genesis hash), which covers record ``after_seq`` of hash
    ``after_hash``. ``start``: the first record the gap puts in doubt (not part of its identity)."""

    first_epoch: int
    last_epoch: int
    after_epoch: int
    after_seq: int
    after_hash: str
    start: int = 1

    @property
    def ident(self) -> tuple[int, int, int, int, str]:
        """What an acknowledgement must name exactly."""
        return (self.first_epoch, self.last_epoch, self.after_epoch, self.after_seq, self.after_hash)

    def epochs(self) -> str:
        """``2`` or ``2 to 3``."""
        return str(self.first_epoch) + (f" to {self.last_epoch}" if self.last_epoch > self.first_epoch else "")

    def after(self) -> str:
        """Where the gap is: ``after seal 1, which covers record 22``, or ``before the first seal``."""
        if self.after_epoch < 0:
            return "before the first seal"
        return f"after seal {self.after_epoch}, which covers record {self.after_seq}"

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in GAP_FIELDS}


def gaps(seals: Sequence[Mapping[str, Any]], key_epoch: int | None) -> list[Gap]:
    """Every gap in ``seals`` (any order), and after the last one when the key file (at ``key_epoch``, None:
    unknown) is more than one epoch ahead of it. A key file at the last seal's epoch (a crash between a seal and
    the key's evolution) is no gap."""
    found: list[Gap] = []
    after: Mapping[str, Any] | None = None
    for seal in sorted(seals, key=lambda s: int(s["epoch"])):
        if int(seal["epoch"]) > _epoch(after) + 1:
            found.append(gap_after(after, int(seal["epoch"]) - 1))
        after = seal
    if key_epoch is not None and key_epoch > _epoch(after) + 1:
        found.append(gap_after(after, key_epoch - 1))
    return found


def _epoch(seal: Mapping[str, Any] | None) -> int:
    return int(seal["epoch"]) if seal is not None else -1


def gap_after(after: Mapping[str, Any] | None, last: int) -> Gap:
    """The gap from the epoch after seal ``after`` (None: no seal before it) to ``last``."""
    if after is None:
        return Gap(0, last, -1, 0, GENESIS, 1)
    return Gap(int(after["epoch"]) + 1, last, int(after["epoch"]), int(after["seq"]), str(after["hash"]),
               int(after["seq"]) + 1)


def message(gap: Gap) -> bytes:
    """What an acknowledgement's MAC covers (see the module docstring)."""
    return canonical({**gap.to_dict(), "type": ACTION})


def ack_mac(key0: bytes, gap: Gap) -> str:
    """The acknowledgement MAC of ``gap``: keyed with ``key_0`` evolved to the gap's first epoch."""
    return hmac.new(key_at(key0, gap.first_epoch), message(gap), hashlib.sha256).hexdigest()


def ack_ok(key0: bytes, gap: Gap, mac: str) -> bool:
    """Whether ``mac`` acknowledges ``gap`` with this verification key (constant-time comparison)."""
    return hmac.compare_digest(ack_mac(key0, gap), str(mac))


def ack_details(gap: Gap, mac: str) -> dict[str, Any]:
    """The details of the ``audit_restored`` record acknowledging ``gap``."""
    return {**gap.to_dict(), "mac": mac}


def parse_ack(details: Any) -> tuple[Gap, str] | None:
    """``(gap, mac)`` of an acknowledgement's details; None when they are not one (wrong keys or types)."""
    if not isinstance(details, Mapping) or not isinstance(details.get("mac"), str):
        return None
    numbers = [v for v in (details.get(k) for k in GAP_FIELDS[:4]) if type(v) is int]  # a bool is no epoch
    after_hash = details.get("after_hash")
    if len(numbers) != 4 or not isinstance(after_hash, str):
        return None
    first, last, after_epoch, after_seq = numbers
    return Gap(first, last, after_epoch, after_seq, after_hash, after_seq + 1), details["mac"]


def acks_of(action: str, details: str) -> list[tuple[Gap, str]]:
    """The acknowledgements one record holds: its own (``audit_restored``), or those a prune carried
    (``audit_pruned``'s ``restores``); none for any other record or unreadable details."""
    if action not in (ACTION, PRUNED):
        return []
    try:
        parsed = json.loads(details)
    except (ValueError, TypeError):
        return []  # an edited record: its hash check says so
    items = [parsed] if action == ACTION else (parsed.get("restores") or [] if isinstance(parsed, dict) else [])
    acks = [parse_ack(item) for item in items] if isinstance(items, list) else []
    return [a for a in acks if a is not None]
