"""The pure rule families (edgeorch/observe/collectors/rules.py) from monitors.list's rows."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from edgeorch.observe.collectors.rules import families
from edgeorch.observe.exposition import to_text


def _row(name: str, state: str, last_value: float | None, **extra) -> dict:
    return {"name": name, "pipeline": "p", "signal": "freshness", "state": state, "last_value": last_value,
            "last_evaluated_at": extra.get("evaluated"), "last_fired_at": extra.get("fired")}


def _values(rows, counts, problems=0):
    text = to_text(list(families(rows, counts, problems))).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(text) for s in f.samples}


def test_one_state_is_1_values_without_a_signal_are_absent_and_missing_outcomes_count_0():
    v = _values([_row("stale", "silenced", 7200.0, evaluated=10.0, fired=5.0), _row("new", "ok", None)],
                {("stale", "fire"): 2, ("stale", "held"): 1, ("gone", "fire"): 9}, problems=1)
    stale = {dict(ls)["state"]: x for (n, ls), x in v.items() if n == "edgeorch_rule_state" and dict(ls)["rule"] == "stale"}
    assert stale == {"ok": 0, "pending": 0, "firing": 0, "cooling": 0, "silenced": 1}
    assert v[("edgeorch_rule_last_value", (("pipeline", "p"), ("rule", "stale"), ("signal", "freshness")))] == 7200
    assert not any(n == "edgeorch_rule_last_value" and ("rule", "new") in ls for n, ls in v)
    fired = {(dict(ls)["rule"], dict(ls)["outcome"]): x for (n, ls), x in v.items() if n == "edgeorch_rule_firings_total"}
    assert fired == {("stale", "fire"): 2, ("stale", "held"): 1, ("stale", "deduped"): 0,
                     ("new", "fire"): 0, ("new", "held"): 0, ("new", "deduped"): 0}  # "gone": no longer loaded
    assert v[("edgeorch_rule_last_fired_timestamp_seconds", (("pipeline", "p"), ("rule", "stale")))] == 5.0
    assert v[("edgeorch_rule_problems", ())] == 1


def test_no_rules_give_empty_families():
    v = _values([], {})
    assert v == {("edgeorch_rule_problems", ()): 0}
