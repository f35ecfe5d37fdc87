"""edgeorch's public API: exactly the documented names, each resolving, none loading numba."""

from __future__ import annotations

import subprocess
import sys

import edgeorch

DOCUMENTED = {
    "__version__", "Config", "load_config", "find_config", "Pipeline", "TaskSpec", "RunState", "TaskState",
    "AttemptState", "InputState", "load_pipeline_file", "validate_path", "Client", "AsyncClient", "Run",
    "WaitTimeout", "DaemonNotRunning", "EdgeorchError",
    "ConfigError", "PipelineError", "UsageError", "NotFoundError", "StateError", "ConflictError",
    "UnsatisfiableError", "DataError", "kernels",
}


def test_the_public_api_is_exactly_the_documented_names():
    assert set(edgeorch.__all__) == DOCUMENTED


def test_every_exported_name_resolves():
    for name in edgeorch.__all__:
        assert getattr(edgeorch, name) is not None, name


def test_errors_are_edgeorch_errors_and_states_have_transition_checks():
    for name in ("ConfigError", "PipelineError", "UsageError", "NotFoundError", "StateError", "ConflictError",
                 "UnsatisfiableError", "DataError"):
        assert issubclass(getattr(edgeorch, name), edgeorch.EdgeorchError)
    rs = edgeorch.RunState
    assert rs.can_transition(rs.QUEUED, rs.RUNNING)
    assert not rs.can_transition(rs.SUCCEEDED, rs.RUNNING)


def test_the_clients_are_the_typed_ones_and_their_errors_are_edgeorch_errors():
    from edgeorch import client, control

    assert edgeorch.Client is client.Client and edgeorch.AsyncClient is client.AsyncClient
    assert edgeorch.Client is not control.Client  # the low-level transport keeps its own name
    assert issubclass(edgeorch.WaitTimeout, (edgeorch.EdgeorchError, TimeoutError))
    assert issubclass(edgeorch.DaemonNotRunning, edgeorch.EdgeorchError)


def test_an_unknown_name_is_an_attribute_error():
    try:
        edgeorch.no_such_thing  # noqa: B018
    except AttributeError as exc:
        assert "no_such_thing" in str(exc)
    else:
        raise AssertionError("no AttributeError")


def test_importing_edgeorch_and_its_api_loads_neither_numba_nor_numpy():
    code = ("import sys, edgeorch; [getattr(edgeorch, n) for n in edgeorch.__all__ if n != 'kernels'];"
            "print(sorted(m for m in ('numba', 'numpy', 'pandas') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
