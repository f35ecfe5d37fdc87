"""The rules collector on a real daemon: a rule that fires, one pending, a silence; scraped over HTTP.

The scrape is parsed with ``prometheus_client``'s text parser and compared
with the ``monitors.list`` op (what ``edgeorch monitors`` shows).
"""

from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families

FLAKY = """
name = "flaky"
[params]
fail = false
[tasks.work]
command = ["sh", "-c", "test {fail} = false"]

[[on]]
name = "too_many_failures"
signal = "failure_rate"
threshold = 0.5
[[on.do]]
trigger = "retrain"

[[on]]
name = "sustained_failures"
signal = "failure_rate"
threshold = 0.5
for_evaluations = 5
[[on.do]]
trigger = "retrain"
"""

RETRAIN = '[tasks.fit]\ncommand = ["true"]\n'

Values = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str) -> Values:
    with urllib.request.urlopen(url, timeout=30) as resp:
        text = resp.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(text) for s in f.samples}


def value(values: Values, name: str, /, **labels: str) -> float | None:
    return values.get((name, tuple(sorted(labels.items()))))


def rules(daemon) -> dict[str, dict]:
    return {r["name"]: r for r in daemon.call("monitors.list")["rules"]}


def wait_events(daemon, cond, what: str, timeout: float = 60) -> None:
    """Follow the daemon's events stream until ``cond()`` holds (checked at subscribe and after each event)."""
    with daemon.client(timeout=timeout) as c:
        for _ in c.stream("events", {}, timeout=timeout):
            if cond():
                return
    raise AssertionError(f"the events stream ended before {what}")


def states(v: Values, rule: str) -> dict[str, float]:
    return {dict(ls)["state"]: val for (n, ls), val in v.items() if n == "edgeorch_rule_state" and dict(ls)["rule"] == rule}


def test_rule_metrics_match_monitors_list_through_firing_and_silence(workspace, daemon):
    workspace.write_config('[metrics]\nlisten = "127.0.0.1:0"\n')
    workspace.pipeline("flaky", FLAKY)
    workspace.pipeline("retrain", RETRAIN)
    daemon.start()
    url = f"http://{daemon.call('metrics')['outputs']['listen']}/metrics"

    v = scrape(url)  # loaded, never evaluated: ok, no value yet, no firings
    assert states(v, "too_many_failures") == {"ok": 1, "pending": 0, "firing": 0, "cooling": 0, "silenced": 0}
    assert value(v, "edgeorch_rule_last_value", rule="too_many_failures", pipeline="flaky",
                 signal="failure_rate") is None
    assert value(v, "edgeorch_rule_firings_total", rule="too_many_failures", pipeline="flaky", outcome="fire") == 0
    assert value(v, "edgeorch_metrics_collector_up", collector="rules") == 1

    run = daemon.call("trigger", {"pipeline": "flaky", "params": {"fail": True}})["run_id"]
    assert daemon.wait_run(run) == "failed"
    wait_events(daemon, lambda: rules(daemon)["too_many_failures"]["state"] == "firing", "the firing")
    listed = rules(daemon)
    v = scrape(url)
    for name, rule in listed.items():
        assert states(v, name)[rule["state"]] == 1 and sum(states(v, name).values()) == 1, name
        assert value(v, "edgeorch_rule_last_value", rule=name, pipeline="flaky",
                     signal="failure_rate") == rule["last_value"] == 1.0
        assert value(v, "edgeorch_rule_last_evaluated_timestamp_seconds", rule=name,
                     pipeline="flaky") == rule["last_evaluated_at"]
    assert listed["sustained_failures"]["state"] == "pending"
    assert value(v, "edgeorch_rule_firings_total", rule="too_many_failures", pipeline="flaky", outcome="fire") == 1
    assert value(v, "edgeorch_rule_firings_total", rule="sustained_failures", pipeline="flaky", outcome="fire") == 0
    assert value(v, "edgeorch_rule_last_fired_timestamp_seconds", rule="too_many_failures",
                 pipeline="flaky") == listed["too_many_failures"]["last_fired_at"]
    assert value(v, "edgeorch_rule_problems") == 0

    # A silence shows as `silenced` in both, whatever the stored state.
    daemon.call("monitors.silence", {"rule": "too_many_failures", "until": 4e9, "reason": "maintenance"})
    assert rules(daemon)["too_many_failures"]["state"] == "silenced"
    assert states(scrape(url), "too_many_failures")["silenced"] == 1
