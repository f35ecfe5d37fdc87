"""The definition hash (the cache key's task part) never changes when its computation is made cheaper:
the same value as hashing ``dataclasses.asdict`` of the spec, for the example pipelines and for tasks
with nested options, TOML dates, inputs and a container (issue 11 took the deep copy out)."""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime, timezone
from dataclasses import asdict
from pathlib import Path

import pytest

from edgeorch.model import TaskSpec
from edgeorch.pipelines import load_pipeline_file
from edgeorch.pipelines.parse import DEFINITION_FIELDS, definition_hash

EXAMPLES = sorted((Path(__file__).resolve().parents[3] / "examples" / "pipelines").glob("*.toml"))


def _asdict_hash(spec: TaskSpec) -> str:
    """The rule as it was written before: a deep copy of the whole spec, then the same keys."""
    from edgeorch.containers.spec import definition_part

    d = asdict(spec)
    keep = {k: d[k] for k in DEFINITION_FIELDS}
    if spec.inputs:
        keep["inputs"] = d["inputs"]
    if spec.container is not None:
        keep["container"] = definition_part(spec.container)
    return hashlib.sha256(json.dumps(keep, sort_keys=True, default=str).encode()).hexdigest()


@pytest.mark.parametrize("file", EXAMPLES, ids=lambda p: p.name)
def test_the_examples_hash_as_before(file: Path) -> None:
    pipeline, errors = load_pipeline_file(file)
    assert errors == [] and pipeline is not None
    for spec in pipeline.tasks.values():
        assert spec.definition_hash == _asdict_hash(spec), spec.name


def test_nested_options_dates_inputs_and_a_container_hash_as_before(tmp_path: Path) -> None:
    (tmp_path / "p.toml").write_text(
        '[tasks.a]\ncommand = ["true"]\noutputs = ["x"]\n'
        '[tasks.b]\nkind = "profile"\nneeds = ["a"]\ninputs = ["data/*.csv"]\n'
        'options = { input = "x.csv", threshold = 0.25 }\n'
        '[tasks.w]\ncommand = ["true"]\nworkdir = "w"\n[tasks.c]\ncommand = "echo {x}"\nshell = true\nenv = { A = "1" }\n'
        'container = { image = "busybox:1.36" }\n[params]\nx = "1"\n')
    pipeline, errors = load_pipeline_file(tmp_path / "p.toml")
    assert errors == [] and pipeline is not None
    for spec in pipeline.tasks.values():
        assert definition_hash(spec) == _asdict_hash(spec) == spec.definition_hash, spec.name


def test_options_of_any_depth_and_toml_dates_hash_as_before() -> None:
    spec = TaskSpec(name="d", kind="profile", needs=("a", "b"), outputs=("o",), inputs=("in/*.csv",),
                    options={"nested": {"when": datetime(2026, 12, 3, 6, tzinfo=timezone.utc), "day": date(2026, 12, 3),
                                        "n": [1.5, {"x": 1, "y": None}], "t": ("a", True)}})
    assert definition_hash(spec) == _asdict_hash(spec)
