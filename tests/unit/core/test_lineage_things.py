"""THING parsing (pure) and the lineage renderings of a small document."""

from __future__ import annotations

import pytest

from edgeorch.errors import UsageError
from edgeorch.lineage import dot, parse_thing, tree


@pytest.mark.parametrize("text,kind,value", [
    ("5", "run", 5), ("run:5", "run", 5), ("5/train", "task", (5, "train")), ("task:5/train", "task", (5, "train")),
    ("input:3", "input", 3), ("a" * 64, "sha256", "a" * 64), ("sha256:" + "B" * 64, "sha256", "b" * 64),
    ("0" * 64, "sha256", "0" * 64), ("data/x.csv", "file", "/here/data/x.csv"), ("file:12", "file", "/here/12"),
    ("./5", "file", "/here/5"), ("/abs/../abs/y", "file", "/abs/y"), ("export.csv", "file", "/here/export.csv"),
])
def test_a_thing_is_read_by_its_prefix_or_its_form(text, kind, value):
    thing = parse_thing(text, cwd="/here")
    assert thing.kind == kind
    got = {"run": thing.run_id, "task": (thing.run_id, thing.task), "input": thing.input_id,
           "sha256": thing.sha256, "file": thing.path}[kind]
    assert got == value


@pytest.mark.parametrize("text,name,version", [
    ("dataset:sales@3", "sales", 3), ("dataset:sales", "sales", None), ("model:churn@latest", "churn", None),
    ("model:churn.v2@12", "churn.v2", 12),
])
def test_a_data_or_model_version_is_a_name_and_a_number_or_the_newest(text, name, version):
    thing = parse_thing(text, cwd="/")
    assert (thing.kind, thing.name, thing.version) == (text.split(":")[0], name, version)


@pytest.mark.parametrize("text,words", [
    ("dataset:sales@v3", "is not a dataset version"),
    ("model:churn@2@3", "is not a model version"),
    ("model:", "is not a model version"),
    ("task:5", "is not a task of a run"),
    ("input:x", "is not a drop-folder input id"),
    ("file:", "names no path"),
])
def test_a_malformed_or_reserved_thing_is_a_usage_error_naming_it(text, words):
    with pytest.raises(UsageError) as err:
        parse_thing(text, cwd="/")
    assert words in err.value.render() and repr(text) in err.value.render()


DOC = {
    "root": "file:aa:/o/m.bin", "depth": 50, "truncated": False,
    "nodes": {
        "file:aa:/o/m.bin": {"kind": "file", "path": "/o/m.bin", "sha256": "aa", "size": 2},
        "task:1/t": {"kind": "task", "run_id": 1, "task": "t", "state": "succeeded", "attempts": 1,
                     "cached_from": None},
        "file:bb:/d/\"q\".csv": {"kind": "file", "path": "/d/\"q\".csv", "sha256": "bb", "declared": "{data}"},
        "run:1": {"kind": "run", "run_id": 1, "pipeline": "p", "state": "succeeded", "content_hash": "cc",
                  "params": {"data": "/d/\"q\".csv"}},
    },
    "edges": [{"from": "file:aa:/o/m.bin", "to": "task:1/t", "rel": "output of"},
              {"from": "task:1/t", "to": "file:bb:/d/\"q\".csv", "rel": "consumed"},
              {"from": "task:1/t", "to": "run:1", "rel": "in run"}],
    "upstream": {"file:aa:/o/m.bin": [["output of", "task:1/t"]],
                 "task:1/t": [["consumed", "file:bb:/d/\"q\".csv"], ["in run", "run:1"]]},
}


def test_the_tree_names_each_relation_and_the_full_hashes():
    assert tree(DOC).splitlines() == [
        "file /o/m.bin sha256:aa (2B)",
        "upstream:",
        "  └─ output of: task 1/t (succeeded, attempt 1)",
        "     ├─ consumed: file /d/\"q\".csv sha256:bb [inputs: {data}]",
        "     └─ in run: run 1 p (succeeded) pipeline sha256:cc params {\"data\": \"/d/\\\"q\\\".csv\"}",
    ]


def test_dot_escapes_labels_and_points_the_way_data_flows():
    text = dot(DOC)
    assert text.startswith("digraph lineage {") and text.rstrip().endswith("}")
    assert 'label="file /d/\\"q\\".csv sha256:bb [inputs: {data}]"' in text
    assert "n2 -> n1 [label=\"consumed\"];" in text  # the input flows into the task


@pytest.mark.parametrize("text", ["99999999999999999999999", "run:99999999999999999999999",
                                  "input:99999999999999999999999", "dataset:clean@99999999999999999999999",
                                  "model:m@99999999999999999999999", "99999999999999999999999/train"])
def test_an_id_or_version_no_state_file_can_hold_is_out_of_range_not_an_internal_error(text) -> None:
    """`lineage 99999999999999999999999` and the rest ended "internal error in op 'lineage'" (OverflowError)."""
    with pytest.raises(UsageError) as err:
        parse_thing(text)
    assert err.value.message == "is out of range" and err.value.exit_code == 2


def test_datasets_refs_hold_versions_a_state_file_can_hold() -> None:
    from edgeorch.datasets.names import VERSION_MAX, parse_ref

    assert parse_ref(f"clean@{VERSION_MAX}") == ("clean", VERSION_MAX)
    for bad in (f"clean@{VERSION_MAX + 1}", "clean@²", "clean@0"):
        with pytest.raises(UsageError):
            parse_ref(bad)
