"""numba's compiled-kernel cache never lands inside the installed package (issue 9, item 4)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import edgeorch
from edgeorch.kernels import cache
from edgeorch.kernels.cli import _use_numba_cache

PACKAGE = Path(edgeorch.__file__).resolve().parent
NUMBA_FILES = ("*.nbi", "*.nbc")


def _numba_files(root: Path) -> set[Path]:
    return {p for pattern in NUMBA_FILES for p in root.rglob(pattern)}


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No NUMBA_CACHE_DIR, no config in sight, a private XDG cache home; restores the variable after."""
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    monkeypatch.delenv("EDGEORCH_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_an_explicit_numba_cache_dir_wins(tmp_path: Path) -> None:
    got = cache.numba_cache_dir(tmp_path / "state" / "numba-cache", environ={"NUMBA_CACHE_DIR": "/opt/nc"})
    assert got == Path("/opt/nc")


def test_the_state_dir_is_used_when_a_config_is_known(tmp_path: Path) -> None:
    preferred = tmp_path / "state" / "numba-cache"
    assert cache.numba_cache_dir(preferred, environ={"XDG_CACHE_HOME": str(tmp_path / "x")}) == preferred
    assert preferred.is_dir()


def test_without_a_config_the_user_cache_folder_is_used(tmp_path: Path) -> None:
    assert cache.numba_cache_dir(None, environ={"XDG_CACHE_HOME": str(tmp_path / "x")}) == tmp_path / "x/edgeorch/numba"
    home = Path(os.path.expanduser("~"))
    assert cache.user_cache_dir({}) == home / ".cache/edgeorch/numba"
    assert cache.user_cache_dir({"XDG_CACHE_HOME": "relative/ignored"}) == home / ".cache/edgeorch/numba"


def test_an_unwritable_state_dir_falls_back_to_the_user_cache(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    got = cache.numba_cache_dir(blocker / "numba-cache", environ={"XDG_CACHE_HOME": str(tmp_path / "x")})
    assert got == tmp_path / "x/edgeorch/numba"


def test_the_kernel_commands_use_the_state_dir_of_a_found_config(clean_env: Path) -> None:
    (clean_env / "config.toml").write_text('[state]\ndir = "st"\n')

    class Args:
        config = None

    _use_numba_cache(Args())  # type: ignore[arg-type]
    assert os.environ["NUMBA_CACHE_DIR"] == str(clean_env / "st" / "numba-cache")


def test_the_kernel_commands_use_the_user_cache_without_a_config(clean_env: Path) -> None:
    class Args:
        config = None

    _use_numba_cache(Args())  # type: ignore[arg-type]
    assert os.environ["NUMBA_CACHE_DIR"] == str(clean_env / "xdg-cache" / "edgeorch" / "numba")


def test_the_kernel_cli_never_writes_numba_files_into_the_package(tmp_path: Path) -> None:
    """`edgeorch profile` in a fresh process, no NUMBA_CACHE_DIR, no config: the cache goes to XDG.

    The XDG cache home is a fresh folder holding a copy of the session's warm cache (conftest's
    ``NUMBA_CACHE_DIR``) less the files of two kernels the profile needs (:data:`RECOMPILED`): the command
    compiles those (about a second, not a cold compile of every profile kernel) and must write them there.
    """
    xdg = tmp_path / "xdg-cache"
    numba_dir = xdg / "edgeorch" / "numba"
    shutil.copytree(os.environ["NUMBA_CACHE_DIR"], numba_dir)
    for name in RECOMPILED:
        for p in numba_dir.rglob(f"_jit.{name}-*.nb[ic]"):
            p.unlink()
    (tmp_path / "d.csv").write_text("a,b\n1,x\n2,y\n3,\n")
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "EDGEORCH_CONFIG")}
    env.update(XDG_CACHE_HOME=str(xdg), XDG_CONFIG_HOME=str(tmp_path / "no-config"),
               PYTHONPATH=str(PACKAGE.parent))
    before = {p: p.stat().st_mtime_ns for p in _numba_files(PACKAGE)}
    res = subprocess.run([sys.executable, "-m", "edgeorch.cli", "profile", "d.csv", "--json"], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    after = {p: p.stat().st_mtime_ns for p in _numba_files(PACKAGE)}
    assert {p for p in after if before.get(p) != after[p]} == set(), "numba wrote into the package"
    written = {name for name in RECOMPILED if list(numba_dir.rglob(f"_jit.{name}-*.nbi"))}
    assert written == set(RECOMPILED), "the kernels the command compiled went elsewhere than $XDG_CACHE_HOME/edgeorch/numba"


# Two kernels `edgeorch profile` compiles itself (not only inlined into another): removed from the seeded cache.
RECOMPILED = ("reduce_blocks", "hll_add_hashes")


def test_a_command_that_needs_no_numba_makes_no_cache_folder(tmp_path):
    """`edgeorch --config typo.toml status` made `<state>/numba-cache` (and the state folder) for a path that
    was a typo, though it then failed (no daemon there) and never imported numba."""
    import subprocess
    import sys

    state = tmp_path / "typo" / "state"
    cfg = tmp_path / "typo.toml"
    cfg.write_text(f'[state]\ndir = "{state}"\n')
    env = {k: v for k, v in __import__("os").environ.items() if k != "NUMBA_CACHE_DIR"}
    for argv in (["status"], ["runs"]):
        proc = subprocess.run([sys.executable, "-m", "edgeorch", "--config", str(cfg), *argv], env=env,
                              capture_output=True, text=True, timeout=60)
        assert "Traceback" not in proc.stderr, proc.stderr
    assert not (tmp_path / "typo").exists()


def test_the_folders_made_for_the_cache_are_closed_to_others_each_one(tmp_path) -> None:
    """The state folder a first daemon start made for `<state dir>/numba-cache` got the umask's 0755 (a parent
    `mkdir -p` makes), and the start said it "was readable by every user"."""
    import os
    import stat

    from edgeorch.kernels.cache import _usable

    old = os.umask(0o022)
    try:
        assert _usable(tmp_path / "var" / "numba-cache")
    finally:
        os.umask(old)
    for folder in (tmp_path / "var", tmp_path / "var" / "numba-cache"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o750, folder
