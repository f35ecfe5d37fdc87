"""How the shim starts a task (``os.posix_spawn``): what the task finds, and the errors (real processes).

Each case runs ``shim._spawn_task`` in a fresh interpreter (it enters the
task's working directory, which a test process must not do), waits for the
task and prints what it reported.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

# What the task reports about itself: its session, stdin, open descriptors, cwd, a variable.
PROBE = textwrap.dedent("""
    import json, os, sys
    print(json.dumps({"sid_is_pid": os.getsid(0) == os.getpid(), "stdin": sys.stdin.read(),
                      "fds": sorted(int(f) for f in os.listdir("/proc/self/fd")),
                      "cwd": os.getcwd(), "var": os.environ.get("PROBE_VAR")}))
""")


def spawn(tmp_path: Path, argv: list[str], env: dict[str, str], cwd: Path) -> dict:
    """Run ``_spawn_task`` in a child interpreter; its outcome: the task's output and status, or the error."""
    script = textwrap.dedent(f"""
        import json, os, signal
        from edgeorch.engine.executors.local.shim import _spawn_task
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)  # as in a shim (inherited from the zygote)
        os.close(0)  # as in a shim: the spare closed its stdin
        rfd, wfd = os.pipe()
        req = {{"argv": {argv!r}, "env": {env!r}, "cwd": {str(cwd)!r}}}
        try:
            pid = _spawn_task(req, wfd)
        except OSError as exc:
            print(json.dumps({{"error": type(exc).__name__, "filename": exc.filename, "strerror": exc.strerror}}))
        else:
            os.close(wfd)
            out = b""
            while chunk := os.read(rfd, 65536):
                out += chunk
            _, status = os.waitpid(pid, 0)
            print(json.dumps({{"output": out.decode(), "code": os.waitstatus_to_exitcode(status)}}))
    """)
    proc = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True, text=True, timeout=60,
                          cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])})
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def tool(folder: Path, name: str, body: str, *, executable: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(stat.S_IRWXU if executable else stat.S_IRUSR | stat.S_IWUSR)
    return path


def test_the_task_gets_a_session_devnull_stdin_only_three_descriptors_its_workdir_and_default_sigpipe(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    got = spawn(tmp_path, [sys.executable, "-c", PROBE], {"PROBE_VAR": "yes", "PATH": os.defpath}, work)
    assert got["code"] == 0
    seen = json.loads(got["output"])
    assert seen["sid_is_pid"] and seen["stdin"] == ""
    assert seen["fds"] == [0, 1, 2, 3]  # 3: the listing's own descriptor; nothing of the shim leaked
    assert seen["cwd"] == str(work) and seen["var"] == "yes"
    # Ignored signals, read by a program that is not Python (Python ignores SIGPIPE itself at start-up).
    got = spawn(tmp_path, ["grep", "SigIgn", "/proc/self/status"], {"PATH": os.defpath}, work)
    ignored = int(got["output"].split()[1], 16)
    assert not ignored & (1 << (13 - 1)) and not ignored & (1 << (25 - 1))  # SIGPIPE, SIGXFSZ at their defaults


def test_a_bare_name_is_looked_up_on_the_tasks_path_not_the_shims(tmp_path):
    tool(tmp_path / "bin", "edgeorch-probe-tool", "echo from-tool; echo err >&2")
    got = spawn(tmp_path, ["edgeorch-probe-tool"], {"PATH": str(tmp_path / "bin")}, tmp_path)
    assert got == {"output": "from-tool\nerr\n", "code": 0}


def test_a_non_executable_match_is_skipped_for_a_later_one_on_path(tmp_path):
    tool(tmp_path / "a", "edgeorch-probe-tool", "echo a", executable=False)
    tool(tmp_path / "b", "edgeorch-probe-tool", "echo b")
    got = spawn(tmp_path, ["edgeorch-probe-tool"], {"PATH": f"{tmp_path / 'nope'}:{tmp_path / 'a'}:{tmp_path / 'b'}"},
                tmp_path)
    assert got == {"output": "b\n", "code": 0}


def test_only_a_non_executable_match_reports_permission_denied(tmp_path):
    # (root too: execve needs an execute bit)
    tool(tmp_path / "a", "edgeorch-probe-tool", "echo a", executable=False)
    got = spawn(tmp_path, ["edgeorch-probe-tool"], {"PATH": f"{tmp_path / 'nope'}:{tmp_path / 'a'}"}, tmp_path)
    assert got["error"] == "PermissionError"


def test_a_missing_program_and_a_missing_workdir_are_errors_naming_them(tmp_path):
    got = spawn(tmp_path, ["edgeorch-no-such-tool"], {"PATH": str(tmp_path)}, tmp_path)
    assert got["error"] == "FileNotFoundError"
    got = spawn(tmp_path, ["/no/such/program"], {}, tmp_path)
    assert got["error"] == "FileNotFoundError" and got["filename"] == "/no/such/program"
    got = spawn(tmp_path, ["true"], {"PATH": os.defpath}, tmp_path / "gone")
    assert got["error"] == "FileNotFoundError" and got["filename"] == str(tmp_path / "gone")
