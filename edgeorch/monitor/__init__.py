"""Monitoring that acts (docs/monitoring.md): rules over signals, their state, and their responses.

``spec`` (pure: the ``[[on]]`` tables), ``rules`` (pure: one evaluation -> the next state and whether to
respond: hysteresis, resolve, cooldown, daily maximum, dedupe, silences), ``signals`` (a rule's signal read
from the store), ``responses`` (what a firing does, through the front door), ``service`` (the daemon's:
evaluations on run ends and timers, durable firings), ``views`` (the documents of ``edgeorch monitors`` and
``edgeorch why``).
"""
