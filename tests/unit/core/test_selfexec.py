"""edgeorch's own helper processes run this package, whatever the working directory holds."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import edgeorch
from edgeorch.selfexec import PACKAGE_ROOT, module_argv, module_env


def _decoy(folder: Path) -> None:
    (folder / "edgeorch").mkdir()
    (folder / "edgeorch" / "__init__.py").write_text("raise SystemExit('the decoy package was imported')\n")


def test_a_helper_started_in_a_folder_with_another_edgeorch_runs_this_one(tmp_path: Path) -> None:
    _decoy(tmp_path)
    # Plain `python -m` from there would take the decoy: what the daemon's helpers used to do.
    plain = subprocess.run([sys.executable, "-m", "edgeorch", "--version"], cwd=tmp_path, capture_output=True,
                           text=True, env=module_env())
    assert "decoy" in plain.stderr
    ours = subprocess.run([*module_argv("edgeorch"), "--version"], cwd=tmp_path, capture_output=True, text=True,
                          env=module_env())
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout.strip().startswith(f"edgeorch {edgeorch.__version__} ")


def test_the_package_folder_comes_first_and_the_callers_pythonpath_is_kept() -> None:
    env = module_env({"PYTHONPATH": "/opt/extra", "HOME": "/root"})
    assert env["PYTHONPATH"].split(":") == [PACKAGE_ROOT, "/opt/extra"]
    assert env["HOME"] == "/root"
    assert module_env({})["PYTHONPATH"] == PACKAGE_ROOT


def test_a_helper_without_site_still_runs_this_package(tmp_path: Path) -> None:
    _decoy(tmp_path)
    argv = module_argv("edgeorch", "--version", site=False)
    assert argv[:3] == [sys.executable, "-S", "-P"]
    out = subprocess.run(argv, check=False, cwd=tmp_path, capture_output=True, text=True, env=module_env())
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().startswith(f"edgeorch {edgeorch.__version__} ")
