"""dp_profile tasks inside pipelines: each release charged to its dataset's budget; the one that exceeds is refused."""

from __future__ import annotations

import pytest

from edgeorch.model import RunState

pytest.importorskip("opendp", reason="the optional dp extra (OpenDP) is not installed")


def test_releases_spend_the_budget_and_the_one_past_it_is_refused_and_withdrawn(workspace, harness):
    (workspace.pipelines / "people.csv").write_text(
        "age,city\n" + "".join(f"{20 + i % 50},{'ab'[i % 2]}\n" for i in range(300)))
    workspace.pipeline("private", """
        [tasks.release]
        kind = "dp_profile"
        retries = 2
        [tasks.release.options]
        input = "people.csv"
        dataset = "people"
        budget = 1.0
        epsilon = 0.6
        bounds = { age = [0, 100] }
        categories = { city = ["a", "b"] }
        report = "{output_dir}/dp.html"
    """)
    first, state = harness.run("private")
    assert state == RunState.SUCCEEDED
    second, state = harness.run("private")
    assert state == RunState.FAILED
    store = harness.store()
    ledger = store.privacy.ledger("people")
    assert ledger["epsilon"] == 1.0 and ledger["spends"] == 1 and ledger["spent_epsilon"] == pytest.approx(0.6)
    assert {r["column_name"] for r in store.outputs.results_of(first, "release")} == {"age", "city"}
    (task,) = [t for t in store.runs.tasks_of(second) if t["name"] == "release"]
    assert "privacy budget of dataset 'people' exceeded" in task["reason"]
    assert task["attempts"] == 1  # refused, not retried: the same release would be refused again
    assert store.outputs.results_of(second, "release") == []  # the refused release is never recorded...
    assert list(workspace.state.glob(f"runs/{first}/**/dp.html"))
    assert not list(workspace.state.glob(f"runs/{second}/**/dp.html"))  # ...and its report is withdrawn
    actions = [(r["action"], r["subject"]) for r in store.audit.records()]
    assert ("privacy_budget_set", "privacy:people") in actions and ("privacy_spent", "privacy:people") in actions
    store.close()
