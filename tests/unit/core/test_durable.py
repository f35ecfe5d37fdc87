"""``edgeorch.durable``: atomic writes and folder syncs.

``write_atomic`` gives old or new content, never half, even when the kernel
writes only part of it: a real process under a file-size limit (SIGXFSZ
ignored) gets a short ``write``, as on a nearly full disk. ``sync_dirs``
fsyncs a few folders one by one and many with one ``syncfs`` of their
filesystem, and says when it could not.
"""

from __future__ import annotations

import ctypes
import errno
import os
import subprocess
import sys
import textwrap

import pytest

from edgeorch import durable


def test_a_short_write_never_leaves_half_a_file(tmp_path):
    target = tmp_path / "batch.paths"
    target.write_bytes(b"old\n")
    script = textwrap.dedent(f"""
        import resource, signal, sys
        from pathlib import Path
        from edgeorch.durable import write_atomic
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000))
        try:
            write_atomic(Path({str(target)!r}), b"x" * 5000)
        except OSError as exc:
            print("refused", exc.errno)
            sys.exit(0)
        print("written")
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert target.read_bytes() in (b"old\n", b"x" * 5000), f"half a file: {target.stat().st_size} bytes"
    assert out.stdout.startswith("refused")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")], "the temporary file is left behind"


def _count(monkeypatch, name):
    """Count the calls of ``durable.<name>`` (or ``os.fsync``), still calling the real one."""
    calls: list[object] = []
    owner = os if name == "fsync" else durable
    real = getattr(owner, name)

    def counted(arg):
        calls.append(arg)
        return real(arg)

    monkeypatch.setattr(owner, name, counted)
    return calls


def _folders(root, n):
    out = []
    for i in range(n):
        d = root / f"in-{i}"
        d.mkdir()
        (d / "f.csv").write_text("x\n")
        out.append(d)
    return out


def test_a_few_folders_are_fsynced_one_by_one_and_once_each(tmp_path, monkeypatch):
    folders = _folders(tmp_path, durable.SYNCFS_AT - 2) + [tmp_path]
    syncfs, fsyncs = _count(monkeypatch, "syncfs"), _count(monkeypatch, "fsync")
    durable.sync_dirs(folders + folders[:3])  # repeated folders are synced once
    assert syncfs == []
    assert len(fsyncs) == len(folders)


def test_many_folders_are_made_durable_by_one_syncfs_of_their_filesystem(tmp_path, monkeypatch):
    folders = _folders(tmp_path, durable.SYNCFS_AT + 4) + [tmp_path]
    syncfs, fsyncs = _count(monkeypatch, "syncfs"), _count(monkeypatch, "fsync")
    durable.sync_dirs(folders)
    assert len(syncfs) == 1 and fsyncs == []


def test_a_syncfs_write_back_error_is_raised_naming_the_folder(tmp_path, monkeypatch):
    def failing(fd):
        ctypes.set_errno(errno.EIO)
        return -1

    monkeypatch.setattr(durable, "_libc_syncfs", lambda: failing)
    with pytest.raises(OSError) as info:
        durable.sync_dirs(_folders(tmp_path, durable.SYNCFS_AT))
    assert info.value.errno == errno.EIO and str(tmp_path) in str(info.value)


def test_without_syncfs_many_folders_are_fsynced_one_by_one(tmp_path, monkeypatch):
    monkeypatch.setattr(durable, "_libc_syncfs", lambda: None)
    fsyncs = _count(monkeypatch, "fsync")
    durable.sync_dirs(_folders(tmp_path, durable.SYNCFS_AT))
    assert len(fsyncs) == durable.SYNCFS_AT


@pytest.mark.parametrize("n", [1, durable.SYNCFS_AT])
def test_a_missing_folder_raises_and_nothing_is_said_durable(tmp_path, n):
    folders = _folders(tmp_path, n)
    (folders[-1] / "f.csv").unlink()
    folders[-1].rmdir()
    with pytest.raises(FileNotFoundError):
        durable.sync_dirs(folders)
