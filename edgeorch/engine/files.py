"""File facts the engine records (sha256 of outputs and checkpoints) and its run folders."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any


def sha256_file(path: Path, bufsize: int = 1 << 20) -> str:
    """Hex sha256 of a file's content, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(bufsize):
            h.update(chunk)
    return h.hexdigest()


def describe_file(path: Path, name: str) -> dict[str, Any]:
    """``{name, path, size, sha256}`` for a regular file."""
    st = path.stat()
    return {"name": name, "path": str(path), "size": st.st_size, "sha256": sha256_file(path)}


def describe_tree(root: Path) -> list[dict[str, Any]]:
    """Every regular file below ``root`` (names relative to it, sorted); [] when absent."""
    if not root.is_dir():
        return []
    out = []
    for dirpath, _, files in os.walk(root):
        for f in sorted(files):
            p = Path(dirpath, f)
            if p.is_file() and not p.is_symlink():
                out.append(describe_file(p, str(p.relative_to(root))))
    return sorted(out, key=lambda d: d["name"])


def intact(artifacts: list[dict[str, Any]]) -> bool:
    """True when every recorded file still exists with the recorded size and sha256."""
    for a in artifacts:
        p = Path(a["path"])
        try:
            if p.stat().st_size != a["size"]:
                return False
        except OSError:
            return False
        if sha256_file(p) != a["sha256"]:
            return False
    return True


def claim_run_dir(runs_dir: Path, run_id: int) -> Path:
    """Create and return a run folder no earlier run used: ``<run id>``, else ``<run id>-2``, ``-3``, ...

    Run ids come from the state file and go back when an older backup of it
    is restored, but the folders of the runs made after that backup stay on
    disk (with their attempts' ``owner.json`` claims). Creating the folder
    exclusively here, when the run is created, guarantees that a new run never
    shares a folder with an old one, whatever the state file says.
    """
    runs_dir.mkdir(parents=True, exist_ok=True)
    suffix = 1
    while True:
        path = runs_dir / (str(run_id) if suffix == 1 else f"{run_id}-{suffix}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            suffix += 1
