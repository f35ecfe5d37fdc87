"""Progress of long kernel work: rows or bytes, rate and ETA on a terminal; nothing with --json or off a terminal."""

from __future__ import annotations

import io
import os
import pty
import subprocess
import sys
from pathlib import Path

from edgeorch.kernels.cache import compiled_before
from edgeorch.textui import Progress


def test_the_line_shows_amount_rate_and_time_left() -> None:
    now = [100.0]
    out = io.StringIO()
    p = Progress(out, enabled=True, clock=lambda: now[0])
    p.update(0, 4 * 1024 * 1024, "big.csv", unit="B")
    now[0] += 2.0
    p.update(1024 * 1024, 4 * 1024 * 1024, "big.csv", unit="B")
    now[0] += 1.0
    p.update(30_000, None, "big.csv", unit="rows")
    p.close()
    text = out.getvalue()
    assert "25.0% big.csv 1.0M of 4.0M 512.0K/s ETA 6.0s" in text
    assert "big.csv 30,000 rows 10,000 rows/s" in text and text.endswith("\n")


def test_off_a_terminal_nothing_is_drawn() -> None:
    out = io.StringIO()  # not a TTY
    p = Progress(out)
    p.update(5, 10, "x")
    p.note("compiling")
    p.close()
    assert out.getvalue() == ""


def test_the_first_use_notice_knows_a_cold_cache(tmp_path: Path) -> None:
    assert compiled_before(tmp_path) is False
    source = (Path(__file__).parents[3] / "edgeorch" / "kernels" / "_jit.py").read_text().splitlines()
    line = next(i for i, t in enumerate(source, 1) if t.startswith("def block_moments("))
    (tmp_path / "kernels_abc").mkdir()
    (tmp_path / "kernels_abc" / f"_jit.block_moments-{line - 1}.py311.nbi").write_bytes(b"")
    assert compiled_before(tmp_path) is True


def _profile_on_a_terminal(tmp_path: Path, *extra: str) -> str:
    (tmp_path / "data.csv").write_text("x,y\n" + "".join(f"{i},{i % 7}\n" for i in range(3000)))
    primary, secondary = pty.openpty()
    try:
        proc = subprocess.run([sys.executable, "-m", "edgeorch", "profile", "data.csv", *extra], cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=secondary, timeout=120, env=os.environ.copy())
        assert proc.returncode == 0
        os.close(secondary)
        secondary = -1
        chunks = []
        while True:
            try:
                data = os.read(primary, 65536)
            except OSError:  # EIO: the terminal's other end is closed and drained
                break
            if not data:
                break
            chunks.append(data)
        return b"".join(chunks).decode(errors="replace")
    finally:
        os.close(primary)
        if secondary >= 0:
            os.close(secondary)


def test_profile_on_a_terminal_draws_progress_and_stays_quiet_with_json(tmp_path: Path) -> None:
    assert "data.csv 3,000 rows" in _profile_on_a_terminal(tmp_path)
    assert "rows" not in _profile_on_a_terminal(tmp_path, "--json")
