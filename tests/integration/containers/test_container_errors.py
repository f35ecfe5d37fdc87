"""What stops a container task before it runs is a clear error on the task, naming the field and what to do:
a missing image with pull = "never", a pull that cannot reach a registry, a missing runtime, a runtime that
does not answer, a GPU task without a CDI spec (or with one that does not name its GPU)."""

from __future__ import annotations

import shutil
import textwrap

import pytest
from container_helpers import pipeline_text, run_pipeline

from edgeorch.model import RunState
from edgeorch.store import Store

GPU_A = "GPU-11111111-2222-3333-4444-555555555555"


def _failed_reason(ws, run_id: int, task: str) -> tuple[str, int]:
    store = Store(ws.state / "edgeorch.db")
    try:
        row = next(t for t in store.runs.tasks_of(run_id) if t["name"] == task)
    finally:
        store.close()
    assert row["state"] == "failed", row
    return row["reason"], row["attempts"]


def _one_task(ws, container: str, extra: str = "") -> None:
    ws.pipeline("p", pipeline_text(f"""
        [tasks.t]
        command = ["true"]
        container = {container}
        {extra}
    """))


def test_a_missing_image_with_pull_never_fails_the_task_before_any_attempt(container_ws, podman):
    _one_task(container_ws, f'{{ image = "{podman.image}-nope", pull = "never" }}')
    run_id, state = run_pipeline(container_ws, "p")
    assert state == RunState.FAILED
    reason, attempts = _failed_reason(container_ws, run_id, "t")
    assert attempts == 0
    assert f"tasks.t.container.image = '{podman.image}-nope': not in podman's local storage" in reason
    assert 'pull = "never"' in reason and "podman import" in reason


def test_a_pull_that_cannot_reach_its_registry_is_a_clear_error(container_ws, podman, monkeypatch, tmp_path):
    # No network in tests: the registry is blocked by a registries.conf of the test's own (refused at once).
    conf = tmp_path / "registries.conf"
    conf.write_text('[[registry]]\nlocation = "registry.invalid"\nblocked = true\n')
    monkeypatch.setenv("CONTAINERS_REGISTRIES_CONF", str(conf))
    _one_task(container_ws, '{ image = "registry.invalid/edgeorch/absent:1", pull = "missing" }')
    run_id, state = run_pipeline(container_ws, "p")
    assert state == RunState.FAILED
    reason, attempts = _failed_reason(container_ws, run_id, "t")
    assert attempts == 0
    assert "tasks.t.container.image = 'registry.invalid/edgeorch/absent:1': podman cannot pull it" in reason
    assert "is blocked" in reason and "no network?" in reason


def test_a_missing_runtime_is_a_clear_error(workspace, tmp_path):
    workspace.write_config(extra=f'[containers]\npodman_command = ["{tmp_path}/no-such-podman", "--runtime", "runc"]\n')
    _one_task(workspace, '{ image = "localhost/whatever:1", pull = "never" }')
    run_id, state = run_pipeline(workspace, "p")
    assert state == RunState.FAILED
    reason, attempts = _failed_reason(workspace, run_id, "t")
    assert attempts == 0
    assert reason.startswith("tasks.t.container: the container runtime podman is not installed")
    assert "[containers] podman_command" in reason


@pytest.mark.skipif(shutil.which("docker") is None, reason="no docker CLI here")
def test_a_docker_cli_without_its_daemon_is_a_clear_error(workspace, tmp_path):
    sock = tmp_path / "no-docker.sock"
    workspace.write_config(extra=f'[containers]\ndocker_command = ["docker", "--host", "unix://{sock}"]\n')
    _one_task(workspace, '{ image = "busybox:1", runtime = "docker", pull = "never" }')
    run_id, state = run_pipeline(workspace, "p")
    assert state == RunState.FAILED
    reason, _ = _failed_reason(workspace, run_id, "t")
    assert "tasks.t.container: the container runtime docker failed to inspect 'busybox:1'" in reason
    assert "Cannot connect to the Docker daemon" in reason


def _fake_gpu_workspace(ws, cdi_dir, command: list[str]) -> None:
    """One fake GPU (``GPU_A``) and CDI specs looked for in ``cdi_dir``; ``command`` starts podman."""
    table = ws.root / "gpus.toml"
    table.write_text(textwrap.dedent(f"""\
        [[gpu]]
        uuid = "{GPU_A}"
        name = "NVIDIA A100-SXM4-80GB"
        memory = "10G"
        numa_node = 0
        """))
    ws.write_config(extra=textwrap.dedent(f"""
        [resources]
        gpu_backend = "fake"
        fake_gpus = "{table}"
        [containers]
        podman_command = [{", ".join(f'"{a}"' for a in command)}]
        cdi_spec_dirs = ["{cdi_dir}"]
        """))


def test_a_gpu_task_without_a_cdi_spec_is_a_clear_error(workspace, tmp_path):
    (tmp_path / "cdi").mkdir()
    _fake_gpu_workspace(workspace, tmp_path / "cdi", ["podman-is-not-needed-before-the-cdi-check"])
    _one_task(workspace, '{ image = "localhost/cuda:12", pull = "never" }', "gpus = 1")
    run_id, state = run_pipeline(workspace, "p")
    assert state == RunState.FAILED
    reason, attempts = _failed_reason(workspace, run_id, "t")
    assert attempts == 0
    assert f"tasks.t.container: the task asks for GPUs but no CDI spec for nvidia.com/gpu is in {tmp_path / 'cdi'}" \
        in reason
    assert "nvidia-ctk cdi generate" in reason


def test_a_cdi_spec_that_does_not_name_the_leased_gpu_is_a_clear_error(container_ws, podman, tmp_path):
    cdi = tmp_path / "cdi"
    cdi.mkdir()
    (cdi / "nvidia.yaml").write_text('cdiVersion: "0.5.0"\nkind: "nvidia.com/gpu"\ndevices:\n  - name: "0"\n'
                                     '    containerEdits: {}\n  - name: all\n    containerEdits: {}\n')
    _fake_gpu_workspace(container_ws, cdi, podman.command)
    _one_task(container_ws, f'{{ image = "{podman.image}", pull = "never" }}', "gpus = 1")
    run_id, state = run_pipeline(container_ws, "p")
    assert state == RunState.FAILED
    reason, attempts = _failed_reason(container_ws, run_id, "t")
    assert attempts == 0
    assert f"tasks.t.container: the CDI specs name no nvidia.com/gpu={GPU_A} (devices must be named by UUID)" in reason
