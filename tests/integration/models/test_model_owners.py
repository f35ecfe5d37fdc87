"""A model belongs to the pipeline that registered its first version: no other pipeline, and no file run from
elsewhere under other gates, registers versions of it (through a real daemon and the CLI).

Found by a user carrying models to production: a second file in the pipelines folder, or a one-off
``edgeorch run adhoc.toml``, declared ``[models.toy]`` with ``gates = []`` and ``strategy = "direct"``, registered
a version with an rmse of 999 and made it champion past the owner's gates, canary and health check; the served
file read ``EVIL``. ``models show`` then listed the intruder's gates as the model's.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time

from conftest import write_model_pipeline

LAX = '''
    name = "{name}"
    [tasks.train]
    command = ["sh", "-c", "echo EVIL > $EDGEORCH_OUTPUT_DIR/model.bin && echo '{{{{\\"rmse\\": 999, \\"r2\\": 0}}}}' > $EDGEORCH_OUTPUT_DIR/metrics.json"]
    outputs = ["model.bin", "metrics.json"]
    model = {{ name = "house", path = "model.bin", metrics = "metrics.json" }}
    [models.house]
    metrics = ["rmse", "r2"]
    gates = []
    strategy = "direct"
    '''


def _cli(ws, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*ws.cli(), *args], env=ws.cli_env(), capture_output=True, text=True, timeout=180)


def _until_loaded(ws, name: str) -> None:
    """Until the daemon has loaded pipeline ``name`` (it reloads a changed pipelines folder by itself)."""
    deadline = time.monotonic() + 30
    while name not in _cli(ws, "pipelines", "-q").stdout.split():
        assert time.monotonic() < deadline, f"pipeline {name} was not loaded"
        time.sleep(0.05)


def _versions(ws) -> list[dict]:
    return json.loads(_cli(ws, "models", "versions", "house", "--json").stdout)["versions"]


def _runs(ws) -> int:
    return len(json.loads(_cli(ws, "runs", "--json", "--limit", "100").stdout))


def test_another_pipeline_or_a_file_from_elsewhere_cannot_register_versions_under_gates_of_its_own(workspace,
                                                                                                    daemon) -> None:
    write_model_pipeline(workspace, gates='["rmse <= 50"]')  # pipeline "trainer", model "house"
    daemon.start()
    r = _cli(workspace, "run", "trainer", "-p", "rmse=20")
    assert r.returncode == 0, r.stdout + r.stderr
    assert [v["version"] for v in _versions(workspace)] == [1]
    runs = _runs(workspace)

    # A second file in the pipelines folder: refused before anything is recorded, naming the owner.
    workspace.pipeline("thief", LAX.format(name="thief"))
    _until_loaded(workspace, "thief")
    r = _cli(workspace, "run", "thief")
    assert r.returncode == 5, r.stdout + r.stderr
    assert ("pipeline thief may not register versions of model house: its task train registers it, but model "
            "house belongs to pipeline trainer (which registered its version 1)") in r.stderr
    assert "give the model another name in" in r.stderr

    # A file from elsewhere that takes the owner's name, with gates of its own: refused too.
    adhoc = workspace.root / "adhoc.toml"
    adhoc.write_text(LAX.format(name="trainer").replace("\n    ", "\n"))
    r = _cli(workspace, "run", str(adhoc))
    assert r.returncode == 5, r.stdout + r.stderr
    assert "this file's [models.house] differs from the one in" in r.stderr and "trainer.toml" in r.stderr
    assert _runs(workspace) == runs and [v["version"] for v in _versions(workspace)] == [1]

    # The owner's own file run from elsewhere (a copy) is judged by the same gates: allowed, and they still block.
    copy = workspace.root / "copy.toml"
    shutil.copy(workspace.pipelines / "trainer.toml", copy)
    r = _cli(workspace, "run", str(copy), "-p", "rmse=80")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "model house version 2: BLOCKED by its gates" in r.stdout
    show = json.loads(_cli(workspace, "models", "show", "house", "--json").stdout)
    assert show["aliases"] == {"champion": 1}
    assert show["policy"]["gates"] == ["rmse <= 50"] and show["policy_changed"] == []
