"""A task's ``inputs`` at parse time: what an entry may be, and what it changes in the definition hash."""

from __future__ import annotations

import hashlib
import json
import textwrap

import pytest

from edgeorch.pipelines import validate_path
from edgeorch.pipelines.inputs import glob_base, input_problem, is_glob


def _load(tmp_path, text: str):
    f = tmp_path / "p.toml"
    f.write_text(textwrap.dedent(text))
    return validate_path(f)


def test_inputs_are_kept_as_written_with_placeholders(tmp_path):
    report = _load(tmp_path, """
        [params]
        data = { type = "path", default = "data/train.csv" }
        [tasks.a]
        command = ["true"]
        inputs = ["{data}", "images/", "logs/**/*.json", "/etc/hostname"]
    """)
    assert report.ok, [e.render() for e in report.errors]
    assert report.pipelines["p"].tasks["a"].inputs == ("{data}", "images/", "logs/**/*.json", "/etc/hostname")


@pytest.mark.parametrize("entry,expected", [
    ('["dataset:sales@0"]', ["tasks.a.inputs[0]: has a bad version", "found 'dataset:sales@0'",
                           "expected dataset:NAME, dataset:NAME@VERSION (a version number) or dataset:NAME@latest"]),
    ('["dataset:no/such"]', ["tasks.a.inputs[0]: is not a valid dataset name", "NAME: 1 to 64 letters"]),
    ('["dataset:"]', ["tasks.a.inputs[0]: is not a valid dataset name"]),
    ('["model:churn@2"]', ["tasks.a.inputs[0]: model versions (model:NAME@VERSION) are not supported"]),
    ('["upstream:prep"]', ["tasks.a.inputs[0]: upstream outputs need no entry"]),
    ('["  "]', ["tasks.a.inputs[0]: is empty"]),
    ('["{nope}.csv"]', ["tasks.a.inputs[0]: unknown placeholder {nope}"]),
    ('"x.csv"', ["tasks.a.inputs: has the wrong type", "expected an array of strings"]),
])
def test_a_bad_input_entry_names_its_field_value_and_expectation(tmp_path, entry, expected):
    report = _load(tmp_path, f"""
        [tasks.a]
        command = ["true"]
        inputs = {entry}
    """)
    assert not report.ok
    rendered = " | ".join(e.render() for e in report.errors)
    for piece in expected:
        assert piece in rendered, rendered


def test_an_input_listed_twice_is_an_error(tmp_path):
    report = _load(tmp_path, '[tasks.a]\ncommand=["true"]\ninputs=["x.csv", "y.csv", "x.csv"]\n')
    assert [e.field for e in report.errors] == ["tasks.a.inputs[2]"]
    assert "lists an input twice" in report.errors[0].render()


def test_a_missing_input_file_is_not_a_parse_error(tmp_path):
    # Whether the file exists is known only when the task is about to run (the data may come later).
    assert _load(tmp_path, '[tasks.a]\ncommand=["true"]\ninputs=["no/such/file.csv"]\n').ok


def test_declaring_inputs_changes_the_definition_hash_and_none_keeps_the_old_one(tmp_path):
    plain = _load(tmp_path, '[tasks.a]\ncommand=["true"]\n').pipelines["p"].tasks["a"]
    with_inputs = _load(tmp_path, '[tasks.a]\ncommand=["true"]\ninputs=["x.csv"]\n').pipelines["p"].tasks["a"]
    empty = _load(tmp_path, '[tasks.a]\ncommand=["true"]\ninputs=[]\n').pipelines["p"].tasks["a"]
    assert with_inputs.definition_hash != plain.definition_hash
    assert empty.definition_hash == plain.definition_hash
    # The hash of a task without inputs is the one edgeorch computed before inputs existed (its cache stays valid).
    before = {"command": ["true"], "shell": False, "call": None, "kind": None, "options": {}, "env": {},
              "workdir": None, "outputs": [], "needs": []}
    assert plain.definition_hash == hashlib.sha256(json.dumps(before, sort_keys=True).encode()).hexdigest()


@pytest.mark.parametrize("pattern,base", [
    ("/data/2024-*/part-*.csv", "/data"), ("/data/*.csv", "/data"), ("/a/b/**/x.json", "/a/b"),
    ("/*.csv", "/"), ("*.csv", ""),
])
def test_a_globs_names_are_relative_to_its_leading_folder_without_wildcards(pattern, base):
    assert glob_base(pattern) == base


def test_what_counts_as_a_glob():
    assert is_glob("a/*.csv") and is_glob("a/b?.txt") and is_glob("a/[ab].txt")
    assert not is_glob("a/b.csv") and not is_glob("data:v2/x.csv")
    assert input_problem("data:v2/x.csv") is None  # only the reserved schemes are special


def test_a_data_version_is_an_input_and_a_pipeline_reads_one_version_of_each_dataset(tmp_path):
    """``dataset:NAME[@V]`` entries are inputs (put in {run_dir}/datasets/NAME); two versions of one dataset in a
    pipeline would share that folder in a run, and are refused naming the second entry."""
    report = _load(tmp_path, """
        [params]
        v = 2
        [tasks.a]
        command = ["true"]
        inputs = ["dataset:sales@2", "dataset:calendar", "dataset:prices@{v}"]
        [tasks.b]
        command = ["true"]
        inputs = ["dataset:calendar@latest", "dataset:sales@2"]
    """)
    assert report.ok, [e.render() for e in report.errors]
    report = _load(tmp_path, """
        [tasks.a]
        command = ["true"]
        inputs = ["dataset:sales@2"]
        [tasks.b]
        command = ["true"]
        inputs = ["dataset:sales"]
    """)
    (err,) = report.errors
    assert err.field == "tasks.b.inputs"
    assert "names another version of dataset sales (sales@latest) than an entry before it (sales@2)" in err.render()
