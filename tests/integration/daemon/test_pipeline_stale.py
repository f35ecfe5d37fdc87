"""A pipeline whose file breaks while the daemon runs keeps serving its last valid version, says so, and goes on
doing so across a restart (it vanished at the restart: a schedule fired until then, and stopped after)."""

from __future__ import annotations


GOOD = """
    [tasks.train]
    command = ["true"]
"""


def test_a_broken_file_serves_its_last_valid_version_with_a_warning_before_and_after_a_restart(workspace, daemon):
    path = workspace.pipeline("nightly", GOOD)
    daemon.start()
    first = daemon.call("trigger", {"pipeline": "nightly"})
    assert first["warnings"] == []
    assert daemon.wait_run(first["run_id"]) == "succeeded"
    path.write_text(path.read_text() + 'retry_dely = "2s"\n')  # a typo while it runs
    daemon.call("reload")
    for restart in (False, True):
        if restart:
            daemon.kill9()
            daemon.start()
        [item] = daemon.call("pipelines.list")["pipelines"]
        assert item["name"] == "nightly" and item["content_hash"] == first["content_hash"]
        [warning] = item["warnings"]
        assert "its file has errors (tasks.train.retry_dely: unknown key" in warning, warning
        assert "last valid version" in warning
        run = daemon.call("trigger", {"pipeline": "nightly"})
        assert run["content_hash"] == first["content_hash"] and run["warnings"] == [warning]
        assert daemon.wait_run(run["run_id"]) == "succeeded"
    assert "serving its last valid version from the state file" in daemon.output()
    path.write_text(GOOD.replace("true", "echo fixed"))
    daemon.call("reload")
    [item] = daemon.call("pipelines.list")["pipelines"]
    assert item["warnings"] == [] and item["content_hash"] != first["content_hash"]


def test_trigger_and_run_say_on_stderr_that_the_pipeline_runs_its_last_valid_version(workspace, daemon):
    import subprocess

    path = workspace.pipeline("nightly", GOOD)
    daemon.start()
    path.write_text(path.read_text() + "[tasks.broken\n")
    daemon.call("reload")
    for argv in (["trigger", "nightly"], ["run", "nightly"], ["trigger", "nightly", "--json"]):
        out = subprocess.run([*workspace.cli(), *argv], env=workspace.cli_env(), capture_output=True, text=True,
                             timeout=60)
        assert out.returncode == 0, out.stderr
        assert "warning: pipeline nightly: its file has errors (" in out.stderr, (argv, out.stderr)
        assert "runs start from its last valid version" in out.stderr
    quiet = subprocess.run([*workspace.cli(), "trigger", "nightly", "-q"], env=workspace.cli_env(),
                           capture_output=True, text=True, timeout=60)
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr


def test_a_restart_with_a_broken_file_serves_the_version_in_force_before_it_even_one_never_run(workspace, daemon):
    """Versions were stored only when a run was created: an edit loaded but never run (a schedule made hourly),
    or a return to an earlier text, was forgotten, and a restart with the file broken served an older version
    than the one in force before it (runs every 10 s again)."""
    path = workspace.pipeline("nightly", GOOD)
    original = path.read_text()
    daemon.start()
    first = daemon.call("trigger", {"pipeline": "nightly"})
    assert daemon.wait_run(first["run_id"]) == "succeeded"
    path.write_text(original.replace("true", "echo edited"))  # loaded, never run
    daemon.call("reload")
    [edited] = daemon.call("pipelines.list")["pipelines"]
    assert edited["content_hash"] != first["content_hash"]
    path.write_text(path.read_text() + "oops = 1\n")
    daemon.call("reload")
    daemon.kill9()
    daemon.start()
    [item] = daemon.call("pipelines.list")["pipelines"]
    assert item["content_hash"] == edited["content_hash"] and item["warnings"], item
    path.write_text(original)  # back to the first text (its stored row is the older one)
    daemon.call("reload")
    path.write_text(path.read_text() + "oops = 1\n")
    daemon.call("reload")
    daemon.kill9()
    daemon.start()
    [item] = daemon.call("pipelines.list")["pipelines"]
    assert item["content_hash"] == first["content_hash"], item
