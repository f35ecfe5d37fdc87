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


def _served(daemon, name: str) -> str:
    (only,) = [p for p in daemon.call("pipelines.list")["pipelines"] if p["name"] == name]
    return only["file"]


def test_a_copy_takes_nothing_over_while_the_served_file_is_broken_across_a_restart(workspace, daemon) -> None:
    """Found by a re-test: the served file broken by an edit, then a restart: the fresh registry saw only the
    copy's valid file, gave it the name and kept it after the original was fixed (its runs the copy's command,
    offline too). The holder's broken file keeps the name (its last valid version served); the copy is the
    duplicate, with or without a daemon."""
    workspace.pipeline("nightly", '[tasks.a]\ncommand = ["sh", "-c", "echo real"]\n')
    daemon.start()
    workspace.pipeline("aa_copy", 'name = "nightly"\n[tasks.a]\ncommand = ["sh", "-c", "echo impostor"]\n')
    daemon.call("reload")
    served = workspace.pipelines / "nightly.toml"
    served.write_text(served.read_text() + "oops =\n")
    daemon.call("reload")
    assert daemon.stop() == 0
    daemon.start()
    assert _served(daemon, "nightly") == str(served)
    errors = daemon.call("pipelines.list")["errors"]
    assert any(e["file"] == str(workspace.pipelines / "aa_copy.toml") and "duplicate" in e["message"] for e in errors)
    assert daemon.stop() == 0
    out = workspace.invoke("run", "nightly")  # offline: the broken file's error, never the copy's command
    assert out.returncode != 0 and "impostor" not in out.stdout + out.stderr, out.stdout + out.stderr
    served.write_text(served.read_text().replace("oops =\n", ""))
    daemon.start()
    assert _served(daemon, "nightly") == str(served)


def test_a_served_file_renamed_keeps_its_name_against_a_copy(workspace, daemon) -> None:
    """Found by a re-test: `mv nightly.toml zz_nightly.toml` (its name declared in it) with a copy `aa_copy.toml`
    declaring it too: the copy, first in order, took the name. The file with the content that was served keeps
    it, and the daemon and `edgeorch validate` say the same."""
    workspace.pipeline("nightly", 'name = "nightly"\n[tasks.a]\ncommand = ["sh", "-c", "echo real"]\n')
    daemon.start()
    workspace.pipeline("aa_copy", 'name = "nightly"\n[tasks.a]\ncommand = ["sh", "-c", "echo impostor"]\n')
    daemon.call("reload")
    moved = workspace.pipelines / "zz_nightly.toml"
    (workspace.pipelines / "nightly.toml").rename(moved)
    daemon.call("reload")
    assert _served(daemon, "nightly") == str(moved)
    (err,) = [e for e in daemon.call("pipelines.list")["errors"] if "duplicate" in e["message"]]
    assert err["file"] == str(workspace.pipelines / "aa_copy.toml"), err
    assert daemon.stop() == 0
    daemon.start()
    assert _served(daemon, "nightly") == str(moved)
    assert daemon.stop() == 0
    checked = workspace.invoke("validate")
    assert f"{workspace.pipelines / 'aa_copy.toml'}: name: duplicate pipeline name" in checked.stdout + checked.stderr
