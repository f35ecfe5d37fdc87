"""What every command shares: the global options (accepted before or after the command) and the exit codes in ``--help``.

The global options::

  --config/-c PATH   the config file (else the lookup order of edgeorch.config.find_config)
  --json             JSON for scripts: the result on stdout; an error as one {"error": {...}} line on stderr
  -q/--quiet         results and errors only: no progress, notes or hints; lists print only ids or names
  -v/--verbose       more detail: -v logs which daemon or state file a command used and shows the
                     traceback of an internal error; -vv adds debug logging (repeatable)
  --log-level LEVEL  the log level outright (debug, info, warning, error); the CLI's default is
                     warning, ``edgeorch daemon``'s is the config's ``[daemon] log_level``

How "anywhere" works: the top parser holds each option with its real
default; every subcommand holds a copy whose default is ``SUPPRESS``, so a
value given before the subcommand is not reset by the subcommand's parse.
A subcommand that defines one of these options itself (``runs --json``,
with its own help text) keeps its copy, made ``SUPPRESS`` the same way.
``-v`` counts on each level separately (argparse parses a subcommand into
a fresh namespace): :func:`finish_args` adds them up.
"""

from __future__ import annotations

import argparse
from dataclasses import field
from typing import Any

from ..config import CONFIG_OPTION_HELP
from ..errors import UsageError
from ..loglevel import LOG_LEVELS, shift_log_level
from ..records import frozen
from .exits import exit_codes_text
from .parsing import LineFormatter, walk

CLI_LOG_LEVEL = "warning"
"""The CLI's own log level without ``-v``, ``-q`` or ``--log-level``: only what went wrong."""

GROUP_TITLE = "global options (before or after the command)"


@frozen
class GlobalOption:
    """One global option: its flags, where it lands (``dest``), its top-level default and argparse settings."""

    flags: tuple[str, ...]
    dest: str
    default: Any
    kwargs: dict[str, Any] = field(default_factory=dict)
    sub_help: str | None = None
    """The help on a subcommand that does not define the option itself (None: the top's help)."""


GLOBAL_OPTIONS: tuple[GlobalOption, ...] = (
    GlobalOption(("--config", "-c"), "config", None, {"metavar": "PATH", "help": CONFIG_OPTION_HELP}),
    GlobalOption(("--json",), "json", False,
                 {"action": "store_true",
                  "help": 'JSON for scripts: the result on stdout, an error as one {"error": {...}} line on stderr'},
                 sub_help='an error as one {"error": {...}} line on stderr (this command prints no JSON result)'),
    GlobalOption(("-q", "--quiet"), "quiet", False,
                 {"action": "store_true",
                  "help": "results and errors only: no progress, notes or hints; lists print only ids or names"}),
    GlobalOption(("-v", "--verbose"), "verbose", 0,
                 {"action": "count",
                  "help": "more detail (repeatable): -v info logging and the traceback of an internal error, "
                          "-vv debug logging"}),
    GlobalOption(("--log-level",), "log_level", None,
                 {"metavar": "LEVEL", "type": str.lower, "choices": LOG_LEVELS,
                  "help": f"log level: {', '.join(LOG_LEVELS)} (default {CLI_LOG_LEVEL}; "
                          "`edgeorch daemon`: the config's [daemon] log_level)"}),
)

VALUE_FLAGS = frozenset(flag for opt in GLOBAL_OPTIONS if opt.kwargs.get("action") not in ("store_true", "count")
                        for flag in opt.flags)
"""The global options that take the next word as their value (``--config PATH``): how the command word is found."""


def finish_parser(parser: argparse.ArgumentParser) -> None:
    """Give ``parser`` and every subcommand under it the global options and the exit codes in ``--help``.

    Call it once, after every subcommand (the kernels' too) is added.
    Raises ``ValueError`` when a subcommand defines a global option's flag
    with another meaning (a different ``dest`` or action): a bug in that command.
    """
    parser.value_flags = VALUE_FLAGS  # type: ignore[attr-defined]  # (a Parser: the command words it reads)
    for path, p in walk(parser):
        group = None
        for opt in GLOBAL_OPTIONS:
            own = _own_action(p, opt)
            if own is not None:
                if path:
                    own.default = argparse.SUPPRESS
                continue
            group = group or p.add_argument_group(GROUP_TITLE)
            kwargs = dict(opt.kwargs)
            dest, default = opt.dest, opt.default
            if path:
                default = argparse.SUPPRESS
                if opt.sub_help:
                    kwargs["help"] = opt.sub_help
                if kwargs.get("action") == "count":
                    dest = f"_{opt.dest}_{len(path)}"  # summed by finish_args
            group.add_argument(*opt.flags, dest=dest, default=default, **kwargs)
        p.epilog = (p.epilog.rstrip() + "\n\n" if p.epilog else "") + exit_codes_text()


def _own_action(parser: argparse.ArgumentParser, opt: GlobalOption) -> argparse.Action | None:
    """The action of ``parser`` that already answers to one of ``opt``'s flags, checked to mean the same."""
    for flag in opt.flags:
        action = parser._option_string_actions.get(flag)
        if action is not None:
            if action.dest != opt.dest or type(action) is not type(_reference_action(opt)):
                raise ValueError(f"{parser.prog}: {flag} is a global option; the command may not give it "
                                 f"another meaning (dest {action.dest!r})")
            return action
    return None


def _reference_action(opt: GlobalOption) -> argparse.Action:
    """An action built from ``opt`` alone, to compare a command's own copy against (built once per option)."""
    action = _REFERENCE_ACTIONS.get(opt.flags)
    if action is None:
        probe = argparse.ArgumentParser(add_help=False, formatter_class=LineFormatter)  # LineFormatter: no shutil
        action = _REFERENCE_ACTIONS[opt.flags] = probe.add_argument(*opt.flags, dest=opt.dest, **opt.kwargs)
    return action


_REFERENCE_ACTIONS: dict[tuple[str, ...], argparse.Action] = {}


def finish_args(args: argparse.Namespace) -> argparse.Namespace:
    """The parsed global options made whole: ``-v`` counted over every level; ``-q`` with ``-v`` refused.

    Raises :class:`~edgeorch.errors.UsageError` (exit 2) for ``-q`` together with ``-v``.
    """
    for key in [k for k in vars(args) if k.startswith("_verbose_")]:
        args.verbose += getattr(args, key)
        delattr(args, key)
    if args.quiet and args.verbose:
        raise UsageError("cannot be given together", field="-q/-v",
                         hint="quiet (-q) and verbose (-v) contradict each other: give one")
    return args


def verbosity(args: argparse.Namespace) -> int:
    """Steps towards more detail: the number of ``-v``, or -1 for ``-q``."""
    return args.verbose - (1 if args.quiet else 0)


def cli_log_level(args: argparse.Namespace) -> str:
    """The CLI's log level: ``--log-level``, else :data:`CLI_LOG_LEVEL` moved by ``-v``/``-q``."""
    return args.log_level or shift_log_level(CLI_LOG_LEVEL, verbosity(args))
