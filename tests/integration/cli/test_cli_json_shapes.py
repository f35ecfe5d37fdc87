"""One JSON shape per command, daemon or not (issue 19, point 8; docs/cli.md "JSON output").

Each command that answers both with and without a daemon runs twice through the CLI's ``main`` (in-process,
``Workspace.invoke``): once on the state file (no daemon), once through a real daemon process on the same
state; the two documents must have the same keys at every depth. Values differ (times, ids, a daemon's live readings) and may be null where
only a daemon knows them; the keys may not.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

PIPELINE = """\
description = "two tasks"
[params]
word = "hi"
[tasks.a]
command = ["sh", "-c", "echo {word} > {output_dir}/a.txt"]
outputs = ["a.txt"]
[tasks.b]
command = ["sh", "-c", "exit 3"]
needs = ["a"]
"""

COMMANDS: dict[str, list[str]] = {
    "run": ["run", "p", "--json"],
    "retry": ["retry", "1", "--json"],
    "runs": ["runs", "--json"],
    "show": ["show", "1", "--json"],
    "pipelines": ["pipelines", "--json"],
    "pipelines show": ["pipelines", "show", "p", "--json"],
    "resources": ["resources", "--json"],
    "datasets add": ["datasets", "add", "pipes", "{pipelines}", "--json"],
    "datasets list": ["datasets", "list", "--json"],
    "datasets show": ["datasets", "show", "pipes", "--json"],
    "datasets show version": ["datasets", "show", "pipes@1", "--json"],
    "datasets prune": ["datasets", "prune", "--keep", "1", "--json"],
}
"""Every command with --json that works with and without a daemon (daemon-only and offline-only ones are not here)."""


def shape(doc: Any) -> Any:
    """The keys of ``doc`` at every depth: dicts by key, lists by the union of their items' shapes; a value is
    ``"*"``, null is ``"null"``.

    A list is compared by what its items look like, not by how many there are. The keys of ``params``
    and ``tasks`` maps are data (names), kept, since both sides hold the same pipeline.
    """
    if doc is None:
        return "null"
    if isinstance(doc, dict):
        return {k: shape(v) for k, v in doc.items()}
    if isinstance(doc, list):
        merged: dict[str, Any] = {}
        leaf = False
        for item in doc:
            s = shape(item)
            if isinstance(s, dict):
                merged = _merge(merged, s)
            else:
                leaf = True
        return [merged] if merged else (["*"] if leaf else [])
    return "*"


def _merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(out.get(k), dict) and isinstance(v, dict) else out.get(k, v)
    return out


def differences(a: Any, b: Any, where: str = "") -> list[str]:
    """Where two shapes disagree, as readable paths (``tasks[].attempts: only offline``)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = [f"{where}.{k}: only offline" for k in a.keys() - b.keys()]
        out += [f"{where}.{k}: only with the daemon" for k in b.keys() - a.keys()]
        for k in a.keys() & b.keys():
            out += differences(a[k], b[k], f"{where}.{k}")
        return out
    if isinstance(a, list) and isinstance(b, list):
        if a and b:
            return differences(a[0], b[0], where + "[]")
        return []  # an empty list on one side: nothing to compare its items with
    if "null" in (a, b):  # null where a side does not know the value (a daemon's live state offline)
        return []
    if (a == "*") != (b == "*") and a not in ([], {}) and b not in ([], {}):
        return [f"{where}: {_kind(a)} offline, {_kind(b)} with the daemon"]
    return []


def _kind(s: Any) -> str:
    return "an object" if isinstance(s, dict) else "a list" if isinstance(s, list) else "a value"


def cli(ws, *args) -> subprocess.CompletedProcess[str]:
    return ws.invoke(*args)


def documents(ws) -> dict[str, Any]:
    out = {}
    for name, argv in COMMANDS.items():
        proc = cli(ws, *(a.replace("{pipelines}", str(ws.pipelines)) for a in argv))
        assert proc.returncode in (0, 1), (name, proc.returncode, proc.stderr)  # run/retry: the run fails (b exits 3)
        out[name] = json.loads(proc.stdout)
    return out


def test_every_command_has_the_same_keys_with_and_without_a_daemon(workspace, daemon):
    workspace.pipeline("p", PIPELINE)
    offline = documents(workspace)
    daemon.start()
    online = documents(workspace)
    assert offline["pipelines"]["daemon"] is False and online["pipelines"]["daemon"] is True
    problems = {name: differences(shape(offline[name]), shape(online[name])) for name in COMMANDS}
    assert {k: v for k, v in problems.items() if v} == {}


def test_the_shape_comparison_sees_a_missing_key_and_ignores_nulls():
    assert differences(shape({"a": 1, "b": {"c": None}}), shape({"a": None, "b": {"c": [1]}})) == []
    assert differences(shape({"a": [{"x": 1}]}), shape({"a": [{"x": 1, "y": 2}]})) == [".a[].y: only with the daemon"]
    assert differences(shape({"a": 1}), shape({})) == [".a: only offline"]
    assert differences(shape({"a": 1}), shape({"a": {"b": 1}})) == [".a: a value offline, an object with the daemon"]
    assert differences(shape({"a": [1]}), shape({"a": 1})) == [".a: a list offline, a value with the daemon"]
