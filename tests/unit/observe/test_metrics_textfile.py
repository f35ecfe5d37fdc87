"""The node_exporter textfile is replaced atomically (edgeorch/observe/textfile.py), against a real folder."""

from __future__ import annotations

import errno
import os
import stat
import threading

import pytest
from size_limit import write_under_a_size_limit

from edgeorch.observe.textfile import write_textfile


def _version(n: int) -> bytes:
    """A whole exposition whose every line names its version; big enough to need several write() calls."""
    lines = [f"edgeorch_line{{version=\"{n}\",i=\"{i}\"}} {i}" for i in range(4000)]
    return ("\n".join(lines) + f"\n# end {n}\n").encode()


def test_a_reader_loop_never_sees_a_partial_file(tmp_path):
    path = tmp_path / "edgeorch.prom"
    write_textfile(path, _version(0))
    versions = {n: _version(n) for n in range(2)}
    done = threading.Event()
    seen: list[bytes] = []
    bad: list[bytes] = []

    def reader() -> None:
        while not done.is_set():
            with open(path, "rb") as f:  # what node_exporter does at each of its scrapes
                data = f.read()
            (seen if data in versions.values() else bad).append(data[-30:])

    t = threading.Thread(target=reader)
    t.start()
    try:
        for i in range(300):
            write_textfile(path, versions[i % 2])
    finally:
        done.set()
        t.join()
    assert not bad, f"{len(bad)} partial reads, e.g. ending {bad[0]!r}"
    assert seen  # the reader really read while the writer wrote
    assert sorted(p.name for p in tmp_path.iterdir()) == ["edgeorch.prom"]  # no temporary file left


def test_the_file_is_readable_by_node_exporter_whatever_the_umask(tmp_path):
    old = os.umask(0o077)
    try:
        write_textfile(tmp_path / "edgeorch.prom", b"edgeorch_up 1\n")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "edgeorch.prom").stat().st_mode) == 0o644


def test_a_missing_folder_raises_and_creates_nothing(tmp_path):
    with pytest.raises(FileNotFoundError):
        write_textfile(tmp_path / "nope" / "edgeorch.prom", b"x 1\n")
    assert list(tmp_path.iterdir()) == []


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    """A real process under a file-size limit (SIGXFSZ ignored): part of the text goes to disk, then the write
    fails, as on a full disk."""
    path = tmp_path / "edgeorch.prom"
    write_textfile(path, b"edgeorch_old 1\n")
    out = write_under_a_size_limit("from pathlib import Path\nfrom edgeorch.observe.textfile import write_textfile",
                                   f"write_textfile(Path({str(path)!r}), b'edgeorch_new 1\\n' * 500)", 1000)
    assert out == f"refused {errno.EFBIG} {path}"
    assert path.read_bytes() == b"edgeorch_old 1\n"
    assert [p.name for p in tmp_path.iterdir()] == ["edgeorch.prom"]
