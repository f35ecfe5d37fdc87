"""The warm-up's file rules (edgeorch/kernels/warmup.py): the marker, stale staging folders, and how a staged
cache is installed next to other writers without ever pairing an index with another writer's data."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest

from edgeorch.kernels import warmup

SUB = "kernels_abc"


def _index(folder: Path, base: str, *, version: str = "0.68.1", stamp: object = "s1", datas: int = 1) -> Path:
    """A numba-shaped index ``base.nbi`` (pickled version, then pickled (stamp, overloads)) and its data files."""
    folder.mkdir(parents=True, exist_ok=True)
    overloads = {f"sig{n}": f"{base}.{n}.nbc" for n in range(1, datas + 1)}
    with open(folder / f"{base}.nbi", "wb") as f:
        pickle.dump(version, f)
        f.write(pickle.dumps((stamp, overloads)))
    for n in range(1, datas + 1):
        (folder / f"{base}.{n}.nbc").write_bytes(f"code {version} {stamp} {n}".encode())
    return folder / f"{base}.nbi"


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    cache = tmp_path / "cache"
    staging = warmup.staging_dir(cache, 1)
    return staging, cache


def test_a_function_missing_from_the_cache_is_linked_in_with_its_data(dirs: tuple[Path, Path]) -> None:
    staging, cache = dirs
    _index(staging / SUB, "_jit.f-10.py311", datas=2)
    done = warmup.install(staging, cache)
    assert done == warmup.Installed(installed=1, kept=0)
    assert sorted(p.name for p in (cache / SUB).iterdir()) == ["_jit.f-10.py311.1.nbc", "_jit.f-10.py311.2.nbc",
                                                                "_jit.f-10.py311.nbi"]
    assert warmup.index_header(cache / SUB / "_jit.f-10.py311.nbi") == ("0.68.1", "s1")


def test_a_current_index_written_by_a_task_is_kept_with_its_data(dirs: tuple[Path, Path]) -> None:
    staging, cache = dirs
    _index(staging / SUB, "_jit.f-10.py311", datas=2)
    theirs = _index(cache / SUB, "_jit.f-10.py311", datas=1)
    before = theirs.read_bytes(), (cache / SUB / "_jit.f-10.py311.1.nbc").read_bytes()
    assert warmup.install(staging, cache) == warmup.Installed(installed=0, kept=1)
    assert (theirs.read_bytes(), (cache / SUB / "_jit.f-10.py311.1.nbc").read_bytes()) == before
    assert not (cache / SUB / "_jit.f-10.py311.2.nbc").exists()


@pytest.mark.parametrize("old", [{"version": "0.60.0"}, {"stamp": "old source"}])
def test_a_stale_index_is_replaced_data_first(dirs: tuple[Path, Path], old: dict[str, str]) -> None:
    staging, cache = dirs
    _index(staging / SUB, "_jit.f-10.py311", datas=2)
    _index(cache / SUB, "_jit.f-10.py311", datas=3, **old)
    assert warmup.install(staging, cache) == warmup.Installed(installed=1, kept=0)
    assert warmup.index_header(cache / SUB / "_jit.f-10.py311.nbi") == ("0.68.1", "s1")
    assert (cache / SUB / "_jit.f-10.py311.2.nbc").read_bytes() == b"code 0.68.1 s1 2"


def test_an_unreadable_index_counts_as_stale(dirs: tuple[Path, Path]) -> None:
    staging, cache = dirs
    _index(staging / SUB, "_jit.f-10.py311")
    (cache / SUB).mkdir(parents=True)
    (cache / SUB / "_jit.f-10.py311.nbi").write_bytes(b"half writ")
    assert warmup.install(staging, cache).installed == 1
    assert warmup.index_header(cache / SUB / "_jit.f-10.py311.nbi") == ("0.68.1", "s1")


def test_a_data_name_taken_by_another_writer_keeps_theirs_and_removes_only_our_links(
        dirs: tuple[Path, Path]) -> None:
    """A task is compiling the function right now: its data file 2 exists, its index is not written yet."""
    staging, cache = dirs
    _index(staging / SUB, "_jit.f-10.py311", datas=2)
    (cache / SUB).mkdir(parents=True)
    (cache / SUB / "_jit.f-10.py311.2.nbc").write_bytes(b"theirs")
    assert warmup.install(staging, cache) == warmup.Installed(installed=0, kept=1)
    assert sorted(p.name for p in (cache / SUB).iterdir()) == ["_jit.f-10.py311.2.nbc"]
    assert (cache / SUB / "_jit.f-10.py311.2.nbc").read_bytes() == b"theirs"


def test_an_index_that_appears_while_linking_wins(dirs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """The other writer's index lands between our data links and our index link: its index stays."""
    staging, cache = dirs
    _index(staging / SUB, "_jit.f-10.py311", datas=1)
    real_link = os.link

    def link(src: str | Path, dst: str | Path) -> None:
        if str(dst).endswith(".nbi"):
            _index(cache / SUB, "_jit.f-10.py311", stamp="theirs", datas=0)
        real_link(src, dst)

    monkeypatch.setattr(warmup.os, "link", link)
    assert warmup.install(staging, cache) == warmup.Installed(installed=0, kept=1)
    assert warmup.index_header(cache / SUB / "_jit.f-10.py311.nbi") == ("0.68.1", "theirs")
    assert not (cache / SUB / "_jit.f-10.py311.1.nbc").exists()  # our link, unreferenced: removed


def test_functions_are_installed_independently(dirs: tuple[Path, Path]) -> None:
    staging, cache = dirs
    _index(staging / SUB, "_jit.f-10.py311")
    _index(staging / SUB, "_jit.g-20.py311")
    _index(staging / "datasets_x", "chunker._cuts-80.py311")
    _index(cache / SUB, "_jit.g-20.py311")  # current: a task compiled g
    assert warmup.install(staging, cache) == warmup.Installed(installed=2, kept=1)
    assert (cache / "datasets_x" / "chunker._cuts-80.py311.nbi").exists()


def test_the_marker_names_the_versions_and_sources(tmp_path: Path) -> None:
    assert not warmup.is_warm(tmp_path / "missing")
    (tmp_path / "warm-0123").touch()  # an older marker
    assert not warmup.is_warm(tmp_path)
    warmup.mark_warm(tmp_path)
    assert warmup.is_warm(tmp_path)
    assert [p.name for p in tmp_path.glob("warm-*")] == [warmup.marker()]


def test_the_marker_changes_with_a_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "_jit.py"
    src.write_text("x = 1\n")
    monkeypatch.setattr(warmup, "SOURCES", (src,))
    before = warmup.marker()
    src.write_text("x = 2\n")
    assert warmup.marker() != before


def test_stale_staging_folders_are_removed_only_when_their_owner_is_gone(tmp_path: Path) -> None:
    for pid in (11, 22):
        (warmup.staging_dir(tmp_path, pid) / SUB).mkdir(parents=True)
    (tmp_path / ".warmup-notapid").mkdir()
    removed = warmup.remove_stale_staging(tmp_path, alive=lambda pid: pid == 22)
    assert removed == [warmup.staging_dir(tmp_path, 11)]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".warmup-22", ".warmup-notapid"]


def test_a_cache_folder_that_cannot_be_used_is_one_clear_line(tmp_path: Path, capsys) -> None:
    cache = tmp_path / "cache"
    cache.write_text("a file where the folder should be")  # fails for root too, unlike a mode
    assert warmup.main([str(cache), "--staging", str(warmup.staging_dir(cache, 1))]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"cannot warm the numba cache in {cache}:") and "Traceback" not in err
