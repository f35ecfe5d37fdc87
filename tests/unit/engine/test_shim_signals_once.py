"""A stop's signal reaches each process of an attempt once (the shim's ``_Tree.signal_all``)."""

from __future__ import annotations

import os
import subprocess
import time

from edgeorch.engine.executors.local.shim import _Tree
from edgeorch.engine.procinfo import descendants


def test_the_group_gets_the_signal_once_and_a_process_that_left_it_gets_its_own(monkeypatch):
    """killpg then kill of every descendant gave the task's own processes two SIGTERMs: a task that reads a
    second one as "force quit" (common in training scripts) skipped its checkpoint."""
    leader = subprocess.Popen(["sh", "-c", "setsid sleep 30 & sleep 30 & wait"], process_group=0)
    try:
        def outside() -> list[int]:
            out = []
            for p in descendants(leader.pid):
                try:
                    if os.getpgid(p) != leader.pid:
                        out.append(p)
                except ProcessLookupError:
                    pass
            return out

        deadline = time.monotonic() + 10
        # Both sleeps started, and the setsid one has left the group (a condition, not a fixed sleep: it is
        # forked in the group first, and leaves it only when setsid runs).
        while len(descendants(leader.pid)) < 2 or len(outside()) != 1:
            assert time.monotonic() < deadline, "the task's children did not start"
            time.sleep(0.01)
        left = outside()
        sent: list[tuple[str, int, int]] = []
        real_kill, real_killpg = os.kill, os.killpg
        monkeypatch.setattr(os, "kill", lambda pid, sig: (sent.append(("kill", pid, sig)), real_kill(pid, sig))[1])
        monkeypatch.setattr(os, "killpg", lambda pg, sig: (sent.append(("killpg", pg, sig)), real_killpg(pg, sig))[1])
        tree = _Tree(shim=os.getpid(), leader=leader.pid, grace=1.0, cgroup=None)
        tree.signal_all(0)  # signal 0: delivery checked, nothing done to the processes
        assert ("killpg", leader.pid, 0) in sent
        assert sorted(pid for kind, pid, _ in sent if kind == "kill") == left  # only the one outside the group
    finally:
        for pid in [*descendants(leader.pid), leader.pid]:
            try:
                os.kill(pid, 9)
            except OSError:
                pass
        leader.wait(timeout=10)
