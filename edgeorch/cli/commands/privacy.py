"""``edgeorch privacy``: the differential-privacy budget ledger, read (docs/privacy.md, "The budget ledger").

Every dataset with a budget, what was spent of it and what is left; or one dataset's ledger with its newest
spends (when, epsilon, delta, which release, the run and task or the user who made it). From the daemon's
``privacy.show`` op, or the state file read-only without one. Spends are made by releases only
(``edgeorch profile --epsilon``, a ``dp_profile`` task): this command never changes the ledger.
"""

from __future__ import annotations

import argparse
from typing import Any

from ...textui import format_timestamp, print_json, print_table, printable
from ..backend import load, read
from ..exits import EXIT_OK
from . import AddCommand


def register(add: AddCommand) -> None:
    p = add("privacy", cmd_privacy, "privacy budgets: what each dataset's differentially private releases spent and "
                                    "what is left; with a dataset, its newest spends")
    p.add_argument("dataset", nargs="?", metavar="DATASET", help="one dataset's ledger and spends (the name its "
                   "releases gave: `--dataset`, or file:<absolute path>)")
    p.add_argument("--limit", "-n", type=int, default=None, help="how many spends to list (default 100)")


def _number(x: float) -> str:
    """An ε or δ as a person reads it: up to 6 significant digits (0.1 + 0.2 shows as 0.3)."""
    return f"{x:.6g}"


def cmd_privacy(args: argparse.Namespace) -> int:
    load(args)  # a bad --config is said before anything else
    if args.limit is not None and args.limit < 1:
        from ...errors import UsageError

        raise UsageError("must be at least 1", field="--limit", value=args.limit, expected="a count of 1 or more")
    query = {"dataset": args.dataset, "limit": args.limit}

    def offline(store: Any) -> dict[str, Any]:
        if store is None:  # no state file yet: no budget anywhere
            from ...errors import NotFoundError

            if args.dataset is not None:
                raise NotFoundError("no privacy budget for this dataset", field="dataset", value=args.dataset,
                                    expected="a dataset with a declared budget")
            return {"ledgers": []}
        return store.privacy.show(args.dataset, limit=args.limit or 100)

    res = read(args, "privacy.show", query, offline)
    if args.json:
        print_json(res)
        return EXIT_OK
    if args.dataset is None:
        if args.quiet:
            for ledger in res["ledgers"]:
                print(ledger["dataset"])
            return EXIT_OK
        print_table(["dataset", "epsilon", "spent", "left", "delta", "delta spent", "releases", "budget set"],
                    [[printable(x["dataset"]), _number(x["epsilon"]), _number(x["spent_epsilon"]),
                      _number(x["remaining_epsilon"]), _number(x["delta"]), _number(x["spent_delta"]), x["spends"],
                      format_timestamp(x["set_at"])] for x in res["ledgers"]],
                    empty="no privacy budgets yet (a release declares its dataset's: `edgeorch profile FILE "
                          "--epsilon E --budget B --dataset NAME`, or a dp_profile task's `budget`)")
        return EXIT_OK
    x = res["ledger"]
    if not args.quiet:
        print(f"{printable(x['dataset'])}: epsilon {_number(x['spent_epsilon'])} of {_number(x['epsilon'])} spent, "
              f"{_number(x['remaining_epsilon'])} left; delta {_number(x['spent_delta'])} of {_number(x['delta'])}; "
              f"{x['spends']} release(s); budget set {format_timestamp(x['set_at'])}"
              + (f" by {printable(x['actor'])}" if x.get("actor") else ""))
    print_table(["when", "epsilon", "delta", "release", "run", "task", "by"],
                [[format_timestamp(s["spent_at"]), _number(s["epsilon"]), _number(s["delta"]), printable(s["release"]),
                  s["run_id"] if s["run_id"] is not None else "-", printable(s["task"] or "-"),
                  printable(s["actor"] or "-")] for s in res["spends"]],
                empty="no release has spent any of it yet")
    if len(res["spends"]) < x["spends"]:
        print(f"(the newest {len(res['spends'])} of {x['spends']}; --limit shows more)")
    return EXIT_OK
