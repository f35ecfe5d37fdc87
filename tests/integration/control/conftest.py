"""Fixtures for the control tests (helpers live in control_helpers.py)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from control_helpers import ServerThread

from edgeorch.config import ControlConfig
from edgeorch.control.auth import AccessPolicy


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    # Short paths: AF_UNIX paths are limited to 108 bytes and pytest's
    # tmp_path can be longer than that.
    d = Path(tempfile.mkdtemp(prefix="eoc-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def make_server(sock_dir: Path) -> Iterator[Callable[..., ServerThread]]:
    started: list[ServerThread] = []

    def make(
        control: ControlConfig | None = None, policy: AccessPolicy | None = None, name: str = "run/edgeorch.sock",
        clock: Callable[[], float] | None = None,
    ) -> ServerThread:
        st = ServerThread(sock_dir / name, control or ControlConfig(idle_timeout=5.0), policy, clock)
        st.start()
        started.append(st)
        return st

    yield make
    for st in started:
        st.stop()


@pytest.fixture
def server(make_server: Callable[..., ServerThread]) -> ServerThread:
    return make_server()


