"""Forward-secure sealing keys, as pure functions (docs/audit.md "Sealing").

- ``key_0``: 32 random bytes made by ``edgeorch audit init`` and shown once as
  the *verification key*, for the operator to keep off the machine.
- ``key_{e+1} = SHA-256(b"edgeorch-audit-evolve/1" || key_e)``: one way, so
  whoever holds ``key_e`` can compute every later key and none before it.
- The seal of epoch ``e`` is ``HMAC-SHA256(key_e, seal message)``
  (:func:`edgeorch.audit.chain.seal_message`), after which the machine keeps
  only ``key_{e+1}``.
- The key id, ``SHA-256(b"edgeorch-audit-id/1" || key_0)``'s first 16 hex
  digits, is recorded by ``audit init`` so a verifier can tell "not this log's
  key" from "tampered".
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from ..errors import UsageError
from .chain import seal_message

KEY_BYTES = 32
EVOLVE_LABEL = b"edgeorch-audit-evolve/1"
ID_LABEL = b"edgeorch-audit-id/1"


def new_key() -> bytes:
    """A fresh ``key_0`` from the operating system's CSPRNG."""
    return secrets.token_bytes(KEY_BYTES)


def evolve(key: bytes) -> bytes:
    """The next epoch's key (one way)."""
    return hashlib.sha256(EVOLVE_LABEL + key).digest()


def key_at(key0: bytes, epoch: int) -> bytes:
    """``key_epoch`` from ``key_0`` (``epoch`` evolutions; one SHA-256 each, about a microsecond)."""
    key = key0
    for _ in range(epoch):
        key = evolve(key)
    return key


def key_id(key0: bytes) -> str:
    """The public id of a verification key (16 hex digits)."""
    return hashlib.sha256(ID_LABEL + key0).hexdigest()[:16]


def seal_mac(key: bytes, *, epoch: int, seq: int, hash: str, ts: str) -> str:
    """The hex HMAC-SHA256 sealing head ``(seq, hash)`` at ``ts`` in ``epoch`` with that epoch's key."""
    return hmac.new(key, seal_message(epoch=epoch, seq=seq, hash=hash, ts=ts), hashlib.sha256).hexdigest()


def mac_ok(key: bytes, mac: str, *, epoch: int, seq: int, hash: str, ts: str) -> bool:
    """Whether ``mac`` is the seal of that head with ``key`` (constant-time comparison)."""
    return hmac.compare_digest(seal_mac(key, epoch=epoch, seq=seq, hash=hash, ts=ts), str(mac))


def format_key(key: bytes) -> str:
    """The verification key as shown to the operator: 64 hex digits in groups of 8 joined by ``-``."""
    text = key.hex()
    return "-".join(text[i:i + 8] for i in range(0, len(text), 8))


def parse_key(text: str, *, field: str = "--key") -> bytes:
    """A verification key from its text (``-``, spaces and case ignored).

    Raises :class:`UsageError` naming ``field`` when it is not 64 hex digits.
    """
    digits = "".join(text.split()).replace("-", "").lower()
    if len(digits) != 2 * KEY_BYTES or any(c not in "0123456789abcdef" for c in digits):
        raise UsageError("is not a verification key", field=field,
                         value=text if len(text) <= 100 else text[:100] + "...",
                         expected="the 64 hex digits `edgeorch audit init` showed (dashes optional)")
    return bytes.fromhex(digits)
