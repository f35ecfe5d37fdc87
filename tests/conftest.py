"""Shared fixtures: a temp state dir with a config, and pipelines written on the fly."""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def workspace(tmp_path: Path) -> "Workspace":
    return Workspace(tmp_path)


class Workspace:
    """A folder with ``config.toml``, ``pipelines/`` and ``var/`` for one test."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.pipelines = root / "pipelines"
        self.pipelines.mkdir()
        self.state = root / "var"
        self.config_path = root / "config.toml"
        self.write_config()

    def write_config(self, extra: str = "", parallelism: int = 2, kill_grace: str = "2s") -> Path:
        self.config_path.write_text(textwrap.dedent(f"""\
            [state]
            dir = "{self.state}"
            [pipelines]
            dir = "{self.pipelines}"
            [engine]
            parallelism = {parallelism}
            kill_grace = "{kill_grace}"
            """) + textwrap.dedent(extra))
        return self.config_path

    def pipeline(self, name: str, text: str) -> Path:
        path = self.pipelines / f"{name}.toml"
        path.write_text(textwrap.dedent(text))
        return path

    def config(self):
        from edgeorch.config import load_config

        return load_config(self.config_path)

    def cli_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["EDGEORCH_CONFIG"] = str(self.config_path)
        env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        return env

    def cli(self) -> list[str]:
        return [sys.executable, "-m", "edgeorch.cli"]
