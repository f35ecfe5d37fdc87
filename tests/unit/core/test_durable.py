"""``edgeorch.durable``: atomic writes and folder syncs.

``write_atomic`` gives old or new content, never half, even when the kernel
writes only part of it: a real process under a file-size limit (SIGXFSZ
ignored) gets a short ``write``, as on a nearly full disk. ``sync_dirs``
makes each folder's entries durable once (a few fsynced in the caller's
thread; many by one ``syncfs`` while little is unsynced, else fsynced from
worker threads, all finished when it returns) and raises when one cannot be.
"""

from __future__ import annotations

import ctypes
import errno
import os
import threading

import pytest
from size_limit import write_under_a_size_limit

from edgeorch import durable


def test_a_short_write_never_leaves_half_a_file(tmp_path):
    target = tmp_path / "batch.paths"
    target.write_bytes(b"old\n")
    out = write_under_a_size_limit("from pathlib import Path\nfrom edgeorch.durable import write_atomic",
                                   f"write_atomic(Path({str(target)!r}), b'x' * 5000)", 1000)
    assert target.read_bytes() in (b"old\n", b"x" * 5000), f"half a file: {target.stat().st_size} bytes"
    assert out == f"refused {errno.EFBIG} {target}"  # the error names the file asked for, not a temporary one
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")], "the temporary file is left behind"


def test_replacing_names_the_target_and_leaves_no_temporary_when_the_rename_or_the_block_fails(tmp_path):
    """A rename into place that fails (a name too long for the file system) left its temporary file behind and
    the error named it (`.tmp-<pid>-<hex>`, meaningless to whoever named the file); a failing block leaves
    the old file; a folder's path is refused before anything is made."""
    long_name = tmp_path / ("y" * 300)
    with pytest.raises(OSError) as err:
        durable.write_atomic(long_name, b"x")
    assert err.value.errno == errno.ENAMETOOLONG and err.value.filename == str(long_name)
    old = tmp_path / "report.json"
    old.write_text("old")
    with pytest.raises(RuntimeError):
        with durable.replacing(old, text=True) as f:
            f.write("half of the new")
            raise RuntimeError("the export failed half way")
    with pytest.raises(FileNotFoundError) as missing:
        durable.write_atomic(tmp_path / "no" / "such" / "folder.json", b"x")
    assert missing.value.filename == str(tmp_path / "no" / "such" / "folder.json")
    with pytest.raises(IsADirectoryError):
        durable.write_atomic(tmp_path / ".", b"x")
    assert old.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]
    with durable.replacing(old, text=True, durable=False, chmod=0o640) as f:
        f.write("new")
    assert old.read_text() == "new" and old.stat().st_mode & 0o777 == 0o640


def _fsyncs(monkeypatch):
    """Record ``(thread id, path)`` of every ``os.fsync`` made through :func:`durable.fsync_dir`, still syncing."""
    calls: list[tuple[int, str]] = []
    real = durable.fsync_dir

    def recorded(path):
        calls.append((threading.get_ident(), os.fspath(path)))
        return real(path)

    monkeypatch.setattr(durable, "fsync_dir", recorded)
    return calls


def _folders(root, n):
    out = []
    for i in range(n):
        d = root / f"in-{i}"
        d.mkdir()
        (d / "f.csv").write_text("x\n")
        out.append(d)
    return out


def _syncfs_calls(monkeypatch):
    calls: list[str] = []
    real = durable.syncfs

    def recorded(path):
        calls.append(os.fspath(path))
        return real(path)

    monkeypatch.setattr(durable, "syncfs", recorded)
    return calls


def test_a_few_folders_are_fsynced_in_the_callers_thread_once_each(tmp_path, monkeypatch):
    folders = _folders(tmp_path, durable.MANY - 2) + [tmp_path]
    calls, syncfs = _fsyncs(monkeypatch), _syncfs_calls(monkeypatch)
    monkeypatch.setattr(durable, "unsynced_bytes", lambda: 0)
    durable.sync_dirs(folders + folders[:3])  # repeated folders are synced once
    assert sorted(p for _, p in calls) == sorted(map(str, folders))
    assert {t for t, _ in calls} == {threading.get_ident()} and syncfs == []


def test_many_folders_with_little_unsynced_on_the_machine_take_one_syncfs(tmp_path, monkeypatch):
    folders = _folders(tmp_path, durable.MANY + 4) + [tmp_path]
    calls, syncfs = _fsyncs(monkeypatch), _syncfs_calls(monkeypatch)
    monkeypatch.setattr(durable, "unsynced_bytes", lambda: durable.SYNCFS_MAX_UNSYNCED)
    monkeypatch.setattr(durable, "syncfs_reports_errors", lambda: True)
    durable.sync_dirs(folders)
    assert len(syncfs) == 1 and calls == []


@pytest.mark.parametrize("unsynced", [durable.SYNCFS_MAX_UNSYNCED + 1, None], ids=["much-unsynced", "unknown"])
def test_many_folders_otherwise_are_fsynced_once_each_from_worker_threads_all_done_on_return(
        tmp_path, monkeypatch, unsynced):
    folders = _folders(tmp_path, durable.MANY + 20) + [tmp_path]
    calls, syncfs = _fsyncs(monkeypatch), _syncfs_calls(monkeypatch)
    monkeypatch.setattr(durable, "unsynced_bytes", lambda: unsynced)
    durable.sync_dirs(folders + folders[:5])
    assert sorted(p for _, p in calls) == sorted(map(str, folders)) and syncfs == []
    assert threading.get_ident() not in {t for t, _ in calls}
    assert not [t for t in threading.enumerate() if t.name.startswith("edgeorch-fsync")]


def test_when_no_thread_can_start_many_folders_are_fsynced_one_by_one(tmp_path, monkeypatch):
    import concurrent.futures

    def refuse(self, *args, **kwargs):
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(concurrent.futures.ThreadPoolExecutor, "submit", refuse)
    monkeypatch.setattr(durable, "unsynced_bytes", lambda: None)
    folders = _folders(tmp_path, durable.MANY + 2)
    calls = _fsyncs(monkeypatch)
    durable.sync_dirs(folders)
    assert sorted(p for _, p in calls) == sorted(map(str, folders))
    assert {t for t, _ in calls} == {threading.get_ident()}


@pytest.mark.parametrize("n, unsynced", [(1, 0), (durable.MANY + 4, 0), (durable.MANY + 4, None)],
                         ids=["one-by-one", "syncfs", "parallel"])
def test_a_missing_folder_raises_and_no_sync_is_left_running(tmp_path, monkeypatch, n, unsynced):
    monkeypatch.setattr(durable, "unsynced_bytes", lambda: unsynced)
    monkeypatch.setattr(durable, "syncfs_reports_errors", lambda: True)
    folders = _folders(tmp_path, n)
    (folders[n // 2] / "f.csv").unlink()
    folders[n // 2].rmdir()
    with pytest.raises(FileNotFoundError) as info:
        durable.sync_dirs(folders)
    assert info.value.filename == str(folders[n // 2])
    assert not [t for t in threading.enumerate() if t.name.startswith("edgeorch-fsync")]


def test_unsynced_bytes_reads_dirty_and_writeback_and_says_none_when_it_cannot(tmp_path):
    assert isinstance(durable.unsynced_bytes(), int)  # this machine's own /proc/meminfo
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal: 100 kB\nDirty:            12 kB\nWriteback:         3 kB\nWritebackTmp: 7 kB\n")
    assert durable.unsynced_bytes(str(meminfo)) == 15 * 1024
    meminfo.write_text("Dirty: lots kB\nWriteback: 3 kB\n")
    assert durable.unsynced_bytes(str(meminfo)) is None
    meminfo.write_text("Dirty: 12 kB\n")
    assert durable.unsynced_bytes(str(meminfo)) is None
    assert durable.unsynced_bytes(str(tmp_path / "missing")) is None


@pytest.mark.parametrize("release, ok", [("5.8.0", True), ("6.1.0-13-amd64", True), ("5.15.0-91-generic", True),
                                         ("5.4.0-150-generic", False), ("4.19.0", False), ("5.7", False),
                                         ("garbage", False), ("6", False), ("5.10+", True)])
def test_syncfs_is_trusted_only_where_it_reports_write_back_errors(release, ok):
    assert durable.syncfs_reports_errors(release) is ok


def test_on_an_old_kernel_many_folders_are_fsynced(tmp_path, monkeypatch):
    folders = _folders(tmp_path, durable.MANY)
    calls, syncfs = _fsyncs(monkeypatch), _syncfs_calls(monkeypatch)
    monkeypatch.setattr(durable, "unsynced_bytes", lambda: 0)
    monkeypatch.setattr(durable, "syncfs_reports_errors", lambda: False)
    durable.sync_dirs(folders)
    assert len(calls) == len(folders) and syncfs == []


def test_syncfs_syncs_a_real_filesystem_and_raises_a_write_back_error_naming_the_folder(tmp_path, monkeypatch):
    assert durable.syncfs(tmp_path) is True

    def failing(fd):
        ctypes.set_errno(errno.EIO)
        return -1

    monkeypatch.setattr(durable, "_libc_syncfs", lambda: failing)
    with pytest.raises(OSError) as info:
        durable.syncfs(tmp_path)
    assert info.value.errno == errno.EIO and str(tmp_path) in str(info.value)
