"""The current sealing key on disk: ``<state dir>/audit.key``, mode 0600, overwritten in place when it evolves.

The file is one line of fixed length::

    edgeorch-audit-key/1 epoch=00000000000000000007 key=<64 hex> check=<16 hex>

``check`` is the first 16 hex digits of the SHA-256 of everything before
`` check=``, so a torn or edited file is refused instead of sealing with a
wrong key. Because the length never changes, an evolution rewrites the same
bytes of the same file (``pwrite`` at offset 0, then ``fsync``): on a
filesystem that updates blocks in place the previous key is gone. On SSDs
(wear levelling) and copy-on-write filesystems (btrfs, ZFS) or with
snapshots and backups of the state dir, old blocks may survive: erasure is
best effort there (docs/audit.md "Threat model").
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from pathlib import Path

from ..durable import fsync_dir
from ..errors import StateError
from ..records import frozen
from .keys import KEY_BYTES

log = logging.getLogger("edgeorch.audit")

FILE_NAME = "audit.key"
MAGIC = "edgeorch-audit-key/1"
_LINE = re.compile(rf"^{re.escape(MAGIC)} epoch=(\d{{20}}) key=([0-9a-f]{{{2 * KEY_BYTES}}}) check=([0-9a-f]{{16}})\n$")


@frozen
class KeyState:
    """The key of ``epoch``: the next seal is made with it."""

    epoch: int
    key: bytes


def key_path(state_dir: Path) -> Path:
    """Where the key file of a state dir is."""
    return Path(state_dir) / FILE_NAME


def _line(epoch: int, key: bytes) -> bytes:
    body = f"{MAGIC} epoch={epoch:020d} key={key.hex()}"
    return f"{body} check={hashlib.sha256(body.encode()).hexdigest()[:16]}\n".encode()


def create(path: Path, state: KeyState) -> None:
    """Write a new key file (0600, fsynced with its folder); an existing one is replaced in place."""
    data = _line(state.epoch, state.key)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        _write_all(fd, data)
        os.ftruncate(fd, len(data))
        os.fsync(fd)
    finally:
        os.close(fd)
    fsync_dir(path.parent)


def overwrite(path: Path, state: KeyState) -> None:
    """Replace the key in place (same length, same bytes of the same file), then ``fsync``: the old key is erased."""
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        _write_all(fd, _line(state.epoch, state.key))
        os.fsync(fd)
    finally:
        os.close(fd)


def read(path: Path) -> KeyState | None:
    """The key file's state; None when there is none (the log was never initialized).

    Raises :class:`StateError` naming the file when it cannot be read or is
    not a whole key line (torn, edited).
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateError(f"cannot read the audit key file: {exc.strerror or exc}", file=str(path)) from None
    m = _LINE.match(raw.decode("ascii", "replace"))
    if m is None or _line(int(m[1]), bytes.fromhex(m[2])) != raw:
        raise StateError("the audit key file is damaged (not one whole key line with a matching check)",
                         file=str(path), hint="sealing stops; the chain is still written and verifiable; "
                                              "docs/audit.md says how to recover")
    try:
        mode = os.stat(path).st_mode & 0o777
    except OSError:
        mode = 0o600
    if mode & 0o077:
        log.warning("the audit key file %s is readable by others (mode %o); it should be 0600", path, mode)
    return KeyState(int(m[1]), bytes.fromhex(m[2]))


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    offset = 0
    while offset < len(view):
        offset += os.pwrite(fd, view[offset:], offset)
