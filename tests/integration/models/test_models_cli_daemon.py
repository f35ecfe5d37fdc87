"""The README's model session through a real daemon and the CLI: the shipped example registers, gates and deploys
its model; a worse model is blocked and `edgeorch models why` says why; promote and rollback switch `current`.
And a daemon killed with -9 in the middle of a blue-green health check recovers to a consistent target."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


def _cli(ws, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([*ws.cli(), *args], env=ws.cli_env(), capture_output=True, text=True, timeout=timeout)


def _example(ws) -> None:
    shutil.copytree(REPO / "examples" / "pipelines" / "mlpipe", ws.pipelines / "mlpipe")
    shutil.copy(REPO / "examples" / "pipelines" / "house_prices.toml", ws.pipelines)
    shutil.copytree(REPO / "examples" / "data", ws.root / "data")


def test_the_readme_session_register_block_why_promote_rollback(workspace, daemon) -> None:
    _example(workspace)
    daemon.start()
    current = workspace.state / "serving" / "house_prices" / "current"
    r = _cli(workspace, "run", "house_prices")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "model house_prices version 1: passed its gates" in r.stdout
    # The run ends before its model's deployment may: said where the run is watched (it read as "served").
    assert "its deployment follows (a health window may outlast the run): `edgeorch models show house_prices`" in r.stdout
    _wait(lambda: os.path.islink(current) and os.readlink(current) == "versions/1")
    assert (current / "model.npz").stat().st_size > 0

    r = _cli(workspace, "run", "house_prices", "-p", "worse=true")
    assert r.returncode == 0, r.stdout + r.stderr  # the run succeeds; only the promotion is blocked
    assert "model house_prices version 2: BLOCKED by its gates (edgeorch models why house_prices 2)" in r.stdout
    why = _cli(workspace, "models", "why", "house_prices", "2")
    assert why.returncode == 0, why.stderr
    assert "Blocked by its gates against version 1 (champion)" in why.stdout
    assert "FAILED   rmse <= champion.rmse * 1.05: rmse is" in why.stdout
    refused = _cli(workspace, "models", "promote", "house_prices", "2")
    assert refused.returncode == 5 and "failed its gates" in refused.stderr

    r = _cli(workspace, "run", "house_prices")  # training is deterministic: version 1's model again
    assert r.returncode == 0, r.stdout + r.stderr
    assert "model house_prices: unchanged, the same artifact and metrics as version 1 (no new version)" in r.stdout
    assert len(json.loads(_cli(workspace, "models", "versions", "house_prices", "--json").stdout)["versions"]) == 2
    r = _cli(workspace, "run", "house_prices", "-p", "epochs=80")  # another model, as good: version 3 is champion
    assert r.returncode == 0 and "model house_prices version 3: passed its gates" in r.stdout, r.stdout + r.stderr
    _wait(lambda: os.readlink(current) == "versions/3")
    r = _cli(workspace, "models", "rollback", "house_prices", "--reason", "a customer complained")
    assert r.returncode == 0, r.stderr
    assert "house_prices: champion -> version 1 (was version 3)" in r.stdout  # version 2 failed its gates: skipped
    assert os.readlink(current) == "versions/1"
    r = _cli(workspace, "models", "promote", "house_prices", "3", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["deployment"]["state"] == "succeeded"
    assert os.readlink(current) == "versions/3"

    listing = json.loads(_cli(workspace, "models", "list", "--json").stdout)
    assert listing["models"][0]["aliases"] == {"champion": 3} and listing["models"][0]["versions"] == 3
    show = json.loads(_cli(workspace, "models", "show", "house_prices", "--json").stdout)
    assert [h["action"] for h in show["history"][:2]] == ["promote", "rollback"]
    assert show["history"][1]["actor"].endswith(f"(uid {os.getuid()})")
    assert show["history"][1]["reason"] == "a customer complained"
    diff = json.loads(_cli(workspace, "models", "diff", "house_prices", "1", "2", "--json").stdout)
    assert diff["params"] == [{"param": "worse", "a": False, "b": True}]
    assert {m["metric"] for m in diff["metrics"] if m["delta"] and m["delta"] > 0} == {"rmse"}
    versions = _cli(workspace, "models", "versions", "house_prices")
    assert versions.returncode == 0 and "failed" in versions.stdout

    daemon.stop()
    offline = _cli(workspace, "models", "why", "house_prices", "2", "--json")  # the state file, read-only
    assert offline.returncode == 0 and json.loads(offline.stdout)["gate_verdict"] == "failed"
    missing = _cli(workspace, "models", "why", "house_prices", "9")
    assert missing.returncode == 3 and "house_prices has no version 9" in missing.stderr


@pytest.fixture
def released(workspace):
    """The gate of :func:`_gated_model` opened whatever the test's outcome: a health check left waiting for it
    would loop on after the test."""
    yield
    (workspace.root / "release").write_text("")


def _gated_model(workspace, promote: str) -> tuple[Path, Path]:
    """A model whose version 2's blue-green health check waits until the test writes the returned ``release`` file
    (``checking`` appears when it has started); ``promote``: the model's promote policy."""
    gate = workspace.root / "release"
    started = workspace.root / "checking"
    check = workspace.root / "health.sh"
    check.write_text(f'#!/bin/sh\n[ "$EDGEORCH_MODEL_VERSION" = 2 ] || exit 0\necho $$ > {started}.tmp\n'
                     f'mv {started}.tmp {started}\nwhile [ ! -e {gate} ]; do sleep 0.05; done\n')
    check.chmod(0o755)
    (workspace.root / "train.py").write_text(
        "import json, os, sys\nout = os.environ['EDGEORCH_OUTPUT_DIR']\n"
        "open(out + '/model.bin', 'w').write(sys.argv[1])\n"
        "json.dump({'rmse': float(sys.argv[1])}, open(out + '/metrics.json', 'w'))\n")
    workspace.pipeline("trainer", f'''
        [params]
        rmse = 30.0
        [tasks.train]
        command = ["python", "{workspace.root / 'train.py'}", "{{rmse}}"]
        model = {{ name = "m", path = "model.bin", metrics = "metrics.json" }}
        [models.m]
        metrics = ["rmse"]
        gates = ["rmse <= champion.rmse"]
        strategy = "blue_green"
        promote = "{promote}"
        [models.m.deploy]
        health = ["{check}"]
        health_timeout = "60s"
        window = "60s"
        ''')
    return gate, started


def test_a_daemon_killed_during_a_persons_blue_green_health_check_undoes_the_switch_at_restart(workspace, daemon,
                                                                                             released) -> None:
    gate, started = _gated_model(workspace, "manual")
    daemon.start()
    assert _cli(workspace, "run", "trainer").returncode == 0
    assert _cli(workspace, "models", "promote", "m", "1").returncode == 0
    current = workspace.state / "serving" / "m" / "current"
    _wait(lambda: os.path.islink(current) and os.readlink(current) == "versions/1")
    assert _cli(workspace, "run", "trainer", "-p", "rmse=29").returncode == 0
    asked = subprocess.Popen([*workspace.cli(), "models", "promote", "m", "2"], env=workspace.cli_env(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait(started.exists)
    orphan = int(started.read_text())
    daemon.kill9()
    _out, err = asked.communicate(timeout=60)  # told the daemon went away, and where to see how it ended
    assert asked.returncode == 75 and "`edgeorch models show m` says how it ended" in err, err
    assert _alive(orphan)  # the killed daemon's health check goes on: nothing could stop it
    daemon.start()  # recovery: the deployment a person asked for, stopped before its switch, is undone

    def last() -> dict:
        return json.loads(_cli(workspace, "models", "show", "m", "--json").stdout)["deployments"][0]

    _wait(lambda: last()["state"] == "undone")
    assert not _alive(orphan)  # stopped by the recovery (it looped on until the test ended, one more each kill)
    said = [ln for ln in daemon.output().splitlines() if "left running" in ln]
    # The script, and its `sleep 0.05` of the moment if there was one: pids listed, sorted.
    pids = re.search(r"stopped \d process\(es\) its command left running when edgeorch stopped \(pids ([\d, ]+)\)",
                     said[0] if len(said) == 1 else "")
    assert pids and str(orphan) in pids.group(1).split(", "), said
    gate.write_text("")
    assert os.readlink(current) == "versions/1" and current.is_dir()
    show = json.loads(_cli(workspace, "models", "show", "m", "--json").stdout)
    assert show["aliases"] == {"champion": 1}
    assert "interrupted at step staged" in show["deployments"][0]["outcome"]
    r = _cli(workspace, "models", "promote", "m", "2")  # asked again, it goes through
    assert r.returncode == 0, r.stderr
    assert os.readlink(current) == "versions/2"


def test_a_promotion_edgeorch_decided_killed_before_its_switch_is_done_again_at_restart(workspace, daemon,
                                                                                        released) -> None:
    """A passing version's automatic promotion (or a canary's won one), killed during its blue-green health check,
    was undone at the restart: no one would ask for it again, and the better version was never served. It runs
    again, after the daemon is ready (its health check, up to its window, does not hold the start)."""
    gate, started = _gated_model(workspace, "auto")
    daemon.start()
    assert _cli(workspace, "run", "trainer").returncode == 0
    current = workspace.state / "serving" / "m" / "current"
    _wait(lambda: os.path.islink(current) and os.readlink(current) == "versions/1")
    assert _cli(workspace, "run", "trainer", "-p", "rmse=29").returncode == 0
    _wait(started.exists)
    orphan = int(started.read_text())
    daemon.kill9()
    started.unlink()
    daemon.start()  # ready while the redone deployment's check waits
    _wait(started.exists)
    assert not _alive(orphan) and int(started.read_text()) != orphan  # one check runs: the redone one
    assert os.readlink(current) == "versions/1"
    gate.write_text("")
    _wait(lambda: os.readlink(current) == "versions/2")
    show = json.loads(_cli(workspace, "models", "show", "m", "--json").stdout)
    assert show["aliases"] == {"champion": 2} and show["deployments"][0]["state"] == "succeeded"
    assert "starting it again (edgeorch decided it" in daemon.output()


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie awaiting its reaper does not)."""
    from edgeorch.engine.procinfo import process_state

    return process_state(pid) not in (None, "Z", "X")


def _wait(cond, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def test_bad_requests_get_clear_errors_through_the_socket_and_the_cli(workspace, daemon) -> None:
    from edgeorch.errors import NotFoundError, UsageError

    daemon.start()
    with pytest.raises(UsageError, match="is not a valid model name"):
        daemon.call("models.show", {"name": "bad name"})
    with pytest.raises(NotFoundError, match="no model named 'house'"):
        daemon.call("models.why", {"name": "house", "version": 1})
    with pytest.raises(UsageError, match="is not a version number"):
        daemon.call("models.promote", {"name": "house", "version": 0})
    with pytest.raises(UsageError, match="has the wrong shape"):
        daemon.call("models.observe", {"name": "house", "metrics": {"champion": 3}})
    r = _cli(workspace, "models", "promote", "house", "1")
    assert r.returncode == 3 and "no model named 'house'" in r.stderr
    r = _cli(workspace, "models", "observe", "house", "champion", "rmse=high")
    assert r.returncode == 2 and "METRIC=VALUE: is not METRIC=NUMBER (found 'rmse=high')" in r.stderr
    r = _cli(workspace, "models", "why", "house", "x")
    assert r.returncode == 2 and "'x' is not a version number" in r.stderr
    r = _cli(workspace, "models", "--json")
    assert r.returncode == 0 and json.loads(r.stdout) == {"models": []}


def test_the_examples_training_resumed_from_its_finished_checkpoint_ends_as_it_did(tmp_path, monkeypatch) -> None:
    """A retry after an upstream's lost file was made again (the same features) found train's checkpoint of the
    finished training: no epoch was left, and the example's train died of an unbound `loss` three times."""
    import importlib.util

    import numpy as np

    spec = importlib.util.spec_from_file_location("steps", REPO / "examples" / "pipelines" / "mlpipe" / "steps.py")
    steps = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(steps)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 3))
    np.savez(tmp_path / "features.npz", x_train=x, y_train=x @ np.array([1.0, 2.0, 3.0]) + 5)
    for d in ("out", "ckpt"):
        (tmp_path / d).mkdir()
    monkeypatch.setenv("EDGEORCH_UPSTREAM_FEATURES", str(tmp_path / "features.npz"))
    monkeypatch.setenv("EDGEORCH_OUTPUT_DIR", str(tmp_path / "out"))
    monkeypatch.setenv("EDGEORCH_CHECKPOINT_DIR", str(tmp_path / "ckpt"))
    first = steps.train(epochs=3)
    again = steps.train(epochs=3)  # its checkpoint says epoch 3 of 3 is done
    assert again == first
