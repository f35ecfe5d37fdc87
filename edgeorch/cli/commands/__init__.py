"""One module per command group; each has ``register(add)``, which :func:`edgeorch.cli.main.build_parser` calls.

``add(name, func, help_text, json_flag=True)`` adds a subcommand whose
``func(args) -> int`` returns the exit code; it is :data:`AddCommand`.
"""

from __future__ import annotations

import argparse
from typing import Callable, Protocol

Command = Callable[[argparse.Namespace], int]
"""A subcommand: the parsed arguments in, the exit code out."""


class AddCommand(Protocol):
    """How a command module adds its subcommands (see :func:`edgeorch.cli.main.build_parser`)."""

    def __call__(self, name: str, func: Command, help_text: str, *, json_flag: bool = True) -> argparse.ArgumentParser:
        ...
