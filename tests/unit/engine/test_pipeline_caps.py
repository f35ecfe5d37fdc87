"""The active runs' ``max_parallel`` per pipeline, kept as runs come and go (PipelineCaps): the same map the
engine once recomputed over every active run at each dispatch (O(active runs) per dispatch in a burst)."""

from __future__ import annotations

import random
from types import SimpleNamespace

from edgeorch.engine.engine import PipelineCaps


def _recomputed(runs: dict[int, SimpleNamespace]) -> dict[str, int]:
    """The rule as it was written over every active run, in activation order: the last run with a cap wins."""
    return {p.name: p.max_parallel for p in runs.values() if p.max_parallel}


def test_kept_caps_equal_the_caps_recomputed_over_the_active_runs():
    rng = random.Random(11)
    caps, runs = PipelineCaps(), {}
    for step in range(5000):
        if runs and rng.random() < 0.45:
            run_id = rng.choice(list(runs))
            caps.remove(run_id, runs.pop(run_id))
        else:  # a new run, of a pipeline whose file may have been edited to another cap (or none)
            pipeline = SimpleNamespace(name=rng.choice("abc"), max_parallel=rng.choice([None, 0, 1, 2, 3]))
            runs[step] = pipeline
            caps.add(step, pipeline)
        assert caps.current() == _recomputed(runs), step
    for run_id in list(runs):
        caps.remove(run_id, runs.pop(run_id))
    assert caps.current() == {} and caps._by_name == {}
