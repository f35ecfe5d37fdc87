"""Counts and histograms kept as plain dicts (edgeorch/observe/tally.py) and their exposition.

Each test parses what it checks with ``prometheus_client``'s own text parser,
so a family that a Prometheus server would refuse fails here.
"""

from __future__ import annotations

import math

import pytest
from prometheus_client.parser import text_string_to_metric_families

from edgeorch.observe.exposition import to_json, to_text
from edgeorch.observe.tally import Counts, Histograms


def _samples(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(text.decode()) for s in f.samples}


def test_a_counter_adds_per_label_values_and_is_exposed_with_total():
    c = Counts("edgeorch_things", "Things.", ["kind"])
    c.inc(("a",))
    c.inc(("a",), 2)
    c.inc(("b",))
    got = _samples(to_text([c.family()]))
    assert got == {("edgeorch_things_total", (("kind", "a"),)): 3.0, ("edgeorch_things_total", (("kind", "b"),)): 1.0}


def test_an_unlabelled_counter_that_never_counted_says_zero():
    got = _samples(to_text([Counts("edgeorch_errors", "Errors.", []).family()]))
    assert got == {("edgeorch_errors_total", ()): 0.0}


def test_a_labelled_counter_that_never_counted_has_no_series():
    assert _samples(to_text([Counts("edgeorch_x", "X.", ["a"]).family()])) == {}


def test_histogram_buckets_are_cumulative_and_a_value_on_a_bound_counts_in_that_bucket():
    h = Histograms("edgeorch_d_seconds", "D.", ["p"], buckets=(1, 5))
    for v in (0.2, 1.0, 3.0, 5.0, 7.0):
        h.observe(("x",), v)
    got = _samples(to_text([h.family()]))
    le = lambda b: ("edgeorch_d_seconds_bucket", (("le", b), ("p", "x")))  # noqa: E731
    assert got[le("1.0")] == 2  # 0.2 and 1.0 (le: less or equal)
    assert got[le("5.0")] == 4
    assert got[le("+Inf")] == 5
    assert got[("edgeorch_d_seconds_count", (("p", "x"),))] == 5
    assert got[("edgeorch_d_seconds_sum", (("p", "x"),))] == pytest.approx(16.2)


def test_histogram_ignores_nan_and_keeps_series_apart():
    h = Histograms("edgeorch_d_seconds", "D.", ["p"], buckets=(1,))
    h.observe(("a",), math.nan)
    h.observe(("b",), 2.0)
    got = _samples(to_text([h.family()]))
    assert ("edgeorch_d_seconds_count", (("p", "a"),)) not in got
    assert got[("edgeorch_d_seconds_count", (("p", "b"),))] == 1


@pytest.mark.parametrize("buckets", [(5, 1), (1, 1)])
def test_histogram_refuses_buckets_that_do_not_ascend(buckets):
    with pytest.raises(ValueError, match="ascend"):
        Histograms("edgeorch_bad", "bad", [], buckets=buckets)


def test_json_form_names_samples_as_the_exposition_does_and_stays_strict_json():
    import json

    c = Counts("edgeorch_runs_finished", "Runs.", ["state"])
    c.inc(("failed",))
    h = Histograms("edgeorch_d_seconds", "D.", [], buckets=(1,))
    h.observe((), 0.5)
    doc = to_json([c.family(), h.family()])
    assert doc[0]["name"] == "edgeorch_runs_finished" and doc[0]["type"] == "counter"
    assert doc[0]["samples"] == [{"name": "edgeorch_runs_finished_total", "labels": {"state": "failed"}, "value": 1}]
    inf = [s for s in doc[1]["samples"] if s["labels"].get("le") == "+Inf"]
    assert inf[0]["value"] == 1
    json.dumps(doc, allow_nan=False)  # no NaN/Infinity tokens
