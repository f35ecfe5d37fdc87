"""A listing with nothing in it says so, and how to make something, instead of printing a bare header line;
``--json`` and ``-q`` are unchanged (an empty list, no lines)."""

from __future__ import annotations

import json

import pytest


@pytest.mark.parametrize(("args", "said"), [
    (("runs",), "no runs yet (`edgeorch run PIPELINE` starts one)"),
    (("runs", "--state", "failed"), "no runs match"),  # a pipeline nothing knows is not found (test_cli.py)
    (("datasets",), "no datasets yet (`edgeorch datasets add NAME PATH` records one)"),
    (("models",), "no models yet (a task with a `model` key registers one: docs/models.md)"),
    (("baseline", "list"), "no baselines yet (`edgeorch baseline set NAME FILE` records one)"),
    (("audit",), "no audit records yet"),
    (("audit", "--actor", "alice"), "no audit records match"),
])
def test_an_empty_listing_says_so(workspace, args, said) -> None:
    out = workspace.invoke(*args)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == said


def test_an_empty_listing_for_scripts_is_empty(workspace) -> None:
    assert json.loads(workspace.invoke("runs", "--json").stdout) == []
    assert workspace.invoke("runs", "-q").stdout == ""
    assert json.loads(workspace.invoke("models", "--json").stdout) == {"models": []}
