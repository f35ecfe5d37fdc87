"""Quarantine: a failed or refused input's file set aside with a reason document; requeue."""

from __future__ import annotations

import json
import os
import stat as stat_mod
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .claim import ClaimError
from .durable import fsync_dir, write_atomic
from .names import display_path, fit_name


@dataclass(frozen=True)
class Quarantined:
    """A file in quarantine and its reason document beside it."""

    path: Path
    reason_path: Path
    reason: dict[str, Any] = field(default_factory=dict)


REASON_SUFFIX = ".reason.json"


def quarantine(path: Path | str, quarantine_dir: Path | str, reason: str, *, source_name: str | None = None,
               details: Mapping[str, Any] | None = None, now: float | None = None) -> Quarantined:
    """Move ``path`` (an inbox file) into ``quarantine_dir`` and write ``<name>.reason.json`` beside it.

    Both steps are atomic (write temp + fsync + rename; ``os.rename``). The
    reason is written first: a crash between leaves a reason without its file
    (harmless, and :func:`requeue` ignores it) rather than an unexplained
    A name already in quarantine gets a ``.N`` before its suffix. Every
    name made here fits NAME_MAX whatever the input's name (:func:`fit_name`:
    a long name is shortened with a hash; ``source_name`` in the document
    keeps the original). ``details`` values are stored as JSON (paths in
    their :func:`display_path` form).
    Raises ``OSError`` when ``quarantine_dir`` is on another filesystem.
    """
    src = Path(path)
    qdir = Path(quarantine_dir)
    qdir.mkdir(parents=True, exist_ok=True)
    name = _free_name(qdir, source_name or src.name)
    dest = qdir / name
    doc = {"file": display_path(name), "source_name": display_path(source_name or src.name), "reason": reason,
           "quarantined_at": now if now is not None else time.time(), **(dict(details) if details else {})}
    reason_path = qdir / (name + REASON_SUFFIX)
    write_atomic(reason_path, json.dumps(doc, indent=2, sort_keys=True).encode() + b"\n")
    os.rename(src, dest)
    fsync_dir(qdir)
    return Quarantined(dest, reason_path, doc)


def requeue(quarantined: Path | str, drop_folder: Path | str) -> Path:
    """Send a quarantined file back into ``drop_folder`` (atomic rename) and drop its reason file.

    It arrives as a rename (``moved_to``), so it is ingested at once. The
    original name is used unless taken, then ``name.N.ext``. Raises
    :class:`ClaimError` when ``quarantined`` is not a regular file in
    quarantine (a ``.reason.json`` itself, a symlink, missing).
    """
    src = Path(quarantined)
    if src.name.endswith(REASON_SUFFIX):
        raise ClaimError("names a reason file, not a quarantined input", value=str(src),
                         expected="the quarantined file beside it")
    try:
        st = os.lstat(src)
    except FileNotFoundError:
        raise ClaimError("no such quarantined file", value=str(src)) from None
    if not stat_mod.S_ISREG(st.st_mode):
        raise ClaimError("not a regular file", value=str(src))
    reason_path = src.with_name(src.name + REASON_SUFFIX)
    name = src.name
    try:
        doc = json.loads(reason_path.read_text())
        name = str(doc.get("source_name") or name)
    except (OSError, ValueError):
        pass
    drop = Path(drop_folder)
    dest = drop / _free_name(drop, name, reserve=0)
    os.rename(src, dest)
    fsync_dir(drop)
    try:
        os.unlink(reason_path)
    except FileNotFoundError:
        pass
    return dest


def _free_name(folder: Path, name: str, *, reserve: int = len(REASON_SUFFIX)) -> str:
    """A name in ``folder`` that neither it nor its reason file uses, fitting NAME_MAX with ``reserve`` bytes."""
    def free(cand: str) -> bool:
        return not os.path.lexists(folder / cand) and not (
            reserve and os.path.lexists(folder / (cand + REASON_SUFFIX)))

    name = fit_name(name, reserve)
    if free(name):
        return name
    stem, dot, ext = name.partition(".")
    for n in range(1, 1_000_000):
        cand = fit_name(f"{stem}.{n}{dot}{ext}" if dot else f"{stem}.{n}", reserve)
        if free(cand):
            return cand
    raise ClaimError("no free name", value=name)  # pragma: no cover
