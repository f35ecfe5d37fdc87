"""What every group of ops shares: the registration row, argument checks, the actor of a peer.

A group is a class whose constructor takes the collaborators its ops use
(store, engine, registry, requests, ...) and whose ``OPS`` table names each op
it serves; :func:`edgeorch.daemon.ops.register` installs the tables on the
control server. Handlers take the request ``args`` and the
:class:`~edgeorch.control.Peer` and return a JSON-ready dict (streaming ops
yield them). They run on the daemon's event loop, so state changes obey the
one-writer rule. Bad arguments raise :class:`UsageError` naming the argument;
unknown ids raise :class:`NotFoundError`; the server turns both into error
responses (see docs/protocol.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from ...errors import UsageError
from ...records import frozen

if TYPE_CHECKING:  # pragma: no cover
    from ...control import Peer


@frozen
class OpSpec:
    """One row of a group's registration table: the op's name, the method serving it, its access and help, and
    ``args``: every argument name its handler reads (none by default).

    ``args`` is the one list of what an op takes: the control server refuses a request naming any other key
    (a ``usage`` error, before the handler runs), so a misspelled ``param`` cannot start a run with the
    default params. A handler that reads an argument must list it here (and a shipped client's key with it).
    """

    name: str
    method: str
    access: Literal["read", "act"]
    help: str
    streaming: bool = False
    args: tuple[str, ...] = ()


LATEST_TIME = 253402300799.0
"""The end of year 9999 (UTC), in Unix seconds: the latest time a date can be written for."""


def actor_of(peer: "Peer") -> str:
    """How a peer is recorded as the actor of what it asked for."""
    return f"{peer.user} (uid {peer.uid})"


def arg(args: dict[str, Any], name: str, kind: type | tuple[type, ...], *, required: bool = True,
        default: Any = None) -> Any:
    """``args[name]`` checked against ``kind`` (a bool is never an int); ``default`` when absent and not required.

    Raises :class:`UsageError` naming ``args.<name>`` when it is missing but required, or of the wrong type.
    """
    if name not in args or args[name] is None:
        if required:
            raise UsageError(f"argument {name!r} is required", field=f"args.{name}")
        return default
    value = args[name]
    if isinstance(value, bool) and kind is not bool and (kind is int or (isinstance(kind, tuple) and bool not in kind)):
        raise UsageError("has the wrong type", field=f"args.{name}", value=value, expected=_kind_name(kind))
    if not isinstance(value, kind):
        raise UsageError("has the wrong type", field=f"args.{name}", value=value, expected=_kind_name(kind))
    return value  # integers are within int64 already: the protocol refuses others (control/protocol.py INT_MAX)


def time_arg(args: dict[str, Any], name: str, *, required: bool = True) -> float | None:
    """``args[name]``, a Unix time (seconds) edgeorch can show and store: 0 to :data:`LATEST_TIME` (the end of
    year 9999). Raises :class:`UsageError` naming ``args.<name>`` otherwise (see :func:`arg`)."""
    value = arg(args, name, (int, float), required=required)
    if value is not None and not 0 <= value <= LATEST_TIME:
        raise UsageError("is out of range", field=f"args.{name}", value=value,
                         expected=f"a Unix time from 0 to {LATEST_TIME:.0f} (the end of year 9999)")
    return None if value is None else float(value)


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {int: "an integer", str: "a string", dict: "an object", bool: "true or false", list: "an array"}
    if isinstance(kind, tuple):
        return " or ".join(names.get(k, k.__name__) for k in kind)
    return names.get(kind, kind.__name__)
