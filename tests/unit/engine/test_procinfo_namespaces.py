"""PID namespaces from /proc (``NSpid``): how a container attempt's stop tells the container's processes
from the runtime's (shim ``_Tree._term_container_processes``)."""

from __future__ import annotations

import os
import subprocess

from edgeorch.engine.procinfo import in_nested_namespace, pid_namespace_ids


def test_this_process_and_its_child_share_its_namespace_and_are_not_nested() -> None:
    own = pid_namespace_ids("self")
    assert own is not None and own[-1] == os.getpid() and pid_namespace_ids(os.getpid()) == own
    child = subprocess.Popen(["sleep", "30"])
    try:
        ids = pid_namespace_ids(child.pid)
        assert ids is not None and len(ids) == len(own) and ids[-1] == child.pid
        assert in_nested_namespace(child.pid, len(own)) is False
        # Seen from a supervisor one namespace further out, the same process is a nested one.
        assert in_nested_namespace(child.pid, len(own) - 1) is True
    finally:
        child.kill()
        child.wait()


def test_a_gone_process_cannot_be_told() -> None:
    child = subprocess.Popen(["true"])
    child.wait()
    assert pid_namespace_ids(child.pid) is None and in_nested_namespace(child.pid, 1) is None
