"""The rules' pure evaluator: hysteresis, resolve, cooldown, daily maximum, dedupe and silences (manual time)."""

from __future__ import annotations

from dataclasses import replace

from edgeorch.monitor.rules import History, RuleState, evaluate, holds
from edgeorch.monitor.spec import RuleSpec


def spec(**kw) -> RuleSpec:
    base = dict(name="r", pipeline="p", signal="drift_share", threshold=0.3, task="drift")
    base.update(kw)
    return RuleSpec(**base)


def run(s: RuleSpec, values, start: float = 1000.0, step: float = 10.0, st: RuleState = RuleState(), **kw):
    out = []
    for i, v in enumerate(values):
        d = evaluate(s, st, v, start + i * step, **kw)
        st = d.state
        out.append(d)
    return out


def test_a_condition_that_holds_fires_once_per_episode_and_resolves() -> None:
    ds = run(spec(), [0.5, 0.6, 0.1, 0.5])
    assert [d.action for d in ds] == ["fire", "still_firing", "resolve", "fire"]
    assert [d.state.episode for d in ds] == [1, 1, 1, 2]
    assert ds[1].changed is False and ds[2].changed is True


def test_hysteresis_needs_n_consecutive_evaluations() -> None:
    ds = run(spec(for_evaluations=3), [0.5, 0.5, 0.1, 0.5, 0.5, 0.5])
    assert [d.action for d in ds] == ["pending", "pending", "reset", "pending", "pending", "fire"]
    assert "1 of 3 evaluations" in ds[0].reason


def test_hysteresis_by_duration() -> None:
    ds = run(spec(for_seconds=25), [0.5, 0.5, 0.5, 0.5], step=10)
    assert [d.action for d in ds] == ["pending", "pending", "pending", "fire"]
    assert "held 20s of 25s" in ds[2].reason


def test_cooldown_holds_back_a_new_episode_then_answers_when_it_ends() -> None:
    s = spec(cooldown=100)
    ds = run(s, [0.5, 0.1, 0.5, 0.5, 0.5], step=30)  # t = 1000, 1030, 1060, 1090, 1120
    assert [d.action for d in ds] == ["fire", "resolve", "held", "held", "fire"]
    assert ds[2].state.state == "cooling" and "cooldown" in ds[2].reason and "next allowed in 40s" in ds[2].reason
    assert ds[3].changed is False  # still cooling: nothing new to record
    assert ds[4].state.episode == 2 and ds[4].state.last_fired_at == 1120


def test_max_per_day_holds_back() -> None:
    d = evaluate(spec(max_per_day=2), RuleState(), 0.9, 5.0, history=History(fired_last_day=2))
    assert d.action == "held" and "max_per_day" in d.reason and d.state.state == "cooling"


def test_dedupe_key_seen_in_the_last_day_answers_nothing_but_the_episode_is_handled() -> None:
    s = spec(dedupe="{input_sha256}")
    d = evaluate(s, RuleState(), 0.9, 5.0, key="abc", history=History(recent_keys=frozenset({"abc"})))
    assert d.action == "deduped" and d.state.state == "firing" and d.state.last_fired_at is None
    assert evaluate(s, d.state, 0.9, 6.0, key="abc").action == "still_firing"


def test_a_silence_holds_back_until_its_time() -> None:
    st = RuleState(silenced_until=1050.0, silence_reason="maintenance")
    ds = run(spec(), [0.5, 0.5, 0.5, 0.5], st=st, step=20)  # 1000, 1020, 1040, 1060
    assert [d.action for d in ds] == ["held", "held", "held", "fire"]
    assert "maintenance" in ds[0].reason
    assert ds[0].state.shown(1000.0) == "silenced" and ds[3].state.shown(1060.0) == "firing"


def test_no_signal_changes_nothing() -> None:
    d = evaluate(spec(), RuleState(state="pending", consecutive=1, holding_since=1.0), None, 5.0)
    assert d.action == "none" and d.state.state == "pending" and d.state.consecutive == 1


def test_operators_and_freshness() -> None:
    assert holds(spec(op=">="), 0.3) and not holds(spec(op=">"), 0.3)
    assert holds(spec(op="<", threshold=0.5), 0.4) and holds(spec(op="<=", threshold=0.5), 0.5)
    fresh = spec(signal="freshness", threshold=None, max_age=60.0, task=None)
    assert holds(fresh, 61) and not holds(fresh, 60)


def test_state_round_trips_from_a_row() -> None:
    st = RuleState(state="firing", consecutive=2, holding_since=1.0, episode=3, responded=True, last_value=0.5,
                   last_evaluated_at=2.0, last_fired_at=2.0, silenced_until=None, silence_reason=None)
    row = {k: getattr(st, k) for k in st.__dataclass_fields__}
    assert RuleState.from_row(row) == st
    assert replace(st, state="ok").shown(0) == "ok"


def test_a_new_subject_starts_a_new_episode_on_its_first_value() -> None:
    """A model_metric rule fired for champion 12 (and rolled back); the champion moved on to 15, bad too: its
    observations were "still firing: episode 2 was answered" and nothing guarded the new champion. An episode is
    about the subject it began with: a value of a new one (the alias moved since it held) starts afresh."""
    s = spec(signal="model_metric", op=">", threshold=60.0)
    fired = evaluate(s, RuleState(), 72.0, 1000.0).state
    assert fired.state == "firing" and fired.episode == 1
    # No value of the new version yet: the episode stands (a block it holds stays).
    assert evaluate(s, fired, None, 1010.0, subject_since=1005.0).action == "none"
    again = evaluate(s, fired, 80.0, 1020.0, subject_since=1005.0, subject="m@champion (now version 15)")
    assert (again.action, again.state.episode, again.state.holding_since) == ("fire", 2, 1020.0)
    # The same version, still bad: still firing, as before.
    assert evaluate(s, again.state, 81.0, 1030.0, subject_since=1005.0).action == "still_firing"
    good = evaluate(s, fired, 50.0, 1020.0, subject_since=1005.0, subject="m@champion (now version 15)")
    assert (good.action, good.state.state) == ("resolve", "ok")
    assert good.reason == "m@champion (now version 15): the condition does not hold (it held for the one before)"


def test_a_dry_runs_episode_is_said_decided_never_answered() -> None:
    """A dry run's later evaluations said "episode 1 was answered 52s ago": nothing had been done."""
    ds = run(spec(dry_run=True), [0.5, 0.6])
    assert [d.action for d in ds] == ["fire", "still_firing"]
    assert "episode 1 was decided in a dry run (nothing was done)" in ds[1].reason
    assert "answered" not in ds[1].reason
    assert "episode 1 was answered" in run(spec(), [0.5, 0.6])[1].reason
    # dry_run switched off during the episode: the episode's own firing decides how it is said.
    fired = run(spec(dry_run=True), [0.5])[0].state
    later = evaluate(spec(), fired, 0.6, fired.last_fired_at + 60, history=History(episode_dry_run=True))
    assert later.action == "still_firing" and "was decided in a dry run (nothing was done) 1m" in later.reason, later


def test_the_listing_says_a_failed_response_and_why() -> None:
    """A rule's rollback that failed (no earlier version passed its gates) showed as "fire 19:29:27" alone."""
    import json

    from edgeorch.cli.commands.monitors import _firing, _state_text

    failed = {"outcome": "fire", "fired_at": 0.0, "state": "failed",
              "responses": json.dumps([{"action": "rollback", "error": "no earlier version that passed its gates\n"
                                                                         "  hint: name one: --to VERSION"}])}
    text = _firing(failed)
    assert text.endswith("its response failed: no earlier version that passed its gates")
    assert "failed" not in _firing({**failed, "state": "done"})
    assert _state_text({"state": "cooling", "cooldown_until": 3600.0, "silence_reason": None, "cooldown": 3600.0}) \
        .startswith("cooling (cooldown until ")
    assert _state_text({"state": "cooling", "cooldown_until": None, "silence_reason": None, "cooldown": 3600.0}) == \
        "cooling (held no more: answered at its next evaluation)"


def test_the_listing_says_each_kind_of_failed_response_and_what_holds_a_rule() -> None:
    """A refused trigger showed as done; a notify that exited 3 said "see `edgeorch events --kind rule`" (a live
    stream); a rule held by max_per_day was shown "held no more"."""
    import json

    from edgeorch.cli.commands.monitors import _firing, _state_text

    def failed(*responses):
        return _firing({"outcome": "fire", "fired_at": 0.0, "state": "failed", "responses": json.dumps(list(responses))})

    assert failed({"action": "trigger", "refused": "no pipeline named 'nopipe'"}).endswith(
        "its response failed: trigger refused: no pipeline named 'nopipe'")
    assert failed({"action": "notify", "exit_code": 3, "output": "x\nboom\n"}).endswith(
        "its response failed: notify exited with code 3: boom")
    held = _state_text({"state": "cooling", "cooldown_until": None, "silence_reason": None, "cooldown": 0.0,
                        "max_per_day": 3, "max_per_day_until": 7200.0})
    assert held.startswith("cooling (max_per_day 3 reached until ") and "held no more" not in held


def test_a_firings_value_is_written_as_the_rules_lines_write_it() -> None:
    """`why` wrote a firing's value whole (34.838603258132935), beside the rule's own lines' 34.84."""
    from edgeorch.monitor.views import value_text

    assert (value_text(34.838603258132935), value_text(52.0), value_text(7), value_text(None)) == (
        "34.84", "52", "7", "none")
