"""The engine with the real NVML backend: a GPU task runs a CUDA child with its lease and sees exactly its GPU."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
import textwrap
from pathlib import Path

from gpu_helpers import CHILD, Results

from edgeorch.config import load_config
from edgeorch.engine.engine import Engine
from edgeorch.model import RunState
from edgeorch.pipelines import resolve_params, validate_path
from edgeorch.resources.gpus.backend import GpuBackend
from edgeorch.store import Store


def test_a_gpu_task_through_the_engine_sees_only_its_leased_gpu(tmp_path: Path, nvml: GpuBackend, libcuda: None,
                                                                results: Results) -> None:
    # A folder of its own, not the suite's workspace fixture: tests/gpu/validate.sh runs without the root conftest.
    pipelines, state_dir = tmp_path / "pipelines", tmp_path / "var"
    pipelines.mkdir()
    (tmp_path / "config.toml").write_text(textwrap.dedent(f"""\
        [state]
        dir = "{state_dir}"
        [pipelines]
        dir = "{pipelines}"
        [engine]
        parallelism = 2
        [resources]
        gpu_backend = "nvml"
        """))
    (pipelines / "cuda.toml").write_text(textwrap.dedent(f"""\
        [tasks.check]
        command = ["sh", "-c", "{sys.executable} {CHILD} 268435456 > {{pipeline_dir}}/child.json"]
        gpu_memory = "1G"
        """))
    cfg = load_config(tmp_path / "config.toml")
    report = validate_path(cfg.pipelines_dir)
    assert report.ok, [e.render() for e in report.errors]

    async def main() -> tuple[int, RunState, dict]:
        store = Store(cfg.state_file)
        engine = Engine(cfg, store)
        await engine.start()
        try:
            p = report.pipelines["cuda"]
            run_id = engine.submit(p, resolve_params(p, {}))
            state = await asyncio.wait_for(engine.wait_run(run_id), 120)
            return run_id, state, engine.resources_report()
        finally:
            await engine.close()
            store.close()

    run_id, state, rep = asyncio.run(main())
    assert state == RunState.SUCCEEDED
    seen = json.loads((pipelines / "child.json").read_text())
    with sqlite3.connect(state_dir / "edgeorch.db") as conn:
        (lease,) = [json.loads(r[0]) for r in conn.execute("SELECT lease FROM leases WHERE run_id = ?", (run_id,))]
    assert seen["count"] == 1 and seen["uuids"] == lease["gpus"], (seen, lease)
    assert {g["uuid"] for g in rep["gpus"]} == {d.uuid for d in nvml.devices()}
    assert rep["gpu_backend_broken"] is False or rep["gpu_backend"]
    results.record("engine_on_gpu", {"lease": lease, "child": seen, "gpu_backend": rep["gpu_backend"]})
