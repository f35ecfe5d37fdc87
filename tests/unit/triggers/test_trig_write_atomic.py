"""``write_atomic`` gives old or new content, never half, even when the kernel writes only part of it.

A real process under a file-size limit (SIGXFSZ ignored) gets a short ``write``,
as on a nearly full disk; the file must then keep its old content.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_a_short_write_never_leaves_half_a_file(tmp_path):
    target = tmp_path / "batch.paths"
    target.write_bytes(b"old\n")
    script = textwrap.dedent(f"""
        import resource, signal, sys
        from pathlib import Path
        from edgeorch.triggers.drop.durable import write_atomic
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000))
        try:
            write_atomic(Path({str(target)!r}), b"x" * 5000)
        except OSError as exc:
            print("refused", exc.errno)
            sys.exit(0)
        print("written")
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert target.read_bytes() in (b"old\n", b"x" * 5000), f"half a file: {target.stat().st_size} bytes"
    assert out.stdout.startswith("refused")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")], "the temporary file is left behind"
