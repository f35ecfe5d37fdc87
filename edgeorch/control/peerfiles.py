"""Reading a file a client named, on the client's behalf, with the client's rights.

A request that names a path (``pipelines.validate``) must not let a client
read what only the daemon may read, nor stall the daemon. So
:func:`read_for_peer`:

- opens the path with ``O_NONBLOCK|O_NOFOLLOW|O_NOCTTY`` (a FIFO cannot block
  the open, a final symlink is refused) and ``fstat``\\ s what it opened: only a
  regular file is read (no FIFO, device, ``/dev/zero``, socket or folder);
- checks that the peer (uid and groups from ``SO_PEERCRED`` and the user
  database) could read it itself: read permission on the file and search
  permission on every folder above it, by the classic owner/group/other mode
  bits; nothing under ``/proc`` or ``/sys`` (the kernel's own rules, such as
  ptrace's, decide there); a file or folder with an access ACL is refused whatever it says (its
  named entries may deny what the bits allow, and the ACL is not evaluated:
  the check may refuse, never allow, more than the kernel would; a reader
  read a file an ACL denied it through the validation's errors), applied to the path the kernel actually
  opened (``/proc/self/fd``), so a symlink in a folder above cannot redirect
  the check;
- reads at most ``max_bytes`` (one byte more tells "too large").

Refusals never carry the file's content, and "no such file" and "permission
denied" are worded like the client's own ``open`` would say them.

Reads run on :data:`PEER_IO`, a small executor of their own, never on the
loop's default executor that claims dropped files: a client can at worst
occupy its two threads for the time of one bounded read.
"""

from __future__ import annotations

import asyncio
import os
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..errors import UsageError
from .auth import Peer, _groups_from_db

PEER_IO = ThreadPoolExecutor(max_workers=2, thread_name_prefix="edgeorch-peer-io")
"""The executor for client-named files (not shared with the daemon's own I/O)."""


class PeerFileError(UsageError):
    """A client named a file the daemon will not read for it."""

    code = "usage"


def _may(st: os.stat_result, uid: int, gids: frozenset[int], bits: tuple[int, int, int]) -> bool:
    """Whether ``uid``/``gids`` has the permission ``bits`` (owner, group, other masks) on ``st``."""
    if uid == 0:
        return True
    owner, group, other = bits
    if st.st_uid == uid:
        return bool(st.st_mode & owner)
    if st.st_gid in gids:
        return bool(st.st_mode & group)
    return bool(st.st_mode & other)


READ = (stat.S_IRUSR, stat.S_IRGRP, stat.S_IROTH)
SEARCH = (stat.S_IXUSR, stat.S_IXGRP, stat.S_IXOTH)


ACL_XATTR = "system.posix_acl_access"


def has_acl(target: str | int) -> bool:
    """Whether the file or folder ``target`` (a path, not followed if a link, or a descriptor) has a POSIX access
    ACL, whose named entries may deny a user what its mode bits allow (``setfacl -m u:mallory:--- f``). A file
    system without extended attributes has none."""
    try:
        if isinstance(target, int):
            os.getxattr(target, ACL_XATTR)
        else:
            os.getxattr(target, ACL_XATTR, follow_symlinks=False)
    except OSError:  # ENODATA: none; ENOTSUP: the file system has no ACLs
        return False
    return True


def peer_may_read(real_path: str, st: os.stat_result, peer: Peer, gids: frozenset[int]) -> bool:
    """Whether ``peer`` could open ``real_path`` (whose stat is ``st``) for reading, by the mode bits of it and
    of every folder above it; False too when one of those folders has an access ACL (its named entries could
    deny the peer what the bits allow: the ACL is not evaluated, so what it guards is never read for a peer).
    The file's own ACL is asked of its descriptor (:func:`read_for_peer`)."""
    if not _may(st, peer.uid, gids, READ):
        return False
    folder = Path(real_path).parent
    while True:
        try:
            if not _may(os.stat(folder), peer.uid, gids, SEARCH) or has_acl(str(folder)):
                return False
        except OSError:
            return False
        if folder.parent == folder:
            return True
        folder = folder.parent


KERNEL_VIEWS = ("/proc", "/sys")
"""Folders whose files the kernel lets a process read by rules other than their mode bits (``/proc/PID/maps``:
0444, readable by its owner's ptrace peers only): never read for a peer."""


def _kernel_view(real_path: str) -> bool:
    return any(real_path == top or real_path.startswith(top + "/") for top in KERNEL_VIEWS)


def read_for_peer(path: str, peer: Peer, max_bytes: int, *, daemon_uid: int | None = None) -> bytes:
    """The content of ``path`` if ``peer`` may read it and it is a regular file of at most ``max_bytes``.

    The daemon's own uid and root are trusted as themselves. Raises
    :class:`PeerFileError` (code ``usage``) otherwise, naming the path and the
    reason, never the content. Blocking: run it on :data:`PEER_IO`.
    """
    if not os.path.isabs(path):
        raise PeerFileError("must be an absolute path (the daemon does not share your working folder)",
                            field="args.path", value=path)
    trusted = peer.uid == 0 or peer.uid == (os.getuid() if daemon_uid is None else daemon_uid)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        raise PeerFileError(f"cannot read: {exc.strerror}", file=path) from None
    try:
        st = os.fstat(fd)
        if not trusted:
            real = os.readlink(f"/proc/self/fd/{fd}")
            if _kernel_view(real) or not peer_may_read(real, st, peer, _groups_from_db(peer)) or has_acl(fd):
                raise PeerFileError("cannot read: Permission denied", file=path,
                                    hint="the daemon reads a file for you only if you could read it yourself, by "
                                         "its mode bits (a file or folder with an ACL is never read for you: send "
                                         "its text instead, args.text)")
        if not stat.S_ISREG(st.st_mode):
            raise PeerFileError("is not a regular file", file=path, expected="a pipeline .toml file")
        if st.st_size > max_bytes:
            raise PeerFileError("is too large", file=path, value=f"{st.st_size} bytes",
                                expected=f"at most {max_bytes} bytes")
        chunks: list[bytes] = []
        left = max_bytes + 1  # the file may have grown since fstat
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 16))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    except OSError as exc:
        raise PeerFileError(f"cannot read: {exc.strerror}", file=path) from None
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > max_bytes:
        raise PeerFileError("is too large", file=path, value=f"more than {max_bytes} bytes",
                            expected=f"at most {max_bytes} bytes")
    return data


async def read_for_peer_async(path: str, peer: Peer, max_bytes: int) -> bytes:
    """:func:`read_for_peer` on :data:`PEER_IO` (never the loop's default executor)."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(PEER_IO, read_for_peer, path, peer, max_bytes)


__all__ = ["PEER_IO", "PeerFileError", "peer_may_read", "read_for_peer", "read_for_peer_async"]
