"""The hash chain, as pure functions: canonical encodings, record hashes, times, actors.

The algorithm (docs/audit.md "The algorithm", which an independent verifier follows):

- A record is ``seq`` (1, 2, 3, ... without gaps), ``ts`` (UTC, ISO 8601 with
  microseconds and ``Z``: :func:`iso_ts`), ``actor`` (a user name, ``engine``,
  ``scheduler``, ``watcher``, ``rule:<name>``, ...), ``uid`` (the peer's uid, or
  null), ``action``, ``subject``, ``details`` (a string: the canonical JSON of
  the details object, hashed as that string so no float is ever re-encoded),
  ``prev`` (the previous record's hash; :data:`GENESIS` for record 1).
- :func:`canonical` is JSON with sorted keys, no spaces, UTF-8, non-ASCII
  characters as themselves (Python's ``json.dumps(obj, sort_keys=True,
  separators=(",", ":"), ensure_ascii=False)``).
- A record's hash is the lowercase hex SHA-256 of the canonical encoding of
  the object with exactly those eight keys (:func:`record_hash`).
- A seal of epoch ``e`` over the head ``(seq, hash)`` at time ``ts`` is
  ``HMAC-SHA256(key_e, canonical({"epoch", "hash", "seq", "ts"}))``
  (:func:`seal_message`; the keys are :mod:`edgeorch.audit.keys`').

Nothing here does I/O.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from datetime import datetime, timezone
from typing import Any, Mapping, Sequence

FORMAT = "edgeorch-audit/1"
"""The name of this algorithm, written in exports; a change to any encoding here is a new format."""
GENESIS = "0" * 64
"""The ``prev`` of record 1."""
RECORD_KEYS = ("action", "actor", "details", "prev", "seq", "subject", "ts", "uid")
"""The keys of the hashed object, in their canonical (sorted) order."""

DEFAULT_ACTOR = "engine"
"""Who a change without a named actor is recorded as: edgeorch's own machinery."""
ACTOR_ALIASES = {"watch": "watcher", "file change": "watcher", "SIGHUP": "signal:SIGHUP"}
"""Actor texts other parts of edgeorch record in the ``events`` table, as the audit log names them."""
_PEER_ACTOR = re.compile(r"^(?P<user>.*) \(uid (?P<uid>\d+)\)$")
_UID_ONLY = re.compile(r"^uid (?P<uid>\d+)$")


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
"""The encoder :func:`canonical` uses: ``json.dumps`` with these arguments builds a new one at every call, and
every transition writes two or more records (stateless: one instance serves every thread)."""


def canonical(obj: Any) -> bytes:
    """The canonical encoding: JSON, sorted keys, no spaces, UTF-8 (see the module docstring).

    Raises ``ValueError`` for a NaN or infinity (JSON has none) and
    ``TypeError`` for a value JSON cannot hold.
    """
    return _CANONICAL.encode(obj).encode("utf-8")


def encode_details(details: Mapping[str, Any] | None) -> str:
    """The ``details`` text of a record: canonical JSON of ``details`` (``{}`` for None).

    Never fails on what a caller hands it, so recording a change can never
    be what makes the change fail: a value JSON cannot hold (a ``Path``, a
    set) is written as its ``str``, a NaN or infinity as ``"nan"``/``"inf"``.
    """
    try:
        return canonical(dict(details or {})).decode("utf-8")
    except (TypeError, ValueError):
        return canonical(_plain(dict(details or {}))).decode("utf-8")


def _plain(value: Any) -> Any:
    """``value`` with everything JSON cannot hold made a string (see :func:`encode_details`)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def record_hash(*, seq: int, ts: str, actor: str, uid: int | None, action: str, subject: str, details: str,
                prev: str) -> str:
    """The hex SHA-256 of a record's canonical encoding (``details`` is the stored text, hashed as a string)."""
    body = {"action": action, "actor": actor, "details": details, "prev": prev, "seq": seq, "subject": subject,
            "ts": ts, "uid": uid}
    return hashlib.sha256(canonical(body)).hexdigest()


def hash_of_row(row: Mapping[str, Any]) -> str:
    """:func:`record_hash` of a stored row (columns ``seq, ts, actor, uid, action, subject, details, prev_hash``)."""
    return record_hash(seq=row["seq"], ts=row["ts"], actor=row["actor"], uid=row["uid"], action=row["action"],
                       subject=row["subject"], details=row["details"], prev=row["prev_hash"])


def seal_message(*, epoch: int, seq: int, hash: str, ts: str) -> bytes:
    """What a seal's MAC covers: the canonical encoding of ``{"epoch", "hash", "seq", "ts"}``."""
    return canonical({"epoch": epoch, "hash": hash, "seq": seq, "ts": ts})


def iso_ts(t: float) -> str:
    """``t`` (Unix seconds) as the audit log writes times: ``2024-05-01T12:00:00.123456Z`` (fixed width, UTC)."""
    # isoformat is strftime's text for any Unix time (a test compares them) at two thirds of its cost, and every
    # transition writes one or two.
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="microseconds")[:-6] + "Z"


def parse_ts(text: str) -> float:
    """Unix seconds of an :func:`iso_ts` text. Raises ``ValueError`` for anything else."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc).timestamp()


def actor_fields(actor: str | None, default: str = DEFAULT_ACTOR) -> tuple[str, int | None]:
    """``(actor, uid)`` as a record holds them, from the actor text the rest of edgeorch passes.

    ``"alice (uid 1000)"`` (a socket peer, or the CLI's own user: ``actor_of``)
    is ``("alice", 1000)``; ``"uid 1000"`` (a uid with no user name) is
    ``("1000", 1000)``; None or an empty text is ``default``; the texts of
    :data:`ACTOR_ALIASES` are renamed; anything else (``scheduler``,
    ``rule:drift``) is kept as it is, with no uid.
    """
    if not actor:
        return default, None
    peer = _PEER_ACTOR.match(actor)
    if peer:
        return peer["user"], int(peer["uid"])
    bare = _UID_ONLY.match(actor)
    if bare:
        return bare["uid"], int(bare["uid"])
    return ACTOR_ALIASES.get(actor, actor), None


def event_subject(run_id: int | None, task: str | None, data: Mapping[str, Any] | None) -> str:
    """The subject of a record made from an ``events`` row: its run (and task), else what its data names.

    ``run:12/train``, ``run:12``, ``pipeline:nightly``, ``input:7``, ``dataset:sales``, ``model:churn``,
    ``gpu:<uuid>``, ``op:<op>``; ``daemon`` when the row names none of these (a data version added by
    ``edgeorch datasets add`` was "daemon").
    """
    if run_id is not None:
        return f"run:{run_id}/{task}" if task else f"run:{run_id}"
    data = data or {}
    for key, prefix in (("pipeline", "pipeline"), ("input_id", "input"), ("dataset", "dataset"), ("model", "model"),
                        ("uuid", "gpu"), ("op", "op")):
        if data.get(key) is not None:
            return f"{prefix}:{data[key]}"
    return "daemon"


def prune_point(seals: Sequence[Mapping[str, Any]], last_prunable: int) -> Mapping[str, Any] | None:
    """The seal pruning may cut at: the latest one covering no record past ``last_prunable``; None when none.

    ``seals`` are ``{"epoch", "seq", "hash"}`` in epoch order. Pruning removes
    the records up to the chosen seal's ``seq``, whose hash the seal vouches
    for, so what remains still verifies from that seal (docs/audit.md "Pruning").
    """
    chosen = None
    for seal in seals:
        if seal["seq"] <= last_prunable:
            chosen = seal
    return chosen
