"""The one rule of OOM reasons (resources/oom.py) and the cgroup's record of OOM kills (resources/memory.py)."""

from __future__ import annotations

import pytest

from edgeorch.resources.memory import oom_kills
from edgeorch.resources.oom import explain

M64 = 64 << 20


@pytest.mark.parametrize("code, signal, killed, stopped, expected", [
    (None, 9, True, False, "killed: out of memory (memory bound 64M)"),
    (1, None, True, False, "exited with code 1 after a process was killed: out of memory (memory bound 64M)"),
    (0, None, True, False, None),  # a process inside was killed, the task still succeeded: nothing to add
    (None, 9, None, False,
     "killed by signal 9 (SIGKILL), probably out of memory (memory bound 64M; no OOM record to confirm it)"),
    (None, 9, False, False, None),  # the record says no OOM kill: a plain kill -9
    (None, 9, True, True, None),  # edgeorch's own stop (timeout, cancel): never read as an OOM kill
    (None, 9, None, True, None),
    (None, 15, None, False, None),
    (3, None, None, False, None),
])
def test_an_oom_kill_reads_as_one_only_with_its_record_or_a_sigkill_under_a_bound(code, signal, killed, stopped,
                                                                                   expected):
    assert explain(code, signal, memory=M64, killed=killed, stopped=stopped) == expected


def test_a_sigkill_without_a_bound_or_record_is_left_to_the_usual_words():
    assert explain(None, 9, memory=0, killed=None, stopped=False) is None


def test_a_recorded_kill_without_a_bound_of_its_own_says_so():
    assert explain(None, 9, memory=0, killed=True, stopped=False) == \
        "killed: out of memory (no memory bound of its own)"


def test_oom_kills_reads_memory_events(tmp_path):
    (tmp_path / "memory.events").write_text("low 0\nhigh 0\nmax 12\noom 2\noom_kill 1\noom_group_kill 0\n")
    assert oom_kills(tmp_path) == 1


@pytest.mark.parametrize("text", [None, "low 0\nhigh 0\n", "oom_kill x\n"])
def test_oom_kills_is_none_without_a_record(tmp_path, text):
    if text is not None:
        (tmp_path / "memory.events").write_text(text)
    assert oom_kills(tmp_path) is None
