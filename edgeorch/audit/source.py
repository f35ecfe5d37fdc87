"""Where a reader of the audit log gets it: the state file, or a daemon; and what it does with it.

A source answers two questions: :meth:`AuditSource.state` (every seal and
checkpoint, the head, the key file's epoch) and :meth:`AuditSource.records`
(a page of records in seq order). :func:`verify_source` and
:func:`export_source` read any source page by page, so the CLI verifies and
exports the same way with a daemon (ops ``audit.state``/``audit.list``) or
without one (the state file, read in one read transaction: a consistent
snapshot while a daemon keeps appending), and the key never leaves the
process that verifies.

Consistency with a live daemon: the state (seals first) is read before the
records, and records are read only up to the head it reported; records
appended meanwhile are left for the next verification, so no seal ever names
a record that was not read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Iterator, Protocol

from ..errors import EdgeorchError
from . import keyfile
from .chain import FORMAT, RECORD_KEYS
from .keys import key_id
from .verify import Report, Verifier

if TYPE_CHECKING:  # pragma: no cover
    from ..control.client import Client
    from ..store.audit import AuditLog

PAGE = 2000
"""Records per read (a page over the socket is about 1 MB)."""


class AuditSource(Protocol):
    """What :func:`verify_source` and :func:`export_source` read."""

    def state(self) -> dict[str, Any]:
        """``{"seals": [...], "checkpoints": [...], "head": seq | None, "key_epoch": int | None, "warnings": [...]}``."""
        ...

    def records(self, *, after: int, limit: int, through: int | None = None, since: str | None = None,
                actor: str | None = None, action: str | None = None, newest: bool = False) -> list[dict[str, Any]]:
        """Records (raw columns) in seq order after ``after``; the filters as :meth:`AuditLog.records`."""
        ...


def audit_state(audit: "AuditLog", key_file: Path | None) -> dict[str, Any]:
    """:meth:`AuditSource.state` of a state file (the seals read before the head, see the module docstring)."""
    warnings: list[str] = []
    seals = audit.seals()
    checkpoints = audit.checkpoints()
    head = audit.head()
    key_epoch = key_file_id = key_file_problem = None
    if key_file is not None:
        try:
            state = keyfile.read(key_file)
            if state is not None:
                key_epoch, key_file_id = state.epoch, key_id(state.key)  # the public id only: never the key
        except EdgeorchError as exc:  # its message and file, not its hint: the problem's own words follow it
            key_file_problem = exc.render().split("\n  hint:", 1)[0]
        if key_epoch is None and key_file_problem is None:
            key_file_problem = f"the audit key file {key_file} is missing"
    if not seals:
        warnings.append("the audit log was never sealed: `edgeorch audit init` starts sealing it")
    return {"seals": seals, "checkpoints": checkpoints, "head": head[0] if head else None,
            "key_epoch": key_epoch, "key_file_id": key_file_id, "key_file_problem": key_file_problem,
            "warnings": warnings}


class StoreSource:
    """The state file, opened by this process (the offline path, and the daemon's ``audit.verify``).

    Read it inside ``with store.audit.snapshot():`` on a connection of its
    own (read-only), so the state and the records are one consistent view.
    """

    def __init__(self, audit: "AuditLog", key_file: Path | None) -> None:
        self.audit = audit
        self.key_file = key_file

    def state(self) -> dict[str, Any]:
        return audit_state(self.audit, self.key_file)

    def records(self, **query: Any) -> list[dict[str, Any]]:
        return self.audit.records(**query)


class DaemonSource:
    """A daemon's log through its ops (read access); the key file's epoch comes with ``audit.state``."""

    def __init__(self, client: "Client") -> None:
        self.client = client

    def state(self) -> dict[str, Any]:
        return self.client.call("audit.state", {})  # type: ignore[no-any-return]

    def records(self, **query: Any) -> list[dict[str, Any]]:
        args = {k: v for k, v in query.items() if v is not None and v is not False}
        return self.client.call("audit.list", args)["records"]  # type: ignore[no-any-return]


def _pages(source: AuditSource, through: int | None) -> Iterator[list[dict[str, Any]]]:
    after = 0
    while through is None or after < through:
        page = source.records(after=after, limit=PAGE, through=through)
        if not page:
            return
        yield page
        after = int(page[-1]["seq"])


def verify_source(source: AuditSource, *, key0: bytes | None = None,
                  key_file: bool = True) -> tuple[Report, dict[str, Any]]:
    """Verify a whole log page by page; the report and the state it was checked against (with its warnings).

    ``key_file=False``: a missing or damaged key file is no problem (``audit init --key`` is about to put it
    back, on a log the verification key vouches for)."""
    state = source.state()
    v = _verifier(state if key_file else {**state, "key_file_problem": None}, key0)
    for page in _pages(source, state["head"]):
        v.feed(page)
    return v.finish(), state


def _verifier(state: dict[str, Any], key0: bytes | None = None) -> Verifier:
    """A verifier of the log ``state`` describes (its seals, checkpoints and, on the machine, its key file)."""
    return Verifier(state["seals"], state["checkpoints"], key0=key0, key_epoch=state.get("key_epoch"),
                    key_file_id=state.get("key_file_id"), key_file_problem=state.get("key_file_problem"))


def export_source(source: AuditSource, out: IO[str], *, exported_at: str) -> dict[str, Any]:
    """Write the log as JSON lines (docs/audit.md "Export"): a header, checkpoints, seals, records.

    Each record line holds exactly the hashed keys (``prev`` is the record's
    ``prev_hash``) plus ``hash`` and ``type``, so a verifier needs nothing but
    the documented algorithm. Returns the header.
    """
    state = source.state()
    header = {"type": "header", "format": FORMAT, "exported_at": exported_at, "head_seq": state["head"],
              "seals": len(state["seals"]), "checkpoints": len(state["checkpoints"])}
    out.write(_line(header))
    for cp in state["checkpoints"]:
        out.write(_line({"type": "checkpoint", **cp}))
    for seal in state["seals"]:
        out.write(_line({"type": "seal", **seal}))
    count = 0
    check = _verifier(state)  # what is exported is checked on the way (its hashes, links and seals), as verify does
    for page in _pages(source, state["head"]):
        check.feed(page)
        for row in page:
            rec = {k: row["prev_hash"] if k == "prev" else row[k] for k in RECORD_KEYS}
            out.write(_line({"type": "record", **rec, "hash": row["hash"]}))
            count += 1
    header["records"] = count
    report = check.finish()
    header["verified"] = report.ok  # not written into the file: the header line went out first
    header["first_bad_seq"] = report.first_bad
    return header


def _line(obj: dict[str, Any]) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n"
