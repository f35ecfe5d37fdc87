"""config.toml -> frozen dataclasses.

Resolution: ``--config PATH`` if given, else ``$EDGEORCH_CONFIG``, else
``./config.toml`` when present, else the embedded defaults (the same values as
the repository's ``config.toml``). Relative paths in a config file are resolved
against the folder that holds the file, so the daemon behaves the same
whatever its working directory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError, EdgeorchError
from .tomlcheck import TableReader, load_toml

CONFIG_ENV = "EDGEORCH_CONFIG"


@dataclass(frozen=True)
class EngineConfig:
    """How tasks are run."""

    parallelism: int = 2
    """At most this many attempts run at once (before resource limits)."""
    log_max_bytes: int = 64 * 1024 * 1024
    """Per-attempt log cap; output past it is dropped and a marker written."""
    kill_grace: float = 10.0
    """Seconds between SIGTERM and SIGKILL when stopping a process group."""
    default_timeout: float | None = None
    """Timeout applied to tasks that set none (None: no limit)."""
    stop_tasks_on_shutdown: bool = False
    """On SIGTERM of the daemon: False keeps tasks running (live restore)."""


@dataclass(frozen=True)
class ControlConfig:
    """The Unix control socket and who may use it."""

    socket: Path | None = None
    """Socket path; None: $RUNTIME_DIRECTORY/edgeorch.sock, else <state>/edgeorch.sock."""
    group: str | None = None
    """Group owning the socket (mode 0660) and its folder (0750)."""
    readers: tuple[str, ...] = ()
    """Users (``alice``) or groups (``@ml``) that may read state."""
    operators: tuple[str, ...] = ()
    """Users or groups that may act (trigger, cancel, retry, pause, reload)."""
    max_line_bytes: int = 1024 * 1024
    idle_timeout: float = 300.0
    max_clients: int = 1024


@dataclass(frozen=True)
class ResourcesConfig:
    """Hardware handed to tasks."""

    reserved_cpus: tuple[int, ...] = ()
    gpu_backend: str = "auto"
    """auto | nvml | fake | none."""
    fake_gpus: Path | None = None
    """Device table (TOML/JSON) for the fake backend."""
    gpu_memory_policy: str = "stop"
    """What to do with a task over its gpu_memory budget: stop | warn."""
    pools: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Config:
    """The whole configuration; ``source`` is the file it came from (None: embedded)."""

    state_dir: Path
    pipelines_dir: Path
    inbox_dir: Path
    engine: EngineConfig = field(default_factory=EngineConfig)
    control: ControlConfig = field(default_factory=ControlConfig)
    resources: ResourcesConfig = field(default_factory=ResourcesConfig)
    watches: tuple[dict[str, Any], ...] = ()
    """Raw ``[[watch]]`` tables, validated by the triggers module."""
    source: Path | None = None

    @property
    def state_file(self) -> Path:
        return self.state_dir / "edgeorch.db"

    @property
    def runs_dir(self) -> Path:
        return self.state_dir / "runs"

    @property
    def numba_cache_dir(self) -> Path:
        return self.state_dir / "numba-cache"

    @property
    def socket_path(self) -> Path:
        if self.control.socket is not None:
            return self.control.socket
        runtime = os.environ.get("RUNTIME_DIRECTORY")
        if runtime:
            return Path(runtime.split(":")[0]) / "edgeorch.sock"
        return self.state_dir / "edgeorch.sock"


EMBEDDED_DEFAULTS = """\
# edgeorch configuration (embedded defaults).
[state]
dir = "./var"

[pipelines]
dir = "./examples/pipelines"

[inbox]
dir = "./var/inbox"

[engine]
parallelism = 2
log_max_bytes = "64M"
kill_grace = "10s"

# A drop-in folder: a CSV batch copied (cp, mv, rsync) into ./examples/drop starts one
# data_checks run on it (validate, profile, drift against the reference, fairness).
[[watch]]
folder = "./examples/drop"
pipeline = "data_checks"
patterns = ["*.csv"]
param = "batch"
"""


def load_config(path: str | Path | None = None) -> Config:
    """Load the configuration (see module docstring for the resolution order).

    Raises :class:`ConfigError` naming the file, field and value on any problem.
    """
    if path is None:
        env = os.environ.get(CONFIG_ENV)
        if env:
            path = env
        elif Path("config.toml").is_file():
            path = "config.toml"
    if path is None:
        import tomllib

        return parse_config(tomllib.loads(EMBEDDED_DEFAULTS), base=Path.cwd(), file="<embedded defaults>", source=None)
    p = Path(path)
    if not p.exists():
        raise ConfigError("config file not found", file=str(p))
    data = load_toml(p, ConfigError)
    return parse_config(data, base=p.resolve().parent, file=str(p), source=p.resolve())


def parse_config(data: dict[str, Any], *, base: Path, file: str, source: Path | None) -> Config:
    """Build a :class:`Config` from parsed TOML; collects every problem, raises the first batch."""
    errors: list[EdgeorchError] = []
    top = TableReader(data, file=file, prefix="", errors=errors, error_cls=ConfigError)

    def path_of(reader: TableReader, key: str, default: str | None) -> Path | None:
        value = reader.str(key, default)
        if value is None:
            return None
        p = Path(os.path.expanduser(value))
        return p if p.is_absolute() else (base / p)

    state = top.sub("state")
    state_dir = path_of(state, "dir", "./var")
    state.finish()

    pipes = top.sub("pipelines")
    pipelines_dir = path_of(pipes, "dir", "./examples/pipelines")
    pipes.finish()

    inbox = top.sub("inbox")
    inbox_dir = path_of(inbox, "dir", "./var/inbox")
    inbox.finish()

    eng = top.sub("engine")
    d = EngineConfig()
    engine = EngineConfig(
        parallelism=eng.int("parallelism", d.parallelism, minimum=1, maximum=4096),
        log_max_bytes=eng.size("log_max_bytes", d.log_max_bytes),
        kill_grace=eng.duration("kill_grace", d.kill_grace),
        default_timeout=eng.duration("default_timeout", d.default_timeout),
        stop_tasks_on_shutdown=eng.bool("stop_tasks_on_shutdown", d.stop_tasks_on_shutdown),
    )
    eng.finish()

    ctl = top.sub("control")
    dc = ControlConfig()
    control = ControlConfig(
        socket=path_of(ctl, "socket", None),
        group=ctl.str("group", None),
        readers=tuple(ctl.str_list("readers", [])),
        operators=tuple(ctl.str_list("operators", [])),
        max_line_bytes=ctl.size("max_line_bytes", dc.max_line_bytes),
        idle_timeout=ctl.duration("idle_timeout", dc.idle_timeout),
        max_clients=ctl.int("max_clients", dc.max_clients, minimum=1),
    )
    ctl.finish()

    res = top.sub("resources")
    reserved = res.raw("reserved_cpus", [])
    if not (isinstance(reserved, list) and all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in reserved)):
        res.fail("reserved_cpus", "must list CPU numbers", value=reserved, expected="an array of integers >= 0")
        reserved = []
    pools_raw = res.table("pools", {})
    pools: dict[str, int] = {}
    for name, size in pools_raw.items():
        if isinstance(size, int) and not isinstance(size, bool) and size >= 1:
            pools[name] = size
        else:
            res.fail(f"pools.{name}", "must be a pool size", value=size, expected="an integer >= 1")
    resources = ResourcesConfig(
        reserved_cpus=tuple(reserved),
        gpu_backend=res.choice("gpu_backend", ("auto", "nvml", "fake", "none"), "auto"),
        fake_gpus=path_of(res, "fake_gpus", None),
        gpu_memory_policy=res.choice("gpu_memory_policy", ("stop", "warn"), "stop"),
        pools=pools,
    )
    res.finish()

    watches = top.raw("watch", [])
    if not isinstance(watches, list) or not all(isinstance(w, dict) for w in watches):
        top.fail("watch", "must be an array of tables", value=watches, expected="[[watch]] tables")
        watches = []
    top.finish()

    if errors:
        if len(errors) == 1:
            raise errors[0]
        raise ConfigError(
            f"{len(errors)} problems:\n  " + "\n  ".join(e.render() for e in errors), file=file
        )
    assert state_dir is not None and pipelines_dir is not None and inbox_dir is not None
    return Config(
        state_dir=state_dir,
        pipelines_dir=pipelines_dir,
        inbox_dir=inbox_dir,
        engine=engine,
        control=control,
        resources=resources,
        watches=tuple(watches),
        source=source,
    )
