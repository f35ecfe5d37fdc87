"""Clocks the tests inject where the code takes ``clock: Callable[[], float]`` (one place: eleven copies before)."""

from __future__ import annotations


class SetClock:
    """A clock a test sets: ``clock.now = ...``; each call returns it unchanged."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class TickingClock:
    """A clock one second further at each call (records written one after another get distinct, ordered times)."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.t = start

    def __call__(self) -> float:
        self.t += 1.0
        return self.t
