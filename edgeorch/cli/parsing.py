"""The argparse parts every other CLI module shares: the parser class and the walk over its commands.

:class:`Parser` raises :class:`ParserError` instead of printing and exiting,
so ``main`` decides how a usage error looks (text, or JSON with ``--json``).
:func:`subcommands` and :func:`walk` are the one place that reads
argparse's private tree (it has no public walk over subcommands); the
global options, the completion scripts and the man page are all built
from it.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from typing import Any, Iterator, NoReturn

from ..errors import UsageError

_ARGUMENT = re.compile(r"^argument ([^:]+): ")


class ParserError(UsageError):
    """A command line argparse refused (exit 2); ``usage`` is the usage line of the command that refused it.

    ``field`` is the option or argument argparse named (``--limit/-n``), when it named one.
    """

    def __init__(self, message: str, *, prog: str, usage: str) -> None:
        m = _ARGUMENT.match(message)
        super().__init__(message[m.end():] if m else message, field=m.group(1) if m else None,
                         hint=f"`{prog} --help` lists the arguments")
        self.prog = prog
        self.usage = usage
        self.argparse_message = message
        """argparse's own wording, printed as it always was in text mode."""


def terminal_columns() -> int:
    """The terminal's width as ``shutil.get_terminal_size`` reads it: ``COLUMNS`` when it is a positive number,
    else the width of the terminal on standard output, else 80.

    Here rather than ``shutil``'s: argparse builds a formatter for every argument it adds (it checks the
    metavar), and its own width lookup imports ``shutil`` (with ``bz2`` and ``lzma``), which every command's
    start paid for.
    """
    try:
        columns = int(os.environ.get("COLUMNS", ""))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):  # no stdout, a closed one, not a terminal
            columns = 0
    return columns if columns > 0 else 80


class LineFormatter(argparse.HelpFormatter):
    """Help whose description and epilog keep their line breaks, each line wrapped to the terminal.

    argparse's default joins every line into one paragraph (a list of exit
    codes becomes a run-on sentence); its raw formatter never wraps (a long
    description runs off the screen). Blank lines stay paragraph breaks.
    """

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                 width: int | None = None) -> None:
        # argparse's own default, less its 2 columns of margin (see terminal_columns)
        super().__init__(prog, indent_increment, max_help_position,
                         terminal_columns() - 2 if width is None else width)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        import textwrap

        lines = []
        for line in text.splitlines():
            stripped = line.rstrip()
            lead = indent + stripped[: len(stripped) - len(stripped.lstrip())]
            lines.append(textwrap.fill(stripped.lstrip(), width, initial_indent=lead, subsequent_indent=lead,
                                       break_on_hyphens=False) if stripped else "")
        return "\n".join(lines)


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors raise :class:`ParserError` (subcommands inherit the class).

    Its help keeps the line breaks of descriptions and epilogs (:class:`LineFormatter`) unless a
    command asks for another formatter.
    """

    value_flags: frozenset[str] = frozenset()
    """The options before a command word that take the next word as their value (``--config PATH``): set by
    :func:`~edgeorch.cli.globalopts.finish_parser`, read to find the command an unknown word was given to."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", LineFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        raise ParserError(message, prog=self.prog, usage=self.format_usage())

    def parse_args(self, args: Any = None, namespace: Any = None) -> Any:  # type: ignore[override]
        """argparse's, except that words no command takes are refused by the command they were given to: argparse
        refuses them at the top level, so `edgeorch events -f` printed the whole tree's usage line."""
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            owner: argparse.ArgumentParser = self
            words = list(sys.argv[1:] if args is None else args)
            while True:
                word = command_word(words, self.value_flags)
                sub = next((p for name, p, _ in subcommands(owner) if name == word), None)
                if sub is None:
                    break
                owner, words = sub, words[words.index(str(word)) + 1:]
            owner.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed


def subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser, str]]:
    """``parser``'s direct subcommands as ``(name, parser, help)``, in the order ``--help`` lists them.

    An alias (a second name for the same parser) is left out; a parser
    without subcommands gives ``[]``.
    """
    out: list[tuple[str, argparse.ArgumentParser, str]] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            seen: set[int] = set()
            for name, sub in action.choices.items():
                if id(sub) not in seen:
                    seen.add(id(sub))
                    out.append((name, sub, helps.get(name, "")))
    return out


def walk(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """``(path, parser)`` for ``parser`` and every subcommand below it, depth first; the root's path is ``()``."""
    yield path, parser
    for name, sub, _ in subcommands(parser):
        yield from walk(sub, (*path, name))


def run_id_type(text: str) -> int:
    """The ``type=`` of every run id a command takes (``show RUN_ID``, ``why RUN``, ``events --run RUN_ID``...):
    an integer, within what the control protocol carries and the state file holds (the protocol's rule,
    ``INT_MIN..INT_MAX`` in edgeorch/control/protocol.py); another is a usage error (exit 2), daemon or not.

    Without it a larger id reached SQLite ("Python int too large to convert to SQLite INTEGER"): an internal
    error, exit 70, in `logs` always and in `show`, `cancel`, `retry`, `why` without a daemon (the daemon's
    protocol refused it, exit 2).
    """
    value = int(text)  # a ValueError: argparse's "invalid int value: 'x'" (this function is named int below)
    from ..control.protocol import INT_MAX, INT_MIN  # here: not on every command's start-up

    if not INT_MIN <= value <= INT_MAX:
        raise argparse.ArgumentTypeError(f"is out of range (found {text}); expected an integer in "
                                         f"{INT_MIN}..{INT_MAX}")
    return value


run_id_type.__name__ = "int"  # argparse names a value it cannot convert by its type's name: "invalid int value"



class Unbuilt:
    """Stands in for the parser of a command this invocation does not run: every building call is absorbed.

    ``add_argument``, ``set_defaults``, ``add_subparsers``, ``add_parser``, argument groups... all
    return the same object, so a command module's ``register`` runs unchanged and builds nothing.
    """

    def __getattr__(self, name: str) -> Any:
        return self._absorb

    def _absorb(self, *args: Any, **kwargs: Any) -> "Unbuilt":
        return self


class OneCommand:
    """An ``add_subparsers()`` result that builds only the command named ``keep`` (an :class:`Unbuilt` for the rest).

    Building every command's parser is most of a short command's start-up
    (issue 11); a command line names one. Everything else is the real
    subparsers action's.
    """

    def __init__(self, real: Any, keep: str) -> None:
        self.real, self.keep = real, keep

    def add_parser(self, name: str, **kwargs: Any) -> Any:
        if name == self.keep or self.keep in kwargs.get("aliases", ()):
            return self.real.add_parser(name, **kwargs)
        return Unbuilt()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def command_word(argv: list[str], value_flags: frozenset[str]) -> str | None:
    """The command ``argv`` names (its first word that is not an option), or None where a whole parser is needed.

    ``value_flags``: the options before the command that take the next word
    as their value (``--config PATH``). None when there is no such word, or
    when ``-h``/``--help``/``--version`` or ``--`` comes before it (the top
    level's help lists every command). A wrong guess costs only time: the
    caller parses again with every command built when this one fails.
    """
    words = iter(argv)
    for word in words:
        if word in ("-h", "--help", "--version", "--"):
            return None
        if not word.startswith("-") or word == "-":
            return word
        if word in value_flags:
            next(words, None)
    return None
