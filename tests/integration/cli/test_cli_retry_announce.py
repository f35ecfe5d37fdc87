"""``edgeorch retry N`` without a daemon says "resuming run N: TASKS" (and the note about a changed pipeline file)
before any progress line of the rerun: it printed them once the resume had returned, after its dispatch had already
started a task (``12:46:41  hang  started (attempt 3)`` came first)."""

from __future__ import annotations

import subprocess

FLAKY = """
[tasks.first]
command = ["sh", "-c", "test -f {pipeline_dir}/fixed"]
[tasks.second]
command = ["true"]
needs = ["first"]
"""


def test_a_retry_here_announces_itself_and_its_note_before_the_first_progress_line(workspace):
    path = workspace.pipeline("flaky", FLAKY)
    assert workspace.invoke("run", "flaky").returncode == 1
    path.write_text(FLAKY + "# edited since the run\n")  # the retry reruns the run's own definition: a note says so
    proc = subprocess.run([*workspace.cli(), "retry", "1"], env=workspace.cli_env(), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=120)  # one stream: the order as a terminal shows it
    assert proc.returncode == 1, proc.stdout
    lines = proc.stdout.splitlines()
    assert lines[0] == "resuming run 1: first, second", lines
    assert lines[1].startswith("note: ") and "changed since the run was created" in lines[1], lines
    assert "first                    started (attempt 2)" in lines[2], lines
    assert sum(ln.startswith("resuming run") for ln in lines) == 1, lines


def test_a_quiet_retry_here_says_neither_the_announcement_nor_progress(workspace):
    workspace.pipeline("flaky", FLAKY)
    assert workspace.invoke("run", "flaky").returncode == 1
    (workspace.pipelines / "fixed").touch()
    proc = workspace.invoke("retry", "1", "-q")
    assert proc.returncode == 0, proc.stderr
    assert "resuming" not in proc.stdout and "started" not in proc.stdout and proc.stderr == ""
