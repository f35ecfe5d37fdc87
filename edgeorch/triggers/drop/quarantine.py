"""Quarantine: a failed or refused input's file set aside with a reason document; requeue."""

from __future__ import annotations

import json
import os
import stat as stat_mod
import time
from collections.abc import Callable, Mapping
from dataclasses import field
from pathlib import Path
from typing import Any

from ...records import frozen
from .claim import ClaimError
from ...durable import fsync_dir, write_atomic
from .trust import UNTRUSTED_HINT, untrusted_path
from ...trust import close_folder
from .names import display_path, fit_name


@frozen
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
    close_folder(qdir)  # the dropper still owns the file: nobody but the daemon's user may reach it here
    name = _free_name(qdir, source_name or src.name)
    dest = qdir / name
    doc = {"file": display_path(name), "source_name": display_path(source_name or src.name), "reason": reason,
           "quarantined_at": now if now is not None else time.time(), **(dict(details) if details else {})}
    reason_path = qdir / (name + REASON_SUFFIX)
    write_atomic(reason_path, json.dumps(doc, indent=2, sort_keys=True).encode() + b"\n")
    os.rename(src, dest)
    fsync_dir(qdir)
    return Quarantined(dest, reason_path, doc)


def quarantine_input(store: Any, rec: Mapping[str, Any], quarantine_dir: Path | str, why: str, *,
                     clock: Callable[[], float], publish: Callable[[Any], None] | None = None,
                     details: Mapping[str, Any] | None = None) -> Path | None:
    """Set input ``rec``'s kept file aside and record it: the one way an input becomes ``quarantined``.

    For a failed run (the drop service) and a rule's ``quarantine`` response (after its run ended): the
    file moves into ``quarantine_dir`` with its reason document, the input's row becomes ``quarantined``
    with the new path (a transition the state table allows, else :class:`~edgeorch.errors.ConflictError`
    and nothing moved), and an ``InputQuarantined`` event is recorded and published. A file already gone
    records the state with that said; a move that fails records it with the error. Returns the new path,
    or None when nothing was moved.
    """
    from ...events import InputQuarantined, record  # the store's event types; the file moves need neither
    from ...model import InputState

    state = InputState(rec["state"])
    if not InputState.can_transition(state, InputState.QUARANTINED):
        from ...errors import ConflictError

        raise ConflictError(f"input {rec['id']} cannot move from {state.value} to quarantined")
    path = rec.get("inbox_path")
    if not path or not os.path.lexists(path):
        store.inputs.record_state(rec["id"], "quarantined", reason=why + " (the inbox file was already gone)")
        return None
    try:
        q = quarantine(path, quarantine_dir, why, source_name=rec["source_name"],
                       details={"pipeline": rec["pipeline"], "run_id": rec["run_id"], "sha256": rec["sha256"],
                                "input_id": rec["id"], "source_path": rec["source_path"],
                                "watch_folder": rec["watch_folder"], "claimed_path": str(path),
                                **(dict(details) if details else {})})
    except OSError as exc:
        store.inputs.record_state(rec["id"], "quarantined", reason=f"{why}; quarantine failed: {exc}")
        raise
    store.inputs.record_state(rec["id"], "quarantined", reason=why, inbox_path=str(q.path))
    event = InputQuarantined(clock(), rec["id"], rec["run_id"], rec["pipeline"], str(q.path), why,
                             rec["source_name"])
    record(store.events, event)  # its events row, from the event itself
    if publish is not None:
        publish(event)
    try:
        os.rmdir(Path(path).parent)  # the claim's own folder in the inbox, when empty
    except OSError:
        pass
    return q.path


def quarantine_run_inputs(store: Any, run_id: int, quarantine_dir: Path | str, why: str, *,
                          clock: Callable[[], float], publish: Callable[[Any], None] | None = None,
                          details: Mapping[str, Any] | None = None) -> list[str]:
    """A rule's ``quarantine`` response: set aside the kept files of run ``run_id``'s inputs.

    Inputs still ``started`` or ``done`` are quarantined (:func:`quarantine_input`); others (already
    quarantined, requeued, ...) are left as they are. Returns the paths now in quarantine.
    """
    moved = []
    for rec in store.inputs.all_of_run(run_id):
        if rec["state"] in ("started", "done"):
            q = quarantine_input(store, rec, quarantine_dir, why, clock=clock, publish=publish, details=details)
            if q is not None:
                moved.append(str(q))
    return moved


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
    untrusted = untrusted_path(drop)
    if untrusted:  # the folder's path may lead elsewhere now: the file would land there
        raise ClaimError(f"its drop folder {drop} is not safe to move a file into: {untrusted}",
                         value=str(src), hint=UNTRUSTED_HINT)
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
