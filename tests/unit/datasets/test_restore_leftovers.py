"""What killed restores leave beside DEST, and who may remove it (datasets/restore.py, remove_abandoned)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from edgeorch.datasets.restore import remove_abandoned


def _old(path: Path) -> Path:
    path.mkdir()
    (path / "f").write_text("x")
    then = time.time() - 60
    os.utime(path, (then, then))
    return path


def test_the_old_content_a_killed_force_set_aside_is_kept_while_dest_is_missing(tmp_path) -> None:
    """Found in review: a `restore --force` killed between its two renames leaves DEST missing and its old content
    only in `.DEST.old-*`; the next restore (no --force needed) removed it before writing: a failure then left
    nothing."""
    parent = tmp_path / "p"
    parent.mkdir(mode=0o755)
    aside = _old(parent / ".out.old-0123456789ab")
    tmp = _old(parent / ".out.restore-0123456789ab")
    remove_abandoned(parent / "out")
    assert aside.exists() and not tmp.exists()
    (parent / "out").mkdir()  # the swap done: the aside is a leftover now
    remove_abandoned(parent / "out")
    assert not aside.exists()


def test_nothing_is_removed_in_a_folder_others_may_write_unless_it_is_sticky(tmp_path) -> None:
    """Found in review: in a group-writable folder another member could rename one of this user's folders to
    `.DEST.restore-<hex>`, and this user's next restore removed it."""
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o775)
    victim = _old(shared / ".out.restore-0123456789ab")
    remove_abandoned(shared / "out")
    assert victim.exists()
    os.chmod(shared, 0o1777)  # sticky, as /tmp: nobody renames another's folder there
    remove_abandoned(shared / "out")
    assert not victim.exists()


def test_only_names_of_a_restore_of_this_dest_are_touched(tmp_path) -> None:
    parent = tmp_path / "p"
    parent.mkdir(mode=0o700)
    others = [_old(parent / n) for n in (".out.restore-xyz", ".other.restore-0123456789ab", "out.restore-0123456789ab",
                                         ".out.restore-0123456789abc")]
    (parent / ".out.restore-aaaaaaaaaaaa").symlink_to(others[0])  # a link is never followed nor removed
    remove_abandoned(parent / "out")
    assert all(p.exists() for p in others) and (parent / ".out.restore-aaaaaaaaaaaa").is_symlink()


def test_what_is_left_is_said_with_why(tmp_path) -> None:
    parent = tmp_path / "p"
    parent.mkdir(mode=0o755)
    fresh = parent / ".out.restore-0123456789ab"
    fresh.mkdir()
    aside = _old(parent / ".out.old-0123456789ab")
    left = {Path(x["path"]).name: x["why"] for x in remove_abandoned(parent / "out")}
    assert left == {fresh.name: "made less than 1 s ago: maybe a restore starting",
                    aside.name: "the old content a killed --force set aside, while DEST is missing: it may be the only "
                                "copy"}
