"""Monitoring rules and the causes of runs: ``edgeorch monitors [list|silence|unsilence]`` and ``edgeorch why RUN``."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from ...errors import UsageError
from ...textui import format_timestamp, print_json, print_table, printable
from ...units import MAX_DURATION_S, TOO_LONG, parse_duration
from ..backend import connect, load, read
from ..exits import EXIT_OK
from ..parsing import run_id_type
from . import AddCommand

ACTIONS = ("list", "silence", "unsilence")
UNTIL_EXPECTED = "a duration from now (30m, 12h, 2d) or a date/time (2024-05-01T12:00, UTC with Z)"


def register(add: AddCommand) -> None:
    p = add("monitors", cmd_monitors, "monitoring rules ([[on]]): state (ok, pending, firing, cooling, silenced), "
                                      "last value and firing; silence a rule until a time")
    p.add_argument("sub", nargs="?", choices=ACTIONS, metavar="{" + ",".join(ACTIONS) + "}", help="default: list")
    p.add_argument("rule", nargs="?", metavar="RULE", help="silence, unsilence: the rule")
    p.add_argument("--until", metavar="WHEN", help=f"silence: until WHEN ({UNTIL_EXPECTED})")
    p.add_argument("--reason", help="silence: why (recorded in the audit log)")

    p = add("why", cmd_why, "what started a run (a schedule's fire, a dropped file, a rule's signal, a person) "
                            "and what its tasks waited for")
    p.add_argument("run", metavar="RUN", type=run_id_type, help="a run id")


def until_time(text: str, now: float) -> float:
    """Unix seconds of a ``--until`` value: a duration ahead of ``now``, or a date/time (UTC when no zone)."""
    try:
        return now + parse_duration(text)
    except ValueError as exc:
        if str(exc) == TOO_LONG:
            raise UsageError(f"is {TOO_LONG}", field="--until", value=text, expected=UNTIL_EXPECTED) from None
    try:
        from datetime import datetime, timezone  # here: not on every command's start-up (issue 11)

        t = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError("is not a time", field="--until", value=text, expected=UNTIL_EXPECTED) from None
    at = (t if t.tzinfo else t.replace(tzinfo=timezone.utc)).timestamp()
    if at - now > MAX_DURATION_S:  # as a duration's bound (9999-12-31 was taken): a silence is not forever
        raise UsageError(f"is {TOO_LONG} ahead", field="--until", value=text, expected=UNTIL_EXPECTED)
    return at


def cmd_monitors(args: argparse.Namespace) -> int:
    sub = args.sub or "list"
    if sub != "list" and not args.rule:
        raise UsageError("needs a rule", field="RULE", expected=f"edgeorch monitors {sub} RULE")
    if sub == "silence" and (not args.until or not args.reason):
        raise UsageError("needs --until and --reason", field="--until" if not args.until else "--reason",
                         expected="edgeorch monitors silence RULE --until 2h --reason 'maintenance'")
    if sub != "silence" and (args.until or args.reason):
        raise UsageError(f"is only valid with silence, not {sub}", field="--until" if args.until else "--reason")
    if sub == "list":
        cfg = load(args)
        res = read(args, "monitors.list", {}, lambda store: _offline_listing(cfg, store))
    else:
        with connect(load(args), "daemon") as backend:  # a silence is the running daemon's to keep
            until = until_time(args.until, time.time()) if sub == "silence" else None
            res = backend.client.call("monitors.silence", {"rule": args.rule, "until": until, "reason": args.reason})
    if args.json:
        print_json(res)
        return EXIT_OK
    if sub != "list":
        r = res["rule"]
        if not args.quiet:  # the reason and the rule's name as typed: printable (a reason's ESC[2J cleared the screen)
            if sub == "silence":
                print(printable(f"{args.rule}: silenced until {format_timestamp(r['silenced_until'])} "
                                f"({r['silence_reason']})"))
            else:
                print(printable(f"{args.rule}: " + ("silence lifted" if r.get("was_silenced", True)
                                                      else "was not silenced: nothing to lift")))
        return EXIT_OK
    if args.quiet:
        for r in res["rules"]:
            print(r["name"])
        return EXIT_OK
    print_table(["rule", "pipeline", "state", "condition", "last value", "evaluated", "last firing", "responses"],
                [[r["name"], r["pipeline"], _state_text(r),
                  r["condition"], _value_text(r),
                  format_timestamp(r["last_evaluated_at"]) if r["last_evaluated_at"] else "-",
                  _firing(r["last_firing"]), ", ".join(x["action"] for x in r["responses"])
                  + (" (dry run)" if r["dry_run"] else "")] for r in res["rules"]],
                empty="no monitoring rules ([[on]] in a pipeline file or the rules folder: docs/monitoring.md)")
    from ...monitor.rulesdir import NOT_LOADED  # here: the command's start-up needs none of the rules' code

    for p in res.get("problems", []):
        print(f"{'error' if p.startswith(NOT_LOADED) else 'warning':<8} {p}")
    return EXIT_OK


def _state_text(rule: dict[str, Any]) -> str:
    """A rule's shown state, with what holds it: a silence's reason, the cooldown's end (``cooling`` alone did not
    say until when, nor that a held episode is answered at the first evaluation after it)."""
    text = rule["state"]
    if rule.get("silence_reason"):
        return text + f" ({rule['silence_reason']})"
    holds = []
    if rule.get("cooldown_until") is not None and rule["state"] in ("cooling", "firing"):
        holds.append(f"cooldown until {format_timestamp(rule['cooldown_until'])}")
    if rule.get("max_per_day_until") is not None and rule["state"] == "cooling":
        holds.append(f"max_per_day {rule.get('max_per_day')} reached until {format_timestamp(rule['max_per_day_until'])}")
    if holds:
        return f"{text} ({'; '.join(holds)})"
    if rule["state"] == "cooling":  # a silence lifted, a cooldown or daily maximum over: nothing holds it now
        return f"{text} (held no more: answered at its next evaluation)"
    return text


def _value_text(rule: dict[str, Any]) -> str:
    """A rule's last value; a model metric's says whose (after a rollback the alias's version is another one:
    "72" read as the current champion's)."""
    if rule["last_value"] is None:
        return "-"
    sig = _decoded(rule.get("last_signal"))
    version = sig.get("version") if isinstance(sig, dict) else None
    return f"{rule['last_value']:.4g}" + (f" (version {version})" if version is not None else "")


def _decoded(value: Any) -> Any:
    """A JSON column as the daemon sends it (decoded) or as text (the state file read offline): decoded; None for
    text that is not JSON."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return None


def _offline_listing(cfg: Any, store: Any) -> dict[str, Any]:
    """Without a daemon: the rules the pipeline files and the rules folder declare now (read as the daemon
    reads them), with the state the state file keeps for each."""
    from ...monitor.rulesdir import collect_rules
    from ...monitor.views import monitors_doc
    from ...pipelines import validate_path

    rules, problems = collect_rules(validate_path(cfg.pipelines_dir).pipelines, cfg.rules_dir)
    return monitors_doc(store, rules, problems, time.time())


def _firing(f: dict | None) -> str:
    if not f:
        return "-"
    out = f"{f['outcome']} {format_timestamp(f['fired_at'])}"
    out += f" -> run {f['run_id']}" if f.get("run_id") else ""
    if f.get("dry_run"):  # the rule's dry_run may be off now: this firing did nothing all the same
        return f"{out} (a dry run: nothing done)"
    if f.get("state") != "failed":
        return out
    # A response that failed (a rollback with nothing to roll back to, a refused trigger, a notify that exited 3)
    # showed as a plain "fire".
    from ...monitor.views import response_failure

    responses = _decoded(f.get("responses"))
    whys = [w for r in (responses if isinstance(responses, list) else []) if (w := response_failure(r))]
    why = whys[0].splitlines()[0] if whys else "`edgeorch monitors --json` has its responses"
    return f"{out}, its response failed: {why[:120]}"


def cmd_why(args: argparse.Namespace) -> int:
    from ...rundoc import attempt_outcome

    cfg = load(args)
    with connect(cfg, "prefer") as backend:
        if backend.online:
            doc = backend.client.call("why", {"run": args.run})
        else:
            from ...monitor.views import why_doc

            store = backend.open_store(readonly=True)
            if store is None:
                from ...errors import NotFoundError

                raise NotFoundError("no such run", value=args.run, hint=f"no state file at {cfg.state_file} yet")
            try:
                doc = why_doc(store, args.run)
            finally:
                store.close()
    if args.json:
        print_json(doc)
        return EXIT_OK
    s = doc["started_by"]
    print(f"run {doc['run']} ({doc['pipeline']}, {doc['state']}), created {format_timestamp(doc['created_at'])}")
    if s["kind"] == "schedule":
        local = s.get("fire_time_local")  # in the schedule's timezone, as its tasks got it
        print(f"  started by its schedule: the fire of {local} ({_fire_shown(s['fire_time'], utc=False)} here)"
              if local else f"  started by its schedule: the fire of {_fire_shown(s['fire_time'])}")
    elif s["kind"] == "drop":
        for f in s["files"]:
            print(f"  started by a dropped file: {printable(f['file'])} (sha256 {f['sha256']}) in {f['folder']}")
    elif s["kind"] == "rule":
        print(f"  started by rule {s['rule']}: {s.get('condition')}, value {s.get('value')}"
              + (f", from run {s['source_run']}" if s.get("source_run") else "")
              + (f" (input {printable(s['input_path'])}, sha256 {s['input_sha256']})" if s.get("input_path") else ""))
    else:
        print(f"  started by {s.get('actor') or 'an unknown caller'} ({s.get('trigger')})")
    for r in doc["resumed_by"]:
        print(f"  resumed by {r['actor']} at {format_timestamp(r['at'])}" + (f": {r['what']}" if r.get("what") else ""))
    for t in doc["tasks"]:
        waits = []
        if t["waited_for_needs"]:
            waits.append(f"{t['waited_for_needs']:g}s for {', '.join(t['needs'])}")
        if t["waited_for_turn"]:
            waits.append(f"{t['waited_for_turn']:g}s for its turn" + (f" ({t['lease']})" if t["lease"] else ""))
        if t["retries"]:
            waits.append(f"{len(t['retries'])} earlier attempt(s): "
                         + "; ".join(f"#{a['attempt']} {printable(attempt_outcome(a['state'], a['reason'], a['exit_code']))}"
                                     for a in t["retries"]))
        if t.get("not_started"):  # no attempt yet (or never: upstream failed, cancelled)
            print(f"  task {t['task']} ({t['state']}): {printable(t['not_started'])}")
            continue
        print(f"  task {t['task']}: " + ("; ".join(waits) if waits else "did not wait"))
        last = t.get("last_attempt")
        if t.get("state") == "retry_wait" and last:  # it holds nothing now: said, with when it goes on
            when = f" at {format_timestamp(t['next_attempt_at'])}" if t.get("next_attempt_at") else ""
            print(f"    waiting to retry: attempt {last['attempt']} "
                  f"{printable(attempt_outcome(last['state'], last['reason'], last['exit_code']))}; "
                  f"attempt {last['attempt'] + 1} starts{when} (no lease held meanwhile)")
        if t.get("cache"):
            print(f"    ran instead of a cache hit: {t['cache']}")
    for r in doc.get("rules", []):  # what the monitoring rules decided on this run's outcome
        print(f"  {format_timestamp(r['at'])} {printable(r['message'])}")
    return EXIT_OK


def _fire_shown(text: str | None, *, utc: bool = True) -> str:
    """A recorded fire time (ISO 8601, UTC) in local time as the tables show times, its UTC form beside it (``utc``
    False: the local time alone): `why` said 11:30:00+00:00 beside a CREATED of 03:30:00 under
    TZ=America/Los_Angeles."""
    from datetime import datetime

    try:
        at = datetime.fromisoformat(str(text))
    except ValueError:
        return str(text)
    return f"{format_timestamp(at.timestamp())} ({text})" if utc else format_timestamp(at.timestamp())
