"""``edgeorch audit [list|verify|export|init|seal|prune|acknowledge-restore]``: the tamper-evident audit log (docs/audit.md).

Reads (``list``, ``verify``, ``export``) go to the daemon when one answers,
else read the state file directly. ``verify --key`` and ``export`` always
compute here: with a daemon they page through ``audit.state``/``audit.list``,
so the verification key never reaches the daemon. Writes (``init``, ``seal``,
``prune``) go to the daemon, or without one are done here under the state
dir's lock.

``verify`` exits 0 when the log verifies and 1 when it does not, naming the
first bad sequence number. ``acknowledge-restore --key`` records that the
seals the log lacks are a restored backup's (docs/audit.md "A restored backup").
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from ...errors import UsageError
from ...textui import print_json, print_table
from ..backend import Backend, connect, load
from ..exits import EXIT_FAILED, EXIT_OK, follows_a_run
from . import AddCommand

ACTIONS = ("list", "verify", "export", "init", "seal", "prune", "acknowledge-restore")
WHEN_EXPECTED = "a duration back from now (30m, 12h, 90d) or a date/time (2024-05-01, 2024-05-01T12:00, UTC with Z)"


def register(add: AddCommand) -> None:
    p = add("audit", cmd_audit, "the tamper-evident audit log: list records, verify the chain and its seals, "
                                "export, initialize sealing, seal now, prune old records, "
                                "acknowledge a restored backup's missing seals")
    p.add_argument("sub", nargs="?", choices=ACTIONS, metavar="{" + ",".join(ACTIONS) + "}",
                   help="default: list (newest records last)")
    p.add_argument("--since", metavar="WHEN", help=f"list: records at or after WHEN ({WHEN_EXPECTED})")
    p.add_argument("--actor", help="list: records of this actor (a user name, a uid, engine, scheduler, watcher, ...)")
    p.add_argument("--action", help="list: records of this action (exact, or a prefix ending in *: 'run_*')")
    p.add_argument("--limit", "-n", type=int, default=50, help="list: how many of the newest records (default 50)")
    p.add_argument("--key", metavar="KEY",
                   help="verify: also check every seal with the verification key `audit init` showed; init: "
                        "put back a missing or damaged key file, from that key; acknowledge-restore: required "
                        "('-' reads it from stdin, keeping it out of the shell history)")
    p.add_argument("--output", "-o", metavar="FILE", help="export: write the JSON lines to FILE (default, or -: stdout)")
    p.add_argument("--before", metavar="WHEN", help=f"prune: remove records older than WHEN ({WHEN_EXPECTED})")


@follows_a_run
def cmd_audit(args: argparse.Namespace) -> int:
    sub = args.sub or "list"
    _refuse_foreign_options(args, sub)
    return {"list": _list, "verify": _verify, "export": _export, "init": _init, "seal": _seal,
            "prune": _prune, "acknowledge-restore": _acknowledge_restore}[sub](args)


_OPTIONS_OF = {"since": ("list",), "actor": ("list",), "action": ("list",), "key": ("verify", "init", "acknowledge-restore"),
               "output": ("export",), "before": ("prune",)}


def _refuse_foreign_options(args: argparse.Namespace, sub: str) -> None:
    """An option of another action is a mistake (``audit verify --since``), never silently ignored."""
    for name, owners in _OPTIONS_OF.items():
        if getattr(args, name) is not None and sub not in owners:
            owner = " and ".join(f"`edgeorch audit {o}`" for o in owners)
            raise UsageError(f"--{name} is an option of {owner}, not of `audit {sub}`",
                             field=f"--{name}")
    if sub == "acknowledge-restore" and args.key is None:
        raise UsageError("acknowledge-restore needs --key", field="--key",
                         expected="the verification key `edgeorch audit init` showed ('-': read from stdin)",
                         hint="only the key's holder can acknowledge a restore: the log is checked with it first")
    if sub == "prune" and args.before is None:
        raise UsageError("prune needs --before", field="--before", expected=WHEN_EXPECTED,
                         hint="edgeorch audit prune --before 365d removes records older than a year")


# -- reading ------------------------------------------------------------------------------------------


def _list(args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise UsageError("must be at least 1", field="--limit", value=args.limit)
    since = None if args.since is None else _iso(when(args.since, "--since"))
    query = {"since": since, "actor": args.actor, "action": args.action, "limit": args.limit, "newest": True}
    with connect(load(args)) as backend:
        if backend.online:
            rows = backend.client.call("audit.list", {k: v for k, v in query.items() if v is not None})["records"]
        else:
            store = backend.open_store(readonly=True)
            try:
                rows = store.audit.records(**query) if store is not None else []
            finally:
                if store is not None:
                    store.close()
    records = [{**r, "details": _parsed(r["details"])} for r in rows]
    if args.json:
        print_json(records)
        return EXIT_OK
    if args.quiet:
        for r in records:
            print(r["seq"])
        return EXIT_OK
    print_table(["seq", "time (utc)", "actor", "action", "subject", "details"],
                [[r["seq"], r["ts"][:19].replace("T", " "), r["actor"] if r["uid"] is None else f"{r['actor']} ({r['uid']})",
                  r["action"], r["subject"], _summary(r["details"])] for r in records],
                empty="no audit records match" if since or args.actor or args.action else "no audit records yet")
    return EXIT_OK


def _verify(args: argparse.Namespace) -> int:
    key0 = _read_key(args)
    cfg = load(args)
    with connect(cfg) as backend:
        if backend.online and key0 is None:
            result = backend.client.call("audit.verify", {})
        else:
            result = _local(backend, lambda source: _verified(source, key0))
    if args.json:
        print_json(result)
    else:
        _print_verdict(result, quiet=args.quiet)
    return EXIT_OK if result["ok"] else EXIT_FAILED


def _verified(source: Any, key0: bytes | None) -> dict[str, Any]:
    from ...audit.source import verify_source

    report, state = verify_source(source, key0=key0)
    return {**report.to_dict(), "warnings": state["warnings"]}


def _local(backend: Backend, work: Any) -> Any:
    """``work(source)`` on the daemon's log (through its ops) or on the state file (one read snapshot)."""
    from ...audit.keyfile import key_path
    from ...audit.source import DaemonSource, StoreSource

    if backend.online:
        return work(DaemonSource(backend.client))
    store = backend.open_store(readonly=True)
    if store is None:
        return work(_EmptySource())
    try:
        with store.audit.snapshot():
            return work(StoreSource(store.audit, key_path(backend.cfg.state_dir)))
    finally:
        store.close()


class _EmptySource:
    """No state file yet: an empty log."""

    def state(self) -> dict[str, Any]:
        return {"seals": [], "checkpoints": [], "head": None, "key_epoch": None,
                "warnings": ["no state file yet: the audit log is empty"]}

    def records(self, **query: Any) -> list[dict[str, Any]]:
        return []


def _print_verdict(r: dict[str, Any], *, quiet: bool) -> None:
    if r["ok"]:
        span = f"records {r['first_seq']}-{r['head_seq']}" if r["head_seq"] is not None else "no records"
        sealed = (f"sealed through {r['sealed_through']} ({r['seals']} seal(s), {r['unsealed']} record(s) after the "
                  f"last)" if r["sealed_through"] is not None else "never sealed")
        checked = "every seal checked with the verification key" if r["key_checked"] else \
            "seals not checked with the verification key (give --key to detect a rewritten, re-hashed log)"
        print(f"audit log OK: {span}, {sealed}; {checked}"
              + (f"; pruned through {r['checkpoint']}" if r["checkpoint"] is not None else ""))
    else:
        print(f"audit log FAILED verification: first bad record: seq {r['first_bad_seq']}"
              if r["first_bad_seq"] is not None else "audit log FAILED verification")
        for p in r["problems"]:
            print(f"  seq {p['seq'] if p['seq'] is not None else '-'}: {p['message']}")
        if r.get("problem_count", 0) > len(r["problems"]):
            print(f"  ... and {r['problem_count'] - len(r['problems'])} more")
        for hint in r.get("hints", []):
            print(f"  hint: {hint}")
    _print_seals_and_restores(r)
    if not quiet:
        for w in r.get("warnings", []):
            print(f"edgeorch: warning: {w}", file=sys.stderr)


def _print_seals_and_restores(r: dict[str, Any]) -> None:
    """With the key, which seals' MACs verified (a failed verdict still says what of the log held); and every
    gap in the seals acknowledged as a restore (the log is OK, the gap stays on record)."""
    verified = r.get("seals_verified")
    if verified is not None:
        failed = r["seals"] - len(verified)
        print(f"  with the verification key: {len(verified)} of {r['seals']} seal(s) verify"
              + (f" (epoch(s) {epoch_ranges(verified)})" if verified else "")
              + (f"; {failed} do(es) not" if failed else ""))
    for ack in r.get("acknowledged", []):
        epochs = f"{ack['first_epoch']}" + (f" to {ack['last_epoch']}" if ack["last_epoch"] > ack["first_epoch"] else "")
        print(f"  note: the seal(s) of epoch {epochs} are missing (after record {ack['after_seq']}): a restored "
              f"backup, acknowledged at record {ack['record']}")


def epoch_ranges(epochs: list[int]) -> str:
    """``[0, 1, 2, 4, 7, 8]`` as ``0-2, 4, 7-8`` (epochs in increasing order; empty: an empty text)."""
    runs: list[list[int]] = []
    for e in epochs:
        if runs and e == runs[-1][1] + 1:
            runs[-1][1] = e
        else:
            runs.append([e, e])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def _export(args: argparse.Namespace) -> int:
    from ...audit.chain import iso_ts
    from ...audit.source import export_source
    from ...durable import replacing

    cfg = load(args)
    with connect(cfg) as backend:
        if args.output in (None, "-"):  # "-": standard output, as `lineage export -` (it wrote a file named "-")
            header = _local(backend, lambda source: export_source(source, sys.stdout, exported_at=iso_ts(time.time())))
            sys.stdout.flush()
            _warn_unverified(header)
            return EXIT_OK
        out = Path(args.output)
        from ...ownstate import check_output_file

        check_output_file(out, field="--output")
        try:
            with replacing(out, text=True) as f:  # a reader never sees half an export
                header = _local(backend, lambda source: export_source(source, f, exported_at=iso_ts(time.time())))
        except OSError as exc:
            raise UsageError(f"cannot write the export: {exc.strerror or exc}", field="--output",
                             value=args.output) from None
    _warn_unverified(header)
    if args.json:
        print_json({**header, "file": str(out)})
    elif not args.quiet:
        print(f"exported {header['records']} record(s), {header['seals']} seal(s), {header['checkpoints']} "
              f"checkpoint(s) to {out} ({header['format']}; docs/audit.md says how to verify it)")
    return EXIT_OK


def _warn_unverified(header: dict[str, Any]) -> None:
    """Say on stderr when what was exported does not verify (the file is written all the same: evidence)."""
    if not header.get("verified", True):
        bad = header.get("first_bad_seq")
        print("edgeorch: warning: the exported log does not verify"
              + (f": first bad record: seq {bad}" if bad is not None else "")
              + " (`edgeorch audit verify` says why)", file=sys.stderr)


# -- writing ------------------------------------------------------------------------------------------


def _read_key(args: argparse.Namespace) -> bytes | None:
    """The verification key ``--key`` gives (``-``: one line of stdin), or None."""
    from ...audit.keys import parse_key

    if args.key is None:
        return None
    return parse_key(sys.stdin.readline().strip() if args.key == "-" else args.key,
                     field="--key (from stdin)" if args.key == "-" else "--key")


def _init(args: argparse.Namespace) -> int:
    from ...audit.keys import format_key, key_id

    key0 = _read_key(args)
    if key0 is not None:
        return _restore_key(args, key0)
    cfg = load(args)
    with connect(cfg) as backend:
        if backend.online:
            res = backend.client.call("audit.init", {})
        else:
            with backend.state_lock():
                sealer, store = _offline_sealer(backend)
                try:
                    key0 = sealer.init(_actor(), _settings(cfg))
                finally:
                    store.close()
            res = {"key": format_key(key0), "key_id": key_id(key0), "key_file": str(sealer.key_file)}
    if args.json:
        print_json(res)
        return EXIT_OK
    print("The audit log is now sealed with a key that evolves; this is its verification key.\n"
          "It is shown ONCE: keep it off this machine (a password manager, paper in a safe).\n\n"
          f"    {res['key']}\n\n"
          f"key id {res['key_id']}; `edgeorch audit verify --key -` (the key on stdin) checks every seal with it.")
    return EXIT_OK


def _restore_key(args: argparse.Namespace, key0: bytes) -> int:
    """``audit init --key``: put back a missing or damaged key file (docs/audit.md, "A lost key file").

    The log is verified with ``key_0`` first (here, where the key was typed); only the key of the next epoch,
    derived from it, goes to the daemon or the offline sealer."""
    from ...audit.keyfile import KeyState
    from ...audit.keys import key_at
    from ...audit.source import verify_source
    from ...errors import ConflictError

    cfg = load(args)
    with connect(cfg) as backend:
        report, state = _local(backend, lambda source: verify_source(source, key0=key0, key_file=False))
        if not state["seals"]:
            raise ConflictError("the audit log has no seal: there is no key file to restore",
                                hint="`edgeorch audit init` (without --key) starts sealing it")
        if not report.ok:
            raise ConflictError(f"the audit log does not verify with this key (first bad record: seq "
                                f"{report.first_bad}): a key file is put back only on a log the key vouches for",
                                hint="`edgeorch audit verify --key -` lists every problem")
        epoch = int(state["seals"][-1]["epoch"]) + 1
        key = key_at(key0, epoch)
        if backend.online:
            res = backend.client.call("audit.restore_key", {"epoch": epoch, "key": key.hex()})
        else:
            with backend.state_lock():
                sealer, store = _offline_sealer(backend)
                try:
                    res = sealer.restore(_actor(), KeyState(epoch, key))
                finally:
                    store.close()
    if args.json:
        print_json(res)
    elif not args.quiet:
        print(f"audit key file restored at epoch {res['epoch']} (it was {res['was']}): sealing goes on"
              + (f"; sealed through record {res['sealed']['seq']}" if res.get("sealed") else "")
              + ". The chain records it (audit_key_restored).")
    return EXIT_OK


def _acknowledge_restore(args: argparse.Namespace) -> int:
    """``audit acknowledge-restore --key``: record that the seals the log lacks are a restored backup's
    (docs/audit.md "A restored backup").

    The log is verified with ``key_0`` here first and must hold nothing wrong but those gaps (every seal present
    verifies, the key file is the key's); then, per gap, only its acknowledgement MAC (keyed with the key of its
    first missing epoch, derived here) goes to the daemon or the offline sealer, which appends an
    ``audit_restored`` record and seals. Refused (a conflict, exit 5) when no seal is missing or the log holds any
    other problem."""
    from ...audit.restore import ack_mac
    from ...audit.source import verify_source
    from ...errors import ConflictError

    key0 = _read_key(args)
    assert key0 is not None  # _refuse_foreign_options requires --key
    cfg = load(args)
    done: list[dict[str, Any]] = []
    with connect(cfg) as backend:
        report, _ = _local(backend, lambda source: verify_source(source, key0=key0))
        if not report.gaps:
            raise ConflictError("no seal is missing from the audit log" + (" but the acknowledged ones" if
                                                                          report.acknowledged else "")
                                + ": there is no restore to acknowledge",
                                hint="`edgeorch audit verify --key -` checks the log")
        others = report.problem_count - len(report.gaps)
        if others:
            raise ConflictError(f"the audit log does not verify with this key apart from its missing seals ({others} "
                                f"other problem(s), first bad record: seq {report.first_bad}): a restore is "
                                "acknowledged only on a log the key vouches for",
                                hint="`edgeorch audit verify --key -` lists every problem")
        for gap in report.gaps:
            mac = ack_mac(key0, gap)
            if backend.online:
                done.append(backend.client.call("audit.acknowledge_restore", {**gap.to_dict(), "mac": mac}))
            else:
                with backend.state_lock():
                    sealer, store = _offline_sealer(backend)
                    try:
                        done.append(sealer.acknowledge_restore(_actor(), gap, mac))
                    finally:
                        store.close()
    if args.json:
        print_json({"acknowledged": done})
    elif not args.quiet:
        for res in done:
            gap = res["gap"]
            epochs = f"{gap['first_epoch']}" + (f" to {gap['last_epoch']}" if gap["last_epoch"] > gap["first_epoch"]
                                                 else "")
            print(f"the missing seal(s) of epoch {epochs} recorded as a restored backup's (audit_restored, record "
                  f"{res['record']})" + (f"; sealed through record {res['sealed']['seq']}" if res.get("sealed") else ""))
    return EXIT_OK


def _seal(args: argparse.Namespace) -> int:
    cfg = load(args)
    with connect(cfg) as backend:
        if backend.online:
            sealed = backend.client.call("audit.seal", {})["sealed"]
        else:
            with backend.state_lock():
                sealer, store = _offline_sealer(backend)
                try:
                    if not sealer.initialized:
                        from ...errors import ConflictError

                        raise ConflictError("the audit log is not initialized",
                                            hint="`edgeorch audit init` starts its sealing key")
                    sealed = sealer.seal()
                finally:
                    store.close()
    if args.json:
        print_json({"sealed": sealed})
    elif not args.quiet:
        print("nothing new to seal" if sealed is None else
              f"sealed through record {sealed['seq']} (epoch {sealed['epoch']})")
    return EXIT_OK


def _prune(args: argparse.Namespace) -> int:
    before = when(args.before, "--before")
    cfg = load(args)
    with connect(cfg) as backend:
        if backend.online:
            pruned = backend.client.call("audit.prune", {"before": before})["pruned"]
        else:
            with backend.state_lock():
                store = backend.open_store(readonly=False)
                assert store is not None  # a writer's store is created when missing
                try:
                    pruned = store.audit.prune(before, actor=_actor())
                finally:
                    store.close()
    if args.json:
        print_json({"pruned": pruned})
    elif not args.quiet:
        print(f"nothing to prune: no sealed record is older than {_iso(before)}\n  hint: records go only up to a "
              "seal, so that what remains verifies; `edgeorch audit seal` seals now (a log never sealed needs "
              "`edgeorch audit init` first, once)" if pruned is None else
              f"pruned {pruned['records']} record(s) through seq {pruned['through_seq']}; the checkpoint (seal "
              f"{pruned['epoch']}) keeps what remains verifiable")
    return EXIT_OK


def _offline_sealer(backend: Backend) -> tuple[Any, Any]:
    from ...audit.keyfile import key_path
    from ...audit.sealer import Sealer

    store = backend.open_store(readonly=False)
    assert store is not None  # a writer's store is created when missing
    return Sealer(store.audit, key_path(backend.cfg.state_dir), clock=time.time), store


def _settings(cfg: Any) -> dict[str, Any]:
    """What ``audit init`` records about sealing (the daemon records the same from its config)."""
    audit = getattr(cfg, "audit", None)
    return {} if audit is None else {"seal_every": audit.seal_every, "seal_interval": audit.seal_interval}


def _actor() -> str:
    """This process's user, as a socket peer is recorded (``alice (uid 1000)``)."""
    from ...control.auth import user_name

    uid = os.getuid()
    return f"{user_name(uid)} (uid {uid})"


# -- small helpers -------------------------------------------------------------------------------------


def when(text: str, field: str, *, now: float | None = None) -> float:
    """Unix seconds of a ``--since``/``--before`` value: a duration back from ``now``, or a date/time.

    A date/time without a zone is local time; ``Z`` or an offset says otherwise.
    Raises :class:`UsageError` naming ``field`` for anything else.
    """
    from ...units import parse_duration

    from ...units import TOO_LONG

    now = time.time() if now is None else now
    try:
        return now - parse_duration(text)
    except ValueError as exc:
        if str(exc) == TOO_LONG:  # a duration, just too long: said so, not "neither a duration nor a date"
            raise UsageError(f"is {TOO_LONG}", field=field, value=text, expected=WHEN_EXPECTED) from None
    try:
        from datetime import datetime  # here: not on every command's start-up (issue 11)

        moment = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError:
        raise UsageError("is neither a duration nor a date/time", field=field, value=text,
                         expected=WHEN_EXPECTED) from None
    try:
        return moment.timestamp()
    except (OverflowError, OSError, ValueError):  # a date the platform's local time cannot convert
        raise UsageError("is out of range", field=field, value=text,
                         expected="a date/time from 1970 to 9999") from None


def _iso(t: float) -> str:
    from ...audit.chain import iso_ts

    return iso_ts(t)


def _parsed(details: str) -> Any:
    try:
        return json.loads(details)
    except ValueError:
        return details  # an edited record: show it as it is (verify names it)


def _summary(details: Any, width: int = 90) -> str:
    """A record's details on one line: its message when it has one, else compact JSON, cut to ``width``."""
    if isinstance(details, dict) and isinstance(details.get("message"), str):
        text = details["message"]
    else:
        text = json.dumps(details, separators=(",", ":"), ensure_ascii=False)
    return text if len(text) <= width else text[:width - 3] + "..."
