"""A real short write: run a statement in a fresh interpreter whose files may not grow past a size.

Under ``RLIMIT_FSIZE`` (``SIGXFSZ`` ignored) the kernel takes part of a write and refuses the rest with
``EFBIG``, as a nearly full disk takes part and refuses the rest with ``ENOSPC``: the write paths are tested
on a real failure, never a patched ``os.write``.
"""

from __future__ import annotations

import subprocess
import sys


def write_under_a_size_limit(imports: str, statement: str, limit: int) -> str:
    """Run ``imports`` then ``statement`` under a file-size limit of ``limit`` bytes; returns what it printed:
    ``written``, or ``refused <errno> <filename>`` for the ``OSError`` it raised (anything else fails)."""
    script = "\n".join([
        "import resource, signal", imports,
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)",
        f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))",
        "try:", f"    {statement}",
        "except OSError as exc:", "    print('refused', exc.errno, exc.filename)",
        "else:", "    print('written')"])
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()
