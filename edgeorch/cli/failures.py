"""How a failure reaches the user: one message on stderr, or one JSON line with ``--json``; and its exit code.

With ``--json`` every error, a usage error argparse found included, is the
last line of stderr, one object::

  {"error": {"code": "not_found", "message": "...", "file": null, "pipeline": null, "field": null,
             "value": 7, "expected": null, "hint": null, "line": null, "column": null, "exit_code": 3}}

Every key of :data:`~edgeorch.errors.ERROR_KEYS` is always there (null when it does not
apply). The body is :meth:`~edgeorch.errors.EdgeorchError.to_dict`, the
control protocol's error object, so an error the daemon sent keeps the
fields it had there; ``message`` is the whole human text (field, value,
hint), as the protocol sends it. Only ``exit_code`` is the CLI's own.

An exception that is not an ``EdgeorchError`` is a bug: one line saying so
(exit 70), and its traceback with ``-v``.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from typing import Any, Sequence

from ..errors import EdgeorchError, error_document
from .exits import EXIT_INTERNAL

def wants_json(argv: Sequence[str]) -> bool:
    """True when ``argv`` asks for JSON: ``--json`` (or an abbreviation argparse accepts) before any ``--``.

    For errors found before the arguments are parsed (argparse's own), when
    the parsed ``args.json`` is not known yet.
    """
    for token in argv:
        if token == "--":
            return False
        if len(token) >= 3 and "--json".startswith(token):
            return True
    return False


def report_error(err: EdgeorchError, *, json_out: bool, quiet: bool = False) -> int:
    """Print ``err`` on stderr (text, or its :func:`error_document` on one line) and return its exit code.

    A usage error argparse found is printed as argparse always printed it:
    the command's usage line, then ``edgeorch ...: error: ...``.
    """
    from .parsing import ParserError

    if json_out:
        _print_json_line(error_document(err))
    elif isinstance(err, ParserError):
        sys.stderr.write(err.usage)
        print(f"{err.prog}: error: {err.argparse_message}", file=sys.stderr)
    else:
        text = err.render()
        if quiet:  # -q: "results and errors only: no progress, notes or hints" (--json keeps its hint field)
            text = text.split("\n  hint: ", 1)[0]
        # An error can quote what someone else wrote (a pause's reason, a file's name): no escape code of theirs
        # reaches the terminal. The lines the error itself has (its hint, a list of problems) stay lines.
        from ..textui import printable

        print("edgeorch: error: " + "\n".join(printable(line) for line in text.split("\n")), file=sys.stderr)
    return err.exit_code


def _renamed(err: EdgeorchError, detail: Any, field: str, name: str) -> EdgeorchError:
    """``err`` with its field ``field`` named ``name`` (the daemon's text, which names it first, too)."""
    err.field = name
    if isinstance(detail, dict):
        detail["field"] = name
        err.message = err.message.replace(f"{field}: ", f"{name}: ", 1)  # after a file or pipeline, if any
        detail["message"] = err.message
        if err.rendered is not None:
            err.rendered = err.message
    err.args = (err.render(),)
    return err


def in_cli_terms(err: EdgeorchError, parser: argparse.ArgumentParser, args: argparse.Namespace) -> EdgeorchError:
    """``err`` with a daemon op's argument name (field ``args.to``) replaced by the command's own option.

    The daemon names the protocol's fields (right for a socket client); a person typed ``--to`` or
    ``-n``, so that is what the error names. A field no option of the command matches is left as it is.
    """
    detail = getattr(err, "detail", None)  # an error the daemon sent: its message is rendered already
    field = err.field if err.field is not None else (detail.get("field") if isinstance(detail, dict) else None)
    if isinstance(field, str) and field.startswith("params ") and hasattr(args, "param"):
        # A param of a command that takes `-p NAME=VALUE`, given or required (the daemon says `params NAME`, as
        # without one it says `-p NAME`: the same error either way).
        return _renamed(err, detail, field, "-p " + field.removeprefix("params "))
    if not (isinstance(field, str) and field.startswith("args.")):
        return err
    dest = field.removeprefix("args.")
    command = parser
    for level in ("command", "action"):
        sub = next((a for a in command._actions if isinstance(a, argparse._SubParsersAction)), None)
        name = getattr(args, level, None)
        if sub is None or name not in sub.choices:
            break
        command = sub.choices[name]
    for action in command._actions:
        if action.dest == dest and not isinstance(action, argparse._SubParsersAction):
            name = "/".join(action.option_strings) if action.option_strings else str(action.metavar or dest)
            return _renamed(err, detail, field, name)
    return err


def report_file_error(exc: OSError, *, json_out: bool, verbose: bool) -> int:
    """An ``OSError`` on a named file (a name too long, no such folder, a full disk, no permission: a file a
    person named, or the file system under it, refused) said as the shell says it, ``PATH: File name too
    long``, never as a bug: exit 1, or 77 when permission was denied; ``verbose`` adds the traceback."""
    if verbose:
        traceback.print_exception(exc, file=sys.stderr)
    err = EdgeorchError(exc.strerror or type(exc).__name__, file=os.fsdecode(exc.filename))
    if isinstance(exc, PermissionError):
        err.exit_code = 77
    return report_error(err, json_out=json_out)


def report_bug(exc: BaseException, *, json_out: bool, verbose: bool) -> int:
    """Print an unexpected exception as the bug it is (its traceback only with ``verbose``); exit code 70."""
    if verbose:
        traceback.print_exception(exc, file=sys.stderr)
    what = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return report_error(InternalBug(f"internal error (a bug, please report it): {what}",
                                    hint=None if verbose else "run the command again with -v to see the traceback"),
                        json_out=json_out)


class InternalBug(EdgeorchError):
    """What the CLI reports for an exception that is not an ``EdgeorchError``: a bug, exit 70."""

    code = "internal"
    exit_code = EXIT_INTERNAL


def _print_json_line(doc: dict[str, Any]) -> None:
    from ..textui import dumps

    print(dumps(doc, indent=None), file=sys.stderr, flush=True)
