"""`edgeorch run NAME` without a daemon reads the named pipeline's own file alone when that is sure to be the
answer the whole folder's validation gives (edgeorch/pipelines/load.py, load_named), and only then."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import edgeorch.pipelines.load as load
from edgeorch.pipelines import load_named, validate_path

ONE = '[tasks.a]\ncommand = ["true"]\n'


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "nightly_train.toml").write_text(ONE)
    for i in range(20):
        (tmp_path / f"p{i:02d}.toml").write_text(f'schedule = "0 2 * * *"\n[tasks.t]\ncommand = ["echo", "{i}"]\n')
    return tmp_path


def parsed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []
    real = load.load_pipeline_file

    def spy(file: Path):
        seen.append(file.name)
        return real(file)

    monkeypatch.setattr(load, "load_pipeline_file", spy)
    return seen


def test_the_named_file_alone_is_parsed_and_gives_what_the_folder_gives(folder, monkeypatch):
    seen = parsed(monkeypatch)
    pipe = load_named(folder, "nightly_train")
    assert seen == ["nightly_train.toml"]
    assert pipe is not None and pipe == validate_path(folder).pipelines["nightly_train"]


@pytest.mark.parametrize("other", [
    'name = "nightly_train"\n' + ONE,  # declares the same name: the first in file order wins, a duplicate
    'name = """nightly_\\\n    train"""\n' + ONE,  # the same, spelled with a line-ending backslash
    'name = "nightly_tr\\u0061in"\n' + ONE,  # the same, spelled with a unicode escape
    'description = "runs after nightly_train"\n' + ONE,  # only mentions it: can't tell without parsing
])
def test_another_file_that_could_declare_the_name_leaves_it_to_the_whole_folder(folder, monkeypatch, other):
    (folder / "a_first.toml").write_text(other)
    assert load_named(folder, "nightly_train") is None


def test_what_the_named_file_alone_cannot_answer_is_left_to_the_whole_folder(folder):
    (folder / "renamed.toml").write_text('name = "other"\n' + ONE)  # its name is not its stem
    assert load_named(folder, "renamed") is None
    (folder / "broken.toml").write_text("[tasks.a]\ncommand = [\n")
    assert load_named(folder, "broken") is None  # the folder's validation says why, naming the file
    assert load_named(folder, "missing") is None
    for ref in ("../x", ".hidden", "", "a\0b", "x" * 300):
        assert load_named(folder, ref) is None
    os.mkfifo(folder / "z.toml")  # cannot be read without blocking: no decision here
    assert load_named(folder, "nightly_train") is None
