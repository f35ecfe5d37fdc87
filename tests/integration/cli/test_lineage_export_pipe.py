"""`edgeorch lineage export --command CMD` when CMD stops reading: a clear error, nothing left to fail later."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]

# Python's development mode logs an exception a file object's finalizer swallows (3.13 logs it always):
# the pipe to a command that exited must be closed by the export, not left to the garbage collector.
SCRIPT = textwrap.dedent("""
    import argparse, gc, sys
    from edgeorch.cli.commands.lineage import _write
    seen = []
    sys.unraisablehook = seen.append
    events = ({"eventType": "COMPLETE", "run": {"runId": str(i)}, "pad": "x" * 1000} for i in range(200))
    try:
        _write(events, argparse.Namespace(command="exit 7", openlineage=None))
    except Exception as exc:
        print("error:", exc)
    gc.collect()
    print("unraisable:", [type(u.exc_value).__name__ for u in seen])
""")


def test_a_command_that_stops_reading_is_an_error_and_leaves_no_broken_pipe_behind():
    out = subprocess.run([sys.executable, "-X", "dev", "-c", SCRIPT], capture_output=True, text=True, timeout=60,
                         cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert "error: --command: the export command exited with code 7" in out.stdout
    assert "unraisable: []" in out.stdout, out.stdout + out.stderr
