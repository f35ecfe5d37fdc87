"""Whether anyone but root and the daemon's user can change where a watched folder's path leads.

A claim moves ``<folder>/<name>`` into the inbox by its path. If another user can replace the watched folder
(or a folder above it) with a symbolic link, the path leads wherever that user likes, and the daemon, root
perhaps, moves that folder's files into its inbox: found by a tester, who owned the watched folder's parent,
put a link to a root-owned folder in its place, and saw the daemon claim (remove from there) a root-owned file
at its next look; ``edgeorch requeue`` likewise put a quarantined file into the linked folder. So a folder is
watched (and a file requeued into it) only while its path is one nobody else can change
(:func:`untrusted_path`), the rule ``sshd``'s ``StrictModes`` applies to a user's keys.

A path can be changed by whoever may replace one of its parts: the owner of the folder holding it, and,
when that folder is writable by its group or others, they too, unless it is sticky (``/tmp``) and the part is
owned by root or the daemon's user. A folder writable by its group is changed by no one else when every member
of that group is root or the daemon's user (:func:`edgeorch.trust.group_only`): a user's private group under a umask of
``002`` (the default of many distributions), or root's group in a tarball unpacked by root, where sshd's rule
refused the README's own example folder. A group with no member at all is not such a group (setgid programs use
those). The watched folder itself may be anyone's (droppers write into it): only
its replacement matters. A part that is a symbolic link is judged as a part, then where it leads is judged
too (the resolved path's own parts).
"""

from __future__ import annotations

import os
import stat as stat_mod
from pathlib import Path

from ...trust import group_only


def _owner(uid: int) -> str:
    try:
        import pwd

        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except (KeyError, ImportError):
        return f"uid {uid}"


def _group(gid: int) -> str:
    try:
        import grp

        return f"{grp.getgrgid(gid).gr_name} (gid {gid})"
    except (KeyError, ImportError):
        return f"gid {gid}"


def _who_can_replace(parent: os.stat_result, child: os.stat_result | None, trusted: set[int]) -> str | None:
    """Who, besides root and the daemon's user, may replace (or create) an entry ``child`` of a folder
    ``parent`` (``child`` None: it does not exist yet), or None."""
    if parent.st_uid not in trusted:
        return "the owner"
    writable = parent.st_mode & 0o022
    if not writable:
        return None
    if parent.st_mode & stat_mod.S_ISVTX and child is not None and child.st_uid in trusted:
        return None  # sticky: only an entry's owner (or the folder's) may rename or remove it
    if writable == 0o020:
        return None if group_only(parent.st_gid, trusted) else "the group"
    return "every user"


def _chain_problem(path: Path, trusted: set[int], *, stop_at_links: bool) -> str | None:
    parent = Path(path.anchor)
    try:
        parent_st = os.lstat(parent)
    except OSError as exc:
        return f"cannot look at {parent}: {exc.strerror}"
    for part in path.parts[1:]:
        child = parent / part
        try:
            child_st: os.stat_result | None = os.lstat(child)
        except FileNotFoundError:
            child_st = None
        except OSError as exc:
            return f"cannot look at {child}: {exc.strerror}"
        who = _who_can_replace(parent_st, child_st, trusted)
        if who is not None:
            group = (f", group {_group(parent_st.st_gid)} with users besides root and the daemon's"
                     if who == "the group" else "")
            return (f"{child} can be {'replaced' if child_st is not None else 'made'} by {who} of {parent} "
                    f"(owner {_owner(parent_st.st_uid)}{group}, mode {stat_mod.S_IMODE(parent_st.st_mode):04o})")
        if child_st is None or (stop_at_links and stat_mod.S_ISLNK(child_st.st_mode)):
            return None  # nothing further exists yet, or a link: what it leads to is the resolved path's to judge
        parent, parent_st = child, child_st
    return None


def untrusted_path(folder: Path | str, *, euid: int | None = None) -> str | None:
    """Why a user other than root and ``euid`` (the daemon's, by default this process's) could make ``folder``'s
    path lead elsewhere, or None. A few ``lstat`` calls; ``folder`` need not exist (it is judged as far as its
    path exists: whoever could make its missing part could make a link of it)."""
    trusted = {0, os.geteuid() if euid is None else euid}
    path = Path(os.path.abspath(folder))
    why = _chain_problem(path, trusted, stop_at_links=True)
    if why is None:
        resolved = Path(os.path.realpath(path))
        if resolved != path:
            why = _chain_problem(resolved, trusted, stop_at_links=False)
    if why is None:
        return None
    return (f"{why}: a link put in its place would lead the daemon to move another folder's files into its "
            "inbox")


UNTRUSTED_HINT = ("watch a folder whose path only root and the daemon's user can change: its parent folders "
                  "owned by one of them and not writable by others, nor by a group with other users in it (a "
                  "sticky folder such as /tmp may hold it if one of them owns it)")
