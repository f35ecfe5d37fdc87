"""Rules with a real daemon: a failure-rate rule triggers a pipeline once per episode, hysteresis, cooldown,
dry runs, silences, freshness, and kill -9 between the decision and the run's creation (exactly one run)."""

from __future__ import annotations

import os
import re
import sqlite3
import time

import pytest

FLAKY = """
name = "flaky"
[params]
fail = false
[tasks.work]
command = ["sh", "-c", "test {fail} = false"]
"""

RETRAIN = """
name = "retrain"
[params]
why = { type = "str", default = "" }
[tasks.fit]
command = ["true"]
"""


def rule(extra: str = "", do: str = '[[on.do]]\ntrigger = "retrain"\nparams = { why = "{rule}:{value}:{run_id}" }\n',
         *, base: str = FLAKY, threshold: float = 0.5) -> str:
    return base + f"""
[[on]]
name = "too_many_failures"
signal = "failure_rate"
threshold = {threshold}
{extra}
""" + do


def until(fn, timeout: float = 30.0, what: str = "condition"):
    """Wait for ``fn()`` to be truthy (the daemon acts on its own loop), failing after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def run(daemon, pipeline: str, **params) -> int:
    rid = daemon.call("trigger", {"pipeline": pipeline, "params": params})["run_id"]
    daemon.wait_run(rid)
    return rid


def rule_runs(ws) -> list[tuple]:
    db = sqlite3.connect(ws.state / "edgeorch.db")
    try:
        return db.execute("SELECT id, params, actor FROM runs WHERE trigger = 'rule' ORDER BY id").fetchall()
    finally:
        db.close()


def monitor(daemon, name: str = "too_many_failures") -> dict:
    return next(r for r in daemon.call("monitors.list")["rules"] if r["name"] == name)


def test_monitors_are_listed_from_the_files_and_the_state_file_while_the_daemon_is_down(workspace, daemon) -> None:
    """The same rules, states, values and firings as the daemon said, read without it (a silence needs it)."""
    import json

    cli = lambda *a: workspace.invoke("monitors", *a)  # noqa: E731
    empty = cli()
    assert empty.returncode == 0 and empty.stdout.startswith("no monitoring rules")
    workspace.pipeline("flaky", rule())
    workspace.pipeline("retrain", RETRAIN)
    before = json.loads(cli("--json").stdout)  # no state file yet: every rule ok, never evaluated
    assert [(r["name"], r["state"], r["last_value"]) for r in before["rules"]] == [("too_many_failures", "ok", None)]
    daemon.start()
    run(daemon, "flaky", fail=True)
    until(lambda: rule_runs(workspace), what="the retrain run")
    online = daemon.call("monitors.list")
    daemon.stop()
    offline = cli("--json")
    assert offline.returncode == 0, offline.stderr
    doc = json.loads(offline.stdout)
    keep = ("name", "state", "last_value", "episode", "last_firing", "responses")
    assert [{k: r[k] for k in keep} for r in doc["rules"]] == [{k: r[k] for k in keep} for r in online["rules"]]
    assert doc["rules"][0]["state"] == "firing"
    assert "too_many_failures" in cli().stdout
    down = cli("silence", "too_many_failures", "--until", "1h", "--reason", "maintenance")
    assert down.returncode == 69 and "Traceback" not in down.stderr


def test_a_firing_rule_triggers_once_per_episode_and_why_explains_it(workspace, daemon) -> None:
    workspace.pipeline("flaky", rule())
    workspace.pipeline("retrain", RETRAIN)
    daemon.start()
    assert monitor(daemon)["state"] == "ok"
    src = run(daemon, "flaky", fail=True)
    (rid, params, actor), = until(lambda: rule_runs(workspace), what="the retrain run")
    assert actor == "rule:too_many_failures" and f'"too_many_failures:1.0:{src}"' in params
    second = run(daemon, "flaky", fail=True)  # still firing: the episode was answered, nothing more starts
    m = monitor(daemon)
    assert m["state"] == "firing" and m["last_value"] == 1.0 and m["last_firing"]["run_id"] == rid
    assert len(rule_runs(workspace)) == 1
    why = daemon.call("why", {"run": rid})
    assert why["started_by"]["kind"] == "rule" and why["started_by"]["rule"] == "too_many_failures"
    assert why["started_by"]["value"] == 1.0 and why["started_by"]["source_run"] == src
    assert daemon.call("why", {"run": src})["started_by"]["kind"] == "person"
    # What the rules decided on each run's outcome, where `why` is asked (it was in the audit log alone).
    (fired,) = daemon.call("why", {"run": src})["rules"]
    assert (fired["rule"], fired["action"], fired["run_id"]) == ("too_many_failures", "fire", rid)
    held = until(lambda: daemon.call("why", {"run": second})["rules"], what="the rule's decision on the second run")
    assert [(r["rule"], r["action"]) for r in held] == [("too_many_failures", "still_firing")]
    assert "episode 1 was answered" in held[0]["message"]
    shown = workspace.invoke("why", str(second)).stdout
    assert "rule too_many_failures: still_firing: still firing: episode 1 was answered" in shown
    audit = daemon.call("audit.list", {"action": "rule_fired"})
    assert any(r["actor"] == "rule:too_many_failures" for r in audit["records"])


def test_hysteresis_needs_consecutive_evaluations(workspace, daemon) -> None:
    workspace.pipeline("flaky", rule("for_evaluations = 3"))
    workspace.pipeline("retrain", RETRAIN)
    daemon.start()
    run(daemon, "flaky", fail=True)
    run(daemon, "flaky", fail=True)
    assert monitor(daemon)["state"] == "pending" and rule_runs(workspace) == []
    run(daemon, "flaky", fail=True)
    until(lambda: rule_runs(workspace), what="the firing after 3 evaluations")


def test_cooldown_holds_a_second_episode_back_and_says_why(workspace, daemon) -> None:
    workspace.pipeline("flaky", rule('cooldown = "1h"'))
    workspace.pipeline("retrain", RETRAIN)
    daemon.start()
    run(daemon, "flaky", fail=True)
    until(lambda: rule_runs(workspace))
    for _ in range(2):  # the failure rate drops to 1/3: resolved
        run(daemon, "flaky")
    assert monitor(daemon)["state"] == "ok"
    run(daemon, "flaky", fail=True)
    held_run = run(daemon, "flaky", fail=True)  # 3/5 > 0.5: holds again, within the cooldown
    m = monitor(daemon)
    assert m["state"] == "cooling" and len(rule_runs(workspace)) == 1
    # Until when, where the README says: the listing (it was only in the audit log).
    assert m["cooldown_until"] == m["last_fired_at"] + 3600
    from edgeorch.textui import format_timestamp

    assert f"cooling (cooldown until {format_timestamp(m['cooldown_until'])})" in workspace.invoke("monitors").stdout
    db = sqlite3.connect(workspace.state / "edgeorch.db")
    held = db.execute("SELECT message FROM events WHERE kind = 'rule_held'").fetchall()
    db.close()
    assert held and "cooldown" in held[-1][0]
    # `why` of the held run says the hold once (its firing row of outcome "held" is the same decision)
    rules = until(lambda: daemon.call("why", {"run": held_run})["rules"], what="the hold on the held run")
    assert [r["action"] for r in rules] == ["held"] and all("run_id" in r for r in rules), rules


def test_dry_run_records_what_would_have_happened(workspace, daemon) -> None:
    workspace.pipeline("flaky", rule("dry_run = true"))
    workspace.pipeline("retrain", RETRAIN)
    daemon.start()
    run(daemon, "flaky", fail=True)
    m = until(lambda: (lambda r: r if r["last_firing"] else None)(monitor(daemon)))
    assert m["state"] == "firing" and m["last_firing"]["dry_run"] is True
    assert m["last_firing"]["responses"][0]["dry_run"] is True and m["last_firing"]["run_id"] is None
    assert rule_runs(workspace) == []
    # dry_run switched off while it still fires: the episode decided in a dry run is said as such, not "answered",
    # in `why` and in the table (which said "fire <time>" with no mark).
    workspace.pipeline("flaky", rule())
    daemon.call("reload")
    rid = run(daemon, "flaky", fail=True)
    said = workspace.invoke("why", str(rid)).stdout
    assert "was decided in a dry run (nothing was done)" in said and "was answered" not in said, said
    table = workspace.invoke("monitors").stdout
    assert "(a dry run: nothing done)" in table, table
    assert rule_runs(workspace) == []


def test_a_silence_holds_back_until_lifted_then_the_rule_answers(workspace, daemon) -> None:
    workspace.pipeline("flaky", rule())
    workspace.pipeline("retrain", RETRAIN)
    daemon.start()
    daemon.call("monitors.silence", {"rule": "too_many_failures", "until": time.time() + 3600, "reason": "maintenance"})
    run(daemon, "flaky", fail=True)
    m = monitor(daemon)
    assert m["state"] == "silenced" and m["silence_reason"] == "maintenance" and rule_runs(workspace) == []
    # Its event (and audit record) say the end as a date, as the CLI does (they said Unix seconds).
    said = _event_message(workspace, "rule_silenced")
    assert re.search(r"silenced until \d{4}-\d\d-\d\d \d\d:\d\d:\d\d \S+: maintenance$", said), said
    daemon.call("monitors.silence", {"rule": "too_many_failures", "until": None})
    run(daemon, "flaky", fail=True)
    until(lambda: rule_runs(workspace), what="the firing after the silence")


def test_silence_refuses_unknown_rules_and_past_times(workspace, daemon) -> None:
    from edgeorch.errors import EdgeorchError

    workspace.pipeline("flaky", rule())
    workspace.pipeline("retrain", RETRAIN)
    daemon.start()
    with pytest.raises(EdgeorchError, match="no such rule"):
        daemon.call("monitors.silence", {"rule": "nope", "until": time.time() + 60, "reason": "x"})
    with pytest.raises(EdgeorchError, match="not in the future"):
        daemon.call("monitors.silence", {"rule": "too_many_failures", "until": 1.0, "reason": "x"})


def test_freshness_fires_when_nothing_succeeds_for_max_age(workspace, daemon, tmp_path) -> None:
    marker = tmp_path / "paged.json"
    workspace.pipeline("flaky", FLAKY + f"""
[[on]]
name = "stale"
signal = "freshness"
source = "success"
max_age = "1s"
check_every = "200ms"
[[on.do]]
notify = ["sh", "-c", "cat > {marker}"]
""")
    daemon.start()
    until(lambda: marker.exists() and marker.stat().st_size > 0, what="the notify command")
    import json

    doc = json.loads(marker.read_text())
    assert doc["rule"] == "stale" and doc["value"] > 1.0
    m = until(lambda: (lambda r: r if r["last_firing"] and r["last_firing"]["state"] == "done" else None)(
        monitor(daemon, "stale")))
    assert m["last_firing"]["responses"][0]["exit_code"] == 0


@pytest.mark.parametrize("point", ["before_commit", "after_commit"])
def test_kill9_between_the_decision_and_the_run_gives_exactly_one_run(workspace, daemon, monkeypatch, point) -> None:
    workspace.pipeline("flaky", rule())
    workspace.pipeline("retrain", RETRAIN)
    monkeypatch.setenv("EDGEORCH_FAULT_RULE_FIRE", point)
    daemon.start()
    daemon.call("trigger", {"pipeline": "flaky", "params": {"fail": True}})
    assert daemon.proc.wait(timeout=60) == -9  # killed itself at the fault point
    assert len(rule_runs(workspace)) == (0 if point == "before_commit" else 1)
    monkeypatch.delenv("EDGEORCH_FAULT_RULE_FIRE")
    daemon.start()
    until(lambda: monitor(daemon)["state"] == "firing", what="the rule firing after the restart")
    assert len(rule_runs(workspace)) == 1


def test_cli_monitors_silence_and_why(workspace, daemon) -> None:
    import json
    import subprocess

    workspace.pipeline("flaky", rule())
    workspace.pipeline("retrain", RETRAIN)
    daemon.start()

    def cli(*argv: str) -> subprocess.CompletedProcess:
        return workspace.invoke(*argv)  # in this process: output and exit codes are tested

    src = run(daemon, "flaky", fail=True)
    (rid, _p, _a), = until(lambda: rule_runs(workspace))
    out = cli("monitors")
    assert out.returncode == 0 and "too_many_failures" in out.stdout and "firing" in out.stdout
    doc = json.loads(cli("monitors", "--json").stdout)
    assert doc["rules"][0]["state"] == "firing"
    why = cli("why", str(rid))
    assert why.returncode == 0 and "started by rule too_many_failures" in why.stdout and f"from run {src}" in why.stdout
    assert json.loads(cli("why", str(rid), "--json").stdout)["started_by"]["kind"] == "rule"
    ok = cli("monitors", "silence", "too_many_failures", "--until", "2h", "--reason", "maintenance")
    assert ok.returncode == 0 and "silenced until" in ok.stdout
    assert "silenced (maintenance)" in cli("monitors").stdout
    bad = cli("monitors", "silence", "too_many_failures", "--until", "someday", "--reason", "x")
    assert bad.returncode == 2 and "--until" in bad.stderr and "someday" in bad.stderr and "Traceback" not in bad.stderr
    assert cli("monitors", "silence", "too_many_failures").returncode == 2
    far = cli("monitors", "silence", "too_many_failures", "--until", "9999-12-31T23:59", "--reason", "x")
    assert far.returncode == 2 and "longer than 100 years ahead" in far.stderr  # a duration's bound, for a date too
    nope = cli("monitors", "silence", "nope", "--until", "1h", "--reason", "x")
    assert nope.returncode != 0 and "no such rule" in nope.stderr
    lifted = cli("monitors", "unsilence", "too_many_failures")
    assert lifted.returncode == 0 and "too_many_failures: silence lifted" in lifted.stdout
    again = cli("monitors", "unsilence", "too_many_failures")  # found by a tester: it said "silence lifted" again
    assert again.returncode == 0 and "was not silenced: nothing to lift" in again.stdout
    # A reason's control characters are shown escaped in the confirmation (they cleared the tester's screen).
    odd = cli("monitors", "silence", "too_many_failures", "--until", "1h", "--reason", "\x1b[2Jgone\nnext")
    assert odd.returncode == 0 and "\x1b" not in odd.stdout and "\\x1b[2Jgone\\nnext" in odd.stdout, odd.stdout
    assert cli("why", "999").returncode != 0


GATED_FLAKY = """
name = "flaky"
[params]
fail = false
gate = ""
[tasks.work]
command = ["sh", "-c", "while [ -n {gate} ] && [ ! -f {gate} ]; do sleep 0.02; done; test {fail} = false"]
"""


def test_a_run_that_ends_after_a_later_one_is_still_evaluated(workspace, daemon) -> None:
    """Four drops run side by side and the drifted one ends last: it must still be read. Here the failed run
    (the first) ends after a later successful one; the rule fires for it (it used to be skipped: the later
    run had moved the cursor past it)."""
    workspace.pipeline("flaky", rule(base=GATED_FLAKY, threshold=0.4))
    workspace.pipeline("retrain", RETRAIN)
    daemon.start()
    gate = workspace.root / "go"
    first = daemon.call("trigger", {"pipeline": "flaky", "params": {"fail": True, "gate": str(gate)}})["run_id"]
    second = run(daemon, "flaky")  # ends while the first still runs
    assert daemon.call("runs.show", {"run_id": first})["state"] == "running"
    assert monitor(daemon)["last_value"] is None  # the second waits for the first: not read yet
    gate.touch()
    daemon.wait_run(first)
    (fired,) = until(lambda: rule_runs(workspace), what="the retrain run")
    assert f'"why": "too_many_failures:0.5:{first}"' in fired[1], fired  # fired on the first run's end
    until(lambda: cursor(workspace) == second, what="the second run read too, after the first")


def cursor(ws, rule_name: str = "too_many_failures") -> int:
    db = sqlite3.connect(ws.state / "edgeorch.db")
    try:
        return db.execute("SELECT cursor FROM rule_state WHERE rule = ?", (rule_name,)).fetchone()[0]
    finally:
        db.close()


def test_a_rules_decisions_are_on_the_events_stream(workspace, daemon) -> None:
    """`edgeorch events` showed runs, tasks and models but no rule: `rule_fired` and `rule_still_firing` were rows
    of the state file only, and `--kind rule` was refused."""
    workspace.pipeline("flaky", rule())
    workspace.pipeline("retrain", RETRAIN)
    daemon.start()
    seen: list[dict] = []
    with daemon.client(timeout=60) as c:
        stream = c.stream("events", {"kinds": ["rule"]}, timeout=60)
        assert next(stream)["kind"] == "subscribed"
        run(daemon, "flaky", fail=True)
        for item in stream:
            seen.append(item)
            if item.get("action") == "fire":
                break
        run(daemon, "flaky", fail=True)  # answered already: still firing, nothing more starts
        for item in stream:
            seen.append(item)
            if item.get("action") == "still_firing":
                break
    assert {i["kind"] for i in seen} == {"rule"}
    fired = next(i for i in seen if i["action"] == "fire")
    assert fired["rule"] == "too_many_failures" and fired["value"] == 1.0 and "trigger retrain" in fired["message"]
    still = next(i for i in seen if i["action"] == "still_firing")
    assert still["pipeline"] == "flaky" and "still_firing" in still["message"]


def test_why_of_a_live_run_says_what_each_task_that_has_not_started_waits_for(workspace, daemon) -> None:
    """`why RUN` listed only the tasks that had attempts: of a task still waiting it said nothing."""
    workspace.write_config(parallelism=1)
    workspace.pipeline("three", """
        [tasks.a]
        command = ["sh", "-c", "touch {pipeline_dir}/started; while [ ! -f {pipeline_dir}/go ]; do sleep 0.05; done"]
        [tasks.b]
        command = ["true"]
        [tasks.c]
        command = ["true"]
        needs = ["a"]
    """)
    daemon.start()
    run_id = daemon.call("trigger", {"pipeline": "three"})["run_id"]
    try:
        workspace.wait_file(workspace.pipelines / "started")
        doc = daemon.call("why", {"run": run_id})
        waits = {t["task"]: t.get("not_started") for t in doc["tasks"]}
        assert "engine.parallelism = 1" in (waits["b"] or ""), doc["tasks"]
        assert waits["c"] == "waits for a" and waits["a"] is None
        shown = workspace.invoke("why", str(run_id))
        assert "task c (pending): waits for a" in shown.stdout, shown.stdout
    finally:
        (workspace.pipelines / "go").touch()
    assert daemon.wait_run(run_id) == "succeeded"


def test_a_notify_left_running_by_a_killed_daemon_is_stopped_before_it_is_redone(workspace, daemon, tmp_path) -> None:
    """A notify command running when the daemon was killed ran on beside the copy the next daemon started to redo
    the pending response: two pages at once (one more each kill). The next daemon stops it first."""
    pids = tmp_path / "pids"
    gate = tmp_path / "gate"
    workspace.pipeline("flaky", rule(do=f'[[on.do]]\nnotify = ["sh", "-c", "echo $$ >> {pids}; while [ ! -e {gate} ]; '
                                        'do sleep 0.05; done"]\ntimeout = "60s"\n'))
    daemon.start()
    try:
        run(daemon, "flaky", fail=True)
        until(lambda: pids.exists() and pids.read_text().strip(), what="the notify command")
        first = int(pids.read_text().split()[0])
        daemon.kill9()
        assert os.path.exists(f"/proc/{first}")  # nothing could stop it
        daemon.start()
        until(lambda: len(pids.read_text().split()) == 2, what="the redone notify")
        assert not _running(first)  # stopped before the redo
        assert "process(es) of its notify command left running when edgeorch stopped (pids " in daemon.output()
    finally:
        gate.touch()


def _running(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie awaiting its reaper does not)."""
    from edgeorch.engine.procinfo import process_state

    return process_state(pid) not in (None, "Z", "X")


def test_why_says_a_task_between_attempts_holds_nothing_and_when_it_goes_on(workspace, daemon) -> None:
    """During a retry's delay `why` said "0.01s for its turn (attempt 1: leased cores 0-1)", read as the failed
    attempt still holding its lease; `show` and `status` said retry_wait. It says the wait and the next start."""
    workspace.pipeline("flaky", """
        [tasks.f]
        command = ["sh", "-c", "exit 3"]
        retries = 1
        retry_delay = "60s"
    """)
    daemon.start()
    run_id = daemon.call("trigger", {"pipeline": "flaky"})["run_id"]
    deadline = time.monotonic() + 30
    while daemon.call("runs.show", {"run_id": run_id})["tasks"][0]["state"] != "retry_wait":
        assert time.monotonic() < deadline, "the task never waited to retry"
        time.sleep(0.02)
    doc = daemon.call("why", {"run": run_id})
    (f,) = doc["tasks"]
    assert f["state"] == "retry_wait" and f["next_attempt_at"] and f["last_attempt"]["exit_code"] == 3, f
    shown = workspace.invoke("why", str(run_id)).stdout
    assert "waiting to retry: attempt 1 exited with code 3; attempt 2 starts at " in shown, shown
    assert "(no lease held meanwhile)" in shown
    daemon.call("cancel", {"run_id": run_id})
    assert daemon.wait_run(run_id) == "cancelled"


def test_a_clean_stop_during_a_notify_records_it_and_the_next_start_does_not_page_again(workspace, daemon,
                                                                                        tmp_path) -> None:
    """A tester's find: SIGTERM while a notify ran: the daemon waited for the command, but the task recording its
    end was cancelled, the firing stayed pending, and the next start ran the notify again (every `systemctl
    restart` paged twice)."""
    log = tmp_path / "notify.log"
    go = tmp_path / "go"
    notify = ('[[on.do]]\nnotify = ["sh", "-c", "echo started >> %s; while [ ! -e %s ]; do sleep 0.05; done; '
              'echo finished >> %s"]\ntimeout = "60s"\n' % (log, go, log))
    workspace.pipeline("flaky", rule(do=notify))
    daemon.start()
    run(daemon, "flaky", fail=True)
    until(lambda: log.exists() and "started" in log.read_text(), what="the notify to start")
    daemon.proc.terminate()  # a clean stop, while the notify runs
    go.touch()  # it ends during the stop, as a pager's request does
    assert daemon.proc.wait(timeout=60) == 0
    db = sqlite3.connect(workspace.state / "edgeorch.db")
    try:
        (state,), = db.execute("SELECT state FROM rule_firings WHERE outcome = 'fire'").fetchall()
    finally:
        db.close()
    assert state == "done"
    daemon.start()
    assert log.read_text().splitlines() == ["started", "finished"]
    assert monitor(daemon)["last_firing"]["state"] == "done"


def test_dry_run_firings_do_not_count_against_the_live_rule(workspace, daemon) -> None:
    """A tester's find: 17 dry-run firings, then `dry_run = false` with `max_per_day = 3`: the live rule was held for
    a day ("max_per_day: 17 response(s) in the last day"), though nothing had been done."""
    workspace.pipeline("flaky", rule("dry_run = true\nmax_per_day = 1"))
    workspace.pipeline("retrain", RETRAIN)
    daemon.start()
    for _ in range(2):  # two episodes in a dry run (the second is held by the dry run's own max_per_day)
        run(daemon, "flaky", fail=True)
        run(daemon, "flaky", fail=False)
    workspace.pipeline("flaky", rule("max_per_day = 1"))
    daemon.call("reload")
    run(daemon, "flaky", fail=True)
    (rid, _params, actor), = until(lambda: rule_runs(workspace), what="the live rule's retrain run")
    assert actor == "rule:too_many_failures"


def test_a_rule_back_while_the_daemon_runs_does_not_replay_the_runs_of_its_absence(workspace, daemon) -> None:
    """A tester's find: a rule's file removed for twenty minutes and put back evaluated every run since it went,
    in one burst (ten notify commands at once, each about a batch long gone)."""
    workspace.pipeline("flaky", rule())
    workspace.pipeline("retrain", RETRAIN)
    daemon.start()
    workspace.pipeline("flaky", FLAKY)  # the rule goes
    daemon.call("reload")
    for _ in range(3):
        run(daemon, "flaky", fail=True)
    workspace.pipeline("flaky", rule())  # and comes back
    daemon.call("reload")
    assert monitor(daemon)["state"] == "ok" and rule_runs(workspace) == []  # as a new rule: from the newest run on
    src = run(daemon, "flaky", fail=True)
    (_rid, params, _actor), = until(lambda: rule_runs(workspace), what="the retrain run of a run after its return")
    assert f":{src}" in params


def test_a_pause_of_a_pipeline_that_is_not_loaded_is_refused_and_leaves_no_pause(workspace, daemon) -> None:
    """A tester's find: `pause = "nosuchpipe"` was recorded done, and the pause it left caught a pipeline of that
    name added weeks later ("pipeline nosuchpipe is paused (rule ...)")."""
    workspace.pipeline("flaky", rule(do='[[on.do]]\npause = "nosuchpipe"\n'))
    daemon.start()
    run(daemon, "flaky", fail=True)
    last = until(lambda: monitor(daemon)["last_firing"], what="the firing")
    assert last["state"] == "failed" and "no pipeline named 'nosuchpipe' is loaded" in last["responses"][0]["refused"]
    workspace.pipeline("nosuchpipe", '[tasks.a]\ncommand = ["true"]\n')
    daemon.call("reload")
    assert daemon.call("status")["paused"] == []
    assert run(daemon, "nosuchpipe") > 0


def test_a_failing_notify_is_said_in_the_log_with_its_exit_code_and_last_line(workspace, daemon) -> None:
    """A tester's find: a notify exiting 3 ("pager: 503 Service Unavailable") left only "rule X fired: notify ..."
    in the daemon's log, for weeks; `monitors` alone said why."""
    workspace.pipeline("flaky", rule(do='[[on.do]]\nnotify = ["sh", "-c", "cat > /dev/null; '
                                        'echo pager: 503 Service Unavailable >&2; exit 3"]\n'))
    daemon.start()
    run(daemon, "flaky", fail=True)
    until(lambda: "notify sh -c" in daemon.output() and "failed: exited with code 3" in daemon.output(),
          what="the failure in the log")
    line = next(ln for ln in daemon.output().splitlines() if "failed: exited with code 3" in ln)
    assert "WARNING" in line and "pager: 503 Service Unavailable" in line, line


def test_still_firing_says_when_the_episodes_response_failed(workspace, daemon) -> None:
    """A tester's find: with the retrain pipeline paused for maintenance, the firing's trigger was refused, and each
    later drifted batch said "still firing: episode 1 was answered", as if the retrain had run."""
    workspace.pipeline("flaky", rule())
    workspace.pipeline("retrain", RETRAIN)
    daemon.start()
    daemon.call("pipelines.pause", {"name": "retrain", "reason": "maintenance"})
    run(daemon, "flaky", fail=True)
    until(lambda: (monitor(daemon)["last_firing"] or {}).get("state") == "failed", what="the failed firing")
    second = run(daemon, "flaky", fail=True)
    held = until(lambda: daemon.call("why", {"run": second})["rules"], what="the rule's decision on the second run")
    assert held[0]["action"] == "still_firing"
    assert "was answered, but its response failed (trigger retrain refused" in held[0]["message"], held[0]["message"]
    refused = monitor(daemon)["last_firing"]["responses"][0]["refused"]  # one line: a log's, an event's, a cell's
    assert "\n" not in refused and "; hint: resume it" in refused, refused
    fired = next(ln for ln in daemon.output().splitlines() if "rule too_many_failures fired:" in ln)
    assert "\\n" not in fired, fired  # the log line said a literal "\n  hint:"
    assert rule_runs(workspace) == []


def _event_message(ws, kind: str) -> str:
    db = sqlite3.connect(ws.state / "edgeorch.db")
    try:
        return db.execute("SELECT message FROM events WHERE kind = ? ORDER BY id DESC LIMIT 1", (kind,)).fetchone()[0]
    finally:
        db.close()
