"""`edgeorch events` (human lines): one ``key=value`` word per set field, a value with spaces quoted."""

from __future__ import annotations

import shlex

from edgeorch.cli.commands.events import event_fields


def test_a_reason_with_spaces_is_one_quoted_value_and_unset_fields_and_off_flags_are_left_out():
    ev = {"ts": 1.0, "kind": "task", "run_id": 21, "task": "c", "state": "retry_wait", "attempt": 1,
          "exit_code": 7, "reason": "exited with code 7; retry 1 of 2 in 0.2s", "log_truncated": False, "signal": None}
    line = event_fields(ev)
    assert line == 'run_id=21 task=c state=retry_wait attempt=1 exit_code=7 reason="exited with code 7; retry 1 of 2 in 0.2s"'
    words = dict(w.split("=", 1) for w in shlex.split(line))  # a shell (or a human) splits it back the same
    assert words["reason"] == "exited with code 7; retry 1 of 2 in 0.2s"


def test_flags_that_are_on_lists_empty_and_tricky_texts():
    line = event_fields({"kind": "x", "log_truncated": True, "gpus": [0, 1], "note": "", "path": 'a"b=c'})
    assert line == 'log_truncated=true gpus=[0,1] note="" path="a\\"b=c"'
    assert event_fields({"ts": 1.0, "kind": "subscribed"}) == ""


def test_a_long_list_of_run_ids_is_said_as_its_count_and_range() -> None:
    """A retention sweep's event listed ~500 removed run ids on one line; `--json` keeps them all."""
    from edgeorch.cli.commands.events import event_fields

    assert event_fields({"kind": "gc", "runs": list(range(56, 556)), "actor": "retention"}) == (
        "runs=500 (56..555) actor=retention")
    assert event_fields({"kind": "gc", "runs": [3, 4]}) == "runs=[3,4]"


def test_unprintable_texts_have_the_escapes_every_human_output_shows():
    """Found by a tester: `events` printed a dropped name's ESC as `\\u001b` and a byte that is not UTF-8 (`\\xff`
    as the daemon sends it) as `\\\\xff`, where `edgeorch inputs` shows `\\x1b` and `\\xff`: grepping one for the
    other failed."""
    line = event_fields({"kind": "input", "file": "/d/x1\x1b[2J.csv", "other": "line\\xff.csv", "bidi": "\u202eevil"})
    assert line == 'file="/d/x1\\x1b[2J.csv" other=line\\xff.csv bidi="\\u202eevil"', line
