"""The collector registry (edgeorch/observe/collect.py) and the pure check families (collectors/checks.py)."""

from __future__ import annotations

import logging

from prometheus_client.parser import text_string_to_metric_families

from edgeorch.observe.checks import LatestChecks
from edgeorch.observe.collect import Sources, collect, gauge
from edgeorch.observe.collectors.checks import families as check_families
from edgeorch.observe.exposition import to_text


def _values(families) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(to_text(families).decode()) for s in f.samples}


def _src() -> Sources:
    return Sources(config=None, store=None, engine=None, registry=None, counters=None,  # type: ignore[arg-type]
                   clients=lambda: 0, started_at=0.0)


def test_a_failing_collector_is_reported_down_logged_once_and_hides_nothing_else(caplog):
    def broken(src):
        raise RuntimeError("the table is gone")

    def fine(src):
        yield gauge("edgeorch_fine", "Fine.", 1)

    src = _src()
    with caplog.at_level(logging.ERROR, logger="edgeorch.observe"):
        for _ in range(3):
            v = _values(collect(src, [("broken", broken), ("fine", fine)]))
    assert v[("edgeorch_fine", ())] == 1
    assert v[("edgeorch_metrics_collector_up", (("collector", "broken"),))] == 0
    assert v[("edgeorch_metrics_collector_up", (("collector", "fine"),))] == 1
    assert ("edgeorch_metrics_collect_seconds", ()) in v
    assert [r.getMessage() for r in caplog.records] == ["metrics collector broken failed"]  # once, not per scrape


def test_a_collector_that_recovers_is_up_again_and_a_new_failure_is_logged_again(caplog):
    state = {"fail": True}

    def flaky(src):
        if state["fail"]:
            raise OSError("disk")
        return []

    src = _src()
    with caplog.at_level(logging.ERROR, logger="edgeorch.observe"):
        collect(src, [("flaky", flaky)])
        state["fail"] = False
        v = _values(collect(src, [("flaky", flaky)]))
        state["fail"] = True
        collect(src, [("flaky", flaky)])
    assert v[("edgeorch_metrics_collector_up", (("collector", "flaky"),))] == 1
    assert len(caplog.records) == 2


def _row(task, verdict, kind="drift", column="age", metric="psi", value=0.3, threshold=0.2, row_verdict="drift",
         attempt_id=1):
    return {"pipeline": "checks", "task": task, "attempt_id": attempt_id, "attempt_verdict": verdict,
            "finished_at": 1000.0, "kind": kind, "column_name": column, "metric": metric, "value": value,
            "threshold": threshold, "verdict": row_verdict}


def test_check_families_give_each_tasks_verdict_as_a_state_set_and_each_rows_value():
    rows = [_row("drift", "violation"), _row("drift", "violation", column="income", value=0.01, row_verdict="ok"),
            {**_row("profile", "ok"), "kind": None, "column_name": None, "metric": None, "value": None,
             "threshold": None, "verdict": None}]  # a check that returned no rows
    v = _values(list(check_families(rows)))
    assert v[("edgeorch_check_verdict", (("pipeline", "checks"), ("task", "drift"), ("verdict", "violation")))] == 1
    assert v[("edgeorch_check_verdict", (("pipeline", "checks"), ("task", "drift"), ("verdict", "ok")))] == 0
    assert v[("edgeorch_check_verdict", (("pipeline", "checks"), ("task", "profile"), ("verdict", "ok")))] == 1
    assert v[("edgeorch_check_rows", (("kind", "drift"), ("pipeline", "checks"), ("task", "drift"),
                                      ("verdict", "drift")))] == 1
    assert v[("edgeorch_check_value", (("column", "income"), ("kind", "drift"), ("metric", "psi"),
                                       ("pipeline", "checks"), ("task", "drift")))] == 0.01
    assert v[("edgeorch_check_timestamp_seconds", (("pipeline", "checks"), ("task", "profile")))] == 1000


def test_two_result_rows_with_the_same_labels_give_one_series():
    rows = [_row("rules", "violation", kind="validate", column="age", metric="range", value=1.0),
            _row("rules", "violation", kind="validate", column="age", metric="range", value=2.0)]
    fams = list(check_families(rows))
    # Prometheus refuses a whole scrape with a duplicated series: the parser would see two samples.
    value = next(f for f in fams if f.name == "edgeorch_check_value")
    assert [s.value for s in value.samples] == [1.0]


def test_latest_checks_keep_each_tasks_newest_attempt_whatever_order_they_arrive_in():
    checks = LatestChecks()
    newer = [_row("drift", "violation", attempt_id=7), _row("drift", "violation", column="income", attempt_id=7)]
    checks.merge(newer)
    checks.merge([_row("drift", "ok", attempt_id=3), _row("profile", "ok", attempt_id=2)])  # the start-up read, late
    assert [(r["task"], r["attempt_id"], r["column_name"]) for r in checks.rows()] == [
        ("drift", 7, "age"), ("drift", 7, "income"), ("profile", 2, "age")]
    checks.merge([_row("drift", "ok", attempt_id=9)])  # a newer attempt replaces all of the task's rows
    assert [(r["task"], r["attempt_id"]) for r in checks.rows()] == [("drift", 9), ("profile", 2)]
