"""Data versions load numba only when data is versioned: the daemon, the CLI and the engine start without it."""

from __future__ import annotations

import subprocess
import sys

import pytest


def _modules_after(stmt: str) -> set[str]:
    code = f"import sys; {stmt}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


@pytest.mark.parametrize("module", ["edgeorch.daemon.app", "edgeorch.cli.main", "edgeorch.engine.engine",
                                    "edgeorch.triggers.service", "edgeorch.datasets.service"])
def test_starting_does_not_compile_the_chunker(module: str) -> None:
    mods = _modules_after(f"import {module}")
    assert "edgeorch.datasets.chunker" not in mods and "numba" not in mods


def test_taking_a_snapshot_loads_it(tmp_path) -> None:
    (tmp_path / "f").write_text("x")
    mods = _modules_after("from edgeorch.datasets import service; "
                          f"service.take_snapshot({str(tmp_path / 'f')!r}, service.object_store({str(tmp_path)!r}))")
    assert "edgeorch.datasets.chunker" in mods
