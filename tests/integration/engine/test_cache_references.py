"""A kind task's stored references (`baseline:NAME`, `model:NAME@ALIAS`) are part of its cache key by what they
resolve to, not only by their text."""

from __future__ import annotations

from pathlib import Path

DATA = Path(__file__).resolve().parents[3] / "examples" / "data"


def test_a_cached_drift_task_misses_once_a_newer_baseline_is_set(workspace, harness) -> None:
    """A nightly cached drift check must compare with the newest baseline, not replay its verdict against the
    old one; with the baseline unchanged it stays a cache hit."""
    workspace.pipeline("nightly", f'''
        [params]
        baseline = "baseline:houses"
        [tasks.drift]
        kind = "drift"
        cache = true
        [tasks.drift.options]
        reference = "{{baseline}}"
        current = "{DATA / 'houses_new.csv'}"
        on_violation = "warn"
        ''')
    assert workspace.invoke("baseline", "set", "houses", str(DATA / "houses.csv")).returncode == 0
    runs = [harness.run("nightly")[0] for _ in range(2)]
    assert workspace.invoke("baseline", "set", "houses", str(DATA / "houses_drifted.csv")).returncode == 0
    runs += [harness.run("nightly")[0] for _ in range(2)]
    store = harness.store()
    try:
        # Ran, cache hit; a newer baseline: ran again, then a hit on that one.
        assert [len(store.attempts.of_run(r, "drift")) for r in runs] == [1, 0, 1, 0]
    finally:
        store.close()


def test_the_drift_command_reads_a_baseline_from_the_configs_state_file(workspace) -> None:
    """`edgeorch drift baseline:NAME FILE` said "baseline:houses needs the state file, and this process was not told
    where it is", exit 1 (which `drift ... || alert` reads as drift found)."""
    assert workspace.invoke("baseline", "set", "houses", str(DATA / "houses.csv")).returncode == 0
    same = workspace.invoke("drift", "baseline:houses", str(DATA / "houses.csv"), env={"EDGEORCH_KEEP_WARM": "0"})
    assert same.returncode == 0 and "(reference: baseline:houses)" in same.stdout, same.stdout + same.stderr
    moved = workspace.invoke("drift", "baseline:houses", str(DATA / "houses_drifted.csv"),
                             env={"EDGEORCH_KEEP_WARM": "0"})
    assert moved.returncode == 1 and "dataset drift" in moved.stdout, moved.stdout + moved.stderr
