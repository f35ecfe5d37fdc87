"""Helpers of the GPU validation tests (imported by name: the test folders are not packages)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).parent
CHILD = HERE / "cuda_child.py"


def required() -> bool:
    """``EDGEORCH_REQUIRE_GPU=1``: a missing GPU is a failure, not a skip (tests/gpu/validate.sh)."""
    return os.environ.get("EDGEORCH_REQUIRE_GPU") == "1"


def no_gpu(why: str) -> None:
    """Skip (no GPU here), or fail where a GPU is required."""
    if required():
        pytest.fail(f"EDGEORCH_REQUIRE_GPU=1 but {why}")
    pytest.skip(why)


def smi(binary: str, *args: str) -> str:
    """nvidia-smi's output (stdout); fails the test with its stderr when it fails."""
    p = subprocess.run([binary, *args], capture_output=True, text=True, timeout=60, check=False)
    if p.returncode != 0:
        pytest.fail(f"nvidia-smi {' '.join(args)} failed ({p.returncode}): {p.stderr.strip() or p.stdout.strip()}")
    return p.stdout


class Results:
    """JSON result files under ``$EDGEORCH_GPU_OUT`` (one file per name, merged across tests)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def record(self, name: str, data: dict[str, Any]) -> None:
        path = self.folder / f"{name}.json"
        old = json.loads(path.read_text()) if path.exists() else {}
        old.update(data)
        path.write_text(json.dumps(old, indent=2, sort_keys=True) + "\n")


def start_child(env: dict[str, str], nbytes: int, *, hold: bool) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    """Start cuda_child.py with ``env``; returns it and its JSON line (read within 60 s)."""
    import selectors

    args = [sys.executable, str(CHILD), str(nbytes)] + (["--hold"] if hold else [])
    p = subprocess.Popen(args, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    assert p.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(p.stdout, selectors.EVENT_READ)
    if not sel.select(60):
        p.kill()
        pytest.fail("the CUDA child printed nothing within 60 s")
    line = p.stdout.readline()
    if not line:
        p.wait(10)
        pytest.fail(f"the CUDA child exited ({p.returncode}) without a result: {p.stderr.read() if p.stderr else ''}")
    return p, json.loads(line)
