"""``edgeorch baseline set|list|show`` without a daemon (in process, the state file under the lock) and through
one (the ``baselines.*`` ops), with their bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

DATA = Path(__file__).resolve().parents[3] / "examples" / "data"


def test_set_list_show_without_a_daemon(workspace) -> None:
    out = workspace.invoke("baseline", "set", "houses", str(DATA / "houses.csv"), "--description", "training data")
    assert out.returncode == 0, out.stderr
    assert "baseline houses version 1: 6 column(s), 2000 row(s)" in out.stdout
    again = json.loads(workspace.invoke("baseline", "set", "houses", str(DATA / "houses_new.csv"), "--json").stdout)
    assert again["baseline"]["version"] == 2 and again["baseline"]["rows"] == 1000
    listing = workspace.invoke("baseline", "list")
    assert "houses" in listing.stdout and workspace.invoke("baseline", "-q").stdout.split() == ["houses"]
    show = workspace.invoke("baseline", "show", "houses", "--version", "1")
    assert show.returncode == 0 and "version 1 of 2: 2000 row(s)" in show.stdout and "region" in show.stdout
    assert 'reference = "baseline:houses"' in show.stdout
    doc = json.loads(workspace.invoke("baseline", "show", "houses", "--json").stdout)
    assert doc["version"] == 2 and [v["version"] for v in doc["versions"]] == [1, 2]
    assert {c["column"] for c in doc["summary"]} == {"area", "rooms", "age", "distance_km", "region", "price"}


def test_bad_inputs_are_clear_errors(workspace, tmp_path) -> None:
    cases = [
        (("baseline", "set", "my houses", str(DATA / "houses.csv")), 2, "not a valid baseline name"),
        (("baseline", "set", "houses"), 2, "needs FILE or --from-run"),
        (("baseline", "set", "houses", "--from-run", "3"), 2, "--task"),
        (("baseline", "set", "houses", str(tmp_path / "nope.csv")), 3, "no such file"),
        (("baseline", "show", "houses"), 3, "no baseline named 'houses'"),
    ]
    for argv, code, text in cases:
        out = workspace.invoke(*argv)
        assert out.returncode == code and text in out.stderr and "Traceback" not in out.stderr, (argv, out.stderr)
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "edgeorch.profile/1", "columns": 3}')
    out = workspace.invoke("baseline", "set", "houses", str(bad))
    assert out.returncode == 1 and "malformed profile" in out.stderr and str(bad) in out.stderr
    workspace.invoke("baseline", "set", "houses", str(DATA / "houses.csv"))
    out = workspace.invoke("baseline", "set", "houses", "--from-run", "9", "--task", "profile")
    assert out.returncode == 3 and "run" in out.stderr and "9" in out.stderr


def test_through_a_daemon_a_run_tasks_saved_profile_becomes_a_baseline(workspace, daemon, tmp_path) -> None:
    from edgeorch.monitor.baselines import snapshot_file

    saved = tmp_path / "saved.json"
    saved.write_text(snapshot_file(DATA / "houses_new.csv").profile)  # what a profile task's save writes
    workspace.pipeline("snap", f"""
        name = "snap"
        [tasks.profile]
        command = ["cp", "{saved}", "batch_profile.json"]
        workdir = "{{output_dir}}"
        outputs = ["batch_profile.json"]
        """)
    daemon.start()
    rid = daemon.call("trigger", {"pipeline": "snap"})["run_id"]
    assert daemon.wait_run(rid) == "succeeded"
    out = workspace.invoke("baseline", "set", "recent", "--from-run", str(rid), "--task", "profile", "--json")
    assert out.returncode == 0, out.stderr
    row = json.loads(out.stdout)["baseline"]
    assert row["source"]["run_id"] == rid and row["source"]["path"].endswith("batch_profile.json") and row["rows"] == 1000
    assert daemon.call("baselines.list")["baselines"][0]["name"] == "recent"
    refused = workspace.invoke("baseline", "set", "recent", "--from-run", str(rid), "--task", "nope")
    assert refused.returncode == 3 and "has no task 'nope'" in refused.stderr
    relative = daemon.client().call  # a path the daemon cannot resolve for the client is refused
    try:
        relative("baselines.set", {"name": "x", "path": "data.csv"})
        raise AssertionError("a relative path must be refused")
    except Exception as exc:  # noqa: BLE001 - the error travels as an EdgeorchError
        assert "absolute path" in str(exc)
