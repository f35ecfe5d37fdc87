"""``audit.*``: the audit log through the daemon (docs/audit.md), and the record of every refused request.

Reads (``read`` access): ``audit.list`` (a page of records, with filters),
``audit.state`` (seals, checkpoints, head, the key file's epoch: what a
verifier needs besides the records), ``audit.verify`` (the daemon checks the
chain and the seals' structure; never with the offline key, which must not
reach this machine's daemon: ``edgeorch audit verify --key`` checks locally).
Acts (``act`` access): ``audit.init`` (start the sealing key; the answer is
the only place the verification key is ever shown), ``audit.seal`` (seal the
head now), ``audit.prune`` (remove old records, keeping a sealed checkpoint),
``audit.restore_key`` and ``audit.acknowledge_restore`` (root or the daemon's
own user: what they carry was derived from the verification key by the CLI).

:func:`record_refused` is what the daemon's ``on_refused`` hook of the control server calls: a
request for an ``act`` op that its handler refused (bad arguments, a paused
pipeline, a conflict, an unknown id) becomes a ``request_refused`` record
naming the peer, the op, its arguments (shortened) and the error.
:func:`record_denied` (the ``on_denied`` hook) records a refusal for lack of
access, of one request or of a whole connection (a peer with no access at
all): a ``permission_denied`` events row, an audit record like every row.
The control server hands it a bounded number of refusals per uid a window
(:mod:`edgeorch.control.refusals`, the one rate rule); the count of the rest
reaches :func:`record_suppressed` (``on_suppressed``) once per window: one
``permission_denied_suppressed`` row, so the log still says they happened.
"""

from __future__ import annotations

import asyncio
import functools
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ...audit.keys import format_key, key_id
from ...audit.restore import GAP_FIELDS, Gap
from ...audit.sealer import SealService
from ...audit.source import StoreSource, audit_state, verify_source
from ...errors import EdgeorchError, UsageError
from ...textui import clip
from .base import OpSpec, actor_of, arg, time_arg

if TYPE_CHECKING:  # pragma: no cover
    from ...control import Peer
    from ...control.refusals import Suppressed
    from ...store import Store
    from ...store.audit import AuditLog
    from ...store.events import Events

MAX_PAGE = 5000
"""The most records one ``audit.list`` answer holds."""
VERIFY_IO = ThreadPoolExecutor(max_workers=1, thread_name_prefix="edgeorch-audit-verify")
"""The executor of ``audit.verify`` (one pass over the log at a time; not shared with client-named files)."""
VERIFY_REUSE_S = 2.0
"""How long after one uid's verification ended its answer is given again to that uid."""
ARG_TEXT_MAX = 200
"""A refused request's argument values are recorded up to this many characters each."""


class AuditOps:
    """``audit.*``.

    ``store``: the daemon's store (records, seals); ``seals``: the daemon's seal
    service (its sealer owns the key file); ``state_file``: opened read-only,
    in a worker thread, for ``audit.verify``; ``settings``: recorded by ``audit.init``.
    """

    OPS = (
        OpSpec("audit.list", "audit_list", "read", "audit records (filters: since, actor, action; paging: after, limit)",
               args=("limit", "since", "after", "through", "actor", "action", "newest")),
        OpSpec("audit.state", "audit_state", "read", "the audit log's seals, checkpoints, head and key epoch"),
        OpSpec("audit.verify", "audit_verify", "read", "verify the audit chain and its seals (no key)"),
        OpSpec("audit.init", "audit_init", "act", "start sealing the audit log; shows the verification key once"),
        OpSpec("audit.seal", "audit_seal", "act", "seal the audit log's head now"),
        OpSpec("audit.restore_key", "audit_restore_key", "act",
               "put back a missing or damaged audit key file at the next epoch (its key derived from key_0 by the "
               "client)", args=("epoch", "key")),
        OpSpec("audit.acknowledge_restore", "audit_acknowledge_restore", "act",
               "record that the audit log's missing seals are a restored backup's (the acknowledgement's MAC "
               "computed from key_0 by the client)", args=(*GAP_FIELDS, "mac")),
        OpSpec("audit.prune", "audit_prune", "act", "remove audit records older than a time, keeping a sealed checkpoint",
               args=("before",)),
    )

    def __init__(self, *, store: "Store", seals: SealService, state_file: Path,
                 settings: dict[str, Any] | None = None, is_owner: Callable[["Peer"], bool] | None = None) -> None:
        from ...control.auth import AccessPolicy

        self.store = store
        self.is_owner = is_owner or AccessPolicy().is_owner
        """Root and the daemon's uid (the server's policy's rule): their verifications are always fresh."""
        self.seals = seals
        self.state_file = Path(state_file)
        self.settings = settings or {}
        self._verifying: dict[int, asyncio.Future[dict[str, Any]]] = {}  # per uid: its verification running now
        self._last_verified: dict[int, tuple[float, dict[str, Any]]] = {}  # per uid: when its last one ended, its answer

    async def audit_list(self, args: dict[str, Any], peer: "Peer") -> dict[str, Any]:
        limit = arg(args, "limit", int, required=False, default=1000)
        if not 1 <= limit <= MAX_PAGE:
            raise UsageError("is out of range", field="args.limit", value=limit, expected=f"1 to {MAX_PAGE}")
        since = arg(args, "since", str, required=False)
        if since is not None:  # compared as text with the records' times: "yesterday" matched nothing, silently
            from datetime import datetime

            try:
                datetime.fromisoformat(since.replace("Z", "+00:00"))
            except ValueError:
                raise UsageError("is not a time", field="args.since", value=since,
                                 expected="an ISO 8601 time such as 2026-12-01T00:00:00Z") from None
        rows = self.store.audit.records(
            after=arg(args, "after", int, required=False, default=0), limit=limit,
            through=arg(args, "through", int, required=False), since=since,
            actor=arg(args, "actor", str, required=False), action=arg(args, "action", str, required=False),
            newest=arg(args, "newest", bool, required=False, default=False))
        return {"records": rows}

    async def audit_state(self, args: dict[str, Any], peer: "Peer") -> dict[str, Any]:
        return audit_state(self.store.audit, self.seals.sealer.key_file)

    async def audit_verify(self, args: dict[str, Any], peer: "Peer") -> dict[str, Any]:
        """Verified on a read-only connection of its own in a worker thread: one consistent snapshot, the loop free.

        On a thread of its own (:data:`VERIFY_IO`), never the one that reads files clients name; the requests
        of one uid that arrive while its verification runs share that verification's answer (asked 50 x 32
        times at once by a reader, each a pass over the whole log, they held path validation for 51 s), and for
        :data:`VERIFY_REUSE_S` after it ended its answer is the answer to a user other than root and the daemon's
        (a reader asking in a loop burned 60 % of a core: 50,000 passes in 12 s). So such a user's answer is at
        most that old: a change made within it is seen by the next pass; the owners always get a fresh one."""
        loop = asyncio.get_running_loop()
        recent = None if self.is_owner(peer) else self._last_verified.get(peer.uid)  # the owners: always fresh
        if recent is not None and loop.time() - recent[0] < VERIFY_REUSE_S:
            return dict(recent[1])  # a loop of requests: one pass per VERIFY_REUSE_S, not one each
        running = self._verifying.get(peer.uid)
        if running is None:
            key_file = self.seals.sealer.key_file
            running = loop.run_in_executor(VERIFY_IO, verify_file, self.state_file, key_file)
            self._verifying[peer.uid] = running
            running.add_done_callback(functools.partial(self._verified, peer.uid))
        return dict(await asyncio.shield(running))  # a request cancelled leaves the others' answer be

    def _verified(self, uid: int, done: "asyncio.Future[dict[str, Any]]") -> None:
        self._verifying.pop(uid, None)
        if not done.cancelled() and done.exception() is None:
            self._last_verified[uid] = (asyncio.get_running_loop().time(), done.result())

    async def audit_init(self, args: dict[str, Any], peer: "Peer") -> dict[str, Any]:
        key0 = self.seals.sealer.init(actor_of(peer), self.settings)
        self.seals.seal_now("init")
        return {"key": format_key(key0), "key_id": key_id(key0), "key_file": str(self.seals.sealer.key_file)}

    async def audit_restore_key(self, args: dict[str, Any], peer: "Peer") -> dict[str, Any]:
        """``epoch`` and ``key`` (64 hex digits): what ``edgeorch audit init --key`` derived after verifying the
        log with the verification key, which stays with the client (see :meth:`Sealer.restore`).

        Only root or the daemon's own user: the daemon cannot tell a key derived from ``key_0`` from a made-up one,
        and a made-up one sealed in would make every later seal unverifiable, the real key unable to restore the
        file again (an operator could plant one; root and the daemon's user can rewrite the state file anyway).
        The key's value is never repeated in an error (a refused request's record is readable by every reader).
        """
        from ...audit.keyfile import KeyState
        from ...control.protocol import PermissionDenied

        if peer.uid not in (0, os.getuid()):
            raise PermissionDenied(f"{peer.user} may not restore the audit key file: only root or the daemon's own "
                                   "user may (an operator's made-up key would poison the chain)",
                                   hint="run `edgeorch audit init --key -` as root, or as the daemon's user")
        epoch = arg(args, "epoch", int)
        text = args.get("key")
        try:
            key = bytes.fromhex(text) if isinstance(text, str) else b""
        except ValueError:
            key = b""
        if len(key) != 32:
            raise UsageError("is not a key", field="args.key", expected="a string of 64 hex digits (32 bytes)")
        res = self.seals.sealer.restore(actor_of(peer), KeyState(epoch, key))
        self.seals.seal_now("restore")  # the service counts from the new seal
        return res

    async def audit_acknowledge_restore(self, args: dict[str, Any], peer: "Peer") -> dict[str, Any]:
        """The gap (its five fields, as ``audit verify --json``'s ``gaps`` names them) and ``mac``: what ``edgeorch
        audit acknowledge-restore --key`` computed after verifying the log with the verification key (see
        :meth:`Sealer.acknowledge_restore`). Only root or the daemon's own user, as ``audit.restore_key``: the
        daemon cannot check the MAC, and an acknowledgement made up by an operator would turn a cut tail's
        ``verify`` (without the key) green."""
        from ...control.protocol import PermissionDenied

        if peer.uid not in (0, os.getuid()):
            raise PermissionDenied(f"{peer.user} may not acknowledge a restore of the audit log: only root or the "
                                   "daemon's own user may (without the key, verify trusts an acknowledgement)",
                                   hint="run `edgeorch audit acknowledge-restore --key -` as root, or as the "
                                        "daemon's user")
        gap = Gap(arg(args, "first_epoch", int), arg(args, "last_epoch", int), arg(args, "after_epoch", int),
                  arg(args, "after_seq", int), arg(args, "after_hash", str))
        res = self.seals.sealer.acknowledge_restore(actor_of(peer), gap, arg(args, "mac", str))
        self.seals.seal_now("acknowledge")  # the service counts from the new seal
        return res

    async def audit_seal(self, args: dict[str, Any], peer: "Peer") -> dict[str, Any]:
        if not self.seals.sealer.initialized:
            from ...errors import ConflictError

            raise ConflictError("the audit log is not initialized", hint="`edgeorch audit init` starts its sealing key")
        sealed = self.seals.sealer.seal()
        if sealed is not None:
            self.seals.seal_now("request")  # the service counts from the new seal
        return {"sealed": sealed}

    async def audit_prune(self, args: dict[str, Any], peer: "Peer") -> dict[str, Any]:
        before = time_arg(args, "before")
        assert before is not None
        return {"pruned": self.store.audit.prune(before, actor=actor_of(peer))}

def record_refused(audit: "AuditLog", peer: "Peer", op: str, access: str, args: dict[str, Any],
                   error: EdgeorchError) -> None:
    """Record a refused ``act`` request (the control server's ``on_refused``, see the module docstring).

    A read that fails changed nothing and asked for nothing to change: not recorded.
    """
    if access != "act":
        return
    shown = {k: "(secret, not recorded)" if k in SECRET_ARGS else v for k, v in args.items()}
    said = error.render()
    for k in SECRET_ARGS & set(args):  # an error that quoted a secret argument (another op's own checks) says less
        for text in {repr(args[k]), str(args[k])}:
            if len(text) >= 8:
                said = said.replace(text, "(secret)")
    if len(said) > ERROR_TEXT_MAX:  # an error quoting a huge argument: 20 refusals grew the state by 12 MB
        said = said[:ERROR_TEXT_MAX] + f"... ({len(said)} chars)"
    audit.record(actor_of(peer), "request_refused", f"op:{op}",
                 {"code": error.code, "error": said, "args": _shortened(shown), "pid": peer.pid})


ERROR_TEXT_MAX = 2000
"""The most characters of a refused request's error its audit record keeps."""
SECRET_ARGS = frozenset({"key"})
"""Arguments never written into a refusal's record: ``audit.restore_key``'s ``key`` is the next sealing key (in a
record every reader sees, it would let anyone forge the next seal)."""


def record_denied(events: "Events", peer: "Peer", op: str | None) -> None:
    """Record a refusal for lack of access (the control server's ``on_denied``): of ``op``, or of the
    connection itself when ``op`` is None (the peer has no access at all)."""
    what = "its connection (no access)" if op is None else op
    events.add("permission_denied", f"{peer.user} (uid {peer.uid}, pid {peer.pid}) refused: {what}",
               actor=actor_of(peer), data={"op": op} if op is not None else {"connection": True, "pid": peer.pid})


def record_suppressed(events: "Events", summary: "Suppressed") -> None:
    """Record the refusals of one uid that were counted, not recorded, in one window (``on_suppressed``)."""
    events.add("permission_denied_suppressed", summary.message(), actor=f"{summary.user} (uid {summary.uid})",
               data={"count": summary.count, "since": summary.since, "until": summary.until})


def verify_file(state_file: Path, key_file: Path | None) -> dict[str, Any]:
    """Verify a state file's audit log (no key) on a read-only connection of its own; the report with warnings."""
    from ...store import Store

    store = Store(state_file, readonly=True)
    try:
        with store.audit.snapshot():
            report, state = verify_source(StoreSource(store.audit, key_file))
    finally:
        store.close()
    return {**report.to_dict(), "warnings": state["warnings"]}


def _shortened(args: dict[str, Any]) -> dict[str, Any]:
    """A refused request's arguments for the record: each value's text cut to :data:`ARG_TEXT_MAX` characters."""
    out: dict[str, Any] = {}
    for key, value in args.items():
        if isinstance(value, (bool, int, float)) or value is None:
            out[str(key)] = value
        else:
            out[str(key)] = clip(value if isinstance(value, str) else repr(value), ARG_TEXT_MAX)
    return out
