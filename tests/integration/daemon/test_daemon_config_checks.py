"""A ``[[watch]]`` table with a bad field stops a daemon's start and is refused by a reload, like any other config
error: a typo (``setle``) used to leave the watch unstarted while the daemon ran on, its files piling up."""

from __future__ import annotations

import os

BAD_WATCH = """
[[watch]]
folder = "{folder}"
pipeline = "p"
mode = "bulk"
setle = "1s"
"""

GOOD_WATCH = """
[[watch]]
folder = "{folder}"
pipeline = "p"
"""

TASK = """
[params]
input = { type = "path" }
[tasks.a]
command = ["true"]
"""


def test_a_bad_watch_table_stops_the_start_naming_the_file_and_every_field(workspace, daemon, tmp_path):
    workspace.pipeline("p", TASK)
    workspace.write_config(BAD_WATCH.format(folder=tmp_path / "drop"))
    daemon.start(wait_ready=False)
    assert daemon.proc.wait(timeout=60) == 2
    out = daemon.output()
    assert "watch[0].mode: has an unknown value (found 'bulk')" in out, out
    assert "watch[0].setle: unknown key" in out and "did you mean 'settle'" in out, out
    assert str(workspace.config_path) in out and "2 problems" in out
    assert "Traceback" not in out
    assert not workspace.state.exists()  # refused before the state folder was made


def test_a_reload_refuses_a_bad_watch_table_and_keeps_the_watch_in_force(workspace, daemon, tmp_path):
    drop = tmp_path / "drop"
    drop.mkdir()
    workspace.pipeline("p", TASK)
    workspace.write_config(GOOD_WATCH.format(folder=drop))
    daemon.start()
    workspace.write_config(BAD_WATCH.format(folder=drop))
    proc = workspace.invoke("reload")
    assert proc.returncode == 2, proc.stdout + proc.stderr  # a config error, as every command says one
    assert "error  config not reloaded, the one in force stays: " in proc.stdout and "watch[0].setle" in proc.stdout
    assert "(pipelines only: the config file was refused)" in proc.stdout
    doc = daemon.call("inputs.list")
    assert [w["folder"] for w in doc["watches"]] == [str(drop)], doc["watches"]
    assert doc["watch_errors"] == []


def test_validate_reports_what_would_stop_the_daemons_start(workspace, tmp_path):
    """Fixing what `validate` listed left a daemon that would not start (a textfile folder it did not check)."""
    workspace.pipeline("p", TASK)
    workspace.write_config(f'[metrics]\ntextfile = "{tmp_path}/nope/edgeorch.prom"\n')
    proc = workspace.invoke("validate")
    assert proc.returncode == 1
    assert "metrics.textfile: the textfile's folder does not exist" in proc.stdout, proc.stdout


def test_reserved_cpus_that_leave_no_core_are_said_with_the_config_file_by_start_and_validate(workspace, daemon):
    """`reserved_cpus` naming every core of this machine stopped the start with an error that named no file, and
    `validate` said "0 error(s)" of that config."""
    workspace.pipeline("p", TASK)
    every = sorted(os.sched_getaffinity(0))
    workspace.write_config(f"[resources]\nreserved_cpus = {every}\n")
    said = f"{workspace.config_path}: resources.reserved_cpus: reserved_cpus leaves no core for tasks"
    proc = workspace.invoke("validate")
    assert proc.returncode == 1 and f"error  {said}" in proc.stdout, proc
    daemon.start(wait_ready=False)
    assert daemon.proc.wait(timeout=60) == 2
    out = daemon.output()
    assert said in out and "Traceback" not in out, out
