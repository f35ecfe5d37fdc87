"""Sealing the audit log's head with a key that then evolves one way (docs/audit.md "Sealing").

:class:`Sealer` owns the key file (:mod:`.keyfile`) and writes seals through
``store.audit``. Order of a seal, chosen so a crash at any point loses nothing
and forges nothing:

1. read the key of epoch ``e`` from the key file;
2. store the seal of epoch ``e`` over the head (one durable transaction);
3. overwrite the key file with ``key_{e+1}`` and ``fsync``.

A crash between 2 and 3 leaves the key file at ``e`` with seal ``e`` stored:
the next seal (or the daemon's start) first evolves the file past the last
seal (:meth:`Sealer.repair`); until then ``key_e`` is still on disk, a window
docs/audit.md names. A crash before 2 leaves no seal and the same key.

:class:`SealService` runs a sealer in the daemon: at start (sealing what an
in-process ``edgeorch run`` appended meanwhile), after ``every`` new records
(checked on each published event), every ``interval`` seconds when the head
moved, and at stop. A seal that fails (a damaged key file, a full disk) is
logged and retried at the next occasion; it never stops the daemon, and the
chain keeps being written. At start it first says, as a WARNING, seals the
state file lacks while the key file evolved past them (a restored backup, or
seals removed: :mod:`.restore`), unless a restore acknowledgement names them.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ..errors import ConflictError, EdgeorchError, UsageError
from . import keyfile
from .chain import iso_ts
from .keyfile import KeyState
from .keys import evolve, key_id, new_key, seal_mac
from .restore import ACTION as RESTORED, HOW, Gap, ack_details, gaps

if TYPE_CHECKING:  # pragma: no cover
    from ..store.audit import AuditLog

log = logging.getLogger("edgeorch.audit")

DEFAULT_EVERY = 1000
"""Seal after this many new records."""
DEFAULT_INTERVAL = 300.0
"""Seal at least this often (seconds) while records arrive."""


class Sealer:
    """Initializes the key chain and seals the head; see the module docstring.

    ``audit``: ``store.audit``; ``key_file``: the key file's path; ``clock``:
    Unix seconds (the seal's ``ts``). Not thread-safe: one caller at a time
    (the daemon's loop, or the CLI holding the state-dir lock).
    """

    def __init__(self, audit: "AuditLog", key_file: Path, *, clock: Callable[[], float]) -> None:
        self.audit = audit
        self.key_file = Path(key_file)
        self.clock = clock

    @property
    def initialized(self) -> bool:
        """Whether a key file exists (``edgeorch audit init`` was run)."""
        return self.key_file.exists()

    def init(self, actor: str | None, settings: dict[str, Any] | None = None) -> bytes:
        """Start the key chain: returns ``key_0``, the verification key, which is kept nowhere on this machine.

        Appends an ``audit_init`` record (the key's id and ``settings``), seals
        the head with ``key_0`` as epoch 0 and leaves ``key_1`` in the key file.
        Raises :class:`ConflictError` when the log already has a seal (a new
        key would make every earlier seal unverifiable); a key file without
        seals (an interrupted init) is replaced.
        """
        if self.audit.last_seal() is not None:
            raise ConflictError("the audit log is already initialized: it has seals", hint=(
                "keep using the verification key shown at the first `edgeorch audit init`" if self.initialized
                else f"its key file {self.key_file} is missing (a backup restored without it?): `edgeorch audit "
                     "init --key -` makes it again from the verification key (docs/audit.md)"))
        key0 = new_key()
        keyfile.create(self.key_file, KeyState(0, key0))
        self.audit.record(actor, "audit_init", "audit", {"key_id": key_id(key0), **(settings or {})})
        sealed = self.seal()
        assert sealed is not None and sealed["epoch"] == 0
        return key0

    def restore(self, actor: str | None, state: KeyState) -> dict[str, Any]:
        """Put a missing or damaged key file back, at the epoch after the last seal, and seal on with it.

        ``state``: that epoch and its key, which the caller derived from ``key_0`` after verifying the log
        with it (``edgeorch audit init --key``): the verification key itself never reaches this process. An
        ``audit_key_restored`` record says so in the chain, for whoever verifies it later. Raises
        :class:`ConflictError` when the log has no seal (``audit init`` starts one) or the key file is
        whole (nothing to restore), :class:`UsageError` when ``state`` is not at the next epoch.
        """
        last = self.audit.last_seal()
        if last is None:
            raise ConflictError("the audit log has no seal: there is no key file to restore",
                                hint="`edgeorch audit init` (without --key) starts sealing it")
        try:
            was = "missing" if keyfile.read(self.key_file) is None else None
        except EdgeorchError:
            was = "damaged"
        if was is None:
            raise ConflictError("the audit key file is in place and whole: there is nothing to restore",
                                hint="`edgeorch audit verify --key -` checks the log with the verification key")
        expected = int(last["epoch"]) + 1
        if state.epoch != expected:
            raise UsageError("is not the epoch after the last seal", field="epoch", value=state.epoch,
                             expected=str(expected))
        keyfile.create(self.key_file, state)
        self.audit.record(actor, "audit_key_restored", "audit",
                          {"epoch": state.epoch, "key_file": was, "last_seal_seq": int(last["seq"])})
        return {"epoch": state.epoch, "was": was, "key_file": str(self.key_file), "sealed": self.seal()}

    def repair(self, state: KeyState) -> KeyState:
        """Evolve the key file past the last seal when a crash came between a seal and the evolution."""
        last = self.audit.last_seal()
        if last is None or state.epoch > int(last["epoch"]):
            return state
        key, epoch = state.key, state.epoch
        while epoch <= int(last["epoch"]):
            key, epoch = evolve(key), epoch + 1
        repaired = KeyState(epoch, key)
        keyfile.overwrite(self.key_file, repaired)
        log.warning("audit key file was at epoch %d, behind seal %s; evolved to %d", state.epoch, last["epoch"], epoch)
        return repaired

    def seal(self) -> dict[str, Any] | None:
        """Seal the head now; the seal (``epoch, seq, hash, ts``), or None when not initialized or nothing is new.

        Raises :class:`~edgeorch.errors.StateError` for a damaged or
        unwritable key file or state file (nothing sealed, the key unchanged).
        """
        state = keyfile.read(self.key_file)
        if state is None:
            return None
        state = self.repair(state)
        head = self.audit.head()
        last = self.audit.last_seal()
        if head is None or (last is not None and int(last["seq"]) >= head[0]):
            return None
        seq, digest = head
        ts = iso_ts(self.clock())
        mac = seal_mac(state.key, epoch=state.epoch, seq=seq, hash=digest, ts=ts)
        self.audit.add_seal(epoch=state.epoch, seq=seq, digest=digest, ts=ts, mac=mac)
        keyfile.overwrite(self.key_file, KeyState(state.epoch + 1, evolve(state.key)))
        return {"epoch": state.epoch, "seq": seq, "hash": digest, "ts": ts}

    def unacknowledged_gaps(self) -> list[Gap]:
        """The gaps in the seals, with the key file's epoch, that no acknowledgement in the chain names.

        Empty when not initialized or the key file cannot be read (that is said elsewhere). The acknowledgements
        are read only when there is a gap (a scan of the records).
        """
        try:
            epoch = self.key_epoch()
        except EdgeorchError:
            epoch = None
        found = gaps(self.audit.seals(), epoch)
        if not found:
            return []
        acked = {gap.ident for _, gap, _ in self.audit.acknowledgements()}
        return [g for g in found if g.ident not in acked]

    def acknowledge_restore(self, actor: str | None, gap: Gap, mac: str) -> dict[str, Any]:
        """Record that ``gap`` is a restored backup's (an ``audit_restored`` record), then seal.

        ``mac``: the acknowledgement's MAC, which the caller computed from ``key_0`` after verifying the log with
        it (``edgeorch audit acknowledge-restore --key``); it cannot be checked here (the key it needs was erased)
        and is checked by ``verify --key``. Raises :class:`ConflictError` when no unacknowledged gap is exactly
        ``gap`` (none, or the log changed since it was verified), :class:`UsageError` for a MAC that is not 64
        hex digits. Returns ``{"record": seq, "gap": {...}, "sealed": seal or None}``.
        """
        if len(mac) != 64 or any(c not in "0123456789abcdef" for c in mac):
            raise UsageError("is not an acknowledgement MAC", field="mac", expected="64 lowercase hex digits")
        open_gaps = self.unacknowledged_gaps()
        if gap.ident not in {g.ident for g in open_gaps}:
            raise ConflictError(f"the audit log has no unacknowledged gap of the seal(s) of epoch {gap.epochs()} "
                                f"({gap.after()})" + (f" (its gaps: {', '.join(g.epochs() for g in open_gaps)})"
                                                                  if open_gaps else ""),
                                hint="`edgeorch audit verify` says which seals are missing")
        seq = self.audit.record(actor, RESTORED, "audit", ack_details(gap, mac))
        log.info("audit log: the missing seal(s) of epoch %s acknowledged as a restored backup (record %d)",
                    gap.epochs(), seq)
        return {"record": seq, "gap": gap.to_dict(), "sealed": self.seal()}

    def key_epoch(self) -> int | None:
        """The key file's epoch (None: not initialized). Raises StateError for a damaged file."""
        state = keyfile.read(self.key_file)
        return None if state is None else state.epoch


class SealService:
    """Seals on the daemon's loop: at start, every ``every`` records, every ``interval`` seconds, at stop."""

    def __init__(self, sealer: Sealer, *, every: int = DEFAULT_EVERY, interval: float = DEFAULT_INTERVAL) -> None:
        self.sealer = sealer
        self.every = every
        self.interval = interval
        self._timer: asyncio.TimerHandle | None = None
        last = sealer.audit.last_seal()
        self._sealed_seq = int(last["seq"]) if last is not None else 0
        self._warned = False

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Say missing seals (:meth:`warn_gaps`), seal what is new (records appended while no daemon ran) and arm
        the interval timer."""
        self.warn_gaps()
        self.seal_now("start")
        self._arm(loop)

    def warn_gaps(self) -> list[Gap]:
        """Log a WARNING for each gap in the seals no acknowledgement names (a restored backup, or seals removed);
        the gaps. Never raises: a failure to read is logged (this is a start's check, not its condition)."""
        try:
            found = self.sealer.unacknowledged_gaps()
        except (EdgeorchError, OSError) as exc:
            log.error("cannot check the audit log's seals for a restored backup: %s", exc)
            return []
        for gap in found:
            log.warning("restored state file? the audit log lacks the seal(s) of epoch %s (%s; the key file is past "
                        "them): a backup of the state file was restored, or seals were removed (`edgeorch audit "
                        "verify` fails until a restore is acknowledged): %s", gap.epochs(), gap.after(), HOW)
        return found

    def _arm(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = loop.call_later(self.interval, self._tick, loop)

    def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        self.seal_now("interval")
        self._arm(loop)

    def on_event(self, event: object) -> None:
        """A bus subscriber: seal once ``every`` records were appended since the last seal (the head this
        daemon committed last: no query per event; :meth:`Sealer.seal` reads the head itself)."""
        head = self.sealer.audit.written_head()
        if head is not None and head[0] - self._sealed_seq >= self.every:
            self.seal_now("count")

    def seal_now(self, why: str) -> dict[str, Any] | None:
        """Seal the head; errors are logged, never raised (the chain is still written; the next occasion retries)."""
        try:
            sealed = self.sealer.seal()
        except EdgeorchError as exc:
            log.error("audit log not sealed (%s): %s", why, exc.one_line())
            return None
        except OSError as exc:
            log.error("audit log not sealed (%s): %s", why, exc)
            return None
        if sealed is None:
            if not self.sealer.initialized and not self._warned:
                self._warned = True
                if self.sealer.audit.last_seal() is not None:  # sealed before: its key file is gone (a restore)
                    log.warning("the audit log is sealed, but its key file %s is missing (a backup restored without "
                                "it?): nothing new is sealed until `edgeorch audit init --key -` makes it again from "
                                "the verification key", self.sealer.key_file)
                else:
                    log.info("the audit log is not sealed: `edgeorch audit init` starts its sealing key")
            # Nothing new, or not initialized: count from the head, so on_event tries again only
            # ``every`` records later, not at every event.
            head = self.sealer.audit.head()
            self._sealed_seq = head[0] if head is not None else 0
            return None
        self._sealed_seq = sealed["seq"]
        log.debug("audit log sealed through record %d (epoch %d, %s)", sealed["seq"], sealed["epoch"], why)
        return sealed

    def close(self) -> None:
        """Stop the timer and seal the head a last time (the daemon stops)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.seal_now("stop")
