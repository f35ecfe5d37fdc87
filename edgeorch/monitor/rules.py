"""Pure: one evaluation of a rule -> its next state and what to do (Alertmanager's discipline).

No I/O, no clock: the caller passes the observation's time. States (stored):

- ``ok``: the condition does not hold (or there is no signal yet);
- ``pending``: it holds, but not yet for ``for_evaluations`` consecutive
  evaluations and ``for`` seconds (hysteresis);
- ``firing``: it held long enough and this episode was answered (responded,
  or a duplicate of a recent firing: ``dedupe``); it stays firing, without
  responding again, until the condition stops holding (resolve -> ``ok``);
- ``cooling``: it held long enough but the response is held back: a silence,
  the cooldown since the last response, or ``max_per_day``; re-checked at each
  evaluation, and answered as soon as nothing holds it back while the
  condition still holds.

``silenced`` is shown (``edgeorch monitors``) when a silence is in force,
whatever the stored state. An episode is numbered when it first becomes ready to
fire; a rule answers at most once per episode.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ..records import frozen
from ..textui import format_duration, format_timestamp
from .spec import RuleSpec

STATES = ("ok", "pending", "firing", "cooling")
SHOWN_STATES = ("ok", "pending", "firing", "cooling", "silenced")
DAY = 86400.0


@frozen
class RuleState:
    """What is stored of a rule between evaluations (table ``rule_state``)."""

    state: str = "ok"
    consecutive: int = 0
    holding_since: float | None = None
    episode: int = 0
    responded: bool = False
    last_value: float | None = None
    last_evaluated_at: float | None = None
    last_fired_at: float | None = None
    silenced_until: float | None = None
    silence_reason: str | None = None

    def shown(self, now: float) -> str:
        """The state ``edgeorch monitors`` shows: ``silenced`` while a silence is in force."""
        return "silenced" if self.silenced(now) else self.state

    def silenced(self, now: float) -> bool:
        return self.silenced_until is not None and now < self.silenced_until

    @classmethod
    def from_row(cls, row: dict[str, Any] | None) -> RuleState:
        if row is None:
            return cls()
        return cls(state=row["state"], consecutive=row["consecutive"], holding_since=row["holding_since"],
                   episode=row["episode"], responded=bool(row["responded"]), last_value=row["last_value"],
                   last_evaluated_at=row["last_evaluated_at"], last_fired_at=row["last_fired_at"],
                   silenced_until=row["silenced_until"], silence_reason=row["silence_reason"])


@frozen
class History:
    """What the evaluator needs of the rule's past firings: responses in the last day and their dedupe keys."""

    fired_last_day: int = 0
    recent_keys: frozenset[str] = frozenset()
    episode_dry_run: bool | None = None
    """Whether the episode's firing was decided in a dry run (None: not known; the rule's ``dry_run`` now is
    used): a rule whose ``dry_run`` was switched off during an episode said that episode "was answered"."""
    episode_failed: str | None = None
    """Why the episode's firing failed (a refused trigger, a notify's exit), None when it did not: "was answered"
    read as done while the retrain it asked for was refused (a paused pipeline)."""


@frozen
class Decision:
    """The outcome of one evaluation.

    ``action``: ``none`` (nothing to record), ``pending``, ``fire`` (respond now), ``held`` (ready but held back:
    ``reason`` says by what), ``deduped``, ``resolve`` (firing/cooling -> ok), ``reset`` (pending -> ok),
    ``still_firing`` (the episode was answered already). ``changed``: the stored state differs in more than the
    last value (what the service records as an event).
    """

    state: RuleState
    action: str
    reason: str
    changed: bool


def holds(spec: RuleSpec, value: float) -> bool:
    """Whether the condition holds for ``value`` (freshness: the age in seconds exceeds ``max_age``)."""
    if spec.signal == "freshness":
        assert spec.max_age is not None
        return value > spec.max_age
    assert spec.threshold is not None
    t = spec.threshold
    return {">": value > t, ">=": value >= t, "<": value < t, "<=": value <= t}[spec.op]


def evaluate(spec: RuleSpec, old: RuleState, value: float | None, at: float, *, key: str | None = None,
             history: History = History(), subject_since: float | None = None,
             subject: str = "the subject") -> Decision:
    """One evaluation at time ``at`` (seconds) of ``value`` (None: no signal yet, nothing changes).

    ``key``: this observation's dedupe key (the rule's ``dedupe`` template filled), None without one.
    ``subject_since``: when what the value measures began (a ``model_metric`` rule: the alias's last move,
    ``subject`` naming it): a condition that held since before it held for something else, so its episode is
    over (a rollback to a new champion that is bad too was "still firing" and never answered).
    """
    if (value is not None and subject_since is not None and old.state != "ok" and old.holding_since is not None
            and old.holding_since < subject_since):
        # The first value of the new subject (none yet: the episode stands, its blocks too) starts afresh.
        over = replace(old, state="ok", consecutive=0, holding_since=None, responded=False)
        if not holds(spec, value):
            return Decision(replace(over, last_value=value, last_evaluated_at=at),
                            "resolve" if old.state != "pending" else "reset",
                            f"{subject}: the condition does not hold (it held for the one before)", True)
        old = over
    if value is None:
        return Decision(replace(old, last_evaluated_at=at), "none", "no signal yet", False)
    base = replace(old, last_value=value, last_evaluated_at=at)
    if not holds(spec, value):
        if old.state == "ok":
            return Decision(base, "none", "the condition does not hold", False)
        new = replace(base, state="ok", consecutive=0, holding_since=None, responded=False)
        action = "reset" if old.state == "pending" else "resolve"
        return Decision(new, action, "the condition no longer holds", True)

    consecutive = old.consecutive + 1
    since = old.holding_since if old.holding_since is not None else at
    base = replace(base, consecutive=consecutive, holding_since=since)
    if old.state == "firing" and old.responded:
        return Decision(base, "still_firing", _still_firing(spec, old, at, history), False)
    held_for = at - since
    if consecutive < spec.for_evaluations or held_for < spec.for_seconds:
        new = replace(base, state="pending")
        need = []
        if consecutive < spec.for_evaluations:
            need.append(f"{consecutive} of {spec.for_evaluations} evaluations")
        if held_for < spec.for_seconds:
            need.append(f"held {held_for:g}s of {spec.for_seconds:g}s")
        return Decision(new, "pending", "holds, pending: " + ", ".join(need), old.state != "pending")

    episode = old.episode if old.state == "cooling" else old.episode + 1
    base = replace(base, episode=episode)
    why = _held_back(spec, old, at, history)
    if why is not None:
        new = replace(base, state="cooling", responded=False)
        return Decision(new, "held", why, old.state != "cooling")
    if key is not None and key in history.recent_keys:
        new = replace(base, state="firing", responded=True)
        return Decision(new, "deduped", f"dedupe key {key!r} already answered within a day", True)
    new = replace(base, state="firing", responded=True, last_fired_at=at)
    return Decision(new, "fire", f"condition held for {consecutive} evaluation(s), {format_duration(held_for)}", True)


def _still_firing(spec: RuleSpec, old: RuleState, at: float, history: History) -> str:
    """Why a holding condition does nothing more: its episode was answered; what a new response needs."""
    ago = f" {format_duration(at - old.last_fired_at)} ago" if old.last_fired_at is not None else ""
    # A dry run's episode was decided, never answered (its responses were recorded, not run): said as such.
    dry = spec.dry_run if history.episode_dry_run is None else history.episode_dry_run
    how = ("was decided in a dry run (nothing was done)" if dry
           else f"was answered, but its response failed ({history.episode_failed})" if history.episode_failed
           else "was answered")
    text = f"still firing: episode {old.episode} {how}{ago}; nothing more is done until the condition clears"
    if spec.cooldown and old.last_fired_at is not None:
        left = spec.cooldown - (at - old.last_fired_at)
        if left > 0:
            text += (f", and the cooldown of {format_duration(spec.cooldown)} holds a new response for "
                     f"{format_duration(left)} more")
    return text


def _held_back(spec: RuleSpec, old: RuleState, at: float, history: History) -> str | None:
    """Why a ready firing may not answer now (silence, cooldown, daily maximum), or None."""
    if old.silenced(at):
        return (f"silenced until {format_timestamp(old.silenced_until)}"
                + (f" ({old.silence_reason})" if old.silence_reason else ""))
    holds = []  # each that holds it (the cooldown alone was said while max_per_day held it too)
    if spec.cooldown and old.last_fired_at is not None and at - old.last_fired_at < spec.cooldown:
        holds.append(f"cooldown: last response {format_duration(at - old.last_fired_at)} ago, the cooldown is "
                     f"{format_duration(spec.cooldown)} (next allowed in "
                     f"{format_duration(spec.cooldown - (at - old.last_fired_at))})")
    if spec.max_per_day is not None and history.fired_last_day >= spec.max_per_day:
        holds.append(f"max_per_day: {history.fired_last_day} response(s) in the last day (at most "
                     f"{spec.max_per_day})")
    return "; and ".join(holds) or None
