"""`edgeorch pipelines pause/resume --json` prints one set of keys, with a daemon and without one (docs/cli.md).

Found by a tester: with a daemon `pause` printed `{"name", "paused", "changed"}` and `resume` added `inputs_started`;
without one both added `inputs_waiting` and `"daemon": false`; `daemon` was missing with a daemon."""

from __future__ import annotations

import json

KEYS = {"name", "paused", "changed", "inputs_started", "inputs_waiting", "daemon"}


def _keys(workspace, verb: str) -> dict:
    out = workspace.invoke("pipelines", verb, "p", "--json")
    assert out.returncode == 0, out
    return json.loads(out.stdout)


def test_pause_and_resume_print_the_same_keys_with_and_without_a_daemon(workspace, daemon):
    workspace.pipeline("p", '[tasks.a]\ncommand = ["true"]\n')
    offline = [_keys(workspace, "pause"), _keys(workspace, "resume")]
    daemon.start()
    online = [_keys(workspace, "pause"), _keys(workspace, "resume"), _keys(workspace, "resume")]
    for doc in [*offline, *online]:
        assert set(doc) == KEYS, doc
    assert [d["daemon"] for d in offline + online] == [False, False, True, True, True]
    assert [d["changed"] for d in online] == [True, True, False]
