"""A zygote that cannot start says which program, the system's words and what to do; 77 when not allowed.

Found by an operator: the daemon started as a user who may not run its Python (a venv made from an
interpreter under /root) ended with "edgeorch: error: /var/tmp/hO/venv/bin/python3.11: Permission denied":
nothing said it was the task launcher, nor what to do.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from edgeorch.engine.executors.local import launch


def test_a_program_that_may_not_be_run_is_exit_77_naming_it_and_the_install_advice(tmp_path: Path,
                                                                                    monkeypatch) -> None:
    python = tmp_path / "python3"
    python.write_text("#!/bin/sh\n")
    os.chmod(python, 0o644)  # not executable: EACCES, for root too
    monkeypatch.setattr(launch, "module_argv", lambda *a, **k: [str(python), "-m", "x"])
    with pytest.raises(launch.LaunchError) as err:
        launch.spawn_zygote()
    e = err.value
    assert isinstance(e, OSError) and e.exit_code == 77
    assert e.render().startswith(f"{python}: cannot start the task launcher (edgeorch's zygote, which starts every "
                                 "task): Permission denied")
    assert "not root's home" in (e.hint or "")


def test_a_missing_program_says_so_with_exit_1(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(launch, "module_argv", lambda *a, **k: [str(tmp_path / "gone" / "python3")])
    with pytest.raises(launch.LaunchError) as err:
        launch.spawn_zygote()
    assert err.value.exit_code == 1 and "No such file or directory" in err.value.message
