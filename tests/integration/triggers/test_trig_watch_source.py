"""A watch declared in a pipeline file is that file's business (issue 9 item 10(d)).

Its errors are reported against the pipeline file (never config.toml), ``edgeorch validate``
calls such a file invalid, and a watched folder that does not exist yet is only a warning:
the daemon watches it as soon as it appears.
"""

from __future__ import annotations

import subprocess

from test_daemon_triggers import INGEST, drop_by_rename, n_inputs, wait_until


def pipeline_with_watch(workspace, watch: str):
    return workspace.pipeline("ingest", INGEST + watch)


def validate(workspace, path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*workspace.cli(), "validate", str(path)], env=workspace.cli_env(),
                          capture_output=True, text=True, timeout=60)


def test_a_watch_error_in_a_pipeline_file_is_reported_against_that_pipeline_file(workspace, daemon):
    inside_state = workspace.state / "drop"  # overlaps edgeorch's own state folder: refused by the daemon
    inside_state.mkdir(parents=True)
    pfile = pipeline_with_watch(workspace, f'[watch]\nfolder = "{inside_state}"\n')
    daemon.start()
    errors = daemon.call("inputs.list", {})["watch_errors"]
    assert len(errors) == 1, errors
    assert str(pfile) in errors[0] and "overlaps edgeorch's own folders" in errors[0]
    assert str(workspace.config_path) not in errors[0]
    # `status`, where a person looks first, says it too (only `inputs` did: files dropped there waited unseen).
    [said] = daemon.call("status")["watch_errors"]
    assert str(pfile) in said and "overlaps edgeorch's own folders" in said
    shown = subprocess.run([*workspace.cli(), "status"], env=workspace.cli_env(), capture_output=True, text=True,
                           timeout=60)
    assert shown.returncode == 0 and f"error      not watched: {said} (edgeorch inputs)" in shown.stdout
    # `validate` of the whole pipelines folder says it as well, before any daemon starts.
    out = subprocess.run([*workspace.cli(), "validate"], env=workspace.cli_env(), capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 1 and "overlaps edgeorch's own folders" in out.stdout, out.stdout
    assert daemon.stop() == 0


def test_validate_calls_a_pipeline_file_with_a_bad_watch_invalid(workspace, tmp_path):
    drop = tmp_path / "drop"
    drop.mkdir()
    twice = pipeline_with_watch(workspace, f'[[watch]]\nfolder = "{drop}"\n[[watch]]\nfolder = "{drop}"\n')
    out = validate(workspace, twice)
    assert out.returncode == 1, out.stdout + out.stderr
    assert f"{twice}" in out.stdout and "is watched twice" in out.stdout

    not_a_folder = tmp_path / "a-file"
    not_a_folder.write_text("x")
    pfile = pipeline_with_watch(workspace, f'[watch]\nfolder = "{not_a_folder}"\n')
    out = validate(workspace, pfile)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "the watched path is not a folder" in out.stdout and str(pfile) in out.stdout


def test_a_watched_folder_that_does_not_exist_yet_is_valid_and_watched_when_it_appears(workspace, daemon, tmp_path):
    later = tmp_path / "later"
    pfile = pipeline_with_watch(workspace, f'[watch]\nfolder = "{later}"\nsettle = "0.2s"\n')
    out = validate(workspace, pfile)
    assert out.returncode == 0, out.stdout + out.stderr

    daemon.start()
    watch = daemon.call("inputs.list", {})
    assert [w["folder"] for w in watch["watches"]] == [str(later)]
    assert any("does not exist" in e for e in watch["watch_errors"])  # surfaced while missing, as a warning
    later.mkdir()
    wait_until(daemon, lambda: daemon.call("inputs.list", {})["watch_errors"] == [], timeout=30,
               what="the folder watched once it appears")
    drop_by_rename(tmp_path / "stage", later, "first.csv", b"row\n")
    wait_until(daemon, lambda: n_inputs(workspace, "done") >= 1, timeout=30, what="a file in the new folder")
    assert daemon.stop() == 0


def test_a_missing_folder_no_watch_names_any_more_is_no_longer_an_error(workspace, daemon, tmp_path):
    """The [[watch]] of a pipeline file moved from one missing folder to another: after the reload both were
    listed "not watched", the old one for good (even once it existed and started nothing)."""
    old, new = tmp_path / "old", tmp_path / "new"
    pipeline_with_watch(workspace, f'[watch]\nfolder = "{old}"\nsettle = "0.2s"\n')
    daemon.start()
    assert any(str(old) in e for e in daemon.call("inputs.list", {})["watch_errors"])
    pipeline_with_watch(workspace, f'[watch]\nfolder = "{new}"\nsettle = "0.2s"\n')
    daemon.call("reload")
    errors = daemon.call("inputs.list", {})["watch_errors"]
    assert any(str(new) in e for e in errors) and not any(str(old) in e for e in errors), errors
    assert daemon.stop() == 0
