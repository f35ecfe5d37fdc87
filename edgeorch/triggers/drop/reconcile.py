"""Recovery: the pure decision (:func:`reconcile`) that brings store and disk back in line
after any crash point, and the helpers that list what is on disk for it."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Literal

from ...model import InputState
from ...records import frozen
from .claim import CLAIM_PREFIX
from .names import display_path
from .owncopy import COPY_PREFIX

_log = logging.getLogger("edgeorch.triggers")

@frozen
class InputRecord:
    """One row of the store's ``inputs`` table, as :func:`reconcile` needs it.

    ``state``: ``claiming`` (intent recorded, rename maybe not done),
    ``claimed`` (in the inbox, hashed; no run yet), ``waiting`` (claimed while its
    pipeline is paused), ``started`` (run created),
    or a final state (duplicate, refused, quarantined, done, vanished, lost):
    :class:`~edgeorch.model.InputState`, whose table says which moves are allowed.
    """

    id: int
    pipeline: str
    state: str
    source: Path
    inbox_path: Path | None = None
    dev: int | None = None
    ino: int | None = None
    sha256: str | None = None
    run_id: str | None = None


ActionKind = Literal["ingest", "rename", "finish", "submit", "link_run", "forget", "lost", "adopt"]


@frozen
class Action:
    """One step to bring store and disk back in line.

    * ``ingest`` path: a drop-folder file with no claim: treat as a new
      arrival (settle, inspect, claim);
    * ``rename`` record: intent recorded, file still in the drop folder:
      :func:`perform_claim` then record ``claimed``;
    * ``finish`` record: renamed but not recorded: :func:`perform_claim`
      (only hashes) then record ``claimed``;
    * ``submit`` record: claimed (or waiting for its paused pipeline), no run: start the run (records
      ``started``; ``waiting`` again while the pipeline is paused);
    * ``link_run`` record + run_id: the run exists (found by its trigger
      tag ``input:<id>``) but the record missed it: record ``started``;
    * ``forget`` record: the intended file vanished before the rename (the
      user removed it): record ``vanished``;
    * ``lost`` record: claimed (or waiting) but the inbox file is gone and no run: record
      ``lost`` with the reason (someone deleted the inbox);
    * ``adopt`` path: an inbox file no record names: record it as claimed
      (hash it; the duplicate check still applies).
    """

    kind: ActionKind
    path: Path | None = None
    record: InputRecord | None = None
    run_id: str | None = None
    reason: str = ""


FileId = tuple[int, int]
"""(st_dev, st_ino)."""


def reconcile(records: Iterable[InputRecord], drop_files: Mapping[Path, FileId], inbox_files: Iterable[Path],
              runs_by_input: Mapping[int, str]) -> list[Action]:
    """The actions that resolve every crash point without loss or double processing. Pure.

    ``records``: the store's inputs in EVERY state: a record in a final
    state (done, quarantined, duplicate, ...) gets no action but owns its
    inbox file, so the inbox files of processed inputs (kept for retry and
    lineage, docs/triggers.md "Inbox lifecycle") are never taken for
    strays. ``drop_files``: candidate files in the watched folders with
    their (dev, ino). ``inbox_files``: files found in claim folders.
    ``runs_by_input``: input id -> run id of runs whose trigger names the
    input (the engine's record that a run was created for it).

    Each record gets at most one action; each drop file at most one
    (``ingest`` unless it is the unmoved source of an intent). An inbox file
    that no record names is ``adopt``-ed (quarantined: a stray, e.g. claimed
    in the lost future of a state file restored from a backup), unless its
    claim folder carries the id of a record whose file was moved out of the
    inbox (``inbox_path`` in quarantine): that file is the record's own,
    left by a crash between a move and its record, and stays. A claim
    folder is ``in-<id>`` or ``in-<id>-<k>`` (:func:`claim_folder_id`); a
    record whose ``inbox_path`` lies in a claim folder owns that folder
    only, so a folder of a reused id is never taken for the record's.
    Output order: records by id, then ingests, then adopts (by path).
    """
    actions: list[Action] = []
    inbox = {Path(p) for p in inbox_files}
    drop = {Path(p): fid for p, fid in drop_files.items()}
    named_inbox: set[Path] = set()
    owned_sources: set[Path] = set()
    moved_out: set[int] = set()  # records whose file was moved out of its claim folder (quarantine)
    for rec in sorted(records, key=lambda r: r.id):
        if rec.inbox_path is not None:
            named_inbox.add(Path(rec.inbox_path))
            if claim_folder_id(Path(rec.inbox_path).parent.name) != rec.id:
                moved_out.add(rec.id)
        if rec.state == InputState.CLAIMING:
            in_inbox = rec.inbox_path is not None and Path(rec.inbox_path) in inbox
            src_id = drop.get(Path(rec.source))
            same = src_id is not None and rec.dev is not None and src_id == (rec.dev, rec.ino)
            if in_inbox:
                actions.append(Action("finish", record=rec, reason="renamed into the inbox before the crash"))
            elif same:
                owned_sources.add(Path(rec.source))
                actions.append(Action("rename", record=rec, reason="intent recorded, rename not done"))
            else:
                actions.append(Action("forget", record=rec, reason="the file left the drop folder before the claim"))
        elif rec.state in (InputState.CLAIMED, InputState.WAITING):  # waiting: submitted again, waits again if paused
            if rec.id in runs_by_input:
                actions.append(Action("link_run", record=rec, run_id=runs_by_input[rec.id],
                                      reason="run created, its record missed"))
            elif rec.inbox_path is not None and Path(rec.inbox_path) in inbox:
                actions.append(Action("submit", record=rec, reason="claimed, run not started"))
            else:
                actions.append(Action("lost", record=rec, reason="the claimed file is missing from the inbox"))
        elif rec.state == InputState.STARTED and rec.run_id is None and rec.id in runs_by_input:
            actions.append(Action("link_run", record=rec, run_id=runs_by_input[rec.id], reason="run id not recorded"))
    for p in sorted(drop):
        if p not in owned_sources:
            actions.append(Action("ingest", path=p, reason="in the drop folder, not claimed"))
    for p in sorted(inbox - named_inbox):
        if claim_folder_id(p.parent.name) in moved_out:
            continue  # its record names its quarantined path: a crash between a move and its record
        actions.append(Action("adopt", path=p, reason="in the inbox, not recorded"))
    return actions


def claim_folder_id(name: str) -> int | None:
    """The input id of a claim folder named ``in-<id>`` or ``in-<id>-<k>``
    (:func:`~.claim.make_claim_folder`); None for any other name."""
    if not name.startswith(CLAIM_PREFIX):
        return None
    digits = name[len(CLAIM_PREFIX):].split("-")
    if len(digits) > 2 or not all(d.isascii() and d.isdigit() for d in digits):
        return None
    return int(digits[0])


def list_inbox(inbox_dir: Path | str) -> list[Path]:
    """Entries of claim folders (``<inbox>/in-<id>[-<k>]/<name>``), for :func:`reconcile`.

    Other names in the inbox (a batch's path list, ``batch-*.paths``) are
    not claims, nor a copy being made of a claimed file (:mod:`.owncopy`: the claim's next try replaces it). Any entry but a folder counts (a symlink swapped in is a
    stray too); a claim folder that cannot be read is skipped with a log line.
    """
    out: list[Path] = []
    base = Path(inbox_dir)
    try:
        claims = list(os.scandir(base))
    except FileNotFoundError:
        return []
    for c in claims:
        if claim_folder_id(c.name) is None or not c.is_dir(follow_symlinks=False):
            continue
        try:
            with os.scandir(c.path) as it:
                out.extend(Path(e.path) for e in it
                           if not e.is_dir(follow_symlinks=False) and not e.name.startswith(COPY_PREFIX))
        except OSError as exc:
            _log.error("cannot list claim folder %s: %s", display_path(c.path), exc.strerror)
    return sorted(out)


def file_ids(paths: Iterable[Path]) -> dict[Path, FileId]:
    """(dev, ino) by lstat for each existing path, for :func:`reconcile`'s ``drop_files``."""
    out: dict[Path, FileId] = {}
    for p in paths:
        try:
            st = os.lstat(p)
        except OSError:
            continue
        out[Path(p)] = (st.st_dev, st.st_ino)
    return out
