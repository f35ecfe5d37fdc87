"""Whose files edgeorch may take code or state from when it finds them by itself: one rule.

A config found in the working folder, the embedded defaults' folders under it
(``./var``, ``./examples/pipelines``) and numba's cache folders hold what
becomes commands run as the user (a pipeline's task, a config's paths, numba's
pickled index files). Found in a folder another user can write (``/tmp``, a
shared inbox, a colleague's project), they would let that user run code as
whoever runs ``edgeorch`` there. So such a file or folder is used only when it
belongs to the user running edgeorch or to root, and not every user may write
it (a folder with the sticky bit, as ``/tmp``, excepted: others may add to it,
not replace what is yours in it). Group-writable is allowed: a team's shared
project is the group's choice, as a umask of 002 is.

What a user names (``--config``, ``$EDGEORCH_CONFIG``) and what lies in their
own config home or in ``/etc`` is theirs to trust, and is not checked here.

A folder edgeorch keeps in a shared place for itself (``/tmp/edgeorch-*``: the
kernel servers' sockets, numba's fallback cache, a Ray node's spool) is made
private and used only when it is this user's own real folder
(:func:`private_folder`): another user who made the name first gets nothing.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path


def owner_name(uid: int) -> str:
    """``name (uid N)``, or ``uid N`` when the user database has no name for it."""
    return named_owner(uid) or f"uid {uid}"


def named_owner(uid: int) -> str | None:
    """``name (uid N)`` when the user database names ``uid``, else None."""
    try:
        import pwd

        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except (KeyError, ImportError):
        return None


def group_members(gid: int) -> set[int] | None:
    """The uids of the users in group ``gid``: those whose primary group it is and those it lists; None when the
    group has no name on this system. Reads the user database (``/etc/passwd``, or what NSS enumerates: a
    directory service that does not enumerate its users hides their primary groups)."""
    import grp
    import pwd

    try:
        group = grp.getgrgid(gid)
    except KeyError:
        return None
    members = {u.pw_uid for u in pwd.getpwall() if u.pw_gid == gid}
    for name in group.gr_mem:
        try:
            members.add(pwd.getpwnam(name).pw_uid)
        except KeyError:
            members.add(-1)  # a member the user database does not know: not a trusted one
    return members


def group_only(gid: int, uids: Iterable[int]) -> bool:
    """Whether every member of group ``gid`` is one of ``uids`` (and it has a member): its write permission then
    lets no one else in. A user's private group under a umask of ``002`` (the default of many distributions),
    root's group in a tarball unpacked by root. A group with no member at all is not such a group (setgid programs
    use those); nor is one whose name or members the user database does not know."""
    members = group_members(gid)
    return members is not None and bool(members) and members <= set(uids)


def ownership_problem(st: os.stat_result, uid: int | None = None, *, chosen: bool = False,
                      group_too: bool = False) -> str | None:
    """Why a file or folder with status ``st`` may not be trusted by ``uid`` (default: this process's), or None.

    Trusted: owned by ``uid`` or by root, and not writable by every user unless it is a folder with the sticky bit.
    ``chosen``: it lies in a folder the user chose to work in that not every user may write; root then trusts
    another user's file too (an administrator in a user's project, a CI checkout owned by another uid: root could
    write it anyway), but never one in ``/tmp`` or another folder everyone writes to.
    """
    me = os.getuid() if uid is None else uid
    if st.st_uid not in (me, 0) and not (chosen and me == 0):
        return f"it belongs to {owner_name(st.st_uid)}, not to you or root"
    sticky = stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_ISVTX
    if st.st_mode & stat.S_IWOTH and not sticky:
        return "every user may write it"
    if (group_too and st.st_mode & stat.S_IWGRP and not sticky  # what runs as the daemon: no group's choice
            and not group_only(st.st_gid, (me, 0, st.st_uid))):  # ... unless the group is its owner's alone
        return "the users of its group may write it"
    return None


def path_problem(path: Path, base: Path | None = None, *, chosen: bool = False, uid: int | None = None,
                 group_too: bool = False) -> tuple[Path, str] | None:
    """The first of ``base`` and each folder and link from it down to ``path`` (those that exist) that may not be
    trusted, with why; None when every one may (or none exists yet: what edgeorch creates is the user's).

    ``path`` must lie under ``base`` when ``base`` is given (else only ``path`` itself is checked). A link is
    checked itself and then what it points to: whoever owns a link chooses where it leads. ``chosen``: the
    working folder's case (:func:`ownership_problem`), judged for each entry by the folder that holds it. ``uid``:
    whose trust (default: this process's user); ``group_too``: a group's write counts as another user's
    (:func:`ownership_problem`).
    """
    chain = [path]
    if base is not None:
        try:
            rel = path.relative_to(base).parts
            chain = [base.joinpath(*rel[:i]) for i in range(len(rel) + 1)]
        except ValueError:
            pass
    for p in chain:
        try:
            lst = os.lstat(p)
        except OSError:
            return None  # not there yet: the rest of the chain is what edgeorch makes
        mine = chosen and _in_private_folder(p)
        problem = ownership_problem(lst, uid, chosen=mine, group_too=group_too) if stat.S_ISLNK(lst.st_mode) else None
        if problem is None:
            try:
                problem = ownership_problem(os.stat(p), uid, chosen=mine, group_too=group_too)
            except OSError:
                return None
        if problem is not None:
            return p, problem
    return None


def command_file_problem(path: Path, uids: Iterable[int]) -> str | None:
    """Why the daemon may not read the pipeline file ``path`` again to run its commands (``retry --current`` of a
    run from a file outside its pipelines folder), or None: the file, or its folder, or a link on the way, belongs
    to someone other than one of ``uids`` (the daemon's user, the user who asks) and root, or users other than its
    owner may write it (its group's too: a group member without access to the daemon rewrote a team's file, and
    the operator's retry ran it as the daemon's user). An operator's run of a file in a shared folder, retried,
    ran what another user had written there since. The problem said is the last uid's (the one who asks)."""
    problems = [path_problem(path, path.parent, uid=uid, group_too=True) for uid in dict.fromkeys(uids)]
    if any(p is None for p in problems):
        return None
    where, why = next(p for p in reversed(problems) if p is not None)
    return f"{where}: {why}"


def _in_private_folder(path: Path) -> bool:
    """Whether the folder holding ``path`` is one not every user may write (``/tmp`` is not)."""
    try:
        return not os.stat(os.path.dirname(os.path.abspath(path))).st_mode & stat.S_IWOTH
    except OSError:
        return False


def read_trusted(path: Path, *, chosen: bool = False) -> bytes:
    """The bytes of the regular file ``path``, checked on the descriptor they are read from (no window between the
    check and the read: a link flipped between two targets cannot pass one and give the other).

    Raises PermissionError (its ``strerror`` the reason) when the file may not be trusted, OSError when it cannot
    be read or is not a regular file (a FIFO planted there never blocks: it is opened non-blocking).
    """
    lst = os.lstat(path)
    if stat.S_ISLNK(lst.st_mode):  # whoever owns a link chooses where it leads
        problem = ownership_problem(lst, chosen=chosen and _in_private_folder(path))
        if problem is not None:
            raise PermissionError(0, f"a link: {problem}")
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise OSError(0, "not a regular file")
        problem = ownership_problem(st, chosen=chosen and _in_private_folder(path))
        if problem is not None:
            raise PermissionError(0, problem)
        return f.read()


def private_folder(path: Path, closed: int = 0o077) -> bool:
    """Make ``path`` (mode 0700) unless it exists; True when it is then this user's own folder, not a link, with
    none of the ``closed`` mode bits (default: nobody else may enter; ``0o022``: nobody else may write).

    For a name in a shared folder (``/tmp``): one another user made first, or a link they planted, is refused, and
    the caller does without it (or uses a fresh ``mkdtemp``). A parent that is missing is not made.
    """
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError:
        return False
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and not st.st_mode & closed


def close_folder(path: Path) -> None:
    """Make the folder ``path`` (and its parents) when missing, then take every access of group and others from
    it when it is this user's (a folder made by an older edgeorch, or under a umask of 022, was ``0755``).

    For the inbox and the quarantine: a file there keeps the owner who dropped it, who could otherwise rewrite
    it through its path after its sha256 was recorded, and nobody else is to read it. The daemon's tasks run as
    its own user. Raises OSError as ``mkdir`` does.
    """
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    withdraw(path, 0o077)


def withdraw(path: Path, bits: int) -> int | None:
    """Take the permission ``bits`` from ``path`` (through a link: a state folder linked to a bigger disk is
    closed where it is) when it is this user's and has any of them, keeping the rest; returns the new mode, or
    None when nothing changed (another user's, none of them set). The one rule behind :func:`close_folder` and the
    state file's modes (``store.db``). Raises OSError as ``stat``/``chmod`` do."""
    st = os.stat(path)
    if st.st_uid != os.getuid() or not st.st_mode & bits:
        return None
    mode = stat.S_IMODE(st.st_mode) & ~bits
    os.chmod(path, mode)
    return mode
