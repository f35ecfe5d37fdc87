"""`edgeorch logs -f` to a pipe (or `--raw`) writes the task's bytes alone: edgeorch's own lines (a task not started
yet, the next attempt) go to stderr there; on a terminal a byte that is not UTF-8 is shown as its escape.

Found by a tester: `edgeorch logs 7 train -f | parse` got "==> train of run 7 has not started yet ..." as its first
line and "==> attempt 2 ..." between attempts (200,001 lines for a task that wrote 200,000), and a terminal showed
U+FFFD for `\\xff` though every human output shows such a byte as `\\xff`.
"""

from __future__ import annotations

import io
import subprocess

from edgeorch.cli.commands import runs as runs_cmd


def test_a_followed_log_to_a_pipe_is_the_tasks_bytes_and_the_notes_go_to_stderr(workspace, daemon):
    workspace.pipeline("flaky", """
        [tasks.prepare]
        command = ["sh", "-c", "while [ ! -f {pipeline_dir}/go ]; do sleep 0.02; done"]
        [tasks.train]
        needs = ["prepare"]
        retries = 1
        retry_delay = "0.3s"
        command = ["sh", "-c", "if [ -f {pipeline_dir}/second ]; then echo second try; else touch {pipeline_dir}/second; echo first try; exit 1; fi"]
    """)
    daemon.start()
    run_id = daemon.call("trigger", {"pipeline": "flaky"})["run_id"]
    follow = subprocess.Popen([*workspace.cli(), "logs", str(run_id), "train", "-f"], cwd=workspace.root,
                              env=workspace.cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert follow.stderr is not None
    first_note = follow.stderr.readline()  # said before the task starts: the stream has begun
    (workspace.pipelines / "go").touch()
    out, err = follow.communicate(timeout=60)
    assert follow.returncode == 0, err
    assert out == "first try\nsecond try\n", out
    assert first_note == f"==> train of run {run_id} has not started yet (pending): waiting <==\n", first_note
    assert f"==> attempt 2 of train (run {run_id}) <==" in err, err


def test_a_log_on_a_terminal_shows_a_byte_that_is_not_utf8_as_its_escape(monkeypatch):
    shown = io.StringIO()
    monkeypatch.setattr("sys.stdout", shown)
    write = runs_cmd._log_writer(raw=False)
    write(b"caf\xe9 \xff \xc3")  # the last byte begins a character the next chunk ends
    write(b"\xa9 \x1b[2J \x1b[31mred\x1b[0m\n", final=True)
    assert shown.getvalue() == "caf\\xe9 \\xff \u00e9 \\x1b[2J \x1b[31mred\x1b[0m\n", repr(shown.getvalue())
