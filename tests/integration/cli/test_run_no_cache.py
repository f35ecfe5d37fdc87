"""`edgeorch run --no-cache`: every task runs, its result recorded; the next run is served from it again."""

from __future__ import annotations

import json


def _counted(workspace) -> str:
    """A cached task that appends a line to a file outside the run at each real run: how many times it ran."""
    tally = workspace.root / "tally"
    workspace.pipeline("c", f'''
        [tasks.a]
        command = ["sh", "-c", "echo ran >> {tally}; echo result > $EDGEORCH_OUTPUT_DIR/out.txt"]
        outputs = ["out.txt"]
        cache = true
        ''')
    return str(tally)


def _ran(tally: str) -> int:
    try:
        return open(tally).read().count("ran")
    except FileNotFoundError:
        return 0


def test_no_cache_runs_every_task_and_records_its_result_offline(workspace) -> None:
    """Found by an operator: after a fix to the script a task calls (not in the cache key), nothing the docs named
    got a fresh result but editing the pipeline file or a dummy param."""
    tally = _counted(workspace)
    for argv, ran in ((("run", "c", "-q"), 1), (("run", "c", "-q"), 1), (("run", "c", "-q", "--no-cache"), 2),
                      (("run", "c", "-q"), 2)):
        out = workspace.invoke(*argv)
        assert out.returncode == 0, out.stderr
        assert _ran(tally) == ran, (argv, ran)
    doc = json.loads(workspace.invoke("show", "3", "--json").stdout)
    assert doc["no_cache"] is True
    assert "cache: not used (--no-cache)" in workspace.invoke("show", "3").stdout
    assert json.loads(workspace.invoke("show", "4", "--json").stdout)["no_cache"] is False


def test_no_cache_through_the_daemon_and_the_client(workspace, daemon) -> None:
    from edgeorch import Client

    tally = _counted(workspace)
    daemon.start()
    assert workspace.invoke("run", "c", "-q").returncode == 0
    assert workspace.invoke("run", "c", "-q").returncode == 0
    assert _ran(tally) == 1  # the second was served from the first's result
    out = workspace.invoke("run", "c", "-q", "--no-cache")
    assert out.returncode == 0, out.stderr
    assert _ran(tally) == 2
    with Client(config=workspace.config_path) as client:
        assert client.run("c", no_cache=True, timeout=60).succeeded
        assert _ran(tally) == 3
        assert client.run("c", timeout=60).succeeded
        assert _ran(tally) == 3
    assert daemon.call("runs.show", {"run_id": 4})["no_cache"] is True
    assert daemon.call("runs.show", {"run_id": 5})["no_cache"] is False
