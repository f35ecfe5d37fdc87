"""A cache hit's recorded outputs, hard-linked into this run's output folder of the task."""

from __future__ import annotations

from pathlib import Path

from edgeorch.engine.files import link_cached_outputs


def _art(path: Path, name: str) -> dict[str, object]:
    return {"name": name, "path": str(path), "size": path.stat().st_size, "sha256": "-"}


def test_each_output_is_linked_under_its_recorded_name_subfolders_made(tmp_path):
    src = tmp_path / "runs" / "1" / "outputs" / "t"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("a")
    (src / "sub" / "b.bin").write_bytes(b"\0b")
    dest = tmp_path / "runs" / "2" / "outputs" / "t"
    assert link_cached_outputs([_art(src / "a.txt", "a.txt"), _art(src / "sub" / "b.bin", "sub/b.bin")], dest) is None
    assert (dest / "a.txt").read_text() == "a"
    assert (dest / "sub" / "b.bin").stat().st_ino == (src / "sub" / "b.bin").stat().st_ino  # the same file
    # Again (a restart that applies the same hit): the same files are there already, and kept.
    assert link_cached_outputs([_art(src / "a.txt", "a.txt")], dest) is None


def test_another_file_at_a_name_is_never_replaced_and_says_so(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.txt").write_text("recorded")
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "a.txt").write_text("someone else's")
    why = link_cached_outputs([_art(tmp_path / "src" / "a.txt", "a.txt")], dest)
    assert why is not None and "another file" in why and str(dest / "a.txt") in why
    assert (dest / "a.txt").read_text() == "someone else's"


def test_a_file_that_cannot_be_linked_is_said_with_its_path(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.txt").write_text("x")
    art = _art(tmp_path / "src" / "a.txt", "a.txt")
    (tmp_path / "src" / "a.txt").unlink()  # gone between the check and the link
    why = link_cached_outputs([art], tmp_path / "dest")
    assert why is not None and "a.txt" in why and "No such file" in why
