"""`why`'s words for a cached task that ran: what differs from the last success."""

from __future__ import annotations

from edgeorch.monitor.views import _consumed_changes, _param_changes


def test_an_upstream_output_is_compared_by_its_task_and_name_not_its_run_folder():
    """Each run writes an upstream's output under its own folder: compared by path, every one read as new (and
    the old one as no longer read) though its content was the same."""
    before = [{"path": "/var/runs/305/outputs/ingest/raw.npz", "sha256": "a" * 64, "source_task": "ingest"},
              {"path": "/srv/data/houses.csv", "sha256": "b" * 64, "source_task": None}]
    same = [{"path": "/var/runs/306/outputs/ingest/raw.npz", "sha256": "a" * 64, "source_task": "ingest"},
            {"path": "/srv/data/houses.csv", "sha256": "b" * 64, "source_task": None}]
    assert _consumed_changes(before, same) == []
    other = [dict(same[0], sha256="c" * 64), same[1]]
    assert _consumed_changes(before, other) == ["ingest's raw.npz changed (sha256 aaaaaaaaaaaa -> cccccccccccc)"]


def test_params_that_differ_are_named_with_both_values():
    assert _param_changes({"epochs": 41, "lr": 0.1}, {"epochs": 42, "lr": 0.1}) == ["param epochs 41 -> 42"]
    assert _param_changes('{"a": "x"}', {"a": "x", "b": 1}) == ["param b null -> 1"]
