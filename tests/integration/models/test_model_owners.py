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
    # `validate` says so too (it said "ok thief", and a renamed pipeline's every scheduled fire was refused).
    v = _cli(workspace, "validate")
    assert v.returncode == 1 and "error  " in v.stdout and "pipeline thief may not register versions of model house" \
        in v.stdout, v.stdout

    # A file from elsewhere that takes the owner's name, with gates of its own: refused too.
    adhoc = workspace.root / "adhoc.toml"
    adhoc.write_text(LAX.format(name="trainer").replace("\n    ", "\n"))
    r = _cli(workspace, "run", str(adhoc))
    assert r.returncode == 5, r.stdout + r.stderr
    assert "this run's [models.house] differs from the one in" in r.stderr and "trainer.toml" in r.stderr
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


def _owner(name: str, *, gates: str = '["rmse <= 50"]', deploy: str = 'dir = "serving"', fail_unless: str = "") -> str:
    """Pipeline ``name`` registering model ``m`` (rmse from its param) under ``gates``, deployed as ``deploy`` says;
    ``fail_unless``: a file whose absence fails the task after it wrote its outputs."""
    check = f" && test -f {fail_unless}" if fail_unless else ""
    return f'''
        name = "{name}"
        [params]
        rmse = 20.0
        [tasks.train]
        command = ["sh", "-c", "echo model-{{rmse}} > $EDGEORCH_OUTPUT_DIR/m.bin && echo '{{{{\\"rmse\\": {{rmse}}}}}}' > $EDGEORCH_OUTPUT_DIR/metrics.json{check}"]
        outputs = ["m.bin", "metrics.json"]
        model = {{ name = "m", path = "m.bin", metrics = "metrics.json" }}
        [models.m]
        metrics = ["rmse"]
        gates = {gates}
        [models.m.deploy]
        {deploy}
        '''


def _write(path, text: str) -> None:
    import textwrap

    path.write_text(textwrap.dedent(text))


def test_no_run_from_elsewhere_brings_its_own_policy_whatever_the_folder_holds(workspace, daemon) -> None:
    """Found re-testing the rule: a copy run in-process (`run --here`), a copy whose relative deploy.dir named a
    folder of its own, and a copy run once the owner's file was deleted (nothing to compare with) each registered
    versions under a policy of their own."""
    workspace.pipeline("own", _owner("own"))
    assert workspace.invoke("run", "own").returncode == 0  # in-process: version 1, owner "own"
    elsewhere = workspace.root / "elsewhere"
    elsewhere.mkdir()
    lax = elsewhere / "lax.toml"
    _write(lax, _owner("own", gates="[]"))
    r = workspace.invoke("run", str(lax), "-p", "rmse=99")  # without a daemon: the same rule
    assert r.returncode == 5 and "this run's [models.m] differs from the one in" in r.stderr, r.stdout + r.stderr
    copy = elsewhere / "copy.toml"
    _write(copy, _owner("own"))  # the same text: its relative deploy.dir is another folder from there
    r = workspace.invoke("run", str(copy))
    assert r.returncode == 5 and "(deploy)" in r.stderr, r.stdout + r.stderr
    (workspace.pipelines / "own.toml").unlink()  # nothing in the folder to compare with: the stored policy judges
    daemon.start()
    r = _cli(workspace, "run", str(lax), "-p", "rmse=99")
    assert r.returncode == 5, r.stdout + r.stderr
    assert "differs from the policy stored with model m at its last registration" in r.stderr
    assert [v["version"] for v in _versions_of(workspace, "m")] == [1]


def test_a_retry_registers_under_the_policy_that_judges_the_model_now(workspace, daemon) -> None:
    """Found re-testing the rule: a run that failed after its model task, retried once the folder's gates were
    tightened, registered its version under the run's recorded `gates = []` and made it champion."""
    marker = workspace.root / "go"
    workspace.pipeline("own", _owner("own", gates="[]", fail_unless=str(marker)))
    daemon.start()
    marker.touch()
    assert _cli(workspace, "run", "own", "-p", "rmse=5").returncode == 0  # version 1
    marker.unlink()
    r = _cli(workspace, "run", "own", "-p", "rmse=500")  # fails after writing its outputs: nothing registered
    assert r.returncode == 1, r.stdout + r.stderr
    failed = json.loads(_cli(workspace, "runs", "--json", "--limit", "1").stdout)[0]["id"]
    before = _content_hash(workspace)
    workspace.pipeline("own", _owner("own", gates='["rmse <= champion.rmse"]', fail_unless=str(marker)))
    _until_reloaded(workspace, before)
    marker.touch()
    r = _cli(workspace, "retry", str(failed))
    assert r.returncode == 5, r.stdout + r.stderr
    assert "this run's [models.m] differs from the one in" in r.stderr and "--current" in r.stderr
    r = _cli(workspace, "retry", str(failed), "--current")  # under the file as it is now: its gates block it
    assert r.returncode == 0, r.stdout + r.stderr
    assert "BLOCKED by its gates" in r.stdout
    show = json.loads(_cli(workspace, "models", "show", "m", "--json").stdout)
    assert show["aliases"] == {"champion": 1}


def _versions_of(ws, model: str) -> list[dict]:
    return json.loads(_cli(ws, "models", "versions", model, "--json").stdout)["versions"]


def _until_reloaded(ws, before: str) -> None:
    """Until the daemon serves pipeline ``own`` with a content hash other than ``before`` (it reloads a changed
    file by itself)."""
    deadline = time.monotonic() + 30
    while _content_hash(ws) == before:
        assert time.monotonic() < deadline, "the edited pipeline was not loaded"
        time.sleep(0.05)


def _content_hash(ws) -> str:
    return json.loads(_cli(ws, "pipelines", "show", "own", "--json").stdout)["content_hash"]
