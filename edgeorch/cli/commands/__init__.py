"""One module per command group; each has ``register(add)``, which :func:`edgeorch.cli.main.build_parser` calls.

``add(name, func, help_text, json_flag=True)`` adds a subcommand whose
``func(args) -> int`` returns the exit code; it is :data:`AddCommand`.
"""

from __future__ import annotations

import argparse
from typing import Any, Callable, Protocol

Command = Callable[[argparse.Namespace], int]
"""A subcommand: the parsed arguments in, the exit code out."""


class AddCommand(Protocol):
    """How a command module adds its subcommands (see :func:`edgeorch.cli.main.build_parser`)."""

    def __call__(self, name: str, func: Command, help_text: str, *, json_flag: bool = True) -> argparse.ArgumentParser:
        ...


JSON_HELP = 'print JSON for scripts instead of tables (an error: one {"error": {...}} line on stderr)'


def subcommand_adder(sub: Any) -> AddCommand:
    """The ``add`` of one level of subcommands (``sub``: an ``add_subparsers()`` result).

    The top level's commands (``edgeorch models``) and a group's own actions
    (``edgeorch models promote``) are made alike: the help text is also the
    description, ``func`` is the default, and ``--json`` is there unless
    ``json_flag`` is false.
    """

    def add(name: str, func: Command, help_text: str, *, json_flag: bool = True) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(func=func)
        if json_flag:
            p.add_argument("--json", action="store_true", help=JSON_HELP)
        return p

    return add
