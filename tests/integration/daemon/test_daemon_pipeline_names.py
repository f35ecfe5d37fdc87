"""A pipeline name two files declare stays with the file that served it: across reloads, restarts and offline."""

from __future__ import annotations


def test_a_copy_left_with_a_served_pipelines_name_takes_nothing_over(workspace, daemon) -> None:
    """Found by an operator: a copy of a scheduled pipeline's file, its name unchanged and first in file order,
    took the name at the next reload (its command ran under that name, the schedule was gone) and the error
    named the original file. The served file keeps the name, in the running daemon, after a restart (the state
    file says who served it) and in a run without a daemon; the copy's error names it."""
    workspace.pipeline("zz_nightly", '''
        name = "nightly"
        [tasks.a]
        command = ["sh", "-c", "echo real"]
        ''')
    daemon.start()
    workspace.pipeline("aa_copy", '''
        name = "nightly"
        [tasks.a]
        command = ["sh", "-c", "echo impostor"]
        ''')
    daemon.call("reload")
    served = workspace.pipelines / "zz_nightly.toml"

    def check() -> None:
        listed = daemon.call("pipelines.list")
        (only,) = [p for p in listed["pipelines"] if p["name"] == "nightly"]
        assert only["file"] == str(served), only
        (err,) = [e for e in listed["errors"] if "duplicate pipeline name" in e["message"]]
        assert err["file"] == str(workspace.pipelines / "aa_copy.toml"), err
        run_id = daemon.call("trigger", {"pipeline": "nightly"})["run_id"]
        assert daemon.wait_run(run_id) == "succeeded"
        with daemon.client() as c:
            assert "".join(i["data"] for i in c.stream("logs", {"run_id": run_id, "task": "a"})) == "real\n"

    check()
    assert daemon.stop() == 0
    daemon.start()  # a fresh registry: the state file says which file served the name
    check()
    assert daemon.stop() == 0
    out = workspace.invoke("run", "nightly")  # without a daemon: the same file
    assert out.returncode == 0, out.stderr
    assert "impostor" not in out.stdout + out.stderr
