"""The command line describing itself: ``edgeorch completion bash|zsh|fish`` and ``edgeorch man``.

Both are generated from the whole parser (``args.whole_parser()``: :func:`edgeorch.cli.main.build_parser`
with every command built; a command line builds only the command it names), so a new command or
option is completed and documented without another edit.
"""

from __future__ import annotations

import argparse

from ..exits import EXIT_OK
from . import AddCommand

SHELLS = ("bash", "zsh", "fish")


def register(add: AddCommand) -> None:
    p = add("completion", cmd_completion, "print a shell completion script (bash, zsh or fish) for edgeorch",
            json_flag=False)
    p.add_argument("shell", choices=SHELLS, help="the shell to complete in")
    p.epilog = ('bash: `source <(edgeorch completion bash)` in ~/.bashrc; zsh: `edgeorch completion zsh > '
                '"${fpath[1]}/_edgeorch"`; fish: `edgeorch completion fish > ~/.config/fish/completions/edgeorch.fish`')

    p = add("man", cmd_man, "print the manual page (roff): `edgeorch man | man -l -`", json_flag=False)


def cmd_completion(args: argparse.Namespace) -> int:
    from ..completion import completion_script

    print(completion_script(args.whole_parser(), args.shell), end="")
    return EXIT_OK


def cmd_man(args: argparse.Namespace) -> int:
    from ..manpage import man_page

    print(man_page(args.whole_parser()), end="")
    return EXIT_OK
