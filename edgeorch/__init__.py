"""edgeorch: a single-machine orchestrator for ML and data pipelines.

The public API is the names below (``__all__``); everything else is internal
and may change between releases. Names load lazily (PEP 562), so
``import edgeorch`` costs nothing: the CLI and the daemon start fast, and
numba is loaded only when a kernel function is first used.

- configuration: :func:`load_config`, :func:`find_config`, :class:`Config`;
- pipelines: :func:`load_pipeline_file`, :func:`validate_path`,
  :class:`Pipeline`, :class:`TaskSpec`;
- states: :class:`RunState`, :class:`TaskState`, :class:`AttemptState`,
  :class:`InputState` (with their transition tables);
- the daemon's Python client (docs/python.md): :class:`Client`, :class:`AsyncClient`,
  the :class:`Run` records they return, :class:`WaitTimeout`, :class:`DaemonNotRunning`
  (:mod:`edgeorch.client` has the other records; the low-level transport is
  ``edgeorch.control.Client``, the wire is docs/protocol.md);
- errors: :class:`EdgeorchError` and its kinds, each with an exit code;
- :mod:`edgeorch.kernels`: profiling, drift and fairness.
"""

from __future__ import annotations

# No imports at the top: the zygote imports this package first and starts sooner without
# ``typing`` (with what it pulls in, ~30 ms on a small VM); see engine/executors/local/zygote.py.

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "Config": "edgeorch.config",
    "load_config": "edgeorch.config",
    "find_config": "edgeorch.config",
    "Pipeline": "edgeorch.model",
    "TaskSpec": "edgeorch.model",
    "RunState": "edgeorch.model",
    "TaskState": "edgeorch.model",
    "AttemptState": "edgeorch.model",
    "InputState": "edgeorch.model",
    "load_pipeline_file": "edgeorch.pipelines",
    "validate_path": "edgeorch.pipelines",
    "Client": "edgeorch.client",
    "AsyncClient": "edgeorch.client",
    "Run": "edgeorch.client",
    "WaitTimeout": "edgeorch.client",
    "DaemonNotRunning": "edgeorch.client",
    "EdgeorchError": "edgeorch.errors",
    "ConfigError": "edgeorch.errors",
    "PipelineError": "edgeorch.errors",
    "UsageError": "edgeorch.errors",
    "NotFoundError": "edgeorch.errors",
    "StateError": "edgeorch.errors",
    "ConflictError": "edgeorch.errors",
    "UnsatisfiableError": "edgeorch.errors",
    "DataError": "edgeorch.errors",
}
_SUBMODULES = ("kernels",)

__all__ = sorted([*_EXPORTS, *_SUBMODULES, "__version__"])


def __getattr__(name: str) -> object:
    import importlib

    if name in _SUBMODULES:
        return importlib.import_module(f"edgeorch.{name}")
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'edgeorch' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
