"""Dead ends a user met (issue 9, item 10) and docs that disagreed with the code (item 37), through the CLI's
``main`` (in-process, ``Workspace.invoke``)."""

from __future__ import annotations

import json
import os

import pytest

from edgeorch.cli.commands.resources import _size


def run(ws, *args):
    proc = ws.invoke(*args)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def test_help_lists_every_exit_code(workspace):
    out = " ".join(run(workspace, "--help").stdout.split())
    for code in (0, 1, 2, 3, 4, 5, 69, 75, 77, 130):
        assert f" {code} " in out, code


def test_sizes_in_tables_are_human(workspace):
    assert _size(29 * 1024) == "29.0K" and _size(29_000) == "28.3K"
    assert _size(512) == "512B" and _size(3 * 1024**3) == "3.0G"


def test_a_wrong_param_type_says_an_int(workspace):
    workspace.pipeline("p", "[params]\nn = 1\n[tasks.a]\ncommand = [\"true\"]\n")
    proc = run(workspace, "run", "p", "-p", "n=abc")
    assert proc.returncode == 2 and "expected an int" in proc.stderr, proc.stderr
    workspace.pipeline("q", "[params]\nn = { type = \"int\", default = \"abc\" }\n[tasks.a]\ncommand = [\"true\"]\n")
    assert "expected an int" in run(workspace, "validate").stdout


def test_unknown_needs_are_reported_when_another_task_fails_to_parse(workspace):
    workspace.pipeline("p", '[tasks.a]\ncommand = 5\n[tasks.b]\ncommand = ["true"]\nneeds = ["zzz"]\n')
    errors = json.loads(run(workspace, "validate", "--json").stdout)["errors"]
    fields = sorted(e["field"] for e in errors)
    assert fields == ["tasks.a.command", "tasks.b.needs"], errors


def test_an_oversized_pipeline_file_is_invalid_with_file_size_and_limit(workspace):
    big = workspace.pipelines / "big.toml"
    big.write_bytes(b"# padding\n" * 200_000)
    proc = run(workspace, "validate")
    assert proc.returncode == 1
    assert f"{big}: the pipeline file is too large (found '2000000 bytes'); expected at most 1048576 bytes" in proc.stdout


def test_toml_entries_that_are_not_regular_files_are_errors_naming_them_not_skipped(workspace):
    """A dangling symlink left by a deployment, a FIFO, a folder named ``*.toml``: each was skipped in
    silence (its pipeline vanished with no word); each is an error naming the file and what it is, and
    reading the FIFO never blocks."""
    workspace.pipeline("ok", "[tasks.a]\ncommand = [\"true\"]\n")
    (workspace.pipelines / "prod.toml").symlink_to(workspace.root / "gone" / "prod.toml")
    os.mkfifo(workspace.pipelines / "fifo.toml")
    (workspace.pipelines / "dir.toml").mkdir()
    (workspace.pipelines / ".hidden.toml").symlink_to(workspace.root / "gone.toml")  # hidden: not a pipeline file
    proc = run(workspace, "validate")
    assert proc.returncode == 1
    out = proc.stdout
    assert (f"{workspace.pipelines / 'prod.toml'}: is a symlink to a file that does not exist "
            f"(found '{workspace.root / 'gone' / 'prod.toml'}'); expected a pipeline .toml file") in out, out
    assert f"{workspace.pipelines / 'fifo.toml'}: is not a regular file (found 'a FIFO')" in out, out
    assert f"{workspace.pipelines / 'dir.toml'}: is not a regular file (found 'a folder')" in out, out
    assert "hidden" not in out and "1 valid, 3 error(s)" in out, out


@pytest.mark.parametrize("blocked, what", [("", "the state folder"), ("runs", "the runs folder")])
def test_a_state_or_runs_folder_path_that_is_a_file_is_a_state_error_naming_it(workspace, blocked, what):
    """``[state] dir`` (or its ``runs`` folder) naming a file: `run --here` died with an internal error
    (FileExistsError, exit 70) and the daemon said its lock file "exists" (or died the same way); both now
    say which path is not a folder (exit 4) and leave the file as it is."""
    path = workspace.state / blocked if blocked else workspace.state
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("not a folder\n")
    workspace.pipeline("p", "[tasks.a]\ncommand = [\"true\"]\n")
    for args in (("run", "p", "--here"), ("daemon",)):
        proc = run(workspace, *args)
        assert proc.returncode == 4, (args, proc.stderr)
        assert (f"{path}: {what}'s path is not a folder; expected a folder, or a path where one can be "
                "made") in proc.stderr, (args, proc.stderr)
    assert path.read_text() == "not a folder\n"


@pytest.mark.parametrize("args, code", [(("validate",), 1), (("pipelines", "validate"), 1), (("run",), 3),
                                         (("profile",), 3)])
def test_a_name_too_long_for_the_file_system_is_an_error_not_a_crash(workspace, args, code):
    """A path of 5,000 characters (ENAMETOOLONG, which pathlib's exists() and is_file() raise) was an internal
    error (exit 70); it is a file or pipeline that is not there."""
    proc = run(workspace, *args, "x" * 5000)
    assert proc.returncode == code, proc.stderr
    assert "internal error" not in proc.stderr + proc.stdout


def test_an_output_file_the_file_system_refuses_is_an_error_naming_it_and_leaves_no_temporary(workspace, tmp_path):
    """``--save``/``--output`` naming a file the file system refuses: an internal error (exit 70) that named a
    temporary file (and left it behind), or a ValueError for an empty name; now the file named, as the shell
    says it."""
    data = tmp_path / "data.csv"
    data.write_text("a,b\n1,2\n3,4\n")
    too_long = tmp_path / ("r" * 300)
    proc = run(workspace, "profile", str(data), "--save", str(too_long))
    assert proc.returncode == 1 and f"edgeorch: error: {too_long}: File name too long" in proc.stderr, proc.stderr
    proc = run(workspace, "audit", "export", "--output", "")
    assert proc.returncode == 2 and "--output: cannot write the export: names a folder, not a file" in proc.stderr
    proc = run(workspace, "audit", "export", "--output", str(too_long))
    assert proc.returncode == 2 and "cannot write the export: File name too long" in proc.stderr, proc.stderr
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")] and not os.path.exists(too_long)


def test_a_terminal_that_cannot_encode_a_name_shows_it_escaped_instead_of_failing(workspace):
    """A Latin-1 or ASCII locale (here PYTHONIOENCODING=ascii) and a name in another script: every human
    output ended with an internal error (UnicodeEncodeError, exit 70). A real process: the streams are set
    up where the program starts."""
    import subprocess

    workspace.pipeline("café_中", '[tasks.a]\ncommand = ["true"]\n')
    env = dict(workspace.cli_env(), PYTHONIOENCODING="ascii")
    proc = subprocess.run([*workspace.cli(), "validate"], env=env, capture_output=True, text=True,
                          encoding="ascii", timeout=60)
    assert proc.returncode == 1, proc.stderr  # the name is no valid pipeline name: an error, said in ASCII
    assert "caf\\xe9_\\u4e2d.toml" in proc.stdout and "internal error" not in proc.stderr, proc.stdout + proc.stderr


def test_run_of_a_pipeline_whose_file_is_broken_names_the_file(workspace):
    path = workspace.pipeline("broken", "[tasks.a]\ncommand = [\"true\"]\nretries = \"x\"\n")
    proc = run(workspace, "run", "broken")
    assert proc.returncode == 1 and "no pipeline named" not in proc.stderr
    assert f"{path}: pipeline broken: tasks.a.retries" in proc.stderr, proc.stderr


def test_resources_says_cores_by_node_and_holder_not_one_line_each() -> None:
    from edgeorch.cli.commands.resources import _core_lines

    cores = [{"id": i, "numa_node": 0 if i < 8 else 1, "held_by": "12/train" if i in (2, 3) else None}
             for i in range(16)]
    assert _core_lines(cores) == [
        "  cores 0-1,4-7 (NUMA node 0): free",
        "  cores 2-3 (NUMA node 0): held by 12/train",
        "  cores 8-15 (NUMA node 1): free",
    ]
    assert _core_lines([{"id": 5, "numa_node": -1, "held_by": None}]) == ["  core 5: free"]
