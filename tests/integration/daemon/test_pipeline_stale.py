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
