"""The engine end to end with real processes: order, parallelism, retries, timeouts, cancel."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from edgeorch.engine.procinfo import process_start_time
from edgeorch.model import RunState



def _cap_logs(workspace, size: str) -> None:
    """``[engine] log_max_bytes = size`` in the workspace's config."""
    workspace.config_path.write_text(workspace.config_path.read_text().replace(
        "parallelism = 2", f'parallelism = 2\nlog_max_bytes = "{size}"'))

def _capped_attempt(workspace, harness, cap: str, name: str, task: str, command: str, state: RunState) -> dict:
    """Run pipeline ``name`` (one ``task`` running ``sh -c command``) with logs capped at ``cap``; it must end in
    ``state``. Its one attempt (``log_path``: its log)."""
    _cap_logs(workspace, cap)
    workspace.pipeline(name, f"[tasks.{task}]\ncommand = [\"sh\", \"-c\", {json.dumps(command)}]\n")
    run_id, ended = harness.run(name)
    assert ended == state
    (a,) = harness.store().attempts.of_run(run_id)
    return a


def _intervals(store, run_id):
    return {a["task"]: (a["started_at"], a["finished_at"]) for a in store.attempts.of_run(run_id)}


def test_diamond_runs_in_dependency_order(workspace, harness):
    workspace.pipeline("diamond", """
        [tasks.top]
        command = ["true"]
        [tasks.left]
        command = ["true"]
        needs = ["top"]
        [tasks.right]
        command = ["true"]
        needs = ["top"]
        [tasks.bottom]
        command = ["true"]
        needs = ["left", "right"]
    """)
    run_id, state = harness.run("diamond")
    assert state == RunState.SUCCEEDED
    iv = _intervals(harness.store(), run_id)
    assert iv["top"][1] <= iv["left"][0] and iv["top"][1] <= iv["right"][0]
    assert max(iv["left"][1], iv["right"][1]) <= iv["bottom"][0]


def test_wide_dag_runs_in_parallel_up_to_the_limit(workspace, harness):
    workspace.write_config(parallelism=3)
    tasks = "\n".join(f'[tasks.t{i}]\ncommand = ["sleep", "0.3"]\n' for i in range(9))
    workspace.pipeline("wide", tasks)
    run_id, state = harness.run("wide")
    assert state == RunState.SUCCEEDED
    iv = sorted(_intervals(harness.store(), run_id).values())
    # The most attempts alive at any start instant: overlap happened, the limit held.
    peak = max(sum(1 for s, f in iv if s <= t0 < f) for t0, _ in iv)
    assert 2 <= peak <= 3


def test_failed_task_marks_dependents_upstream_failed(workspace, harness):
    workspace.pipeline("chain", """
        [tasks.a]
        command = ["sh", "-c", "exit 3"]
        [tasks.b]
        command = ["true"]
        needs = ["a"]
        [tasks.c]
        command = ["true"]
        needs = ["b"]
        [tasks.other]
        command = ["true"]
    """)
    run_id, state = harness.run("chain")
    assert state == RunState.FAILED
    tasks = {t["name"]: t for t in harness.store().runs.tasks_of(run_id)}
    assert tasks["a"]["state"] == "failed" and "code 3" in tasks["a"]["reason"]
    assert tasks["b"]["state"] == tasks["c"]["state"] == "upstream_failed"
    assert tasks["other"]["state"] == "succeeded"


def test_a_failed_tasks_reason_quotes_the_last_line_of_its_log(workspace, harness):
    """What the person reading `edgeorch show` needs first: why, in the task's own words (its log's last
    line, terminal escapes taken out); also from a log cut at its cap, which keeps its end."""
    workspace.write_config(extra="")
    _cap_logs(workspace, "4K")
    script = workspace.root / "fails.py"
    script.write_text("import sys\nprint('loading')\n"
                      "print('\\x1b[31mValueError: column price\\x1b[0m is empty', file=sys.stderr)\nsys.exit(4)\n")
    workspace.pipeline("says", f"""
        [tasks.py]
        command = ["python3", "{script}"]
        [tasks.quiet]
        command = ["sh", "-c", "exit 5"]
        [tasks.loud]
        command = ["sh", "-c", 'head -c 8192 /dev/zero | tr "\\\\0" x; echo; echo the real cause; exit 6']
    """)
    run_id, state = harness.run("says")
    assert state == RunState.FAILED
    reasons = {t["name"]: t["reason"] for t in harness.store().runs.tasks_of(run_id)}
    assert reasons == {"py": "exited with code 4: ValueError: column price is empty",
                       "quiet": "exited with code 5", "loud": "exited with code 6: the real cause"}, reasons


def test_retry_waits_with_exponential_backoff(workspace, harness):
    workspace.pipeline("flaky", """
        [tasks.f]
        command = ["sh", "-c", "n=$(cat count 2>/dev/null || echo 0); echo $((n+1)) > count; [ $n -ge 2 ]"]
        workdir = "{run_dir}"
        retries = 3
        retry_delay = "0.2s"
        retry_backoff = 2.0
        retry_jitter = 0.0
    """)
    run_id, state = harness.run("flaky")
    assert state == RunState.SUCCEEDED
    attempts = harness.store().attempts.of_run(run_id, "f")
    assert [a["exit_code"] for a in attempts] == [1, 1, 0]
    gaps = [attempts[i + 1]["started_at"] - attempts[i]["finished_at"] for i in range(2)]
    assert gaps[0] >= 0.2 - 0.02 and gaps[1] >= 0.4 - 0.02
    assert gaps[1] > gaps[0]


def test_timeout_kills_the_whole_process_group(workspace, harness, tmp_path):
    pidfile = tmp_path / "grandchild.pid"
    workspace.pipeline("slow", f"""
        [tasks.hang]
        command = ["sh", "-c", "sleep 300 & echo $! > {pidfile}; wait"]
        timeout = "0.5s"
    """)
    run_id, state = harness.run("slow")
    assert state == RunState.FAILED
    (attempt,) = harness.store().attempts.of_run(run_id, "hang")
    assert attempt["state"] == "timed_out" and "timed out" in attempt["reason"]
    grandchild = int(pidfile.read_text())
    # Killed with its group: gone, or at most a zombie awaiting its reaper.
    start = process_start_time(grandchild)
    if start is not None:
        assert open(f"/proc/{grandchild}/stat").read().split(") ")[1][0] in "ZX"


def test_cancel_stops_running_tasks_and_records_it(workspace, harness, tmp_path, wait_for_file):
    marker = tmp_path / "started"
    workspace.pipeline("long", f"""
        [tasks.work]
        command = ["sh", "-c", "touch {marker}; exec sleep 300"]
        [tasks.after]
        command = ["true"]
        needs = ["work"]
    """)

    async def cancel_when_started(engine, run_id):
        await wait_for_file(marker)
        engine.cancel(run_id, actor="test", reason="cancelled by test")

    run_id, state = harness.run("long", during=cancel_when_started)
    assert state == RunState.CANCELLED
    store = harness.store()
    tasks = {t["name"]: t["state"] for t in store.runs.tasks_of(run_id)}
    assert tasks == {"work": "cancelled", "after": "cancelled"}
    (attempt,) = store.attempts.of_run(run_id, "work")
    assert attempt["signal"] == signal.SIGTERM
    assert any(e["kind"] == "cancel_requested" and e["actor"] == "test" for e in store.events.of_run(run_id))


def test_task_killed_by_a_signal_is_recorded_as_signalled(workspace, harness):
    workspace.pipeline("sig", """
        [tasks.s]
        command = ["sh", "-c", "kill -KILL $$"]
    """)
    run_id, state = harness.run("sig")
    assert state == RunState.FAILED
    (a,) = harness.store().attempts.of_run(run_id)
    assert a["state"] == "signalled" and a["signal"] == signal.SIGKILL and a["exit_code"] is None
    assert "SIGKILL" in a["reason"]


def test_missing_executable_fails_with_a_clear_log(workspace, harness):
    workspace.pipeline("nope", """
        [tasks.x]
        command = ["/no/such/program", "--flag"]
    """)
    run_id, state = harness.run("nope")
    assert state == RunState.FAILED
    (a,) = harness.store().attempts.of_run(run_id)
    assert a["exit_code"] == 127
    assert "cannot execute '/no/such/program'" in Path(a["log_path"]).read_text()


@pytest.mark.parametrize("command, astray", [('["true"]', False), ('["sh", "-c", "echo 1 > model.bin"]', True)],
                         ids=["not-written", "written-to-the-working-folder"])
def test_promised_output_missing_fails_the_task(workspace, harness, command, astray):
    workspace.pipeline("liar", f"""
        [tasks.x]
        command = {command}
        outputs = ["model.bin"]
    """)
    run_id, state = harness.run("liar")
    assert state == RunState.FAILED  # a file in the working folder is never taken: the output folder is the contract
    (t,) = harness.store().runs.tasks_of(run_id)
    assert t["reason"].startswith("promised output missing: model.bin")
    assert "$EDGEORCH_OUTPUT_DIR" in t["reason"]  # where it was expected, by the name a task uses
    # The usual mistake, named when it is the one made.
    if astray:
        assert "model.bin found in the task's working folder" in t["reason"], t["reason"]
    else:
        assert "working folder" not in t["reason"]


def test_an_output_that_is_a_folder_or_a_fifo_is_named_as_what_it_is_not_missing(workspace, harness):
    workspace.pipeline("odd", """
        [tasks.x]
        command = ["sh", "-c", "mkdir $EDGEORCH_OUTPUT_DIR/ckpt && mkfifo $EDGEORCH_OUTPUT_DIR/pipe.out"]
        outputs = ["ckpt", "pipe.out"]
    """)
    run_id, state = harness.run("odd")
    assert state == RunState.FAILED
    (t,) = harness.store().runs.tasks_of(run_id)
    assert t["reason"].startswith("promised output is not a regular file: ckpt is a folder, pipe.out is a FIFO")
    assert "missing" not in t["reason"], t["reason"]


def test_environment_params_and_upstream_outputs_reach_the_task(workspace, harness):
    workspace.pipeline("env", """
        [params]
        size = 7
        label = "x y"
        [tasks.produce]
        command = ["sh", "-c", "echo {size} > $EDGEORCH_OUTPUT_DIR/n.txt"]
        outputs = ["n.txt"]
        [tasks.consume]
        command = ["sh", "-c", "env | grep ^EDGEORCH_ | sort > $EDGEORCH_OUTPUT_DIR/env.txt; cat $EDGEORCH_UPSTREAM_PRODUCE >> $EDGEORCH_OUTPUT_DIR/env.txt"]
        needs = ["produce"]
        outputs = ["env.txt"]
        env = { GREETING = "hello {label}" }
    """)
    run_id, state = harness.run("env", {"size": "9"})
    assert state == RunState.SUCCEEDED
    store = harness.store()
    (art,) = store.outputs.latest_artifacts(run_id, "consume")
    text = Path(art["path"]).read_text()
    assert f"EDGEORCH_RUN_ID={run_id}\n" in text
    assert "EDGEORCH_TASK=consume\n" in text and "EDGEORCH_ATTEMPT=1\n" in text
    assert "EDGEORCH_PARAM_SIZE=9\n" in text and "EDGEORCH_PARAM_LABEL=x y\n" in text
    assert "EDGEORCH_PIPELINE=env\n" in text
    assert "EDGEORCH_CHECKPOINT_DIR=" in text and "EDGEORCH_OUTPUT_DIR=" in text
    assert text.rstrip().endswith("9")


def test_large_output_is_capped_with_a_marker(workspace, harness):
    workspace.write_config(extra="")
    log = Path(_capped_attempt(workspace, harness, "10M", "loud", "loud",
                               "head -c 104857600 /dev/zero | tr '\\0' 'x'; echo done-writing",
                               RunState.SUCCEEDED)["log_path"])
    size = log.stat().st_size
    assert 10 * 1024 * 1024 <= size < 10 * 1024 * 1024 + 400
    with open(log, "rb") as f:
        head = f.read(10 * 1024 * 1024 - 64 * 1024 + 200)
        assert b"log cap of 10485760 bytes reached; the output's last 65536 bytes are kept" in head
        f.seek(-(64 * 1024 + 100), os.SEEK_END)
        end = f.read()
    assert b"bytes of output dropped here; its last 65536 bytes follow]\n" in end
    assert end.endswith(b"x" * 1000 + b"done-writing\n")  # the output's end is what a crash says why in
    assert any(e.get("log_truncated") for e in harness.events if e.get("task") == "loud")


def test_a_capped_log_of_binary_output_keeps_its_whole_tail(workspace, harness):
    """The kept end starts at a line's start when one starts early in it: binary output (a newline anywhere, or
    none) kept 8 bytes of a 256-byte tail."""
    a = _capped_attempt(workspace, harness, "1K", "binary", "b",
                        "head -c 20000 /dev/zero | tr '\\0' 'x'; printf 'NL\\n'; head -c 250 /dev/zero | tr '\\0' 'y'; "
                        "echo; echo BIN-END", RunState.SUCCEEDED)
    text = Path(a["log_path"]).read_text()
    assert "its last 256 bytes follow]" in text and text.endswith("y" * 200 + "\nBIN-END\n"), text[-400:]


def test_a_capped_log_keeps_the_error_a_task_died_with(workspace, harness):
    """The cap kept the start of a log and dropped the rest: a training job printing 2 MB and then dying with
    its error showed only 'exited with code 1 (log truncated at cap)'; the error was nowhere."""
    a = _capped_attempt(workspace, harness, "1M", "dies", "train",
                        "seq 1 400000; echo 'real error: disk full' >&2; exit 1", RunState.FAILED)
    text = Path(a["log_path"]).read_text()
    assert text.startswith("1\n2\n3\n") and text.endswith("400000\nreal error: disk full\n")
    assert "\n[edgeorch: " in text and len(text.encode()) < 1024 * 1024 + 400
    dropped = text[text.index("bytes of output dropped here") - 12:]
    kept_from = dropped.split("follow]\n", 1)[1]
    assert kept_from.split("\n", 1)[0].isdigit()  # the kept end starts at a whole line
    assert a["reason"] == "exited with code 1: real error: disk full"


def test_call_task_gets_params_as_keyword_arguments(workspace, harness):
    (workspace.pipelines / "steps_mod.py").write_text(
        "import os\n"
        "def step(n, name='x'):\n"
        "    open(os.path.join(os.environ['EDGEORCH_OUTPUT_DIR'], 'o.txt'), 'w').write(f'{name}:{n*2}')\n"
        "    return {'doubled': n * 2}\n"
    )
    workspace.pipeline("calls", """
        [params]
        n = 21
        unused = "ignored"
        [tasks.step]
        call = "steps_mod:step"
        outputs = ["o.txt"]
    """)
    run_id, state = harness.run("calls")
    assert state == RunState.SUCCEEDED
    (art,) = harness.store().outputs.latest_artifacts(run_id, "step")
    assert Path(art["path"]).read_text() == "x:42"


def test_a_call_tasks_numpy_return_value_is_recorded_whole_and_an_object_never_as_its_str(workspace, harness):
    """A numpy NaN among a function's metrics made the whole value "not JSON-serialisable": nothing was recorded. An
    object was written as "<object object at 0x...>", read back as a value."""
    (workspace.pipelines / "metrics_mod.py").write_text(
        "import numpy as np\n"
        "def metrics():\n"
        "    return {'rmse': np.float32(0.25), 'n': np.int64(7), 'w': np.arange(3), 'loss': np.float32('nan'),\n"
        "            'pair': (1, float('inf'))}\n"
        "def model():\n"
        "    return {'ok': 1, 'model': object()}\n"
    )
    workspace.pipeline("metrics", """
        [tasks.m]
        call = "metrics_mod:metrics"
        [tasks.o]
        call = "metrics_mod:model"
    """)
    run_id, state = harness.run("metrics")
    assert state == RunState.SUCCEEDED  # an unrecordable value does not fail the attempt (docs/pipelines.md)
    (m,) = harness.store().attempts.of_run(run_id, "m")
    doc = json.loads((Path(m["attempt_dir"]) / "result.json").read_text())
    assert doc == {"rmse": 0.25, "n": 7, "w": [0, 1, 2], "loss": None, "pair": [1, None]}
    (o,) = harness.store().attempts.of_run(run_id, "o")
    assert not (Path(o["attempt_dir"]) / "result.json").exists()
    said = Path(o["log_path"]).read_text()
    assert "the return value is not JSON-serialisable (['model']: object); not recorded" in said, said


def test_a_folder_named_edgeorch_beside_the_pipeline_cannot_replace_the_call_runner(workspace, harness):
    """A hostile or unlucky pipeline folder holding `edgeorch/` must not run instead of edgeorch; the task still
    sees the path it always did: the pipeline folder first on sys.path and PYTHONPATH."""
    fake = workspace.pipelines / "edgeorch"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise SystemExit('the pipeline folder shadowed edgeorch')\n")
    (workspace.pipelines / "where_mod.py").write_text(
        "import json, os, sys\n"
        "import edgeorch\n"
        "def where():\n"
        "    doc = {'pythonpath': os.environ['PYTHONPATH'], 'path': sys.path[:3], 'edgeorch': edgeorch.__file__,\n"
        "           'leaked': 'EDGEORCH_TASK_PYTHONPATH' in os.environ}\n"
        "    open(os.path.join(os.environ['EDGEORCH_OUTPUT_DIR'], 'where.json'), 'w').write(json.dumps(doc))\n"
    )
    workspace.pipeline("where", """
        [tasks.where]
        call = "where_mod:where"
        outputs = ["where.json"]
    """)
    run_id, state = harness.run("where")
    assert state == RunState.SUCCEEDED
    (art,) = harness.store().outputs.latest_artifacts(run_id, "where")
    doc = json.loads(Path(art["path"]).read_text())
    pipelines = str(workspace.pipelines)
    assert doc["pythonpath"].split(os.pathsep)[0] == pipelines
    assert pipelines in doc["path"][:2] and not doc["leaked"]
    assert not doc["edgeorch"].startswith(pipelines + os.sep)  # the real package, imported first


def test_output_names_take_builtin_placeholders(workspace, harness):
    workspace.pipeline("named", """
        [tasks.x]
        command = ["sh", "-c", "echo hi > $EDGEORCH_OUTPUT_DIR/out-{run_id}-{attempt}.txt"]
        outputs = ["out-{run_id}-{attempt}.txt"]
    """)
    run_id, state = harness.run("named")
    assert state == RunState.SUCCEEDED
    (art,) = harness.store().outputs.latest_artifacts(run_id, "x")
    assert art["name"] == f"out-{run_id}-1.txt"


def test_an_output_name_that_leaves_the_output_folder_fails_the_task(workspace, harness):
    workspace.pipeline("escape", """
        [params]
        name = "ok.txt"
        [tasks.x]
        command = ["sh", "-c", "echo hi > $EDGEORCH_OUTPUT_DIR/ok.txt"]
        outputs = ["{name}"]
    """)
    run_id, state = harness.run("escape", {"name": "../../../../etc/hostname"})
    assert state == RunState.FAILED
    (t,) = harness.store().runs.tasks_of(run_id)
    assert "output path leaves the task's output folder" in t["reason"]


def test_closing_with_stop_tasks_ends_running_attempts_and_records_them(workspace, tmp_path, wait_for_file):
    import asyncio

    from edgeorch.engine.engine import Engine
    from edgeorch.pipelines import resolve_params, validate_path
    from edgeorch.store import Store

    marker = tmp_path / "started"
    workspace.pipeline("long", f"""
        [tasks.work]
        command = ["sh", "-c", "touch {marker}; exec sleep 300"]
    """)
    cfg = workspace.config()
    pipeline = validate_path(cfg.pipelines_dir).pipelines["long"]

    async def main() -> None:
        store = Store(cfg.state_file)
        engine = Engine(cfg, store)
        await engine.start()
        engine.submit(pipeline, resolve_params(pipeline, {}))
        await wait_for_file(marker)
        await asyncio.wait_for(engine.close(stop_tasks=True), 30)  # returns once the attempt has ended
        assert not engine.live
        store.close()

    asyncio.run(main())
    store = Store(cfg.state_file)
    (attempt,) = store.attempts.of_run(1)
    assert attempt["signal"] == signal.SIGTERM and attempt["finished_at"] is not None
    # Said as what happened: it read "cancelled: stopped (...)", and the run FAILED with no reason at all.
    (task,) = store.runs.tasks_of(1)
    assert task["reason"].startswith("stopped when edgeorch stopped ([engine] stop_tasks_on_shutdown = true): "
                                     "stopped (killed by signal SIGTERM)"), task["reason"]
    run = store.runs.get(1)
    assert (run["state"], run["reason"]) == ("failed", "stopped: work")


def test_a_nul_in_a_tasks_command_or_environment_fails_the_attempt_once_never_lost(workspace, harness, monkeypatch):
    """A NUL character cannot be passed to a program: the supervisor's `ValueError('embedded null byte')` was taken
    for a launcher failure and relaunched ten times ("lost"). Params and pipeline files refuse it now; should one
    reach a supervisor anyway, the attempt fails once (exit 127), saying why, charged as a program that cannot run."""
    workspace.pipeline("nul", """
        [params]
        x = { type = "str", default = "" }
        [tasks.a]
        command = ["echo", "{x}"]
    """)
    # Past the params' own check (the harness's module, whatever name pytest imported it under).
    monkeypatch.setitem(type(harness).run.__globals__, "resolve_params", lambda pipeline, given: dict(given))
    run_id, state = harness.run("nul", {"x": "a\0b"})
    assert state == RunState.FAILED
    (a,) = harness.store().attempts.of_run(run_id)
    assert a["exit_code"] == 127 and "a NUL character in its command or environment" in a["reason"], a


def test_a_nul_in_a_param_or_a_pipeline_file_is_refused_naming_it(tmp_path):
    from edgeorch.errors import UsageError
    from edgeorch.pipelines import resolve_params, validate_path

    (tmp_path / "p.toml").write_text('[params]\nx = { type = "str", default = "" }\n'
                                     '[tasks.a]\ncommand = ["echo", "{x}"]\nenv = { V = "a\\u0000b" }\n'
                                     '[tasks.b]\nshell = true\ncommand = "echo a\\u0000b"\n')
    report = validate_path(tmp_path)
    said = "\n".join(e.render() for e in report.errors)
    assert "tasks.a.env.V: contains a NUL character" in said and "tasks.b.command: contains a NUL character" in said
    (tmp_path / "p.toml").write_text('[params]\nx = { type = "str", default = "" }\n[tasks.a]\ncommand = ["echo", "{x}"]\n')
    pipeline = validate_path(tmp_path).pipelines["p"]
    with pytest.raises(UsageError, match="parameter x contains a NUL character"):
        resolve_params(pipeline, {"x": "a\0b"})


def test_a_python_tasks_lines_reach_its_log_as_printed_and_before_its_traceback(workspace, harness, monkeypatch):
    """Under systemd (no PYTHONUNBUFFERED in the daemon's environment) a Python task's stdout was block-buffered:
    a call task's traceback landed above the lines it printed first, so the failure's reason quoted its last print;
    a task stopped by its timeout (or kill -9) left an empty log."""
    monkeypatch.delenv("PYTHONUNBUFFERED", raising=False)
    (workspace.pipelines / "noisy_mod.py").write_text(
        "def fit(epochs=3):\n"
        "    for e in range(epochs):\n"
        "        print('epoch', e, 'loss', 0.5 / (e + 1))\n"
        "    raise ValueError('labels have NaN in column y')\n"
    )
    workspace.pipeline("noisy", f"""
        [tasks.fit]
        call = "noisy_mod:fit"
        [tasks.fit_buffered]
        call = "noisy_mod:fit"
        env = {{ PYTHONUNBUFFERED = "" }}
        [tasks.slow]
        command = ["{sys.executable}", "-c", "import time; print('epoch 0', flush=False); time.sleep(60)"]
        timeout = "2s"
    """)
    run_id, state = harness.run("noisy", timeout=60)
    assert state == RunState.FAILED
    store = harness.store()
    for task in ("fit", "fit_buffered"):  # the call runner line-buffers its stdout whatever the variable says
        (a,) = store.attempts.of_run(run_id, task)
        log = Path(a["log_path"]).read_text()
        assert log.index("epoch 2 loss") < log.index("Traceback"), log
        assert "ValueError: labels have NaN in column y" in a["reason"], a["reason"]
    (slow,) = store.attempts.of_run(run_id, "slow")
    assert "epoch 0" in Path(slow["log_path"]).read_text()  # printed before its timeout stopped it
