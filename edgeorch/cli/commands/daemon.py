"""The daemon itself: ``edgeorch daemon`` (run it in the foreground) and ``edgeorch reload`` (like SIGHUP)."""

from __future__ import annotations

import argparse

from ...textui import print_json
from ..backend import connect, load
from ..exits import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from ..globalopts import verbosity
from . import AddCommand


def register(add: AddCommand) -> None:
    add("daemon", cmd_daemon, "run the daemon in the foreground (systemd runs it as a service)", json_flag=False)
    add("reload", cmd_reload, "reload the pipelines folder and the config's access lists (like SIGHUP)")


def cmd_daemon(args: argparse.Namespace) -> int:
    """Run the daemon; its log level: ``--log-level``, else the config's ``[daemon] log_level`` moved by ``-v``/``-q``."""
    from ...daemon import run_daemon

    return run_daemon(args.config, log_level=args.log_level, verbosity=verbosity(args))


def cmd_reload(args: argparse.Namespace) -> int:
    with connect(load(args), "daemon") as backend:
        res = backend.client.call("reload")
    if args.json:
        print_json(res)
    else:
        if not args.quiet:
            print(f"reloaded: {res['summary']}" + (" (pipelines only: the config file was refused)"
                                                    if res.get("config_error") else ""))
        for e in res["errors"]:
            print(f"error  {e['message']}")
        if res.get("config_error"):  # (an older daemon's answer has no such key: its note below says it)
            print(f"error  config not reloaded, the one in force stays: {res['config_error']}")
        for w in res["warnings"] if not args.quiet else []:
            if not (res.get("config_error") and w.startswith("config not reloaded: ")):
                print(f"note   {w}")
    if res.get("config_error"):
        return EXIT_USAGE  # a config error, as every command says one (2)
    return EXIT_OK if not res["errors"] else EXIT_FAILED
