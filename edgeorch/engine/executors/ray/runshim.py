"""The supervisor of one Ray attempt on its node: the local shim, started by the attempt's actor.

``python -m edgeorch.engine.executors.ray.runshim`` reads one spawn request
(JSON) on stdin and runs :func:`~edgeorch.engine.executors.local.shim.run_shim`
with it (one attempt, never reused): the same claim-free supervision as locally (its own session, a child
subreaper that stops the whole tree, the log cap, ``exit.json`` written last),
answering on stdout. Only the folder differs: the request's ``attempt_dir`` is
a spool folder on the node (the actor streams its log to the daemon).

One addition: the shim asks the kernel for SIGTERM when its parent (the
actor's worker process) dies, so a worker killed mid-task (or an actor killed
by ``ray.kill``) stops the task's whole tree like a stop does, instead of
leaving it running unsupervised.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1


def main() -> int:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):  # pragma: no cover - no libc symbols: a dead worker leaves the task running
        pass
    os.setsid()  # no terminal signal of the worker's group reaches the attempt
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)  # as under the zygote: a write to a gone reader must not kill us
    req = json.loads(sys.stdin.buffer.read())
    if os.getppid() != req.get("parent_pid", os.getppid()):
        return 0  # the actor died before the death signal was armed: start nothing (it reports nothing either)
    from edgeorch.engine.executors.local.shim import run_shim

    run_shim(req, sys.stdout.fileno(), reuse=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
