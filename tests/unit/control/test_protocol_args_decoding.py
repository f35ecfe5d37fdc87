"""``bad_request`` and ``usage`` refusals of a request line in edgeorch's terms, not Python's (tester's report,
finding 12): a 5000-digit number named Python's ``sys.set_int_max_str_digits()``, deep nesting "maximum recursion
depth exceeded", a lone surrogate in the id "found 'str'", and a 20-digit id had its type name as ``value``."""

from __future__ import annotations

import json

from edgeorch.control import protocol as P


def refusal(line: str) -> tuple[P.RequestError, dict]:
    try:
        P.parse_request(line)
    except P.RequestError as exc:
        return exc, json.loads(P.encode_error(exc.id, exc.error))
    raise AssertionError(f"{line[:80]!r} was accepted")


def test_a_5000_digit_number_is_described_by_its_length_and_keeps_the_connection() -> None:
    exc, reply = refusal('{"v":1,"id":1,"op":"runs.show","args":{"run_id":' + "9" * 5000 + "}}")
    error = reply["error"]
    assert not exc.fatal and reply["id"] == 1 and error["code"] == "usage" and error["field"] == "args.run_id"
    assert error["message"].startswith("args.run_id: a number with 5000 digits; expected at most 19 digits")
    assert "sys." not in error["message"] and "value" not in error  # not repeated back


def test_deep_nesting_is_said_as_such_whether_or_not_python_could_parse_it() -> None:
    for depth in (150, 100_000):
        line = '{"v":1,"id":2,"op":"ping","args":{"x":' + "[" * depth + "]" * depth + "}}"
        exc, reply = refusal(line)
        assert exc.fatal and reply["error"]["code"] == "bad_request"
        assert reply["error"]["message"].startswith(f"nesting deeper than {P.MAX_NESTING} levels"), depth
        assert "recursion" not in reply["error"]["message"]
    assert refusal('{"v":1,"id":2,"op":"ping","args":{"x":' + "[" * 150 + "]" * 150 + "}}")[1]["id"] == 2
    deep_enough = '{"v":1,"id":3,"op":"ping","args":{"x":' + "[" * 90 + "]" * 90 + "}}"
    assert P.parse_request(deep_enough).id == 3


def test_an_id_with_an_unpaired_surrogate_says_so_and_shows_it() -> None:
    exc, reply = refusal('{"v":1,"id":"\\ud800","op":"ping"}')
    error = reply["error"]
    assert exc.fatal and reply["id"] is None and error["field"] == "id"
    assert error["message"].startswith("id: a string with an unpaired surrogate (found '\\ud800')")
    assert error["value"] == "\\ud800" and "found 'str'" not in error["message"]


def test_an_id_out_of_range_carries_the_id_itself_as_value() -> None:
    exc, reply = refusal('{"v":1,"id":99999999999999999999,"op":"ping"}')
    error = reply["error"]
    assert exc.fatal and error["code"] == "bad_request" and error["field"] == "id"
    assert error["message"].startswith("id: is out of range (found 99999999999999999999)")
    assert error["value"] == 99999999999999999999
    exc, reply = refusal('{"v":1,"id":' + "1" * 300 + ',"op":"ping"}')
    assert reply["error"]["message"].startswith("id: a number with 300 digits")


def test_an_id_of_another_type_names_the_type_in_json_terms() -> None:
    assert refusal('{"v":1,"op":"ping"}')[1]["error"]["message"].startswith("id: is missing")
    assert refusal('{"v":1,"id":1.5,"op":"ping"}')[1]["error"]["value"] == 1.5
    assert refusal('{"v":1,"id":[1],"op":"ping"}')[1]["error"]["message"].startswith("id: is an array")
