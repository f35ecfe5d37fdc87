"""The daemon's metrics, scraped for real: HTTP, the node_exporter textfile and the ``metrics`` op.

One scripted scenario on a real daemon (fake GPU backend): a pipeline that
succeeds, one that fails, a drop-folder file and its duplicate, a run holding
a core and the GPU while another waits for the parallelism slot, a paused
pipeline. Every scrape is parsed with ``prometheus_client``'s text parser and
its values compared with what the scenario did.
"""

from __future__ import annotations

import shutil
import sys
import textwrap
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from edgeorch.errors import UsageError

GPU = "GPU-11111111-2222-3333-4444-555555555555"

Values = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Values:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(text) for s in f.samples}


def value(values: Values, name: str, /, **labels: str) -> float | None:
    return values.get((name, tuple(sorted(labels.items()))))


def total(values: Values, name: str, /, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    return sum(v for (n, ls), v in values.items() if n == name and set(labels.items()) <= set(ls))


def scrape(url: str) -> Values:
    with urllib.request.urlopen(url, timeout=30) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return parse(resp.read().decode())


def wait_events(daemon, cond, what: str, timeout: float = 60) -> None:
    """Follow the daemon's events stream until ``cond()`` holds (checked at subscribe and after each event)."""
    with daemon.client(timeout=timeout) as c:
        for _ in c.stream("events", {}, timeout=timeout):
            if cond():
                return
    raise AssertionError(f"the events stream ended before {what}")


def input_counts(daemon) -> dict[str, int]:
    """Drop-folder inputs per state, as ``edgeorch inputs`` sees them."""
    return daemon.call("inputs.list", {})["counts"]


class TextfileWatch:
    """Signals each time the textfile is renamed into place (inotify through watchdog: no polling)."""

    def __init__(self, path: Path) -> None:
        from watchdog.events import FileSystemEventHandler
        from watchdog.observers import Observer

        self.path = path
        self.replaced = threading.Event()
        watch = self

        class Handler(FileSystemEventHandler):
            def on_moved(self, event) -> None:  # type: ignore[no-untyped-def]
                if Path(event.dest_path) == watch.path:
                    watch.replaced.set()

        self.observer = Observer()
        self.observer.schedule(Handler(), str(path.parent))
        self.observer.start()

    def next_version(self, timeout: float = 30) -> Values:
        """The file's content after its next replacement."""
        self.replaced.clear()
        assert self.replaced.wait(timeout), f"{self.path} was not rewritten within {timeout}s"
        return parse(self.path.read_text())

    def close(self) -> None:
        self.observer.stop()
        self.observer.join()


@pytest.fixture
def metrics_workspace(workspace, tmp_path):
    gpus = tmp_path / "gpus.toml"
    gpus.write_text(textwrap.dedent(f"""\
        [[gpu]]
        uuid = "{GPU}"
        name = "NVIDIA A100-SXM4-80GB"
        memory = "10G"
        used = "1G"
        utilization = 37
        temperature = 41
        """))
    drop = tmp_path / "drop"
    drop.mkdir()
    (tmp_path / "prom").mkdir()
    workspace.write_config(f"""
        [resources]
        gpu_backend = "fake"
        fake_gpus = "{gpus}"
        [metrics]
        listen = "127.0.0.1:0"
        textfile = "{tmp_path / 'prom' / 'edgeorch.prom'}"
        interval = "1s"
        [[watch]]
        folder = "{drop}"
        pipeline = "ingest"
        settle = "0.2s"
        """, parallelism=1)
    workspace.pipeline("ok", '[tasks.a]\ncommand = ["true"]\n')
    workspace.pipeline("bad", '[tasks.a]\ncommand = ["sh", "-c", "exit 3"]\n')
    workspace.pipeline("ingest", '[params]\ninput = { type = "path", default = "" }\n'
                                 '[tasks.check]\ncommand = ["test", "-f", "{input}"]\n')
    workspace.pipeline("hold", textwrap.dedent("""\
        [tasks.train]
        command = ["sh", "-c", "while [ ! -f {pipeline_dir}/release ]; do sleep 0.05; done"]
        cpus = 1
        gpus = 1
        """))
    workspace.pipeline("behind", '[tasks.a]\ncommand = ["true"]\n')
    workspace.drop = drop  # type: ignore[attr-defined]
    workspace.prom = tmp_path / "prom" / "edgeorch.prom"  # type: ignore[attr-defined]
    return workspace


def test_scraped_values_match_the_state_after_a_scripted_scenario(metrics_workspace, daemon):
    ws = metrics_workspace
    daemon.start()
    outputs = daemon.call("metrics")["outputs"]
    assert outputs["textfile"] == str(ws.prom) and outputs["interval_s"] == 1.0
    url = f"http://{outputs['listen']}/metrics"
    assert outputs["listen"].startswith("127.0.0.1:")
    watch = TextfileWatch(ws.prom)
    try:
        # Runs that end: one succeeds, one fails.
        for name in ("ok", "bad"):
            run = daemon.call("trigger", {"pipeline": name})["run_id"]
            daemon.wait_run(run)
        # A dropped file, then the same content again: one run, one duplicate.
        (ws.drop / "a.csv").write_text("x,y\n1,2\n")
        wait_events(daemon, lambda: input_counts(daemon).get("done") == 1, "the dropped file's run")
        (ws.drop / "b.csv").write_text("x,y\n1,2\n")
        wait_events(daemon, lambda: input_counts(daemon).get("duplicate") == 1, "the duplicate")
        # A run holding a core and the GPU; another waits for the one parallelism slot.
        hold = daemon.call("trigger", {"pipeline": "hold"})["run_id"]
        wait_events(daemon, lambda: daemon.call("resources")["running"] == 1, "the holding task running")
        behind = daemon.call("trigger", {"pipeline": "behind"})["run_id"]
        daemon.call("pipelines.pause", {"name": "ok"})

        v = scrape(url)
        assert value(v, "edgeorch_runs_finished_total", pipeline="ok", state="succeeded") == 1
        assert value(v, "edgeorch_runs_finished_total", pipeline="bad", state="failed") == 1
        assert value(v, "edgeorch_runs_finished_total", pipeline="ingest", state="succeeded") == 1
        assert value(v, "edgeorch_runs_active", pipeline="hold") == 1
        assert value(v, "edgeorch_runs_active", pipeline="behind") == 1
        assert value(v, "edgeorch_tasks", pipeline="hold", state="running") == 1
        assert value(v, "edgeorch_tasks", pipeline="behind", state="ready") == 1
        assert value(v, "edgeorch_attempts_running") == 1
        assert value(v, "edgeorch_queue_length") == 1
        assert value(v, "edgeorch_queue_tasks", pipeline="behind", reason="parallelism") == 1
        assert total(v, "edgeorch_cpu_core_leased") == 1
        assert value(v, "edgeorch_cpu_cores_free") == value(v, "edgeorch_cpu_cores") - 1
        assert value(v, "edgeorch_leases", pipeline="hold") == 1
        assert value(v, "edgeorch_gpu_leases", gpu=GPU) == 1
        assert value(v, "edgeorch_gpu_leased_memory_bytes", gpu=GPU) == 10 * 2**30  # a whole GPU
        assert value(v, "edgeorch_gpu_memory_total_bytes", gpu=GPU) == 10 * 2**30
        assert value(v, "edgeorch_gpu_memory_used_bytes", gpu=GPU) >= 2**30
        assert value(v, "edgeorch_gpu_utilization_ratio", gpu=GPU) == pytest.approx(0.37)
        assert value(v, "edgeorch_gpu_temperature_celsius", gpu=GPU) == 41
        assert value(v, "edgeorch_gpu_up", gpu=GPU) == 1 and value(v, "edgeorch_gpu_drained", gpu=GPU) == 0
        assert value(v, "edgeorch_gpu_info", gpu=GPU, name="NVIDIA A100-SXM4-80GB", index="0") == 1
        assert value(v, "edgeorch_pipeline_paused", pipeline="ok") == 1
        assert total(v, "edgeorch_drop_inputs_in_flight") == 0  # both settled
        assert value(v, "edgeorch_drop_input_events_total", pipeline="ingest", state="done") == 1
        assert value(v, "edgeorch_drop_input_events_total", pipeline="ingest", state="duplicate") == 1
        assert value(v, "edgeorch_drop_watches") == 1
        assert value(v, "edgeorch_attempt_duration_seconds_count", pipeline="bad", state="failed") == 1
        assert value(v, "edgeorch_attempt_duration_seconds_count", pipeline="ok", state="succeeded") == 1
        assert value(v, "edgeorch_events_total", event="RunQueued") == 5
        assert value(v, "edgeorch_engine_accepting") == 1
        assert value(v, "edgeorch_pipelines_loaded") == 5
        assert value(v, "edgeorch_pipeline_info", pipeline="behind") == 1
        assert value(v, "edgeorch_process_resident_memory_bytes") > 10 * 2**20
        assert value(v, "edgeorch_audit_head_sequence") >= 1  # the daemon's start is recorded
        assert 0 <= value(v, "edgeorch_event_loop_lag_seconds") < 5
        assert value(v, "edgeorch_event_loop_responsive") == 1
        assert value(v, "edgeorch_metrics_scrapes_total", output="http") >= 1
        assert all(val == 1 for (n, _), val in v.items() if n == "edgeorch_metrics_collector_up")

        # The textfile (its next version) and the op read the same state.
        t = watch.next_version()
        assert value(t, "edgeorch_queue_tasks", pipeline="behind", reason="parallelism") == 1
        assert value(t, "edgeorch_runs_finished_total", pipeline="bad", state="failed") == 1
        op_text = parse(daemon.call("metrics", {"format": "text"})["text"])
        assert value(op_text, "edgeorch_gpu_leases", gpu=GPU) == 1
        fams = {f["name"]: f for f in daemon.call("metrics", {"format": "json"})["families"]}
        assert fams["edgeorch_runs_finished"]["type"] == "counter"
        assert {"name": "edgeorch_queue_length", "labels": {}, "value": 1} in fams["edgeorch_queue_length"]["samples"]

        # Once the holding run ends, the waiting one runs and the numbers follow.
        (ws.pipelines / "release").write_text("")
        assert daemon.wait_run(hold) == "succeeded" and daemon.wait_run(behind) == "succeeded"
        v = scrape(url)
        assert value(v, "edgeorch_queue_length") == 0 and value(v, "edgeorch_attempts_running") == 0
        assert total(v, "edgeorch_cpu_core_leased") == 0 and value(v, "edgeorch_gpu_leases", gpu=GPU) == 0
        assert value(v, "edgeorch_runs_finished_total", pipeline="hold", state="succeeded") == 1
        assert value(v, "edgeorch_tasks", pipeline="hold", state="running") is None
        assert value(v, "edgeorch_runs_active", pipeline="hold") is None
        assert value(watch.next_version(), "edgeorch_runs_finished_total", pipeline="hold", state="succeeded") == 1
    finally:
        watch.close()
    assert daemon.stop() == 0
    assert ws.prom.exists()  # the last numbers stay for node_exporter
    assert [p.name for p in ws.prom.parent.iterdir()] == ["edgeorch.prom"]


def test_the_metrics_op_refuses_an_unknown_format(metrics_workspace, daemon):
    daemon.start()
    with pytest.raises(UsageError) as err:
        daemon.call("metrics", {"format": "xml"})
    assert "args.format" in err.value.render() and "json or text" in err.value.render()


def test_an_address_in_use_stops_the_daemon_before_anything_starts_naming_the_setting(workspace, daemon):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        workspace.write_config(f'[metrics]\nlisten = "127.0.0.1:{port}"\n')
        daemon.start(wait_ready=False)
        assert daemon.proc.wait(timeout=60) == 2
    out = daemon.output()
    assert f"{workspace.config_path}: metrics.listen: cannot serve metrics on 127.0.0.1:{port}" in out  # the file too
    assert "in use" in out
    assert "Traceback" not in out
    assert not (workspace.state / "edgeorch.db").exists()  # stopped before the state file was opened
    assert "talk to it" not in out  # no banner of a daemon that never served (it came before the error)


def test_a_missing_textfile_folder_stops_the_daemon_naming_the_setting(workspace, daemon, tmp_path):
    workspace.write_config(f'[metrics]\ntextfile = "{tmp_path}/nope/edgeorch.prom"\n')
    daemon.start(wait_ready=False)
    assert daemon.proc.wait(timeout=60) == 2
    out = daemon.output()
    assert "metrics.textfile: the textfile's folder does not exist" in out and "nope/edgeorch.prom" in out
    assert f"{workspace.config_path}: metrics.textfile" in out  # the file, as every config error names it
    assert "Traceback" not in out
    assert not workspace.state.exists()  # said before the state folder was made, locked or re-permissioned


GATE = textwrap.dedent("""\
    [params]
    metrics = ""
    [tasks.gate]
    kind = "gate"
    [tasks.gate.options]
    metrics = "{metrics}"
    conditions = ["rmse <= 60", "mae < 5"]
    on_violation = "warn"
    """)


def test_a_checks_latest_result_is_exported_and_read_back_from_the_history_after_a_restart(workspace, daemon,
                                                                                              tmp_path):
    workspace.pipeline("gated", GATE)
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text('{"rmse": 50, "mae": 3}')
    bad.write_text('{"rmse": 70, "mae": 3}')
    daemon.start()
    for path in (good, bad):  # the second, newer attempt is the one that counts
        daemon.wait_run(daemon.call("trigger", {"pipeline": "gated", "params": {"metrics": str(path)}})["run_id"])

    def check_values() -> Values:
        return parse(daemon.call("metrics", {"format": "text"})["text"])

    v = check_values()
    assert value(v, "edgeorch_check_verdict", pipeline="gated", task="gate", verdict="violation") == 1
    assert value(v, "edgeorch_check_verdict", pipeline="gated", task="gate", verdict="ok") == 0
    assert value(v, "edgeorch_check_value", pipeline="gated", task="gate", kind="gate", column="",
                 metric="rmse <= 60") == 70
    assert value(v, "edgeorch_check_threshold", pipeline="gated", task="gate", kind="gate", column="",
                 metric="rmse <= 60") == 60
    assert value(v, "edgeorch_check_rows", pipeline="gated", task="gate", kind="gate", verdict="ok") == 1
    assert daemon.stop() == 0

    daemon.start()  # a new daemon reads every check's latest result from the state file, off its loop
    deadline = time.monotonic() + 30
    while value(v := check_values(), "edgeorch_check_verdict", pipeline="gated", task="gate",
                verdict="violation") != 1:
        assert time.monotonic() < deadline, "the restarted daemon never exported the check's result"
        time.sleep(0.1)
    assert value(v, "edgeorch_check_value", pipeline="gated", task="gate", kind="gate", column="",
                 metric="mae < 5") == 3


def test_a_reload_says_a_changed_metrics_section_needs_a_restart(workspace, daemon):
    daemon.start()
    workspace.write_config('[metrics]\nlisten = "127.0.0.1:0"\n')
    answer = daemon.call("reload")
    assert any("[metrics]" in w and "restart" in w for w in answer["warnings"]), answer["warnings"]
    assert daemon.call("metrics")["outputs"]["listen"] is None  # still as it started


TRAIN = textwrap.dedent('''\
    import json, os, sys
    out = os.environ["EDGEORCH_OUTPUT_DIR"]
    with open(os.path.join(out, "model.bin"), "w") as f:
        f.write("a model\\n")
    with open(os.path.join(out, "metrics.json"), "w") as f:
        json.dump({"rmse": float(sys.argv[1])}, f)
    ''')


def test_model_alias_versions_and_promotions_are_exported(workspace, daemon):
    (workspace.root / "train.py").write_text(TRAIN)
    workspace.pipeline("trainer", f'''
        [params]
        rmse = 30.0
        [tasks.train]
        command = ["{sys.executable}", "{workspace.root / 'train.py'}", "{{rmse}}"]
        outputs = ["model.bin", "metrics.json"]
        model = {{ name = "house", path = "model.bin", metrics = "metrics.json" }}
        [models.house]
        metrics = ["rmse"]
        gates = ["rmse <= 50"]
        [models.house.deploy]
        dir = "{workspace.root / 'serving'}"
        ''')
    daemon.start()
    for rmse in (30.0, 80.0):  # the first passes its gate and becomes champion; the second is blocked
        run_id = daemon.call("trigger", {"pipeline": "trainer", "params": {"rmse": rmse}})["run_id"]
        assert daemon.wait_run(run_id) == "succeeded"
    def deployed() -> bool:
        doc = daemon.call("models.show", {"name": "house"})
        return doc["aliases"].get("champion") == 1 and bool(doc["deployments"]) and all(
            d["state"] not in ("pending", "running") for d in doc["deployments"])

    wait_events(daemon, deployed, "the champion's deployment")
    v = parse(daemon.call("metrics", {"format": "text"})["text"])
    assert value(v, "edgeorch_model_alias_version", model="house", alias="champion") == 1
    assert value(v, "edgeorch_model_latest_version", model="house") == 2
    assert value(v, "edgeorch_model_versions", model="house") == 2
    assert value(v, "edgeorch_model_registrations_total", model="house", gate_verdict="passed") == 1
    assert value(v, "edgeorch_model_registrations_total", model="house", gate_verdict="failed") == 1
    assert total(v, "edgeorch_model_deployments_total", model="house", alias="champion", state="succeeded") == 1
