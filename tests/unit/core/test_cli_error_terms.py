"""Errors name the option a person typed (--to, --limit/-n), not the daemon op's argument (args.to)."""

from __future__ import annotations

from edgeorch.cli.failures import in_cli_terms
from edgeorch.errors import error_document
from edgeorch.cli.main import build_parser
from edgeorch.control.protocol import error_from_dict
from edgeorch.errors import UsageError


def _remote(field: str) -> UsageError:
    err = error_from_dict({"code": "usage", "message": f"{field}: is out of range (found -5); expected 1..10000",
                           "field": field, "value": -5, "expected": "1..10000"})
    assert isinstance(err, UsageError)
    return err


def test_a_daemon_error_about_an_op_argument_names_the_commands_option() -> None:
    parser = build_parser()
    err = in_cli_terms(_remote("args.limit"), parser, parser.parse_args(["runs", "-n", "-5"]))
    assert err.render().startswith("--limit/-n: is out of range") or err.render().startswith("-n/--limit: is out")
    doc = error_document(err)["error"]
    assert doc["field"] in ("--limit/-n", "-n/--limit") and doc["message"] == err.message


def test_a_local_error_of_a_group_action_names_its_option_and_others_are_kept() -> None:
    parser = build_parser()
    args = parser.parse_args(["models", "rollback", "house_prices", "--to", "1"])
    err = in_cli_terms(UsageError("is not a version number", field="args.to", value=0), parser, args)
    assert err.field == "--to" and str(err).startswith("--to: ")
    kept = in_cli_terms(UsageError("bad", field="args.nothing_like_it"), parser, args)
    assert kept.field == "args.nothing_like_it"
    plain = in_cli_terms(UsageError("bad", field="epochs"), parser, args)
    assert plain.field == "epochs"


def test_the_value_is_said_once_not_again_when_the_message_already_quotes_it() -> None:
    from edgeorch.errors import NotFoundError

    quoted = NotFoundError("no pipeline named 'nosuch'", value="nosuch", expected="one of fan")
    assert quoted.render() == "no pipeline named 'nosuch'; expected one of fan"
    plain = UsageError("has an unknown value", field="daemon.log_level", value="chatty")
    assert plain.render() == "daemon.log_level: has an unknown value (found 'chatty')"
    assert error_document(quoted)["error"]["value"] == "nosuch"  # scripts still get it as a field
    assert NotFoundError("task a has no attempt 7", value=7).render() == "task a has no attempt 7"
    # A number inside another is not the value said: it is given.
    assert UsageError("must be at least 10", field="--n", value=1).render() == "--n: must be at least 10 (found 1)"


def test_a_reason_kept_in_a_record_is_one_line_with_its_hint():
    """An input's 'not started: ...' reason held the hint's line break: the daemon's log line showed a literal
    '\\n  hint' and a table cell broke."""
    from edgeorch.errors import UsageError

    err = UsageError("is out of range", field="epochs", value=0, expected="1..1000", hint="edgeorch run -p epochs=10")
    assert "\n" in err.render()
    assert err.one_line() == ("epochs: is out of range (found 0); expected 1..1000; hint: edgeorch run -p epochs=10")


def test_a_daemon_error_about_a_param_names_it_as_the_person_typed_it() -> None:
    """Through a daemon `run p -p secs=abc` said `params secs: ...`; without one `-p secs: ...`: the same error."""
    parser = build_parser()
    err = error_from_dict({"code": "usage", "message": "params secs: parameter secs is not an integer (found 'abc')",
                           "field": "params secs", "value": "abc"})
    named = in_cli_terms(err, parser, parser.parse_args(["run", "slow", "-p", "secs=abc"]))
    assert named.render() == "-p secs: parameter secs is not an integer (found 'abc')"
    assert error_document(named)["error"]["field"] == "-p secs"


def test_a_required_param_left_out_is_named_as_the_option_that_sets_it() -> None:
    """`run p` through a daemon, its required param not given: `pipeline p: params n: ... is required`; without a
    daemon `-p n: ...`. The command takes -p even when none was typed."""
    parser = build_parser()
    err = error_from_dict({"code": "usage", "message": "pipeline p: params n: parameter n is required; expected -p n=<int>",
                           "pipeline": "p", "field": "params n"})
    named = in_cli_terms(err, parser, parser.parse_args(["run", "p"]))
    assert named.render() == "pipeline p: -p n: parameter n is required; expected -p n=<int>"
    status = error_from_dict({"code": "usage", "message": "params n: x", "field": "params n"})
    assert in_cli_terms(status, parser, parser.parse_args(["status"])).render() == "params n: x"


def test_a_field_added_for_scripts_leaves_the_text_a_person_reads_as_it_was() -> None:
    """The daemon went away mid-run: the run id is the `--json` error's field/value, and the message stays
    "... closed the connection" (it read "run_id: ... (found 52)")."""
    from edgeorch.control.protocol import BadResponse

    err = BadResponse("the daemon at /s closed the connection without answering")
    err.rendered = err.render()
    err.field, err.value = "run_id", 52
    doc = error_document(err)["error"]
    assert (doc["field"], doc["value"]) == ("run_id", 52)
    assert doc["message"] == "the daemon at /s closed the connection without answering" == err.render()


def test_a_field_holding_what_was_given_is_cut_as_a_value_is() -> None:
    """`models observe toy champion "$(python -c 'print("x"*100000)')=1"` printed an error line of ~100 KB: the
    metric's name is in the field (``champion.xxxx...``)."""
    from edgeorch.errors import SHOWN_MAX, UsageError

    name = "x" * 100_000
    err = UsageError("is not a metric of model toy", field=f"champion.{name}", value=name)
    line = err.render()
    assert len(line) < 3 * SHOWN_MAX and "(100,009 characters)" in line and "(100,002 characters)" in line
