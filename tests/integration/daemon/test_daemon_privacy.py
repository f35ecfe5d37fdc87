"""The privacy ledger through a real daemon: profile --epsilon spends via privacy.spend; privacy.show reads it."""

from __future__ import annotations

import subprocess

import pytest

from edgeorch.errors import ConflictError

pytest.importorskip("opendp", reason="the optional dp extra (OpenDP) is not installed")


def test_cli_releases_spend_through_the_daemon_and_the_op_refuses_past_the_budget(workspace, daemon):
    daemon.start()
    (workspace.root / "people.csv").write_text("age\n" + "".join(f"{20 + i % 50}\n" for i in range(300)))
    cmd = [*workspace.cli(), "profile", "people.csv", "--epsilon", "0.4", "--dataset", "people", "--budget", "1",
           "--bounds", "age=0:100", "--json"]
    proc = subprocess.run(cmd, cwd=workspace.root, env=workspace.cli_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    shown = daemon.call("privacy.show", {"dataset": "people"})
    assert shown["ledger"]["spent_epsilon"] == pytest.approx(0.4) and shown["spends"][0]["actor"].endswith(")")
    with pytest.raises(ConflictError, match="exceeded"):
        daemon.call("privacy.spend", {"dataset": "people", "epsilon": 0.7, "release": "too much"})
    assert daemon.call("privacy.show", {})["ledgers"][0]["spends"] == 1
    from edgeorch.errors import UsageError

    for name in ("", "  "):  # found by a tester: a ledger named "" was charged
        with pytest.raises(UsageError, match="is empty"):
            daemon.call("privacy.spend", {"dataset": name, "epsilon": 0.1, "budget": 1, "release": "x"})
    assert len(daemon.call("privacy.show", {})["ledgers"]) == 1



def test_restating_the_budget_through_the_daemon_keeps_its_delta_and_says_what_it_was(workspace, daemon):
    """`privacy.spend` with `budget` alone set the delta budget to 0 (a restated epsilon refused a release whose
    delta fitted, or dropped the delta budget in silence); a changed budget is said (`previous_budget`)."""
    daemon.start()
    first = daemon.call("privacy.spend", {"dataset": "d", "epsilon": 0.1, "delta": 1e-6, "budget": 1,
                                          "budget_delta": 1e-5, "release": "one"})["ledger"]
    assert (first["epsilon"], first["delta"], first["previous_budget"]) == (1, 1e-5, None), first
    again = daemon.call("privacy.spend", {"dataset": "d", "epsilon": 0.1, "delta": 1e-6, "budget": 1,
                                          "release": "two"})["ledger"]
    assert (again["delta"], again["spent_delta"], again["previous_budget"]) == (1e-5, 2e-6, None), again
    raised = daemon.call("privacy.spend", {"dataset": "d", "epsilon": 0.1, "budget": 2, "release": "three"})["ledger"]
    assert raised["previous_budget"] == {"epsilon": 1, "delta": 1e-5} and raised["delta"] == 1e-5, raised

def test_edgeorch_privacy_shows_the_ledger_with_and_without_a_daemon(workspace, daemon):
    """Noticed at earlier stops: the ledger had an op but no command; a person asking "how much of the budget is
    left?" had to write JSON to the socket or open the state file. The same answer with and without a daemon."""
    import json

    (workspace.root / "people.csv").write_text("age\n" + "".join(f"{20 + i % 50}\n" for i in range(300)))
    for eps in ("0.5", "0.25"):
        proc = workspace.invoke("profile", str(workspace.root / "people.csv"), "--epsilon", eps, "--dataset", "people",
                                "--budget", "2", "--bounds", "age=0:100", "-q")
        assert proc.returncode == 0, proc.stderr

    def shown(*args: str) -> subprocess.CompletedProcess[str]:
        out = workspace.invoke("privacy", *args)
        assert "Traceback" not in out.stderr, out.stderr
        return out

    offline = shown()
    assert offline.returncode == 0, offline.stderr
    (line,) = [x for x in offline.stdout.splitlines() if x.startswith("people")]
    assert line.split()[:7] == ["people", "2", "0.75", "1.25", "0", "0", "2"], line
    one = shown("people", "-n", "1")
    assert "people: epsilon 0.75 of 2 spent, 1.25 left" in one.stdout
    assert "(the newest 1 of 2; --limit shows more)" in one.stdout and "0.25" in one.stdout
    offline_doc = json.loads(shown("people", "--json").stdout)
    daemon.start()
    online_doc = json.loads(shown("people", "--json").stdout)
    assert online_doc == offline_doc and offline_doc["ledger"]["remaining_epsilon"] == pytest.approx(1.25)
    assert [s["epsilon"] for s in online_doc["spends"]] == [0.25, 0.5]  # newest first
    missing = shown("nobody")
    assert missing.returncode == 3 and "expected one of people" in missing.stderr
    bad = shown("people", "--limit", "0")
    assert bad.returncode == 2 and "--limit" in bad.stderr
    assert shown("-q").stdout.split() == ["people"]
