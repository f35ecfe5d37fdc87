"""One config lookup for CLI and daemon (config.find_config) and the socket each layout implies."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeorch.cli import build_parser
from edgeorch.config import find_config, load_config

MINIMAL = '[state]\ndir = "{state}"\n'


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working folder, no $EDGEORCH_CONFIG, XDG and the system root under tmp_path."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    for name in ("EDGEORCH_CONFIG", "RUNTIME_DIRECTORY", "XDG_RUNTIME_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("EDGEORCH_ROOT", str(tmp_path / "root"))
    return tmp_path


def put(path: Path, state: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(MINIMAL.format(state=state))
    return path


def test_lookup_order_is_option_env_cwd_xdg_etc_then_embedded(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert find_config() == (None, "embedded defaults")
    etc = put(env / "root/etc/edgeorch/config.toml", env / "s1")
    assert find_config()[0] == etc
    xdg = put(env / "xdg/edgeorch/config.toml", env / "s2")
    assert find_config()[0] == xdg
    cwd = put(env / "cwd/config.toml", env / "s3")
    assert find_config()[0].resolve() == cwd
    monkeypatch.setenv("EDGEORCH_CONFIG", str(etc))
    assert find_config() == (etc, "$EDGEORCH_CONFIG")
    assert find_config(str(xdg)) == (xdg, "--config")


def test_a_system_config_puts_the_socket_in_run_edgeorch(env: Path) -> None:
    put(env / "root/etc/edgeorch/config.toml", env / "var/lib/edgeorch")
    cfg = load_config()
    assert cfg.socket_path == env / "root/run/edgeorch/edgeorch.sock"
    assert cfg.state_dir == env / "var/lib/edgeorch"


def test_runtime_directory_wins_over_the_layout(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    put(env / "root/etc/edgeorch/config.toml", env / "state")
    monkeypatch.setenv("RUNTIME_DIRECTORY", str(env / "rt"))
    assert load_config().socket_path == env / "rt/edgeorch.sock"


def test_a_user_config_puts_the_socket_in_xdg_runtime_dir(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    put(env / "xdg/edgeorch/config.toml", env / "state")
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(env / "user-run"))
    assert load_config().socket_path == env / "user-run/edgeorch/edgeorch.sock"


def test_any_other_config_keeps_the_socket_in_its_state_folder(env: Path) -> None:
    put(env / "cwd/config.toml", env / "state")
    assert load_config().socket_path == env / "state/edgeorch.sock"


def test_an_explicit_missing_config_is_an_error_not_a_fallback(env: Path) -> None:
    from edgeorch.errors import ConfigError

    put(env / "root/etc/edgeorch/config.toml", env / "state")
    with pytest.raises(ConfigError, match="not found"):
        load_config(str(env / "nope.toml"))


@pytest.mark.parametrize("argv", [
    ["daemon", "--config", "/x.toml"],
    ["--config", "/x.toml", "daemon"],
    ["-c", "/x.toml", "status", "--json"],
    ["status", "--json", "-c", "/x.toml"],
    ["run", "p", "--config", "/x.toml", "-p", "a=1"],
])
def test_global_config_option_is_accepted_before_or_after_the_command(argv: list[str]) -> None:
    assert build_parser().parse_args(argv).config == "/x.toml"


def test_without_the_option_config_is_none() -> None:
    assert build_parser().parse_args(["status"]).config is None
