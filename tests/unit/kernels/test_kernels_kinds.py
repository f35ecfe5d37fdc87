"""The task-kind registry: each kind declared once, every consumer looks it up there (issue 10, item 5)."""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgeorch.engine import callrunner
from edgeorch.errors import PipelineError
from edgeorch.kernels import kinds
from edgeorch.kernels.kinds import Kind, check_options, get_kind, kind_names, register_kind, run_task
from edgeorch.pipelines import validate_path
from edgeorch.tomlcheck import TableReader

REPO = Path(__file__).parents[3]


def _documented_kinds() -> dict[str, set[str]]:
    """docs/kernels.md's "Pipeline tasks" table: kind -> the options its row names."""
    doc = (REPO / "docs" / "kernels.md").read_text()
    section = doc.split("## Pipeline tasks", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([a-z_]+)` \| (.*) \|$", section, flags=re.M)
    return {name: set(re.findall(r"`([a-z_]+)`", text)) for name, text in rows}


def test_registry_holds_exactly_the_documented_kinds() -> None:
    assert list(kind_names()) == list(_documented_kinds())


def test_each_kind_declares_the_options_its_documentation_names() -> None:
    for name, documented in _documented_kinds().items():
        declared = set(get_kind(name).options) - set(kinds.COMMON_OPTIONS)
        assert declared <= documented, (name, declared - documented)


def _kind_lists(tree: ast.AST) -> Iterator[tuple[int, set[str]]]:
    """Literal tuples, lists, sets and dicts (their keys) naming three or more kinds.

    Three, not two: ``profile`` and ``validate`` are also the names of two
    public functions, which the package's export table lists.
    """
    names = set(kind_names())
    for node in ast.walk(tree):
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            elts: list[Any] = list(node.elts)
        elif isinstance(node, ast.Dict):
            elts = [k for k in node.keys if k is not None]
        else:
            continue
        found = {e.value for e in elts if isinstance(e, ast.Constant) and e.value in names}
        if len(found) >= 3:
            yield node.lineno, found


def test_no_module_but_the_registry_lists_the_kinds() -> None:
    # Before the registry, options.KINDS, options._CHECKS and the runner table in
    # tasks.run_task each listed the kinds: a new kind had to be added three times.
    found = []
    for path in sorted((REPO / "edgeorch").rglob("*.py")):
        if path == REPO / "edgeorch" / "kernels" / "kinds.py":
            continue
        for line, names in _kind_lists(ast.parse(path.read_text(), str(path))):
            found.append(f"{path.relative_to(REPO)}:{line}: {sorted(names)}")
    assert found == []


def test_a_kind_cannot_be_declared_twice() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_kind(get_kind("drift"))


def test_unknown_kind_lists_the_registered_kinds_with_did_you_mean() -> None:
    [err] = check_options("drfit", {}, file="p.toml", prefix="tasks.d.options", kind_field="tasks.d.kind")
    assert isinstance(err, PipelineError)
    assert err.field == "tasks.d.kind" and err.value == "drfit"
    assert err.expected == f"one of {', '.join(kind_names())}"
    assert err.hint == "did you mean 'drift'?"


def test_unknown_kind_is_refused_when_run() -> None:
    with pytest.raises(PipelineError, match="is not a built-in task kind"):
        run_task("profiel", {"input": "x.csv"})


def _check_echo(r: TableReader) -> None:
    r.str("message", required=True)
    r.choice("on_violation", ("fail", "warn"))


def _run_echo(options: dict[str, Any], progress: Any) -> dict[str, Any]:
    return {"verdict": "ok", "message": options["message"], "rows": [], "summary": {"n": float("nan")},
            "outputs": []}


@pytest.fixture
def echo_kind() -> Iterator[Kind]:
    """A kind declared by a test, in one place, removed afterwards."""
    kind = register_kind(Kind(name="echo", help="echo a message", options={"message": "text", "on_violation": "x"},
                              check=_check_echo, run=_run_echo))
    try:
        yield kind
    finally:
        del kinds._REGISTRY["echo"]


def test_a_kind_registered_once_is_accepted_by_pipeline_validation(echo_kind: Kind, tmp_path: Path) -> None:
    (tmp_path / "good.toml").write_text('[tasks.say]\nkind = "echo"\n[tasks.say.options]\nmessage = "hi {run_id}"\n')
    (tmp_path / "bad.toml").write_text('[tasks.say]\nkind = "echo"\n[tasks.say.options]\nmesage = "hi"\n')
    report = validate_path(tmp_path)
    assert set(report.pipelines) == {"good"}
    rendered = "\n".join(e.render() for e in report.errors)
    assert "tasks.say.options.mesage: unknown key" in rendered and "did you mean 'message'" in rendered


def test_a_kind_registered_once_is_runnable(echo_kind: Kind) -> None:
    doc = run_task("echo", {"message": "hi"})
    assert doc == {"verdict": "ok", "message": "hi", "rows": [], "summary": {"n": None}, "outputs": [],
                   "kind": "echo", "on_violation": "fail"}


def test_a_kind_registered_once_runs_in_the_task_runner(echo_kind: Kind, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    result = tmp_path / "result.json"
    monkeypatch.setenv("EDGEORCH_RESULT_FILE", str(result))
    assert callrunner.run_kind("echo", {"message": "hi"}) == callrunner.EXIT_OK
    assert json.loads(result.read_text())["message"] == "hi"
    assert callrunner.run_kind("echo", {}) == callrunner.EXIT_BAD_INPUT
