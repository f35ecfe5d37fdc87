"""The manual page, edgeorch(1), generated from the parser (``edgeorch man``): roff for ``man -l -``.

Every command with its arguments and options comes from
:func:`~edgeorch.cli.cmdtree.command_tree`, the exit codes from
:data:`~edgeorch.cli.exits.EXIT_CODES`, the config lookup order from
:func:`edgeorch.config.config_candidates`: nothing here repeats what the
parser, the exit-code list or the config module already say, so the page
cannot drift from the program. Pure: text in, text out.
"""

from __future__ import annotations

import argparse

from .. import __version__
from ..config import CONFIG_ENV, SOCKET_NAME, config_candidates
from .cmdtree import Command, Option, command_tree
from .exits import EXIT_CODES, exit_codes_text


def man_page(parser: argparse.ArgumentParser) -> str:
    """edgeorch(1) as roff: NAME, SYNOPSIS, DESCRIPTION, GLOBAL OPTIONS, COMMANDS, EXIT STATUS, ENVIRONMENT, FILES."""
    cmds = command_tree(parser)
    root, commands = cmds[0], cmds[1:]
    out = [f'.TH EDGEORCH 1 "" "edgeorch {__version__}" "User Commands"',
           ".SH NAME", r"edgeorch \- " + _esc(_lower_first(root.description.rstrip("."))),
           ".SH SYNOPSIS", r".B edgeorch", r"[\fIGLOBAL OPTIONS\fR] \fICOMMAND\fR [\fIARGUMENTS\fR]",
           ".SH DESCRIPTION",
           _esc("edgeorch runs pipelines (DAGs of tasks declared in TOML) on one machine, with all state in one "
                "SQLite file. The daemon (edgeorch daemon) holds the state and is driven over a Unix socket; "
                "without a daemon, run, retry and the read-only commands work on the state file directly, and "
                "the commands only a daemon can serve exit with 69. Every command prints tables for people and, "
                "with --json, JSON for scripts; the JSON has the same keys whether or not a daemon runs."),
           ".SH GLOBAL OPTIONS",
           _esc("Accepted before or after the command (edgeorch --json runs and edgeorch runs --json are the same)."),
           *[line for o in root.options if o.is_global for line in _option(o)],
           ".TP", r"\fB\-h\fR, \fB\-\-help\fR", _esc("Print the help of edgeorch or of a command and exit."),
           ".TP", r"\fB\-\-version\fR", _esc("Print the version and exit."),
           ".SH COMMANDS"]
    for cmd in commands:
        out += _command(cmd)
    out += [".SH EXIT STATUS"]
    for code, meaning in EXIT_CODES:
        out += [".TP", f".B {code}", _esc(meaning)]
    out += [".SH ENVIRONMENT",
            ".TP", f".B {CONFIG_ENV}", _esc("The config file, when --config is not given."),
            ".TP", ".B XDG_CONFIG_HOME",
            _esc("Where a per-user config is looked for ($XDG_CONFIG_HOME/edgeorch/config.toml; ~/.config when unset)."),
            ".TP", ".B RUNTIME_DIRECTORY",
            _esc(f"Set by systemd for the daemon: its socket is $RUNTIME_DIRECTORY/{SOCKET_NAME} unless "
                 "[control] socket says otherwise."),
            ".TP", ".B XDG_RUNTIME_DIR",
            _esc(f"With a per-user config, the socket is $XDG_RUNTIME_DIR/edgeorch/{SOCKET_NAME}."),
            ".TP", ".B EDGEORCH_KEEP_WARM",
            _esc("How long the kernel server that profile, drift and fairness leave behind waits for the next "
                 "such command (a duration; 0: none); overrides [kernels] keep_warm."),
            ".TP", ".B NOTIFY_SOCKET",
            _esc("Set by systemd (Type=notify): the daemon reports READY, STATUS and the watchdog on it."),
            ".SH FILES",
            ".TP", ".B config.toml",
            _esc("The config, the first found of: --config PATH, $" + CONFIG_ENV + ", "
                 + ", ".join(how for _, how in config_candidates())
                 + "; else the embedded defaults. Relative paths in it are relative to its folder."),
            ".TP", f".B {SOCKET_NAME}",
            _esc(f"The control socket: [control] socket when set; else $RUNTIME_DIRECTORY/{SOCKET_NAME}; else "
                 f"/run/edgeorch/{SOCKET_NAME} for a config in /etc/edgeorch, "
                 f"$XDG_RUNTIME_DIR/edgeorch/{SOCKET_NAME} for one in $XDG_CONFIG_HOME/edgeorch; "
                 "else the state folder."),
            ".TP", ".B <state dir>/edgeorch.db",
            _esc("The state file (runs, tasks, attempts, artifacts, events), readable with sqlite3."),
            ".TP", ".B <state dir>/runs/",
            _esc("One folder per run: each attempt's output.log, outputs and checkpoints."),
            ".SH SEE ALSO",
            _esc("sqlite3(1), systemctl(1), journalctl(1); the documentation in docs/ of the source tree: "
                 "cli.md (this command, its JSON shapes), pipelines.md, operations.md, protocol.md.")]
    return "\n".join(out) + "\n"


def _command(cmd: Command) -> list[str]:
    synopsis = [rf"\fB{_esc(cmd.name)}\fR", r"[\fIOPTIONS\fR]"]
    for p in cmd.positionals:
        word = rf"\fI{_esc(p.name)}\fR" + ("..." if p.repeat else "")
        synopsis.append(f"[{word}]" if p.optional else word)
    out = [f'.SS "{_esc(cmd.name)}"', ".nf", " ".join(synopsis), ".fi", ".PP", _esc(cmd.description)]
    for p in cmd.positionals:
        out += [".TP", rf"\fI{_esc(p.name)}\fR", _esc(p.help or p.name)]
        if p.values.kind == "choices":
            out.append(_esc("One of: " + ", ".join(p.values.choices) + "."))
    for o in cmd.options:
        if not o.is_global and "--help" not in o.flags:
            out += _option(o)
    extra = cmd.epilog.replace(exit_codes_text(), "").strip()
    if extra:
        out += [".PP", ".nf", *(_esc(line) for line in extra.splitlines()), ".fi"]
    return out


def _option(o: Option) -> list[str]:
    flags = ", ".join(rf"\fB{_esc(f)}\fR" for f in o.flags)
    if o.metavar is not None:
        flags += rf" \fI{_esc(o.metavar)}\fR"
    text = o.help
    if o.values.kind == "choices" and o.metavar is not None and not all(c in text for c in o.values.choices):
        text += (" " if text else "") + "One of: " + ", ".join(o.values.choices) + "."
    return [".TP", flags, _esc(text)]


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def _esc(text: str) -> str:
    """``text`` safe in roff: backslashes and hyphens escaped, no line starting as a request (``.`` or ``'``)."""
    text = text.replace("\\", r"\e").replace("-", r"\-")
    return "\n".join(rf"\&{line}" if line[:1] in (".", "'") else line for line in text.split("\n"))
