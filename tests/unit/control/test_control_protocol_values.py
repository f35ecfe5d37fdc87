"""Every request line maps to exactly one well-formed reply (issue 9, item 25), at the protocol level."""

from __future__ import annotations

import json
import math

from hypothesis import given, settings
from hypothesis import strategies as st

from edgeorch.control import protocol as P
from edgeorch.errors import UsageError


def parse_error(line: str | bytes) -> P.RequestError:
    try:
        P.parse_request(line)
    except P.RequestError as exc:
        return exc
    raise AssertionError(f"{line!r} was accepted")


def test_an_id_with_a_lone_surrogate_is_a_bad_request_answered_with_a_null_id() -> None:
    exc = parse_error('{"v":1,"id":"a\\ud800","op":"ping"}')
    assert exc.fatal and exc.id is None and exc.error.code == "bad_request"
    reply = json.loads(P.encode_error(exc.id, exc.error))
    assert reply["id"] is None and reply["error"]["field"] == "id"


def test_nan_and_infinity_are_refused_anywhere_and_the_refusal_carries_the_id_when_it_can_be_read() -> None:
    for line, rid in (('{"v":1,"id":NaN,"op":"ping"}', None), ('{"v":1,"id":1,"op":"ping","args":{"x":Infinity}}', 1),
                      ('{"v":1,"id":"r","op":"ping","args":{"x":1e999}}', "r"), ('{"v":1,"id":true,"x":NaN}', None)):
        exc = parse_error(line)
        assert exc.error.code == "bad_request" and exc.id == rid, (line, exc.id)
        assert json.loads(P.encode_error(exc.id, exc.error))["id"] == rid  # the reply itself is JSON


def test_a_30_digit_integer_argument_is_a_usage_error_and_the_connection_stays() -> None:
    exc = parse_error('{"v":1,"id":4,"op":"runs.show","args":{"run_id":123456789012345678901234567890}}')
    assert isinstance(exc.error, UsageError) and not exc.fatal and exc.id == 4
    assert exc.error.field == "args.run_id"


def test_a_lone_surrogate_in_args_keeps_the_id() -> None:
    exc = parse_error('{"v":1,"id":"r1","op":"echo","args":{"k":["\\udc80"]}}')
    assert exc.id == "r1" and exc.error.field == "args.k[0]"


def test_encode_error_never_raises_on_values_json_cannot_carry() -> None:
    err = UsageError("bad \udc80 value", value=float("nan"), field="x\ud800")
    doc = json.loads(P.encode_error("ok-id", err))
    assert doc["id"] == "ok-id" and doc["ok"] is False and "bad" in doc["error"]["message"]
    assert json.loads(P.encode_error(float("nan"), err))["id"] is None  # type: ignore[arg-type]


JSON_LEAVES = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=10**18, max_value=10**40),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8),
    st.sampled_from(["\ud800", "a\udfff", "\udc80x"]),
)
JSON_VALUES = st.recursive(JSON_LEAVES, lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=5), kids, max_size=3), max_leaves=8)
REQUEST_DOCS = st.fixed_dictionaries(
    {"v": st.sampled_from([1, 1, 1, 2, "1"]), "id": JSON_LEAVES, "op": st.one_of(st.text(max_size=10), JSON_LEAVES)},
    optional={"args": st.one_of(st.dictionaries(st.text(max_size=6), JSON_VALUES, max_size=4), JSON_LEAVES),
              "extra": JSON_LEAVES},
)


def valid_id(value: object) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        return False
    if isinstance(value, int):
        return P.INT_MIN <= value <= P.INT_MAX
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


@settings(max_examples=400, deadline=None)
@given(st.one_of(REQUEST_DOCS.map(lambda d: json.dumps(d)), st.binary(max_size=60).map(lambda b: b.decode("latin-1"))))
def test_any_line_parses_or_gives_an_encodable_error_echoing_a_valid_id(line: str) -> None:
    try:
        req = P.parse_request(line)
    except P.RequestError as exc:
        reply = json.loads(P.encode_error(exc.id, exc.error))
        assert reply["ok"] is False and isinstance(reply["error"]["code"], str)
        assert exc.id is None or valid_id(exc.id)
        return
    assert valid_id(req.id)
    json.loads(P.encode(P.ok(req.id, req.args)))  # whatever was accepted can be echoed back
    assert not any(isinstance(v, float) and not math.isfinite(v) for v in req.args.values())


def test_a_nul_character_in_args_is_a_usage_error_and_the_connection_stays() -> None:
    """Found by a tester: `datasets.add` with a path holding "\\u0000" got no reply at all (the connection
    closed, "embedded null byte" in the daemon's log); `baselines.set` and `pipelines.validate` answered
    `internal`. No path, name or text of edgeorch's can hold one: refused where every request is parsed."""
    for line, field in (('{"v":1,"id":7,"op":"datasets.add","args":{"name":"x","path":"/x\\u0000y"}}', "args.path"),
                        ('{"v":1,"id":7,"op":"pipelines.validate","args":{"files":["a\\u0000"]}}', "args.files[0]"),
                        ('{"v":1,"id":7,"op":"echo","args":{"k\\u0000":1}}', "args.k\x00")):
        exc = parse_error(line)
        assert isinstance(exc.error, UsageError) and not exc.fatal and exc.id == 7, line
        assert exc.error.field == field and "NUL" in exc.error.message
        assert json.loads(P.encode_error(exc.id, exc.error))["id"] == 7
    exc = parse_error('{"v":1,"id":"a\\u0000","op":"ping"}')  # even in the id: refused, the id carried back
    assert not exc.fatal and exc.id == "a\x00" and exc.error.field == "id"


def test_bytes_that_are_not_utf8_are_said_so_not_decoded_as_utf16() -> None:
    """Found by a tester: b"\\xff\\xfe{}" was answered with a 'utf-16-le' codec message (json.loads guesses an
    encoding from the first bytes); the protocol is UTF-8 only."""
    exc = parse_error(b"\xff\xfe{}\n")
    assert exc.error.code == "bad_request" and exc.error.message == "not UTF-8: byte 1 is 0xff"
    assert "utf-16" not in P.encode_error(exc.id, exc.error).decode()
