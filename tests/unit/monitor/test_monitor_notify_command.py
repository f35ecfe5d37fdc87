"""A rule's `notify` command: its verdict is its exit within its timeout, what it left running is killed, and its
output is kept through a bounded buffer (the same rules as a deployment's health/reload commands).

Found with the deployments' commands by a tester: a command whose child in another session held its output
(`(setsid sleep 60 &); exit 0`) was waited for the child's lifetime, past its timeout; its whole output was held in
the daemon's memory."""

from __future__ import annotations

import json
import time

from edgeorch.commandmarks import stop_marked
from edgeorch.monitor.service import NOTIFY_MARK, _notify


def test_a_notify_that_exits_at_once_leaving_a_child_in_another_session_ends_at_once_and_the_child_is_killed(tmp_path):
    mark = f"1@{tmp_path}/edgeorch.db"
    seen = tmp_path / "seen.json"
    started = time.monotonic()
    res = _notify(["sh", "-c", f"cat > {seen}; (setsid sleep 60 &); echo paged; exit 0"], {"rule": "r"}, 20.0,
                  {NOTIFY_MARK: mark})
    assert time.monotonic() - started < 10, res
    assert res == {"exit_code": 0, "output": "paged\n"}, res
    assert json.loads(seen.read_text()) == {"rule": "r"}  # the signal on stdin, as before
    assert stop_marked(NOTIFY_MARK, mark) == []  # nothing of it is left running


def test_a_notify_past_its_timeout_is_cut_there_and_its_output_is_bounded(tmp_path):
    mark = f"2@{tmp_path}/edgeorch.db"
    started = time.monotonic()
    res = _notify(["sh", "-c", "head -c 3000000 /dev/zero | tr '\\0' x; sleep 60"], {}, 1.0, {NOTIFY_MARK: mark})
    assert time.monotonic() - started < 10 and res["exit_code"] is None and "timed out after 1s" in res["error"], res
    assert stop_marked(NOTIFY_MARK, mark) == []
    ok = _notify(["sh", "-c", "head -c 3000000 /dev/zero | tr '\\0' y; echo; echo end"], {}, 20.0, {NOTIFY_MARK: mark})
    assert ok["exit_code"] == 0 and len(ok["output"]) == 2000 and ok["output"].endswith("y\nend\n"), ok["output"][-20:]
