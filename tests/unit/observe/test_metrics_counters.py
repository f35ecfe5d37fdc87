"""The bus subscriber that counts changes (edgeorch/observe/counters.py), fed typed events directly."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from edgeorch.events import (
    AttemptEnded,
    Bus,
    GpuDrained,
    InputChanged,
    InputQuarantined,
    ModelDeployment,
    ModelRegistered,
    Reloaded,
    RunFinished,
    ScheduleFired,
    TaskCached,
    TaskFailed,
    TaskStarted,
)
from edgeorch.observe.counters import EventCounters
from edgeorch.observe.exposition import to_text


def _values(counters: EventCounters) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = to_text(counters.families()).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(text) for s in f.samples}


def _ended(ts: float, run: int, task: str, attempt: int, state: str = "succeeded") -> AttemptEnded:
    return AttemptEnded(ts, run, task, state, attempt, 0, None, None, False)


def test_an_attempt_duration_runs_from_its_start_to_its_end_labelled_with_the_runs_pipeline():
    c = EventCounters({7: "nightly"}.get)
    c.on_event(TaskStarted(100.0, 7, "train", 1))
    c.on_event(_ended(142.5, 7, "train", 1, "retry_wait"))
    v = _values(c)
    assert v[("edgeorch_attempt_duration_seconds_sum", (("pipeline", "nightly"), ("state", "retry_wait")))] == 42.5
    assert v[("edgeorch_attempt_duration_seconds_bucket", (("le", "60.0"), ("pipeline", "nightly"),
                                                           ("state", "retry_wait")))] == 1


def test_an_adopted_attempt_is_timed_from_the_start_the_state_file_recorded():
    c = EventCounters({3: "p"}.get, seed=[((3, "a", 2), 10.0)])
    c.on_event(_ended(25.0, 3, "a", 2))
    assert _values(c)[("edgeorch_attempt_duration_seconds_sum", (("pipeline", "p"), ("state", "succeeded")))] == 15


def test_an_end_without_a_known_start_counts_the_event_but_no_duration():
    c = EventCounters(lambda run_id: None)
    c.on_event(_ended(5.0, 1, "a", 1))
    v = _values(c)
    assert v[("edgeorch_events_total", (("event", "AttemptEnded"),))] == 1
    assert not any(name.startswith("edgeorch_attempt_duration") for name, _ in v)


def test_check_tasks_that_ended_an_attempt_are_noted_once_until_taken():
    kinds = {(1, "drift"): "drift"}
    c = EventCounters({1: "p"}.get, kind_of=lambda run_id, task: kinds.get((run_id, task)))
    for e in (_ended(1.0, 1, "drift", 1, "retry_wait"), _ended(2.0, 1, "drift", 2), _ended(2.0, 1, "train", 1)):
        c.on_event(e)
    assert c.take_checks_ended() == {(1, "drift")}  # not train: not a check
    assert c.take_checks_ended() == set()


def test_checks_ended_while_nobody_scrapes_keep_one_entry_per_pipeline_task():
    """Metrics off: nothing takes them. A check every minute for a month must not keep 43,200 entries: only the
    newest run of each (pipeline, task) is read at the next scrape (the latest attempt is what is shown)."""
    c = EventCounters(lambda run_id: "p" if run_id % 2 else "q", kind_of=lambda run_id, task: "drift")
    for run_id in range(1, 5001):
        c.on_event(_ended(float(run_id), run_id, "drift", 1))
    assert len(c._checks_ended) == 2
    assert c.take_checks_ended() == {(4999, "drift"), (5000, "drift")}


def test_runs_inputs_schedules_caches_and_gpus_are_counted_by_their_labels():
    c = EventCounters({1: "p"}.get)
    for e in (RunFinished(1.0, 1, "failed", "b failed", "p"), RunFinished(2.0, 2, "succeeded", None, "p"),
              InputChanged(1.0, "duplicate", input_id=4, pipeline="checks"),
              InputChanged(1.0, "watch_missing", file="/drop"),
              InputQuarantined(1.0, 5, 9, "checks", "/q/x.csv", "run failed", "x.csv"),
              ScheduleFired(1.0, "nightly", "2026-01-01T02:00:00+00:00", "skip", 0, "max_active_runs"),
              TaskCached(1.0, 1, "prep", 3), TaskFailed(1.0, 1, "gpu", "cannot be scheduled"),
              GpuDrained(1.0, "GPU-1", "lost")):
        c.on_event(e)
    v = _values(c)
    assert v[("edgeorch_runs_finished_total", (("pipeline", "p"), ("state", "failed")))] == 1
    assert v[("edgeorch_runs_finished_total", (("pipeline", "p"), ("state", "succeeded")))] == 1
    assert v[("edgeorch_drop_input_events_total", (("pipeline", "checks"), ("state", "duplicate")))] == 1
    assert v[("edgeorch_drop_input_events_total", (("pipeline", "checks"), ("state", "quarantined")))] == 1
    assert v[("edgeorch_drop_input_events_total", (("pipeline", ""), ("state", "watch_missing")))] == 1
    assert v[("edgeorch_schedule_fires_total", (("action", "skip"), ("pipeline", "nightly")))] == 1
    assert v[("edgeorch_tasks_cached_total", (("pipeline", "p"),))] == 1
    assert v[("edgeorch_tasks_failed_without_attempt_total", (("pipeline", "p"),))] == 1
    assert v[("edgeorch_gpu_drains_total", (("gpu", "GPU-1"),))] == 1


def test_an_event_class_without_a_handler_is_still_counted_and_nothing_breaks_the_bus():
    bus, c = Bus(), EventCounters(lambda run_id: None)
    bus.subscribe(c.on_event)
    bus.publish(Reloaded(1.0, "unchanged", True, "SIGHUP"))
    assert _values(c)[("edgeorch_events_total", (("event", "Reloaded"),))] == 1


def test_model_registrations_and_deployments_are_counted():
    c = EventCounters(lambda run_id: None)
    c.on_event(ModelRegistered(1.0, "house", 3, "passed", run_id=1, task="train", deployment_id=9))
    c.on_event(ModelDeployment(2.0, "house", 9, "champion", "running", 2, 3, "promote"))
    c.on_event(ModelDeployment(3.0, "house", 9, "champion", "succeeded", 2, 3, "promote"))
    v = _values(c)
    assert v[("edgeorch_model_registrations_total", (("gate_verdict", "passed"), ("model", "house")))] == 1
    assert v[("edgeorch_model_deployments_total", (("action", "promote"), ("alias", "champion"), ("model", "house"),
                                                   ("state", "succeeded")))] == 1
