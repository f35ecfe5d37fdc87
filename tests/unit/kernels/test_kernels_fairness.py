"""Fairness metrics agree with Fairlearn (and AIF360's disparate impact definition)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edgeorch.errors import DataError
from edgeorch.kernels import (
    demographic_parity_difference,
    demographic_parity_ratio,
    disparate_impact,
    equalized_odds_difference,
    equalized_odds_ratio,
    fairness_report,
    four_fifths_rule,
    selection_rates,
)

fm = pytest.importorskip("fairlearn.metrics")
pd = pytest.importorskip("pandas")

PAIRS = [
    (demographic_parity_difference, "demographic_parity_difference"),
    (demographic_parity_ratio, "demographic_parity_ratio"),
    (equalized_odds_difference, "equalized_odds_difference"),
    (equalized_odds_ratio, "equalized_odds_ratio"),
]


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("method", ["between_groups", "to_overall"])
@pytest.mark.parametrize(("ours", "name"), PAIRS)
def test_agrees_with_fairlearn_on_random_data_with_several_groups(ours, name: str, method: str,  # type: ignore[no-untyped-def]
                                                                  rng: np.random.Generator) -> None:
    for _ in range(15):
        n = int(rng.integers(20, 400))
        yt, yp = rng.integers(0, 2, n), (rng.random(n) < rng.random()).astype(int)
        g = rng.choice(["a", "b", "c", "d"], n)
        assert _same(ours(yt, yp, sensitive_features=g, method=method),
                     getattr(fm, name)(yt, yp, sensitive_features=g, method=method))


@pytest.mark.parametrize(("ours", "name"), PAIRS)
def test_agrees_with_fairlearn_on_intersections(ours, name: str, rng: np.random.Generator) -> None:  # type: ignore[no-untyped-def]
    n = 600
    yt, yp = rng.integers(0, 2, n), rng.integers(0, 2, n)
    sex, race = rng.choice(["f", "m"], n), rng.integers(0, 3, n)
    ref = getattr(fm, name)(yt, yp, sensitive_features=pd.DataFrame({"sex": sex, "race": race}))
    assert _same(ours(yt, yp, sensitive_features={"sex": sex, "race": race}), ref)


@pytest.mark.parametrize(("ours", "name"), PAIRS)
def test_agrees_with_fairlearn_on_degenerate_groups(ours, name: str) -> None:  # type: ignore[no-untyped-def]
    # group b has no actual positives and selects nobody: rates of 0, ratios of 0/0
    yt = np.array([1, 0, 1, 0, 0, 0])
    yp = np.array([1, 0, 0, 0, 0, 0])
    g = np.array(["a", "a", "a", "b", "b", "b"])
    assert _same(ours(yt, yp, sensitive_features=g), getattr(fm, name)(yt, yp, sensitive_features=g))


def test_mean_aggregation_agrees_with_fairlearn(rng: np.random.Generator) -> None:
    yt, yp, g = rng.integers(0, 2, 300), rng.integers(0, 2, 300), rng.choice(["x", "y", "z"], 300)
    assert equalized_odds_difference(yt, yp, sensitive_features=g, agg="mean") == pytest.approx(
        fm.equalized_odds_difference(yt, yp, sensitive_features=g, agg="mean"))


def test_selection_rates_per_group() -> None:
    rates = selection_rates([1, 0, 1, 1], ["a", "a", "b", "b"])
    assert rates == {"a": 0.5, "b": 1.0}


def test_one_group_has_no_disparity() -> None:
    assert demographic_parity_difference([1, 0], [1, 0], sensitive_features=["a", "a"]) == 0.0
    assert demographic_parity_ratio([1, 0], [1, 0], sensitive_features=["a", "a"]) == 1.0


def test_all_rates_zero_gives_nan_ratio() -> None:
    assert math.isnan(demographic_parity_ratio([0, 0], [0, 0], sensitive_features=["a", "b"]))


def test_empty_input_is_a_data_error() -> None:
    with pytest.raises(DataError, match="no rows"):
        demographic_parity_difference([], [], sensitive_features=[])


def test_length_mismatch_is_a_data_error() -> None:
    with pytest.raises(DataError, match="differ in length"):
        equalized_odds_difference([1, 0, 1], [1, 0], sensitive_features=["a", "b"])


def test_non_binary_labels_for_equalized_odds_are_a_data_error() -> None:
    with pytest.raises(DataError, match="binary"):
        equalized_odds_difference([0, 1, 2], [0, 1, 1], sensitive_features=["a", "b", "b"])


def test_missing_group_value_is_its_own_group() -> None:
    rates = selection_rates([1, 0, 1], ["a", None, None])
    assert rates == {"a": 1.0, None: 0.5}


# -- AIF360 disparate impact --------------------------------------------------------

def test_disparate_impact_with_privileged_group_is_aif360s_ratio(rng: np.random.Generator) -> None:
    n = 1000
    g = rng.choice(["m", "f", "x"], n)
    yp = rng.integers(0, 2, n)
    # AIF360: P(y_hat=fav | unprivileged) / P(y_hat=fav | privileged), unprivileged = the rest
    expected = yp[g != "m"].mean() / yp[g == "m"].mean()
    assert disparate_impact(yp, g, privileged="m") == pytest.approx(expected, rel=1e-12)
    expected_f = yp[g == "f"].mean() / yp[g == "m"].mean()
    assert disparate_impact(yp, g, privileged="m", unprivileged="f") == pytest.approx(expected_f, rel=1e-12)


def test_disparate_impact_without_privileged_is_the_parity_ratio(rng: np.random.Generator) -> None:
    yp, g = rng.integers(0, 2, 200), rng.choice(["a", "b"], 200)
    assert disparate_impact(yp, g) == demographic_parity_ratio(None, yp, sensitive_features=g)


def test_disparate_impact_of_an_unknown_group_is_a_data_error() -> None:
    with pytest.raises(DataError, match="no such group"):
        disparate_impact([1, 0], ["a", "b"], privileged="c")


@pytest.mark.parametrize(("di", "ok"), [(0.8, True), (0.79, False), (1.2, True), (math.nan, False)])
def test_four_fifths_rule(di: float, ok: bool) -> None:
    assert four_fifths_rule(di) is ok


# -- report with minimum group size ------------------------------------------------------

def test_small_groups_are_flagged_and_left_out(rng: np.random.Generator) -> None:
    n = 500
    g = np.array(["a"] * 240 + ["b"] * 250 + ["tiny"] * 10)
    yp = np.concatenate([rng.integers(0, 2, 490), np.zeros(10, int)])  # tiny selects nobody
    rep = fairness_report(None, yp, g, min_group_size=30)
    assert [x["verdict"] for x in rep.groups] == ["ok", "ok", "small_group"]
    dpd = next(m for m in rep.metrics if m["metric"] == "demographic_parity_difference")
    assert dpd["value"] == pytest.approx(demographic_parity_difference(None, yp[:490], sensitive_features=g[:490]))
    assert len(yp) == n


def test_report_verdicts_use_thresholds() -> None:
    g = ["a"] * 50 + ["b"] * 50
    yp = [1] * 40 + [0] * 10 + [1] * 20 + [0] * 30  # rates 0.8 and 0.4
    rep = fairness_report(None, yp, g, thresholds={"demographic_parity_difference": 0.5})
    verdicts = {m["metric"]: m["verdict"] for m in rep.metrics}
    assert verdicts == {"demographic_parity_difference": "ok", "demographic_parity_ratio": "violation",
                        "disparate_impact": "violation"}


from hypothesis import given, settings
from hypothesis import strategies as hs

rows = hs.lists(hs.tuples(hs.integers(0, 1), hs.integers(0, 1), hs.sampled_from(["a", "b", "c"])),
                min_size=2, max_size=60)  # Fairlearn rejects a single row


@settings(max_examples=20, deadline=None)  # as above
@given(rows)
def test_agrees_with_fairlearn_on_generated_data(data: list[tuple[int, int, str]]) -> None:
    yt = np.array([r[0] for r in data])
    yp = np.array([r[1] for r in data])
    g = np.array([r[2] for r in data])
    for ours, name in PAIRS:
        assert _same(ours(yt, yp, sensitive_features=g), getattr(fm, name)(yt, yp, sensitive_features=g)), name


# agg="mean" skips an undefined term as Fairlearn does; masked and 2-D input is refused (issue 9, item 33).

def test_mean_aggregation_skips_a_nan_term_like_fairlearn() -> None:
    yt, yp, g = np.array([1, 1, 0, 0]), np.array([1, 0, 0, 0]), np.array(["a", "b", "a", "b"])
    for ours, name in ((equalized_odds_ratio, "equalized_odds_ratio"),
                       (equalized_odds_difference, "equalized_odds_difference")):
        ref = getattr(fm, name)(yt, yp, sensitive_features=g, agg="mean")
        assert _same(ours(yt, yp, sensitive_features=g, agg="mean"), ref), name
    assert equalized_odds_ratio(yt, yp, sensitive_features=g, agg="mean") == 0.0


@settings(max_examples=20, deadline=None)  # Fairlearn takes ~0.1 s a call: 20 new examples every run
@given(rows)
def test_mean_aggregation_agrees_with_fairlearn_on_generated_data(data: list[tuple[int, int, str]]) -> None:
    yt, yp, g = (np.array([r[i] for r in data]) for i in range(3))
    for ours, name in ((equalized_odds_ratio, "equalized_odds_ratio"),
                       (equalized_odds_difference, "equalized_odds_difference")):
        for method in ("between_groups", "to_overall"):
            assert _same(ours(yt, yp, sensitive_features=g, method=method, agg="mean"),
                         getattr(fm, name)(yt, yp, sensitive_features=g, method=method, agg="mean")), (name, method)


def test_masked_arrays_are_refused_not_unmasked() -> None:
    yt, yp = np.array([1, 0, 1, 0]), np.ma.masked_array([1, 0, 0, 1], mask=[0, 0, 0, 1])
    with pytest.raises(DataError, match="masked"):
        demographic_parity_difference(yt, yp, sensitive_features=["a", "a", "b", "b"])
    with pytest.raises(DataError, match="masked"):
        selection_rates(np.array([1, 0, 0, 1]), np.ma.masked_array(["a", "a", "b", "b"], mask=[0, 0, 0, 1]))


def test_2d_arrays_are_refused_not_flattened() -> None:
    yt, yp = np.array([1, 0, 1, 0]), np.array([1, 0, 0, 1])
    with pytest.raises(DataError, match="one-dimensional"):
        demographic_parity_difference(yt, yp, sensitive_features=np.array([["a", "x"], ["a", "y"], ["b", "x"], ["b", "y"]]))
    with pytest.raises(DataError, match="one-dimensional"):
        demographic_parity_difference(yt, yp.reshape(1, 4), sensitive_features=["a", "a", "b", "b"])
    col = demographic_parity_difference(yt, yp.reshape(4, 1), sensitive_features=["a", "a", "b", "b"])
    assert col == demographic_parity_difference(yt, yp, sensitive_features=["a", "a", "b", "b"])


# -- issue 15: sample weights, equal opportunity, the four-fifths rule named, a stable API for rules ----

def test_weighted_metrics_agree_with_fairlearn_on_intersections(rng: np.random.Generator) -> None:
    n = 400
    yt, yp = rng.integers(0, 2, n), rng.integers(0, 2, n)
    sf = pd.DataFrame({"sex": rng.choice(["f", "m"], n), "age": rng.choice(["young", "old"], n)})
    w = rng.random(n) * 3
    for name in ("demographic_parity_difference", "demographic_parity_ratio", "equalized_odds_difference",
                 "equalized_odds_ratio", "equal_opportunity_difference", "equal_opportunity_ratio"):
        ours = getattr(__import__("edgeorch.kernels", fromlist=[name]), name)
        ref = getattr(fm, name)
        assert _same(ours(yt, yp, sensitive_features=sf, sample_weight=w),
                     ref(yt, yp, sensitive_features=sf, sample_weight=w)), name


def test_weights_that_are_not_one_finite_non_negative_number_per_row_are_data_errors() -> None:
    from edgeorch.kernels import selection_rate

    for bad, match in (([1.0, -1.0], "non-negative"), ([1.0, np.nan], "non-negative"), ([1.0], "length"),
                       (["a", "b"], "numbers")):
        with pytest.raises(DataError, match=match) as exc:
            demographic_parity_difference(None, [1, 0], sensitive_features=["a", "b"], sample_weight=bad)
        assert exc.value.field == "sample_weight"
    with pytest.raises(DataError, match="length"):
        selection_rate(None, [1, 0], sample_weight=[1.0, 2.0, 3.0])


def test_report_names_the_four_fifths_rule_and_exposes_values_for_rules() -> None:
    g = ["a"] * 50 + ["b"] * 50 + ["c"] * 5
    yp = [1] * 40 + [0] * 10 + [1] * 30 + [0] * 20 + [0] * 5  # rates 0.8 and 0.6; c is too small
    rep = fairness_report(None, yp, g)
    di = next(m for m in rep.metrics if m["metric"] == "disparate_impact")
    assert di["rule"] == "four-fifths rule" and di["value"] == pytest.approx(0.75)
    assert rep.four_fifths_rule is False and rep.passed is False and rep.verdict == "violation"
    assert "disparate_impact (four-fifths rule)" in rep.message
    doc = rep.to_dict()
    assert doc["summary"]["four_fifths_rule"] is False
    assert next(r for r in doc["rows"] if r["metric"] == "disparate_impact")["details"]["rule"] == "four-fifths rule"
    values = rep.values()
    assert values["disparate_impact"] == pytest.approx(0.75) and values["four_fifths_rule"] == 0.0
    assert values["min_selection_rate"] == pytest.approx(0.6) and values["max_selection_rate"] == pytest.approx(0.8)
    assert values["passed"] == 0.0 and values["small_groups"] == 1.0
    assert rep.metric("demographic_parity_difference") == pytest.approx(0.2)
    with pytest.raises(DataError, match="no such metric"):
        rep.metric("equal_opportunity_ratio")  # needs labels: not computed here


def test_report_with_labels_includes_equal_opportunity_and_weights_rates(rng: np.random.Generator) -> None:
    n = 300
    g, yt, yp, w = rng.choice(["a", "b"], n), rng.integers(0, 2, n), rng.integers(0, 2, n), rng.random(n)
    rep = fairness_report(yt, yp, g, sample_weight=w)
    assert rep.metric("equal_opportunity_difference") == pytest.approx(
        fm.equal_opportunity_difference(yt, yp, sensitive_features=g, sample_weight=w), rel=1e-12)
    a = next(x for x in rep.groups if x["group"] == "a")
    assert a["size"] == int((g == "a").sum()) and a["weight"] == pytest.approx(w[g == "a"].sum())
    assert a["selection_rate"] == pytest.approx(np.average(yp[g == "a"] == 1, weights=w[g == "a"]))


def test_equal_opportunity_without_labels_is_a_data_error() -> None:
    with pytest.raises(DataError, match="needs the true labels"):
        fairness_report(None, [1, 0], ["a", "b"], metrics=["equal_opportunity_ratio"])


def test_a_report_refuses_a_score_as_predictions_and_labels_without_the_positive_label() -> None:
    """The report (CLI and task kind) took a 0..1 score, a weight or yes/no text as the predictions: only values
    equal to 1 counted, and every rate came out near 0 with verdicts, exit 0. The metric functions already refused."""
    from edgeorch.errors import ColumnRoleError
    from edgeorch.kernels.fairness import fairness_report

    groups = np.array(["a", "b"] * 50)
    truth = np.array([0, 1] * 50)
    with pytest.raises(ColumnRoleError) as e:
        fairness_report(truth, np.linspace(0, 1, 100), groups, min_group_size=1, names=("y", "proba"))
    assert e.value.field == "proba" and e.value.exit_code == 2 and "100 distinct values" in e.value.render()
    with pytest.raises(ColumnRoleError, match="positive label 1 is not one of its two values"):
        fairness_report(None, np.array(["yes", "no"] * 50, dtype=object), groups, min_group_size=1)
    ok = fairness_report(None, np.array(["yes", "no"] * 50, dtype=object), groups, min_group_size=1, pos_label="yes")
    assert [g["selection_rate"] for g in ok.groups] == [1.0, 0.0]
    nobody = fairness_report(truth, np.zeros(100), groups, min_group_size=1)  # a model that selects nobody: fine
    assert [g["selection_rate"] for g in nobody.groups] == [0.0, 0.0]
    with_gaps = np.array([1.0, 0.0, np.nan] * 33 + [1.0])  # missing predictions are not a third value
    assert fairness_report(None, with_gaps, groups, min_group_size=1).groups


def test_an_intersection_is_named_as_the_report_labels_it_and_an_unknown_group_is_a_usage_error() -> None:
    """`--privileged "A, f"` (as the report labels the group) was "no such group", exit 1; only "A,f" worked."""
    from edgeorch.errors import ColumnRoleError
    from edgeorch.kernels.fairness import disparate_impact

    pred = np.array([1, 0, 1, 1, 0, 0, 1, 0] * 10)
    groups = {"grp": np.array(["A", "A", "B", "B"] * 20), "sex": np.array(["f", "m"] * 40)}
    assert disparate_impact(pred, groups, privileged="A, f") == \
        disparate_impact(pred, groups, privileged="A,f")
    with pytest.raises(ColumnRoleError) as e:
        disparate_impact(pred, groups, privileged="Z")
    assert e.value.exit_code == 2 and "A,f; A,m; B,f; B,m" in e.value.render()


def test_weights_near_the_float_limit_give_the_rates_of_the_same_weights_scaled():
    """Found by a tester: weights around 1e308 overflowed their sums (a RuntimeWarning on stderr) and group b's
    rates came out 0 0 0 instead of 1/3, 1/2, 0, with a `violation` verdict."""
    import warnings

    import numpy as np

    from edgeorch.kernels.fairness import group_rates

    yt, yp = np.array([1, 0, 1, 1, 0, 0]), np.array([1, 0, 0, 1, 1, 0])
    g = np.array(["a", "a", "a", "b", "b", "b"])
    plain = group_rates(yt, yp, g, sample_weight=np.ones(6))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        huge = group_rates(yt, yp, g, sample_weight=np.full(6, 1e308))
    for rate in ("selection_rate", "tpr", "fpr"):
        assert np.allclose(getattr(plain, rate)(), getattr(huge, rate)()), rate


def test_fewer_than_two_groups_left_by_min_group_size_compute_no_metric() -> None:
    """Group b (29 rows, all refused) fell below min_group_size 30: every metric read 0 or 1, "all within bounds",
    four_fifths_rule true, a gate on it passed. With one group left there is nothing to compare."""
    y_pred = np.array([1] * 50 + [0] * 50 + [0] * 29)
    y_true = np.array([1] * 50 + [0] * 50 + [1] * 29)
    groups = np.array(["a"] * 100 + ["b"] * 29)
    rep = fairness_report(y_true, y_pred, groups, min_group_size=30)
    assert {m["verdict"] for m in rep.metrics} == {"undefined"} and rep.four_fifths_rule is None
    assert rep.verdict == "warn" and rep.message.startswith("no fairness metric computed: 1 group(s) of 2 have "
                                                           "min_group_size (30) rows")
    # A file with one group only keeps Fairlearn's values (nothing was left out): 0 and 1.
    one = fairness_report(y_true[:100], y_pred[:100], groups[:100], min_group_size=30)
    assert one.metric("demographic_parity_difference") == 0.0 and one.four_fifths_rule is True
