"""The wire format: request parsing, encoding, error mapping."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgeorch.control import protocol as P
from edgeorch.errors import ConflictError, EdgeorchError, NotFoundError, UsageError


def test_parse_request_with_args() -> None:
    r = P.parse_request(b'{"v":1,"id":7,"op":"trigger","args":{"pipeline":"p"}}\n')
    assert r == P.Request(id=7, op="trigger", args={"pipeline": "p"})


@pytest.mark.parametrize("args", ["", ',"args":null', ',"args":{}'])
def test_args_may_be_left_out(args: str) -> None:
    assert P.parse_request(f'{{"v":1,"id":"x","op":"ping"{args}}}').args == {}


@pytest.mark.parametrize(
    ("line", "cls", "rid"),
    [
        (b"nope", P.BadRequest, None),
        (b"\xff\xfe", P.BadRequest, None),
        (b"[]", P.BadRequest, None),
        (b"[" * 100000 + b"]" * 100000, P.BadRequest, None),
        (b'{"v":1,"op":"ping"}', P.BadRequest, None),
        (b'{"v":1,"id":true,"op":"ping"}', P.BadRequest, None),
        (b'{"v":1,"id":1.5,"op":"ping"}', P.BadRequest, None),
        (b'{"v":1,"id":1}', P.BadRequest, 1),
        (b'{"v":1,"id":1,"op":""}', P.BadRequest, 1),
        (b'{"v":1,"id":1,"op":"ping","args":"x"}', P.BadRequest, 1),
        (b'{"v":1,"id":1,"op":"ping","extra":1}', P.BadRequest, 1),
        (b'{"id":1,"op":"ping"}', P.UnsupportedVersion, 1),
        (b'{"v":"1","id":1,"op":"ping"}', P.UnsupportedVersion, 1),
        (b'{"v":2,"id":1,"op":"ping"}', P.UnsupportedVersion, 1),
    ],
)
def test_bad_requests_are_rejected_with_code_and_id(line: bytes, cls: type, rid: object) -> None:
    with pytest.raises(P.RequestError) as info:
        P.parse_request(line)
    assert type(info.value.error) is cls
    assert info.value.id == rid


def test_encode_is_one_compact_line() -> None:
    data = P.encode(P.ok(1, {"path": Path("/x"), "tags": {"b", "a"}, "text": "é\nx"}))
    assert data.endswith(b"\n") and data.count(b"\n") == 1
    assert json.loads(data) == {"id": 1, "ok": True, "result": {"path": "/x", "tags": ["a", "b"], "text": "é\nx"}}


def test_encode_refuses_non_json() -> None:
    """(A NaN is sent as null: see the test of that below.)"""
    with pytest.raises(TypeError):
        P.encode(P.ok(1, {"x": object()}))


def test_error_response_carries_the_handlers_code_and_fields() -> None:
    err = UsageError("bad param", field="params.lr", value="x", expected="a number")
    doc = P.error(3, err)
    assert doc["id"] == 3 and doc["ok"] is False
    assert doc["error"]["code"] == "usage"
    assert doc["error"]["field"] == "params.lr"
    assert doc["error"]["message"] == err.render()


def test_end_message() -> None:
    assert P.end(4) == {"id": 4, "ok": True, "end": True}


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        ("not_found", NotFoundError),
        ("conflict", ConflictError),
        ("permission_denied", P.PermissionDenied),
        ("too_large", P.TooLarge),
        ("internal", P.InternalError),
    ],
)
def test_error_codes_map_to_classes(code: str, cls: type) -> None:
    err = P.error_from_dict({"code": code, "message": "run 9: gone"})
    assert type(err) is cls and err.code == code
    assert str(err) == "run 9: gone"  # rendered once, by the server
    assert err.detail == {"code": code, "message": "run 9: gone"}  # type: ignore[attr-defined]


def test_unknown_code_keeps_its_code() -> None:
    err = P.error_from_dict({"code": "gpu_on_fire", "message": "hot"})
    assert isinstance(err, P.RemoteError) and isinstance(err, EdgeorchError)
    assert err.code == "gpu_on_fire" and str(err) == "hot"


def test_error_without_body_is_a_bad_response() -> None:
    assert isinstance(P.error_from_dict(None), P.BadResponse)


def test_round_trip_through_the_wire_keeps_class_and_message() -> None:
    original = NotFoundError("no such run", field="run", value=12)
    body = json.loads(P.encode(P.error(1, original)))["error"]
    back = P.error_from_dict(body)
    assert isinstance(back, NotFoundError) and str(back) == str(original)


def test_a_rebuilt_error_keeps_the_daemons_fields_for_a_script_and_its_text_as_said() -> None:
    """`except NotFoundError as e: e.value` was None for every error the daemon sent (the fields were only in the
    undocumented ``e.detail``); the text must not say the value or the hint twice either."""
    body = {"code": "usage", "message": "params secs: is not an integer (found 'abc'); expected an integer\n  hint: h",
            "field": "params secs", "value": "abc", "expected": "an integer", "hint": "h", "pipeline": "slow"}
    err = P.error_from_dict(body)
    assert isinstance(err, UsageError)
    assert (err.field, err.value, err.expected, err.hint, err.pipeline) == ("params secs", "abc", "an integer", "h",
                                                                             "slow")
    assert str(err) == err.render() == body["message"]
    assert err.to_dict() == body
    assert err.one_line() == body["message"].replace("\n  hint: ", "; hint: ")


def test_an_internal_error_of_the_daemon_exits_70_as_the_clis_own() -> None:
    """`internal error in op 'lineage'` exited 1 (a failed run's code) where `--help` says 70: a bug to report."""
    from edgeorch.control.protocol import InternalError, error_from_dict

    err = error_from_dict({"code": "internal", "message": "internal error in op 'lineage'; details are in the log"})
    assert isinstance(err, InternalError) and err.exit_code == 70


@pytest.mark.parametrize("v", [True, 1.0, "1", 2, None])
def test_only_the_integer_1_is_protocol_version_1(v) -> None:
    """JSON's `true` and `1.0` equal 1 in Python and were taken for version 1."""
    with pytest.raises(P.RequestError) as err:
        P.parse_request(json.dumps({"v": v, "id": 1, "op": "ping"}))
    assert err.value.error.code == "unsupported_version"


def test_a_reply_holding_nan_or_infinity_is_sent_with_null_as_a_commands_json_prints_it() -> None:
    """A run recorded with a ``nan`` param (before such a value was refused) made every reply listing it fail
    with "Out of range float values are not JSON compliant": `edgeorch runs` broke for every user."""
    doc = {"id": 1, "ok": True, "result": {"runs": [{"params": {"rmse": float("nan"), "hi": float("inf")},
                                                     "n": 1.5}, (float("-inf"),)]}}
    assert json.loads(P.encode(doc)) == {"id": 1, "ok": True, "result": {"runs": [
        {"params": {"rmse": None, "hi": None}, "n": 1.5}, [None]]}}
