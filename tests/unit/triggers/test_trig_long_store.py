"""A long file's data version stored in its lane: the claim and the storing in one thread, a stop ending both."""

from __future__ import annotations

import threading
from pathlib import Path

from edgeorch.datasets.service import object_store
from edgeorch.datasets.snapshot import SnapshotCancelled
from edgeorch.triggers.drop.service import _snapshot_all


def test_a_stop_ends_a_files_storing_instead_of_waiting_for_it(tmp_path: Path) -> None:
    """SIGTERM waited 5.6 s for a 900 MB file's chunks to be stored (a shutdown timeout's worth, for larger ones)."""
    f = tmp_path / "big.bin"
    f.write_bytes(b"x" * (4 << 20))
    objects = object_store(tmp_path / "state")
    stopped = threading.Event()
    stopped.set()
    (res,) = _snapshot_all(objects, [(f, False, "big.bin")], stopped)
    assert isinstance(res, SnapshotCancelled)
    (ok,) = _snapshot_all(objects, [(f, False, "big.bin")], threading.Event())
    assert ok.size == 4 << 20
    ok.release()

