"""``edgeorch models list|show|versions|diff|why|promote|rollback|unblock|observe``: the model registry
(docs/models.md).

With a daemon running every action goes through it (``models.*`` ops);
without one, the reads open the state file read-only and the writes
(``promote``, ``rollback``, ``unblock``, ``observe``) run the deployment in this process
under the state-dir lock, exactly as the daemon would (recovery of an
interrupted deployment first). ``promote`` and ``rollback`` exit 0 only when
the deployment succeeded; undone, rolled back or failed is exit 1 with the
reason, a version blocked by its gates is refused (exit 5).

Every human line goes through :func:`~edgeorch.textui.printable` (tables through ``print_table``, which does
it): reasons, actors, health and reload output, commands and conditions are text others chose, and a terminal
escape or a bidi override in them must neither rewrite the terminal nor forge a line (docs/cli.md).
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import Any, Callable

from ...errors import EdgeorchError
from ...textui import clip, format_timestamp, print_json, print_table, printable
from ..backend import Backend, connect, if_the_daemon_goes, load, read
from ..exits import EXIT_FAILED, EXIT_OK
from . import AddCommand, subcommand_adder


def register(add: AddCommand) -> None:
    p = add("models", cmd_list, "the model registry: versions, aliases, gates, promotions and rollbacks")
    action = subcommand_adder(p.add_subparsers(dest="action", metavar="ACTION"))

    action("list", cmd_list, "every model: versions, latest, aliases")
    a = action("show", cmd_show, "a model: gates, deployment target, aliases, alias history, deployments; with "
               "VERSION, that version: metrics, checks and the feature importances of its explain tasks")
    a.add_argument("name", metavar="NAME", type=_model_name)
    a.add_argument("version", metavar="VERSION", type=_version, nargs="?", help="show this version instead")
    a = action("versions", cmd_versions, "a model's versions: metrics, gate verdicts, aliases")
    a.add_argument("name", metavar="NAME", type=_model_name)
    a = action("diff", cmd_diff, "two versions side by side: metrics, content, params, changed inputs, checks")
    a.add_argument("name", metavar="NAME", type=_model_name)
    a.add_argument("a", metavar="V1", type=_version)
    a.add_argument("b", metavar="V2", type=_version)
    a = action("why", cmd_why, "why a version was promoted, blocked or rolled back, condition by condition")
    a.add_argument("name", metavar="NAME", type=_model_name)
    a.add_argument("version", metavar="VERSION", type=_version)
    a = action("promote", cmd_promote, "move an alias to a version (switching the deployment target)")
    a.add_argument("name", metavar="NAME", type=_model_name)
    a.add_argument("version", metavar="VERSION", type=_version)
    a.add_argument("--alias", metavar="ALIAS", help="the alias to move (default: the model's, usually champion)")
    a.add_argument("--reason", metavar="TEXT", help="why (recorded with the move)")
    a.add_argument("--again", action="store_true", help="deploy the version the alias serves already anew: its "
                   "files checked against their sha256 (staged again when changed), the reload and health commands")
    a = action("rollback", cmd_rollback, "move an alias back to the previous version that passed its gates")
    a.add_argument("name", metavar="NAME", type=_model_name)
    a.add_argument("--alias", metavar="ALIAS", help="the alias to move back (default: the model's, as promote's; "
                   "usually champion; canary: abort the canary)")
    a.add_argument("--to", metavar="VERSION", type=_version, help="this version instead of the previous one")
    a.add_argument("--reason", metavar="TEXT", help="why (recorded with the move)")
    a = action("unblock", cmd_unblock, "lift the blocks monitoring rules set on a model's promotions "
               "(docs/monitoring.md)")
    a.add_argument("name", metavar="NAME", type=_model_name)
    a.add_argument("--rule", metavar="RULE", help="only the block this rule set (default: every block)")
    a.add_argument("--reason", metavar="TEXT", help="why (recorded with the lift)")
    a = action("observe", cmd_observe, "record metrics observed for the version an alias points at (canary evidence)")
    a.add_argument("name", metavar="NAME", type=_model_name)
    a.add_argument("alias", metavar="ALIAS")
    a.add_argument("values", metavar="METRIC=VALUE", nargs="*", help="one or more, e.g. rmse=31.2")
    a.add_argument("--version", type=_version, metavar="N", help="the version the values were measured on: recorded "
                   "for it even when ALIAS has moved since (a rollback), judging nothing ALIAS serves now")


VERSION_MAX = 2**63 - 1
"""The largest version number: what the state file's INTEGER holds (a larger one was an internal error)."""


def _version(text: str) -> int:
    """A version number: ASCII digits, 1 to :data:`VERSION_MAX` (``int`` alone took '٣', '1_000' and ' 3', and 0);
    its range (1..latest) is checked where the versions are known (not found: exit 3)."""
    digits = text.isascii() and text.isdigit()
    # More than 19 significant digits is past VERSION_MAX (and int() refuses 4,300 of them with a ValueError).
    value = int(text) if digits and len(text.lstrip("0")) <= 19 else None
    if value is None or not 1 <= value <= VERSION_MAX:
        too_large = digits and (value is None or value > VERSION_MAX)
        raise argparse.ArgumentTypeError(
            f"{clip(text, 40)!r} is not a version number (expected an integer >= 1"
            + (f", at most {VERSION_MAX})" if too_large else ")"))
    return value


def _model_name(text: str) -> str:
    """A model name as ``validate`` wants it (:func:`edgeorch.models.spec.name_problem`, its words
    ``NAME_EXPECTED``), refused here as a usage error with what is expected (offline, '../../etc' read as
    'no model named ...'; through the daemon, without what a name may be)."""
    from ...models.spec import NAME_EXPECTED, name_problem

    problem = name_problem(text)
    if problem:
        raise argparse.ArgumentTypeError(f"{clip(text, 80)!r} {problem} (expected {NAME_EXPECTED})")
    return text


_NUMBER = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
"""A number as ``observe`` takes it: ASCII decimal or scientific notation, as a metrics file's JSON writes it
(float() also read '1_000', 'nan', '٣' and ' 3 ')."""
OBSERVED_EXPECTED = ("a finite number, in ASCII decimal or scientific notation as JSON writes it, e.g. rmse=31.2 or "
                     "loss=1e-3")


def observed_values(items: list[str]) -> dict[str, float]:
    """``METRIC=NUMBER`` arguments as metric -> value; a :class:`UsageError` (exit 2) naming the argument for one
    that is not that (a number in other digits, with '_', infinite) or for a metric given twice (a second value
    silently replaced the first)."""
    import math

    from ...errors import UsageError

    if not items:
        raise UsageError("needs at least one value", field="METRIC=VALUE", expected="e.g. rmse=31.2")
    metrics: dict[str, float] = {}
    for item in items:
        key, sep, value = item.partition("=")
        number = float(value) if _NUMBER.fullmatch(value) else math.nan
        if not sep or not key or not math.isfinite(number):  # 1e999: no JSON number, no comparison
            raise UsageError("is not METRIC=NUMBER", field="METRIC=VALUE", value=item, expected=OBSERVED_EXPECTED)
        if key in metrics:
            raise UsageError(f"gives metric {key!r} a second time", field="METRIC=VALUE", value=item,
                             expected="each metric once (one observation per command)")
        metrics[key] = number
    return metrics


# -- reads -----------------------------------------------------------------------------------------


def cmd_list(args: argparse.Namespace) -> int:
    from ...models import views

    res = read(args, "models.list", {}, lambda store: views.listing(store) if store else {"models": []})
    if args.json:
        print_json(res)
        return EXIT_OK
    if getattr(args, "quiet", False):
        for m in res["models"]:
            print(m["name"])
        return EXIT_OK
    print_table(["model", "versions", "latest", "aliases", "updated"],
                [[m["name"], m["versions"], m["latest"] or "", _aliases(m["aliases"]), format_timestamp(m["updated_at"])]
                 for m in res["models"]],
                empty="no models yet (a task with a `model` key registers one: docs/models.md)")
    return EXIT_OK


def _loaded_pipelines(args: argparse.Namespace) -> dict[str, Any]:
    """The pipelines folder's valid pipelines by name (offline: what a daemon would load), {} when unreadable."""
    from ...pipelines import validate_path

    try:
        return dict(validate_path(load(args).pipelines_dir).pipelines)
    except EdgeorchError:  # no folder, unreadable: nothing declared
        return {}


def cmd_show(args: argparse.Namespace) -> int:
    from ...models import views

    if args.version is not None:
        return _show_version(args)
    offline: list[bool] = []  # set when the state file was read here: no daemon carries anything on

    def here(store: Any) -> dict[str, Any]:
        offline.append(True)
        return views.show(_need(store, args.name), args.name,
                          declared=views.declared_policy(store, _loaded_pipelines(args), args.name))

    res = read(args, "models.show", {"name": args.name}, here)
    if args.json:
        print_json(res)
        return EXIT_OK
    pol = res["policy"]
    dep = pol["deploy"]
    _say(f"{res['model']}: {res['versions']} version(s), latest {res['latest']}; aliases: "
         f"{_aliases(res['aliases']) or '(none)'}")
    _say(f"gates ({len(pol['gates'])}): " + ("; ".join(pol["gates"]) if pol["gates"] else "none"))
    _say(f"promotion: {pol['promote']} to {pol['alias']}, strategy {pol['strategy']}; target {dep['kind']} "
         f"{dep['dir'] or '<state dir>/serving'} (current follows {dep['serve']})"
         + (f"; reload {' '.join(dep['reload'])}" if dep["reload"] else "")
         + (f"; health {' '.join(dep['health'])}" if dep["health"] else ""))
    if res.get("policy_changed"):
        print(f"note: this is the policy recorded with the latest registration; the pipelines now declare another "
              f"({', '.join(res['policy_changed'])} changed), which applies from the next version registered")
    for b in res.get("blocks") or []:
        from ...models.blocks import describe

        _say(f"promotions BLOCKED {describe(b)} since {format_timestamp(b['blocked_at'])} "
             f"(edgeorch models unblock {res['model']})")
    if res["canary"]:
        c = res["canary"]
        _say(f"canary: version {c['version']} against {c['against_version']} ({c['mode']}), {c['state']}")
    if res["history"]:
        print("\nalias moves (newest first):")
        print_table(["when", "alias", "from", "to", "action", "by", "reason"],
                    [[format_timestamp(h["moved_at"]), h["alias"], h["from_version"] or "", h["to_version"] or "",
                      h["action"], h["actor"] or "", h["reason"] or ""] for h in res["history"]])
    if res["deployments"]:
        print("\ndeployments (newest first):")
        print_table(["id", "when", "alias", "to", "action", "state", "outcome"],
                    [[d["id"], format_timestamp(d["created_at"]), d["alias"], d["to_version"] or "-", d["action"],
                      d["state"], d["outcome"] or ""] for d in res["deployments"]])
        open_now = [d["id"] for d in res["deployments"] if d["state"] in ("pending", "running")]
        if open_now and offline:  # read from the state file: nobody is carrying them on
            print(f"\nnote: no daemon runs: deployment(s) {', '.join(map(str, open_now))} stopped where the table "
                  "says; the daemon's next start finishes them, or undoes one a person asked for that had not "
                  "switched yet")
    return EXIT_OK



def _show_version(args: argparse.Namespace) -> int:
    """``models show NAME VERSION``: the version's origin, metrics, checks and its top feature importances."""
    from ...models import views
    from ...models.explanations import TOP

    res = read(args, "models.show", {"name": args.name, "version": args.version},
                lambda store: views.show_version(_need(store, args.name), args.name, args.version))
    if args.json:
        print_json(res)
        return EXIT_OK
    _say(f"{res['model']} version {res['version']}: made by run {res['run_id']} task {res['task']} "
         f"({format_timestamp(res['created_at'])}); gates {res['gate_verdict']}; aliases: "
         f"{', '.join(res.get('aliases') or []) or '(none)'}")
    _say("metrics: " + (", ".join(f"{k}={v:g}" if isinstance(v, (int, float)) else f"{k}={v}"
                                   for k, v in sorted(res["metrics"].items())) or "none"))
    if res["checks"]:
        _say("checks: " + ", ".join(f"{t} {c.get('verdict') or '-'}" for t, c in sorted(res["checks"].items())))
    for task, ex in res["explanations"].items():
        feats = ex["features"]
        print()
        _say(f"feature importances from {task} ({ex['metric']}; top {min(TOP, len(feats))} of {len(feats)}):")
        print_table(["rank", "feature", "importance", "ci_low", "ci_high"],
                    [[f["rank"] or "", f["feature"], _num(f["importance"]), _num(f["ci_low"]), _num(f["ci_high"])]
                     for f in feats[:TOP]])
    return EXIT_OK


def cmd_versions(args: argparse.Namespace) -> int:
    from ...models import views

    res = read(args, "models.versions", {"name": args.name},
                lambda store: views.versions(_need(store, args.name), args.name))
    if args.json:
        print_json(res)
        return EXIT_OK
    if getattr(args, "quiet", False):
        for v in res["versions"]:
            print(v["version"])
        return EXIT_OK
    names = sorted({k for v in res["versions"] for k in v["metrics"]})[:6]
    print_table(["version", "created", "run", "gates", *names, "aliases", "sha256"],
                [[v["version"], format_timestamp(v["created_at"]), v["run_id"] or "", v["gate_verdict"],
                  *[_num(v["metrics"].get(n)) for n in names], ",".join(v["aliases"]), v["sha256"][:12]]
                 for v in res["versions"]])
    return EXIT_OK


def cmd_diff(args: argparse.Namespace) -> int:
    from ...models import views

    res = read(args, "models.diff", {"name": args.name, "a": args.a, "b": args.b},
                lambda store: views.diff(_need(store, args.name), args.name, args.a, args.b))
    if args.json:
        print_json(res)
        return EXIT_OK
    a, b = res["a"]["version"], res["b"]["version"]
    _say(f"{res['model']} version {a} -> {b}: content {'identical' if res['same_content'] else 'differs'}; "
         f"pipeline {'the same' if res['same_pipeline'] else 'changed'}; gates {res['a']['gate_verdict']} -> "
         f"{res['b']['gate_verdict']}")
    print_table(["metric", f"v{a}", f"v{b}", "change"],
                [[m["metric"], _num(m["a"]), _num(m["b"]), _num(m["delta"], signed=True)] for m in res["metrics"]])
    if res["params"]:
        print_table(["param", f"v{a}", f"v{b}"], [[p["param"], p["a"], p["b"]] for p in res["params"]])
    if res["inputs"]:
        print_table(["input", f"v{a}", f"v{b}"],
                    [[i["path"], (i["a"] or "-")[:12], (i["b"] or "-")[:12]] for i in res["inputs"]])
    if res["checks"]:
        print_table(["check", f"v{a}", f"v{b}"], [[c["task"], c["a"] or "-", c["b"] or "-"] for c in res["checks"]])
    return EXIT_OK


def cmd_why(args: argparse.Namespace) -> int:
    from ...models import views

    res = read(args, "models.why", {"name": args.name, "version": args.version},
                lambda store: views.why(_need(store, args.name), args.name, args.version))
    if args.json:
        print_json(res)
        return EXIT_OK
    for line in res["text"].split("\n"):  # made printable field by field already (views.why_text): idempotent
        _say(line)
    return EXIT_OK


# -- writes ----------------------------------------------------------------------------------------


def cmd_promote(args: argparse.Namespace) -> int:
    res = _act(args, "models.promote", {"name": args.name, "version": args.version, "alias": args.alias,
                                        "reason": args.reason, **({"again": True} if args.again else {})},
               lambda service, actor: service.promote(args.name, args.version, alias=args.alias, actor=actor,
                                                      reason=args.reason, again=args.again))
    return _deployment_result(args, res["deployment"])


def cmd_rollback(args: argparse.Namespace) -> int:
    res = _act(args, "models.rollback", {"name": args.name, "alias": args.alias, "to": args.to, "reason": args.reason},
               lambda service, actor: service.rollback(args.name, alias=args.alias, to=args.to, actor=actor,
                                                       reason=args.reason))
    return _deployment_result(args, res["deployment"])


def cmd_unblock(args: argparse.Namespace) -> int:
    async def unblock(service: Any, actor: str) -> dict[str, Any]:
        return {"model": args.name, "lifted": service.unblock(args.name, rule=args.rule, actor=actor,
                                                              reason=args.reason)}

    res = _act(args, "models.unblock", {"name": args.name, "rule": args.rule, "reason": args.reason}, unblock)
    if args.json:
        print_json(res)
    elif not getattr(args, "quiet", False):
        lifted = res["lifted"]
        if not lifted:
            _say(f"{args.name}: no promotion block in force" + (f" from rule {args.rule}" if args.rule else ""))
        for b in lifted:
            _say(f"{args.name}: lifted block {b['id']}" + (f" of rule {b['rule']}" if b["rule"] else "")
                 + f" ({b['reason']})")
    return EXIT_OK


def cmd_observe(args: argparse.Namespace) -> int:
    metrics = observed_values(args.values)
    versions = {args.alias: args.version} if args.version is not None else None

    async def observe(service: Any, actor: str) -> dict[str, Any]:
        n = service.observe(args.name, {args.alias: metrics}, versions=versions)
        await service.drain()  # a canary decided by this observation runs its deployment here
        return {"recorded": n}

    res = _act(args, "models.observe", {"name": args.name, "metrics": {args.alias: metrics},
                                        **({"versions": versions} if versions else {})}, observe)
    if args.json:
        print_json(res)
    elif not getattr(args, "quiet", False):
        print(f"recorded {res['recorded']} value(s) for {args.name} {args.alias}"
              + (f" (version {args.version})" if args.version is not None else ""))
    return EXIT_OK


def _deployment_result(args: argparse.Namespace, dep: dict[str, Any]) -> int:
    if args.json:
        print_json({"deployment": dep})
    elif getattr(args, "quiet", False):
        if dep["state"] != "succeeded":
            _say(f"{dep['model']}: {dep['state']}: {dep['outcome']}", file=sys.stderr)
    else:
        was = "no version" if dep["from_version"] is None else f"version {dep['from_version']}"
        if dep["state"] == "succeeded":
            _say(f"{dep['model']}: {dep['alias']} {_target(dep)} (was {was})")
        else:  # the outcome holds the health or reload command's output
            _say(f"{dep['model']}: {dep['alias']} {_target(dep)}: {dep['state']}: {dep['outcome']}")
    return EXIT_OK if dep["state"] == "succeeded" else EXIT_FAILED


def _act(args: argparse.Namespace, op: str, op_args: dict[str, Any],
         offline: Callable[[Any, str], Any]) -> dict[str, Any]:
    """Through the daemon (no answer timeout: a deployment waits for its health window), or here under the lock."""
    cfg = load(args)
    name = op_args.get("name") or "NAME"
    with connect(cfg, "prefer") as backend, if_the_daemon_goes(
            f"what was asked is recorded: once the daemon is back, `edgeorch models show {name}` says how it "
            "ended (a deployment the stop interrupted is finished, or undone before its switch, at the start)"):
        if backend.online:
            client = backend.client
            client.close()
            client.timeout = None  # a promotion answers when its deployment is over (health window included)
            return client.call(op, {k: v for k, v in op_args.items() if v is not None})
        return _offline(backend, offline)


def _offline(backend: Backend, action: Callable[[Any, str], Any]) -> dict[str, Any]:
    from ...models.service import ModelService
    from .runs import _actor  # the one rule for how this CLI's user is recorded as an actor

    lock = backend.state_lock()
    try:
        store = backend.open_store(readonly=False)
        assert store is not None
        try:
            async def main() -> Any:
                service = ModelService(store, serving_dir=backend.cfg.state_dir / "serving",
                                       publish=lambda event: None, clock=store.clock)
                try:
                    await service.start()
                    result = await action(service, _actor())
                    await service.drain()
                    return result
                finally:
                    await service.close()

            import asyncio  # only here: `edgeorch --help` must not pay for it

            result = asyncio.run(main())
        finally:
            store.close()
    finally:
        lock.release()
    return result if "recorded" in result or "lifted" in result else {"deployment": result}


def _say(line: str, file: Any = None) -> None:
    """Print one line of human output made :func:`~edgeorch.textui.printable` (it holds text others chose)."""
    print(printable(line), file=file)


def _need(store: Any, name: str) -> Any:
    if store is None:
        from ...errors import NotFoundError

        raise NotFoundError(f"no model named {name!r}", value=name, expected="(none registered yet: nothing has run)")
    return store


def _aliases(aliases: dict[str, int]) -> str:
    return ", ".join(f"{a}={v}" for a, v in sorted(aliases.items()))


def _target(dep: dict[str, Any]) -> str:
    return "removed" if dep["to_version"] is None else f"-> version {dep['to_version']}"


def _num(v: Any, *, signed: bool = False) -> str:
    if v is None:
        return "-"
    return f"{v:+.6g}" if signed else f"{v:.6g}"
