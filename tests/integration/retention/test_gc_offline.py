"""``edgeorch gc`` without a daemon (issue 19, point 10): real state file, real run folders, the real command."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from edgeorch.control.statelock import acquire_state_lock


def _report(proc) -> dict:
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_a_dry_run_changes_nothing_and_says_what_would_go(old_runs, gc):
    old = old_runs.make("plain", 2, days_ago=100)
    old_runs.make("plain", 1, days_ago=0)
    before = old_runs.snapshot()
    report = _report(gc("--older-than", "30d", "--json"))
    assert [r["run_id"] for r in report["runs"]] == old and not report["apply"]
    assert all(r["folder"] == "would be removed" and r["bytes"] > 0 for r in report["runs"])
    assert report["bytes"] == sum(r["bytes"] for r in report["runs"])
    assert report["rows"]["runs"] == 2 and report["rows"]["tasks"] == 2 and report["rows"]["attempts"] == 2
    human = gc("--older-than", "30d")
    assert human.returncode == 0 and "would remove 2 run(s)" in human.stdout and "--apply" in human.stdout
    assert gc("--older-than", "30d", "-q").stdout.split() == [str(r) for r in old]  # -q: the ids only
    assert old_runs.snapshot() == before


def test_apply_removes_exactly_the_old_runs_their_rows_and_their_folders(old_runs, gc):
    old = old_runs.make("plain", 2, days_ago=100)
    (recent,) = old_runs.make("plain", 1, days_ago=1)
    folders = [Path(old_runs.row(r)["run_dir"]) for r in old]
    recent_dir = Path(old_runs.row(recent)["run_dir"])
    recent_rows = old_runs.rows_of(recent)
    report = _report(gc("--older-than", "30d", "--apply", "--json"))
    assert [r["run_id"] for r in report["runs"]] == old and report["apply"]
    assert all(r["folder"] == "removed" for r in report["runs"]) and report["bytes"] > 0
    assert old_runs.run_ids() == [recent]
    for run_id in old:
        assert not any(old_runs.rows_of(run_id).values()), run_id
    assert not any(f.exists() for f in folders)
    assert recent_dir.is_dir() and (recent_dir / "outputs" / "a" / "out.txt").is_file()
    assert old_runs.rows_of(recent) == recent_rows
    with old_runs.db() as conn:
        (ev,) = conn.execute("SELECT * FROM events WHERE kind = 'runs_removed'").fetchall()
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    assert json.loads(ev["data"])["runs"] == old and f"(uid {os.getuid()})" in ev["actor"]
    again = _report(gc("--older-than", "30d", "--apply", "--json"))
    assert again["runs"] == [] and again["strays"] == []  # nothing left to do: no stray of the first pass


def test_a_removed_run_is_said_removed_when_and_by_whom_not_unknown(old_runs, gc, workspace):
    """`show` of a run retention removed said "no such run", as for an id never used."""
    old = old_runs.make("plain", 1, days_ago=100)
    old_runs.make("plain", 1, days_ago=0)
    assert gc("--older-than", "30d", "--apply").returncode == 0
    shown = workspace.invoke("show", str(old[0]))
    assert shown.returncode == 3
    assert f"run {old[0]} was removed by " in shown.stderr and f"(uid {os.getuid()}) at " in shown.stderr, shown.stderr
    assert " UTC" in shown.stderr and "edgeorch gc" in shown.stderr
    never = workspace.invoke("show", "999")
    assert never.returncode == 3 and "no such run (found 999)" in never.stderr


def test_only_the_given_pipeline_is_collected(old_runs, gc):
    plain = old_runs.make("plain", 1, days_ago=100)
    cached = old_runs.make("cached", 1, days_ago=100)
    old_runs.make("plain", 1, days_ago=0)
    report = _report(gc("--older-than", "30d", "--pipeline", "cached", "--apply", "--json"))
    assert [r["run_id"] for r in report["runs"]] == cached
    assert plain[0] in old_runs.run_ids()


def test_an_unknown_pipeline_is_an_error_not_nothing_to_remove(old_runs, gc):
    """`gc --pipeline nope` said "nothing to remove", exit 0: a typo read as a clean state."""
    old_runs.make("plain", 1, days_ago=100)
    typo = gc("--older-than", "30d", "--pipeline", "plian")
    assert typo.returncode == 3 and "no pipeline named 'plian'" in typo.stderr, typo.stderr
    assert "did you mean 'plain'?" in typo.stderr
    for flags in ((), ("--apply",)):  # a known pipeline with nothing old enough is still "nothing to remove"
        quiet = gc("--older-than", "300d", "--pipeline", "cached", *flags)
        assert quiet.returncode == 0 and "nothing to remove" in quiet.stdout, quiet.stderr


def test_a_cache_source_stays_while_a_newer_run_reuses_its_outputs(old_runs, gc):
    (source,) = old_runs.make("cached", 1, days_ago=100)
    (user,) = old_runs.make("cached", 1, days_ago=1)  # a cache hit on the source's attempt
    with old_runs.db() as conn:
        assert conn.execute("SELECT cached_from FROM tasks WHERE run_id = ?", (user,)).fetchone()[0] is not None
    report = _report(gc("--older-than", "30d", "--apply", "--json"))
    assert report["runs"] == []
    (held,) = report["held"]
    cache = [h for h in held["holds"] if h["rule"] == "cache"]
    assert held["run_id"] == source and cache and all(h["while_kept"] == user for h in cache)
    source_dir = Path(old_runs.row(source)["run_dir"])
    with old_runs.db() as conn:  # the user's recorded output is its link to the source's file, which is still there
        (path,) = [r[0] for r in conn.execute("SELECT path FROM artifacts WHERE run_id = ?", (user,))]
        (own,) = [r[0] for r in conn.execute("SELECT path FROM artifacts WHERE run_id = ?", (source,))]
    assert Path(path).is_relative_to(Path(old_runs.row(user)["run_dir"])) and Path(path).samefile(own)
    assert Path(own).is_relative_to(source_dir) and Path(own).is_file()


def test_a_cache_source_goes_with_its_user_when_both_are_old(old_runs, gc):
    runs = old_runs.make("cached", 2, days_ago=100)  # the second is a cache hit on the first
    old_runs.make("plain", 1, days_ago=0)
    report = _report(gc("--older-than", "30d", "--apply", "--json"))
    assert [r["run_id"] for r in report["runs"]] == runs and report["held"] == []


def test_keep_last_holds_the_latest_runs_of_each_pipeline(old_runs, gc, workspace):
    workspace.write_config(extra="[retention]\nkeep_last = 2\n")
    runs = old_runs.make("plain", 4, days_ago=100)
    old_runs.make("cached", 1, days_ago=0)
    report = _report(gc("--older-than", "30d", "--json"))
    assert [r["run_id"] for r in report["runs"]] == runs[:2]
    assert {h["run_id"]: [x["rule"] for x in h["holds"]] for h in report["held"]} == {
        runs[2]: ["keep_last"], runs[3]: ["keep_last"]}
    assert [r["run_id"] for r in _report(gc("--older-than", "30d", "--keep-last", "0", "--json"))["runs"]] == runs


def test_an_active_run_is_never_removed(old_runs, gc):
    (done,) = old_runs.make("plain", 1, days_ago=100)
    old_runs.make("plain", 1, days_ago=0)
    queued = old_runs.queued("plain", days_ago=100)  # created 100 days ago, never started
    report = _report(gc("--older-than", "30d", "--apply", "--json"))
    assert [r["run_id"] for r in report["runs"]] == [done]
    (held,) = report["held"]
    assert held["run_id"] == queued and "active (queued)" in [h["reason"] for h in held["holds"]]
    assert Path(old_runs.row(queued)["run_dir"]).is_dir()


def test_the_retention_setting_is_the_default_bound(old_runs, gc, workspace):
    old = old_runs.make("plain", 1, days_ago=100)
    old_runs.make("plain", 1, days_ago=10)
    workspace.write_config(extra='[retention]\nruns = "30d"\n')
    report = _report(gc("--json"))
    assert [r["run_id"] for r in report["runs"]] == old and report["older_than"] == 30 * 86400.0


def test_a_symlinked_run_folder_is_unlinked_and_its_target_left_alone(old_runs, gc, tmp_path):
    linked, inner = old_runs.make("plain", 2, days_ago=100)
    old_runs.make("plain", 1, days_ago=0)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("keep me\n")
    run_dir = Path(old_runs.row(linked)["run_dir"])
    moved = tmp_path / "moved-run"
    run_dir.rename(moved)
    run_dir.symlink_to(outside, target_is_directory=True)  # the run folder is now a link to elsewhere
    inner_dir = Path(old_runs.row(inner)["run_dir"])
    (inner_dir / "outputs" / "a" / "link").symlink_to(outside / "precious.txt")  # a link inside a run folder
    (inner_dir / "outputs" / "a" / "dirlink").symlink_to(outside, target_is_directory=True)
    report = _report(gc("--older-than", "30d", "--apply", "--json"))
    assert [r["run_id"] for r in report["runs"]] == [linked, inner]
    assert not os.path.lexists(run_dir) and not inner_dir.exists()
    assert (outside / "precious.txt").read_text() == "keep me\n" and sorted(os.listdir(outside)) == ["precious.txt"]


def test_a_run_folder_outside_the_runs_folder_is_never_removed(old_runs, gc, tmp_path):
    (run_id,) = old_runs.make("plain", 1, days_ago=100)
    old_runs.make("plain", 1, days_ago=0)
    elsewhere = tmp_path / "elsewhere" / str(run_id)
    Path(old_runs.row(run_id)["run_dir"]).rename(elsewhere.parent.mkdir() or elsewhere)
    with old_runs.db() as conn:  # a hand-edited row (or a state dir moved): the folder is not under runs/
        conn.execute("UPDATE runs SET run_dir = ? WHERE id = ?", (str(elsewhere), run_id))
    report = _report(gc("--older-than", "30d", "--apply", "--json"))
    (gone,) = report["runs"]
    assert gone["run_id"] == run_id and gone["folder"].startswith("left in place")
    assert (elsewhere / "outputs" / "a" / "out.txt").is_file()
    assert run_id not in old_runs.run_ids()


def test_bad_values_are_usage_errors_naming_the_option_and_the_value(old_runs, gc):
    old_runs.make("plain", 1, days_ago=100)
    before = old_runs.snapshot()
    for value in ("soon", "0", "-3d", "forever"):
        proc = gc(f"--older-than={value}", "--apply")
        assert proc.returncode == 2, (value, proc.stderr)
        assert "--older-than" in proc.stderr and repr(value) in proc.stderr and "at least 1s" in proc.stderr
    proc = gc("--older-than", "30d", "--keep-last", "-1")
    assert proc.returncode == 2 and "--keep-last" in proc.stderr and "-1" in proc.stderr
    assert old_runs.snapshot() == before


def test_without_a_bound_or_a_retention_setting_gc_says_how_to_give_one(old_runs, gc, workspace):
    proc = gc("--apply")
    assert proc.returncode == 2
    assert str(workspace.config_path) in proc.stderr and "[retention] runs" in proc.stderr
    assert "--older-than 90d" in proc.stderr


def test_apply_is_refused_while_another_process_writes_the_state(old_runs, gc, workspace):
    old = old_runs.make("plain", 1, days_ago=100)
    old_runs.make("plain", 1, days_ago=0)
    with acquire_state_lock(workspace.state):  # an `edgeorch run` without a daemon, say
        # A real process: the state lock is held per process, so an in-process gc would share this one.
        proc = subprocess.run([*workspace.cli(), "gc", "--older-than", "30d", "--apply"], env=workspace.cli_env(),
                              capture_output=True, text=True, timeout=120)
    assert proc.returncode == 75 and "in use" in proc.stderr  # busy while that run lasts: try again
    assert old[0] in old_runs.run_ids()
    assert _report(gc("--older-than", "30d", "--json"))["runs"][0]["run_id"] == old[0]  # a dry run needs no lock


def test_no_state_file_yet_means_nothing_to_remove(gc):
    report = _report(gc("--older-than", "1d", "--json"))
    assert report["runs"] == [] and report["bytes"] == 0


def test_gc_names_the_model_versions_its_runs_made_and_what_goes_with_them(old_runs, gc, workspace):
    """A run that made a model version (one no alias holds) went without a word: its version's record stayed in
    the registry, but its files and lineage went with the run."""
    from edgeorch.store import Store

    old = old_runs.make("plain", 2, days_ago=100)
    old_runs.make("plain", 1, days_ago=0)  # the newest run of a pipeline is always kept
    store = Store(workspace.config().state_file)
    try:
        for version_run in (old[0], old[0], old[1]):
            store.models.register("churn", artifact={"kind": "file", "path": "/nowhere/m.pkl", "sha256": "0" * 64,
                                                     "size": 1, "files": 1},
                                  metrics={"auc": 0.9}, source={"run_id": version_run, "task": "a"},
                                  gate_verdict="failed")  # blocked by its gates: no alias holds its run
    finally:
        store.close()
    report = _report(gc("--older-than", "30d", "--json"))
    assert {r["run_id"]: r["models"] for r in report["runs"]} == {old[0]: ["churn 1", "churn 2"], old[1]: ["churn 3"]}
    human = gc("--older-than", "30d")
    assert human.returncode == 0
    text = " ".join(human.stdout.split())
    assert f"model versions made by those runs: churn 1 (run {old[0]}), churn 2 (run {old[0]}), churn 3 (run " \
           f"{old[1]})" in text
    assert "lineage" in text and "staged copy" in text
    applied = gc("--older-than", "30d", "--apply")
    assert applied.returncode == 0 and "model versions made by these runs" in applied.stdout
    # The lineage of such a version says where it went, not "(nothing recorded)".
    tree = workspace.invoke("lineage", "model:churn@1", "--upstream")
    assert tree.returncode == 0, tree.stderr
    assert f"upstream: (run {old[0]}, which made it, was removed from the state file by `edgeorch gc`" in tree.stdout
    doc = json.loads(workspace.invoke("lineage", "model:churn@3", "--json").stdout)
    assert doc["nodes"]["model:churn@3"]["run_gone"] == old[1]


def test_a_file_two_runs_share_is_counted_once_in_the_bytes_freed(old_runs, gc):
    """A cache hit hard-links the earlier run's outputs into its own folder: removing one of the two folders
    frees nothing of such a file, and a gc that removes both counts it once."""
    runs = old_runs.make("cached", 2, days_ago=100)  # the second is a cache hit on the first: shared files
    old_runs.make("plain", 1, days_ago=0)
    inodes: dict[tuple[int, int], int] = {}  # every file and folder of both runs, once: what `du` counts
    holders: dict[tuple[int, int], set[int]] = {}
    for run_id in runs:
        top = old_runs.row(run_id)["run_dir"]
        st = os.lstat(top)
        inodes[(st.st_dev, st.st_ino)] = st.st_blocks * 512
        for root, dirs, files in os.walk(top):
            for name in files + dirs:
                st = os.lstat(os.path.join(root, name))
                inodes[(st.st_dev, st.st_ino)] = st.st_blocks * 512
                if name in files:
                    holders.setdefault((st.st_dev, st.st_ino), set()).add(run_id)
    assert any(len(h) == 2 and inodes[k] for k, h in holders.items())  # a file in both folders
    dry = _report(gc("--older-than", "30d", "--json"))
    assert dry["bytes"] == sum(inodes.values())  # counted once, not in neither run (each frees it only with the other)
    report = _report(gc("--older-than", "30d", "--apply", "--json"))
    assert [r["run_id"] for r in report["runs"]] == runs
    assert report["bytes"] == sum(inodes.values())


def test_a_file_with_all_its_names_in_one_run_is_counted_in_that_runs_row(tmp_path):
    """A file hard-linked twice inside one run folder was left out of that run's size (only the total had it)."""
    from edgeorch.retention.folders import freed_together, measure

    run = tmp_path / "7"
    (run / "outputs").mkdir(parents=True)
    (run / "outputs" / "twice").write_bytes(b"x" * 65536)
    os.link(run / "outputs" / "twice", run / "outputs" / "twice2")
    outside = tmp_path / "outside"
    outside.write_bytes(b"y" * 65536)
    os.link(outside, run / "outputs" / "borrowed")
    shared: dict = {}
    size = measure(run, shared)
    blocks = os.lstat(run / "outputs" / "twice").st_blocks * 512
    assert size >= blocks + 2 * 4096  # the twice-named file, and the two folders
    assert freed_together(shared) == 0  # the borrowed file has a name outside: removing the run frees none of it
    assert size + freed_together(shared) == sum(os.lstat(p).st_blocks * 512 for p in (run, run / "outputs")) + blocks
