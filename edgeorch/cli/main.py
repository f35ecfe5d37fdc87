"""The ``edgeorch`` command's assembly: the parser, the global options, error rendering, the exit code.

Each subcommand is a small function ``cmd_<name>(args) -> int`` (the exit
code) in its group's module under ``commands/``. Errors a user can cause are
:class:`~edgeorch.errors.EdgeorchError` and print as one clear message (one
JSON line with ``--json``, :mod:`edgeorch.cli.failures`); any other
exception is a bug (exit 70, its traceback with ``-v``).
"""

from __future__ import annotations

import argparse
import gc as garbage_collector  # `gc` is the command module below
import os
import sys
from collections.abc import Callable
from typing import Any

from .. import __version__
from ..errors import EdgeorchError, UsageError
from ..loglevel import configure_logging
from .commands import (audit, baseline, daemon, datasets, describe, events, gc, inputs, lineage, models, monitors,
                       pipelines, privacy, resources, runs, subcommand_adder, top, validate)
from .exits import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from .failures import in_cli_terms, report_bug, report_error, report_file_error, wants_json
from .globalopts import VALUE_FLAGS, cli_log_level, finish_args, finish_parser
from .parsing import OneCommand, Parser, ParserError, command_word, subcommands

GROUPS = (validate, daemon, events, runs, pipelines, inputs, datasets, models, monitors, baseline, lineage, privacy, gc,
          audit, resources, top, describe)
"""The command modules, in the order ``--help`` lists their commands (the kernels' come last)."""

CLI_LOG_FORMAT = "edgeorch: %(levelname)s %(name)s: %(message)s"



class _Version(argparse.Action):
    """``--version``: the package's version and the state-file schema this edgeorch writes (two checkouts of one
    release differ by the schema: after an upgrade, which code runs can be told). Read only when asked."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        from ..store.schema import SCHEMA_VERSION

        print(f"edgeorch {__version__} (state file schema {SCHEMA_VERSION})")
        parser.exit()


def build_parser(only: str | None = None) -> Parser:
    """The whole command line: every group's subcommands, the kernels', and the global options on each.

    ``only``: build that one command's parser (the others are left out, issue 11: building them all is
    most of a short command's start-up); parsing a line that names another command then fails.
    """
    parser = Parser(prog="edgeorch", description="A single-machine orchestrator for ML and data pipelines.")
    parser.add_argument("--version", action=_Version, nargs=0, help="show edgeorch's version and the state-file "
                        "schema it writes, and exit")
    sub: argparse._SubParsersAction[Parser] | OneCommand = parser.add_subparsers(dest="command", metavar="COMMAND")
    if only is not None:
        sub = OneCommand(sub, only)

    add = subcommand_adder(sub)
    for group in GROUPS:
        group.register(add)
    register_kernels: Callable[..., None] | None
    try:
        from ..kernels.cli import register as register_kernels
    except ImportError:
        register_kernels = None
    if register_kernels is not None:
        from .privacy import spend

        # The kernels' commands live with the kernels (edgeorch/kernels/cli.py); a release they compute
        # is charged to its privacy budget through the CLI's backend choice, handed in here.
        register_kernels(sub, spend=spend)
    finish_parser(parser)  # last: every subcommand, the kernels' too, gets the global options and exit codes
    # `completion` and `man` describe the whole command line: they build it (a line builds only its command).
    parser.set_defaults(whole_parser=build_parser)
    return parser


def parse_command_line(argv: list[str]) -> tuple[Parser, argparse.Namespace]:
    """The parser and the parsed ``argv``: with only the named command built when that parses, else the whole tree.

    The result is the same either way (a pruned tree is a part of the whole one, and argparse matches
    the command word by position, checking the name after); an error, a typo in the command or the
    top level's ``--help`` always come from the whole tree.
    """
    only = command_word(argv, VALUE_FLAGS)
    if only is not None:
        parser = build_parser(only)
        if subcommands(parser):
            try:
                return parser, parser.parse_args(argv)
            except ParserError:
                pass
    parser = build_parser()
    return parser, parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default: ``sys.argv[1:]``), run the command, and return its exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    json_out = wants_json(argv)  # until the arguments are parsed (argparse's own errors)
    verbose = False
    args: argparse.Namespace | None = None
    try:
        parser, parsed = parse_command_line(argv)
        args = finish_args(parsed)
        json_out, verbose = args.json, args.verbose > 0
        configure_logging(cli_log_level(args), CLI_LOG_FORMAT)
        if not getattr(args, "func", None):
            if json_out:
                raise UsageError("no command given", hint="`edgeorch --help` lists the commands")
            parser.print_help()
            return EXIT_USAGE
        return args.func(args)
    except EdgeorchError as exc:
        if args is not None:
            exc = in_cli_terms(exc, parser, args)
        return report_error(exc, json_out=json_out, quiet=bool(getattr(args, "quiet", False)))
    except KeyboardInterrupt as exc:
        how = f" ({exc.args[0]})" if exc.args else ""
        if json_out:  # the last stderr line of a --json command is one JSON object, an interruption's too
            from ..errors import Interrupted

            return report_error(Interrupted(f"interrupted{how}"), json_out=True)
        print(f"edgeorch: interrupted{how}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `edgeorch logs ... | head`: an output command stops where its reader did (one that
        # follows a run keeps following it and exits with its outcome: exits.follows_a_run)
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return EXIT_OK
    except OSError as exc:
        if exc.filename is None:
            return report_bug(exc, json_out=json_out, verbose=verbose)
        return report_file_error(exc, json_out=json_out, verbose=verbose)
    except Exception as exc:  # anything else is a bug (but a damaged state file): say so, traceback with -v
        damage = _state_damage(exc, args)
        if damage is not None:
            if verbose:
                import traceback

                traceback.print_exception(exc, file=sys.stderr)
            return report_error(damage, json_out=json_out)
        return report_bug(exc, json_out=json_out, verbose=verbose)


def _state_damage(exc: BaseException, args: argparse.Namespace | None) -> EdgeorchError | None:
    """A damaged state file met anywhere in a command (a page SQLite finds malformed, read after a clean open:
    its quick check runs only after an unclean stop) as the :class:`StateError` it is, exit 4, naming the file
    and what to do; the daemon's start included (it said "internal error (a bug)", exit 70, and systemd
    restarted it every 2 s on the same file). None for any other exception."""
    if "sqlite3" not in sys.modules:
        return None
    from ..store.db import corruption_error

    path = None
    try:
        if args is not None:
            from ..config import load_config

            path = load_config(args.config).state_file
    except Exception:  # noqa: BLE001 - the message names the file when the config can still be read
        path = None
    return corruption_error(exc, path)


def run_command() -> int:
    """The ``edgeorch`` program: :func:`main` in a process that ends when it returns (the script entry,
    ``python -m edgeorch``).

    At exit the interpreter collects garbage over every object the imports made:
    ~30 ms after an in-process run on a small VM, a tenth of a short command. A
    command closes its files, connections and processes itself, so those
    collections are skipped: what is left moves to the collector's permanent
    generation (``gc.freeze``). Exit handlers still run and objects are still
    freed as their references go. Not for a caller that goes on (tests call :func:`main`).
    Standard output and error show a character their encoding lacks as an escape (``\\xe9``).
    """
    for stream in (sys.stdout, sys.stderr):
        # A terminal or pipe whose encoding cannot show a character (a Latin-1 locale, PYTHONIOENCODING=ascii)
        # shows it as an escape instead of ending the command with a UnicodeEncodeError; JSON is ASCII anyway.
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")
    code = main()
    garbage_collector.freeze()
    return code
