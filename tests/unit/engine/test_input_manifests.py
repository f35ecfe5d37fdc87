"""Declared inputs hashed: files, folder and glob manifests, missing inputs, stamps that notice a change."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess

import pytest

from edgeorch.engine.inputs import InputError, changed_since, hash_inputs, manifest_hash


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def data(tmp_path):
    root = tmp_path / "data"
    (root / "sub").mkdir(parents=True)
    (root / "a.csv").write_bytes(b"a,b\n1,2\n")
    (root / "b.csv").write_bytes(b"a,b\n3,4\n")
    (root / "sub" / "c.json").write_bytes(b"{}")
    return root


def test_a_file_is_its_content_hash_and_a_relative_path_is_relative_to_the_working_directory(data):
    snap = hash_inputs("t", [("a.csv", "a.csv")], data)
    (item,) = snap.items
    assert (item.kind, item.path, item.sha256, item.size, item.spec) == (
        "file", str(data / "a.csv"), _sha(b"a,b\n1,2\n"), 8, "a.csv")
    assert snap.key() == [["a.csv", "file", _sha(b"a,b\n1,2\n")]]


def test_a_folder_manifest_lists_every_file_sorted_and_sha256sum_reproduces_it(data):
    (item,) = hash_inputs("t", [("data", str(data))], data.parent).items
    assert item.kind == "folder" and item.files == 3 and item.size == 8 + 8 + 2
    assert [m[0] for m in item.members] == ["a.csv", "b.csv", "sub/c.json"]
    assert item.sha256 == manifest_hash(item.members)
    if shutil.which("sha256sum") and shutil.which("find"):
        # The documented recipe, run for real in the folder.
        out = subprocess.run("find . -type f -printf '%P\\0' | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum",
                             shell=True, cwd=data, capture_output=True, check=True, text=True).stdout
        assert out.split()[0] == item.sha256


def test_renaming_a_file_in_a_folder_changes_its_manifest_but_not_its_files(data):
    before = hash_inputs("t", [("data", str(data))], data).items[0]
    os.rename(data / "b.csv", data / "b2.csv")
    after = hash_inputs("t", [("data", str(data))], data).items[0]
    assert before.sha256 != after.sha256
    assert sorted(m[1] for m in before.members) == sorted(m[1] for m in after.members)


def test_a_glob_is_the_manifest_of_what_it_matches_named_from_its_leading_folder(data):
    (item,) = hash_inputs("t", [("data/*.csv", "data/*.csv")], data.parent).items
    assert item.kind == "glob" and item.path == str(data.parent / "data" / "*.csv")
    assert [m[0] for m in item.members] == ["a.csv", "b.csv"]
    (deep,) = hash_inputs("t", [("{d}/**/*.json", str(data) + "/**/*.json")], data).items
    assert [m[0] for m in deep.members] == ["sub/c.json"]


def test_special_files_in_a_folder_are_left_out_and_never_opened(data):
    os.mkfifo(data / "pipe")  # reading it would block the hashing worker forever
    (item,) = hash_inputs("t", [("data", str(data))], data).items
    assert "pipe" not in [m[0] for m in item.members]


@pytest.mark.parametrize("entry,message", [
    ("missing.csv", "does not exist"),
    ("*.parquet", "matches no file"),
])
def test_a_missing_input_names_the_task_field_entry_and_path(data, entry, message):
    with pytest.raises(InputError) as err:
        hash_inputs("train", [("ok", "a.csv"), (entry, entry)], data)
    text = str(err.value)
    assert f"tasks.train.inputs[1] = {entry!r}" in text and message in text
    assert str(data) in text


def test_a_fifo_declared_as_an_input_is_refused_not_read(data):
    os.mkfifo(data / "pipe")
    with pytest.raises(InputError, match="is not a regular file"):
        hash_inputs("t", [("pipe", "pipe")], data)


def test_stamps_notice_a_rewritten_file_and_a_file_added_to_a_folder_or_glob(data):
    snap = hash_inputs("t", [("a.csv", "a.csv"), ("data", str(data)), ("{d}/*.csv", str(data) + "/*.csv")], data)
    assert changed_since(snap) is None
    (data / "a.csv").write_bytes(b"changed, same folder\n")
    assert changed_since(snap) == str(data / "a.csv")

    snap = hash_inputs("t", [("{d}/*.csv", str(data) + "/*.csv")], data)
    (data / "new.csv").write_bytes(b"x")
    assert changed_since(snap) == str(data)

    snap = hash_inputs("t", [("d", str(data))], data)
    (data / "sub" / "more.json").write_bytes(b"[]")
    assert changed_since(snap) == str(data / "sub")


@pytest.mark.parametrize("text", ["", "  "])
def test_an_entry_empty_once_filled_in_is_refused_not_the_whole_working_folder_hashed(tmp_path, text):
    """`inputs = ["{data}"]` run with `-p data=` named the working folder itself: every file below it was hashed
    and recorded as consumed, and the task then failed on its empty argument."""
    (tmp_path / "big.bin").write_bytes(b"x" * 1000)
    with pytest.raises(InputError, match=r"inputs\[0\] = '\{data\}': is empty once its placeholders are filled"):
        hash_inputs("train", [("{data}", text)], tmp_path)
