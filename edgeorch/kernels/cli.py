"""``edgeorch profile | drift | fairness``: the kernels on the command line.

:func:`register` adds the three subcommands to the main CLI's subparsers.
Each handler builds the same options a pipeline task would have and calls
:func:`edgeorch.kernels.kinds.run_task`, so the CLI and the tasks agree.
Output: tables by default (:func:`.results.doc_tables`, the same a notebook
shows), ``--json`` for the full result document (the result's ``to_dict()``),
``--html PATH`` for a self-contained report. Progress goes to stderr (only
on a terminal, with rows or bytes, rate and ETA; none with ``--json`` or ``-q``; a one-line notice
when the kernels compile for their first use). Exit codes: 0 fine; 1 only when the dataset drifts
(``drift``) or a fairness limit is broken (``fairness``), so ``edgeorch drift
... || alert`` never alerts on a typo; errors are raised as EdgeorchError for
the main CLI to print and exit with: 2 bad usage (an unknown column, a bad
``--method``: the message names the flag), 3 a file not found, 1 data that
cannot be read (a malformed file).
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from ..cli.exits import follows_a_run
from ..errors import ConfigError, UsageError


def _csv_list(text: str | None) -> list[str] | None:
    """The names of a comma-separated option (``--columns``, ``--group``, ``--categories``), read as a CSV line:
    a name that holds a comma is written in double quotes (``'"price, usd",qty'``; a quote inside one doubled),
    as a CSV header writes it. Blank items are dropped; None when none is left."""
    if text is None:
        return None
    import csv

    items = [t.strip() for row in csv.reader([text], skipinitialspace=True) for t in row if t.strip()]
    return items or None


_KEEP_WARM_NOTE = ("\n\nThe kernels' imports take ~0.6 s: the first such command leaves a kernel server that does\n"
                   "the next ones of this user without them, the same output either way ([kernels] keep_warm,\n"
                   "default 10m; EDGEORCH_KEEP_WARM=0 for none; docs/kernels.md).")


def register(subparsers: Any, *, spend: Any = None) -> None:
    """Add ``profile``, ``drift`` and ``fairness`` to an argparse subparsers object.

    ``spend(args, claim) -> ledger`` charges a differentially private release
    (``profile --epsilon``) to its dataset's budget; without it the option
    is refused (a usage error).
    """
    fmt = argparse.RawDescriptionHelpFormatter

    p = subparsers.add_parser(
        "profile", help="profile the columns of a data file", formatter_class=fmt,
        description="Profile every column of FILE (CSV, TSV, Parquet, .npy, .npz, JSON lines): counts, nulls,\n"
                    "NaN/inf, min/max, mean, variance, skewness, kurtosis, quantiles, distinct values, top\n"
                    "values. Files larger than memory are read in chunks.",
        epilog="exit status: 0 profiled, 2 bad usage (unknown column, bad option), 3 file not found,\n"
               "5 the release would exceed the dataset's privacy budget (--epsilon; nothing is shown).\n\n"
               "examples:\n  edgeorch profile data.parquet\n  edgeorch profile data.csv --save ref.profile.json\n"
               "  edgeorch profile data.csv --columns age,income --html profile.html\n"
               "  edgeorch profile people.csv --epsilon 0.5 --dataset people --budget 3 --bounds age=0:100 \\\n"
               "      --categories city=Paris,Lyon" + _KEEP_WARM_NOTE)
    p.add_argument("file", metavar="FILE", help="data file to profile")
    p.add_argument("--columns", metavar="A,B", help='comma-separated columns to profile (default: all; one '
                   'holding a comma in double quotes: \'"price, usd",qty\')')
    p.add_argument("--save", metavar="PATH", help="write the profile as JSON (a drift reference)")
    dp = p.add_argument_group("differential privacy (docs/privacy.md; needs the dp extra)")
    dp.add_argument("--epsilon", type=float, metavar="E",
                    help="release a differentially private profile spending E of the dataset's budget")
    dp.add_argument("--dataset", metavar="NAME", help="whose privacy budget pays (default: the file's absolute path)")
    dp.add_argument("--budget", type=float, metavar="B", help="declare (or change) the dataset's total epsilon")
    dp.add_argument("--delta", type=float, metavar="D",
                    help="also spend delta D (0 <= D < 1): Gaussian noise, (epsilon, delta)-DP (default 0: pure DP)")
    dp.add_argument("--budget-delta", type=float, metavar="D", dest="budget_delta",
                    help="the dataset's total delta, declared with --budget (default: the delta "
                         "already declared, 0 for a new dataset)")
    dp.add_argument("--bounds", action="append", metavar="COL=LO:HI", default=[],
                    help="declared bounds of a numeric column to release (repeat)")
    dp.add_argument("--categories", action="append", metavar="COL=A,B,...", default=[],
                    help="declared categories of a text column to release (repeat)")
    dp.add_argument("--contributions", type=int, default=1, metavar="N",
                    help="rows one individual contributes at most (default 1)")
    _outputs(p)
    p.set_defaults(func=cmd_profile, spend=spend)

    d = subparsers.add_parser(
        "drift", help="compare current data with a reference; exit 1 on dataset drift", formatter_class=fmt,
        description="Test each column of CURRENT for drift from REFERENCE and decide whether the dataset\n"
                    "drifted (share of drifted columns >= --drift-share). REFERENCE is a data file or a\n"
                    "profile saved by 'edgeorch profile --save'. The method per column follows the rule in\n"
                    "docs/kernels.md (KS or Wasserstein for numeric, chi-square/z or Jensen-Shannon for\n"
                    "categorical) unless --method is given. NaN and inf are dropped and reported.",
        epilog="exit status: 0 no dataset drift, 1 dataset drift, 2 bad usage (unknown column, bad option),\n"
               "3 file not found.\n\n"
               "examples:\n  edgeorch drift ref.parquet today.parquet\n"
               "  edgeorch drift ref.profile.json today.csv --json\n"
               "  edgeorch drift ref.csv cur.csv --method psi --threshold 0.2 --html drift.html" + _KEEP_WARM_NOTE)
    d.add_argument("reference", metavar="REFERENCE", help="reference data file or saved profile (.json)")
    d.add_argument("current", metavar="CURRENT", help="current data file")
    d.add_argument("--columns", metavar="A,B", help='comma-separated columns (default: those in both; one '
                   'holding a comma in double quotes: \'"price, usd",qty\')')
    d.add_argument("--method", help="one method for every column (ks, wasserstein, psi, jensenshannon, "
                                    "hellinger, chisquare, z)")
    d.add_argument("--threshold", type=float, help="threshold of the method (default per method)")
    d.add_argument("--drift-share", type=float, default=0.5, metavar="SHARE",
                   help="share of drifted columns that makes the dataset drift (default 0.5)")
    d.add_argument("--correction", default="bh", choices=("bh", "bonferroni", "none"),
                   help="multiple-testing correction of p-values (default bh)")
    _outputs(d)
    d.set_defaults(func=cmd_drift)

    f = subparsers.add_parser(
        "fairness", help="fairness of binary predictions across groups", formatter_class=fmt,
        description="Selection rates, true/false positive rates per group and the fairness metrics\n"
                    "(demographic parity, equalized odds, disparate impact with the four-fifths rule).\n"
                    "Several --group columns measure their intersections. Groups smaller than\n"
                    "--min-group-size are flagged and left out.",
        epilog="exit status: 0 within limits, 1 a limit is broken, 2 bad usage (unknown column, bad option),\n"
               "3 file not found.\n\n"
               "example:\n  edgeorch fairness scored.parquet --group sex --group race --label y --prediction y_hat"
               + _KEEP_WARM_NOTE)
    f.add_argument("file", metavar="FILE", help="data file with group, label and prediction columns")
    f.add_argument("--group", action="append", required=True, metavar="COL",
                   help="sensitive column (repeat, or A,B, for intersections)")
    f.add_argument("--label", metavar="COL", help="true label column (needed for equalized odds)")
    f.add_argument("--prediction", required=True, metavar="COL", help="predicted label column")
    f.add_argument("--pos-label", default="1", metavar="VALUE", help="favourable outcome (default 1)")
    f.add_argument("--privileged", metavar="VALUE", help="privileged group for disparate impact")
    f.add_argument("--min-group-size", type=int, default=30, metavar="N", help="default 30")
    f.add_argument("--weight", metavar="COL", help="column of sample weights (default: every row weighs 1)")
    _outputs(f)
    f.set_defaults(func=cmd_fairness)


def _outputs(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print the result document as JSON")
    p.add_argument("--html", metavar="PATH", help="write a self-contained HTML report")


def _use_numba_cache(args: argparse.Namespace) -> None:
    """Point numba's cache at the config's state dir when a config is found, else the user's cache folder.

    Before the kernels are imported (see :mod:`edgeorch.kernels.cache`). A
    kernel command does not need a config, so a broken one that was merely
    found (not named with ``--config``) does not stop it. Also notes the
    config's ``[kernels] keep_warm`` for :func:`_run` (``args.keep_warm``).
    """
    from ..config import load_config
    from .cache import use_numba_cache_dir

    explicit = getattr(args, "config", None)
    preferred = None
    args.keep_warm = None
    args.state_file = None
    try:
        cfg = load_config(explicit)
        args.state_file = str(cfg.state_file)  # where a baseline:/model: reference is read (drift REFERENCE)
        if cfg.source is not None:
            preferred = cfg.numba_cache_dir
            args.keep_warm = cfg.kernels.keep_warm
    except ConfigError:
        if explicit is not None:
            raise
    args.numba_cache = str(use_numba_cache_dir(preferred))


# Task option -> the command-line argument that sets it, so an error names what the user typed.
_FLAGS = {"input": "FILE", "reference": "REFERENCE", "current": "CURRENT", "reference_profile": "REFERENCE",
          "columns": "--columns", "save": "--save", "report": "--html", "method": "--method",
          "threshold": "--threshold", "drift_share": "--drift-share", "correction": "--correction",
          "group": "--group", "label": "--label", "prediction": "--prediction", "pos_label": "--pos-label",
          "privileged": "--privileged", "min_group_size": "--min-group-size", "weight": "--weight",
          "epsilon": "--epsilon", "dataset": "--dataset", "budget": "--budget", "bounds": "--bounds",
          "delta": "--delta", "budget_delta": "--budget-delta",
          "categories": "--categories", "contributions": "--contributions"}


def _run(kind: str, opts: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """Check ``opts`` by the tasks' own rules (:func:`check_options`), naming CLI flags; then run the kind.

    A bad option is a usage error (exit 2) that names the flag (``--method``),
    never the task-option path a pipeline file would use. The kind runs in
    this user's kernel server when one is warm and takes the request, else
    here, after which a server is started for the next command
    (:mod:`.keepwarm`; the same document, files and errors either way).
    """
    from . import keepwarm
    from .kinds import check_options, run_task

    errors = check_options(kind, opts, file="", prefix="")
    if errors:
        e = errors[0]
        key = (e.field or "").split(".")[0]
        raise UsageError(e.message, field=_FLAGS.get(key, e.field), value=e.value, expected=e.expected, hint=e.hint)
    _check_outputs(opts)
    keep_warm = keepwarm.keep_warm_seconds(getattr(args, "keep_warm", None))
    server = None
    if keep_warm > 0 and keepwarm.served(kind, opts):
        folder = keepwarm.server_folder()
        if folder is not None:
            server = (folder, keepwarm.server_key(args.numba_cache))
            doc = keepwarm.ask(kind, opts, folder=server[0], key=server[1])
            if doc is not None:
                return doc
    progress = _progress(_quiet(args))
    from .cache import compiled_before

    if progress.enabled and not compiled_before():
        progress.note("edgeorch: compiling the kernels for their first use here (10-20 s, once; cached after)")
    try:
        doc = run_task(kind, opts, progress=progress)
    except UsageError as exc:  # an option's entry named by its flag: "--bounds nope", not "bounds.nope"
        key, _, rest = (exc.field or "").partition(".")
        if key in _FLAGS and rest and _FLAGS[key].startswith("--"):
            exc.field = f"{_FLAGS[key]} {rest}"
        raise
    if server is not None:
        keepwarm.start_server(server[0], server[1], args.numba_cache, keep_warm)
    return doc


def _check_outputs(opts: dict[str, Any]) -> None:
    """Refuse, before any work, an output file (``--save``, ``--html``) in edgeorch's state folder
    (:func:`edgeorch.ownstate.check_output_file`): a report saved over the state file replaced it."""
    from ..ownstate import check_output_file

    for key in ("save", "report"):
        if isinstance(opts.get(key), str):
            check_output_file(opts[key], field=_FLAGS[key])


def _quiet(args: argparse.Namespace) -> bool:
    """No progress line: ``-q`` (a global option of the edgeorch command; absent when these commands are
    registered elsewhere) or ``--json`` (a script reads the output; stderr stays for errors)."""
    return bool(getattr(args, "quiet", False)) or bool(getattr(args, "json", False))


def _progress(quiet: bool = False) -> Any:
    """The progress line on stderr (only on a terminal); none with ``-q``."""
    from ..textui import Progress

    return Progress(enabled=False) if quiet else Progress()


def _pos_label(text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        return {"true": True, "false": False}.get(text.lower(), text)


def _is_profile(path: str) -> bool:
    from ..monitor.baselines import is_profile_file  # the one rule (a drift task's reference uses it too)

    return is_profile_file(path)


def _print(doc: dict[str, Any], args: argparse.Namespace) -> None:
    """The result document: as JSON (``--json``), else its compact tables (the same a notebook shows) and verdict."""
    from ..textui import print_json, print_table, printable
    from .results import doc_tables

    if args.json:
        print_json(doc)
        return
    for i, (caption, headers, rows) in enumerate(doc_tables(doc)):
        if i:
            print(f"\n{caption}:")
        print_table(headers, rows)
    # The message quotes names from the data (a column's U+202E would reverse the line): escaped like every human
    # output (a message already escaped stays as it is: printable leaves a backslash alone).
    print(f"\n{doc['verdict']}: {printable(doc['message'])}")
    for path in doc.get("outputs", []):
        print(f"wrote {printable(path)}")


@follows_a_run
def cmd_profile(args: argparse.Namespace) -> int:
    _use_numba_cache(args)
    if args.epsilon is not None:
        return _dp_profile(args)
    for flag in ("dataset", "budget", "delta", "budget_delta"):
        if getattr(args, flag) is not None:
            raise UsageError("only applies to a differentially private release", field=f"--{flag.replace('_', '-')}",
                             expected="--epsilon E as well")

    opts: dict[str, Any] = {"input": args.file}
    if args.columns:
        opts["columns"] = _csv_list(args.columns)
    if args.save:
        opts["save"] = args.save
    if args.html:
        opts["report"] = args.html
    _print(_run("profile", opts, args), args)
    return 0


@follows_a_run
def cmd_drift(args: argparse.Namespace) -> int:
    _use_numba_cache(args)

    if not 0.0 < args.drift_share <= 1.0:  # (the kernel's own rule: drift.check_drift_share)
        raise UsageError("must be above 0 and at most 1 (0 would call every dataset drifted)", field="--drift-share",
                         value=args.drift_share)
    cols = _csv_list(args.columns)
    common = {k: v for k, v in {"columns": cols, "method": args.method, "threshold": args.threshold,
                                "drift_share": args.drift_share, "report": args.html}.items() if v is not None}
    if _is_profile(args.reference):
        if args.method is not None and args.method not in ("ks", "psi", "jensenshannon", "hellinger", "chisquare"):
            raise UsageError("this method needs reference data, not a profile", field="--method", value=args.method,
                             expected="ks, psi, jensenshannon, hellinger or chisquare")
        doc = _run("profile", {"input": args.current, "reference_profile": args.reference, **common}, args)
        doc["kind"] = "drift"
    else:
        from ..monitor.baselines import STATE_FILE_ENV, parse_reference

        if args.state_file and _parses_as_reference(args.reference, parse_reference):
            # A baseline or a model's reference data: read from the config's state file, as a task reads it from
            # the one its daemon names (it said "this process was not told where it is", exit 1: "drift found").
            os.environ.setdefault(STATE_FILE_ENV, args.state_file)
        doc = _run("drift", {"reference": args.reference, "current": args.current,
                             "correction": args.correction, **common}, args)
    _print(doc, args)
    return 1 if doc["summary"].get("dataset_drift") else 0


def _parses_as_reference(text: str, parse: Any) -> bool:
    """Whether ``text`` is a ``baseline:``/``model:`` reference (a malformed one's error comes from the run)."""
    try:
        return parse(text) is not None
    except Exception:  # noqa: BLE001 - malformed: the kind's own check says how
        return True


@follows_a_run
def cmd_fairness(args: argparse.Namespace) -> int:
    _use_numba_cache(args)

    groups = [g for item in args.group for g in (_csv_list(item) or [])]
    if args.min_group_size < 0:
        raise UsageError("must be >= 0", field="--min-group-size", value=args.min_group_size)
    opts: dict[str, Any] = {"input": args.file, "group": groups if len(groups) > 1 else groups[0],
                            "prediction": args.prediction, "pos_label": _pos_label(args.pos_label),
                            "min_group_size": args.min_group_size}
    if args.label:
        opts["label"] = args.label
    if args.privileged:
        opts["privileged"] = args.privileged
    if args.weight:
        opts["weight"] = args.weight
    if args.html:
        opts["report"] = args.html
    doc = _run("fairness", opts, args)
    _print(doc, args)
    return 1 if doc["verdict"] == "violation" else 0


def _pairs(items: list[str], flag: str, parse: Any) -> dict[str, Any]:
    """``COL=VALUE`` flags as a dict, each value through ``parse``; a UsageError naming the flag otherwise, and
    naming the flag and column when a column is given twice (which one counts would be a guess: the last
    silently won)."""
    out: dict[str, Any] = {}
    for item in items:
        col, sep, value = item.partition("=")
        try:
            if not sep or not col:
                raise ValueError
            parsed = parse(value)
        except ValueError:
            raise UsageError("is not COL=VALUE", field=flag, value=item,
                             expected="COL=LO:HI" if flag == "--bounds" else "COL=A,B,...") from None
        if col in out:
            raise UsageError("is given twice for this column", field=f"{flag} {col}", value=item,
                             expected=f"one {flag} per column")
        out[col] = parsed
    return out


def _bound_pair(text: str) -> list[float]:
    lo, sep, hi = text.partition(":")
    if not sep:
        raise ValueError(text)
    return [float(lo), float(hi)]


def _category_list(text: str) -> list[str]:
    items = _csv_list(text)
    if not items:
        raise ValueError(text)
    return items


def _charge(args: argparse.Namespace, claim: dict[str, Any]) -> dict[str, Any]:
    """``args.spend(args, claim)``; a refusal (exit 5) that names a budget option names the flag
    (``--budget-delta``, not ``budget_delta``), as every other error of these commands."""
    from ..errors import ConflictError

    try:
        ledger: dict[str, Any] = args.spend(args, claim)
    except ConflictError as exc:
        if exc.field in ("budget", "budget_delta"):
            exc.field = _FLAGS[exc.field]
            exc.rendered = None  # rendered again from the fields (a daemon's error came rendered)
        raise
    return ledger


def budget_change(dataset: str, ledger: dict[str, Any]) -> str | None:
    """``budget of dataset 'people' raised from epsilon 1 to 2`` when the release changed the declared budget
    (the ledger's ``previous_budget``, :meth:`edgeorch.store.privacy.Privacy.charge`), else None."""
    old = ledger.get("previous_budget")
    if not old:
        return None
    parts = [f"{'raised' if ledger[k] > old[k] else 'lowered'} from {k} {old[k]:g} to {ledger[k]:g}"
             for k in ("epsilon", "delta") if ledger[k] != old[k]]
    return f"budget of dataset {dataset!r} {' and '.join(parts)}" if parts else None


def _dp_profile(args: argparse.Namespace) -> int:
    """``profile --epsilon``: compute the release, charge it (``args.spend``), and only then show or write it."""
    if args.spend is None:  # pragma: no cover - cli/main.py always hands it in
        raise UsageError("differentially private releases need the edgeorch command line", field="--epsilon")
    if args.save:
        raise UsageError("a differentially private release cannot be saved as a drift reference", field="--save",
                         expected="--html PATH or --json for the release")
    _check_outputs({"report": args.html})  # before the release is charged
    opts: dict[str, Any] = {"input": args.file, "epsilon": args.epsilon, "contributions": args.contributions,
                            "bounds": _pairs(args.bounds, "--bounds", _bound_pair),
                            "categories": _pairs(args.categories, "--categories", _category_list)}
    for key in ("dataset", "budget", "delta", "budget_delta"):
        if getattr(args, key) is not None:
            opts[key] = getattr(args, key)
    if args.columns:
        opts["columns"] = _csv_list(args.columns)
    doc = _run("dp_profile", {k: v for k, v in opts.items() if v != {}}, args)  # computed, not shown
    claim = doc.pop("privacy")
    ledger = _charge(args, claim)  # a refusal raises (exit 5) and the release is dropped unseen
    doc["message"] += (f"; dataset {claim['dataset']!r}: epsilon {ledger['remaining_epsilon']:g} of "
                       f"{ledger['epsilon']:g} left after this release")
    doc["summary"]["dataset"] = claim["dataset"]
    doc["summary"]["remaining_epsilon"] = ledger["remaining_epsilon"]
    doc["summary"]["remaining_delta"] = ledger["remaining_delta"]
    if claim.get("delta"):
        doc["message"] += f", delta {ledger['remaining_delta']:g} of {ledger['delta']:g}"
    change = budget_change(claim["dataset"], ledger)
    doc["summary"]["budget_changed"] = change
    if change is not None:  # said on stderr too: with --json a person at the terminal still sees it
        import sys

        from ..textui import printable

        print(f"edgeorch: {printable(change)}", file=sys.stderr)
    if args.html:
        from .report import render, write
        from .tasks import dp_charts

        doc["outputs"].append(write(args.html, render(doc, dp_charts(doc))))
    _print(doc, args)
    return 0
