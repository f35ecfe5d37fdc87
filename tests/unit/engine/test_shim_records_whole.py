"""The shim's records (``exit.json``, ``proc.json``) are written whole or not at all (real process, real files)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap


def test_a_short_write_never_renames_half_a_record_into_place(tmp_path):
    target = tmp_path / "exit.json"
    script = textwrap.dedent(f"""
        import resource, signal
        from edgeorch.engine.executors.local.shim import write_json_atomically
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (100, 100))
        try:
            write_json_atomically({str(target)!r}, {{"exit_code": 0, "error": "x" * 500}}, sync=False)
        except OSError as exc:
            print("refused", exc.errno)
        else:
            print("written")
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    if target.exists():
        json.loads(target.read_text())  # whole, or not there: never a truncated document
    assert out.stdout.startswith("refused")
