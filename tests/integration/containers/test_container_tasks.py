"""Container tasks through a real engine and real podman: outputs, leases, timeout, cancel, digest and cache."""

from __future__ import annotations

import json
import sqlite3

import pytest
from container_helpers import TRAPS_TERM, cancel_once_started, pipeline_text, run_pipeline, until

from edgeorch.model import RunState
from edgeorch.store import Store

NO_NET = 'args = ["--network", "none"]'


def _attempts(ws, task: str) -> list[sqlite3.Row]:
    conn = sqlite3.connect(ws.state / "edgeorch.db")
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute("SELECT * FROM attempts WHERE task = ? ORDER BY id", (task,)).fetchall()
    finally:
        conn.close()


def test_a_container_task_writes_an_output_the_next_host_task_reads_pinned_to_its_core(container_ws, podman):
    ws = container_ws
    ws.pipeline("c", pipeline_text(f"""
        [tasks.make]
        command = ["sh", "-c", "grep Cpus_allowed_list /proc/self/status > $EDGEORCH_CHECKPOINT_DIR/cpus; echo made-$GREETING > /edgeorch/output/out.txt; pwd; env"]
        outputs = ["out.txt"]
        cpus = 1
        memory = "64M"
        env = {{ GREETING = "hi", TMPDIR = "/nonexistent/tmp", PATH = "/bin:/nonexistent/bin" }}
        container = {{ image = "{podman.image}", pull = "never", {NO_NET} }}
        [tasks.read]
        command = ["sh", "-c", "cat \\"$EDGEORCH_UPSTREAM_MAKE\\""]
        needs = ["make"]
    """))
    run_id, state = run_pipeline(ws, "c")
    assert state == RunState.SUCCEEDED
    run_dir = ws.state / "runs" / str(run_id)
    assert (run_dir / "outputs" / "make" / "out.txt").read_text() == "made-hi\n"
    assert (run_dir / "attempts" / "read.1" / "output.log").read_text() == "made-hi\n"
    store = Store(ws.state / "edgeorch.db")
    try:
        lease = store.attempts.lease_of(_attempts(ws, "make")[0]["id"])
    finally:
        store.close()
    inside = (run_dir / "checkpoints" / "make" / "cpus").read_text().split()[-1]
    assert len(lease["cpus"]) == 1 and inside == str(lease["cpus"][0])  # pinned to its leased core, inside
    log = (run_dir / "attempts" / "make.1" / "output.log").read_text()
    assert f"{ws.pipelines}\n" in log  # the working folder: the pipeline's folder, at its own path
    assert f"EDGEORCH_OUTPUT_DIR={run_dir / 'outputs' / 'make'}" in log and "OMP_NUM_THREADS=1" in log
    assert "EDGEORCH_CONFIG" not in log and "NUMBA_CACHE_DIR" not in log  # the daemon's environment stays out
    # Variables the runtime's client reads itself reach the container, not the client on the host (podman with the
    # task's TMPDIR failed with 125: "open /nonexistent/tmp/...").
    assert "TMPDIR=/nonexistent/tmp" in log and "PATH=/bin:/nonexistent/bin" in log, log
    assert (run_dir / "attempts" / "make.1" / "container.id").read_text().strip()  # the container's id, recorded
    assert podman.containers(ws.state) == []  # removed when it ended


def test_the_digest_is_recorded_and_a_changed_image_misses_the_cache(container_ws, podman):
    ws = container_ws
    tag = f"{podman.image}-cache"
    first = podman.build(tag, "one")
    built = [first]
    try:
        ws.pipeline("k", pipeline_text(f"""
            [tasks.t]
            command = ["sh", "-c", "cat /etc/edgeorch-test > $EDGEORCH_OUTPUT_DIR/o"]
            outputs = ["o"]
            cache = true
            container = {{ image = "{tag}", pull = "never", {NO_NET} }}
        """))
        assert run_pipeline(ws, "k")[1] == RunState.SUCCEEDED
        run2, state2 = run_pipeline(ws, "k")
        assert state2 == RunState.SUCCEEDED
        store = Store(ws.state / "edgeorch.db")
        try:
            assert store.runs.get(run2)  # the run exists
            consumed = store.lineage.consumed_by(run2, "t")
            task2 = next(t for t in store.runs.tasks_of(run2) if t["name"] == "t")
        finally:
            store.close()
        assert task2["state"] == "skipped" and task2["cached_from"] is not None  # same image: a cache hit
        assert [(c["kind"], c["path"], c["sha256"]) for c in consumed] == [("image", tag, first)]
        second = podman.build(tag, "two")  # the same tag, other content
        built.append(second)
        assert second != first
        run3, state3 = run_pipeline(ws, "k")
        assert state3 == RunState.SUCCEEDED
        assert (ws.state / "runs" / str(run3) / "outputs" / "t" / "o").read_text() == "image two\n"  # it ran again
        lineage = ws.invoke("lineage", f"{run3}/t", "--json")
        assert lineage.returncode == 0, lineage.stderr
        nodes = json.loads(lineage.stdout)["nodes"]
        assert {"kind": "image", "reference": tag, "sha256": second} in [
            {k: n.get(k) for k in ("kind", "reference", "sha256")} for n in nodes.values()]
        assert f"image {tag} sha256:{second}" in ws.invoke("lineage", f"{run3}/t").stdout
    finally:
        podman.run("rmi", "--force", tag, *built, check=False)


def test_a_timeout_stops_the_container_and_removes_it(container_ws, podman):
    ws = container_ws
    # PID 1 of a container ignores SIGTERM without a handler: the stop ends in SIGKILL after kill_grace.
    ws.pipeline("slow", pipeline_text(f"""
        [tasks.slow]
        command = ["sh", "-c", "echo started; sleep 60"]
        timeout = "1s"
        container = {{ image = "{podman.image}", pull = "never", {NO_NET} }}
    """))
    run_id, state = run_pipeline(ws, "slow")
    assert state == RunState.FAILED
    a = _attempts(ws, "slow")[0]
    assert a["state"] == "timed_out"
    assert "started" in (ws.state / "runs" / str(run_id) / "attempts" / "slow.1" / "output.log").read_text()
    assert podman.containers(ws.state) == []  # the cleanup removed what the kill left in podman's records


def test_a_container_killed_at_its_timeout_leaves_nothing_in_the_runtimes_records(container_ws, podman):
    """A container that ignores SIGTERM is killed at the end of kill_grace. The SIGKILL went to everything below
    the shim, the runtime's monitor (conmon) with the container, and a monitor killed before it cleaned up left
    runc's state folder and cgroups of each such attempt behind (`runc list`: "stopped", forever), which `rm
    --force` did not remove (a tester's find: one set per timed-out nightly). The container's processes are
    killed first; the runtime's end by themselves and remove it."""
    import os
    from pathlib import Path

    if os.geteuid() != 0:
        pytest.skip("reads the runtime's state folders under /run (root's)")
    ws = container_ws
    ws.pipeline("stubborn", pipeline_text(f"""
        [tasks.hang]
        command = ["sh", "-c", "trap 'echo got TERM, ignored' TERM; echo started; while true; do sleep 0.1; done"]
        timeout = "1s"
        container = {{ image = "{podman.image}", pull = "never", {NO_NET} }}
    """))
    ids: list[str] = []

    async def note_the_container(engine, run_id: int) -> None:
        log = ws.state / "runs" / str(run_id) / "attempts" / "hang.1" / "output.log"
        await until(lambda: log.exists() and "started" in log.read_text(), what="hang to start")
        out = podman.run("ps", "--filter", f"label=edgeorch.state_dir={ws.state}", "--format", "{{.ID}}",
                         "--no-trunc")
        ids.extend(out.stdout.split())

    run_id, state = run_pipeline(ws, "stubborn", during=note_the_container)
    assert state == RunState.FAILED and _attempts(ws, "hang")[0]["state"] == "timed_out"
    log = (ws.state / "runs" / str(run_id) / "attempts" / "hang.1" / "output.log").read_text()
    assert "got TERM, ignored" in log, log  # it had its SIGTERM, and ignored it: the kill came at the deadline
    assert len(ids) == 1 and podman.containers(ws.state) == []
    left = [str(d / ids[0]) for d in (Path("/run/runc"), Path("/run/crun")) if (d / ids[0]).exists()]
    assert left == [], f"the runtime keeps a record of the killed container: {left}"


def test_cancel_stops_the_container(container_ws, podman):
    ws = container_ws
    # A grace far longer than the forwarded SIGTERM needs (the end comes as soon as the trap ran): on a loaded
    # machine the forward (the client starting `runc kill`) can take longer than the fixture's 1 s.
    ws.write_config(extra=podman.config(), kill_grace="30s")
    ws.pipeline("long", pipeline_text(f"""
        [tasks.long]
        command = ["sh", "-c", "{TRAPS_TERM}"]
        container = {{ image = "{podman.image}", pull = "never", {NO_NET} }}
    """))

    run_id, state = run_pipeline(ws, "long", during=cancel_once_started(ws, "long"))
    assert state == RunState.CANCELLED
    a = _attempts(ws, "long")[0]
    # The stop's SIGTERM went to the client alone, which forwarded it to the container's PID 1 (its handler ran,
    # its last line reached the log) and ended with its code; nothing of podman's was killed on the way.
    assert (a["state"], a["exit_code"]) == ("exited", 3)
    log = (ws.state / "runs" / str(run_id) / "attempts" / "long.1" / "output.log").read_text()
    assert "got TERM" in log and "forwarding signal" not in log, log
    assert podman.containers(ws.state) == []


def test_cancel_gives_a_container_s_other_processes_their_sigterm_as_on_the_host(container_ws, podman):
    ws = container_ws
    ws.write_config(extra=podman.config(), kill_grace="30s")
    # PID 1 is a shell without a handler (it ignores SIGTERM); its child, the real work, checkpoints on SIGTERM.
    inner = "trap 'echo child got TERM; exit 4' TERM; echo started; while true; do sleep 0.1; done"
    ws.pipeline("wrapped", pipeline_text(f"""
        [tasks.long]
        command = ["sh", "-c", "sh -c \\"{inner}\\"; echo outer saw $?"]
        container = {{ image = "{podman.image}", pull = "never", {NO_NET} }}
    """))
    run_id, state = run_pipeline(ws, "wrapped", during=cancel_once_started(ws, "long"))
    assert state == RunState.CANCELLED
    a = _attempts(ws, "long")[0]
    log = (ws.state / "runs" / str(run_id) / "attempts" / "long.1" / "output.log").read_text()
    # The child's handler ran and PID 1 went on to its end: no SIGKILL after the grace.
    assert "child got TERM" in log and "outer saw 4" in log, log
    assert (a["state"], a["exit_code"]) == ("exited", 0), (dict(a)["signal"], dict(a)["reason"], log)
    assert podman.containers(ws.state) == []


def test_a_container_over_its_memory_bound_is_reported_as_out_of_memory(container_ws, podman):
    ws = container_ws
    # busybox tail keeps all of a newline-free stream: 200 MiB against a 32 MiB bound.
    ws.pipeline("hog", pipeline_text(f"""
        [tasks.hog]
        command = ["sh", "-c", "echo started; head -c 200m /dev/zero | tail"]
        memory = "32M"
        container = {{ image = "{podman.image}", pull = "never", {NO_NET} }}
    """))
    run_id, state = run_pipeline(ws, "hog")
    a = _attempts(ws, "hog")[0]
    if state == RunState.SUCCEEDED:
        log = (ws.state / "runs" / str(run_id) / "attempts" / "hog.1" / "output.log").read_text()
        pytest.skip(f"the runtime does not enforce --memory here: {log.strip()[-200:]}")
    assert state == RunState.FAILED
    assert a["state"] == "signalled" and a["signal"] == 9
    assert a["reason"] in ("killed: out of memory (memory bound 32M)",  # the monitor's OOM record
                           # a podman whose monitor leaves no record in its working folder: the bound, hedged
                           ("killed by signal 9 (SIGKILL), probably out of memory (memory bound 32M; "
                            "no OOM record to confirm it)"))
    show = ws.invoke("show", str(run_id))  # the task's reason, where people look
    assert show.returncode == 0, show.stderr
    assert "out of memory (memory bound 32M" in show.stdout
    assert not (ws.pipelines / "oom").exists()  # the monitor's marker stays in the attempt folder


def test_a_command_that_exits_with_a_runtime_code_itself_is_said_with_its_last_line(container_ws, podman):
    """A tester's find: a command exiting 125 or 127 itself was "the container runtime could not run the container
    (exit code 125; its message is in the log)", without the log's last line host tasks get."""
    ws = container_ws
    ws.pipeline("own", pipeline_text(f"""
        [tasks.self125]
        command = ["sh", "-c", "echo I exit 125 myself; exit 125"]
        container = {{ image = "{podman.image}", pull = "never", {NO_NET} }}
        [tasks.missing]
        command = ["no-such-program-here"]
        container = {{ image = "{podman.image}", pull = "never", {NO_NET} }}
    """))
    run_id, state = run_pipeline(ws, "own")
    assert state == RunState.FAILED
    (own,) = _attempts(ws, "self125")
    assert own["exit_code"] == 125
    assert own["reason"].startswith("exited with code 125: I exit 125 myself (the container runtime's code"), own["reason"]
    (missing,) = _attempts(ws, "missing")
    assert missing["exit_code"] in (126, 127)  # runc says 127, crun may say 126
    assert "no-such-program-here" in missing["reason"] and "the container runtime's code for" in missing["reason"]


def test_show_names_the_image_and_digest_each_container_attempt_ran_in(container_ws, podman):
    """A tester's find: neither `show` nor its JSON said which image (digest) ran; only `lineage` did, and `show`
    is where one looks first when a nightly result changed after an image rebuild."""
    import subprocess
    import sys

    ws = container_ws
    ws.pipeline("img", pipeline_text(f"""
        [tasks.c]
        command = ["true"]
        container = {{ image = "{podman.image}", pull = "never", {NO_NET} }}
        [tasks.h]
        command = ["true"]
    """))
    run_id, state = run_pipeline(ws, "img")
    assert state == RunState.SUCCEEDED
    digest = podman.digest(podman.image)
    env = {**__import__("os").environ, "EDGEORCH_CONFIG": str(ws.config_path)}
    doc = json.loads(subprocess.run([sys.executable, "-m", "edgeorch.cli", "show", str(run_id), "--json"], env=env,
                                    capture_output=True, text=True, check=True).stdout)
    by_task = {t["name"]: t["attempt_list"][0] for t in doc["tasks"]}
    assert by_task["c"]["image"] == {"reference": podman.image, "digest": digest}
    assert by_task["h"]["image"] is None
    out = subprocess.run([sys.executable, "-m", "edgeorch.cli", "show", str(run_id)], env=env, capture_output=True,
                         text=True, check=True).stdout
    assert "\nimages:\n" in out and podman.image in out and digest[:19] in out, out
