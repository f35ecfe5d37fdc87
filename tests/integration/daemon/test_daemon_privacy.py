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
