"""config.toml -> frozen dataclasses, and where the config and the socket are.

Lookup (:func:`find_config`, the one rule the CLI and the daemon share): the
first of ``--config PATH``, ``$EDGEORCH_CONFIG``, ``./config.toml``,
``$XDG_CONFIG_HOME/edgeorch/config.toml`` (``~/.config`` when unset),
``/etc/edgeorch/config.toml``; else the embedded defaults (the same values as
the repository's ``config.toml``). An explicit path (option or variable) that
does not exist is an error; the others are skipped when absent.

The socket (:attr:`Config.socket_path`): ``[control] socket`` when set, else
``$RUNTIME_DIRECTORY/edgeorch.sock`` (systemd sets it for the daemon), else
the runtime folder of the config's layout: a config in ``/etc/edgeorch`` is
the system install, whose socket is ``/run/edgeorch/edgeorch.sock``; a config
in ``$XDG_CONFIG_HOME/edgeorch`` is a per-user install, whose socket is
``$XDG_RUNTIME_DIR/edgeorch/edgeorch.sock``; any other config (a checkout, the
embedded defaults) keeps its socket in its state folder. So a CLI finds the
daemon that systemd runs with the same file, without any variable.

``$EDGEORCH_ROOT`` (tests only) prefixes the system paths ``/etc/edgeorch``
and ``/run/edgeorch`` so the system layout can be exercised under a temporary
folder. Relative paths in a config file are resolved against the folder that
holds the file, so the daemon behaves the same whatever its working directory.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import field, replace
from pathlib import Path
from typing import Any

from .errors import ConfigError, EdgeorchError
from .loglevel import LOG_FORMATS, LOG_LEVELS
from .records import frozen
from .tomlcheck import TableReader, load_toml
from .units import TOO_LONG, parse_duration

CONFIG_ENV = "EDGEORCH_CONFIG"
ROOT_ENV = "EDGEORCH_ROOT"
"""Test-only prefix of the system paths (/etc/edgeorch, /run/edgeorch); unset in production."""
SOCKET_NAME = "edgeorch.sock"
FOUND_HERE = "./config.toml"
"""How :func:`find_config` names a config it found in the working folder (checked: :func:`_read_found_here`)."""


@frozen
class EngineConfig:
    """How tasks are run."""

    parallelism: int = 2
    """At most this many attempts run at once (before resource limits)."""
    log_max_bytes: int = 64 * 1024 * 1024
    """Per-attempt log cap: a longer log keeps its start and its end (the shim's ``_LogCopy``), with markers."""
    kill_grace: float = 10.0
    """Seconds between SIGTERM and SIGKILL when stopping a process group."""
    default_timeout: float | None = None
    """Timeout applied to tasks that set none (None: no limit)."""
    stop_tasks_on_shutdown: bool = False
    """On SIGTERM of the daemon: False keeps tasks running (live restore)."""


@frozen
class ControlConfig:
    """The Unix control socket and who may use it."""

    socket: Path | None = None
    """Socket path; None: see :attr:`Config.socket_path` (the module docstring gives the order)."""
    group: str | None = None
    """Group owning the socket (mode 0660) and its folder (0750)."""
    readers: tuple[str, ...] = ()
    """Users (``alice``) or groups (``@ml``) that may read state."""
    operators: tuple[str, ...] = ()
    """Users or groups that may act (trigger, cancel, retry, pause, reload)."""
    max_line_bytes: int = 1024 * 1024
    idle_timeout: float = 300.0
    max_clients: int = 1024


@frozen
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
    visible_devices: str = "uuid"
    """How CUDA_VISIBLE_DEVICES names a task's GPUs: uuid (default) | index (for tools that mishandle UUIDs)."""


EXECUTOR_KINDS = ("local", "ray")
"""``[executor] kind``: where attempts run (docs/scale-out.md)."""


@frozen
class ExecutorConfig:
    """``[executor]``: where attempts run (docs/scale-out.md).

    ``local`` (the default) runs them on this machine; ``ray`` on a Ray
    cluster (the ``ray`` extra; imported only then). ``address`` and
    ``namespace`` matter only for ``ray``; ``storage`` moves the run folders
    (outputs, checkpoints, attempt folders) to a path every node reaches.
    """

    kind: str = "local"
    address: str | None = None
    """The cluster to join (``"auto"``, ``"10.0.0.5:6379"``, ``"ray://head:10001"``); None: Ray's own
    lookup (``$RAY_ADDRESS``, else a cluster started on this machine)."""
    namespace: str = "edgeorch"
    """The Ray namespace of this daemon's attempt actors; one per daemon sharing a cluster."""
    storage: Path | None = None
    """The folder of run folders when set (``<storage>/runs``); None: ``<state dir>/runs``."""


@frozen
class RetentionConfig:
    """``[retention]``: when finished runs (their rows and folders) are removed (docs/state.md "Retention")."""

    runs: float | None = None
    """Seconds after a run finished before the daemon removes it; None (``"forever"``, the default): never."""
    keep_last: int = 0
    """The latest this many runs of each pipeline are always kept, whatever their age (0: no such hold)."""
    audit: float | None = None
    """Seconds the audit log's records are kept; older ones are pruned by the same sweep, up to the newest seal
    among them (what remains verifies from its checkpoint: docs/audit.md "Pruning"). None (``"forever"``, the
    default): never (the log then grows with every run, ~10 records each)."""
    inputs: float | None = None
    """Seconds a settled drop-folder input's record is kept once its run was removed and no file of it is left in
    the inbox or quarantine (``store.inputs.prune``); its content is then forgotten by duplicate detection too. None
    (``"forever"``, the default): never (each dropped file's record, ~650 bytes, stays)."""


@frozen
class AuditConfig:
    """``[audit]``: how often the daemon seals the audit log's head (docs/audit.md "Sealing")."""

    seal_every: int = 1000
    """Seal once this many records were appended since the last seal."""
    seal_interval: float = 300.0
    """Seal at least this often (seconds) while records arrive; also at start and stop."""


@frozen
class DaemonConfig:
    """The daemon process itself."""

    log_level: str = "info"
    """What the daemon logs (one of :data:`~edgeorch.loglevel.LOG_LEVELS`); ``edgeorch daemon --log-level``
    (or ``-v``/``-q``, one step each) overrides it for one start."""
    log_format: str = "auto"
    """How (one of :data:`~edgeorch.loglevel.LOG_FORMATS`): auto is the journal with fields under systemd, else
    text; json: JSON lines; journal; text."""


@frozen
class MetricsConfig:
    """``[metrics]``: Prometheus metrics (docs/operations.md "Metrics"); nothing is served or written unless
    ``listen`` or ``textfile`` is set (the ``metrics`` op always answers)."""

    listen: tuple[str, int] | None = None
    """``(host, port)`` of the HTTP endpoint (a bare port listens on 127.0.0.1 only); None: no endpoint."""
    textfile: Path | None = None
    """A node_exporter textfile-collector file (``*.prom``), replaced atomically every ``interval``; None: none."""
    interval: float = 15.0
    """Seconds between two writes of the textfile."""


@frozen
class KernelsConfig:
    """``[kernels]``: the numba kernels' compile cache (docs/kernels.md "Compile cache")."""

    warm_up: bool = True
    """After start, the daemon compiles every kernel into the cache in the background, at idle priority, unless
    the cache is warm already (:mod:`edgeorch.kernels.warmer`); False: kernels compile on first use."""
    keep_warm: float = 600.0
    """Seconds a kernel server stays after its last request, serving the user's next ``edgeorch profile | drift |
    fairness`` without their ~0.6 s of imports (:mod:`edgeorch.kernels.keepwarm`); 0: none is started."""


@frozen
class MonitorConfig:
    """``[monitor]``: monitoring rules outside pipeline files (docs/monitoring.md "A rules folder")."""

    rules_dir: Path | None = None
    """A folder of ``*.toml`` files holding only ``[[on]]`` rules, reloaded like the pipelines folder; None:
    ``<pipelines dir>/rules`` (:attr:`Config.rules_dir`). A folder that does not exist holds no rules."""


@frozen
class ContainersConfig:
    """``[containers]``: how container tasks reach their runtime (docs/containers.md).

    Each runtime's command is the argv that starts its CLI: the binary (a name
    looked up on ``PATH``, or a path) and any global flags, placed before
    ``run``, ``image inspect``, ``pull`` and ``rm`` (``["podman", "--runtime",
    "runc"]`` on a machine where crun cannot run).
    """

    runtime: str = "podman"
    """The runtime of tasks whose ``container`` names none (``podman`` or ``docker``)."""
    podman_command: tuple[str, ...] = ("podman",)
    docker_command: tuple[str, ...] = ("docker",)
    cdi_spec_dirs: tuple[str, ...] = ("/etc/cdi", "/var/run/cdi")
    """Where CDI specs are looked for (a GPU task needs one for ``nvidia.com/gpu``)."""

    def command(self, runtime: str) -> tuple[str, ...]:
        """The argv prefix of ``runtime`` (``podman`` or ``docker``)."""
        return self.docker_command if runtime == "docker" else self.podman_command


@frozen
class Config:
    """The whole configuration; ``source`` is the file it came from (None: embedded)."""

    state_dir: Path
    pipelines_dir: Path
    inbox_dir: Path
    engine: EngineConfig = field(default_factory=EngineConfig)
    control: ControlConfig = field(default_factory=ControlConfig)
    resources: ResourcesConfig = field(default_factory=ResourcesConfig)
    daemon: DaemonConfig = field(default_factory=DaemonConfig)
    watches: tuple[dict[str, Any], ...] = ()
    """Raw ``[[watch]]`` tables, validated by the triggers module."""
    inbox_keep: float | None = 30 * 86400.0
    """``[inbox] keep``: seconds a finished input's file is kept (inbox or quarantine) after its
    last state change, then removed (its record stays); None (``"forever"``): never removed."""
    retention: RetentionConfig = field(default_factory=RetentionConfig)
    audit: AuditConfig = field(default_factory=AuditConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    kernels: KernelsConfig = field(default_factory=KernelsConfig)
    monitor: MonitorConfig = field(default_factory=MonitorConfig)
    containers: ContainersConfig = field(default_factory=ContainersConfig)
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)
    source: Path | None = None
    runtime_dir: Path | None = None
    """The socket's folder implied by where the config was found (see :func:`layout_runtime_dir`);
    None: the state folder."""

    @property
    def state_file(self) -> Path:
        return self.state_dir / "edgeorch.db"

    @property
    def runs_dir(self) -> Path:
        """Where run folders are made: ``<[executor] storage>/runs`` when set (every node of a cluster
        reaches it), else ``<state dir>/runs``. The one rule: the engine, gc and retention all read it."""
        return (self.executor.storage or self.state_dir) / "runs"

    @property
    def rules_dir(self) -> Path:
        """``[monitor] rules_dir``, else ``<pipelines dir>/rules``: the one rule the daemon and ``validate`` read."""
        return self.monitor.rules_dir or self.pipelines_dir / "rules"

    @property
    def numba_cache_dir(self) -> Path:
        return self.state_dir / "numba-cache"

    @property
    def socket_path(self) -> Path:
        """``[control] socket``, else ``$RUNTIME_DIRECTORY/edgeorch.sock``, else the layout's, else the state folder's."""
        if self.control.socket is not None:
            return self.control.socket
        runtime = os.environ.get("RUNTIME_DIRECTORY")
        if runtime:
            return Path(runtime.split(":")[0]) / SOCKET_NAME
        return (self.runtime_dir or self.state_dir) / SOCKET_NAME


def system_root() -> Path:
    """``/``, or ``$EDGEORCH_ROOT`` in tests of the system layout."""
    return Path(os.environ.get(ROOT_ENV) or "/")


def system_config_dir() -> Path:
    """``/etc/edgeorch`` (under :func:`system_root`)."""
    return system_root() / "etc" / "edgeorch"


def system_runtime_dir() -> Path:
    """``/run/edgeorch`` (under :func:`system_root`): where the system unit's daemon listens."""
    return system_root() / "run" / "edgeorch"


def user_config_dir() -> Path:
    """``$XDG_CONFIG_HOME/edgeorch`` (``~/.config/edgeorch`` when the variable is unset or empty)."""
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "edgeorch"


def find_config(explicit: str | os.PathLike[str] | None = None) -> tuple[Path | None, str]:
    """Which config file to load: ``(path, how it was found)``; ``(None, "embedded defaults")`` when none.

    The order is the module docstring's. An explicit path (``explicit`` or
    ``$EDGEORCH_CONFIG``) is returned even when missing: :func:`load_config`
    then says it is not found rather than silently using another file.
    """
    if explicit is not None and str(explicit) != "":
        return Path(explicit), "--config"
    env = os.environ.get(CONFIG_ENV)
    if env:
        return Path(env), f"${CONFIG_ENV}"
    for path, how in config_candidates():
        if path.is_file():
            return path, how
    return None, "embedded defaults"


def config_candidates() -> list[tuple[Path, str]]:
    """The files :func:`find_config` tries after ``--config`` and ``$EDGEORCH_CONFIG``, in order.

    Each is ``(path, name)``: the path on this machine now, and how messages,
    ``--help`` and the man page name it.
    """
    return [(Path("config.toml"), FOUND_HERE),
            (user_config_dir() / "config.toml", "$XDG_CONFIG_HOME/edgeorch/config.toml"),
            (system_config_dir() / "config.toml", "/etc/edgeorch/config.toml")]


def layout_runtime_dir(config_file: Path | None) -> Path | None:
    """The socket folder implied by a config file's location (None: use the state folder).

    ``/etc/edgeorch/*`` -> ``/run/edgeorch``; ``$XDG_CONFIG_HOME/edgeorch/*`` ->
    ``$XDG_RUNTIME_DIR/edgeorch`` (when that variable is set). These are the
    folders the shipped system and user units give the daemon as
    ``RuntimeDirectory=edgeorch``.
    """
    if config_file is None:
        return None
    folder = config_file.resolve().parent
    if folder == system_config_dir().resolve():
        return system_runtime_dir()
    xdg_runtime = os.environ.get("XDG_RUNTIME_DIR")
    if xdg_runtime and folder == user_config_dir().resolve():
        return Path(xdg_runtime) / "edgeorch"
    return None


EMBEDDED_DEFAULTS = """\
# edgeorch configuration (embedded defaults).
[state]
dir = "./var"

[pipelines]
dir = "./examples/pipelines"

[inbox]
dir = "./var/inbox"
# A finished input's file (kept in the inbox, or in quarantine when its run failed, for retry
# and lineage) is removed this long after its last state change; its record stays.
# A duration of at least 1s, or "forever" (never removed). docs/triggers.md "Inbox lifecycle".
keep = "30d"

[engine]
parallelism = 2
log_max_bytes = "64M"
kill_grace = "10s"

[daemon]
# What the daemon logs on stderr (the journal under systemd): debug, info, warning or error.
# `edgeorch daemon --log-level LEVEL` (or -v / -q, one step each) overrides it for one start.
log_level = "info"
# auto: under systemd, the journal with fields (journalctl -u edgeorch RUN_ID=42), else text;
# or text, json (JSON lines on stderr), journal. docs/operations.md "Where the logs are".
log_format = "auto"

[metrics]
# Prometheus metrics (docs/operations.md "Metrics"). Off until one of these is set:
# listen = "9464"            # http://127.0.0.1:9464/metrics ("0.0.0.0:9464": every interface)
# textfile = "/var/lib/prometheus/node-exporter/edgeorch.prom"   # for node_exporter's textfile collector
interval = "15s"             # how often the textfile is rewritten

# A drop-in folder: a CSV batch copied (cp, mv, rsync) into ./examples/drop starts one
# data_checks run on it (validate, profile, drift against the reference, fairness).
[[watch]]
folder = "./examples/drop"
pipeline = "data_checks"
patterns = ["*.csv"]
param = "batch"
"""


def one_error(errors: list[EdgeorchError], file: str | None) -> EdgeorchError:
    """The error to raise for ``errors`` (not empty) found in config file ``file``: the one, or one listing every
    problem (a user fixes them all in one edit)."""
    if len(errors) == 1:
        return errors[0]
    return ConfigError(f"{len(errors)} problems:\n  " + "\n  ".join(e.render() for e in errors), file=file)


def load_config(path: str | os.PathLike[str] | None = None, *, named_by: str = "--config") -> Config:
    """Load the configuration found by :func:`find_config` (``path`` is ``--config``; ``named_by``: what named it,
    for the error when it is missing: the Python client says ``config=``).

    Raises :class:`ConfigError` naming the file, field and value on any problem.
    """
    found, how = find_config(path)
    if how == "--config":
        how = named_by
    if found is None:
        import tomllib

        cwd = Path.cwd()
        cfg = parse_config(tomllib.loads(EMBEDDED_DEFAULTS), base=cwd, file="<embedded defaults>", source=None)
        _check_found_here(cfg, cwd, "the embedded defaults'")
        return cfg
    if not found.exists():
        raise ConfigError(f"config file not found (from {how})", file=str(found),
                          hint="check the path (a typo?), or name none to use the usual lookup "
                               "(./config.toml, $XDG_CONFIG_HOME/edgeorch/config.toml, /etc/edgeorch/config.toml)")
    data = _read_found_here(found) if how == FOUND_HERE else load_toml(found, ConfigError)
    try:
        cfg = parse_config(data, base=found.resolve().parent, file=str(found), source=found.resolve())
    except EdgeorchError:
        raise
    except Exception as exc:  # noqa: BLE001 - a bug met by one value: this file's error (a reload refuses it), never
        # a crash: an OverflowError in a SIGHUP's reload ended the daemon, and every command exited 70.
        raise ConfigError(f"cannot read this config ({type(exc).__name__}: {exc}): a bug, please report it; a "
                          "running daemon goes on with the config it has", file=str(found)) from exc
    if how == FOUND_HERE:  # its own file is the user's; what its relative paths name in this folder may not be
        _check_found_here(cfg, Path.cwd(), f"{found}'s")
    return replace(cfg, runtime_dir=layout_runtime_dir(found))


_UNTRUSTED_HINT = ("whoever can write it could run commands as you: run edgeorch from a folder of your own, or name "
                   "a config you trust with --config (or $EDGEORCH_CONFIG)")


def _read_found_here(found: Path) -> dict[str, Any]:
    """``./config.toml``, parsed, when it may be trusted (:mod:`edgeorch.trust`): found in the working folder, it may
    be another user's (``/tmp``, a shared folder); ConfigError naming it and why, else."""
    from .tomlcheck import parse_toml_bytes
    from .trust import read_trusted

    try:
        raw = read_trusted(found, chosen=True)
    except PermissionError as exc:
        raise ConfigError(f"refusing to use this config file: {exc.strerror}", file=str(found),
                          hint=_UNTRUSTED_HINT) from None
    except OSError as exc:
        raise ConfigError(f"cannot read file: {exc.strerror}", file=str(found)) from None
    return parse_toml_bytes(raw, found, ConfigError)


def _check_found_here(cfg: "Config", cwd: Path, whose: str) -> None:
    """The working folder, and the folders a config found there names under it (its state, pipelines and inbox:
    the embedded defaults' ``./var``, ``./examples/pipelines``), are used only when they may be trusted
    (:mod:`edgeorch.trust`): in ``/tmp`` or another user's folder, ``./examples/pipelines`` could be theirs, even
    next to a config of the user's own. A folder the config names outside the working folder is its choice."""
    from .trust import path_problem

    for what, folder in (("state folder", cfg.state_dir), ("pipelines folder", cfg.pipelines_dir),
                         ("inbox folder", cfg.inbox_dir)):
        found = path_problem(folder if folder.is_relative_to(cwd) else cwd, cwd, chosen=True)
        if found is not None:
            bad, why = found
            raise ConfigError(f"refusing {whose} {what} here ({folder}): {why}", file=str(bad),
                              hint=_UNTRUSTED_HINT)


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
    # Unset: in the state folder, wherever that is (it was ./var/inbox beside the config: a config setting only
    # [state] dir kept its inbox beside itself, /etc/edgeorch/var/inbox, read-only under the system unit).
    inbox_dir = path_of(inbox, "dir", None) or (state_dir / "inbox" if state_dir is not None else None)
    inbox_keep = _keep(inbox, "keep", Config.__dataclass_fields__["inbox_keep"].default)
    inbox.finish()

    ret = top.sub("retention")
    retention = RetentionConfig(runs=_keep(ret, "runs", None),
                                keep_last=ret.int("keep_last", 0, minimum=0, maximum=1_000_000),
                                audit=_keep(ret, "audit", None), inputs=_keep(ret, "inputs", None))
    ret.finish()

    aud = top.sub("audit")
    da = AuditConfig()
    audit = AuditConfig(
        seal_every=aud.int("seal_every", da.seal_every, minimum=1, maximum=10_000_000),
        seal_interval=_at_least(aud, "seal_interval", aud.duration("seal_interval", da.seal_interval),
                                1.0, da.seal_interval, "a duration of at least 1s (default 5m)"),
    )
    aud.finish()

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
        max_line_bytes=_at_least(ctl, "max_line_bytes", ctl.size("max_line_bytes", dc.max_line_bytes),
                                 CONTROL_MIN_LINE_BYTES, dc.max_line_bytes, "a size of at least 1K (default 1M)"),
        idle_timeout=_at_least(ctl, "idle_timeout", ctl.duration("idle_timeout", dc.idle_timeout),
                               CONTROL_MIN_IDLE_S, dc.idle_timeout, "a duration of at least 1s (default 300s)"),
        max_clients=ctl.int("max_clients", dc.max_clients, minimum=1),
    )
    ctl.finish()

    dmn = top.sub("daemon")
    daemon = DaemonConfig(log_level=dmn.choice("log_level", LOG_LEVELS, DaemonConfig.log_level),
                          log_format=dmn.choice("log_format", LOG_FORMATS, DaemonConfig.log_format))
    dmn.finish()

    ker = top.sub("kernels")
    kernels = KernelsConfig(warm_up=ker.bool("warm_up", KernelsConfig.warm_up),
                            keep_warm=ker.duration("keep_warm", KernelsConfig.keep_warm))
    ker.finish()

    mon = top.sub("monitor")
    monitor = MonitorConfig(rules_dir=path_of(mon, "rules_dir", None))
    mon.finish()

    containers = _containers(top.sub("containers"))

    met = top.sub("metrics")
    metrics = _metrics(met, path_of(met, "textfile", None))
    met.finish()

    exe = top.sub("executor")
    executor = _executor(exe, path_of)
    exe.finish()

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
        visible_devices=res.choice("visible_devices", ("uuid", "index"), "uuid"),
    )
    res.finish()

    watches = top.raw("watch", [])
    if not isinstance(watches, list) or not all(isinstance(w, dict) for w in watches):
        top.fail("watch", "must be an array of tables", value=watches, expected="[[watch]] tables")
        watches = []
    top.finish()

    if errors:
        raise one_error(errors, file)
    assert state_dir is not None and pipelines_dir is not None and inbox_dir is not None
    return Config(
        state_dir=state_dir,
        pipelines_dir=pipelines_dir,
        inbox_dir=inbox_dir,
        engine=engine,
        control=control,
        resources=resources,
        daemon=daemon,
        watches=tuple(watches),
        inbox_keep=inbox_keep,
        retention=retention,
        audit=audit,
        metrics=metrics,
        kernels=kernels,
        monitor=monitor,
        containers=containers,
        executor=executor,
        source=source,
    )


CONTROL_MIN_LINE_BYTES = 1024
"""The smallest ``control.max_line_bytes``: below it no real request fits (0 would break every connection)."""
CONTROL_MIN_IDLE_S = 1.0
"""The shortest ``control.idle_timeout``: below it a client is dropped before it can send (0: at once)."""


def _at_least(reader: TableReader, key: str, value: Any, minimum: float, default: Any, expected: str) -> Any:
    """``value`` (already parsed from ``key``), or ``default`` with an error recorded when it is below ``minimum``."""
    if value < minimum:
        reader.fail(key, "is too small", value=reader.raw(key), expected=expected)
        return default
    return value


LISTEN_EXPECTED = ('a port ("9464": 127.0.0.1 only) or host:port ("127.0.0.1:9464", "[::1]:9464", '
                   '"0.0.0.0:9464" for every interface)')
METRICS_MIN_INTERVAL_S = 1.0


def parse_listen(value: object) -> tuple[str, int]:
    """``[metrics] listen`` -> ``(host, port)``: ``"9464"`` or ``9464`` (127.0.0.1), ``"host:9464"``, ``"[::1]:9464"``.

    Port 0 asks for any free port (tests). Raises ``ValueError`` whose text
    is the reason for anything else.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        host, port_text = "127.0.0.1", str(value)
    elif isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            host, sep, rest = text[1:].partition("]")
            if not sep or not rest.startswith(":"):
                raise ValueError("is not a valid [IPv6]:port address")
            port_text = rest[1:]
        elif ":" in text:
            host, _, port_text = text.rpartition(":")
            if ":" in host:
                raise ValueError("has an IPv6 host without brackets")
        else:
            host, port_text = "127.0.0.1", text
        if not host:
            raise ValueError("has no host before the port")
    else:
        raise ValueError("is not a port or host:port")
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError("has no valid port (0 to 65535)")
    return host, int(port_text)


def _metrics(reader: TableReader, textfile: Path | None) -> MetricsConfig:
    """The ``[metrics]`` table (``textfile`` already resolved against the config's folder)."""
    d = MetricsConfig()
    listen = None
    value = reader.raw("listen", None)
    if value is not None and value != "":
        try:
            listen = parse_listen(value)
        except ValueError as exc:
            reader.fail("listen", str(exc), value=value, expected=LISTEN_EXPECTED)
    if textfile is not None and not textfile.name.endswith(".prom"):
        reader.fail("textfile", "does not end in .prom", value=str(textfile),
                    expected="a file name ending in .prom (node_exporter's textfile collector reads only those)")
        textfile = None
    interval = _at_least(reader, "interval", reader.duration("interval", d.interval), METRICS_MIN_INTERVAL_S,
                         d.interval, "a duration of at least 1s (default 15s)")
    return MetricsConfig(listen=listen, textfile=textfile, interval=interval)


RAY_NAMESPACE_EXPECTED = "letters, digits, '-', '_' or '.' (at most 64), e.g. \"edgeorch\" or \"edgeorch-lab2\""


def _executor(reader: TableReader, path_of: Callable[[TableReader, str, str | None], Path | None]) -> ExecutorConfig:
    """The ``[executor]`` table. Nothing here imports Ray: a missing ``ray`` package is reported when the
    engine starts the executor, so commands that only read state work without it."""
    d = ExecutorConfig()
    kind = reader.choice("kind", EXECUTOR_KINDS, d.kind)
    address = reader.str("address", None)
    namespace = reader.str("namespace", d.namespace)
    if namespace is not None and not _NAMESPACE_RE.fullmatch(namespace):
        reader.fail("namespace", "is not a valid Ray namespace", value=namespace, expected=RAY_NAMESPACE_EXPECTED)
        namespace = d.namespace
    raw_storage = reader.raw("storage", None)
    storage = None
    if isinstance(raw_storage, str) and "://" in raw_storage:
        reader.fail("storage", "is a URL; only a folder path is supported", value=raw_storage,
                    expected="an absolute folder every node mounts at the same path (NFS, CephFS, a bind mount)")
    else:
        storage = path_of(reader, "storage", None)
    if kind == "local" and address is not None:
        reader.fail("address", "is set but kind is \"local\"", value=address,
                    expected='kind = "ray" with it, or no address')
    return ExecutorConfig(kind=kind or d.kind, address=address, namespace=namespace or d.namespace, storage=storage)


def _containers(reader: TableReader) -> ContainersConfig:
    """The ``[containers]`` table: the default runtime and the command line of each (binary + global flags)."""
    from .containers import RUNTIMES  # the one list of runtimes (the task key's)

    d = ContainersConfig()
    runtime = reader.choice("runtime", RUNTIMES, d.runtime)
    commands = {}
    for rt in RUNTIMES:
        key = f"{rt}_command"
        argv = reader.str_list(key, None)
        if argv is not None and (not argv or not argv[0].strip()):
            reader.fail(key, "must name the program", value=argv,
                        expected=f'["{rt}"] or ["/usr/bin/{rt}", "--global-flag", ...]')
            argv = None
        commands[rt] = tuple(argv) if argv is not None else d.command(rt)
    dirs = reader.str_list("cdi_spec_dirs", None)
    reader.finish()
    return ContainersConfig(runtime=runtime or d.runtime, podman_command=commands["podman"],
                            docker_command=commands["docker"],
                            cdi_spec_dirs=tuple(dirs) if dirs is not None else d.cdi_spec_dirs)


_NAMESPACE_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")


KEEP_MIN = 1.0
"""The shortest retention bound (``[inbox] keep``, ``[retention] runs``, ``edgeorch gc --older-than``)."""
KEEP_EXPECTED = f'a duration of at least {KEEP_MIN:g}s ("30d", "12h", "1s") or "forever"'


def parse_keep(value: object) -> float | None:
    """A retention bound: seconds (a duration of at least :data:`KEEP_MIN`), or None for ``"forever"``.

    The one rule for every retention setting. ``0`` is refused rather than read as "remove at
    once" or "keep forever": both readings are plausible and either would surprise; say
    ``"forever"`` or a real duration. Raises ``ValueError`` whose text is the reason
    (``is not a valid retention``, ``is too short``) for anything else.
    """
    if value == "forever":
        return None
    try:
        keep = parse_duration(value)
    except ValueError as exc:
        raise ValueError(f"is {exc}" if str(exc) == TOO_LONG else "is not a valid retention") from None
    if keep < KEEP_MIN:
        raise ValueError("is too short")
    return keep


def _keep(reader: TableReader, key: str, default: float | None) -> float | None:
    """``key`` of ``reader``'s table read by :func:`parse_keep`; ``default`` when absent (or wrong: error recorded)."""
    value = reader.raw(key, _UNSET)
    if value is _UNSET:
        return default
    try:
        return parse_keep(value)
    except ValueError as exc:
        reader.fail(key, str(exc), value=value, expected=KEEP_EXPECTED)
        return default


_UNSET = object()


CONFIG_OPTION_HELP = ("config file (default: $EDGEORCH_CONFIG, "
                      + ", ".join(how for _, how in config_candidates()) + ", else embedded defaults)")

