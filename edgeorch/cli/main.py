"""The ``edgeorch`` command's assembly: the parser, global options, exit codes in ``--help``, error rendering.

Each subcommand is a small function ``cmd_<name>(args) -> int`` (the exit
code) in its group's module under ``commands/``. Errors a user can cause are
:class:`~edgeorch.errors.EdgeorchError` and print as one clear message;
tracebacks are reserved for bugs.
"""

from __future__ import annotations

import argparse
import os
import sys

from .. import __version__
from ..config import add_config_option
from ..errors import EdgeorchError
from .commands import Command, daemon, events, inputs, pipelines, resources, runs, validate
from .exits import EXIT_CODES, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE

GROUPS = (validate, daemon, events, runs, pipelines, inputs, resources)
"""The command modules, in the order ``--help`` lists their commands (the kernels' come last)."""


def build_parser() -> argparse.ArgumentParser:
    """The whole command line: every group's subcommands, the kernels', and ``--config`` accepted anywhere."""
    parser = argparse.ArgumentParser(
        prog="edgeorch",
        description="A single-machine orchestrator for ML and data pipelines.",
        epilog="Exit codes: " + ", ".join(f"{code} {meaning}" for code, meaning in EXIT_CODES) + ".",
    )
    parser.add_argument("--version", action="version", version=f"edgeorch {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(name: str, func: Command, help_text: str, *, json_flag: bool = True) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(func=func)
        if json_flag:
            p.add_argument("--json", action="store_true", help="print JSON for scripts instead of tables")
        return p

    for group in GROUPS:
        group.register(add)
    try:
        from ..kernels.cli import register as register_kernels
    except ImportError:
        register_kernels = None
    if register_kernels is not None:
        register_kernels(sub)  # the kernels' commands live with the kernels (edgeorch/kernels/cli.py)
    add_config_option(parser)  # last: every subcommand, the kernels' too, accepts --config
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default: ``sys.argv[1:]``), run the command, and return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return args.func(args)
    except EdgeorchError as exc:
        print(f"edgeorch: error: {exc.render()}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("edgeorch: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `edgeorch logs ... | head`
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return EXIT_OK
