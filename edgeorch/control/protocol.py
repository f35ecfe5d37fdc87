"""The control protocol: framing, message shapes and error codes.

Framing
    One JSON object per line, UTF-8, each way, ``\\n`` terminated. A line may
    hold at most ``max_line_bytes`` bytes (config ``control.max_line_bytes``,
    1 MiB by default); the newline is not counted.

Request
    ``{"v": 1, "id": 7, "op": "trigger", "args": {...}}``. ``v`` must equal
    :data:`PROTOCOL_VERSION`; ``id`` is an integer or a string chosen by the
    client and echoed in every response to this request; ``args`` is an object
    and may be left out (``{}``).

Values
    Numbers must be finite (``NaN``/``Infinity`` are refused, though
    Python's parser would accept them) and integers must fit in 64 bits
    (signed); strings must be valid Unicode (no lone surrogates, which
    ``\\ud800`` escapes could smuggle in); arrays and objects nest at most
    :data:`MAX_NESTING` levels. A bad ``id``, a string that is not Unicode or
    deeper nesting is a ``bad_request`` (the connection closes); an integer
    out of range in ``args`` is a ``usage`` error naming the argument, and the
    connection stays open. Each refusal is said in the protocol's terms, never
    Python's (its digit limit, its recursion limit). Every request line gets
    exactly one reply line (a streaming op: items, then its end or error).

Responses
    ``{"id": 7, "ok": true, "result": {...}}`` or
    ``{"id": 7, "ok": false, "error": {"code": "not_found", "message": "..."}}``.
    A streaming op sends any number of ``{"id": 7, "ok": true, "result": ...}``
    and then ``{"id": 7, "ok": true, "end": true}``, or an error response,
    which also ends the stream. Responses to different requests on one
    connection may interleave; ``id`` says which is which.

This module is pure (no I/O) so the server, the client and the tests share
one definition of every shape and code.
"""

from __future__ import annotations

import json
from dataclasses import field
from pathlib import PurePath
from typing import Any, Final, TypeVar

from ..errors import (
    ConfigError,
    ConflictError,
    DataError,
    EdgeorchError,
    NotFoundError,
    PipelineError,
    StateError,
    TaskViolation,
    UnsatisfiableError,
    UsageError,
)
from ..records import frozen

PROTOCOL_VERSION: Final = 1
"""Bumped on any incompatible change of a message shape."""

DEFAULT_MAX_LINE_BYTES: Final = 1024 * 1024
MAX_RESPONSE_BYTES: Final = 256 * 1024 * 1024
"""A response line longer than this is treated as a broken daemon (clients' side)."""
MAX_INFLIGHT_PER_CONNECTION: Final = 32
"""Requests one connection may have unanswered at once; more get ``busy``."""

RequestId = int | str | None

# Error codes the control layer itself produces. Handlers add their own through
# EdgeorchError.code (not_found, conflict, usage, state_error, ...), passed
# through unchanged.
BAD_REQUEST: Final = "bad_request"
UNKNOWN_OP: Final = "unknown_op"
PERMISSION_DENIED: Final = "permission_denied"
NOT_FOUND: Final = "not_found"
CONFLICT: Final = "conflict"
TOO_LARGE: Final = "too_large"
UNSUPPORTED_VERSION: Final = "unsupported_version"
INTERNAL: Final = "internal"
BUSY: Final = "busy"
TIMEOUT: Final = "timeout"

class ProtocolError(EdgeorchError):
    """Base of the errors defined by the control layer."""


class BadRequest(ProtocolError, ValueError):
    """The line is not a valid request (not JSON, not an object, bad field)."""

    code = BAD_REQUEST


class UnknownOp(ProtocolError, LookupError):
    """No handler is registered under the requested op."""

    code = UNKNOWN_OP

    def __str__(self) -> str:  # LookupError would add quotes
        return self.render()


class PermissionDenied(ProtocolError, PermissionError):
    """The peer's user may not do this (see ``control.readers``/``operators``)."""

    code = PERMISSION_DENIED
    exit_code = 77  # EX_NOPERM from sysexits.h


class TooLarge(ProtocolError, ValueError):
    """A line exceeded the size cap."""

    code = TOO_LARGE


class UnsupportedVersion(ProtocolError, ValueError):
    """The request's ``v`` is not :data:`PROTOCOL_VERSION`."""

    code = UNSUPPORTED_VERSION


class Busy(ProtocolError):
    """Too many clients, or too many requests in flight on one connection."""

    code = BUSY
    exit_code = 75  # EX_TEMPFAIL


class Timeout(ProtocolError, TimeoutError):
    """The peer was silent for too long (idle or half-open connection)."""

    code = TIMEOUT
    exit_code = 75


class InternalError(ProtocolError):
    """A bug in a handler; details are in the daemon's log, not on the wire. Exit 70, as a bug of the CLI's own
    (``--help``: "internal error: a bug, please report it"); it exited 1, what a failed run exits."""

    code = INTERNAL
    exit_code = 70


class BadResponse(ProtocolError):
    """The client got something that is not a valid response (or nothing)."""

    code = "bad_response"


class ConnectionClosed(BadResponse):
    """The daemon closed the connection without answering: it stopped, crashed or restarted meanwhile. What was
    asked may or may not have happened (a run it was following goes on when the daemon is back): exit 75, "try
    again" (look first), never 1, which a script reads as "the run failed"."""

    code = "connection_closed"
    exit_code = 75


class RemoteError(ProtocolError):
    """An error whose code this client does not know; ``code`` is set per instance."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


_KNOWN: dict[str, type[EdgeorchError]] = {
    cls.code: cls
    for cls in (
        BadRequest,
        UnknownOp,
        PermissionDenied,
        TooLarge,
        UnsupportedVersion,
        Busy,
        Timeout,
        InternalError,
        NotFoundError,
        ConflictError,
        UsageError,
        StateError,
        ConfigError,
        PipelineError,
        DataError,
        TaskViolation,
        UnsatisfiableError,
    )
}


@frozen
class Request:
    """A parsed, well-formed request (the op may still be unknown)."""

    id: RequestId
    op: str
    args: dict[str, Any] = field(default_factory=dict)
    v: int = PROTOCOL_VERSION


INT_MIN: Final = -(2**63)
INT_MAX: Final = 2**63 - 1
"""Integers a request may carry (SQLite's INTEGER, and what other languages' JSON readers keep exact)."""
INT_EXPECTED: Final = f"an integer in {INT_MIN}..{INT_MAX}"
MAX_READ_DIGITS: Final = 40
"""An integer with more digits is not converted at all (Python's own limit, 4300 digits, made json.loads fail
with "use sys.set_int_max_str_digits()"; converting is quadratic): it is refused as "a number with N digits"."""
MAX_NESTING: Final = 100
"""How deep arrays and objects may nest in a request. Deeper is refused as "nesting deeper than 100 levels",
whether Python's parser could read it or ran out of stack ("maximum recursion depth exceeded")."""


_E = TypeVar("_E", bound=EdgeorchError)


@frozen
class _LongNumber:
    """Stands for an integer of more than :data:`MAX_READ_DIGITS` digits in a parsed request (never handed on)."""

    digits: int

    def describe(self) -> str:
        return f"a number with {self.digits} digits"


def _read_int(text: str) -> int | _LongNumber:
    """json's ``parse_int``: the integer, or a :class:`_LongNumber` when it is too long to convert."""
    digits = len(text) - text.startswith("-")
    return int(text) if digits <= MAX_READ_DIGITS else _LongNumber(digits)


class RequestError(Exception):
    """Raised by :func:`parse_request`: ``error`` to send, ``id`` if one was readable.

    ``fatal``: the line broke the stream's contract (the server answers, then
    closes); otherwise only this request is refused.
    """

    def __init__(self, error: EdgeorchError, request_id: RequestId = None, *, fatal: bool = True) -> None:
        super().__init__(str(error))
        self.error = error
        self.id = request_id
        self.fatal = fatal


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _finite_float(text: str) -> float:
    value = float(text)
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def _not_unicode(value: Any) -> bool:
    """True for a string holding a lone surrogate (not encodable as UTF-8)."""
    if not isinstance(value, str):
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _bad_values(doc: Any, prefix: str) -> tuple[str, str, Any] | None:
    """The first ``(kind, field, value)`` in ``doc`` that no reply could carry, or that no path, name or text may
    hold: ``("unicode", f, text)``, ``("range", f, number)`` (an int, or a :class:`_LongNumber`) or
    ``("nul", f, text)``.

    Iterative, so a deeply nested (but parseable) document cannot exhaust the stack.
    """
    stack: list[tuple[Any, str]] = [(doc, prefix)]
    while stack:
        value, where = stack.pop()
        if isinstance(value, dict):
            for key, item in value.items():
                name = f"{where}.{key}" if where else str(key)
                if _not_unicode(key):
                    return "unicode", where or "<key>", key
                if "\x00" in key:
                    return "nul", name, key
                stack.append((item, name))
        elif isinstance(value, list):
            stack.extend((item, f"{where}[{i}]") for i, item in enumerate(value))
        elif _not_unicode(value):
            return "unicode", where, value
        elif isinstance(value, str) and "\x00" in value:
            return "nul", where, value
        elif isinstance(value, _LongNumber) or (
                isinstance(value, int) and not isinstance(value, bool) and not INT_MIN <= value <= INT_MAX):
            return "range", where, value
    return None


def _too_deep(doc: Any) -> bool:
    """True when arrays and objects in ``doc`` nest deeper than :data:`MAX_NESTING` (iterative)."""
    stack: list[tuple[Any, int]] = [(doc, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, (dict, list)):
            if depth > MAX_NESTING:
                return True
            items = value.values() if isinstance(value, dict) else value
            stack.extend((item, depth + 1) for item in items)
    return False


def _range_error(cls: type[_E], where: str, value: Any) -> _E:
    """The refusal (``cls``) of an integer out of range at ``where``: its value when short enough to show, else
    its length (a 5000-digit number is not repeated back)."""
    if isinstance(value, _LongNumber):
        return cls(value.describe(), field=where, expected=f"at most {len(str(INT_MAX))} digits: {INT_EXPECTED}")
    return cls("is out of range", field=where, value=value, expected=INT_EXPECTED)


def _id_error(rid: Any) -> BadRequest | None:
    """Why ``rid`` cannot be a request id, or None (an id holding a NUL is carried back; the request is refused
    later). Each problem in the protocol's terms, the id itself as ``value`` when it can be shown."""
    if isinstance(rid, str):
        if _not_unicode(rid):
            return BadRequest("a string with an unpaired surrogate", field="id", value=rid,
                              expected="a valid Unicode string")
        return None
    if isinstance(rid, _LongNumber) or (isinstance(rid, int) and not isinstance(rid, bool)):
        in_range = isinstance(rid, int) and INT_MIN <= rid <= INT_MAX
        return None if in_range else _range_error(BadRequest, "id", rid)
    if rid is None:
        return BadRequest("is missing", field="id", expected=f"{INT_EXPECTED} or a string")
    expected = f"{INT_EXPECTED} or a string"
    if isinstance(rid, (bool, float)):
        return BadRequest("has the wrong type", field="id", value=rid, expected=expected)
    return BadRequest(f"is {'an array' if isinstance(rid, list) else 'an object'}", field="id", expected=expected)


def _lenient_id(line: bytes | str) -> int | str | None:
    """The ``id`` of a line refused only for a number JSON does not allow (``NaN``, ``Infinity``, ``1e999``),
    read as Python's parser would, so the refusal can still be matched by its client; None otherwise."""
    try:
        doc = json.loads(line, parse_int=_read_int)
    except (ValueError, RecursionError):
        return None
    rid = doc.get("id") if isinstance(doc, dict) else None
    if isinstance(rid, (int, str)) and not isinstance(rid, bool) and _bad_values(rid, "id") is None:
        return rid
    return None


def parse_request(line: bytes | str) -> Request:
    """Parse one line (newline optional) into a :class:`Request`.

    Raises :class:`RequestError` holding a :class:`BadRequest` (not UTF-8, not
    JSON, not an object, bad ``id``/``op``/``args``) or an
    :class:`UnsupportedVersion`; its ``id`` is the request's id when it could
    be read, so the error can still be matched by the client.
    """
    if isinstance(line, (bytes, bytearray)):
        try:  # UTF-8 only: json.loads takes bytes for UTF-16 or -32 by their first bytes ("'utf-16-le' codec ...")
            line = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RequestError(BadRequest(f"not UTF-8: byte {exc.start + 1} is {line[exc.start]:#04x}",
                                          expected="a JSON object in UTF-8, one per line")) from None
    try:
        doc = json.loads(line, parse_constant=_refuse_constant, parse_float=_finite_float, parse_int=_read_int)
    except RecursionError:  # Python's parser ran out of stack: said in the protocol's terms, as a deep one is below
        raise RequestError(BadRequest(f"nesting deeper than {MAX_NESTING} levels",
                                      expected=f"arrays and objects nested at most {MAX_NESTING} deep")) from None
    except ValueError as exc:
        raise RequestError(BadRequest(f"not a JSON line: {_short(exc)}"), _lenient_id(line)) from None
    if not isinstance(doc, dict):
        raise RequestError(BadRequest("a request must be a JSON object", value=type(doc).__name__))
    rid = doc.get("id")
    rid_error = _id_error(rid)
    if rid_error is not None:
        raise RequestError(rid_error)
    assert isinstance(rid, (int, str))
    if _too_deep(doc):
        raise RequestError(BadRequest(f"nesting deeper than {MAX_NESTING} levels",
                                      expected=f"arrays and objects nested at most {MAX_NESTING} deep"), rid)
    bad = _bad_values(doc, "")
    if bad is not None and bad[0] == "unicode":
        raise RequestError(BadRequest("a string with an unpaired surrogate", field=bad[1], value=bad[2],
                                      expected="valid Unicode text"), rid)
    v = doc.get("v")
    if type(v) is not int or v != PROTOCOL_VERSION:  # JSON's true and 1.0 equal 1 in Python: not a version
        raise RequestError(
            UnsupportedVersion(
                "unsupported protocol version", field="v", value=v, expected=str(PROTOCOL_VERSION)
            ),
            rid,
        )
    op = doc.get("op")
    if not isinstance(op, str) or not op:
        raise RequestError(BadRequest("missing op", field="op", value=op, expected="a non-empty string"), rid)
    args = doc.get("args", {})
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise RequestError(BadRequest("args must be an object", field="args", value=type(args).__name__), rid)
    unknown = set(doc) - {"v", "id", "op", "args"}
    if unknown:
        raise RequestError(BadRequest("unknown request field", field=sorted(unknown)[0]), rid)
    if bad is not None and bad[0] == "nul":  # no path, name or text of edgeorch's can hold one (a path with one
        # was an internal error, or no reply at all): this request is refused, the stream is fine
        raise RequestError(UsageError("contains a NUL character", field=bad[1],
                                      expected="text without NUL (\\u0000) characters"), rid, fatal=False)
    if bad is not None:  # an integer out of range: this request is refused, the stream is fine
        raise RequestError(_range_error(UsageError, bad[1], bad[2]), rid, fatal=False)
    return Request(id=rid, op=op, args=args, v=v)


def _short(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) <= 200 else text[:200] + "..."


def _json_default(obj: Any) -> Any:
    # Paths are the one non-JSON type handlers routinely return; anything else
    # is a handler bug and must surface as `internal`, not be stringified.
    if isinstance(obj, PurePath):
        return str(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def encode(doc: dict[str, Any]) -> bytes:
    """One message as a line. A NaN or infinity is sent as null, as a command's own ``--json`` prints it
    (:func:`~edgeorch.textui.finite`: a run recorded with a ``nan`` param failed every ``runs`` listing it, for
    every user, with "internal error"). Raises ``TypeError`` on other non-JSON content."""
    try:
        text = json.dumps(doc, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_json_default)
    except ValueError:  # only a non-finite float: the rare case pays for the walk
        from ..textui import finite

        text = json.dumps(finite(doc), separators=(",", ":"), ensure_ascii=False, allow_nan=False,
                          default=_json_default)
    return (text + "\n").encode()


def request(op: str, args: dict[str, Any] | None = None, request_id: RequestId = 1) -> dict[str, Any]:
    """The request document for ``op`` (what a client sends)."""
    return {"v": PROTOCOL_VERSION, "id": request_id, "op": op, "args": args or {}}


def ok(request_id: RequestId, result: Any) -> dict[str, Any]:
    """A successful response (or one item of a stream)."""
    return {"id": request_id, "ok": True, "result": result}


def end(request_id: RequestId) -> dict[str, Any]:
    """The last message of a stream."""
    return {"id": request_id, "ok": True, "end": True}


def error(request_id: RequestId, err: EdgeorchError) -> dict[str, Any]:
    """An error response; the body is ``err.to_dict()`` (code, message, and any field/hint)."""
    return {"id": request_id, "ok": False, "error": err.to_dict()}


def _plain(value: Any) -> Any:
    """``value`` with every string made valid Unicode and every non-JSON leaf made text."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else repr(value)
    if isinstance(value, dict):
        return {_plain(str(k)): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return _plain(repr(value))


def encode_error(request_id: RequestId, err: EdgeorchError) -> bytes:
    """An error response as a line; never raises.

    An error whose details cannot be sent as they are (a value holding NaN
    or a lone surrogate, an id that is not JSON) is sent with those details
    made plain, so the client always gets its one well-formed answer.
    """
    try:
        return encode(error(request_id, err))
    except (TypeError, ValueError):
        rid = request_id if isinstance(request_id, (int, str)) and _bad_values(request_id, "id") is None else None
        return encode({"id": _plain(rid), "ok": False, "error": _plain(err.to_dict())})


def error_from_dict(body: Any) -> EdgeorchError:
    """Rebuild an exception from an error body (client side).

    Known codes map to their class (``not_found`` -> ``NotFoundError`` ...),
    unknown ones to :class:`RemoteError` carrying the code. The server's
    message is already fully rendered (file, field, hint), so it becomes the
    message as is; the raw body stays available as ``err.detail``.
    """
    if not isinstance(body, dict):
        return BadResponse("error response without an error object", value=body)
    code = body.get("code")
    message = body.get("message")
    if not isinstance(message, str):
        message = f"daemon reported an error ({code})"
    cls = _KNOWN.get(code) if isinstance(code, str) else None
    err: EdgeorchError
    if cls is None:
        err = RemoteError(code if isinstance(code, str) else "error", message)
    else:
        err = cls(message)
    # The fields as the daemon sent them, for a script (`except NotFoundError as e: e.value`); the text stays the
    # daemon's rendering of them (rendered again here, it would say each twice).
    for key in ("file", "pipeline", "field", "value", "expected", "hint", "line", "column"):
        if body.get(key) is not None:
            setattr(err, key, body[key])
    err.rendered = message
    err.detail = body  # type: ignore[attr-defined]
    return err


def decode_response(line: bytes, where: str | PurePath) -> dict[str, Any]:
    """One line a client read from the daemon at ``where`` -> the response document (client side).

    Shared by the synchronous and the asyncio client. Raises
    :class:`BadResponse` when the line is empty (the daemon closed the
    connection without answering), longer than :data:`MAX_RESPONSE_BYTES`,
    not JSON, or not a response object (``ok`` missing or not a boolean).
    """
    if not line:
        raise ConnectionClosed(f"the daemon at {where} closed the connection without answering")
    if len(line) > MAX_RESPONSE_BYTES:
        raise BadResponse(f"response from the daemon at {where} is too large")
    try:
        doc = json.loads(line)
    except ValueError:
        raise BadResponse("the daemon sent a line that is not JSON", value=line[:200].decode("utf-8", "replace")) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("ok"), bool):
        raise BadResponse("the daemon sent something that is not a response", value=str(doc)[:200])
    return doc


def answer_of(doc: dict[str, Any], request_id: RequestId) -> tuple[bool, Any]:
    """``(ended, result)`` of a response document to request ``request_id`` (client side).

    ``ended`` is True for a stream's end marker (``result`` is then None).
    Raises the error an error response carries (:func:`error_from_dict`,
    whatever its id: a connection-level error has none) and
    :class:`BadResponse` for a successful answer to another request.
    """
    if not doc["ok"]:
        raise error_from_dict(doc.get("error"))
    if doc.get("id") != request_id:
        raise BadResponse(f"answer for request {doc.get('id')!r}, expected {request_id!r}")
    return bool(doc.get("end")), doc.get("result")
