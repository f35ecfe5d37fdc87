"""Whose files edgeorch takes code or state from when it finds them itself (edgeorch/trust.py): a config in the
working folder, the embedded defaults' folders under it, numba's cache folders. Another user's (not root's), or
one every user may write, is refused with the reason; what the user names is theirs to trust.

Another owner needs root to make (``chown``): those cases are skipped elsewhere; the "every user may write" cases
run as anyone.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from edgeorch import trust
from edgeorch.kernels import cache

OTHER = 65534  # nobody
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")


def _st(uid: int, mode: int) -> os.stat_result:
    return os.stat_result((mode, 0, 0, 1, uid, 0, 0, 0, 0, 0))


@pytest.mark.parametrize("uid, mode, trusted", [
    (os.getuid(), stat.S_IFREG | 0o644, True),
    (0, stat.S_IFREG | 0o644, True),  # root's (/etc, /usr)
    (os.getuid(), stat.S_IFREG | 0o664, True),  # group-writable: a team's project, a umask of 002
    (OTHER, stat.S_IFREG | 0o644, os.getuid() == OTHER),
    (os.getuid(), stat.S_IFREG | 0o666, False),  # every user may write it
    (0, stat.S_IFDIR | 0o1777, True),  # /tmp: others may add to it, not replace what is yours
    (0, stat.S_IFDIR | 0o777, False),
])
def test_ownership_problem(uid: int, mode: int, trusted: bool) -> None:
    assert (trust.ownership_problem(_st(uid, mode)) is None) is trusted


def test_a_trusted_file_is_read_and_a_fifo_never_blocks(tmp_path: Path) -> None:
    good = tmp_path / "config.toml"
    good.write_text("x = 1\n")
    assert trust.read_trusted(good) == b"x = 1\n"
    os.chmod(good, 0o666)
    with pytest.raises(PermissionError) as exc:
        trust.read_trusted(good)
    assert exc.value.strerror == "every user may write it"
    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)
    with pytest.raises(OSError, match="not a regular file"):
        trust.read_trusted(fifo)


@pytest.fixture
def cli(cli_in_process, monkeypatch: pytest.MonkeyPatch):
    """``edgeorch ARGV`` in this process, from the folder ``cwd``, with no config but what it finds there."""
    def run(cwd: Path, *argv: str):
        return _cli(cli_in_process, monkeypatch, cwd, *argv)
    return run


def _cli(run_cli_in_process, monkeypatch: pytest.MonkeyPatch, cwd: Path, *argv: str):
    monkeypatch.chdir(cwd)
    env = {k: v for k, v in os.environ.items() if k != "EDGEORCH_CONFIG"}
    env["XDG_CONFIG_HOME"] = str(cwd / "no-config-home")
    env["EDGEORCH_ROOT"] = str(cwd / "no-system-root")
    return run_cli_in_process(list(argv), env)


def test_a_config_every_user_may_write_in_the_working_folder_is_refused_but_one_named_is_used(
        tmp_path: Path, cli) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[state]\ndir = "{tmp_path / "var"}"\n')
    os.chmod(config, 0o666)
    res = cli(tmp_path, "runs")
    assert res.returncode == 2, res.stderr
    assert "config.toml: refusing to use this config file: every user may write it" in res.stderr
    assert "--config" in res.stderr and "Traceback" not in res.stderr
    named = cli(tmp_path, "--config", str(config), "runs")
    assert named.returncode == 0, named.stderr  # named: the user's to trust


@as_root
def test_another_users_config_or_default_pipelines_in_the_working_folder_are_refused(
        tmp_path: Path, cli) -> None:
    here = tmp_path / "shared"
    here.mkdir()
    os.chmod(here, 0o1777)  # as /tmp: everyone may add files
    config = here / "config.toml"
    config.write_text('[state]\ndir = "/tmp/theirs"\n')
    os.chown(config, OTHER, -1)
    res = cli(here, "runs")
    assert res.returncode == 2
    assert "refusing to use this config file: it belongs to nobody (uid 65534)" in res.stderr \
        or "refusing to use this config file: it belongs to uid 65534" in res.stderr

    # No config: the embedded defaults' pipelines (./examples/pipelines) would be theirs.
    config.unlink()
    pipes = here / "examples" / "pipelines"
    pipes.mkdir(parents=True)
    (pipes / "hello.toml").write_text('[tasks.t]\ncommand = ["true"]\n')
    os.chown(here / "examples", OTHER, -1)
    res = cli(here, "run", "hello")
    assert res.returncode == 2
    assert f"{here / 'examples'}: refusing the embedded defaults' pipelines folder here" in res.stderr
    assert not (here / "var").exists()  # nothing made, nothing run

    # A kernel command needs no config: it works there, with the user's own numba cache.
    (here / "t.csv").write_text("a\n1\n")
    res = cli(here, "profile", "t.csv", "--json")
    assert res.returncode == 0, res.stderr


@as_root
def test_root_trusts_another_users_project_folder_that_not_everyone_may_write(tmp_path: Path, cli) -> None:
    """An administrator in a user's project, a CI checkout owned by another uid: root could write it anyway."""
    project = tmp_path / "alice"
    project.mkdir()
    config = project / "config.toml"
    config.write_text(f'[state]\ndir = "{project / "var"}"\n')
    pipes = project / "examples" / "pipelines"
    pipes.mkdir(parents=True)
    for p in (project, config, project / "examples", pipes):
        os.chown(p, OTHER, -1)
    assert cli(project, "runs").returncode == 0
    config.unlink()
    assert cli(project, "pipelines").returncode == 0  # the embedded defaults' folders too
    os.chmod(project, 0o777)  # ... but not in a folder every user writes to
    res = cli(project, "pipelines")
    assert res.returncode == 2
    assert "refusing the embedded defaults'" in res.stderr and "every user may write" in res.stderr


@as_root
def test_a_numba_cache_folder_of_another_user_is_passed_over(tmp_path: Path) -> None:
    planted = tmp_path / "state" / "numba-cache"
    planted.mkdir(parents=True)
    os.chown(planted, OTHER, -1)
    home = tmp_path / "home-cache"
    assert cache.numba_cache_dir(planted, environ={"XDG_CACHE_HOME": str(home)}) == home / "edgeorch" / "numba"


def test_a_numba_cache_folder_every_user_may_write_is_passed_over(tmp_path: Path) -> None:
    planted = tmp_path / "state" / "numba-cache"
    planted.mkdir(parents=True)
    os.chmod(planted, 0o777)
    home = tmp_path / "home-cache"
    assert cache.numba_cache_dir(planted, environ={"XDG_CACHE_HOME": str(home)}) == home / "edgeorch" / "numba"
    os.chmod(planted, 0o755)
    assert cache.numba_cache_dir(planted, environ={"XDG_CACHE_HOME": str(home)}) == planted


def test_a_private_folder_is_made_or_accepted_only_as_this_users_own(tmp_path: Path) -> None:
    made = tmp_path / "edgeorch-x"
    assert trust.private_folder(made) and _mode(made) == 0o700
    assert trust.private_folder(made)  # again: there, and ours
    os.chmod(made, 0o755)
    assert not trust.private_folder(made)  # others may enter
    assert trust.private_folder(made, closed=0o022)  # ... but not write: enough for a cache
    link = tmp_path / "edgeorch-link"
    link.symlink_to(made)
    assert not trust.private_folder(link)  # a link another user planted leads where they chose
    assert not trust.private_folder(tmp_path / "missing" / "x")  # a missing parent is not made
    if os.geteuid() == 0:
        theirs = tmp_path / "edgeorch-theirs"
        theirs.mkdir(mode=0o700)
        os.chown(theirs, OTHER, -1)
        assert not trust.private_folder(theirs)


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@as_root
def test_a_config_of_ones_own_in_a_shared_folder_does_not_make_its_relative_folders_trusted(
        tmp_path: Path, cli) -> None:
    """Your config.toml in /tmp: its ./examples/pipelines and ./var may still be another user's (they ran their
    task as you, and answered on a fake ./var/edgeorch.sock)."""
    shared = tmp_path / "tmp"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    (shared / "config.toml").write_text('[pipelines]\ndir = "./examples/pipelines"\n')  # yours
    pipes = shared / "examples" / "pipelines"
    pipes.mkdir(parents=True)
    os.chown(shared / "examples", OTHER, -1)
    res = cli(shared, "pipelines")
    assert res.returncode == 2
    assert "config.toml's pipelines folder here" in res.stderr and "65534" in res.stderr
    link_home = tmp_path / "lnk"
    link_home.mkdir()
    os.chmod(link_home, 0o1777)
    (link_home / "config.toml").symlink_to(shared / "config.toml")
    os.lchown(link_home / "config.toml", OTHER, -1)
    res = cli(link_home, "pipelines")
    assert res.returncode == 2 and "refusing to use this config file: a link: it belongs to" in res.stderr
