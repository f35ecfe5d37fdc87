"""The command line as plain data, read from the parser: what the completion scripts and the man page are built from.

:func:`command_tree` turns the argparse tree into :class:`Command` records
(options, positionals, subcommands, and what completes each value), so the
generators never touch argparse themselves. What a value completes to:

- ``choices``: the argument's ``choices`` (``--state``, ``--log-level``, ``pipelines ACTION``);
- ``pipelines``: a pipeline name (an argument whose ``dest`` is ``pipeline``; ``pipelines NAME``),
  asked at completion time from ``edgeorch pipelines -q``;
- ``runs``: a run id (``RUN_ID``), from ``edgeorch runs -q``;
- ``files``: a path (``--config``, ``FILE``, ``PATH``, ``REFERENCE``, ``CURRENT``, ``--html``, ``--save``);
- ``none``: anything else (free text: a task name, a reason).

An argument may say it outright with a ``completion`` attribute on its
action (one of the kinds above); otherwise the rules above decide.
"""

from __future__ import annotations

import argparse
from typing import Literal

from ..records import frozen
from .globalopts import GROUP_TITLE
from .parsing import subcommands

ValueKind = Literal["none", "choices", "files", "pipelines", "runs"]

_FILE_WORDS = {"PATH", "FILE", "REFERENCE", "CURRENT", "CONFIG", "HTML", "SAVE"}
_DEST_KINDS: dict[str, ValueKind] = {"pipeline": "pipelines", "run_id": "runs", "run": "runs"}


@frozen
class Values:
    """What completes a value: a kind, and the choices when the kind is ``choices``."""

    kind: ValueKind = "none"
    choices: tuple[str, ...] = ()


@frozen
class Option:
    """An option: its flags (long first), help, the value's name (None: a flag without a value)."""

    flags: tuple[str, ...]
    help: str
    metavar: str | None
    values: Values
    repeatable: bool
    is_global: bool
    """One of the global options (the same on every command): listed once in the man page."""


@frozen
class Positional:
    """A positional argument: ``repeat`` when it takes several values, ``optional`` when it may be left out."""

    name: str
    help: str
    values: Values
    repeat: bool
    optional: bool


@frozen
class Command:
    """One command: ``path`` is ``()`` for ``edgeorch`` itself, ``("runs",)`` for ``edgeorch runs``."""

    path: tuple[str, ...]
    help: str
    description: str
    epilog: str
    options: tuple[Option, ...]
    positionals: tuple[Positional, ...]
    subcommands: tuple[tuple[str, str], ...]
    """``(name, help)`` of each subcommand, in ``--help`` order."""

    @property
    def name(self) -> str:
        return " ".join(("edgeorch", *self.path))


def command_tree(parser: argparse.ArgumentParser) -> list[Command]:
    """Every command of ``parser`` (the root first, then depth first, in ``--help`` order)."""
    out: list[Command] = []

    def visit(p: argparse.ArgumentParser, path: tuple[str, ...], help_text: str) -> None:
        subs = subcommands(p)
        out.append(_command(p, path, help_text, tuple((n, h) for n, _, h in subs)))
        for name, sub, h in subs:
            visit(sub, (*path, name), h)

    visit(parser, (), parser.description or "")
    return out


def _command(p: argparse.ArgumentParser, path: tuple[str, ...], help_text: str,
             subs: tuple[tuple[str, str], ...]) -> Command:
    global_actions = {id(a) for g in p._action_groups if g.title == GROUP_TITLE for a in g._group_actions}
    options: list[Option] = []
    positionals: list[Positional] = []
    for a in p._actions:
        if isinstance(a, argparse._SubParsersAction) or a.help == argparse.SUPPRESS:
            continue
        if a.option_strings:
            takes_value = a.nargs != 0
            flags = tuple(sorted(a.option_strings, key=lambda f: (not f.startswith("--"), f)))
            options.append(Option(
                flags=flags, help=_help(a), metavar=_metavar(a) if takes_value else None,
                values=_values(a) if takes_value else Values(),
                repeatable=isinstance(a, (argparse._CountAction, argparse._AppendAction)),
                is_global=id(a) in global_actions))
        else:
            positionals.append(Positional(name=_metavar(a), help=_help(a), values=_values(a),
                                          repeat=a.nargs in ("*", "+", argparse.REMAINDER),
                                          optional=a.nargs in ("?", "*")))
    return Command(path=path, help=help_text, description=p.description or help_text, epilog=p.epilog or "",
                   options=tuple(options), positionals=tuple(positionals), subcommands=subs)


def _help(a: argparse.Action) -> str:
    text = a.help or ""
    if "%" in text:  # argparse's own placeholders (%(default)s)
        try:
            text = text % {**vars(a), "prog": "edgeorch"}
        except (KeyError, TypeError, ValueError):
            pass
    return " ".join(text.split())


def _metavar(a: argparse.Action) -> str:
    if isinstance(a.metavar, str):
        return a.metavar
    if a.choices is not None and not a.option_strings:
        return a.dest.upper()
    return a.dest.upper() if a.option_strings else a.dest


def _values(a: argparse.Action) -> Values:
    explicit = getattr(a, "completion", None)
    if explicit is not None:
        return Values(explicit)
    if a.choices is not None:
        return Values("choices", tuple(str(c) for c in a.choices))
    if a.dest in _DEST_KINDS:
        return Values(_DEST_KINDS[a.dest])
    if (a.metavar if isinstance(a.metavar, str) else a.dest.upper()) in _FILE_WORDS or a.dest in ("path", "file"):
        return Values("files")
    return Values()
