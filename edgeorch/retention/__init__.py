"""Retention: removing old runs (their rows and folders), never one that something still needs.

- :mod:`.holds`: the registry of reasons a run must stay (active, cache source, keep_last,
  unsettled input, newest id; later features register theirs);
- :mod:`.plan`: pure: candidates and holds in, what goes and what stays (with reasons) out;
- :mod:`.folders`: run folders measured and removed without following a link; strays a crash left;
- :mod:`.gc`: one gc: plan, commit (one transaction), then the folders; its report;
- :mod:`.service`: the daemon's side: one gc at a time, the periodic ``[retention]`` sweep.

The rows are removed by the store (``store.retention``, ``edgeorch/store/retention.py``).
docs/state.md "Retention" describes the rules; docs/operations.md the day-to-day use.
"""

from __future__ import annotations

from .gc import GcRequest, collect, finish, parse_older_than, prepare, request_for
from .holds import Hold, HoldQuery, register_hold, unregister_hold
from .plan import Candidate, Plan, decide

__all__ = ["Candidate", "GcRequest", "Hold", "HoldQuery", "Plan", "collect", "decide", "finish",
           "parse_older_than", "prepare", "register_hold", "request_for", "unregister_hold"]
